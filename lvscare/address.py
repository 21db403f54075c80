"""HOST:PORT as users write it (`1.2.3.4:6443`, `[fd00::2]:6443`, `master1:6443`).

One parser and one formatter for lvscare and bootstrap alike."""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass

from lvscare.errors import BadInput

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

_HOSTNAME = re.compile(r"^(?=.{1,253}$)([A-Za-z0-9_]([A-Za-z0-9_-]{0,61}[A-Za-z0-9])?\.?)+$")


@dataclass(frozen=True)
class HostPort:
    """An address as given: `host` is an IP literal or a hostname still to resolve."""

    host: str
    port: int

    @property
    def ip(self) -> IPAddress | None:
        """The literal address, or None when `host` is a hostname."""
        try:
            return ipaddress.ip_address(self.host)
        except ValueError:
            return None

    def __str__(self) -> str:
        return format_hostport(self.host, self.port)


def format_hostport(host: str | IPAddress, port: int) -> str:
    """`ip:port`, with brackets around IPv6 as in URLs."""
    text = str(host)
    return f"[{text}]:{port}" if ":" in text else f"{text}:{port}"


def parse_port(text: str, flag: str, value: str) -> int:
    if not text.isdigit():
        raise BadInput(f"{flag} {value!r}: port {text!r} is not a number")
    port = int(text)
    if not 1 <= port <= 65535:
        raise BadInput(f"{flag} {value!r}: port {port} is out of range 1-65535")
    return port


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
            ipaddress.IPv6Address(host)
        except ValueError:
            raise BadInput(f"{flag} {value!r}: {host!r} is not an IPv6 address") from None
        return HostPort(host, parse_port(rest[1:], flag, value))
    if text.count(":") > 1:
        raise BadInput(f"{flag} {value!r}: IPv6 addresses need brackets, write [IPv6]:PORT")
    host, sep, port_text = text.rpartition(":")
    if not sep:
        raise BadInput(f"{flag} {value!r}: missing port, write HOST:PORT")
    if not host:
        raise BadInput(f"{flag} {value!r}: missing host before the port")
    port = parse_port(port_text, flag, value)
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        if not allow_hostname:
            raise BadInput(f"{flag} {value!r}: {host!r} is not an IP address") from None
        if not _HOSTNAME.match(host):
            raise BadInput(
                f"{flag} {value!r}: {host!r} is neither an IP address nor a hostname"
            ) from None
        return HostPort(host.lower().rstrip("."), port)
    return HostPort(str(ip), port)
