"""Asking one real server whether it is healthy, as kube-apiserver's /healthz is asked.

A Prober is anything with `probe(addr, port, server_name) -> ProbeResult`; the daemon
knows nothing of HTTP. Failures are sorted into a few reasons so logs and metrics can
tell a dead process (refused) from a dead path (timeout) from a sick apiserver (status).
"""

from __future__ import annotations

import asyncio
import errno
import ssl
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

import aiohttp
from yarl import URL

from lvscare.address import IPAddress, format_hostport
from lvscare.config import ProbeSettings
from lvscare.probe.lag import LagMeter

BODY_EXCERPT = 200
# How long an idle probe connection is kept: longer than any usual --interval, and short
# enough that we close it between probes before a server's own idle limit does.
KEEPALIVE_SECONDS = 30.0
# Every this many probes of a master, one on a new connection (a full TLS handshake): a kept
# connection keeps working when new ones fail (a certificate swapped for a broken one, the
# port taken by something that does not speak TLS), and new ones are what clients open. After
# any failure a master is probed on new connections only, until one succeeds: its kept
# connection never vouches for it again.
FRESH_EVERY = 10


@dataclass(frozen=True)
class ProbeResult:
    healthy: bool
    latency: float
    # refused | timeout | stalled | tls | status | reset | unreachable | error
    reason: str | None = None
    detail: str = ""
    status: int | None = None

    @property
    def definite(self) -> bool:
        """A failure that proves the master cannot serve (its process or its TLS answered,
        or nothing listens): unlike a timeout, it cannot be lvscare's own slowness."""
        return not self.healthy and self.reason in DEFINITE_REASONS

    @property
    def timed_out(self) -> bool:
        """No answer in time: the master, the path, or lvscare itself may be the slow one."""
        return not self.healthy and self.reason in ("timeout", "stalled")


DEFINITE_REASONS = frozenset({"refused", "reset", "status", "tls"})
# A timeout is blamed on lvscare, not the master, when lvscare could not run for at least
# this share of the probe's time (see LagMeter).
STALL_SHARE = 0.5


class Prober(Protocol):
    async def probe(self, addr: IPAddress, port: int, server_name: str | None) -> ProbeResult: ...

    async def close(self) -> None: ...


def make_ssl_context(settings: ProbeSettings) -> ssl.SSLContext:
    """Verify against --health-ca-file when given; else skip verification if asked (the default)."""
    if settings.ca_file:
        return ssl.create_default_context(cafile=settings.ca_file)
    if not settings.insecure_skip_verify:
        return ssl.create_default_context()
    # create_default_context() would load the system CA store (2 MiB, 30 ms) only to ignore it.
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    return ctx


def _oserror_reason(err: OSError | None) -> str:
    # By class, which OSError picks from the errno, and which also covers asyncio's
    # ConnectionResetError() without one: the peer closed during the TLS handshake (a master
    # killed while a probe is in flight).
    if isinstance(err, ConnectionRefusedError):
        return "refused"
    if isinstance(err, ConnectionResetError | ConnectionAbortedError | BrokenPipeError):
        return "reset"
    code = getattr(err, "errno", None)
    if code in (errno.ENETUNREACH, errno.EHOSTUNREACH):
        return "unreachable"
    if code == errno.ETIMEDOUT:
        return "timeout"
    return "error"


async def tcp_check(addr: IPAddress, port: int, timeout: float) -> ProbeResult | None:
    """A bare TCP connect: a failing ProbeResult if it fails, None if the port accepts.

    One round trip, no TLS: after a watch connection drops this tells a dead process
    (refused) from a live one far faster than a full HTTPS probe.
    """
    start = time.monotonic()
    try:
        async with asyncio.timeout(timeout):
            _, writer = await asyncio.open_connection(str(addr), port)
    except TimeoutError:
        return ProbeResult(
            False, time.monotonic() - start, "timeout", f"no TCP answer within {timeout:g}s"
        )
    except OSError as e:
        return ProbeResult(
            False, time.monotonic() - start, _oserror_reason(e), e.strerror or str(e)
        )
    writer.close()
    return None


