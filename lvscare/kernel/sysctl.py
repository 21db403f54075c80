"""Kernel settings IPVS relies on, written through /proc/sys."""

from __future__ import annotations

import os

import structlog

log = structlog.get_logger("lvscare.sysctl")

PROC_SYS = "/proc/sys"


def ensure_sysctl(name: str, value: str, proc_sys: str = PROC_SYS) -> bool:
    """Set `net.ipv4.vs.conntrack`-style `name` to `value` if it differs; True if changed."""
    path = os.path.join(proc_sys, *name.split("."))
    with open(path) as f:
        current = f.read().strip()
    if current == value:
        return False
    with open(path, "w") as f:
        f.write(value)
    log.info("sysctl set", name=name, old=current, new=value)
    return True
