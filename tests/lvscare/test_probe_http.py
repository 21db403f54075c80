"""The HTTP prober against real TLS servers on loopback: each failure gets its reason."""

from __future__ import annotations

import asyncio
import ipaddress
import socket
import ssl
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest
import trustme
from aiohttp import web

from lvscare.config import ProbeSettings
from lvscare.probe.http import HTTPProber
from lvscare.probe.thread import ThreadedProber

LOOPBACK = ipaddress.ip_address("127.0.0.1")

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    return trustme.CA()


@pytest.fixture
async def serve(ca: trustme.CA) -> AsyncIterator[Callable[[Handler], Awaitable[int]]]:
    runners: list[web.AppRunner] = []

    async def start(handler: Handler) -> int:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", handler)
        runner = web.AppRunner(app)
        await runner.setup()
        ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        ca.issue_cert("127.0.0.1").configure_cert(ctx)
        site = web.TCPSite(runner, "127.0.0.1", 0, ssl_context=ctx)
        await site.start()
        runners.append(runner)
        return int(site._server.sockets[0].getsockname()[1])  # type: ignore[union-attr]

    yield start
    for r in runners:
        await r.cleanup()


async def ok(request: web.Request) -> web.Response:
    return web.Response(text="ok")


async def test_healthy_apiserver_passes(serve: Callable[[Handler], Awaitable[int]]) -> None:
    port = await serve(ok)
    prober = HTTPProber(ProbeSettings(timeout=2))
    result = await prober.probe(LOOPBACK, port)
    await prober.close()
    assert result.healthy and result.status == 200 and result.reason is None


async def test_status_failure_carries_code_and_first_200_bytes_of_body(
    serve: Callable[[Handler], Awaitable[int]],
) -> None:
    async def sick(request: web.Request) -> web.Response:
        return web.Response(status=500, text="[-]etcd failed: reason withheld\n" + "x" * 500)

    port = await serve(sick)
    prober = HTTPProber(ProbeSettings(timeout=2))
    result = await prober.probe(LOOPBACK, port)
    await prober.close()
    assert not result.healthy and result.reason == "status" and result.status == 500
    assert result.detail.startswith("HTTP 500: [-]etcd failed")
    assert len(result.detail) == len("HTTP 500: ") + 200


async def test_extra_status_code_counts_as_healthy(
    serve: Callable[[Handler], Awaitable[int]],
) -> None:
    async def forbidden(request: web.Request) -> web.Response:
        return web.Response(status=403)

    port = await serve(forbidden)
    prober = HTTPProber(ProbeSettings(timeout=2, extra_status=frozenset({403})))
    assert (await prober.probe(LOOPBACK, port)).healthy
    await prober.close()


async def test_closed_port_is_refused() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    prober = HTTPProber(ProbeSettings(timeout=2))
    result = await prober.probe(LOOPBACK, port)
    await prober.close()
    assert result.reason == "refused" and not result.healthy


