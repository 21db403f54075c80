"""The daemon's own HTTP endpoint: /healthz, /readyz, /metrics, /status.

It runs an aiohttp server on a thread with its own event loop, so it keeps answering
when the care loop is blocked, and can then say so: /healthz schedules a no-op callback
on the care loop and fails if it has not run within PING_TIMEOUT. Its default address
(--health-address) and why that port: see config.DEFAULT_PORT.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import json
import threading
from typing import TYPE_CHECKING

import structlog
from aiohttp import web

from lvscare.address import format_hostport
from lvscare.telemetry.metrics import CONTENT_TYPE

if TYPE_CHECKING:
    from lvscare.telemetry.metrics import Metrics
    from lvscare.telemetry.status import StatusBoard

log = structlog.get_logger("lvscare.http")

# The care loop must run a callback within this long for /healthz to pass. Kept below the
# livenessProbe's timeoutSeconds so kubelet gets our 500 rather than its own timeout.
PING_TIMEOUT = 1.0


def _text(body: str, status: int = 200) -> web.Response:
    return web.Response(text=body + "\n", status=status)


class StatusServer:
    """The endpoint's thread and its own event loop."""

    def __init__(
        self,
        host: str,
        port: int,
        board: StatusBoard,
        metrics: Metrics,
        care_loop: asyncio.AbstractEventLoop,
        ping_timeout: float = PING_TIMEOUT,
    ) -> None:
        self.host = host
        self.port = port
        self.board = board
        self.metrics = metrics
        self.care_loop = care_loop
        self.ping_timeout = ping_timeout
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None

    @property
    def address(self) -> str:
        return format_hostport(self.host, self.port)

    # -- life cycle (called from the care loop's thread) ----------------------------------

    async def start(self) -> None:
        """Listen; OSError (EADDRINUSE, EADDRNOTAVAIL...) if it cannot."""
        bound: concurrent.futures.Future[int] = concurrent.futures.Future()
        self._thread = threading.Thread(
            target=self._run, args=(bound,), name="lvscare-http", daemon=True
        )
        self._thread.start()
        try:
            self.port = await asyncio.wrap_future(bound)
        except OSError:
            self._thread.join(5)
            self._thread = None
            raise

    def stop(self, timeout: float = 5.0) -> None:
        if self._thread is None:
            return
        loop, stop = self._loop, self._stop
        if loop is not None and stop is not None:
            with contextlib.suppress(RuntimeError):  # its loop already ended
                loop.call_soon_threadsafe(stop.set)
        self._thread.join(timeout)
        self._thread = None

    # -- the thread -----------------------------------------------------------------------

    def _run(self, bound: concurrent.futures.Future[int]) -> None:
        loop = asyncio.new_event_loop()
        self._loop = loop
        try:
            loop.run_until_complete(self._serve(bound))
        except Exception as e:  # never seen; a dead endpoint fails the livenessProbe anyway
            log.error("health endpoint failed", error=f"{type(e).__name__}: {e}")
            if not bound.done():
                bound.set_exception(e)
        finally:
            loop.close()

    async def _serve(self, bound: concurrent.futures.Future[int]) -> None:
        app = web.Application()
        app.router.add_get("/healthz", self.healthz)
        app.router.add_get("/readyz", self.readyz)
        app.router.add_get("/metrics", self.metrics_page)
        app.router.add_get("/status", self.status)
        runner = web.AppRunner(app, access_log=None, handle_signals=False)
        await runner.setup()
        try:
            site = web.TCPSite(runner, self.host, self.port, backlog=16)
            await site.start()
        except OSError as e:
            await runner.cleanup()
            bound.set_exception(e)
            return
        self._stop = asyncio.Event()
        bound.set_result(int(runner.addresses[0][1]))
        try:
            await self._stop.wait()
        finally:
            await runner.cleanup()

    async def care_loop_responds(self) -> bool:
        """Run a no-op on the care loop; False if it does not get to it within the timeout."""
        done: concurrent.futures.Future[None] = concurrent.futures.Future()

        def pong() -> None:
            if not done.done():
                with contextlib.suppress(concurrent.futures.InvalidStateError):  # timed out
                    done.set_result(None)

        try:
            self.care_loop.call_soon_threadsafe(pong)
        except RuntimeError:  # the care loop is closed
            return False
        try:
            await asyncio.wait_for(asyncio.wrap_future(done), self.ping_timeout)
        except TimeoutError:
            return False
        return True

    # -- handlers -------------------------------------------------------------------------

    async def healthz(self, request: web.Request) -> web.Response:
        if not await self.care_loop_responds():
            return _text(
                f"unhealthy: event loop did not respond within {self.ping_timeout:g}s", 500
            )
        problem = self.board.reconcile_problem()
        if problem is not None:
            return _text(f"unhealthy: {problem}", 500)
        return _text("ok")

    async def readyz(self, request: web.Request) -> web.Response:
        ready, reason = self.board.readiness()
        return _text(f"ok: {reason}") if ready else _text(f"not ready: {reason}", 500)

    async def metrics_page(self, request: web.Request) -> web.Response:
        return web.Response(body=self.metrics.render(), headers={"Content-Type": CONTENT_TYPE})

    async def status(self, request: web.Request) -> web.Response:
        body = json.dumps(self.board.document(), indent=2) + "\n"
        return web.Response(text=body, content_type="application/json")