class HTTPProber:
    """HTTP(S) GET (or the configured method) with the whole probe bounded by the timeout."""

    def __init__(self, settings: ProbeSettings) -> None:
        self.settings = settings
        self._ssl: ssl.SSLContext | bool = (
            make_ssl_context(settings) if settings.scheme == "https" else False
        )
        self._sessions: dict[bool, aiohttp.ClientSession] = {}  # fresh? -> session
        self._urls: dict[str, URL] = {}  # parsed once: a round costs requests, not parsing
        self._headers = dict(settings.headers)
        self._body = settings.body.encode() if settings.body else None
        self._probes: dict[str, int] = {}  # url -> probes so far
        self._suspect: set[str] = set()  # urls whose last probe failed
        self._lag = LagMeter()

    def _client(self, fresh: bool) -> aiohttp.ClientSession:
        if fresh not in self._sessions:
            # Kept alive, as Go's client keeps kubelet's: a round costs a request, not a TLS
            # handshake (the bulk of a probe's CPU, and what a busy node cannot spare). A
            # connection the master closed while idle is dropped by the pool before use; one
            # it closes as the request goes out is retried once on a fresh connection by
            # aiohttp (GET and HEAD); one that hangs is cancelled by the timeout and closed,
            # never reused. The fresh session opens a connection per probe (FRESH_EVERY).
            connector = (
                aiohttp.TCPConnector(ssl=self._ssl, limit=0, force_close=True)
                if fresh
                else aiohttp.TCPConnector(
                    ssl=self._ssl, limit=0, keepalive_timeout=KEEPALIVE_SECONDS
                )
            )
            self._sessions[fresh] = aiohttp.ClientSession(
                connector=connector,
                headers={"User-Agent": "lvscare-py"},
                skip_auto_headers=("Accept-Encoding",),  # so bodies come plain: no decoding
                auto_decompress=False,
                cookie_jar=aiohttp.DummyCookieJar(),  # a probe keeps no cookies
            )
        return self._sessions[fresh]

    async def probe(
        self, addr: IPAddress, port: int, server_name: str | None = None
    ) -> ProbeResult:
        h = self.settings
        url = f"{h.scheme}://{format_hostport(addr, port)}{h.path}"
        start = time.monotonic()
        count = self._probes[url] = self._probes.get(url, 0) + 1
        fresh = url in self._suspect or count % FRESH_EVERY == 0
        outcome = await self._probe(url, server_name, start, fresh)
        if outcome.healthy:
            self._suspect.discard(url)
        else:
            self._suspect.add(url)
        return outcome

    async def _probe(
        self, url: str, server_name: str | None, start: float, fresh: bool
    ) -> ProbeResult:
        h = self.settings

        def result(
            healthy: bool, reason: str | None = None, detail: str = "", status: int | None = None
        ) -> ProbeResult:
            return ProbeResult(healthy, time.monotonic() - start, reason, detail, status)

        with self._lag.watching():
            try:
                return await self._request(url, server_name, result, fresh)
            except TimeoutError:
                lost = self._lag.stalled_for(start)
                if lost >= h.timeout * STALL_SHARE:
                    return result(
                        False,
                        "stalled",
                        f"no answer within {h.timeout:g}s, but lvscare itself could not run"
                        f" for {lost:.2f}s of it",
                    )
                return result(False, "timeout", f"no answer within {h.timeout:g}s")

    async def _request(
        self, url: str, server_name: str | None, result: Callable[..., ProbeResult], fresh: bool
    ) -> ProbeResult:
        """One request bounded by the timeout (TimeoutError escapes), sorted into a result."""
        h = self.settings
        try:
            async with asyncio.timeout(h.timeout):
                async with self._client(fresh).request(
                    h.method,
                    self._url(url),
                    headers=self._headers,
                    data=self._body,
                    server_hostname=server_name if h.scheme == "https" else None,
                    allow_redirects=False,
                ) as resp:
                    excerpt = await resp.content.read(BODY_EXCERPT)
        except aiohttp.ClientConnectorCertificateError as e:
            return result(False, "tls", str(e.certificate_error))
        except aiohttp.ClientSSLError as e:
            return result(False, "tls", str(e))
        except aiohttp.ClientConnectorError as e:
            return result(False, _oserror_reason(e.os_error), e.os_error.strerror or str(e))
        except ssl.SSLError as e:
            return result(False, "tls", str(e))
        except aiohttp.ServerDisconnectedError:
            return result(False, "reset", "server closed the connection without answering")
        except aiohttp.ClientOSError as e:
            return result(False, _oserror_reason(e), str(e))
        except aiohttp.ClientError as e:
            return result(False, "error", str(e) or type(e).__name__)
        if h.healthy_status(resp.status):
            return result(True, status=resp.status)
        body = excerpt.decode("utf-8", "replace")
        return result(False, "status", f"HTTP {resp.status}: {body}", resp.status)

    def _url(self, url: str) -> URL:
        parsed = self._urls.get(url)
        if parsed is None:
            parsed = self._urls[url] = URL(url)
        return parsed

    async def close(self) -> None:
        for session in self._sessions.values():
            await session.close()
        self._sessions.clear()
