"""Real-time scheduling for the serving daemon (issue 16), on this machine's real kernel.

Each case runs in a child Python, so pytest itself never turns real-time.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import pytest

from lvscare import realtime

SCHED_OTHER, SCHED_RR = 0, 2


def child(code: str, *prefix: str) -> dict[str, object]:
    """Run `code` in a child interpreter that imports lvscare.realtime; its JSON result."""
    script = "import json, os, threading, time\nfrom lvscare import realtime\n" + textwrap.dedent(
        code
    )
    proc = subprocess.run(
        [*prefix, sys.executable, "-c", script],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    result: dict[str, object] = json.loads(proc.stdout.strip().splitlines()[-1])
    result["output"] = proc.stdout + proc.stderr
    return result


def test_every_thread_runs_round_robin_and_later_threads_and_children_start_ordinary() -> None:
    """The daemon's threads exist when it turns real-time; what starts later (a name lookup's
    executor thread, nft, modprobe) is ordinary: reset-on-fork."""
    got = child("""
        stop = threading.Event()
        worker = threading.Thread(target=stop.wait)
        worker.start()
        why_not = realtime.run_ahead(1)
        policies = sorted(realtime.policy_of_all())
        later = threading.Thread(target=stop.wait)
        later.start()
        later_policy = os.sched_getscheduler(later.native_id)
        priority = os.sched_getparam(0).sched_priority
        import subprocess, sys
        kid = subprocess.run([sys.executable, "-c", "import os; print(os.sched_getscheduler(0))"],
                             capture_output=True, text=True).stdout.strip()
        stop.set()
        print(json.dumps({"why_not": why_not, "policies": policies, "priority": priority,
                          "later": later_policy, "child": int(kid)}))
    """)
    assert got["why_not"] is None, got
    assert got["policies"] == [SCHED_RR] and got["priority"] == 1
    assert got["later"] == SCHED_OTHER and got["child"] == SCHED_OTHER


def test_a_thread_that_never_blocks_gives_real_time_up_for_good() -> None:
    """The guard: computing past the run limit without a blocking call raises SIGXCPU, and
    every thread goes back to ordinary scheduling, with a warning."""
    got = child("""
        realtime.RUN_LIMIT = 0.05
        why_not = realtime.run_ahead(1)
        before = sorted(realtime.policy_of_all())
        end = time.thread_time() + 0.5
        while time.thread_time() < end:  # pure Python: the handler runs between bytecodes
            pass
        print(json.dumps({"why_not": why_not, "before": before,
                          "after": sorted(realtime.policy_of_all())}))
    """)
    assert got["why_not"] is None and got["before"] == [SCHED_RR], got
    assert got["after"] == [SCHED_OTHER], got
    assert "real-time scheduling given up" in str(got["output"])


def test_without_cap_sys_nice_it_says_why_and_stays_ordinary() -> None:
    got = child(
        """
        why_not = realtime.run_ahead(1)
        print(json.dumps({"why_not": why_not, "policies": sorted(realtime.policy_of_all())}))
        """,
        "setpriv", "--inh-caps=-sys_nice", "--bounding-set=-sys_nice", "--",
    )  # fmt: skip
    assert got["why_not"] == "permission denied (real-time scheduling needs CAP_SYS_NICE)"
    assert got["policies"] == [SCHED_OTHER]


@pytest.mark.parametrize("priority", [0, 100])
def test_a_priority_out_of_range_is_refused(priority: int) -> None:
    with pytest.raises(ValueError, match=f"real-time priority {priority}"):
        realtime.run_ahead(priority)


def test_leaving_makes_every_thread_ordinary_again_for_shutdown() -> None:
    """At exit Python restores SIGXCPU's default action: a real-time thread that then
    computes RUN_LIMIT without blocking would kill the process (exit -24, not 0)."""
    got = child("""
        stop = threading.Event()
        worker = threading.Thread(target=stop.wait)
        worker.start()
        why_not = realtime.run_ahead(1)
        during = sorted(realtime.policy_of_all())
        realtime.leave()
        after = sorted(realtime.policy_of_all())
        stop.set()
        print(json.dumps({"why_not": why_not, "during": during, "after": after}))
    """)
    assert got["why_not"] is None, got
    assert got["during"] == [SCHED_RR] and got["after"] == [SCHED_OTHER]
