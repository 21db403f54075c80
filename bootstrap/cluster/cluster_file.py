"""The cluster file: what `init` made, so `join` and `clean` need only the hosts that change.

JSON in ~/.lvscare-py/cluster.json (the directory from LVSCARE_PY_HOME if set), or with
`--cluster NAME` in ~/.lvscare-py/clusters/NAME/cluster.json, so one workstation keeps
several clusters side by side; mode 0600, written atomically after every host finishes, so a
failure or a crash leaves the last good record. It holds hosts, user, key path, versions, VIP,
the package checksum, the apps installed and an upgrade under way; never a password or a
token. The hosts' logs go to `logs/` beside it.
"""

from __future__ import annotations

import json
import re
import threading
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from bootstrap import fsutil
from bootstrap.cluster.ssh import Target, parse_target
from bootstrap.defaults import cluster_home
from bootstrap.errors import BadInput
from bootstrap.host.kubeadm_config import DEFAULT_POD_CIDR, DEFAULT_REPO, DEFAULT_SVC_CIDR

DEFAULT_YEARS = 99

FILE_NAME = "cluster.json"
FORMAT = 1


CLUSTER_NAME = re.compile(r"[a-z0-9]([a-z0-9._-]{0,61}[a-z0-9])?")


def parse_cluster_name(name: str) -> str:
    """--cluster NAME: a directory name, nothing that could climb out of ~/.lvscare-py."""
    if not CLUSTER_NAME.fullmatch(name) or ".." in name:
        raise BadInput(
            f"--cluster {name!r}: not a cluster name (lower-case letters, digits, '.', '_' "
            "and '-', at most 63, starting and ending with a letter or digit)"
        )
    return name


def default_path(name: str | None = None) -> Path:
    if name is None:
        return cluster_home() / FILE_NAME
    return cluster_home() / "clusters" / parse_cluster_name(name) / FILE_NAME


@dataclass
class AppRecord:
    """An app `bootstrap install` put on the cluster, from one app package."""

    name: str
    version: str
    sha256: str
    images: list[str] = field(default_factory=list)  # archives loaded on every host
    manifests: list[str] = field(default_factory=list)  # applied on master0, in this order


@dataclass
class UpgradeRecord:
    """An upgrade under way: where it goes and which hosts are done, so a re-run after a
    failed host continues from it and redoes nothing."""

    from_version: str
    to_version: str
    pkg_url: str
    pkg_sha256: str | None = None
    snapshot: str | None = None  # the etcd snapshot taken on master0 first (its path there)
    done: list[str] = field(default_factory=list)  # hosts upgraded, as written in `masters`


@dataclass
class HostRecord:
    """One host: its role, its node name once known, how its last run ended."""

    role: str  # "master" or "node"
    node_name: str | None = None
    result: str = "pending"  # "ok", "failed", "interrupted" (Ctrl-C), "pending"
    failed_step: str | None = None


