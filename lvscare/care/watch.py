"""One idle TCP connection per real server, so a crashed apiserver is noticed at once.

When the apiserver process dies, the kernel closes its sockets and our idle connection
sees EOF or a reset within a round trip, long before the next probe would. The watch
only *suggests* a probe: the caller probes right away, and only a failed probe drains,
so a server that merely closes idle connections (as apiservers do) drains nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable

import structlog

from lvscare.address import IPAddress

log = structlog.get_logger("lvscare.watch")

# A connection closed sooner than this after it opened was refused in effect (a server that
# closes at once): wait `retry_after` before the next one. Anything that lived longer was an
# idle close (kube-apiserver drops a connection that never starts TLS after its header
# timeout) and is replaced at once, so the watch is back before the next crash.
QUICK_CLOSE_SECONDS = 1.0


class ConnectionWatch:
    """Keeps a connection open to `addr:port`; calls `on_lost()` whenever it goes away."""

    def __init__(
        self,
        name: str,
        addr: IPAddress,
        port: int,
        on_lost: Callable[[], Awaitable[None]],
        *,
        connect_timeout: float,
        retry_after: float,
    ) -> None:
        self.name = name
        self.addr = addr
        self.port = port
        self.on_lost = on_lost
        self.connect_timeout = connect_timeout
        self.retry_after = retry_after
        self.connected = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name=f"watch {self.name}")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def _run(self) -> None:
        while True:
            try:
                async with asyncio.timeout(self.connect_timeout):
                    reader, writer = await asyncio.open_connection(str(self.addr), self.port)
            except (OSError, TimeoutError):
                # Down or unreachable: the probes deal with it; try again later.
                await asyncio.sleep(self.retry_after)
                continue
            self.connected.set()
            opened = asyncio.get_running_loop().time()
            try:
                # An apiserver never speaks first on a fresh connection: any return means
                # the far end closed (EOF) or data we did not ask for; both end the watch.
                await reader.read(1)
            except OSError:
                pass
            finally:
                self.connected.clear()
                writer.close()
            log.debug("watch connection lost", rs=self.name)
            await self.on_lost()  # first: closing our end can wait
            with contextlib.suppress(OSError):
                await writer.wait_closed()
            if asyncio.get_running_loop().time() - opened < QUICK_CLOSE_SECONDS:
                # A server that closes at once must not turn the watch into a probe storm.
                await asyncio.sleep(self.retry_after)
