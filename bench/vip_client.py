"""The benchmark's client: opens connections through the VIP at a fixed rate, logs each one.

A separate process, started with ``python -S`` (stdlib only: every import costs real seconds
in the emulated lab VM), single-threaded on a selector so that 50 attempts a second cost
little CPU in a VM that also runs the daemon under test, the masters and the poller.

Each attempt is a TCP connect through the VIP plus a small read: it sends ``GET /`` (five
bytes, exactly one TLS record header) and waits for the end of the stream. The fake
apiserver's TLS layer reads those five bytes, rejects them and closes cleanly, so a clean
EOF proves a live apiserver process took the connection; a refused or reset connection, or
no EOF within --timeout, is a failure. (A full TLS handshake plus ``GET /healthz`` per
attempt was measured first: at 50/s it saturates the emulated VM, median 2.5 s per attempt.)

One JSON line per attempt, written when it ends (a failed one PLACE_AFTER seconds later)::

    {"t0": start (wall clock), "t1": end, "out": "ok" | "refused" | "reset" | "timeout" |
     "<errno name>", "stage": "connect" | "read"}
    failed ones also: "port": our source port, "ipvs": "DEST:PORT STATE" of its IPVS entry

Attempts start at absolute times (start + i / rate); a slow or hanging attempt never delays
the next. SIGUSR1 pauses (no new attempts; running ones finish), SIGUSR2 resumes with a new
schedule instead of a burst.
"""

from __future__ import annotations

import argparse
import contextlib
import errno
import json
import selectors
import signal
import socket
import sys
import time
from dataclasses import dataclass
from types import FrameType
from typing import IO

PLACE_AFTER = 2.0  # seconds a failed attempt waits before its IPVS entry is looked up
PROBE = b"GET /"  # one TLS record header's worth: read whole, rejected, clean close
REASONS = {
    errno.ECONNREFUSED: "refused",
    errno.ECONNRESET: "reset",
    errno.ETIMEDOUT: "timeout",
    errno.EHOSTUNREACH: "unreachable",
    errno.ENETUNREACH: "unreachable",
}


def reason(code: int) -> str:
    return REASONS.get(code, errno.errorcode.get(code, f"errno{code}"))


@dataclass
class Attempt:
    sock: socket.socket
    t0: float
    deadline: float
    stage: str = "connect"
    port: int = 0  # our source port: finds the connection in the kernel's IPVS table


def ipvs_entries() -> dict[int, str]:
    """Source port -> 'DEST:PORT STATE' of every TCP connection in the IPVS table."""
    entries: dict[int, str] = {}
    try:
        with open("/proc/net/ip_vs_conn", encoding="ascii") as f:
            for line in f:
                cols = line.split()
                if len(cols) >= 8 and cols[0] == "TCP":
                    dest = socket.inet_ntoa(bytes.fromhex(cols[5]))
                    entries[int(cols[2], 16)] = f"{dest}:{int(cols[6], 16)} {cols[7]}"
    except (OSError, ValueError):
        pass
    return entries


class Client:
    """Fires attempts at `rate` per second at `vip:port`, each bounded by `timeout` seconds."""

    def __init__(self, vip: str, port: int, rate: float, timeout: float, out: IO[str]) -> None:
        self.addr = (vip, port)
        self.period = 1.0 / rate
        self.timeout = timeout
        self.out = out
        self.paused = False
        self.sel = selectors.DefaultSelector()
        self.running: dict[int, Attempt] = {}
        self.unplaced: list[dict[str, object]] = []  # failed attempts, for place()

    def finish(self, a: Attempt, out: str) -> None:
        if a.sock.fileno() in self.running:
            self.sel.unregister(a.sock)
            del self.running[a.sock.fileno()]
        record: dict[str, object] = {"t0": a.t0, "t1": time.time(), "out": out, "stage": a.stage}
        a.sock.close()
        if out == "ok":
            self.out.write(json.dumps(record) + "\n")
        else:
            record["port"] = a.port
            self.unplaced.append(record)

    def place(self) -> None:
        """Write the failed attempts held back, each with where IPVS had sent it. Done a
        while after the failure (the entry outlives it by 10 s or more) and with one read of
        the table for all of them: the read costs real CPU in the emulated VM, and at the
        moment of a fault that CPU belongs to the daemon under test."""
        if not self.unplaced:
            return
        entries = ipvs_entries()
        for record in self.unplaced:
            record["ipvs"] = entries.get(int(str(record["port"])))
            self.out.write(json.dumps(record) + "\n")
        self.unplaced.clear()

    def start(self) -> None:
        now = time.time()
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setblocking(False)
        a = Attempt(sock, now, now + self.timeout)
        code = sock.connect_ex(self.addr)
        with contextlib.suppress(OSError):
            a.port = sock.getsockname()[1]
        if code not in (0, errno.EINPROGRESS):
            self.finish(a, reason(code))
            return
        self.running[sock.fileno()] = a
        self.sel.register(sock, selectors.EVENT_WRITE, a)

    def step(self, a: Attempt) -> None:
        """The socket is ready: connect finished, or data / EOF / an error arrived."""
        if a.stage == "connect":
            code = a.sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
            if code:
                self.finish(a, reason(code))
                return
            a.stage = "read"
            try:
                a.sock.send(PROBE)
            except OSError as e:
                self.finish(a, reason(e.errno or 0))
                return
            self.sel.modify(a.sock, selectors.EVENT_READ, a)
            return
        try:
            data = a.sock.recv(512)
        except BlockingIOError:
            return
        except OSError as e:
            self.finish(a, reason(e.errno or 0))
            return
        if not data:
            self.finish(a, "ok")

    def run(self) -> None:
        next_at = time.time()
        while True:
            now = time.time()
            if self.paused:
                next_at = now + self.period
            elif now >= next_at:
                self.start()
                next_at += self.period
                if now - next_at > 0.5:  # stopped or starved: a fresh schedule, never a burst
                    next_at = now + self.period
            first_deadline = min((a.deadline for a in self.running.values()), default=now + 1)
            wait = max(0.0, min(next_at, first_deadline, now + 0.05) - time.time())
            for key, _mask in self.sel.select(wait):
                self.step(key.data)
            now = time.time()
            for a in [a for a in self.running.values() if a.deadline <= now]:
                self.finish(a, "timeout")
            if self.unplaced and now - float(str(self.unplaced[0]["t1"])) >= PLACE_AFTER:
                self.place()
            self.out.flush()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--vip", default="10.103.97.2")
    parser.add_argument("--port", type=int, default=6443)
    parser.add_argument("--rate", type=float, default=50.0, help="attempts per second")
    parser.add_argument("--timeout", type=float, default=2.0, help="seconds per attempt")
    parser.add_argument("--paused", action="store_true", help="start paused (SIGUSR2 resumes)")
    parser.add_argument("--out", required=True, help="JSON lines, appended")
    opts = parser.parse_args()
    with open(opts.out, "a", encoding="utf-8") as out:
        client = Client(opts.vip, opts.port, opts.rate, opts.timeout, out)
        client.paused = opts.paused

        def pause(_sig: int, _frame: FrameType | None) -> None:
            client.paused = True

        def resume(_sig: int, _frame: FrameType | None) -> None:
            client.paused = False

        signal.signal(signal.SIGUSR1, pause)
        signal.signal(signal.SIGUSR2, resume)
        signal.signal(signal.SIGTERM, lambda _s, _f: sys.exit(0))
        print("client ready", flush=True)
        try:
            client.run()
        finally:
            client.place()


if __name__ == "__main__":
    main()
