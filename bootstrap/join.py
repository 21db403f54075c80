"""What a host needs to join the cluster, the shapes of its parts, and reading it back.

kubeadm's bootstrap token, the CA certificate hash and, for a master, the key of the
certificates kubeadm uploaded. `kubeadm init`, `kubeadm token create --print-join-command`
and `bootstrap master0` all print them as join command lines (continued with backslashes);
`find_join` reads any of them. The token grants a join and the certificate key the cluster's
CAs: `redact` keeps both out of messages and logs, and between hosts they travel in a
JoinConfiguration file (`document`, `read_document`), never on a command line, which `ps`
shows to every user of the host.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import yaml

from bootstrap.errors import BadInput

TOKEN = r"[a-z0-9]{6}\.[a-z0-9]{16}"  # abcdef.0123456789abcdef
CA_HASH = r"sha256:[0-9a-f]{64}"
CERTIFICATE_KEY = r"[0-9a-f]{64}"
KIND = "JoinConfiguration"

_TOKEN_ANYWHERE = re.compile(rf"\b{TOKEN}\b")
# The key is 64 hex digits like any sha256, so only where it is named: --certificate-key K,
# certificateKey: K, "certificate_key": "K".
_CERT_KEY_NAMED = re.compile(rf"(certificate[-_]?key\W{{0,4}}){CERTIFICATE_KEY}\b", re.IGNORECASE)
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

    def document(self, api: str) -> str:
        """The secrets as a kubeadm JoinConfiguration, for `--join-config`: the host's own
        command adds the endpoint, node name and advertise address."""
        doc: dict[str, Any] = {
            "apiVersion": api,
            "kind": KIND,
            "discovery": {
                "bootstrapToken": {"token": self.token, "caCertHashes": [self.ca_cert_hash]}
            },
        }
        if self.certificate_key:
            doc["controlPlane"] = {"certificateKey": self.certificate_key}
        return yaml.safe_dump(doc, sort_keys=False)


def read_document(text: str, source: str) -> Join:
    """Token, CA hash and certificate key from a JoinConfiguration (kubeadm's own fields);
    a bad one is named by its field, never by its value, which may be nearly a secret."""
    try:
        docs = [d for d in yaml.safe_load_all(text) if isinstance(d, dict)]
    except yaml.YAMLError:
        raise BadInput(f"{source}: not YAML") from None
    doc = next((d for d in docs if d.get("kind") == KIND), None)
    if doc is None:
        raise BadInput(f"{source}: no document of kind {KIND}")
    bootstrap_token = _field(doc, "discovery", "bootstrapToken")
    token = _field(bootstrap_token, "token")
    hashes = _field(bootstrap_token, "caCertHashes")
    key = _field(doc, "controlPlane", "certificateKey")
    if not isinstance(token, str) or not re.fullmatch(TOKEN, token.strip()):
        raise BadInput(
            f"{source}: discovery.bootstrapToken.token is not a bootstrap token "
            "(6 and 16 lower-case letters or digits, joined by a dot)"
        )
    if (
        not isinstance(hashes, list)
        or not hashes
        or not all(isinstance(h, str) and re.fullmatch(CA_HASH, h.strip()) for h in hashes)
    ):
        raise BadInput(
            f"{source}: discovery.bootstrapToken.caCertHashes must list sha256:HEX (64 digits)"
        )
    if key is not None and not (
        isinstance(key, str) and re.fullmatch(CERTIFICATE_KEY, key.strip())
    ):
        raise BadInput(f"{source}: controlPlane.certificateKey must be 64 hex digits")
    return Join(token.strip(), hashes[0].strip(), key.strip() if key else None)


def _field(doc: Any, *keys: str) -> Any:
    for key in keys:
        if not isinstance(doc, dict):
            return None
        doc = doc.get(key)
    return doc


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
    """`text` with every bootstrap token and named certificate key replaced, for messages
    shown or logged."""
    text = _TOKEN_ANYWHERE.sub("<token>", text)
    return _CERT_KEY_NAMED.sub(r"\1<certificate-key>", text)
