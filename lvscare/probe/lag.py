"""How long lvscare could not run while a probe was in flight: a timeout is only news about
a master when lvscare itself was running meanwhile.

On a starved node (pods using every CPU, a throttled cgroup, a stopped process, a long
pause) a probe's timer fires after its master had no chance to be heard: blaming the master
would drain healthy ones. The meter ticks only while a probe is in flight, on the probes' own
thread. A tick that comes late while that thread was off the CPU (the process not scheduled,
stopped, or waiting for the GIL that another of lvscare's threads held) is a stall; one that
comes late because the thread was busy itself (a TLS handshake's computation) is not: the
probes were being worked on.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import deque
from collections.abc import Callable, Iterator

TICK = 0.05  # seconds between ticks while probes are in flight
# A tick later than this while off the CPU is a stall: a stopped or throttled process, a
# long pause. Shorter waits are a busy node's ordinary contention, in which the probes still
# get their turn and a timeout is still news about the master.
MIN_STALL = 0.25
KEEP = 256  # stalls remembered (a probe's window is seconds; ticks are 20 a second)


class LagMeter:
    """Stalls of the process, seen from the loop it runs on; asked with `stalled_for`."""

    def __init__(
        self,
        tick: float = TICK,
        min_stall: float = MIN_STALL,
        clock: Callable[[], float] = time.monotonic,
        cpu: Callable[[], float] = time.thread_time,  # of the thread the loop runs on
    ) -> None:
        self.tick = tick
        self.min_stall = max(min_stall, tick)
        self.clock = clock
        self.cpu = cpu
        self._stalls: deque[tuple[float, float]] = deque(maxlen=KEEP)  # (from, to)
        self._pending: tuple[float, float] | None = None  # the sleeping tick: (wall, cpu)
        self._users = 0
        self._task: asyncio.Task[None] | None = None

    @contextlib.contextmanager
    def watching(self) -> Iterator[None]:
        """Tick while the caller (one probe) is in flight; the last one out stops it."""
        self._users += 1
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(self._run())
        try:
            yield
        finally:
            self._users -= 1
            if self._users == 0 and self._task is not None:
                self._task.cancel()
                self._task = None
                self._pending = None

    async def _run(self) -> None:
        while True:
            self._pending = (self.clock(), self.cpu())
            await asyncio.sleep(self.tick)
            stall = self._stall(self.clock())
            if stall is not None:
                self._stalls.append(stall)

    def _stall(self, now: float) -> tuple[float, float] | None:
        """The pending tick's stall as of `now`: the time it is late, at most the time the
        thread spent off the CPU since it went to sleep; None below `min_stall`."""
        if self._pending is None:
            return None
        slept_at, cpu_at = self._pending
        late = now - slept_at - self.tick
        if late < self.min_stall:
            return None
        off_cpu = (now - slept_at) - (self.cpu() - cpu_at)
        lost = min(late, off_cpu)
        return (now - lost, now) if lost > 0 else None

    def stalled_for(self, start: float) -> float:
        """Seconds since `start` in which the process could not run, the stall still under
        way included (a probe's timeout may run before the late tick does)."""
        now = self.clock()
        stalls = list(self._stalls)
        current = self._stall(now)
        if current is not None:
            stalls.append(current)
        return sum(max(0.0, min(to, now) - max(frm, start)) for frm, to in stalls)
