"""HOST:PORT as users write it (`1.2.3.4:6443`, `[fd00::2]:6443`, `master1:6443`).

One parser and one formatter for lvscare and bootstrap alike."""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass
from functools import cached_property

from lvscare.errors import BadInput

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

# One label of a hostname; the name is checked label by label (a single pattern for the
# whole name backtracks exponentially on a long label followed by a bad character).
_LABEL = re.compile(r"[A-Za-z0-9_]([A-Za-z0-9_-]{0,61}[A-Za-z0-9])?", re.ASCII)
# A last label the resolver's inet_aton takes as a number: `123` is 0.0.0.123 and
# `010.1.1.1` is 8.1.1.1 there, so such a name is a mistyped IP, never a hostname.
_NUMERIC = re.compile(r"[0-9]+|0[xX][0-9A-Fa-f]*", re.ASCII)
_DIGITS = re.compile(r"[0-9]+", re.ASCII)


def is_hostname(text: str) -> bool:
    """A DNS name (labels of letters, digits, `-` and `_`, an optional final dot)."""
    name = text[:-1] if text.endswith(".") else text
    if not 1 <= len(name) <= 253:
        return False
    labels = name.split(".")
    return all(_LABEL.fullmatch(label) for label in labels) and not _NUMERIC.fullmatch(labels[-1])


def parse_ip_literal(text: str) -> IPAddress:
    """An IP address without a zone (`fe80::1%eth0` names no address IPVS can use)."""
    if "%" in text:
        raise ValueError(f"{text!r} has a zone index")
    return ipaddress.ip_address(text)


@dataclass(frozen=True)
class HostPort:
    """An address as given: `host` is an IP literal or a hostname still to resolve."""

    host: str
    port: int

    # Cached: the care loop asks every round, several times (the value never changes).
    @cached_property
    def ip(self) -> IPAddress | None:
        """The literal address, or None when `host` is a hostname."""
        try:
            return ipaddress.ip_address(self.host)
        except ValueError:
            return None

    def __str__(self) -> str:
        return self._text

    @cached_property
    def _text(self) -> str:
        return format_hostport(self.host, self.port)


def format_hostport(host: str | IPAddress, port: int) -> str:
    """`ip:port`, with brackets around IPv6 as in URLs."""
    text = str(host)
    return f"[{text}]:{port}" if ":" in text else f"{text}:{port}"


def parse_port(text: str, flag: str, value: str) -> int:
    if not _DIGITS.fullmatch(text):
        raise BadInput(f"{flag} {value!r}: port {text!r} is not a number")
    significant = text.lstrip("0") or "0"  # int() refuses texts of over 4300 digits
    if len(significant) > 5 or not 1 <= int(significant) <= 65535:
        raise BadInput(f"{flag} {value!r}: port {significant} is out of range 1-65535")
    return int(significant)


def parse_hostport(value: str, flag: str, *, allow_hostname: bool = True) -> HostPort:
    """Parse `1.2.3.4:6443`, `[fd00::2]:6443` or `master1:6443`; the port is required."""
    text = value.strip()
    if not text:
        raise BadInput(f"{flag} {value!r}: empty address")
    if text.startswith("["):
        host, sep, rest = text[1:].partition("]")
        if not sep:
            raise BadInput(f"{flag} {value!r}: missing ']' after the IPv6 address")
        if not rest.startswith(":") or len(rest) == 1:
            raise BadInput(f"{flag} {value!r}: missing port, write [IPv6]:PORT")
        try:
            ip6 = parse_ip_literal(host)
            if ip6.version != 6:
                raise ValueError(host)
        except ValueError:
            raise BadInput(f"{flag} {value!r}: {host!r} is not an IPv6 address") from None
        return HostPort(str(ip6), parse_port(rest[1:], flag, value))
    if text.count(":") > 1:
        raise BadInput(f"{flag} {value!r}: IPv6 addresses need brackets, write [IPv6]:PORT")
    host, sep, port_text = text.rpartition(":")
    if not sep:
        raise BadInput(f"{flag} {value!r}: missing port, write HOST:PORT")
    if not host:
        raise BadInput(f"{flag} {value!r}: missing host before the port")
    port = parse_port(port_text, flag, value)
    try:
        ip = parse_ip_literal(host)
    except ValueError:
        if not allow_hostname:
            raise BadInput(f"{flag} {value!r}: {host!r} is not an IP address") from None
        if not is_hostname(host):
            raise BadInput(
                f"{flag} {value!r}: {host!r} is neither an IP address nor a hostname"
            ) from None
        return HostPort(host.lower().rstrip("."), port)
    return HostPort(str(ip), port)
