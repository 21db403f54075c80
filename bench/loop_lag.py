"""The busy-node benchmark's eye on lvscare's care loop: times ``GET /healthz`` on its endpoint.

lvscare's /healthz (lvscare/telemetry/server.py) is served by a thread of its own, which
schedules a no-op on the care loop with call_soon_threadsafe and answers once it ran (500
after 1 s without): the time a request takes is the care loop's responsiveness, seen from
outside, plus this process's own turn on the CPU and one loopback round trip.

A separate process, started with ``python -S`` (stdlib only, like vip_client.py): one plain
HTTP/1.1 request every --period seconds over a fresh loopback connection, at absolute times
(a slow answer delays the next request, which then starts at once: never a burst). One JSON
line per request::

    {"t": start (wall clock), "lat": seconds to the whole response, "out": 200 | 500 |
     "refused" | "timeout" | ...}

SIGUSR1 pauses it (the steady state's CPU figure is lvscare's own), SIGUSR2 resumes, SIGTERM
ends it.
"""

from __future__ import annotations

import argparse
import errno
import json
import signal
import socket
import sys
import time


def get(host: str, port: int, path: str, timeout: float) -> int:
    """The status of one GET; OSError / ValueError on failure."""
    with socket.create_connection((host, port), timeout=timeout) as sock:
        head = f"GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\nConnection: close\r\n\r\n"
        sock.sendall(head.encode())
        data = b""
        while True:
            chunk = sock.recv(4096)
            if not chunk:
                break
            data += chunk
    return int(data.split(b" ", 2)[1])


def outcome(exc: BaseException) -> str:
    if isinstance(exc, TimeoutError | socket.timeout):
        return "timeout"
    if isinstance(exc, ConnectionRefusedError):
        return "refused"
    if isinstance(exc, OSError) and exc.errno is not None:
        return errno.errorcode.get(exc.errno, f"errno{exc.errno}")
    return "bad-response"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=10271)
    parser.add_argument("--path", default="/healthz")
    parser.add_argument("--period", type=float, default=0.5)
    parser.add_argument("--timeout", type=float, default=5.0)
    parser.add_argument("--out", required=True, help="JSON lines, appended")
    opts = parser.parse_args()
    signal.signal(signal.SIGTERM, lambda _s, _f: sys.exit(0))
    paused = False

    def pause(_s: int, _f: object) -> None:
        nonlocal paused
        paused = True

    def resume(_s: int, _f: object) -> None:
        nonlocal paused
        paused = False

    signal.signal(signal.SIGUSR1, pause)
    signal.signal(signal.SIGUSR2, resume)
    with open(opts.out, "a", encoding="utf-8") as out:
        print("lag probe ready", flush=True)
        next_at = time.time()
        while True:
            time.sleep(max(0.0, next_at - time.time()))
            if paused:  # the steady state measures lvscare's CPU without our requests
                next_at = time.time() + opts.period
                continue
            t0 = time.time()
            begin = time.perf_counter()
            status: int | str
            try:
                status = get(opts.host, opts.port, opts.path, opts.timeout)
            except (OSError, ValueError, IndexError) as exc:
                status = outcome(exc)
            lat = time.perf_counter() - begin
            out.write(json.dumps({"t": t0, "lat": round(lat, 6), "out": status}) + "\n")
            out.flush()
            next_at = max(next_at + opts.period, time.time())


if __name__ == "__main__":
    main()
