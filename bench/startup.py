"""Start-up of `lvscare care`: from exec to the first reconcile, on this machine's CPU.

A restarted static pod and every `--run-once` before `kubeadm join` pay it. Three fake
apiservers (HTTPS, RSA-2048, as kubeadm's) on loopback, the IPVS table in memory (this
kernel has no IPVS; bench/host_daemon.py). Each of --runs runs execs the daemon afresh:

- serving: exec -> the first `ipvs change` log line (its own timestamp) and -> all three
  masters added;
- `--run-once`: exec -> exit, the whole process;
- import only: exec -> exit of `python -c "import lvscare.cli, lvscare.daemon"`.

    .venv/bin/python -m bench.startup --runs 10
"""

from __future__ import annotations

import argparse
import datetime
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench.host_lab import MASTERS, care_argv, events, fake_masters

WAIT = 30.0


def serving(rs_flags: list[str], tmp: Path, n: int) -> tuple[float, float]:
    """Seconds from exec to the first table change, and to the whole table."""
    log = tmp / f"serve-{n}.log"
    argv = care_argv(rs_flags, "--interval", "1", "--health-address", "127.0.0.1:0")
    with open(log, "wb") as err:
        t0 = time.time()
        proc = subprocess.Popen(argv, stderr=err, stdout=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + WAIT
        while time.monotonic() < deadline:
            changes = [e for e in events(log) if e.get("event") == "ipvs change"]
            adds = [e for e in changes if str(e.get("op", "")).startswith("add-dest")]
            if len(adds) == len(MASTERS):
                first = datetime.datetime.fromisoformat(changes[0]["timestamp"]).timestamp()
                whole = datetime.datetime.fromisoformat(adds[-1]["timestamp"]).timestamp()
                return first - t0, whole - t0
            time.sleep(0.02)
        raise SystemExit(f"no full table within {WAIT:g} s:\n{log.read_text()[-3000:]}")
    finally:
        proc.terminate()
        proc.wait(10)


def run_once(rs_flags: list[str]) -> float:
    t0 = time.monotonic()
    done = subprocess.run(
        care_argv(rs_flags, "--run-once"), capture_output=True, text=True, timeout=WAIT
    )
    took = time.monotonic() - t0
    if done.returncode != 0:
        raise SystemExit(f"--run-once exited {done.returncode}:\n{done.stderr[-3000:]}")
    return took


def import_only() -> float:
    t0 = time.monotonic()
    subprocess.run([sys.executable, "-c", "import lvscare.cli, lvscare.daemon"], check=True)
    return time.monotonic() - t0


def line(name: str, values: list[float]) -> None:
    ms = sorted(v * 1000 for v in values)
    print(
        f"  {name:<34} median {statistics.median(ms):6.0f} ms   "
        f"min {ms[0]:6.0f}   max {ms[-1]:6.0f}"
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=10)
    opts = ap.parse_args()
    first: list[float] = []
    whole: list[float] = []
    once: list[float] = []
    imports: list[float] = []
    with tempfile.TemporaryDirectory() as tmp, fake_masters(Path(tmp)) as rs_flags:
        for n in range(opts.runs):  # interleaved, so drift on the machine hits each alike
            a, b = serving(rs_flags, Path(tmp), n)
            first.append(a)
            whole.append(b)
            once.append(run_once(rs_flags))
            imports.append(import_only())
    print(f"lvscare start-up on this machine's CPU, {opts.runs} runs, 3 masters (RSA-2048)")
    line("exec -> first reconcile (serving)", first)
    line("exec -> all 3 masters in the table", whole)
    line("--run-once, exec -> exit", once)
    line("import lvscare.cli + daemon, exit", imports)


if __name__ == "__main__":
    main()
