"""systemd's readiness protocol, written by hand: one datagram to $NOTIFY_SOCKET.

With `Type=notify` systemd holds the unit in "activating" until READY=1 arrives; lvscare
sends it once the first reconcile has put the virtual server in the kernel, so units
ordered `After=lvscare.service` (kubelet) start with the VIP already routable.
Without NOTIFY_SOCKET (a static pod, a shell) every call is a no-op.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Sequence
from typing import TYPE_CHECKING

import structlog

from lvscare.care.tracker import State

if TYPE_CHECKING:
    from lvscare.care.loop import Care
    from lvscare.care.real_server import RealServer
    from lvscare.kernel.table import Op
    from lvscare.probe.http import ProbeResult

log = structlog.get_logger("lvscare.sdnotify")


def notify(*fields: str, env: dict[str, str] | None = None) -> bool:
    """Send `READY=1`-style fields as one message; True if a socket was there to take it.

    An address starting with `@` is in the abstract namespace (systemd's own convention).
    """
    path = (os.environ if env is None else env).get("NOTIFY_SOCKET", "")
    if not path:
        return False
    address = "\0" + path[1:] if path.startswith("@") else path
    message = "\n".join(fields).encode()
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
            sock.connect(address)
            sock.sendall(message)
    except OSError as e:
        log.warning("systemd notification failed", socket=path, error=str(e))
        return False
    return True


def summary(care: Care) -> str:
    """`2/3 real servers up` for `systemctl status`."""
    up = sum(1 for rs in care.servers if rs.tracker.state is State.UP)
    return f"{care.service}: {up}/{len(care.servers)} real servers up"


class ReadyNotifier:
    """Observer: READY=1 after the first successful reconcile, STATUS= on every change."""

    def __init__(self, care: Care) -> None:
        self.care = care
        self.ready = False

    def probed(self, rs: RealServer, result: ProbeResult) -> None:
        pass

    def transitioned(self, rs: RealServer, old: State, new: State) -> None:
        if self.ready:
            notify(f"STATUS={summary(self.care)}")

    def watch_lost(self, rs: RealServer) -> None:
        pass

    def stalled(self) -> None:
        pass

    def reconciled(self, ops: Sequence[Op], error: BaseException | None, seconds: float) -> None:
        if self.ready or error is not None:
            return
        self.ready = True
        if notify("READY=1", f"STATUS={summary(self.care)}"):
            log.info("systemd notified", state="READY=1")

    def stopping(self) -> None:
        notify("STOPPING=1", "STATUS=stopping; the IPVS table is left in place")
