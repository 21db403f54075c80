"""The daemon's own HTTP endpoint: /healthz, /readyz, /metrics, /status.

It runs on a thread with its own event loop, so it keeps answering when the care loop is
blocked, and can then say so: /healthz schedules a no-op callback on the care loop and
fails if it has not run within PING_TIMEOUT. Its default address (--health-address) and
why that port: see config.DEFAULT_PORT.

Four GET paths for kubelet's probes and Prometheus need one request per connection, not a
web framework: the server is asyncio's, and `http_request` reads a request head bounded in
size and time (aiohttp.web cost the daemon 2 MiB and 30 ms of start-up for this).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import json
import threading
from collections.abc import Awaitable, Callable
from http import HTTPStatus
from typing import TYPE_CHECKING

import structlog

from lvscare.address import format_hostport
from lvscare.telemetry.metrics import CONTENT_TYPE

if TYPE_CHECKING:
    from lvscare.telemetry.metrics import Metrics
    from lvscare.telemetry.status import StatusBoard

log = structlog.get_logger("lvscare.http")

# The care loop must run a callback within this long for /healthz to pass. Kept below the
# livenessProbe's timeoutSeconds so kubelet gets our 500 rather than its own timeout.
PING_TIMEOUT = 1.0
HEAD_LIMIT = 8192  # bytes of request line + headers; more is 431
HEAD_TIMEOUT = 10.0  # seconds to send them; a client that dawdles is dropped
MAX_CONNECTIONS = 64  # at once; more are closed unanswered
TEXT = "text/plain; charset=utf-8"


class Response:
    def __init__(self, body: bytes, status: int = 200, content_type: str = TEXT) -> None:
        self.body, self.status, self.content_type = body, status, content_type

    def encode(self, with_body: bool = True) -> bytes:
        head = (
            f"HTTP/1.1 {self.status} {HTTPStatus(self.status).phrase}\r\n"
            f"Content-Type: {self.content_type}\r\n"
            f"Content-Length: {len(self.body)}\r\n"
            + ("Allow: GET, HEAD\r\n" if self.status == 405 else "")
            + "Connection: close\r\n\r\n"
        )
        return head.encode("ascii") + (self.body if with_body else b"")


def _text(body: str, status: int = 200) -> Response:
    return Response((body + "\n").encode(), status)


def _error(status: int) -> Response:
    return Response(f"{status}: {HTTPStatus(status).phrase}".encode(), status)


async def http_request(reader: asyncio.StreamReader) -> tuple[str, str] | int:
    """(method, path) of the request on `reader`, or the status that refuses it. The body of
    a request, if any, is never read: every path is a GET, and the connection then closes."""
    try:
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), HEAD_TIMEOUT)
    except asyncio.LimitOverrunError:
        return 431
    except (asyncio.IncompleteReadError, TimeoutError, ConnectionError):
        return 0  # gone, or never finished: nobody to answer
    parts = head.split(b"\r\n", 1)[0].decode("latin-1").split(" ")
    if len(parts) != 3 or not parts[2].startswith("HTTP/1.") or not parts[1].startswith("/"):
        return 400
    return parts[0], parts[1].split("?", 1)[0]


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
        self._open: set[asyncio.Task[None]] = set()  # connections being answered
        self._routes: dict[str, Callable[[], Awaitable[Response]]] = {
            "/healthz": self.healthz,
            "/readyz": self.readyz,
            "/metrics": self.metrics_page,
            "/status": self.status,
        }

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
        try:
            server = await asyncio.start_server(
                self._connection, self.host, self.port, backlog=16, limit=HEAD_LIMIT
            )
        except OSError as e:
            bound.set_exception(e)
            return
        self._stop = asyncio.Event()
        bound.set_result(int(server.sockets[0].getsockname()[1]))
        try:
            await self._stop.wait()
        finally:
            server.close()
            for task in list(self._open):
                task.cancel()
            await asyncio.gather(*self._open, return_exceptions=True)

    async def _connection(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        """One request, one answer, then close (HTTP/1.1 with `Connection: close`)."""
        task = asyncio.current_task()
        assert task is not None
        if len(self._open) >= MAX_CONNECTIONS:
            writer.close()
            return
        self._open.add(task)
        try:
            request = await http_request(reader)
            if request == 0:
                return
            method, path = ("GET", "") if isinstance(request, int) else request
            route = self._routes.get(path)
            if isinstance(request, int):
                response = _error(request)
            elif route is None:
                response = _error(404)
            elif method not in ("GET", "HEAD"):
                response = _error(405)
            else:
                response = await route()
            writer.write(response.encode(with_body=method != "HEAD"))
            await asyncio.wait_for(writer.drain(), HEAD_TIMEOUT)
        except (ConnectionError, TimeoutError):
            pass  # the client went away or stopped reading: nothing more to say
        finally:
            self._open.discard(task)
            writer.close()

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

    async def healthz(self) -> Response:
        if not await self.care_loop_responds():
            return _text(
                f"unhealthy: event loop did not respond within {self.ping_timeout:g}s", 500
            )
        problem = self.board.reconcile_problem()
        if problem is not None:
            return _text(f"unhealthy: {problem}", 500)
        return _text("ok")

    async def readyz(self) -> Response:
        ready, reason = self.board.readiness()
        return _text(f"ok: {reason}") if ready else _text(f"not ready: {reason}", 500)

    async def metrics_page(self) -> Response:
        return Response(self.metrics.render(), content_type=CONTENT_TYPE)

    async def status(self) -> Response:
        body = json.dumps(self.board.document(), indent=2) + "\n"
        return Response(body.encode(), content_type="application/json; charset=utf-8")
