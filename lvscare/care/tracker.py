"""Turns a stream of probe results into a real server's state, with rise/fall hysteresis.

The states follow kube-proxy's graceful termination: a failing server is first
drained (weight 0: established connections finish, no new ones land) and only
removed on the next failed round.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class State(StrEnum):
    UP = "up"  # in the table at its weight
    DRAINING = "draining"  # in the table at weight 0
    DOWN = "down"  # not in the table


@dataclass
class HealthTracker:
    """Consecutive passes/fails of one real server and the state they lead to."""

    rise: int = 1
    fall: int = 1
    state: State = State.UP
    passes: int = 0
    fails: int = 0
    # Set once a reconcile has put the DRAINING weight 0 in the kernel: only then may a
    # further failure remove the server, so the drain step is never skipped (a crash
    # reaction and a round can both fail the same server within milliseconds).
    drained: bool = False

    def observe(self, healthy: bool) -> State | None:
        """Record one probe result; return the previous state if the state changed."""
        before = self.state
        if healthy:
            self.fails = 0
            self.passes += 1
            if self.state is not State.UP and self.passes >= self.rise:
                self.state = State.UP
        else:
            self.passes = 0
            self.fails += 1
            if self.state is State.UP and self.fails >= self.fall:
                self.state = State.DRAINING
                self.drained = False
            elif self.state is State.DRAINING and self.drained:
                self.state = State.DOWN
        return before if self.state is not before else None

    def drain_again(self) -> State | None:
        """A removed server that failing open put back at its weight drains once more
        before it goes (connections may have landed on it meanwhile); the previous state
        if it changed."""
        if self.state is not State.DOWN:
            return None
        self.state = State.DRAINING
        self.drained = False
        return State.DOWN

    def force_drain(self) -> State | None:
        """A confirmed crash (lost connection, then a failed probe) drains without waiting
        for `fall` results; return the previous state if it changed."""
        if self.state is not State.UP:
            return None
        self.state = State.DRAINING
        self.drained = False
        self.passes = 0
        self.fails = max(self.fails, self.fall)
        return State.UP
