"""Hooks through which the care loop reports what it does (metrics, status, tests).

The loop calls these and never knows who listens; an observer must not block or raise.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from lvscare.care import RealServer
    from lvscare.health import State
    from lvscare.prober import ProbeResult
    from lvscare.table import Op


class Observer(Protocol):
    def probed(self, rs: RealServer, result: ProbeResult) -> None: ...

    def transitioned(self, rs: RealServer, old: State, new: State) -> None: ...

    def reconciled(
        self, ops: Sequence[Op], error: BaseException | None, seconds: float
    ) -> None: ...

    def watch_lost(self, rs: RealServer) -> None: ...
