"""A busy node (issue 16), on a real kernel: kept-alive probe connections and real-time
scheduling.

A round costs a request on the connection the last round left open, not a TLS handshake; a
master that closes that connection is probed again on a fresh one at once, and one whose
kept connection hangs is failed by the timeout exactly as a hung master always was. The fake
apiserver logs each request's peer as ``ip:port/n`` (n: the request's number on its
connection), which tells a kept connection from a fresh one.

While serving, every thread of lvscare runs SCHED_RR at priority 1 unless --rt-priority 0.
"""

from __future__ import annotations

import os
import time

import pytest

from tests.support.lab_lvscare import PORT, CareFn, all_up, dests, drained
from tests.support.labnet import Lab, Master
from tests.support.wait import wait_until

pytestmark = pytest.mark.kernel

FLAGS = ("--interval", "1", "--health-timeout", "2")


def probes(m: Master) -> list[tuple[str, int, str]]:
    """lvscare's /healthz requests to `m`: (connection ip:port, request number on it, outcome)."""
    out = []
    for line in m.requests():
        parts = line.split()
        if len(parts) == 5 and parts[3] == "/healthz" and "/" in parts[1]:
            conn, _, n = parts[1].rpartition("/")
            out.append((conn, int(n), parts[4]))
    return out


def test_each_round_reuses_the_connection_the_last_round_left_open(lab: Lab, care: CareFn) -> None:
    care(*FLAGS)
    assert wait_until(lambda: dests() == all_up(lab), 180), dests()
    m = lab.masters[0]
    seen = len(probes(m))
    assert wait_until(lambda: len(probes(m)) >= seen + 6, 120)
    recent = probes(m)[seen:]
    connections = {conn for conn, _, _ in recent}
    # A probe the watch asks for between two rounds may open a second one: a handful at most.
    assert len(connections) <= len(recent) // 3, recent
    assert max(n for _, n, _ in recent) >= 4, recent
    assert all(outcome == "200" for _, _, outcome in recent), recent


def test_a_master_that_closes_the_kept_connection_is_probed_on_a_fresh_one_and_stays_in(
    lab: Lab, care: CareFn
) -> None:
    d = care(*FLAGS)
    assert wait_until(lambda: dests() == all_up(lab), 180), dests()
    m = lab.masters[1]
    m.set_mode("close-kept")
    since = len(probes(m))
    weights = []
    end = time.monotonic() + 8
    while time.monotonic() < end:  # eight rounds, the table sampled every 200 ms
        weights.append(dests().get(m.ip))
        time.sleep(0.2)
    recent = probes(m)[since:]
    assert weights and set(weights) == {1}, weights
    assert any(outcome == "closed" for _, _, outcome in recent), recent
    # Each closed request was followed at once by the same probe on a new connection.
    answered = [(conn, n) for conn, n, outcome in recent if outcome == "200"]
    assert answered and all(n == 1 for _, n in answered), recent
    assert d.find("probe failed", rs=f"{m.ip}:{PORT}") == []


def test_a_master_whose_kept_connection_hangs_is_failed_by_the_timeout(
    lab: Lab, care: CareFn
) -> None:
    d = care(*FLAGS)
    assert wait_until(lambda: dests() == all_up(lab), 180), dests()
    m = lab.masters[2]
    since = len(probes(m))
    m.set_mode("hang-kept")
    assert wait_until(lambda: drained(m.ip), 60), dests()
    failures = d.find("probe failed", rs=f"{m.ip}:{PORT}")
    assert failures and failures[0]["reason"] == "timeout", failures
    # A hung connection is never used again: the next probe opens a fresh one, which this
    # master answers, so it comes back (and hangs again on the round after).
    assert wait_until(
        lambda: any(n == 1 and out == "200" for _, n, out in probes(m)[since + 1 :]), 60
    ), probes(m)[since:]
    seen = probes(m)[since:]
    for i, (conn, _, out) in enumerate(seen):
        if out == "hang":
            assert all(later != conn for later, _, _ in seen[i + 1 :]), seen
    m.set_mode("ok")
    assert wait_until(lambda: dests() == all_up(lab), 60), dests()


SCHED_OTHER, SCHED_RR = os.SCHED_OTHER, os.SCHED_RR


def thread_policies(pid: int) -> list[tuple[int, int]]:
    """(policy without the reset-on-fork flag, priority) of every thread of `pid`."""
    out = []
    for tid in os.listdir(f"/proc/{pid}/task"):
        policy = os.sched_getscheduler(int(tid)) & ~os.SCHED_RESET_ON_FORK
        out.append((policy, os.sched_getparam(int(tid)).sched_priority))
    return out


def test_the_serving_daemon_runs_every_thread_real_time_at_the_lowest_priority(
    lab: Lab, care: CareFn
) -> None:
    d = care(*FLAGS)
    assert wait_until(lambda: d.find("lvscare started"), 180), d.tail()
    assert d.find("lvscare started")[0]["realtime_priority"] == 1
    policies = thread_policies(d.pid)
    assert len(policies) >= 3 and set(policies) == {(SCHED_RR, 1)}, policies
    assert wait_until(lambda: dests() == all_up(lab), 180), dests()


def test_rt_priority_0_keeps_lvscare_an_ordinary_process(lab: Lab, care: CareFn) -> None:
    d = care(*FLAGS, "--rt-priority", "0")
    assert wait_until(lambda: d.find("lvscare started"), 180), d.tail()
    assert d.find("lvscare started")[0]["realtime_priority"] is None
    assert set(thread_policies(d.pid)) == {(SCHED_OTHER, 0)}
