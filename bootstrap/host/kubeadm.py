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


def join_argv(
    endpoint: str,
    token: str,
    ca_cert_hash: str,
    *,
    node_name: str | None = None,
    control_plane: bool = False,
    advertise_address: str | None = None,
    certificate_key: str | None = None,
) -> list[str]:
    argv = [
        KUBEADM,
        "join",
        endpoint,
        "--token",
        token,
        "--discovery-token-ca-cert-hash",
        ca_cert_hash,
    ]
    if control_plane:
        argv.append("--control-plane")
        if advertise_address:
            argv += ["--apiserver-advertise-address", advertise_address]
        if certificate_key:
            argv += ["--certificate-key", certificate_key]
    if node_name:
        argv += ["--node-name", node_name]
    return argv


def reset_argv() -> list[str]:
    return [KUBEADM, "reset", "-f"]


def installed_version() -> KubeVersion:
    """The version of the kubeadm on PATH, for when --version is not given."""
    require_kubeadm()
    quiet = Effects(dry_run=False, echo=lambda _line: None)
    out = quiet.run([KUBEADM, "version", "-o", "short"]).strip()
    return parse_version(out.splitlines()[-1] if out else "", "kubeadm version")
