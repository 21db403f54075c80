"""What one round of `lvscare care` costs in a kernel table as full as a big cluster's.

    scripts/lab python -m bench.big_table                 # 0 and 10,000 foreign services
    scripts/lab python -m bench.big_table --foreign 0,1000,10000 --seconds 60

kube-proxy in IPVS mode puts one virtual server per Service into the same table as lvscare's.
For each size the lab table is loaded with that many foreign virtual servers (3 real servers
each, tests/support/big_table.py), lvscare runs with three masters and `--interval 1`, and
after a warm-up its CPU time (utime + stime of the whole process) is divided by the rounds it
ran (/status). The lab CPU is emulated (TCG): compare the rows with each other, not with
hardware; the calibration loop gives the emulation factor.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import tempfile
import time
from pathlib import Path

from pyroute2 import AsyncIPVS

from bench.steady_state import HEALTH, calibrate, cpu_seconds
from tests.support.big_table import foreign_rules, load, own_dests
from tests.support.http_get import get
from tests.support.lab_lvscare import care_argv
from tests.support.labnet import Lab, ipvs_clear
from tests.support.wait import wait_until


def status() -> dict[str, object]:
    code, body = get(f"http://{HEALTH}/status")
    assert code == 200, body
    doc: dict[str, object] = json.loads(body)
    return doc


def one_size(lab: Lab, foreign: int, warmup: float, seconds: float) -> tuple[float, float, int]:
    """(CPU ms per round, last reconcile ms, rounds measured) with `foreign` services."""
    ipvs_clear()
    if foreign:
        load(foreign_rules(foreign))
    with tempfile.TemporaryDirectory() as tmp:
        argv = care_argv(lab.rs_args(), "--interval", "1", "--health-address", HEALTH)
        daemon = lab.spawn(argv, Path(tmp) / "lvscare.log")
        try:
            want = {m.ip: 1 for m in lab.masters}
            if not wait_until(lambda: own_dests() == want, 300):
                raise SystemExit(f"no table with the 3 masters:\n{daemon.tail()}")
            time.sleep(warmup)
            r0, c0 = int(str(status()["rounds"])), cpu_seconds(daemon.pid)
            time.sleep(seconds)
            doc = status()
            rounds, cpu = int(str(doc["rounds"])) - r0, cpu_seconds(daemon.pid) - c0
            last = doc["last_reconcile"]
            assert isinstance(last, dict)
            reconcile_ms = float(last["duration_ms"])
            changes = len(daemon.find("ipvs change"))
        finally:
            daemon.stop()
    print(
        f"  {foreign:>7} foreign  {1000 * cpu / max(rounds, 1):8.1f} ms CPU/round"
        f"  {reconcile_ms:8.1f} ms last reconcile  ({rounds} rounds, {changes} table changes)"
    )
    return 1000 * cpu / max(rounds, 1), reconcile_ms, rounds


async def _dump_seconds() -> tuple[float, int]:
    sock = AsyncIPVS()
    try:
        await sock.setup_endpoint()
        start = time.perf_counter()
        services = len(await sock.service("dump"))
        return time.perf_counter() - start, services
    finally:
        sock.close()


def dump_cost(foreign: int) -> None:
    """What every round paid before lvscare asked for its own service by key: one dump of
    the whole table through pyroute2."""
    ipvs_clear()
    if foreign:
        load(foreign_rules(foreign))
    seconds, services = asyncio.run(_dump_seconds())
    print(
        f"  {foreign:>7} foreign  {1000 * seconds:8.1f} ms for one full dump ({services} services)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--foreign", default="0,10000", help="sizes, comma-separated")
    parser.add_argument("--warmup", type=float, default=10)
    parser.add_argument("--seconds", type=float, default=30)
    args = parser.parse_args()
    sizes = [int(n) for n in args.foreign.split(",")]
    lab = Lab(3).build()
    try:
        print(f"lvscare care, 3 masters, --interval 1; {args.seconds:g} s per size")
        for n in sizes:
            one_size(lab, n, args.warmup, args.seconds)
        print("a full table dump, as each round read the table before (wall time):")
        for n in sizes:
            dump_cost(n)
    finally:
        ipvs_clear()
        lab.destroy()
    print(f"calibration  {calibrate():.3f} s for the reference loop on this machine")


if __name__ == "__main__":
    main()
