"""Probes answered from a script instead of a network."""

from __future__ import annotations

from lvscare.address import IPAddress
from lvscare.probe.http import ProbeResult


class ScriptedProber:
    """{ip: reason} fails with that reason; everything else answers 200."""

    def __init__(self) -> None:
        self.failing: dict[str, str] = {}

    def fail(self, ips: list[str] | str, reason: str = "refused") -> None:
        for ip in [ips] if isinstance(ips, str) else ips:
            self.failing[ip] = reason

    async def probe(self, addr: IPAddress, port: int, server_name: str | None) -> ProbeResult:
        reason = self.failing.get(str(addr))
        if reason is not None:
            return ProbeResult(False, 0.002, reason, f"scripted {reason}")
        return ProbeResult(True, 0.001, status=200)

    async def close(self) -> None:
        pass
