"""The daemon's HTTP endpoint on a real kernel, with real masters dying and coming back.

Done means of issue 3: all four paths answer throughout; /readyz 500 when every master is
down and 200 when one returns; /metrics parses with prometheus-client and its counters
follow the injected faults; /healthz 500 while the event loop is blocked on purpose;
READY=1 reaches a systemd-style socket once the virtual server is in the kernel.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import time
from collections import Counter

import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.support.background import Background
from tests.support.http_get import get as http_get
from tests.support.lab_lvscare import BLOCKING, PORT, VIP, CareFn, dests
from tests.support.labnet import Lab, Master, ipvs_clear, sh
from tests.support.wait import wait_until

pytestmark = pytest.mark.kernel

HEALTH = "127.0.0.1:10271"
BASE = f"http://{HEALTH}"
FAST = ["--interval", "1", "--health-timeout", "0.8"]
PATHS = ("/healthz", "/readyz", "/metrics", "/status")
# Every daemon here serves its endpoint where the tests ask it.
ENDPOINT = [*FAST, "--health-address", HEALTH]

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def get(path: str, timeout: float = 5) -> tuple[int, str]:
    return http_get(BASE + path, timeout)


def status_of(path: str) -> int:
    try:
        return get(path)[0]
    except OSError:
        return -1


def metrics() -> Samples:
    status, text = get("/metrics")
    assert status == 200
    out: Samples = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def m(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


def rs(master: Master) -> str:
    return master.addr()


class Poller(Background):
    """Asks all four paths every 200 ms and keeps every answer."""

    def __init__(self) -> None:
        super().__init__()
        self.answers: list[tuple[str, int | str]] = []

    def _run(self) -> None:
        while not self.stopping.is_set():
            for path in PATHS:
                try:
                    status, body = get(path, timeout=3)
                    if path == "/status":
                        json.loads(body)
                    if path == "/metrics":
                        list(text_string_to_metric_families(body))
                    self.answers.append((path, status))
                except Exception as e:  # a failed request is the finding, keep going
                    self.answers.append((path, f"{type(e).__name__}: {e}"))
            time.sleep(0.2)


def test_all_four_paths_answer_while_masters_die_and_come_back(lab: Lab, care: CareFn) -> None:
    d = care(*ENDPOINT)
    all_up = {master.ip: 1 for master in lab.masters}
    assert wait_until(lambda: dests() == all_up, 60), dests()
    assert wait_until(lambda: status_of("/readyz") == 200, 30)
    before = metrics()
    a, b, c = lab.masters
    with Poller() as poller:
        b.kill()  # refused
        assert wait_until(lambda: b.ip not in dests(), 30), dests()
        b.start()
        assert wait_until(lambda: dests() == all_up, 30), dests()
        a.blackhole()  # timeout
        try:
            assert wait_until(lambda: a.ip not in dests(), 30), dests()
        finally:
            a.unblackhole()
        assert wait_until(lambda: dests() == all_up, 30), dests()
        c.set_mode("fail")  # HTTP 500
        assert wait_until(lambda: c.ip not in dests(), 30), dests()
        c.set_mode("ok")
        assert wait_until(lambda: dests() == all_up, 30), dests()
    assert d.running()

    answered = Counter(path for path, status in poller.answers if isinstance(status, int))
    failed = [(path, s) for path, s in poller.answers if not isinstance(s, int)]
    print(f"endpoint answers during the faults: {dict(answered)}")
    assert failed == []
    assert all(answered[path] >= 10 for path in PATHS), answered
    assert {s for path, s in poller.answers if path == "/healthz"} == {200}
    assert {s for path, s in poller.answers if path in ("/metrics", "/status")} == {200}

    after = metrics()

    def grew(name: str, **labels: str) -> float:
        return m(after, name, **labels) - m(before, name, **labels)

    assert grew("lvscare_probe_failures_total", rs=rs(b), reason="refused") >= 1
    assert grew("lvscare_probe_failures_total", rs=rs(a), reason="timeout") >= 1
    assert grew("lvscare_probe_failures_total", rs=rs(c), reason="status") >= 1
    assert grew("lvscare_probe_failures_total", rs=rs(a), reason="refused") == 0
    for master in (a, b, c):
        for old, new in (("up", "draining"), ("draining", "down"), ("down", "up")):
            labels = {"rs": rs(master), "from_state": old, "to_state": new}
            assert grew("lvscare_real_server_transitions_total", **labels) >= 1, (master, old)
    assert grew("lvscare_ipvs_changes_total", op="del-dest") >= 3
    assert grew("lvscare_ipvs_changes_total", op="add-dest") >= 3
    assert grew("lvscare_reconcile_runs_total") >= 10
    assert m(after, "lvscare_reconcile_errors_total") == 0
    assert grew("lvscare_probe_duration_seconds_count", rs=rs(a)) >= 10
    assert all(m(after, "lvscare_real_server_up", rs=rs(x)) == 1 for x in (a, b, c))
    assert m(after, "lvscare_virtual_server_present") == 1
    assert m(after, "process_resident_memory_bytes") > 0

    doc = json.loads(get("/status")[1])
    assert doc["virtual_server"]["in_kernel"] is True
    assert [s["state"] for s in doc["real_servers"]] == ["up", "up", "up"]
    assert [s["kernel_weight"] for s in doc["real_servers"]] == [1, 1, 1]


def test_readyz_is_500_when_every_master_is_down_and_200_when_one_returns(
    lab: Lab, care: CareFn
) -> None:
    care(*ENDPOINT)
    assert wait_until(lambda: status_of("/readyz") == 200, 60)
    for master in lab.masters:
        master.kill()
    try:
        # Every master refuses: the master's own answer, so failing open keeps none. Wait
        # for the table to settle (the last one goes at once by its watch, then by a round).
        assert wait_until(lambda: status_of("/readyz") == 500 and dests() == {}, 60), dests()
        status, body = get("/readyz")
        print(f"/readyz with every master down: {status} {body.strip()}")
        assert body.startswith("not ready: no healthy real server: ") and body.count("\n") == 1
        assert all(f"{rs(x)} " in body for x in lab.masters), body
        assert body.rstrip().endswith("(failing open, but every failure was definite: none kept)")
        assert status_of("/healthz") == 200  # the daemon itself is fine
        doc = json.loads(get("/status")[1])
        assert doc["ready"] is False
        # A probe in flight at the kill sees a reset instead of a refusal.
        assert {s["last_probe"]["reason"] for s in doc["real_servers"]} <= {"refused", "reset"}
        assert doc["fail_open"] is True
        lab.masters[1].start()
        assert wait_until(lambda: status_of("/readyz") == 200, 30)
        status, body = get("/readyz")
        print(f"/readyz with one master back: {status} {body.strip()}")
        assert "1/3 real servers serving" in body
    finally:
        for master in lab.masters:
            master.start()


def test_someone_elses_edit_is_counted_as_a_drift_repair(lab: Lab, care: CareFn) -> None:
    care(*ENDPOINT)
    all_up = {master.ip: 1 for master in lab.masters}
    assert wait_until(lambda: dests() == all_up, 60)
    before = m(metrics(), "lvscare_drift_repairs_total")
    vs = f"{VIP}:{PORT}"
    sh("ipvsadm", "-d", "-t", vs, "-r", rs(lab.masters[0]))
    assert wait_until(lambda: dests() == all_up, 30)
    assert wait_until(lambda: m(metrics(), "lvscare_drift_repairs_total") == before + 1, 10)


def test_healthz_is_500_while_the_event_loop_is_blocked_on_purpose(lab: Lab, care: CareFn) -> None:
    d = care(*ENDPOINT, command=BLOCKING, env={"LVSCARE_BLOCK_SECONDS": "6"})
    assert wait_until(lambda: status_of("/healthz") == 200, 60)
    d.signal(signal.SIGUSR1)
    t0 = time.monotonic()
    assert wait_until(lambda: status_of("/healthz") == 500, 5)
    status, body = get("/healthz")
    print(f"/healthz {time.monotonic() - t0:.1f}s into the block: {status} {body.strip()}")
    assert body.startswith("unhealthy: ")
    assert get("/status")[0] == 200  # still answering
    assert wait_until(lambda: status_of("/healthz") == 200, 30)
    print(f"/healthz 200 again {time.monotonic() - t0:.1f}s after the block began")
    assert d.running()


def test_systemd_gets_ready_once_the_virtual_server_is_in_the_kernel(
    lab: Lab, care: CareFn
) -> None:
    # An abstract socket, as systemd may hand out: /tmp in the VM is an overlay on the host's
    # /tmp, which the host changes underneath it, so a socket file there is not reliable.
    name = f"lvscare-lab-notify-{os.getpid()}"
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    listener.bind("\0" + name)
    listener.settimeout(60)
    ipvs_clear()
    d = care(*ENDPOINT, env={"NOTIFY_SOCKET": "@" + name})
    message = listener.recv(4096).decode().split("\n")
    table = dests()
    assert message[0] == "READY=1"
    assert table == {master.ip: 1 for master in lab.masters}
    assert d.find("systemd notified", state="READY=1")
    assert d.stop().code == 0
    listener.settimeout(5)
    assert listener.recv(4096).decode().startswith("STOPPING=1")
