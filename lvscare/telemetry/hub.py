"""Everything the daemon tells the outside: status board, metrics, systemd, HTTP endpoint.

The daemon makes one Telemetry as its Care is built (its observers go to the Care), starts
it before the care loop and stops it on the way out; the rest is hooks the loop calls.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Sequence
from typing import TYPE_CHECKING

import structlog

from lvscare.telemetry.metrics import Metrics
from lvscare.telemetry.sdnotify import ReadyNotifier
from lvscare.telemetry.server import StatusServer
from lvscare.telemetry.status import StatusBoard

if TYPE_CHECKING:
    from lvscare.care.loop import Care
    from lvscare.care.observer import Observer
    from lvscare.care.real_server import RealServer
    from lvscare.care.tracker import State
    from lvscare.kernel.table import Op
    from lvscare.probe.http import ProbeResult

log = structlog.get_logger("lvscare.telemetry")

# A port someone else holds must not stop the care loop (as kube-proxy's healthz server):
# the error is logged once and binding is tried again this often.
LISTEN_RETRY_SECONDS = 5.0


class Guarded:
    """An observer whose mistakes are logged, never raised into the care loop."""

    def __init__(self, inner: Observer) -> None:
        self.inner = inner
        self.name = type(inner).__name__

    def _failed(self, hook: str, e: Exception) -> None:
        why = f"{type(e).__name__}: {e}"
        log.error("observer failed", observer=self.name, hook=hook, error=why)

    def probed(self, rs: RealServer, result: ProbeResult) -> None:
        try:
            self.inner.probed(rs, result)
        except Exception as e:
            self._failed("probed", e)

    def transitioned(self, rs: RealServer, old: State, new: State) -> None:
        try:
            self.inner.transitioned(rs, old, new)
        except Exception as e:
            self._failed("transitioned", e)

    def reconciled(self, ops: Sequence[Op], error: BaseException | None, seconds: float) -> None:
        try:
            self.inner.reconciled(ops, error, seconds)
        except Exception as e:
            self._failed("reconciled", e)

    def watch_lost(self, rs: RealServer) -> None:
        try:
            self.inner.watch_lost(rs)
        except Exception as e:
            self._failed("watch_lost", e)

    def stalled(self) -> None:
        try:
            self.inner.stalled()
        except Exception as e:
            self._failed("stalled", e)


class Telemetry:
    """The observers of one Care, and the endpoint that serves what they know.

    The endpoint listens on the config's status address; None means no HTTP.
    """

    def __init__(self, care: Care) -> None:
        self.care = care
        self.address = care.config.status_address
        self.board = StatusBoard(care)
        self.metrics = Metrics(care)
        self.notifier = ReadyNotifier(care)
        self.observers: tuple[Observer, ...] = tuple(
            Guarded(o) for o in (self.board, self.metrics, self.notifier)
        )
        self.server: StatusServer | None = None
        self.started = False
        self._retry: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self.started = True
        self.board.started_at = self.care.clock()
        if self.address is not None and not await self._listen(quiet=False):
            self._retry = asyncio.create_task(self._keep_trying())

    async def _listen(self, *, quiet: bool) -> bool:
        assert self.address is not None
        host, port = self.address
        server = StatusServer(host, port, self.board, self.metrics, asyncio.get_running_loop())
        try:
            await server.start()
        except OSError as e:
            if not quiet:
                log.error(
                    "health endpoint cannot listen; the care loop runs on, retrying",
                    address=server.address,
                    error=e.strerror or str(e),
                    retry_seconds=LISTEN_RETRY_SECONDS,
                )
            return False
        self.server = server
        log.info("health endpoint listening", address=f"http://{server.address}",
                 paths=["/healthz", "/readyz", "/metrics", "/status"])  # fmt: skip
        return True

    async def _keep_trying(self) -> None:
        while not await self._listen(quiet=True):
            await asyncio.sleep(LISTEN_RETRY_SECONDS)

    async def stop(self) -> None:
        if not self.started:
            return
        self.started = False
        self.notifier.stopping()
        if self._retry is not None:
            self._retry.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._retry
            self._retry = None
        if self.server is not None:
            server, self.server = self.server, None
            await asyncio.to_thread(server.stop)
