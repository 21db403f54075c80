"""A slow node must not make things worse (issue 15, point 0), on a real kernel.

lvscare is starved of CPU on purpose (SIGSTOP / SIGCONT bursts: the process gets no CPU at
all for longer than a probe's timeout, as behind a throttled cgroup or a long pause) while
one master is killed. Behaviour only; the figures are printed, never asserted.
"""

from __future__ import annotations

import signal
import time

import pytest

from tests.support.background import Background
from tests.support.lab_lvscare import CareFn, Client, all_up, dests, drained, metric
from tests.support.labnet import Lab, LabProcess
from tests.support.wait import wait_until

pytestmark = pytest.mark.kernel

STOPPED, RUNNING = 2.0, 1.0  # seconds of each burst: off the CPU, then on it


class Starver(Background):
    """SIGSTOP / SIGCONT bursts on one process, until left (and then SIGCONT)."""

    def __init__(self, process: LabProcess) -> None:
        super().__init__()
        self.process = process
        self.bursts = 0

    def _run(self) -> None:
        while not self.stopping.is_set():
            self.process.signal(signal.SIGSTOP)
            self.bursts += 1
            self.stopping.wait(STOPPED)
            self.process.signal(signal.SIGCONT)
            self.stopping.wait(RUNNING)

    def __exit__(self, *exc: object) -> None:
        super().__exit__(*exc)
        self.process.signal(signal.SIGCONT)


class TablePoller(Background):
    """The kernel table every 200 ms: (time, {ip: weight})."""

    def __init__(self) -> None:
        super().__init__()
        self.samples: list[tuple[float, dict[str, int]]] = []

    def _run(self) -> None:
        while not self.stopping.is_set():
            self.samples.append((time.monotonic(), dests()))
            self.stopping.wait(0.2)


def test_a_starved_lvscare_never_readmits_a_killed_master_nor_removes_a_healthy_one(
    lab: Lab, care: CareFn
) -> None:
    # The probes' timeout is shorter than a stop: every probe a burst overlaps times out.
    d = care("--interval", "1", "--health-timeout", "1.5")
    assert wait_until(lambda: dests() == all_up(lab), 180), dests()
    victim, *healthy = lab.masters
    # A TLS connect gets 5 s: on the emulated CPU, with lvscare running real-time between its
    # stops, one lost SYN (retransmitted after 1 s) and a slow handshake can pass 3 s while
    # the master is healthy and in the table (the chaos run's client gives 5 s for the same).
    with TablePoller() as table, Client(timeout=5) as client, Starver(d) as starver:
        assert wait_until(lambda: starver.bursts >= 3, 60)
        victim.kill()
        assert wait_until(lambda: drained(victim.ip), 120), dests()
        seen_drained = time.monotonic()
        assert wait_until(lambda: starver.bursts >= 12, 120)
    assert wait_until(lambda: victim.ip not in dests(), 60), dests()
    assert dests() == {m.ip: 1 for m in healthy}

    # The killed master, once out, never came back at a weight.
    out_at = next(t for t, w in table.samples if w and w.get(victim.ip, 0) == 0)
    readmitted = [(t, w) for t, w in table.samples if t > out_at and w.get(victim.ip, 0) > 0]
    assert readmitted == []
    # No healthy master ever left the table or lost its weight.
    dropped = [(t, w) for t, w in table.samples if any(w.get(m.ip) != 1 for m in healthy)]
    assert dropped == []
    # No connection after the drain failed (the killed master was the only one down).
    after = [r for t, r in client.attempts if t >= seen_drained]
    assert [r for r in after if r.startswith("failed")] == []

    failed_before = [r for t, r in client.attempts if t < seen_drained and r.startswith("failed")]
    stalled = sum(
        metric("lvscare_probe_failures_total", rs=m.addr(), reason="stalled") for m in lab.masters
    )
    print(
        f"bursts: {starver.bursts} ({STOPPED:g} s stopped, {RUNNING:g} s running);"
        f" probes taken as stalls: {stalled:g};"
        f" rounds taken as stalls: {metric('lvscare_stalled_rounds_total'):g};"
        f" connects: {len(client.attempts)}, failed before the drain: {len(failed_before)},"
        f" after it: 0 of {len(after)}; table samples: {len(table.samples)}"
    )
    transitions = [
        (e["rs"], e["old"], e["new"], e["reason"]) for e in d.find("real server state changed")
    ]
    print(f"state changes: {transitions}")
    assert all(rs == victim.addr() for rs, *_ in transitions), transitions
