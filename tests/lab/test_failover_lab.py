"""Fail over fast and safely (issue 6, points 1 to 4) on a real kernel, through netlink and
real connections through the VIP. Behaviour only: the times are printed, never asserted
(bench/failover.py measures them)."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from tests.support.lab_lvscare import (
    KEY,
    PORT,
    CareFn,
    Client,
    all_up,
    dests,
    drained,
    endpoint_get,
    metric,
)
from tests.support.labnet import Lab, Master, blackhole_together, ipvs_table
from tests.support.wait import wait_until

pytestmark = pytest.mark.kernel

FAIL_OPEN = "every real server looks down: failing open, the last healthy set stays"


def watched() -> list[bool]:
    return [s["watch_connected"] for s in json.loads(endpoint_get("/status"))["real_servers"]]


def rounds() -> int:
    return int(json.loads(endpoint_get("/status"))["rounds"])


def sysctl(name: str) -> str:
    return Path("/proc/sys", *name.split(".")).read_text().strip()


def test_a_crash_is_drained_by_the_watch_before_any_round_and_idle_closes_drain_nothing(
    lab: Lab, care: CareFn
) -> None:
    # One round at start, the next in 10 minutes; --fall 3: rounds cannot be what drains.
    d = care("--interval", "600", "--health-timeout", "3", "--fall", "3")
    assert wait_until(lambda: dests() == all_up(lab), 180), dests()
    # The fake apiserver, like kube-apiserver, closes a connection that never starts TLS
    # (after 32 s, its ReadHeaderTimeout): each master's watch connection ends that way
    # while it is healthy.
    keys = {m: f"{m.ip}:{PORT}" for m in lab.masters}

    def lost(m: Master) -> float:
        return metric("lvscare_watch_connections_lost_total", rs=keys[m])

    assert wait_until(lambda: all(lost(m) >= 2 for m in lab.masters), 150)
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


def test_every_master_down_keeps_the_last_healthy_set_but_never_a_refusing_master(
    lab: Lab, care: CareFn
) -> None:
    # Issue 15's slow node: two masters silent (a probe problem, for all lvscare can tell),
    # one killed (refused: the master's own answer). Failing open keeps the two silent ones.
    d = care("--interval", "1", "--health-timeout", "3")  # --all-down keep: the default
    assert wait_until(lambda: dests() == all_up(lab), 180), dests()
    assert metric("lvscare_fail_open") == 0
    refusing, *silent = lab.masters
    refusing.kill()  # first: were the others silent first, they would go while it was healthy
    # Both at one moment: one silent a round before the other would be drained before
    # everything went down, and then rightly not kept.
    blackhole_together(silent)
    assert wait_until(lambda: bool(d.find(FAIL_OPEN)), 60)
    assert wait_until(lambda: dests() == {m.ip: 1 for m in silent}, 60), dests()
    start = rounds()
    assert wait_until(lambda: rounds() >= start + 3, 60)
    assert dests() == {m.ip: 1 for m in silent}  # kept at their weights, round after round
    assert metric("lvscare_fail_open") == 1
    assert json.loads(endpoint_get("/status"))["fail_open"] is True
    refused_ops = [e["op"] for e in d.find("ipvs change") if refusing.ip in e["op"]]
    assert refused_ops[1:] == [  # after the first add: drained, removed, never put back
        f"set-dest {refusing.addr()} weight=0",
        f"del-dest {refusing.addr()}",
    ]

    back, still = silent[1], silent[0]
    back.unblackhole()
    assert wait_until(lambda: dests() == {back.ip: 1}, 120), dests()
    assert d.find("a real server is healthy again: fail-open ended")
    assert metric("lvscare_fail_open") == 0
    ops = [e["op"] for e in d.find("ipvs change") if still.ip in e["op"]]
    # drained as usual: weight 0 first, removal next
    assert ops[-2:] == [f"set-dest {still.addr()} weight=0", f"del-dest {still.addr()}"]


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
