"""Hooks through which the care loop reports what it does (telemetry, tests).

The loop calls these and never knows who listens; an observer must not block or raise
(telemetry wraps its own in Guarded). The loop owns this protocol; telemetry implements it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from lvscare.care.real_server import RealServer
    from lvscare.care.tracker import State
    from lvscare.kernel.table import Op
    from lvscare.probe.http import ProbeResult


class Observer(Protocol):
    def probed(self, rs: RealServer, result: ProbeResult) -> None: ...

    def transitioned(self, rs: RealServer, old: State, new: State) -> None: ...

    def reconciled(
        self, ops: Sequence[Op], error: BaseException | None, seconds: float
    ) -> None: ...

    def watch_lost(self, rs: RealServer) -> None: ...

    def stalled(self) -> None:
        """A round in which every probe timed out: taken as this node's stall, no state
        changed."""
