"""Rise/fall hysteresis and the drain-then-remove sequence."""

from __future__ import annotations

from lvscare.care.tracker import HealthTracker, State


def state(t: HealthTracker) -> State:
    """Read through a call, so the type checker does not pin the state between observations."""
    return t.state


def test_one_failure_drains_and_the_next_removes() -> None:
    t = HealthTracker()
    assert t.observe(False) is State.UP and state(t) is State.DRAINING
    t.drained = True  # a reconcile put weight 0 in the kernel
    assert t.observe(False) is State.DRAINING and state(t) is State.DOWN
    assert t.observe(False) is None and state(t) is State.DOWN


def test_fall_needs_that_many_failures_in_a_row() -> None:
    t = HealthTracker(fall=3)
    t.observe(False)
    t.observe(False)
    t.observe(True)  # resets the count
    t.observe(False)
    t.observe(False)
    assert state(t) is State.UP
    t.observe(False)
    assert state(t) is State.DRAINING


def test_rise_needs_that_many_passes_before_coming_back() -> None:
    t = HealthTracker(rise=2)
    t.observe(False)
    t.drained = True
    t.observe(False)
    assert state(t) is State.DOWN
    t.observe(True)
    assert state(t) is State.DOWN
    assert t.observe(True) is State.DOWN and state(t) is State.UP


def test_a_draining_server_that_recovers_goes_straight_back_up() -> None:
    t = HealthTracker()
    t.observe(False)
    assert t.observe(True) is State.DRAINING and state(t) is State.UP


def test_no_removal_before_the_drain_reached_the_kernel() -> None:
    t = HealthTracker()
    t.observe(False)
    assert t.observe(False) is None and state(t) is State.DRAINING
    t.drained = True
    assert t.observe(False) is State.DRAINING and state(t) is State.DOWN
