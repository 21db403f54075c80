"""Names, ports and places every layer agrees on, and the one rule for settings a user may
move: the option if given, else the environment variable, else the default."""

from __future__ import annotations

import os
from pathlib import Path

from lvscare.config import DEFAULT_VIP as DEFAULT_VIP  # the one default VIP, lvscare's

APISERVER_NAME = "apiserver.cluster.local"  # in /etc/hosts and in controlPlaneEndpoint
APISERVER_PORT = 6443
SSH_PORT = 22
# Seconds a host's clock may differ from the workstation's before init or join refuses it.
MAX_CLOCK_SKEW = 60.0

KUBERNETES_DIR = Path("/etc/kubernetes")
HOSTS_FILE = Path("/etc/hosts")
STATE_DIR = Path("/var/lib/lvscare-py")
# What the offline package's shell/init.sh found: RUNTIME, CGROUP_DRIVER, CRI_SOCKET.
RUNTIME_ENV = Path("/etc/lvscare-py/runtime.env")

HOSTS_FILE_ENV = "BOOTSTRAP_HOSTS_FILE"
KUBERNETES_DIR_ENV = "BOOTSTRAP_KUBERNETES_DIR"
STATE_DIR_ENV = "BOOTSTRAP_STATE_DIR"
RUNTIME_ENV_ENV = "BOOTSTRAP_RUNTIME_ENV"
HOME_ENV = "LVSCARE_PY_HOME"  # the workstation's cluster directory
PASSWORD_ENV = "LVSCARE_SSH_PASSWORD"
PASSPHRASE_ENV = "LVSCARE_SSH_KEY_PASSPHRASE"


def setting(option: str | None, env: str) -> str | None:
    """`option` if given, else $env if set and not empty, else None (the caller's default)."""
    return option if option is not None else (os.environ.get(env) or None)


# For the paths below an empty option counts as not given (`--state-dir ''` means the default).


def hosts_file(option: str | None = None) -> Path:
    return Path(setting(option or None, HOSTS_FILE_ENV) or HOSTS_FILE)


def kubernetes_dir(option: str | None = None) -> Path:
    return Path(setting(option or None, KUBERNETES_DIR_ENV) or KUBERNETES_DIR)


def state_dir(option: str | None = None) -> Path:
    return Path(setting(option or None, STATE_DIR_ENV) or STATE_DIR)


def runtime_env() -> Path:
    return Path(setting(None, RUNTIME_ENV_ENV) or RUNTIME_ENV)


def cluster_home() -> Path:
    """Where `init` keeps the cluster file and the hosts' logs: ~/.lvscare-py."""
    return Path(setting(None, HOME_ENV) or Path.home() / ".lvscare-py")
