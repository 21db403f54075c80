"""Loading the kernel modules IPVS needs, because after a reboot nothing loads them for us."""

from __future__ import annotations

import os
import shutil
import subprocess

import structlog

log = structlog.get_logger("lvscare.modules")

SYS_MODULE = "/sys/module"


def modules_for(scheduler: str, *, conntrack: bool) -> list[str]:
    mods = ["ip_vs", f"ip_vs_{scheduler}"]
    if conntrack:
        mods.append("nf_conntrack")
    return mods


def is_loaded(module: str, sys_module: str = SYS_MODULE) -> bool:
    return os.path.isdir(os.path.join(sys_module, module))


def ensure_loaded(modules: list[str], sys_module: str = SYS_MODULE) -> dict[str, str]:
    """modprobe each missing module from /lib/modules; return {module: why} for failures.

    Failures are not raised: a module may be built in, and opening IPVS afterwards
    gives the one clear error (with this reason) if it really is not there.
    """
    missing: dict[str, str] = {}
    modprobe = shutil.which("modprobe") or "/sbin/modprobe"
    for module in modules:
        if is_loaded(module, sys_module):
            continue
        try:
            proc = subprocess.run(
                [modprobe, module], capture_output=True, text=True, timeout=30, check=False
            )
        except (OSError, subprocess.TimeoutExpired) as e:
            missing[module] = str(e)
            continue
        if proc.returncode == 0:
            log.info("module loaded", module=module)
        else:
            missing[module] = proc.stderr.strip() or f"modprobe exited {proc.returncode}"
            log.debug("module load failed", module=module, error=missing[module])
    return missing
