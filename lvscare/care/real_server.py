"""One real server as the care loop keeps it, and how its name becomes an address."""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from dataclasses import dataclass, field

from lvscare.address import HostPort, IPAddress
from lvscare.care.tracker import HealthTracker
from lvscare.errors import BadInput
from lvscare.kernel.table import Dest
from lvscare.probe.http import ProbeResult


@dataclass
class RealServer:
    """One `--rs` as given, where it currently resolves to, and how healthy it is."""

    endpoint: HostPort
    tracker: HealthTracker
    addr: IPAddress | None = None
    last: ProbeResult | None = None
    # When the probe behind `last` started: a result from a probe that started earlier is
    # older news and is dropped (a slow probe must not undo a crash seen meanwhile).
    evidence_at: float = float("-inf")

    _dest: Dest | None = field(default=None, repr=False, compare=False)

    @property
    def dest(self) -> Dest | None:
        """Made once per address: the care loop asks many times a round."""
        if self.addr is None:
            return None
        if self._dest is None or self._dest.addr is not self.addr:
            self._dest = Dest(self.addr, self.endpoint.port)
        return self._dest

    @property
    def name(self) -> str:
        return str(self.endpoint)

    @property
    def server_name(self) -> str | None:
        """TLS server name: the hostname when one was given, so its certificate can match."""
        return self.endpoint.host if self.endpoint.ip is None else None


async def resolve(ep: HostPort, version: int) -> IPAddress:
    """An address of the VIP's family for `ep`; BadInput naming it if there is none."""
    if ep.ip is not None:
        return ep.ip
    family = socket.AF_INET if version == 4 else socket.AF_INET6
    loop = asyncio.get_running_loop()
    try:
        infos = await loop.getaddrinfo(ep.host, ep.port, family=family, type=socket.SOCK_STREAM)
    except socket.gaierror as e:
        raise BadInput(f"--rs {ep}: cannot resolve {ep.host!r} ({e.strerror})") from None
    if not infos:
        raise BadInput(f"--rs {ep}: {ep.host!r} has no IPv{version} address")
    return ipaddress.ip_address(infos[0][4][0])
