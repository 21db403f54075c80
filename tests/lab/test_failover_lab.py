"""Fail over fast and safely (issue 6, points 1 to 4) on a real kernel, through netlink and
real connections through the VIP. Behaviour only: the times are printed, never asserted
(bench/failover.py measures them)."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.support.http_get import get as http_get
from tests.support.lab_lvscare import KEY, PORT, VIP, CareFn, all_up, dests
from tests.support.labnet import (
    ConnectFailed,
    Lab,
    Master,
    connect_via,
    ipvs_table,
)
from tests.support.wait import wait_until

pytestmark = pytest.mark.kernel

ENDPOINT = "http://127.0.0.1:10271"  # the default --health-address
FAIL_OPEN = "every real server looks down: failing open, all stay in the table"


def drained(ip: str) -> bool:
    """No new connection can land on `ip`: weight 0 or gone, in a table that exists."""
    table = dests()
    return bool(table) and table.get(ip, 0) == 0


def get(path: str) -> str:
    status, body = http_get(ENDPOINT + path)
    assert status == 200, f"{path}: {status} {body}"
    return body


def metric(name: str, **labels: str) -> float:
    for family in text_string_to_metric_families(get("/metrics")):
        for s in family.samples:
            if s.name == name and s.labels == labels:
                return float(s.value)
    raise AssertionError(f"no sample {name} {labels}")


def watched() -> list[bool]:
    return [s["watch_connected"] for s in json.loads(get("/status"))["real_servers"]]


def rounds() -> int:
    return int(json.loads(get("/status"))["rounds"])


def sysctl(name: str) -> str:
    return Path("/proc/sys", *name.split(".")).read_text().strip()


def test_a_crash_is_drained_by_the_watch_before_any_round_and_idle_closes_drain_nothing(
    lab: Lab, care: CareFn
) -> None:
    # One round at start, the next in 10 minutes; --fall 3: rounds cannot be what drains.
    d = care("--interval", "600", "--health-timeout", "3", "--fall", "3")
    assert wait_until(lambda: dests() == all_up(lab), 180), dests()
    # The fake apiserver, like kube-apiserver, closes a connection that never starts TLS
    # (after 10 s): each master's watch connection ends that way while it is healthy.
    keys = {m: f"{m.ip}:{PORT}" for m in lab.masters}

    def lost(m: Master) -> float:
        return metric("lvscare_watch_connections_lost_total", rs=keys[m])

    assert wait_until(lambda: all(lost(m) >= 2 for m in lab.masters), 90)
    assert dests() == all_up(lab)
    assert d.find("real server state changed") == []
    assert rounds() == 1
    assert wait_until(lambda: all(watched()), 30)

    victim = lab.masters[1]
    t0 = time.monotonic()
    victim.kill()
    assert wait_until(lambda: drained(victim.ip), 60), dests()
    print(f"killed master at weight 0 after {time.monotonic() - t0:.3f} s (as seen by polling)")
    assert rounds() == 1  # no round ran: the watch did it
    changes = d.find("real server state changed", rs=keys[victim])
    assert [(c["old"], c["new"], c["reason"]) for c in changes] == [
        ("up", "draining", "connection lost")
    ]
    ops = [e["op"] for e in d.find("ipvs change") if victim.ip in e["op"]]
    assert ops[-1] == f"set-dest {keys[victim]} weight=0"
    assert dests() == {m.ip: 0 if m is victim else 1 for m in lab.masters}


def test_blackholed_and_hung_masters_are_drained_with_the_default_timeout(
    lab: Lab, care: CareFn
) -> None:
    d = care("--interval", "1")  # and the default --health-timeout
    assert wait_until(lambda: dests() == all_up(lab), 180), dests()
    silent, hung = lab.masters[0], lab.masters[2]

    effective = silent.blackhole()
    try:
        assert wait_until(lambda: drained(silent.ip), 60), dests()
        print(f"blackholed master drained after {time.time() - effective:.3f} s")
    finally:
        silent.unblackhole()
    assert d.find("probe failed", rs=f"{silent.ip}:{PORT}", reason="timeout")
    assert wait_until(lambda: dests() == all_up(lab), 120), dests()

    t0 = time.monotonic()
    hung.set_mode("hang")  # accepts TCP and TLS, never answers /healthz
    try:
        assert wait_until(lambda: drained(hung.ip), 60), dests()
        print(f"hung master drained after {time.monotonic() - t0:.3f} s")
    finally:
        hung.set_mode("ok")
    assert d.find("probe failed", rs=f"{hung.ip}:{PORT}", reason="timeout")
    assert wait_until(lambda: dests() == all_up(lab), 120), dests()


class Client:
    """Fresh TLS connections through the VIP, one after another, each with its start time."""

    def __init__(self) -> None:
        self.attempts: list[tuple[float, str]] = []  # (start, master name | "failed: why")
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            start = time.monotonic()
            try:
                self.attempts.append((start, connect_via(VIP, PORT, timeout=3)))
            except (ConnectFailed, OSError) as e:
                self.attempts.append((start, f"failed: {e}"))

    def __enter__(self) -> Client:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(10)


def test_no_new_connection_fails_once_a_killed_master_is_drained(lab: Lab, care: CareFn) -> None:
    care("--interval", "1", "--health-timeout", "3")
    assert wait_until(lambda: dests() == all_up(lab), 180), dests()
    # As kube-proxy sets them: old connection entries never route new connections to a
    # drained or removed server.
    assert sysctl("net.ipv4.vs.expire_nodest_conn") == "1"
    assert sysctl("net.ipv4.vs.expire_quiescent_template") == "1"
    victim = lab.masters[0]
    with Client() as client:
        assert wait_until(lambda: len(client.attempts) >= 5, 60)
        victim.kill()
        assert wait_until(lambda: drained(victim.ip), 60), dests()
        seen_drained = time.monotonic()
        assert wait_until(lambda: victim.ip not in dests(), 60), dests()
        count = len(client.attempts)
        assert wait_until(lambda: len(client.attempts) >= count + 20, 120)
    before = [r for t, r in client.attempts if t < seen_drained and r.startswith("failed")]
    after = [(t, r) for t, r in client.attempts if t >= seen_drained]
    print(f"failed connects before the drain was seen: {len(before)} {before[:3]}")
    print(f"connects after the drain: {len(after)}")
    assert [r for _, r in after if r.startswith("failed")] == []
    assert {r for _, r in after} == {m.name for m in lab.masters if m is not victim}


def test_every_master_down_fails_open_and_the_first_one_back_drains_the_others(
    lab: Lab, care: CareFn
) -> None:
    d = care("--interval", "1", "--health-timeout", "3")  # --all-down keep: the default
    assert wait_until(lambda: dests() == all_up(lab), 180), dests()
    assert metric("lvscare_fail_open") == 0
    for m in lab.masters:
        m.kill()
    assert wait_until(lambda: bool(d.find(FAIL_OPEN)), 60)
    start = rounds()
    assert wait_until(lambda: rounds() >= start + 3, 60)
    assert dests() == all_up(lab)  # kept at their weights, round after round
    assert metric("lvscare_fail_open") == 1
    assert json.loads(get("/status"))["fail_open"] is True

    back = lab.masters[1]
    back.start()
    assert wait_until(lambda: dests() == {back.ip: 1}, 120), dests()
    assert d.find("a real server is healthy again: fail-open ended")
    assert metric("lvscare_fail_open") == 0
    for m in lab.masters:
        if m is not back:
            ops = [e["op"] for e in d.find("ipvs change") if m.ip in e["op"]]
            # drained as usual: weight 0 first, removal next
            assert ops[-2:] == [f"set-dest {m.ip}:{PORT} weight=0", f"del-dest {m.ip}:{PORT}"]


def test_all_down_drain_empties_the_table_and_refills_it_as_masters_return(
    lab: Lab, care: CareFn
) -> None:
    d = care("--interval", "1", "--health-timeout", "3", "--all-down", "drain")
    assert wait_until(lambda: dests() == all_up(lab), 180), dests()
    for m in lab.masters:
        m.kill()
    assert wait_until(lambda: KEY in ipvs_table() and dests() == {}, 60), dests()
    assert not d.find(FAIL_OPEN)
    first = lab.masters[2]
    first.start()
    assert wait_until(lambda: dests() == {first.ip: 1}, 120), dests()
