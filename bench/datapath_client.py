"""bench/datapath.py's client: latency and throughput over several paths to the same masters,
the paths taking turns sample by sample.

Standard library only and started with ``python -S`` (every import costs real seconds in the
emulated lab VM); single-threaded, every interval measured with time.perf_counter, the
garbage collector off while measuring.

    python -S bench/datapath_client.py --ca CA --server-name apiserver.cluster.local \\
        --path direct=198.18.0.11:6443,198.18.0.12:6443,198.18.0.13:6443@198.18.0.2 \\
        --path vip=10.103.97.2:6443 --path haproxy=127.0.0.1:8443 \\
        --connects 2000 --requests 2000 --fresh 500 --bulk 10 --bulk-mb 16 --out FILE

A path is ``NAME=HOST:PORT[,HOST:PORT...][@SOURCE]``: its targets are dialled in turn, one per
connection, and every socket is bound to SOURCE (default: the kernel picks it, as for any
client) with IP_BIND_ADDRESS_NO_PORT before connect(), the same calls on every path.

Sections, one after the other; inside each, turn i takes one sample of every path, the order
of the paths rotated by i, so drift and background work hit every path alike:

- ``connect``: TCP connect() alone (the socket is made before the clock starts). Then, off the
  clock, five bytes that are no TLS record (``GET /``) and a wait for the server's close: the
  fake apiserver accepts in one thread and starts a thread per connection, and connections
  closed as fast as they open overflow its listen queue (a SYN dropped: a 1 s connect).
- ``kept``: ``GET /whoami`` on a kept-alive TLS connection, request sent to response read;
  three connections per path, opened first (each warmed by one request), used in turn.
- ``fresh``: connect + TLS handshake + ``GET /whoami`` + response, on a new connection.
- ``bulk``: ``GET /bulk?mb=M`` on a new connection (after its handshake): request sent to the
  last byte read.

TLS: --max-tls (bench/datapath.py passes 1.2, see there), the CA's chain and the name checked.

The first --warmup turns of each section are recorded with ``"warm": true`` and left out by
the report. Output: one JSON line per sample, written at the end of each section::

    {"kind": "connect", "path": "vip", "i": 17, "s": 0.00081, "master": "m2"}
    failed samples: "s": null, "err": "<reason>"; bulk: "bytes" too

Progress (one line per section) on stdout; "client done" at the end.
"""

from __future__ import annotations

import argparse
import gc
import json
import socket
import ssl
import sys
import time
from dataclasses import dataclass, field
from typing import Any

IP_BIND_ADDRESS_NO_PORT = getattr(socket, "IP_BIND_ADDRESS_NO_PORT", 24)
KINDS = ("connect", "kept", "fresh", "bulk")
KEPT_PER_PATH = 3
PROBE = b"GET /"  # one TLS record header's worth: the server reads it, rejects it, closes
BUF = 1 << 18
Record = dict[str, Any]
TLS_VERSIONS = {"1.2": ssl.TLSVersion.TLSv1_2, "1.3": ssl.TLSVersion.TLSv1_3}


@dataclass
class Path:
    name: str
    targets: list[tuple[str, int]]
    source: str | None = None
    turn: int = 0  # next target
    kept: list[ssl.SSLSocket | None] = field(default_factory=list)

    def next_target(self) -> tuple[str, int]:
        target = self.targets[self.turn % len(self.targets)]
        self.turn += 1
        return target


def parse_path(spec: str) -> Path:
    """``NAME=HOST:PORT[,HOST:PORT...][@SOURCE]``."""
    name, sep, rest = spec.partition("=")
    if not sep or not name or not rest:
        raise ValueError(f"path {spec!r}: NAME=HOST:PORT[,HOST:PORT...][@SOURCE]")
    rest, _, source = rest.partition("@")
    targets = []
    for item in rest.split(","):
        host, _, port = item.rpartition(":")
        if not host or not port.isdigit():
            raise ValueError(f"path {spec!r}: bad target {item!r}")
        targets.append((host, int(port)))
    return Path(name, targets, source or None)


def turn_order(paths: list[Any], i: int) -> list[Any]:
    """The paths of turn i: rotated by i, so each path takes each place equally often."""
    k = i % len(paths) if paths else 0
    return paths[k:] + paths[:k]


