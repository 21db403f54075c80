"""The lab demo: three masters, lvscare guarding the VIP, one master killed and brought back.

Run inside the lab VM (`scripts/demo` does that). Prints one timeline merging what we did,
what the daemon said, what the kernel table looked like (read through netlink every 10 ms)
and what a client opening connections through the VIP saw.
"""

from __future__ import annotations

import datetime as dt
import socket
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

from tests.support.lab_lvscare import LVSCARE, care_argv
from tests.support.labnet import Lab, LabProcess, ipvs_table, start_process
from tests.support.wait import wait_until

VIP, PORT = "10.103.97.2", 6443
KEY = (VIP, PORT)

Event = tuple[float, str, str]  # (wall time, source, text)


def table_text() -> str:
    service = ipvs_table().get(KEY)
    if service is None:
        return "(no virtual server)"
    dests = sorted(service["dests"].items())
    return "  ".join(f"{addr}:{port} w={w}" for (addr, port), w in dests) or "(no real servers)"


def poll_table(events: list[Event], stop: threading.Event) -> None:
    last = None
    while not stop.is_set():
        now = table_text()
        if now != last:
            events.append((time.time(), "kernel", now))
            last = now
        time.sleep(0.02)


class Client:
    """A connection through the VIP every 100 ms; reports changes of outcome, counts all."""

    def __init__(self, events: list[Event]) -> None:
        self.events = events
        self.attempts: list[tuple[float, bool]] = []  # (wall time, connected)

    def run(self, stop: threading.Event) -> None:
        last = None
        while not stop.is_set():
            start = time.time()
            try:
                with socket.create_connection((VIP, PORT), timeout=1):
                    outcome = "connect ok"
            except OSError as e:
                outcome = f"connect FAILED ({e.strerror or e})"
            self.attempts.append((start, outcome == "connect ok"))
            if outcome != last:
                self.events.append((start, "client", outcome))
                last = outcome
            time.sleep(0.1)


def daemon_events(d: LabProcess) -> list[Event]:
    out: list[Event] = []
    for e in d.events():
        ts = e.get("timestamp")
        if not ts:
            continue
        when = dt.datetime.fromisoformat(ts.replace("Z", "+00:00")).timestamp()
        name = e.get("event", "")
        if name == "real server state changed":
            text = f"{e['rs']}: {e['old']} -> {e['new']} ({e.get('reason')})"
        elif name == "ipvs change":
            text = f"netlink: {e['op']}"
        elif name == "probe failed":
            text = f"probe {e['rs']} failed: {e['reason']} {e.get('detail', '')}"[:110]
        elif name in (
            "lvscare started",
            "lvscare stopped; IPVS table left in place",
            "every probe timed out: this node looks stalled, no state changed",
        ):
            text = name
        else:
            continue
        out.append((when, "lvscare", text))
    return out


def main() -> None:
    events: list[Event] = []
    lab = Lab(3).build()
    with tempfile.TemporaryDirectory() as tmp:
        victim = lab.masters[1]
        # The lab's CPU is emulated, tens of times slower than hardware: one probe's TLS
        # handshake alone can take half a second there, the default timeout at --interval 1.
        argv = care_argv(lab.rs_args(), "--interval", "1", "--health-timeout", "2")
        stop = threading.Event()
        poller = threading.Thread(target=poll_table, args=(events, stop), daemon=True)
        poller.start()
        t0 = time.time()
        events.append((t0, "demo", "start lvscare " + " ".join(argv[len(LVSCARE) :])))
        daemon = start_process(argv, Path(tmp) / "lvscare.log")
        # Python starts slowly under emulation: traffic and faults begin once the table is full.
        full = "  ".join(f"{m.ip}:{PORT} w=1" for m in lab.masters)
        if not wait_until(lambda: table_text() == full, 300):
            raise SystemExit(f"lvscare did not fill the table:\n{daemon.tail()}")
        client = Client(events)
        events.append((time.time(), "demo", "table complete: a client connects every 100 ms"))
        traffic = threading.Thread(target=client.run, args=(stop,), daemon=True)
        traffic.start()
        time.sleep(3)
        events.append((time.time(), "demo", f"kill -9 apiserver on {victim.name} ({victim.ip})"))
        killed_at = time.time()
        victim.kill()
        time.sleep(6)
        events.append((time.time(), "demo", f"start the apiserver on {victim.name} again"))
        started_at = time.time()
        victim.start()
        time.sleep(6)
        stop.set()
        for t in (poller, traffic):
            t.join()
        events.append((time.time(), "demo", "SIGTERM lvscare"))
        daemon.stop()
        events.extend(daemon_events(daemon))
    lab.destroy()

    events.sort()
    print()
    print(f"{'t (s)':>8}  {'source':<8} what")
    for when, source, text in events:
        print(f"{when - t0:8.3f}  {source:<8} {text}")
    print()
    for line in summary(events, client.attempts, f"{victim.ip}:{PORT}", killed_at, started_at):
        print(line)


def summary(
    events: list[Event],
    attempts: list[tuple[float, bool]],
    victim_rs: str,
    killed_at: float,
    started_at: float,
) -> list[str]:
    """What a reader should take from the timeline, in a few lines."""
    tables = [(w, t) for w, s, t in events if s == "kernel"]

    def first(after: float, test: Callable[[str], bool]) -> float | None:
        return next((w for w, t in tables if w > after and test(t)), None)

    def ms(base: float, seen: float | None) -> str:
        return "never" if seen is None else f"{(seen - base) * 1000:.0f} ms"

    drained = first(killed_at, lambda t: f"{victim_rs} w=0" in t or victim_rs not in t)
    removed = first(killed_at, lambda t: victim_rs not in t)
    back = first(started_at, lambda t: f"{victim_rs} w=1" in t)
    # Put back while its apiserver was still down: the one thing that must never happen.
    readmitted = [
        w for w, t in tables if drained and drained < w < started_at and f"{victim_rs} w=1" in t
    ]
    failed = [w for w, ok in attempts if not ok]
    in_window = [w for w in failed if drained is not None and killed_at <= w < drained]
    others = len(failed) - len(in_window)
    return [
        "What this shows:",
        f"  the killed master stopped getting new connections {ms(killed_at, drained)} after the"
        f" kill (weight 0 in the kernel) and left the table {ms(killed_at, removed)} after it;",
        f"  it was {'never' if not readmitted else f'{len(readmitted)} times'} put back while"
        f" down, and came back {ms(started_at, back)} after its apiserver did;",
        f"  the client made {len(attempts)} connects through the VIP: {len(in_window)} failed"
        f" between the kill and the drain (sent to the dead master before lvscare saw it),"
        f" {others} at any other time.",
        "  Traffic never left the kernel: lvscare only changed the IPVS table (netlink lines).",
    ]


if __name__ == "__main__":
    main()
