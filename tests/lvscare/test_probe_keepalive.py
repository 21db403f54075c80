"""The prober keeps one TLS connection per master alive between rounds (issue 16).

Against a real TLS server on loopback that numbers each connection and each request on it,
and treats the n-th request of a connection as the test says: answer it, answer it and
close, close without answering, or never answer.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import ssl
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field

import pytest
import trustme

from lvscare.config import ProbeSettings
from lvscare.probe.http import HTTPProber

LOOPBACK = ipaddress.ip_address("127.0.0.1")
OK = b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 2\r\n\r\nok"

# What a connection does with its n-th request (1-based): answer | answer-close | close | hang
Policy = Callable[[int], str]


@dataclass
class Master:
    """A TLS server that records (connection number, request number) for each request."""

    policy: Policy
    port: int = 0
    requests: list[tuple[int, int]] = field(default_factory=list)
    connections: int = 0

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        conn = self.connections
        try:
            for n in range(1, 100):
                await reader.readuntil(b"\r\n\r\n")
                self.requests.append((conn, n))
                action = self.policy(n)
                if action == "hang":
                    await reader.read()  # until the client gives up and closes
                    return
                if action == "close":
                    return
                writer.write(OK)
                await writer.drain()
                if action == "answer-close":
                    return
        except (asyncio.IncompleteReadError, ConnectionError):
            return
        finally:
            writer.close()
            with contextlib.suppress(ConnectionError, ssl.SSLError):
                await writer.wait_closed()


StartMaster = Callable[[Policy], Awaitable["Master"]]


@pytest.fixture
async def master() -> AsyncIterator[StartMaster]:
    ca = trustme.CA()
    servers: list[asyncio.Server] = []

    async def start(policy: Policy) -> Master:
        ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        ca.issue_cert("127.0.0.1").configure_cert(ctx)
        m = Master(policy)
        server = await asyncio.start_server(m.handle, "127.0.0.1", 0, ssl=ctx)
        servers.append(server)
        m.port = server.sockets[0].getsockname()[1]
        return m

    yield start
    for s in servers:
        s.close()


async def probe_times(prober: HTTPProber, m: Master, n: int, gap: float = 0.05) -> list[str]:
    """n probes a little apart: each one's reason, or "ok"."""
    out = []
    for _ in range(n):
        result = await prober.probe(LOOPBACK, m.port)
        out.append("ok" if result.healthy else str(result.reason))
        await asyncio.sleep(gap)
    return out


async def test_rounds_reuse_one_kept_alive_connection(master: StartMaster) -> None:
    m = await master(lambda n: "answer")
    prober = HTTPProber(ProbeSettings(timeout=2))
    assert await probe_times(prober, m, 4) == ["ok"] * 4
    await prober.close()
    assert m.requests == [(1, 1), (1, 2), (1, 3), (1, 4)]


async def test_a_connection_the_master_closed_after_answering_is_replaced_at_once(
    master: StartMaster,
) -> None:
    """A master that drops idle connections (a restart, an idle limit): the next probe gets a
    fresh connection and counts the master healthy."""
    m = await master(lambda n: "answer-close")
    prober = HTTPProber(ProbeSettings(timeout=2))
    assert await probe_times(prober, m, 3) == ["ok"] * 3
    await prober.close()
    assert m.requests == [(1, 1), (2, 1), (3, 1)]


async def test_a_kept_connection_closed_as_the_request_arrives_is_probed_again_on_a_fresh_one(
    master: StartMaster,
) -> None:
    """The race of an idle close with our request: the master reads it and closes without an
    answer. The same probe asks again on a new connection at once; no failure is reported."""
    m = await master(lambda n: "answer" if n == 1 else "close")
    prober = HTTPProber(ProbeSettings(timeout=2))
    assert await probe_times(prober, m, 3) == ["ok"] * 3
    await prober.close()
    assert m.requests == [(1, 1), (1, 2), (2, 1), (2, 2), (3, 1)]


async def test_a_kept_connection_that_hangs_fails_by_the_timeout_and_is_never_reused(
    master: StartMaster,
) -> None:
    m = await master(lambda n: "answer" if n == 1 else "hang")
    prober = HTTPProber(ProbeSettings(timeout=0.5))
    assert await probe_times(prober, m, 3) == ["ok", "timeout", "ok"]
    await prober.close()
    assert m.requests == [(1, 1), (1, 2), (2, 1)]


async def test_the_rest_of_a_long_error_body_is_never_taken_for_the_next_answer() -> None:
    """Only the first 200 bytes of a failure's body are read; a connection with the rest
    still unread is closed, not kept, so the next probe reads its own answer."""
    body = b"[-]etcd failed\n" + b"x" * (1 << 20)
    sick = b"HTTP/1.1 500 Internal Server Error\r\nContent-Length: %d\r\n\r\n" % len(body)
    answers = iter([sick + body, OK, OK])

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                await reader.readuntil(b"\r\n\r\n")
                writer.write(next(answers))
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError, StopIteration):
            pass
        finally:
            writer.close()

    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    trustme.CA().issue_cert("127.0.0.1").configure_cert(ctx)
    server = await asyncio.start_server(handle, "127.0.0.1", 0, ssl=ctx)
    m = Master(lambda n: "answer", port=server.sockets[0].getsockname()[1])
    prober = HTTPProber(ProbeSettings(timeout=2))
    assert await probe_times(prober, m, 2) == ["status", "ok"]
    await prober.close()
    server.close()


async def test_every_tenth_probe_opens_a_new_connection_so_a_broken_tls_for_new_clients_shows() -> (
    None
):
    """The kept connection still works, but a new one meets plain text where TLS belongs (a
    port taken over, a broken certificate): the tenth probe, on a new connection, says so, and
    from then on only a new connection may vouch for the master: it stays failed."""
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    trustme.CA().issue_cert("127.0.0.1").configure_cert(ctx)
    connections = 0

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal connections
        connections += 1
        try:
            if connections > 1:
                await reader.read(4096)  # the ClientHello
                writer.write(b"HTTP/1.1 400 Bad Request\r\nConnection: close\r\n\r\n")
                return
            await writer.start_tls(ctx)
            while True:
                await reader.readuntil(b"\r\n\r\n")
                writer.write(OK)
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError, ssl.SSLError):
            pass
        finally:
            writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    m = Master(lambda n: "answer", port=server.sockets[0].getsockname()[1])
    prober = HTTPProber(ProbeSettings(timeout=2))
    got = await probe_times(prober, m, 11, gap=0.01)
    await prober.close()
    server.close()
    assert got == ["ok"] * 9 + ["tls", "tls"]
    assert connections == 3
