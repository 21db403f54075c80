"""Health probes on an event loop of their own, in one thread, beside the daemon's loop.

asyncio computes a TLS handshake synchronously inside the loop that owns the connection:
while OpenSSL does its key exchange, that loop runs nothing else. On the daemon's loop this
put every round's handshakes between a crashed master's closed watch connection and its
drain (sampled in the emulated lab: busy stretches of hundreds of milliseconds, mostly
`do_handshake`). On a loop of their own they only take CPU: OpenSSL releases the GIL, so the
daemon's loop reacts meanwhile, and Python code between them gives way every switch interval
(5 ms).

The inner prober (its aiohttp session, its connections) lives entirely on the probe loop.
"""

from __future__ import annotations

import asyncio
import threading

from lvscare.address import IPAddress
from lvscare.probe.http import Prober, ProbeResult


class ThreadedProber:
    """A Prober that runs `inner`'s probes on a private loop in a daemon thread."""

    def __init__(self, inner: Prober, name: str = "lvscare-probes") -> None:
        self.inner = inner
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name=name, daemon=True)
        self._thread.start()

    @property
    def thread(self) -> threading.Thread:
        return self._thread

    async def probe(self, addr: IPAddress, port: int, server_name: str | None) -> ProbeResult:
        # Cancelling the awaiting task (a stop, a timeout) cancels the probe on its loop too.
        done = asyncio.run_coroutine_threadsafe(
            self.inner.probe(addr, port, server_name), self._loop
        )
        return await asyncio.wrap_future(done)

    async def close(self) -> None:
        """Close the inner prober on its loop, then stop and join the thread."""
        if self._loop.is_closed():
            return
        try:
            shutdown = asyncio.run_coroutine_threadsafe(self._shutdown(), self._loop)
            await asyncio.wrap_future(shutdown)
        finally:
            self._loop.call_soon_threadsafe(self._loop.stop)
            await asyncio.to_thread(self._thread.join)
            self._loop.close()

    async def _shutdown(self) -> None:
        """On the probe loop: no probe left half-done, then the inner prober's own close."""
        current = asyncio.current_task()
        pending = [t for t in asyncio.all_tasks() if t is not current]
        for task in pending:
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)
        await self.inner.close()
