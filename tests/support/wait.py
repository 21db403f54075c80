"""Waiting for a condition in tests and benchmarks: one rule, a blocking and an async door.

A predicate is polled until it is truthy or the timeout ends; the answer is a bool, never an
exception, so a test says `assert wait_until(...)` and the assertion names the condition.
An exception from the predicate counts as "not yet"; the last one is printed when giving up,
so a failing wait still shows why.
"""

from __future__ import annotations

import asyncio
import inspect
import sys
import time
from collections.abc import Awaitable, Callable


def _gave_up(timeout: float, last: BaseException | None) -> bool:
    if last is not None:
        print(f"wait_until: gave up after {timeout}s; last error: {last!r}", file=sys.stderr)
    return False


def wait_until(
    predicate: Callable[[], object], timeout: float = 30.0, interval: float = 0.2
) -> bool:
    """Poll `predicate()` from this thread until it is truthy; False after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    last: BaseException | None = None
    while True:
        try:
            if predicate():
                return True
            last = None
        except Exception as exc:
            last = exc
        if time.monotonic() >= deadline:
            return _gave_up(timeout, last)
        time.sleep(interval)


async def await_until(
    predicate: Callable[[], object | Awaitable[object]],
    timeout: float = 10.0,
    interval: float = 0.05,
) -> bool:
    """`wait_until` on an event loop: the predicate may be plain or a coroutine function."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    last: BaseException | None = None
    while True:
        try:
            value = predicate()
            if inspect.isawaitable(value):
                value = await value
            if value:
                return True
            last = None
        except Exception as exc:
            last = exc
        if loop.time() >= deadline:
            return _gave_up(timeout, last)
        await asyncio.sleep(interval)
