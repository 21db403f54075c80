"""The real Daemon in this process, with the kernel table in memory and scripted probes.

Everything above the kernel is real: Daemon.serve(), the care loop, the observers, the
HTTP endpoint on its own thread and loop, bound to a free loopback port. The lab runs
the same paths against netlink and real masters.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

import lvscare.daemon
from lvscare.config import CareConfig, build_config
from lvscare.daemon import Daemon
from tests.support.fake_kernel import TableInMemory
from tests.support.http_get import aget
from tests.support.probers import ScriptedProber
from tests.support.wait import await_until

MASTERS = ["198.18.0.11", "198.18.0.12", "198.18.0.13"]
VS = "10.103.97.2:6443"

SetAttr = Callable[[Any, str, Any], None]  # monkeypatch.setattr, or setattr itself


@dataclass
class KernelFakes:
    """What the daemons built since `without_kernel`: one table and one prober each."""

    tables: list[TableInMemory] = field(default_factory=list)
    probers: list[ScriptedProber] = field(default_factory=list)

    def table(self) -> TableInMemory:
        self.tables.append(TableInMemory())
        return self.tables[-1]

    def prober(self, settings: object) -> ScriptedProber:
        self.probers.append(ScriptedProber())
        return self.probers[-1]


def without_kernel(patch: SetAttr, *, scripted_probes: bool = True) -> KernelFakes:
    """Daemons built from now on use a table in memory and (unless told otherwise) scripted
    probes, still on the probe thread; their start() only resolves names: no modprobe, no
    netlink. `patch` is monkeypatch.setattr, or setattr in a process of its own (bench)."""
    fakes = KernelFakes()

    async def start(self: Daemon) -> None:
        await self.care.resolve_all(strict=True)

    patch(lvscare.daemon, "NetlinkIPVS", fakes.table)
    if scripted_probes:
        patch(lvscare.daemon, "HTTPProber", fakes.prober)
    patch(lvscare.daemon.Daemon, "start", start)
    return fakes


@dataclass
class InProc:
    daemon: Daemon
    table: TableInMemory
    prober: ScriptedProber
    base: str  # http://127.0.0.1:PORT

    async def get(self, path: str) -> tuple[int, str]:
        return await aget(self.base + path)


def masters_config(interval: str = "0.2", health_address: str = "127.0.0.1:0") -> CareConfig:
    return build_config(
        vs=VS,
        rs=[f"{m}:6443" for m in MASTERS],
        interval=interval,
        watch=False,
        rt_priority=0,  # in pytest's own process: never real-time
        health_address=health_address,
    )


@contextlib.asynccontextmanager
async def running(
    patch: SetAttr,
    *,
    interval: str = "0.2",
    health_address: str = "127.0.0.1:0",
    wait_for_endpoint: bool = True,
) -> AsyncIterator[InProc]:
    """Daemon.serve() as a task; stopped with a real SIGTERM through its own handler."""
    fakes = without_kernel(patch)
    daemon = Daemon(masters_config(interval, health_address))
    task = asyncio.create_task(daemon.serve())
    try:

        def started() -> bool:  # serve() has installed its signal handlers by then
            if wait_for_endpoint:
                return daemon.telemetry.server is not None or task.done()
            return daemon.care.rounds > 0 or task.done()

        assert await await_until(started)
        if task.done():
            task.result()  # raises what serve() raised
        server = daemon.telemetry.server
        port = server.port if server is not None else 0
        yield InProc(daemon, fakes.tables[0], fakes.probers[0], f"http://127.0.0.1:{port}")
    finally:
        if not task.done():
            os.kill(os.getpid(), signal.SIGTERM)  # serve() installed its handler first thing
        await asyncio.wait_for(task, 10)
        await daemon.close()
