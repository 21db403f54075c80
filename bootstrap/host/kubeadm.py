"""Running kubeadm (from PATH) and reading what `kubeadm init` prints.

kubeadm prints the join commands as shell lines continued with backslashes; the token, the
CA certificate hash and the certificate key are taken from there, each checked for shape.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from bootstrap.errors import StepFailed
from bootstrap.host.effects import Effects
from bootstrap.inputs import KubeVersion, parse_version
from bootstrap.join import Join, find_join

KUBEADM = "kubeadm"


def require_kubeadm() -> None:
    if shutil.which(KUBEADM) is None:
        raise StepFailed(
            "kubeadm: not found on PATH; install kubeadm, kubelet and a container runtime "
            "first (an offline package's shell/init.sh does)"
        )


def parse_init_output(text: str) -> Join:
    """Token, CA hash and certificate key from `kubeadm init --upload-certs` output."""
    join, missing = find_join(text)
    if missing or join is None:
        raise StepFailed(
            "kubeadm init succeeded but its output has no "
            + ", ".join(missing)
            + "; make a join command with `kubeadm token create --print-join-command`"
        )
    return join


def init_argv(config: Path) -> list[str]:
    return [KUBEADM, "init", "--config", str(config), "--upload-certs"]


def join_argv(config: Path) -> list[str]:
    """kubeadm join reads everything from its configuration: flags such as --token would
    show in `ps` to every user of the host while it runs (and kubeadm mixes no flags with
    --config)."""
    return [KUBEADM, "join", "--config", str(config)]


def reset_argv() -> list[str]:
    return [KUBEADM, "reset", "-f"]


def installed_version() -> KubeVersion:
    """The version of the kubeadm on PATH, for when --version is not given."""
    require_kubeadm()
    quiet = Effects(dry_run=False, echo=lambda _line: None)
    out = quiet.run([KUBEADM, "version", "-o", "short"]).strip()
    return parse_version(out.splitlines()[-1] if out else "", "kubeadm version")
