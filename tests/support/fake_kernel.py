"""The kernel in memory: an IPVS table that applies Ops as the kernel would, and a VIP host
that only counts. No pytest here: bench/ uses these too."""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence

from lvscare.kernel.table import Dest, DestState, Op, Service, ServiceState


def dest(ip: str, port: int = 6443) -> Dest:
    return Dest(ipaddress.ip_address(ip), port)


class TableInMemory:
    """An IPVSTable on a dict; records every read and op; `broken` makes every call fail."""

    def __init__(self) -> None:
        self.state: ServiceState | None = None
        self.broken = False
        self.applied: list[Op] = []
        self.calls: list[str] = []

    async def open(self) -> None:
        pass

    async def read(self, service: Service) -> ServiceState | None:
        self.calls.append("read")
        if self.broken:
            raise OSError("netlink went away")
        if self.state is None:
            return None
        return ServiceState(self.state.scheduler, dict(self.state.dests))

    async def apply(self, service: Service, ops: Sequence[Op]) -> None:
        self.applied.extend(ops)
        self.calls.extend(f"apply {op}" for op in ops)
        for op in ops:
            if op.kind == "add-service":
                self.state = ServiceState(service.scheduler)
            elif op.kind == "set-service":
                assert self.state is not None
                self.state.scheduler = service.scheduler
            elif op.kind in ("add-dest", "set-dest"):
                assert self.state is not None and op.dest is not None
                self.state.dests[op.dest] = DestState(op.weight)
            elif op.kind == "del-dest":
                assert self.state is not None and op.dest is not None
                del self.state.dests[op.dest]

    async def delete_service(self, service: Service) -> bool:
        existed, self.state = self.state is not None, None
        return existed

    async def close(self) -> None:
        pass

    def weights(self) -> dict[str, int]:
        if self.state is None:
            return {}
        return {str(d.addr): s.weight for d, s in self.state.dests.items()}


class VIPUntouched:
    """A VIPHost that changes nothing on this host and counts the calls."""

    def __init__(self) -> None:
        self.ensured = 0
        self.removed = 0

    async def ensure(self) -> list[str]:
        self.ensured += 1
        return []

    async def remove(self) -> list[str]:
        self.removed += 1
        return []