async def test_server_that_never_answers_times_out() -> None:
    server = await asyncio.start_server(lambda r, w: None, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    prober = HTTPProber(ProbeSettings(timeout=0.3))
    result = await prober.probe(LOOPBACK, port)
    await prober.close()
    server.close()
    assert result.reason == "timeout" and "0.3s" in result.detail


async def test_a_timeout_while_lvscare_itself_could_not_run_is_a_stall() -> None:
    """The node starved lvscare of CPU for most of the probe's time: the master was never
    given the chance to answer, so the timeout says nothing about it."""
    server = await asyncio.start_server(lambda r, w: None, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    prober = HTTPProber(ProbeSettings(timeout=0.6))
    asyncio.get_running_loop().call_later(0.05, time.sleep, 0.45)  # the loop cannot run
    result = await prober.probe(LOOPBACK, port)
    await prober.close()
    server.close()
    assert result.reason == "stalled" and not result.healthy and not result.definite
    assert "lvscare itself could not run" in result.detail


async def test_a_timeout_while_lvscare_was_busy_itself_is_still_a_timeout() -> None:
    """lvscare's own work (a handshake's computation on the probe loop) delays its timers
    but not the kernel's side of the connection: the master had its chance."""

    def spin(seconds: float) -> None:
        end = time.process_time() + seconds
        while time.process_time() < end:
            pass

    server = await asyncio.start_server(lambda r, w: None, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    prober = HTTPProber(ProbeSettings(timeout=0.6))
    asyncio.get_running_loop().call_later(0.05, spin, 0.45)
    result = await prober.probe(LOOPBACK, port)
    await prober.close()
    server.close()
    assert result.reason == "timeout"


async def test_a_busy_nodes_short_waits_are_not_a_stall() -> None:
    """Many short waits for the CPU (a busy node's contention) leave the timeout the
    master's: only a long stretch off the CPU is a stall."""
    server = await asyncio.start_server(lambda r, w: None, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    prober = HTTPProber(ProbeSettings(timeout=0.6))
    loop = asyncio.get_running_loop()
    for i in range(5):  # 5 x 0.1 s of the 0.6 s: most of it, in short pieces
        loop.call_later(0.05 + 0.11 * i, time.sleep, 0.1)
    result = await prober.probe(LOOPBACK, port)
    await prober.close()
    server.close()
    assert result.reason == "timeout"


async def test_apiserver_dying_during_the_tls_handshake_is_a_reset() -> None:
    """A master killed while a probe's handshake is in flight: the peer reads the ClientHello
    and closes. asyncio reports that as a ConnectionResetError without an errno."""

    async def close_after_hello(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read(4096)
        writer.close()

    server = await asyncio.start_server(close_after_hello, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    prober = HTTPProber(ProbeSettings(timeout=2))
    result = await prober.probe(LOOPBACK, port)
    await prober.close()
    server.close()
    assert result.reason == "reset" and not result.healthy, result


async def test_certificate_from_another_ca_is_a_tls_failure(
    serve: Callable[[Handler], Awaitable[int]], tmp_path: Path
) -> None:
    port = await serve(ok)
    other = tmp_path / "other-ca.pem"
    trustme.CA().cert_pem.write_to_path(str(other))
    prober = HTTPProber(ProbeSettings(timeout=2, ca_file=str(other)))
    result = await prober.probe(LOOPBACK, port)
    await prober.close()
    assert result.reason == "tls" and not result.healthy


async def test_cluster_ca_file_verifies_the_apiserver(
    serve: Callable[[Handler], Awaitable[int]], ca: trustme.CA, tmp_path: Path
) -> None:
    port = await serve(ok)
    ca_file = tmp_path / "ca.crt"
    ca.cert_pem.write_to_path(str(ca_file))
    prober = HTTPProber(ProbeSettings(timeout=2, ca_file=str(ca_file), insecure_skip_verify=False))
    assert (await prober.probe(LOOPBACK, port)).healthy
    await prober.close()


async def test_request_method_headers_and_body_are_sent(
    serve: Callable[[Handler], Awaitable[int]],
) -> None:
    seen: dict[str, str] = {}

    async def record(request: web.Request) -> web.Response:
        seen.update(method=request.method, path=request.path, auth=request.headers["X-Auth"])
        seen["body"] = await request.text()
        return web.Response(text="ok")

    port = await serve(record)
    settings = ProbeSettings(
        timeout=2, path="/livez", method="POST", headers=(("X-Auth", "t0k"),), body="{}"
    )
    prober = HTTPProber(settings)
    assert (await prober.probe(LOOPBACK, port)).healthy
    await prober.close()
    assert seen == {"method": "POST", "path": "/livez", "auth": "t0k", "body": "{}"}


async def test_real_https_probes_give_the_same_results_through_the_thread(
    serve: Callable[[Handler], Awaitable[int]],
) -> None:
    async def sick(request: web.Request) -> web.Response:
        return web.Response(status=500, text="[-]etcd failed")

    healthy, failing = await serve(ok), await serve(sick)
    prober = ThreadedProber(HTTPProber(ProbeSettings(timeout=2)))
    good, bad = await asyncio.gather(
        prober.probe(LOOPBACK, healthy, None), prober.probe(LOOPBACK, failing, None)
    )
    await prober.close()
    assert good.healthy and good.status == 200
    assert not bad.healthy and bad.reason == "status" and bad.detail == "HTTP 500: [-]etcd failed"
