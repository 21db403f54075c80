"""A stand-in kube-apiserver for the kernel lab, run inside one master's network namespace.

Standard library only and meant to be started with ``python -S``: in the emulated lab VM every
imported module costs real seconds, so no asyncio, no aiohttp, no site-packages.

    python -S fake_apiserver.py --name m1 --listen 198.18.0.11 --listen fd00:18::11 \
        --port 6443 --cert m1.pem --mode-file m1.mode --ready-file m1.ready

Endpoints (HTTPS, HTTP/1.1 with keep-alive like the real apiserver):

- ``/healthz``, ``/readyz``, ``/livez`` (and sub-paths): what the mode file says, re-read on
  every request: ``ok`` -> 200 ``ok``; ``fail`` -> 500 with a kube-style body;
  ``hang`` -> the TLS handshake completes and the request is read, but no answer ever comes;
  ``tls`` -> no TLS at all on any path: plain text where the ServerHello belongs;
  ``close-kept`` and ``hang-kept`` -> a connection's first request is answered 200, every
  later one on the same kept-alive connection is closed without an answer, or never
  answered (an idle close racing a client's request; a kept connection that went bad).
- ``/whoami``: always 200 with the master's name, so a test learns where the VIP sent it.
- ``/hold?seconds=N``: 200, the name and a newline, then one ``.`` every 100 ms for N seconds
  (default 600): a long-lived connection whose liveness a test can watch.
- ``/bulk?mb=N``: 200 and N MiB of zeros (Content-Length set; at most 1024): throughput.

Each request is logged to stdout as one line: ``<unix time> <peer> <method> <target> <status>``,
where peer is ``ip:port/n``, n counting the requests on that connection.
The ready file is written (atomically, with our pid) once every listener is bound.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import socket
import ssl
import sys
import threading
import time
from urllib.parse import parse_qs, urlsplit

HEALTH_PATHS = ("/healthz", "/readyz", "/livez")
MAX_HEAD = 16 * 1024
HOLD_TICK = 0.1
HOLD_DEFAULT = 600.0
HOLD_MAX = 3600.0
IDLE_TIMEOUT = 600.0  # a kept-alive or hanging connection is dropped after this long
# kube-apiserver's http.Server has ReadHeaderTimeout 32 s, which also bounds the TLS handshake
# (k8s.io/apiserver secure_serving.go): a connection that never starts one is closed then.
HANDSHAKE_TIMEOUT = 32.0
MODES = ("ok", "fail", "hang", "tls", "close-kept", "hang-kept")
REASONS = {200: "OK", 404: "Not Found", 405: "Method Not Allowed", 500: "Internal Server Error"}

_log_lock = threading.Lock()


def log(line: str) -> None:
    with _log_lock:
        sys.stdout.write(line + "\n")
        sys.stdout.flush()


class Server:
    """One master: its name, its mode file and the TLS context shared by every listener."""

    def __init__(self, name: str, mode_file: str, context: ssl.SSLContext) -> None:
        self.name = name
        self.mode_file = mode_file
        self.context = context

    def mode(self) -> str:
        try:
            with open(self.mode_file, encoding="ascii") as f:
                mode = f.read().strip()
        except OSError:
            return "ok"
        return mode if mode in MODES else "fail"

    def serve(self, listener: socket.socket) -> None:
        while True:
            conn, peer = listener.accept()
            name = f"{peer[0]}:{peer[1]}"
            threading.Thread(target=self.handle, args=(conn, name), daemon=True).start()

    def handle(self, raw: socket.socket, peer: str) -> None:
        if self.mode() == "tls":
            broken_tls(raw)
            return
        try:
            raw.settimeout(HANDSHAKE_TIMEOUT)
            conn = self.context.wrap_socket(raw, server_side=True)
        except (OSError, ssl.SSLError):
            raw.close()
            return
        try:
            conn.settimeout(IDLE_TIMEOUT)
            buf = b""
            for n in range(1, sys.maxsize):
                head, buf = read_head(conn, buf)
                if head is None:
                    return
                keep_alive = self.respond(conn, f"{peer}/{n}", head, n)
                if not keep_alive:
                    return
        except (OSError, ssl.SSLError, ValueError):
            return
        finally:
            with contextlib.suppress(OSError):
                conn.close()

    def respond(self, conn: ssl.SSLSocket, peer: str, head: bytes, n: int = 1) -> bool:
        """Answer the n-th request of a connection; False when it must be closed afterwards."""
        lines = head.decode("latin-1").split("\r\n")
        parts = lines[0].split()
        if len(parts) != 3:
            raise ValueError("bad request line")
        method, target, version = parts
        headers = {}
        for line in lines[1:]:
            key, _, value = line.partition(":")
            headers[key.strip().lower()] = value.strip()
        if int(headers.get("content-length", "0") or "0"):
            raise ValueError("request bodies are not supported")
        conn_hdr = headers.get("connection", "").lower()
        keep_alive = conn_hdr != "close" and (version == "HTTP/1.1" or conn_hdr == "keep-alive")
        url = urlsplit(target)
        path = url.path

        if method not in ("GET", "HEAD"):
            status, body = 405, "method not allowed\n"
        elif path == "/whoami":
            status, body = 200, self.name
        elif path == "/hold":
            log(f"{time.time():.3f} {peer} {method} {target} 200-hold")
            self.hold(conn, parse_qs(url.query).get("seconds", [""])[0])
            return False
        elif path == "/bulk":
            mib = min(int(parse_qs(url.query).get("mb", ["1"])[0]), 1024)
            close = "" if keep_alive else "Connection: close\r\n"
            reply = (
                "HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\n"
                f"X-Lab-Master: {self.name}\r\nContent-Length: {mib << 20}\r\n{close}\r\n"
            )
            conn.sendall(reply.encode())
            chunk = bytes(1 << 20)
            for _ in range(mib if method == "GET" else 0):
                conn.sendall(chunk)
            log(f"{time.time():.3f} {peer} {method} {target} 200")
            return keep_alive
        elif path in HEALTH_PATHS or path.startswith(tuple(p + "/" for p in HEALTH_PATHS)):
            mode = self.mode()
            if mode == "close-kept" and n > 1:
                log(f"{time.time():.3f} {peer} {method} {target} closed")
                return False
            if mode == "hang" or (mode == "hang-kept" and n > 1):
                log(f"{time.time():.3f} {peer} {method} {target} hang")
                hang(conn)
                return False
            if mode == "fail":
                check = path.strip("/").split("/")[0]
                status = 500
                body = f"[-]etcd failed: reason withheld\n{check} check failed\n"
            else:
                status, body = 200, "ok"
        else:
            status, body = 404, "404 page not found\n"

        payload = body.encode()
        out = [
            f"HTTP/1.1 {status} {REASONS.get(status, 'Status')}",
            "Content-Type: text/plain; charset=utf-8",
            "X-Content-Type-Options: nosniff",
            f"X-Lab-Master: {self.name}",
            f"Content-Length: {len(payload)}",
        ]
        if not keep_alive:
            out.append("Connection: close")
        conn.sendall(
            ("\r\n".join(out) + "\r\n\r\n").encode() + (b"" if method == "HEAD" else payload)
        )
        log(f"{time.time():.3f} {peer} {method} {target} {status}")
        return keep_alive

    def hold(self, conn: ssl.SSLSocket, seconds: str) -> None:
        try:
            duration = min(float(seconds), HOLD_MAX) if seconds else HOLD_DEFAULT
        except ValueError:
            duration = HOLD_DEFAULT
        head = (
            "HTTP/1.1 200 OK\r\nContent-Type: text/plain; charset=utf-8\r\n"
            f"X-Lab-Master: {self.name}\r\nConnection: close\r\n\r\n{self.name}\n"
        )
        conn.sendall(head.encode())
        end = time.monotonic() + duration
        while time.monotonic() < end:  # bounded: the stream stops by itself
            time.sleep(HOLD_TICK)
            conn.sendall(b".")


def broken_tls(raw: socket.socket) -> None:
    """A TLS failure: plain text where the ServerHello belongs (a client reports "wrong
    version number"), as a port taken by something else or a broken proxy answers."""
    try:
        raw.settimeout(10)
        raw.recv(4096)
        raw.sendall(b"HTTP/1.1 400 Bad Request\r\nConnection: close\r\n\r\n")
    except OSError:
        pass
    finally:
        raw.close()


def hang(conn: ssl.SSLSocket) -> None:
    """Never answer: wait until the client gives up (or IDLE_TIMEOUT passes)."""
    try:
        while conn.recv(4096):
            pass
    except (OSError, ssl.SSLError):
        pass


def read_head(conn: ssl.SSLSocket, buf: bytes) -> tuple[bytes | None, bytes]:
    """One request head (without the blank line) and what followed it; None at a clean EOF."""
    while b"\r\n\r\n" not in buf:
        if len(buf) > MAX_HEAD:
            raise ValueError("request head too long")
        chunk = conn.recv(4096)
        if not chunk:
            return None, b""
        buf += chunk
    head, _, rest = buf.partition(b"\r\n\r\n")
    return head, rest


def listen(addr: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in addr else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    if family == socket.AF_INET6:
        sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
    sock.bind((addr, port))
    sock.listen(128)
    return sock


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--name", required=True)
    parser.add_argument("--listen", action="append", required=True, help="address; repeatable")
    parser.add_argument("--port", type=int, default=6443)
    parser.add_argument("--cert", required=True, help="PEM with the private key and cert chain")
    parser.add_argument("--mode-file", required=True)
    parser.add_argument("--ready-file")
    args = parser.parse_args(argv)

    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(args.cert)
    server = Server(args.name, args.mode_file, context)
    listeners = [listen(addr, args.port) for addr in args.listen]
    for sock in listeners:
        threading.Thread(target=server.serve, args=(sock,), daemon=True).start()
    if args.ready_file:
        tmp = f"{args.ready_file}.tmp"
        with open(tmp, "w", encoding="ascii") as f:
            f.write(f"{os.getpid()}\n")
        os.replace(tmp, args.ready_file)
    log(f"{time.time():.3f} - LISTEN {' '.join(args.listen)} {args.port}")
    while True:
        time.sleep(3600)


if __name__ == "__main__":
    sys.exit(main())
