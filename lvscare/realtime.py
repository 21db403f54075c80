"""Running ahead of a busy node's workloads: real-time round-robin at a low priority.

On a node whose CPUs its pods keep busy, an ordinary process waits its turn after every
wake-up: lvscare's reaction to a crashed master (a watch connection's end, one refused
connect, one netlink call) took two such turns, hundreds of milliseconds each in the busy
lab. A SCHED_RR thread runs as soon as it is woken, ahead of every ordinary task; priority 1
is the lowest real-time level, below the kernel's own threads. keepalived offers the same
(`checker_rt_priority`, guarded by `checker_rlimit_rttime`).

The guard: RLIMIT_RTTIME. A thread that computes for RUN_LIMIT seconds without once blocking
gets SIGXCPU, and lvscare then gives real-time scheduling up for good (every thread back to
ordinary, a warning logged); one that still does not block is killed GRACE seconds later
(kubelet restarts the pod; the table stays). lvscare's work between two waits is a few
milliseconds on hardware, so only a bug could reach the limit. What starts later (a name
lookup's executor thread, nft) starts ordinary (SCHED_RESET_ON_FORK).
"""

from __future__ import annotations

import contextlib
import errno
import os
import resource
import signal
from types import FrameType

import structlog

log = structlog.get_logger("lvscare.realtime")

RUN_LIMIT = 0.5  # seconds of CPU without blocking before SIGXCPU (emulated labs are slow)
GRACE = 2.0  # further seconds before the kernel sends SIGKILL
MAX_PRIORITY = 99


def _threads() -> list[int]:
    return [int(tid) for tid in os.listdir("/proc/self/task")]


def _set_all(policy: int, priority: int) -> None:
    for tid in _threads():
        with contextlib.suppress(ProcessLookupError):  # the thread ended meanwhile
            os.sched_setscheduler(tid, policy, os.sched_param(priority))


def give_up(signum: int | None = None, frame: FrameType | None = None) -> None:
    """SIGXCPU: some thread computed RUN_LIMIT without blocking; be ordinary from now on."""
    _set_all(os.SCHED_OTHER, 0)
    log.warning(
        "real-time scheduling given up: a thread ran without blocking for too long",
        limit_s=RUN_LIMIT,
    )


def leave() -> None:
    """Every thread ordinary again, for shutdown: once serving is over nothing needs to run
    ahead, and at interpreter exit Python puts SIGXCPU back to its default action, which
    would kill a real-time thread whose teardown computes RUN_LIMIT without blocking (seen
    in the emulated lab: exit -24 instead of 0)."""
    with contextlib.suppress(OSError):
        _set_all(os.SCHED_OTHER, 0)


def run_ahead(priority: int) -> str | None:
    """Every thread lvscare has now real-time at `priority` (threads and processes started
    later are ordinary); None when done, else why not (lvscare then runs as an ordinary
    process, which still works)."""
    if not 1 <= priority <= MAX_PRIORITY:
        raise ValueError(f"real-time priority {priority}: use 1 to {MAX_PRIORITY}")
    soft = int(RUN_LIMIT * 1_000_000)
    hard = int((RUN_LIMIT + GRACE) * 1_000_000)
    try:
        resource.setrlimit(resource.RLIMIT_RTTIME, (soft, hard))
    except (ValueError, OSError) as e:
        return f"cannot bound real-time CPU (RLIMIT_RTTIME): {e}"
    signal.signal(signal.SIGXCPU, give_up)
    try:
        _set_all(os.SCHED_RR | os.SCHED_RESET_ON_FORK, priority)
    except OSError as e:
        _set_all(os.SCHED_OTHER, 0)
        signal.signal(signal.SIGXCPU, signal.SIG_DFL)
        # The bound stays lower (raising it back needs CAP_SYS_RESOURCE); it only ever
        # applies to real-time threads, and there are none.
        if e.errno == errno.EPERM:
            return "permission denied (real-time scheduling needs CAP_SYS_NICE)"
        return f"{e.strerror or e}"
    return None


def policy_of_all() -> set[int]:
    """The scheduling policy of every thread (without the reset-on-fork flag): for tests."""
    return {os.sched_getscheduler(tid) & ~os.SCHED_RESET_ON_FORK for tid in _threads()}
