"""The busy-node benchmark's TLS load: kubelet-like HTTPS traffic through the VIP.

A separate process, started with ``python -S`` (stdlib only, like vip_client.py). It keeps
--conns kept-alive TLS connections to the VIP, each sending ``GET /healthz`` every --period
seconds and opening a new connection when one breaks (as kubelet and kube-proxy keep theirs),
plus --fresh new TLS connections a second, each one handshake and one ``GET /healthz`` with
``Connection: close``. Certificates are verified against --ca, with the VIP as the name (the
lab's master certificates carry it), so the masters and this node do the full TLS work of a
kubeadm cluster's clients (RSA-2048 certificates).

One JSON line per request, written when it ends::

    {"t0": start (wall clock), "t1": end, "kind": "keep" | "fresh",
     "out": "ok" | "refused" | "reset" | "timeout" | "tls" | "status <code>" | ...,
     "new": true when this request opened its connection (a handshake)}

SIGUSR1 pauses (no new requests; running ones finish; kept-alive connections are closed at
the next turn after it), SIGUSR2 resumes, SIGTERM ends.
"""

from __future__ import annotations

import argparse
import errno
import json
import signal
import socket
import ssl
import sys
import threading
import time
from types import FrameType
from typing import IO

REASONS = {
    errno.ECONNREFUSED: "refused",
    errno.ECONNRESET: "reset",
    errno.ETIMEDOUT: "timeout",
    errno.EHOSTUNREACH: "unreachable",
    errno.ENETUNREACH: "unreachable",
    errno.EPIPE: "reset",
}


class Failed(Exception):
    """One request failed; str() is the one word logged."""


def reason(exc: BaseException) -> str:
    if isinstance(exc, Failed):
        return str(exc)
    if isinstance(exc, TimeoutError | socket.timeout):
        return "timeout"
    if isinstance(exc, ssl.SSLError | ssl.CertificateError):
        return "tls"
    if isinstance(exc, OSError) and exc.errno is not None:
        return REASONS.get(exc.errno, errno.errorcode.get(exc.errno, f"errno{exc.errno}"))
    return type(exc).__name__


def read_response(sock: ssl.SSLSocket) -> tuple[int, bool]:
    """One HTTP/1.1 response: (status, whether the server keeps the connection open)."""
    buf = b""
    while b"\r\n\r\n" not in buf:
        chunk = sock.recv(4096)
        if not chunk:
            raise Failed("closed")
        buf += chunk
    head, _, body = buf.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    parts = lines[0].split(" ", 2)
    if len(parts) < 2 or not parts[0].startswith("HTTP/"):
        raise Failed("http")
    headers = {}
    for line in lines[1:]:
        key, _, value = line.partition(":")
        headers[key.strip().lower()] = value.strip()
    length = int(headers.get("content-length", "0") or "0")
    while len(body) < length:
        chunk = sock.recv(4096)
        if not chunk:
            raise Failed("closed")
        body += chunk
    return int(parts[1]), headers.get("connection", "").lower() != "close"


