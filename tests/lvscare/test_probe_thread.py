"""Probes on a loop of their own: the daemon's loop keeps running while a probe computes."""

from __future__ import annotations

import asyncio
import ipaddress
import threading
import time

import pytest

from lvscare.address import IPAddress
from lvscare.probe.http import ProbeResult
from lvscare.probe.thread import ThreadedProber

LOOPBACK = ipaddress.ip_address("127.0.0.1")


class BlockingProber:
    """Holds its loop's thread the way a TLS handshake does, and says where it ran."""

    def __init__(self, hold: float) -> None:
        self.hold = hold
        self.threads: list[threading.Thread] = []
        self.cancelled = threading.Event()
        self.closed = False

    async def probe(self, addr: IPAddress, port: int, server_name: str | None) -> ProbeResult:
        self.threads.append(threading.current_thread())
        time.sleep(self.hold)  # no await: the loop that runs this runs nothing else
        return ProbeResult(True, self.hold)

    async def close(self) -> None:
        self.closed = True


class ForeverProber(BlockingProber):
    async def probe(self, addr: IPAddress, port: int, server_name: str | None) -> ProbeResult:
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            self.cancelled.set()
            raise
        raise AssertionError("never answers")


async def test_a_probe_holding_its_loop_does_not_hold_the_callers_loop() -> None:
    inner = BlockingProber(hold=0.5)
    prober = ThreadedProber(inner)
    order: list[str] = []

    async def meanwhile() -> None:
        for _ in range(5):
            await asyncio.sleep(0.01)
        order.append("caller's loop ran")

    async def probe() -> None:
        await prober.probe(LOOPBACK, 6443, None)
        order.append("probe returned")

    await asyncio.gather(probe(), meanwhile())
    await prober.close()
    assert order == ["caller's loop ran", "probe returned"]
    assert inner.threads == [prober.thread] and prober.thread is not threading.current_thread()


async def test_cancelling_the_caller_cancels_the_probe_on_its_loop() -> None:
    inner = ForeverProber(hold=0)
    prober = ThreadedProber(inner)
    task = asyncio.create_task(prober.probe(LOOPBACK, 6443, None))
    await asyncio.sleep(0.05)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    await prober.close()
    assert inner.cancelled.is_set()


async def test_close_ends_probes_in_flight_then_the_inner_prober_then_the_thread() -> None:
    inner = ForeverProber(hold=0)
    prober = ThreadedProber(inner)
    in_flight = asyncio.create_task(prober.probe(LOOPBACK, 6443, None))
    await asyncio.sleep(0.05)
    await prober.close()
    await prober.close()  # twice is fine
    assert inner.closed and inner.cancelled.is_set() and not prober.thread.is_alive()
    with pytest.raises(asyncio.CancelledError):
        await in_flight
