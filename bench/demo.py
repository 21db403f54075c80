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


def client(events: list[Event], stop: threading.Event) -> None:
    """A connection through the VIP every 100 ms; reports failures and who answered."""
    last = None
    while not stop.is_set():
        try:
            with socket.create_connection((VIP, PORT), timeout=1):
                outcome = "connect ok"
        except OSError as e:
            outcome = f"connect FAILED ({e.strerror or e})"
        if outcome != last:
            events.append((time.time(), "client", outcome))
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
        elif name in ("lvscare started", "lvscare stopped; IPVS table left in place"):
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
        argv = care_argv(lab.rs_args(), "--interval", "1")
        stop = threading.Event()
        threads = [
            threading.Thread(target=poll_table, args=(events, stop), daemon=True),
            threading.Thread(target=client, args=(events, stop), daemon=True),
        ]
        for t in threads:
            t.start()
        t0 = time.time()
        events.append((t0, "demo", "start lvscare " + " ".join(argv[len(LVSCARE) :])))
        daemon = start_process(argv, Path(tmp) / "lvscare.log")
        # Python starts slowly under emulation: the faults begin once the table is complete.
        full = "  ".join(f"{m.ip}:{PORT} w=1" for m in lab.masters)
        if not wait_until(lambda: table_text() == full, 300):
            raise SystemExit(f"lvscare did not fill the table:\n{daemon.tail()}")
        time.sleep(3)
        events.append((time.time(), "demo", f"kill -9 apiserver on {victim.name} ({victim.ip})"))
        killed_at = time.time()
        victim.kill()
        time.sleep(6)
        events.append((time.time(), "demo", f"start the apiserver on {victim.name} again"))
        started_at = time.time()
        victim.start()
        time.sleep(6)
        events.append((time.time(), "demo", "SIGTERM lvscare"))
        daemon.stop()
        time.sleep(0.5)
        stop.set()
        for t in threads:
            t.join()
        events.extend(daemon_events(daemon))
    lab.destroy()

    events.sort()
    print()
    print(f"{'t (s)':>8}  {'source':<8} what")
    for when, source, text in events:
        print(f"{when - t0:8.3f}  {source:<8} {text}")

    def first_table(after: float, test: Callable[[str], bool]) -> float | None:
        return next((w for w, s, t in events if s == "kernel" and w > after and test(t)), None)

    victim_rs = f"{victim.ip}:{PORT}"
    marks = (
        ("kill -> weight 0", killed_at, first_table(killed_at, lambda t: f"{victim_rs} w=0" in t)),
        ("kill -> removed", killed_at, first_table(killed_at, lambda t: victim_rs not in t)),
        ("restart -> back", started_at, first_table(started_at, lambda t: f"{victim_rs} w=1" in t)),
    )
    print()
    for label, base, seen in marks:
        print(f"{label:<18} {'-' if seen is None else f'{(seen - base) * 1000:.0f} ms'}")


if __name__ == "__main__":
    main()
