"""The real Daemon in this process, with the kernel table in memory and scripted probes.

Everything above the kernel is real: Daemon.serve(), the care loop, the observers, the
HTTP endpoint on its own thread and loop, bound to a free loopback port. The lab runs
the same paths against netlink and real masters.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import os
import signal
import urllib.error
import urllib.request
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass

import pytest

from lvscare.config import build_config
from lvscare.daemon import Daemon
from lvscare.endpoint import IPAddress
from lvscare.prober import ProbeResult
from lvscare.table import Dest, DestState, Op, Service, ServiceState

MASTERS = ["198.18.0.11", "198.18.0.12", "198.18.0.13"]
VS = "10.103.97.2:6443"


def dest(ip: str) -> Dest:
    return Dest(ipaddress.ip_address(ip), 6443)


class TableInMemory:
    """Applies Ops to a dict as the kernel would; `broken` makes every call fail."""

    def __init__(self) -> None:
        self.state: ServiceState | None = None
        self.broken = False

    async def read(self, service: Service) -> ServiceState | None:
        if self.broken:
            raise OSError("netlink went away")
        if self.state is None:
            return None
        return ServiceState(self.state.scheduler, dict(self.state.dests))

    async def apply(self, service: Service, ops: Sequence[Op]) -> None:
        for op in ops:
            if op.kind == "add-service":
                self.state = ServiceState(service.scheduler)
            elif op.kind == "set-service":
                assert self.state is not None
                self.state.scheduler = service.scheduler
            elif op.kind in ("add-dest", "set-dest"):
                assert self.state is not None and op.dest is not None
                self.state.dests[op.dest] = DestState(op.weight)
            elif op.kind == "del-dest":
                assert self.state is not None and op.dest is not None
                del self.state.dests[op.dest]

    async def delete_service(self, service: Service) -> bool:
        existed, self.state = self.state is not None, None
        return existed

    async def close(self) -> None:
        pass

    def weights(self) -> dict[str, int]:
        if self.state is None:
            return {}
        return {str(d.addr): s.weight for d, s in self.state.dests.items()}


class ScriptedProber:
    """{ip: reason} fails with that reason; everything else answers 200."""

    def __init__(self) -> None:
        self.failing: dict[str, str] = {}

    async def probe(self, addr: IPAddress, port: int, server_name: str | None) -> ProbeResult:
        reason = self.failing.get(str(addr))
        if reason is not None:
            return ProbeResult(False, 0.002, reason, f"scripted {reason}")
        return ProbeResult(True, 0.001, status=200)

    async def close(self) -> None:
        pass


def get(url: str, timeout: float = 10) -> tuple[int, str]:
    """Blocking GET (usable from any thread): status and body, 5xx included."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as resp:
            return resp.status, resp.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()


async def aget(url: str) -> tuple[int, str]:
    return await asyncio.to_thread(get, url)


async def wait_until(check: object, timeout: float = 10.0) -> bool:
    """Poll an async or plain predicate until it is true."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while loop.time() < deadline:
        value = check()  # type: ignore[operator]
        if asyncio.iscoroutine(value):
            value = await value
        if value:
            return True
        await asyncio.sleep(0.05)
    return False


@dataclass
class InProc:
    daemon: Daemon
    table: TableInMemory
    prober: ScriptedProber
    base: str  # http://127.0.0.1:PORT

    async def get(self, path: str) -> tuple[int, str]:
        return await aget(self.base + path)


@contextlib.asynccontextmanager
async def running(
    monkeypatch: pytest.MonkeyPatch,
    *,
    interval: str = "0.2",
    health_address: str = "127.0.0.1:0",
    wait_for_endpoint: bool = True,
) -> AsyncIterator[InProc]:
    """Daemon.serve() as a task; stopped with a real SIGTERM through its own handler."""
    cfg = build_config(vs=VS, rs=[f"{m}:6443" for m in MASTERS], interval=interval, watch=False)
    daemon = Daemon(cfg, health_address)
    table, prober = TableInMemory(), ScriptedProber()
    daemon.care.proxier = table
    daemon.care.prober = prober
    daemon.care.hostnet = None

    async def start() -> None:  # no modules, no netlink: only what needs no kernel
        await daemon.care.resolve_all(strict=True)

    monkeypatch.setattr(daemon, "start", start)
    task = asyncio.create_task(daemon.serve())
    try:

        def started() -> bool:  # serve() has installed its signal handlers by then
            if wait_for_endpoint:
                return daemon.telemetry.server is not None or task.done()
            return daemon.care.rounds > 0 or task.done()

        assert await wait_until(started)
        if task.done():
            task.result()  # raises what serve() raised
        server = daemon.telemetry.server
        port = server.port if server is not None else 0
        yield InProc(daemon, table, prober, f"http://127.0.0.1:{port}")
    finally:
        if not task.done():
            os.kill(os.getpid(), signal.SIGTERM)  # serve() installed its handler first thing
        await asyncio.wait_for(task, 10)
        await daemon.close()