@dataclass
class Cluster:
    """What `init` made; hosts as parsed targets, written as the user gave them."""

    masters: list[Target]
    nodes: list[Target]
    user: str
    key_path: str | None
    version: str
    vip: str
    pkg_url: str
    pkg_sha256: str | None
    kubeadm_config: str | None = None
    # The cluster's own settings, given to init and kept for join (a file written before
    # they existed reads as the defaults, which is what init used then).
    pod_cidr: str = DEFAULT_POD_CIDR
    svc_cidr: str = DEFAULT_SVC_CIDR
    repo: str = DEFAULT_REPO
    cert_sans: list[str] = field(default_factory=list)
    years: int = DEFAULT_YEARS
    lvscare_image: str | None = None
    lvscare_mode: str = "route"
    interval: str = "5"
    cni: bool = True  # apply the package's CNI manifest on master0 (`--cni none`: False)
    hosts: dict[Target, HostRecord] = field(default_factory=dict)
    apps: list[AppRecord] = field(default_factory=list)
    upgrade: UpgradeRecord | None = None

    def record(self, addr: Target, role: str) -> HostRecord:
        rec = self.hosts.get(addr)
        if rec is None or rec.role != role:
            rec = HostRecord(role)
            self.hosts[addr] = rec
        return rec

    def to_json(self) -> str:
        data: dict[str, Any] = {f.name: getattr(self, f.name) for f in fields(self)}
        data.update(
            format=FORMAT,
            masters=[str(t) for t in self.masters],
            nodes=[str(t) for t in self.nodes],
            hosts={str(t): asdict(rec) for t, rec in self.hosts.items()},
            apps=[asdict(app) for app in self.apps],
            upgrade=asdict(self.upgrade) if self.upgrade is not None else None,
        )
        return json.dumps(data, indent=2, sort_keys=True) + "\n"

    @classmethod
    def from_json(cls, text: str, where: Path) -> Cluster:
        try:
            data = json.loads(text)
            if data.pop("format", None) != FORMAT:
                raise ValueError("unknown format")
            hosts = {
                parse_target(k, str(where)): HostRecord(**v)
                for k, v in data.pop("hosts", {}).items()
            }
            apps = [AppRecord(**_dict("apps", a)) for a in _list("apps", data.pop("apps", []))]
            upgrade = data.pop("upgrade", None)
            if upgrade is not None:
                data["upgrade"] = UpgradeRecord(**_dict("upgrade", upgrade))
            for role in ("masters", "nodes"):
                if role in data:
                    _check(role, data[role], list)
                    data[role] = [parse_target(a, str(where)) for a in data[role]]
            cluster = cls(**data, hosts=hosts, apps=apps)
            cluster._check_types()
            return cluster
        except (ValueError, TypeError, AttributeError, RecursionError) as e:
            raise BadInput(f"{where}: not a cluster file this bootstrap can read ({e})") from None

    def _check_types(self) -> None:
        """What JSON gave is what the fields say (a hand-edited or damaged file may not)."""
        for name in ("user", "version", "vip", "pkg_url"):
            _check(name, getattr(self, name), str)
        for name in ("key_path", "pkg_sha256", "kubeadm_config", "lvscare_image"):
            _check(name, getattr(self, name), str | None)
        for name in ("pod_cidr", "svc_cidr", "repo", "lvscare_mode", "interval"):
            _check(name, getattr(self, name), str)
        _check("cert_sans", self.cert_sans, list)
        for san in self.cert_sans:
            _check("cert_sans", san, str)
        _check("years", self.years, int)
        _check("cni", self.cni, bool)
        for app in self.apps:
            for name in ("name", "version", "sha256"):
                _check(f"app {name}", getattr(app, name), str)
            for name in ("images", "manifests"):
                _check(f"app {name}", getattr(app, name), list)
                for item in getattr(app, name):
                    _check(f"app {name}", item, str)
        if self.upgrade is not None:
            up = self.upgrade
            for name in ("from_version", "to_version", "pkg_url"):
                _check(f"upgrade {name}", getattr(up, name), str)
            for name in ("pkg_sha256", "snapshot"):
                _check(f"upgrade {name}", getattr(up, name), str | None)
            _check("upgrade done", up.done, list)
            for item in up.done:
                _check("upgrade done", item, str)
        for target, rec in self.hosts.items():
            if rec.role not in ("master", "node"):
                raise ValueError(f"{target}: role {rec.role!r}")
            _check(f"{target} result", rec.result, str)
            _check(f"{target} node_name", rec.node_name, str | None)
            _check(f"{target} failed_step", rec.failed_step, str | None)


def _list(name: str, value: object) -> list[Any]:
    _check(name, value, list)
    assert isinstance(value, list)
    return value


def _dict(name: str, value: object) -> dict[str, Any]:
    _check(name, value, dict)
    assert isinstance(value, dict)
    return value


def _check(name: str, value: object, kind: Any) -> None:
    if not isinstance(value, kind):
        raise TypeError(f"{name} is {type(value).__name__}")
    if isinstance(value, str) and "\x00" in value:
        raise ValueError(f"{name} holds a NUL character")


class ClusterFile:
    """Load and save one cluster file; saves are serialized (nodes finish in parallel)."""

    def __init__(self, path: Path | None = None, name: str | None = None) -> None:
        self.path = path or default_path(name)
        self.name = name
        self._lock = threading.Lock()

    @property
    def logs(self) -> Path:
        """The hosts' logs, beside the file (each cluster its own)."""
        return self.path.parent / "logs"

    def exists(self) -> bool:
        return self.path.exists()

    def load(self) -> Cluster:
        try:
            text = self.path.read_text(encoding="utf-8")
        except FileNotFoundError:
            named = f" --cluster {self.name}" if self.name else ""
            raise BadInput(
                f"{self.path}: no cluster file; make the cluster with `bootstrap init{named}` first"
            ) from None
        except (OSError, UnicodeDecodeError) as e:
            reason = e.strerror if isinstance(e, OSError) and e.strerror else str(e)
            raise BadInput(f"{self.path}: cannot read the cluster file ({reason})") from None
        return Cluster.from_json(text, self.path)

    def save(self, cluster: Cluster) -> None:
        with self._lock:
            self.path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
            fsutil.write_atomic(self.path, cluster.to_json().encode(), 0o600)

    def remove(self) -> None:
        with self._lock:
            fsutil.remove(self.path)
