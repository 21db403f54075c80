"""The endpoint's HTTP handling with raw sockets: what kubelet, Prometheus and a careless or
hostile client send to the real daemon's /healthz port."""

from __future__ import annotations

import asyncio
import socket

import pytest

from lvscare.telemetry import server
from tests.support.inproc_daemon import InProc, running


def port_of(d: InProc) -> int:
    return int(d.base.rsplit(":", 1)[1])


def exchange(port: int, data: bytes, timeout: float = 5.0) -> bytes:
    """Send `data`, read until the server closes (blocking; run it in a thread)."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        s.sendall(data)
        out = b""
        while chunk := s.recv(65536):
            out += chunk
        return out


async def ask(d: InProc, data: bytes) -> bytes:
    return await asyncio.to_thread(exchange, port_of(d), data)


async def unanswered(d: InProc, data: bytes) -> bool:
    """The server closed without a word (an orderly close or, as `data` went unread, a reset)."""
    try:
        return await ask(d, data) == b""
    except ConnectionResetError:
        return True


def status_line(answer: bytes) -> str:
    return answer.split(b"\r\n", 1)[0].decode()


async def test_head_gets_the_status_and_headers_without_a_body(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    async with running(monkeypatch.setattr) as d:
        answer = await ask(d, b"HEAD /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        head, _, body = answer.partition(b"\r\n\r\n")
        assert status_line(answer) == "HTTP/1.1 200 OK"
        assert b"Content-Length: 3" in head and b"Connection: close" in head
        assert body == b""


async def test_a_query_string_and_http_1_0_are_fine(monkeypatch: pytest.MonkeyPatch) -> None:
    async with running(monkeypatch.setattr) as d:
        answer = await ask(d, b"GET /healthz?verbose=1 HTTP/1.0\r\n\r\n")
        assert status_line(answer) == "HTTP/1.1 200 OK" and answer.endswith(b"\r\n\r\nok\n")


async def test_other_methods_get_405_with_the_allowed_ones(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    async with running(monkeypatch.setattr) as d:
        answer = await ask(d, b"POST /metrics HTTP/1.1\r\nContent-Length: 2\r\n\r\nhi")
        assert status_line(answer) == "HTTP/1.1 405 Method Not Allowed"
        assert b"Allow: GET, HEAD\r\n" in answer
        answer = await ask(d, b"DELETE /nothing HTTP/1.1\r\n\r\n")
        assert status_line(answer) == "HTTP/1.1 404 Not Found"


@pytest.mark.parametrize(
    "request_line",
    [b"GET /healthz", b"GET healthz HTTP/1.1", b"\x16\x03\x01\x02\x00", b"GET / SPDY/3 extra"],
)
async def test_a_request_line_that_is_not_http_gets_400(
    monkeypatch: pytest.MonkeyPatch, request_line: bytes
) -> None:
    async with running(monkeypatch.setattr) as d:
        answer = await ask(d, request_line + b"\r\n\r\n")
        assert status_line(answer) == "HTTP/1.1 400 Bad Request"


async def test_an_oversized_request_head_gets_431_and_the_endpoint_keeps_serving(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    async with running(monkeypatch.setattr) as d:
        big = b"GET /healthz HTTP/1.1\r\nX-Pad: " + b"a" * (server.HEAD_LIMIT + 10) + b"\r\n\r\n"
        answer = await ask(d, big)
        assert status_line(answer) == "HTTP/1.1 431 Request Header Fields Too Large"
        assert (await d.get("/healthz"))[0] == 200


async def test_a_client_that_never_finishes_its_request_is_dropped_and_others_are_served(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(server, "HEAD_TIMEOUT", 0.3)
    async with running(monkeypatch.setattr) as d:
        slow = socket.create_connection(("127.0.0.1", port_of(d)), timeout=5)
        try:
            slow.sendall(b"GET /healthz HTTP/1.1\r\nHost")  # and then nothing
            assert await d.get("/healthz") == (200, "ok\n")  # served meanwhile
            assert await asyncio.to_thread(slow.recv, 100) == b""  # closed, unanswered
        finally:
            slow.close()


async def test_connections_over_the_cap_are_closed_unanswered(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(server, "MAX_CONNECTIONS", 3)
    monkeypatch.setattr(server, "HEAD_TIMEOUT", 2.0)
    async with running(monkeypatch.setattr) as d:
        idle = [socket.create_connection(("127.0.0.1", port_of(d)), timeout=5) for _ in range(3)]
        try:
            await asyncio.sleep(0.2)  # the server has taken all three
            assert await unanswered(d, b"GET /healthz HTTP/1.1\r\n\r\n")
            for s in idle:
                assert await asyncio.to_thread(s.recv, 100) == b""  # dropped at the timeout
            assert await d.get("/healthz") == (200, "ok\n")
        finally:
            for s in idle:
                s.close()