class Load:
    def __init__(self, opts: argparse.Namespace, out: IO[str]) -> None:
        self.addr = (opts.vip, opts.port)
        self.timeout = opts.timeout
        self.period = opts.period
        self.conns = max(1, opts.conns)
        self.fresh_period = 1.0 / opts.fresh if opts.fresh > 0 else 0.0
        self.ctx = ssl.create_default_context(cafile=opts.ca)
        self.ctx.check_hostname = True
        self.out = out
        self.lock = threading.Lock()
        self.paused = opts.paused
        self.pauses = 0  # how many times paused: kept-alive connections are not kept across
        self.host = f"{opts.vip}:{opts.port}"

    def record(self, t0: float, kind: str, out: str, new: bool) -> None:
        rec: dict[str, object] = {"t0": t0, "t1": time.time(), "kind": kind, "out": out}
        if new:
            rec["new"] = True
        with self.lock:
            self.out.write(json.dumps(rec) + "\n")
            self.out.flush()

    def connect(self) -> ssl.SSLSocket:
        raw = socket.create_connection(self.addr, timeout=self.timeout)
        try:
            return self.ctx.wrap_socket(raw, server_hostname=self.addr[0])
        except BaseException:
            raw.close()
            raise

    def request(self, sock: ssl.SSLSocket, close: bool) -> tuple[str, bool]:
        """GET /healthz: ("ok" or "status N", whether the connection may be used again)."""
        conn = "close" if close else "keep-alive"
        head = f"GET /healthz HTTP/1.1\r\nHost: {self.host}\r\nUser-Agent: tls-load\r\n"
        sock.sendall(f"{head}Connection: {conn}\r\n\r\n".encode())
        status, keep = read_response(sock)
        return "ok" if status == 200 else f"status {status}", keep and not close

    def wait_turn(self, next_at: float, period: float) -> float:
        """Sleep until next_at (held while paused); the time of the following turn."""
        while True:
            now = time.time()
            if self.paused:
                next_at = now + period
                time.sleep(0.05)
                continue
            if now >= next_at:
                break
            time.sleep(min(0.05, next_at - now))
        following = next_at + period
        return following if following > now - period else now + period  # no bursts after a stall

    def keeper(self, index: int) -> None:
        """One kept-alive connection: a request every period, a new connection when it broke."""
        sock: ssl.SSLSocket | None = None
        next_at = time.time() + index * self.period / self.conns  # spread out
        generation = self.pauses
        while True:
            next_at = self.wait_turn(next_at, self.period)
            if sock is not None and generation != self.pauses:
                sock.close()  # a pause ends a turn: the next one starts on fresh connections
                sock = None
            generation = self.pauses
            t0 = time.time()
            new = sock is None
            try:
                if sock is None:
                    sock = self.connect()
                sock.settimeout(self.timeout)
                out, keep = self.request(sock, close=False)
                if not keep:
                    sock.close()
                    sock = None
                self.record(t0, "keep", out, new)
            except Exception as exc:  # every failure is counted, the loop goes on
                self.record(t0, "keep", reason(exc), new)
                if sock is not None:
                    sock.close()
                sock = None

    def fresh_one(self) -> None:
        t0 = time.time()
        try:
            with self.connect() as sock:
                sock.settimeout(self.timeout)
                out, _ = self.request(sock, close=True)
            self.record(t0, "fresh", out, True)
        except Exception as exc:
            self.record(t0, "fresh", reason(exc), True)

    def fresh(self) -> None:
        """New connections at a fixed rate, each in a thread: a slow one never delays the next."""
        next_at = time.time()
        while True:
            next_at = self.wait_turn(next_at, self.fresh_period)
            threading.Thread(target=self.fresh_one, daemon=True).start()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--vip", default="10.103.97.2")
    parser.add_argument("--port", type=int, default=6443)
    parser.add_argument("--ca", required=True, help="the cluster CA (PEM)")
    parser.add_argument("--conns", type=int, default=4, help="kept-alive connections")
    parser.add_argument("--period", type=float, default=0.5, help="seconds between requests")
    parser.add_argument("--fresh", type=float, default=2.0, help="new connections a second")
    parser.add_argument("--timeout", type=float, default=3.0, help="seconds per step")
    parser.add_argument("--paused", action="store_true", help="start paused (SIGUSR2 resumes)")
    parser.add_argument("--out", required=True, help="JSON lines, appended")
    opts = parser.parse_args()
    with open(opts.out, "a", encoding="utf-8") as out:
        load = Load(opts, out)

        def pause(_sig: int, _frame: FrameType | None) -> None:
            load.paused = True
            load.pauses += 1

        def resume(_sig: int, _frame: FrameType | None) -> None:
            load.paused = False

        signal.signal(signal.SIGUSR1, pause)
        signal.signal(signal.SIGUSR2, resume)
        signal.signal(signal.SIGTERM, lambda _s, _f: sys.exit(0))
        for i in range(opts.conns):
            threading.Thread(target=load.keeper, args=(i,), daemon=True).start()
        if opts.fresh > 0:
            threading.Thread(target=load.fresh, daemon=True).start()
        print("tls load ready", flush=True)
        while True:
            time.sleep(3600)


if __name__ == "__main__":
    main()
