"""Checking what users type: IPs, hosts, versions, CIDRs, years, join secrets. Each failure
names the value. HOST:PORT goes through lvscare's parser, the one both programs share."""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass
from typing import Any

import yaml

from bootstrap import join
from bootstrap.defaults import SSH_PORT
from bootstrap.errors import BadInput
from lvscare.address import HostPort, parse_hostport, parse_ip_literal

# kubeadm.k8s.io/v1beta3 arrived with Kubernetes 1.22; older kubeadm cannot read our config.
MIN_MINOR = 22
# Kubernetes durations are Go time.Duration (int64 nanoseconds): about 292 years at most.
MAX_YEARS = 290

_VERSION = re.compile(r"v?([0-9]{1,9})\.([0-9]{1,9})\.([0-9]{1,9})([-+][0-9A-Za-z.+-]*)?", re.ASCII)


@dataclass(frozen=True, order=True)
class KubeVersion:
    """A Kubernetes release as kubeadm wants it: always written with the leading `v`."""

    major: int
    minor: int
    patch: int
    suffix: str = ""

    def __str__(self) -> str:
        return f"v{self.major}.{self.minor}.{self.patch}{self.suffix}"

    def at_least(self, minor: int) -> bool:
        return (self.major, self.minor) >= (1, minor)


def parse_version(value: str, flag: str = "--version") -> KubeVersion:
    match = _VERSION.fullmatch(value.strip())
    if not match:
        raise BadInput(f"{flag} {value!r}: not a Kubernetes version, write it as v1.30.4")
    version = KubeVersion(int(match[1]), int(match[2]), int(match[3]), match[4] or "")
    if version.major != 1 or version.minor < MIN_MINOR:
        raise BadInput(
            f"{flag} {value!r}: bootstrap supports Kubernetes v1.{MIN_MINOR} and later "
            "(kubeadm.k8s.io/v1beta3 and v1beta4)"
        )
    return version


def parse_ip(value: str, flag: str) -> str:
    """An IP literal in its canonical text (`fd00::2`, not `fd00:0::2`)."""
    text = value.strip()
    if text.startswith("[") and text.endswith("]"):
        text = text[1:-1]
    try:
        return str(parse_ip_literal(text))
    except ValueError:
        raise BadInput(f"{flag} {value!r}: not an IP address") from None


def parse_host(value: str, flag: str, default_port: int) -> HostPort:
    """An IP with an optional port, as sealos users write hosts: `192.168.0.2`,
    `192.168.0.2:22`, `[fd00::2]:22`, or a bare `fd00::2`."""
    text = value.strip()
    if text.count(":") == 1 or (text.startswith("[") and "]:" in text):
        given = parse_hostport(text, flag, allow_hostname=False)
        return HostPort(parse_ip(given.host, flag), given.port)
    return HostPort(parse_ip(text, flag), default_port)


def parse_master(value: str, flag: str = "--master") -> str:
    """A master's IP; a port after it (the SSH port, as sealos users write it) is ignored."""
    return parse_host(value, flag, SSH_PORT).host


def parse_cidr(value: str, flag: str) -> str:
    if "%" in value:
        raise BadInput(f"{flag} {value!r}: not a network in CIDR form (a zone index)")
    try:
        return str(ipaddress.ip_network(value.strip(), strict=True))
    except ValueError as e:
        raise BadInput(f"{flag} {value!r}: not a network in CIDR form ({e})") from None


def parse_years(value: int, flag: str = "--years") -> int:
    if not 1 <= value <= MAX_YEARS:
        raise BadInput(
            f"{flag} {value}: must be between 1 and {MAX_YEARS} "
            "(Kubernetes durations end at about 292 years)"
        )
    return value


def parse_token(value: str, flag: str = "--token") -> str:
    if not re.fullmatch(join.TOKEN, value.strip()):
        raise BadInput(
            f"{flag} {value!r}: not a bootstrap token, which looks like abcdef.0123456789abcdef"
        )
    return value.strip()


def parse_ca_hash(value: str, flag: str = "--discovery-token-ca-cert-hash") -> str:
    text = value.strip()
    if not re.fullmatch(join.CA_HASH, text):
        raise BadInput(f"{flag} {value!r}: write it as sha256: followed by 64 hex digits")
    return text


def parse_certificate_key(value: str, flag: str = "--certificate-key") -> str:
    text = value.strip()
    if not re.fullmatch(join.CERTIFICATE_KEY, text):
        raise BadInput(f"{flag} {value!r}: must be 64 hex digits")
    return text


_DNS_SUBDOMAIN = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*")
# An image repository as kubeadm's imageRepository takes it: registry[:port]/path.
_REPOSITORY = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:/@\[\]-]*", re.ASCII)


def parse_node_name(value: str, flag: str = "--node-name") -> str:
    """kubeadm's node name: a lower-case DNS subdomain."""
    text = value.strip()
    if not _DNS_SUBDOMAIN.fullmatch(text):
        raise BadInput(f"{flag} {value!r}: not a valid node name (lower-case DNS name)")
    if len(text) > 253:
        raise BadInput(f"{flag} {value!r}: longer than 253 characters")
    return text


def parse_cert_san(value: str, flag: str = "--cert-sans") -> str:
    """An extra name of the apiserver certificate, as kubeadm's certSANs check it: an IP,
    a DNS name or a wildcard (`*.example.com`); names in lower case."""
    text = value.strip()
    try:
        return str(parse_ip_literal(text))
    except ValueError:
        pass
    name = text.lower()
    bare = name[2:] if name.startswith("*.") else name
    if len(bare) > 253 or not _DNS_SUBDOMAIN.fullmatch(bare):
        raise BadInput(f"{flag} {value!r}: not an IP address or a DNS name")
    return name


def parse_repository(value: str, flag: str = "--repo") -> str:
    text = value.strip()
    if not _REPOSITORY.fullmatch(text):
        raise BadInput(f"{flag} {value!r}: not an image repository, e.g. registry.k8s.io")
    return text


def parse_manifest(text: str, where: str) -> list[dict[str, Any]]:
    """A Kubernetes manifest (YAML or JSON, one document or more): its objects. BadInput
    naming `where` if it is not YAML or a document lacks apiVersion and kind: kubectl would
    refuse it on a host, after the hosts were changed."""
    try:
        docs = [d for d in yaml.safe_load_all(text) if d is not None]
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        at = f" at line {mark.line + 1}" if mark is not None else ""
        raise BadInput(f"{where}: not YAML{at}") from None
    if not docs:
        raise BadInput(f"{where}: not a Kubernetes manifest: it holds no document")
    if not all(isinstance(d, dict) and "apiVersion" in d and "kind" in d for d in docs):
        raise BadInput(
            f"{where}: not a Kubernetes manifest: a document without apiVersion and kind"
        )
    return docs
