"""Running kubeadm (from PATH) and reading what `kubeadm init` prints.

kubeadm prints the join commands as shell lines continued with backslashes; the token, the
CA certificate hash and the certificate key are taken from there, each checked for shape.
"""

from __future__ import annotations

import re
import shutil
from dataclasses import dataclass
from pathlib import Path

from bootstrap.effects import Effects
from bootstrap.errors import StepFailed
from bootstrap.inputs import KubeVersion, parse_version

KUBEADM = "kubeadm"

_TOKEN = re.compile(r"--token\s+([a-z0-9]{6}\.[a-z0-9]{16})\b")
_HASH = re.compile(r"--discovery-token-ca-cert-hash\s+(sha256:[0-9a-f]{64})\b")
_CERT_KEY = re.compile(r"--certificate-key\s+([0-9a-f]{64})\b")
_ENDPOINT = re.compile(r"kubeadm join\s+(\S+)")


@dataclass(frozen=True)
class JoinInfo:
    endpoint: str
    token: str
    ca_cert_hash: str
    certificate_key: str | None


def require_kubeadm() -> None:
    if shutil.which(KUBEADM) is None:
        raise StepFailed(
            "kubeadm: not found on PATH; install kubeadm, kubelet and a container runtime "
            "first (an offline package's shell/init.sh does)"
        )


def parse_init_output(text: str) -> JoinInfo:
    """Token, CA hash and certificate key from `kubeadm init --upload-certs` output."""
    joined = re.sub(r"\\\s*\n\s*", " ", text)
    endpoint, token, ca_hash = _ENDPOINT.search(joined), _TOKEN.search(joined), _HASH.search(joined)
    missing = [
        n
        for n, m in (
            ("join command", endpoint),
            ("--token", token),
            ("--discovery-token-ca-cert-hash", ca_hash),
        )
        if m is None
    ]
    if missing or endpoint is None or token is None or ca_hash is None:
        raise StepFailed(
            "kubeadm init succeeded but its output has no "
            + ", ".join(missing)
            + "; make a join command with `kubeadm token create --print-join-command`"
        )
    cert_key = _CERT_KEY.search(joined)
    return JoinInfo(endpoint[1], token[1], ca_hash[1], cert_key[1] if cert_key else None)


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
