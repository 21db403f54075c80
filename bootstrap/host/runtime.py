"""The container runtime the offline package's shell/init.sh found on this host.

The kubelet's cgroup driver must be the runtime's, or every pod fails to start; init.sh
writes what it found (`RUNTIME`, `CGROUP_DRIVER`, `CRI_SOCKET`, KEY=VALUE lines a shell
could source) to /etc/lvscare-py/runtime.env, and the KubeletConfiguration takes its
driver from there unless `--cgroup-driver` says otherwise.
"""

from __future__ import annotations

from pathlib import Path

from bootstrap import defaults
from bootstrap.errors import BadInput

AUTO = "auto"
CGROUP_DRIVERS = ("systemd", "cgroupfs")
# Without init.sh's file: kubeadm's own default since 1.22, what systemd hosts need.
DEFAULT_CGROUP_DRIVER = "systemd"


def read_env(path: Path) -> dict[str, str]:
    """The file's KEY=VALUE lines (comments and blank lines skipped); {} if there is none."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return {}
    except (OSError, UnicodeDecodeError) as e:
        reason = e.strerror if isinstance(e, OSError) and e.strerror else str(e)
        raise BadInput(f"{path}: cannot read it ({reason})") from None
    values: dict[str, str] = {}
    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        key, sep, value = line.partition("=")
        if not sep or not key.strip():
            raise BadInput(f"{path} line {number}: {line!r} is not KEY=VALUE")
        values[key.strip()] = value.strip().strip("'\"")
    return values


def cgroup_driver(option: str = AUTO, path: Path | None = None) -> str:
    """`option` unless it is auto; then the CGROUP_DRIVER init.sh recorded; else systemd."""
    if option != AUTO:
        if option not in CGROUP_DRIVERS:
            raise BadInput(f"--cgroup-driver {option!r}: give auto, systemd or cgroupfs")
        return option
    source = path or defaults.runtime_env()
    value = read_env(source).get("CGROUP_DRIVER")
    if value is None:
        return DEFAULT_CGROUP_DRIVER
    if value not in CGROUP_DRIVERS:
        raise BadInput(
            f"{source}: CGROUP_DRIVER={value!r} is neither systemd nor cgroupfs "
            "(run the package's shell/init.sh again, or give --cgroup-driver)"
        )
    return value


def cri_socket(default: str, path: Path | None = None) -> str:
    """The CRI socket init.sh recorded (cri-dockerd's on a Docker host), else `default`:
    kubeadm's InitConfiguration names it so that kubeadm does not have to guess."""
    value = read_env(path or defaults.runtime_env()).get("CRI_SOCKET")
    return value or default
