"""Steady-state cost of `lvscare care`: resident memory and CPU, three masters, --interval 1.

Two ways to run it, both print the same figures:

    scripts/lab python -m bench.steady_state        # real kernel (IPVS over netlink), emulated CPU
    .venv/bin/python -m bench.steady_state --host   # this machine's CPU, IPVS table in memory

Both start three fake apiservers (tests/support/fake_apiserver.py: HTTPS, keep-alive, a real TLS
certificate) and the real daemon with every default (HTTPS probes, connection watches, the
health endpoint), wait until the table holds the three masters, let it settle (--warmup), then
sample /proc/PID every second for --seconds: CPU is utime + stime of the whole process (every
thread) over wall time, and exactly (schedstat: nanoseconds on a CPU, every thread); RSS is
VmRSS. /metrics is scraped every 10 s, as Prometheus would.

The lab VM runs under software emulation (TCG): its CPU figures are many times those of
hardware. `--host` measures on hardware, with the only difference that the IPVS table is a
dict (the real netlink read per round is left out; modules, sysctls and routes are skipped).
Each run also times a fixed pure-Python loop ("calibration"), so the emulation factor can be
read off and divided out.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

VIP, PORT = "10.103.97.2", 6443
HEALTH = "127.0.0.1:10271"
CLK_TCK = os.sysconf("SC_CLK_TCK")


def calibrate() -> float:
    """Seconds for a fixed pure-Python workload (best of 3)."""
    best = float("inf")
    for _ in range(3):
        t0 = time.perf_counter()
        total = 0
        for i in range(2_000_000):
            total += i % 7
        best = min(best, time.perf_counter() - t0)
    return best


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK  # utime, stime


def oncpu_seconds(pid: int) -> float:
    """Time every thread has spent on a CPU, to the nanosecond (schedstat); utime + stime
    are sampled at the tick (10 ms), coarse for a daemon that uses a few ms a second."""
    total = 0
    for task in Path(f"/proc/{pid}/task").iterdir():
        total += int((task / "schedstat").read_text().split()[0])
    return total / 1e9


def status_kib(pid: int, key: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1])
    raise KeyError(key)


def measure(pid: int, warmup: float, seconds: float) -> dict[str, Any]:
    time.sleep(warmup)
    rss: list[int] = []
    t0, c0, o0 = time.monotonic(), cpu_seconds(pid), oncpu_seconds(pid)
    scrapes = 0
    while time.monotonic() - t0 < seconds:
        rss.append(status_kib(pid, "VmRSS"))
        if len(rss) % 10 == 1:
            with urllib.request.urlopen(f"http://{HEALTH}/metrics", timeout=5) as r:
                r.read()
            scrapes += 1
        time.sleep(1)
    wall, cpu, oncpu = time.monotonic() - t0, cpu_seconds(pid) - c0, oncpu_seconds(pid) - o0
    return {
        "rss_mean": statistics.mean(rss) / 1024,
        "rss_max": max(rss) / 1024,
        "hwm": status_kib(pid, "VmHWM") / 1024,
        "cpu": cpu,
        "oncpu": oncpu,
        "wall": wall,
        "threads": len(os.listdir(f"/proc/{pid}/task")),
        "scrapes": scrapes,
    }


def report(where: str, f: dict[str, Any], warmup: float, failed: int, changes: int) -> None:
    print(f"lvscare care, 3 masters, --interval 1, {f['wall']:.0f} s after {warmup:.0f} s warm-up")
    print(f"  where        {where}")
    print(f"  RSS          mean {f['rss_mean']:.1f} MiB, max {f['rss_max']:.1f} MiB, "
          f"peak (VmHWM) {f['hwm']:.1f} MiB")  # fmt: skip
    print(f"  CPU          {f['cpu']:.2f} s over {f['wall']:.1f} s = "
          f"{100 * f['cpu'] / f['wall']:.2f} % of one core (ticks); on a CPU "
          f"{f['oncpu']:.3f} s = {100 * f['oncpu'] / f['wall']:.3f} % (schedstat)")  # fmt: skip
    print(f"  threads      {f['threads']}; /metrics scraped {f['scrapes']} times")
    print(f"  sanity       {failed} failed probes, {changes} table changes in the whole run")
    print(f"  calibration  {calibrate():.3f} s for the reference loop on this machine")


def run_lab(warmup: float, seconds: float) -> None:
    from tests.support.lab_lvscare import care_argv
    from tests.support.labnet import Lab, ipvs_table
    from tests.support.wait import wait_until

    lab = Lab(3).build()
    try:
        with tempfile.TemporaryDirectory() as tmp:
            argv = care_argv(lab.rs_args(), "--interval", "1", "--health-address", HEALTH)
            daemon = lab.spawn(argv, Path(tmp) / "lvscare.log")
            want = {(m.ip, PORT): 1 for m in lab.masters}

            def table_ok() -> bool:
                service = ipvs_table().get((VIP, PORT))
                return service is not None and service["dests"] == want

            if not wait_until(table_ok, 120):
                raise SystemExit(f"no table with the 3 masters:\n{daemon.tail()}")
            figures = measure(daemon.pid, warmup, seconds)
            assert daemon.running(), "lvscare exited during the run:\n" + daemon.tail()
            failed, changes = len(daemon.find("probe failed")), len(daemon.find("ipvs change"))
            daemon.stop()
    finally:
        lab.destroy()
    report("lab VM: real IPVS over netlink, CPU emulated (TCG)", figures, warmup, failed, changes)


def run_host(warmup: float, seconds: float) -> None:
    from bench.host_lab import MASTERS, care_argv, events, fake_masters
    from tests.support.wait import wait_until

    with tempfile.TemporaryDirectory() as tmp, fake_masters(Path(tmp)) as rs_flags:
        log = Path(tmp) / "lvscare.log"
        argv = care_argv(rs_flags, "--interval", "1", "--health-address", HEALTH)
        with open(log, "wb") as err:
            daemon = subprocess.Popen(argv, stderr=err, stdout=subprocess.DEVNULL)
        try:

            def table_ok() -> bool:
                adds = [e for e in events(log) if str(e.get("op", "")).startswith("add-dest")]
                return len(adds) == len(MASTERS)

            if not wait_until(table_ok, 60):
                raise SystemExit(f"no table with the 3 masters:\n{log.read_text()[-3000:]}")
            figures = measure(daemon.pid, warmup, seconds)
            assert daemon.poll() is None, log.read_text()[-3000:]
            evs = events(log)
            failed = sum(1 for e in evs if e.get("event") == "probe failed")
            changes = sum(1 for e in evs if e.get("event") == "ipvs change")
        finally:
            daemon.terminate()
            daemon.wait(10)
    report("host: this machine's CPU, IPVS table in memory", figures, warmup, failed, changes)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--warmup", type=float, default=20)
    parser.add_argument("--seconds", type=float, default=60)
    parser.add_argument("--host", action="store_true", help="on this machine, table in memory")
    parser.add_argument("--calibrate", action="store_true", help="only time the reference loop")
    opts = parser.parse_args()
    if opts.calibrate:
        print(f"calibration  {calibrate():.3f} s for the reference loop on this machine")
    elif opts.host:
        run_host(opts.warmup, opts.seconds)
    else:
        run_lab(opts.warmup, opts.seconds)


if __name__ == "__main__":
    main()
