"""The benchmark's eye on the kernel: dumps one virtual service's real servers over netlink
every few milliseconds and logs each change with the time it was seen.

A separate process, so its period does not depend on the orchestrator's threads, and
stdlib only (``python -S``). The generic-netlink request is built by hand on one socket:
in the emulated lab VM pyroute2 takes 33 ms (median, 178 ms worst) to dump and decode three
destinations and 21 s to import, where this takes about 1 ms. The orchestrator checks the
first complete table against pyroute2's reading (tests/support/labnet.ipvs_table).

Output, JSON lines appended to --out:

    {"t": wall time the dump returned, "tb": {"198.18.0.11:6443": 1, ...} or null}
        whenever the table differs from the previous sample (null: no such virtual service)
    {"gap": [t_prev, t]}   two consecutive samples further apart than --max-gap
    {"t": wall time, "n": samples in the last second}   once a second

A change is logged with the end time of the dump that first showed it: it happened after
the previous dump started, so the error is at most one period plus one dump. SIGUSR1 pauses
sampling (for quiet steady-state measurements), SIGUSR2 resumes; the pause is not a gap.
"""

from __future__ import annotations

import argparse
import errno
import json
import signal
import socket
import struct
import sys
import time
from types import FrameType
from typing import Any

Table = dict[str, int] | None

NETLINK_GENERIC = 16
GENL_ID_CTRL = 0x10
CTRL_CMD_GETFAMILY, CTRL_ATTR_FAMILY_ID, CTRL_ATTR_FAMILY_NAME = 3, 1, 2
NLM_F_REQUEST, NLM_F_DUMP = 0x1, 0x300
NLMSG_ERROR, NLMSG_DONE = 2, 3
NLA_TYPE_MASK = 0x3FFF
# linux/ip_vs.h
IPVS_CMD_GET_DEST, IPVS_GENL_VERSION = 8, 1
IPVS_CMD_ATTR_SERVICE, IPVS_CMD_ATTR_DEST = 1, 2
SVC_AF, SVC_PROTOCOL, SVC_ADDR, SVC_PORT = 1, 2, 3, 4
DEST_ADDR, DEST_PORT, DEST_WEIGHT = 1, 2, 4


def attr(kind: int, payload: bytes) -> bytes:
    """One netlink attribute, padded to 4 bytes."""
    return struct.pack("HH", 4 + len(payload), kind) + payload + b"\0" * (-len(payload) % 4)


def attrs(data: bytes, start: int, end: int) -> dict[int, bytes]:
    """Attributes in data[start:end] by type (nested flag masked off)."""
    out: dict[int, bytes] = {}
    while start + 4 <= end:
        length, kind = struct.unpack_from("HH", data, start)
        if length < 4:
            break
        out[kind & NLA_TYPE_MASK] = data[start + 4 : start + length]
        start += (length + 3) & ~3
    return out


class Poller:
    """Dumps the destinations of (vip, port)/tcp: one request, one or two datagrams back."""

    def __init__(self, vip: str, port: int) -> None:
        self.sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, NETLINK_GENERIC)
        self.sock.bind((0, 0))
        self.seq = 0
        family = self._family("IPVS")
        service = b"".join(
            [
                attr(SVC_AF, struct.pack("H", socket.AF_INET)),
                attr(SVC_PROTOCOL, struct.pack("H", socket.IPPROTO_TCP)),
                attr(SVC_ADDR, socket.inet_aton(vip) + bytes(12)),  # union nf_inet_addr
                attr(SVC_PORT, struct.pack("!H", port)),
            ]
        )
        body = struct.pack("BBH", IPVS_CMD_GET_DEST, IPVS_GENL_VERSION, 0)
        body += attr(IPVS_CMD_ATTR_SERVICE, service)
        self.family, self.body = family, body

    def _request(self, kind: int, flags: int, body: bytes) -> None:
        self.seq += 1
        self.sock.send(struct.pack("IHHII", 16 + len(body), kind, flags, self.seq, 0) + body)

    def _family(self, name: str) -> int:
        body = struct.pack("BBH", CTRL_CMD_GETFAMILY, 1, 0)
        body += attr(CTRL_ATTR_FAMILY_NAME, name.encode() + b"\0")
        self._request(GENL_ID_CTRL, NLM_F_REQUEST, body)
        data = self.sock.recv(65536)
        length, kind = struct.unpack_from("IH", data, 0)
        if kind == NLMSG_ERROR:
            code = -struct.unpack_from("i", data, 16)[0]
            raise OSError(code, f"generic netlink family {name}: {errno.errorcode.get(code)}")
        family = attrs(data, 20, length)[CTRL_ATTR_FAMILY_ID]
        return int(struct.unpack("H", family[:2])[0])

    def read(self) -> Table:
        self._request(self.family, NLM_F_REQUEST | NLM_F_DUMP, self.body)
        table: dict[str, int] = {}
        while True:
            data = self.sock.recv(65536)
            pos = 0
            while pos + 16 <= len(data):
                length, kind = struct.unpack_from("IH", data, pos)
                if kind == NLMSG_DONE:
                    return table
                if kind == NLMSG_ERROR:  # ESRCH: no such virtual service
                    return None if struct.unpack_from("i", data, pos + 16)[0] else table
                dest = attrs(data, pos + 20, pos + length).get(IPVS_CMD_ATTR_DEST)
                if dest is not None:
                    d = attrs(dest, 0, len(dest))
                    port = struct.unpack("!H", d[DEST_PORT])[0]
                    key = f"{socket.inet_ntoa(d[DEST_ADDR][:4])}:{port}"
                    table[key] = int(struct.unpack("I", d[DEST_WEIGHT])[0])
                pos += (length + 3) & ~3


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--vip", default="10.103.97.2")
    parser.add_argument("--port", type=int, default=6443)
    parser.add_argument("--period", type=float, default=0.003, help="seconds between dumps")
    parser.add_argument("--max-gap", type=float, default=0.005, help="log longer gaps")
    parser.add_argument("--out", required=True)
    opts = parser.parse_args()
    paused = False

    def pause(_sig: int, _frame: FrameType | None) -> None:
        nonlocal paused
        paused = True

    def resume(_sig: int, _frame: FrameType | None) -> None:
        nonlocal paused
        paused = False

    signal.signal(signal.SIGUSR1, pause)
    signal.signal(signal.SIGUSR2, resume)
    signal.signal(signal.SIGTERM, lambda _s, _f: sys.exit(0))
    poller = Poller(opts.vip, opts.port)
    with open(opts.out, "a", encoding="utf-8") as out:

        def emit(record: dict[str, Any]) -> None:
            out.write(json.dumps(record) + "\n")
            out.flush()

        last: Table | bool = False  # False: nothing seen yet, so the first sample is logged
        prev = second = time.time()
        count = 0
        print("poller ready", flush=True)
        while True:
            if paused:
                time.sleep(0.05)
                prev = time.time()
                continue
            began = time.time()
            table = poller.read()
            now = time.time()
            count += 1
            if table != last:
                emit({"t": now, "tb": table})
                last = table
            if now - prev > opts.max_gap:
                emit({"gap": [prev, now]})
            if now - second >= 1.0:
                emit({"t": now, "n": count})
                second, count = now, 0
            prev = now
            time.sleep(max(0.0, began + opts.period - time.time()))


if __name__ == "__main__":
    main()
