"""Rise/fall hysteresis and the drain-then-remove sequence."""

from __future__ import annotations

from lvscare.health import HealthTracker, State


def test_one_failure_drains_and_the_next_removes() -> None:
    t = HealthTracker()
    assert t.observe(False) is State.UP and t.state is State.DRAINING
    assert t.observe(False) is State.DRAINING and t.state is State.DOWN
    assert t.observe(False) is None and t.state is State.DOWN


def test_fall_needs_that_many_failures_in_a_row() -> None:
    t = HealthTracker(fall=3)
    t.observe(False)
    t.observe(False)
    t.observe(True)  # resets the count
    t.observe(False)
    t.observe(False)
    assert t.state is State.UP
    t.observe(False)
    assert t.state is State.DRAINING


def test_rise_needs_that_many_passes_before_coming_back() -> None:
    t = HealthTracker(rise=2)
    t.observe(False)
    t.observe(False)
    assert t.state is State.DOWN
    t.observe(True)
    assert t.state is State.DOWN
    assert t.observe(True) is State.DOWN and t.state is State.UP


def test_a_draining_server_that_recovers_goes_straight_back_up() -> None:
    t = HealthTracker()
    t.observe(False)
    assert t.observe(True) is State.DRAINING and t.state is State.UP
