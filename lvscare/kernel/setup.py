"""The one kernel set-up step before the IPVS table is opened: modules, then sysctls.

After a reboot nothing loads ip_vs for us, and its sysctls only exist once it is loaded.
Nothing here raises: a module may be built in, a sysctl may be read-only in a container.
What failed is reported, and the daemon says so once it knows whether IPVS opened (if it
did not, its one error line carries modprobe's reason instead).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import structlog

from lvscare.config import CareConfig, Mode
from lvscare.kernel import modules, sysctl

log = structlog.get_logger("lvscare.kernel")

# As kube-proxy: once a real server is drained or removed, packets of its old connections
# are dropped (the client reconnects elsewhere) instead of new connections landing on it.
EXPIRE_SYSCTLS = ("net.ipv4.vs.expire_nodest_conn", "net.ipv4.vs.expire_quiescent_template")


@dataclass
class SetupFailures:
    """{module: why} and {sysctl: why} for what the set-up could not do."""

    modules: dict[str, str] = field(default_factory=dict)
    sysctls: dict[str, str] = field(default_factory=dict)

    def log(self) -> None:
        for module, why in self.modules.items():
            log.warning("module load failed", module=module, error=why)
        for name, why in self.sysctls.items():
            log.warning("sysctl not set", name=name, error=why)


def prepare_kernel(config: CareConfig) -> SetupFailures:
    """modprobe what IPVS needs, then set the expire sysctls."""
    wanted = modules.modules_for(config.scheduler, conntrack=config.mode is Mode.LINK)
    failures = SetupFailures(modules=modules.ensure_loaded(wanted))
    for name in EXPIRE_SYSCTLS:
        try:
            sysctl.ensure_sysctl(name, "1")
        except OSError as e:
            failures.sysctls[name] = str(e)
    return failures