def parse_head(head: bytes) -> tuple[int, dict[str, str]]:
    """Status and lower-cased headers of a response head (without the blank line)."""
    lines = head.decode("latin-1").split("\r\n")
    parts = lines[0].split(" ", 2)
    if len(parts) < 2 or not parts[0].startswith("HTTP/") or not parts[1].isdigit():
        raise ValueError(f"not an HTTP response: {head[:60]!r}")
    headers = {}
    for line in lines[1:]:
        key, _, value = line.partition(":")
        headers[key.strip().lower()] = value.strip()
    return int(parts[1]), headers


def read_head(sock: ssl.SSLSocket) -> tuple[int, dict[str, str], bytes]:
    """Status, headers and whatever of the body came with the head."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(BUF)
        if not chunk:
            raise ConnectionResetError("closed before a response")
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    status, headers = parse_head(head)
    return status, headers, body


def read_response(sock: ssl.SSLSocket) -> tuple[int, dict[str, str], bytes]:
    """One whole response (Content-Length framed) from a connection that sends nothing else."""
    status, headers, body = read_head(sock)
    length = int(headers.get("content-length", "0"))
    while len(body) < length:
        chunk = sock.recv(BUF)
        if not chunk:
            raise ConnectionResetError("closed inside a body")
        body += chunk
    return status, headers, body


def reason(exc: BaseException) -> str:
    if isinstance(exc, ConnectionRefusedError):
        return "refused"
    if isinstance(exc, TimeoutError):
        return "timeout"
    if isinstance(exc, ssl.SSLError | ssl.CertificateError):
        return f"tls: {exc}"
    if isinstance(exc, ConnectionResetError | BrokenPipeError):
        return f"reset: {exc}"
    return f"{type(exc).__name__}: {exc}"


class Client:
    def __init__(self, opts: argparse.Namespace) -> None:
        self.paths = [parse_path(s) for s in opts.path]
        self.timeout: float = opts.timeout
        self.server_name: str = opts.server_name
        self.ctx = ssl.create_default_context(cafile=opts.ca)  # verifies chain and name
        self.ctx.maximum_version = TLS_VERSIONS[opts.max_tls]
        self.request = (
            f"GET /whoami HTTP/1.1\r\nHost: {self.server_name}\r\nUser-Agent: datapath\r\n\r\n"
        ).encode()
        self.bulk_mb: int = opts.bulk_mb
        self.bulk_request = (
            f"GET /bulk?mb={self.bulk_mb} HTTP/1.1\r\nHost: {self.server_name}\r\n"
            "User-Agent: datapath\r\n\r\n"
        ).encode()
        self.buf = bytearray(BUF)

    def new_socket(self, path: Path) -> socket.socket:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, 1)
        sock.bind((path.source or "0.0.0.0", 0))
        sock.settimeout(self.timeout)
        return sock

    def tls(self, raw: socket.socket) -> ssl.SSLSocket:
        return self.ctx.wrap_socket(raw, server_hostname=self.server_name)

    def get(self, sock: ssl.SSLSocket) -> str:
        sock.sendall(self.request)
        status, _, body = read_response(sock)
        if status != 200:
            raise ValueError(f"/whoami answered {status}")
        return body.decode()

    # one sample of each kind; (seconds, extra fields)

    def connect(self, path: Path) -> tuple[float, Record]:
        target = path.next_target()
        sock = self.new_socket(path)
        t1 = 0.0
        try:
            t0 = time.perf_counter()
            sock.connect(target)
            t1 = time.perf_counter()
            sock.sendall(PROBE)
            while sock.recv(4096):  # until the server's close (EOF or reset)
                pass
        except (ConnectionResetError, BrokenPipeError):
            if t1 == 0.0:
                raise
        finally:
            sock.close()
        return t1 - t0, {}

    def open_kept(self, path: Path, slot: int) -> str:
        sock = self.new_socket(path)
        try:
            sock.connect(path.next_target())
            tls = self.tls(sock)
        except BaseException:
            sock.close()
            raise
        path.kept[slot] = tls
        return self.get(tls)  # the warming request

    def kept(self, path: Path, i: int) -> tuple[float, Record]:
        slot = i % KEPT_PER_PATH
        sock = path.kept[slot]
        if sock is None:  # broke earlier: a new one (not timed)
            self.open_kept(path, slot)
            sock = path.kept[slot]
            assert sock is not None
        try:
            t0 = time.perf_counter()
            master = self.get(sock)
            t1 = time.perf_counter()
        except BaseException:
            path.kept[slot] = None
            sock.close()
            raise
        return t1 - t0, {"master": master, "conn": slot}

    def fresh(self, path: Path) -> tuple[float, Record]:
        target = path.next_target()
        sock = self.new_socket(path)
        try:
            t0 = time.perf_counter()
            sock.connect(target)
            tls = self.tls(sock)
            master = self.get(tls)
            t1 = time.perf_counter()
            tls.close()
        finally:
            sock.close()
        return t1 - t0, {"master": master}

    def bulk(self, path: Path) -> tuple[float, Record]:
        target = path.next_target()
        sock = self.new_socket(path)
        view = memoryview(self.buf)
        try:
            sock.connect(target)
            tls = self.tls(sock)
            t0 = time.perf_counter()
            tls.sendall(self.bulk_request)
            status, headers, first = read_head(tls)
            if status != 200:
                raise ValueError(f"/bulk answered {status}")
            length = int(headers["content-length"])
            got = len(first)
            while got < length:
                n = tls.recv_into(view, min(BUF, length - got))
                if not n:
                    raise ConnectionResetError(f"closed after {got} of {length} bytes")
                got += n
            t1 = time.perf_counter()
            tls.close()
        finally:
            sock.close()
        return t1 - t0, {"bytes": got, "master": headers.get("x-lab-master", "")}

    # sections

    def section(self, kind: str, turns: int, warmup: int) -> list[Record]:
        records: list[Record] = []
        for i in range(warmup + turns):
            for path in turn_order(self.paths, i):
                rec: Record = {"kind": kind, "path": path.name, "i": i - warmup}
                if i < warmup:
                    rec["warm"] = True
                try:
                    if kind == "connect":
                        secs, extra = self.connect(path)
                    elif kind == "kept":
                        secs, extra = self.kept(path, i)
                    elif kind == "fresh":
                        secs, extra = self.fresh(path)
                    else:
                        secs, extra = self.bulk(path)
                    rec["s"] = secs
                    rec.update(extra)
                except (OSError, ssl.SSLError, ValueError) as exc:
                    rec["s"] = None
                    rec["err"] = reason(exc)
                records.append(rec)
        return records

    def run(self, counts: dict[str, int], warmup: int, out: str) -> None:
        with open(out, "w", encoding="utf-8") as f:
            for kind in KINDS:
                if counts[kind] <= 0:
                    continue
                started = time.monotonic()
                gc.collect()
                gc.disable()
                try:
                    if kind == "kept":
                        for path in self.paths:
                            path.kept = [None] * KEPT_PER_PATH
                            for slot in range(KEPT_PER_PATH):
                                self.open_kept(path, slot)
                    records = self.section(kind, counts[kind], warmup)
                finally:
                    gc.enable()
                    for path in self.paths:
                        for sock in path.kept:
                            if sock is not None:
                                sock.close()
                        path.kept = []
                f.write("".join(json.dumps(r) + "\n" for r in records))
                f.flush()
                failed = sum(r["s"] is None for r in records)
                print(
                    f"client: {kind}: {len(records)} samples ({failed} failed) in "
                    f"{time.monotonic() - started:.1f} s",
                    flush=True,
                )
        print("client done", flush=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--path", action="append", required=True, help="NAME=HOST:PORT,..[@SRC]")
    parser.add_argument("--ca", required=True, help="CA file the masters' certificates chain to")
    parser.add_argument("--server-name", default="apiserver.cluster.local")
    parser.add_argument("--connects", type=int, default=2000)
    parser.add_argument("--requests", type=int, default=2000, help="kept-alive requests")
    parser.add_argument("--fresh", type=int, default=500, help="fresh-connection requests")
    parser.add_argument("--bulk", type=int, default=10, help="bulk transfers")
    parser.add_argument("--bulk-mb", type=int, default=16, help="MiB per bulk transfer")
    parser.add_argument("--warmup", type=int, default=5, help="turns left out, per section")
    parser.add_argument("--timeout", type=float, default=10.0, help="socket timeout, seconds")
    parser.add_argument("--max-tls", choices=sorted(TLS_VERSIONS), default="1.3")
    parser.add_argument("--out", required=True)
    opts = parser.parse_args(argv)
    client = Client(opts)
    counts = {
        "connect": opts.connects,
        "kept": opts.requests,
        "fresh": opts.fresh,
        "bulk": opts.bulk,
    }
    print(f"client ready: {', '.join(p.name for p in client.paths)}", flush=True)
    client.run(counts, opts.warmup, opts.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
