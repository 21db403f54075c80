"""What a host needs to join the cluster, the shapes of its parts, and reading it back.

kubeadm's bootstrap token, the CA certificate hash and, for a master, the key of the
certificates kubeadm uploaded. `kubeadm init`, `kubeadm token create --print-join-command`
and `bootstrap master0` all print them as join command lines (continued with backslashes);
`find_join` reads any of them. A token grants a join: `redact` keeps it out of messages.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

TOKEN = r"[a-z0-9]{6}\.[a-z0-9]{16}"  # abcdef.0123456789abcdef
CA_HASH = r"sha256:[0-9a-f]{64}"
CERTIFICATE_KEY = r"[0-9a-f]{64}"

_TOKEN_ANYWHERE = re.compile(rf"\b{TOKEN}\b")
_TOKEN_FLAG = re.compile(rf"--token\s+({TOKEN})\b")
_HASH_FLAG = re.compile(rf"--discovery-token-ca-cert-hash\s+({CA_HASH})\b")
_CERT_KEY_FLAG = re.compile(rf"--certificate-key\s+({CERTIFICATE_KEY})\b")
_ENDPOINT = re.compile(r"kubeadm join\s+(\S+)")
_CONTINUATION = re.compile(r"\\\s*\n\s*")


@dataclass(frozen=True)
class Join:
    token: str
    ca_cert_hash: str
    certificate_key: str | None = None  # a master's: kubeadm then downloads the CAs
    endpoint: str | None = None  # where kubeadm's own join command points

    def args(self) -> list[str]:
        """The flags `bootstrap node` and `bootstrap master --join` take (no certificate key:
        a master gets the CAs copied)."""
        return ["--token", self.token, "--discovery-token-ca-cert-hash", self.ca_cert_hash]


def find_join(text: str) -> tuple[Join | None, list[str]]:
    """The join in the first join command of `text` (None without token and CA hash), and
    what the text lacks of: join command, --token, --discovery-token-ca-cert-hash."""
    joined = _CONTINUATION.sub(" ", text)
    endpoint, token, ca_hash = (p.search(joined) for p in (_ENDPOINT, _TOKEN_FLAG, _HASH_FLAG))
    missing = [
        name
        for name, match in (
            ("join command", endpoint),
            ("--token", token),
            ("--discovery-token-ca-cert-hash", ca_hash),
        )
        if match is None
    ]
    if token is None or ca_hash is None:
        return None, missing
    cert_key = _CERT_KEY_FLAG.search(joined)
    return Join(
        token[1],
        ca_hash[1],
        cert_key[1] if cert_key else None,
        endpoint[1] if endpoint else None,
    ), missing


def redact(text: str) -> str:
    """`text` with every bootstrap token replaced, for messages shown or logged."""
    return _TOKEN_ANYWHERE.sub("<token>", text)
