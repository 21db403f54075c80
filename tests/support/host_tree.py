"""One host in a temp tree for the host suite: /etc/hosts (with odd lines kept byte for byte),
/etc/kubernetes, the state dir and HOME, found through bootstrap's environment variables;
lvscare's IPVS calls recorded instead of made; the CLI run in this process."""

from __future__ import annotations

import textwrap
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

from bootstrap.cli import cli
from bootstrap.host import lvscare_rules

ODD_HOSTS = (
    b"# /etc/hosts: written by hand\n"
    b"127.0.0.1\tlocalhost\n"
    b"\n"
    b"::1     localhost ip6-localhost ip6-loopback\n"
    b"fe00::0 ip6-localnet\n"
    b"   \t\n"
    b"192.168.0.9\tregistry.local  registry # our mirror\n"
    b"#10.0.0.1 apiserver.cluster.local   (commented out, not ours)\n"
    b"10.1.2.3 db.internal"
)


@dataclass
class Tree:
    root: Path
    hosts: Path
    kube: Path
    state: Path
    home: Path

    @property
    def pki(self) -> Path:
        return self.kube / "pki"


@pytest.fixture
def tree(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Tree:
    root = tmp_path / "host"
    (root / "etc").mkdir(parents=True)
    t = Tree(
        root,
        root / "etc" / "hosts",
        root / "etc" / "kubernetes",
        root / "var" / "lib" / "lvscare-py",
        root / "root",
    )
    t.hosts.write_bytes(ODD_HOSTS)
    t.hosts.chmod(0o640)
    t.home.mkdir()
    monkeypatch.setenv("BOOTSTRAP_HOSTS_FILE", str(t.hosts))
    monkeypatch.setenv("BOOTSTRAP_KUBERNETES_DIR", str(t.kube))
    monkeypatch.setenv("BOOTSTRAP_STATE_DIR", str(t.state))
    monkeypatch.setenv("HOME", str(t.home))
    return t


@dataclass
class Rules:
    """Stands for lvscare's IPVS calls (proven in the kernel lab, not here)."""

    calls: list[tuple[Any, ...]] = field(default_factory=list)
    daemons: list[lvscare_rules.Daemon] = field(default_factory=list)
    fail: Exception | None = None


@pytest.fixture
def rules(monkeypatch: pytest.MonkeyPatch) -> Iterator[Rules]:
    record = Rules()

    def create(vs: str, rs: list[str], daemon: lvscare_rules.Daemon) -> None:
        record.calls.append(("create", vs, list(rs)))
        record.daemons.append(daemon)
        if record.fail:
            raise record.fail

    def remove(vs: str) -> None:
        record.calls.append(("remove", vs))

    monkeypatch.setattr(lvscare_rules, "create_rules", create)
    monkeypatch.setattr(lvscare_rules, "remove_rules", remove)
    yield record


def run(*args: str) -> Result:
    return CliRunner().invoke(cli, list(args), catch_exceptions=False)


def dedent(text: str) -> str:
    return textwrap.dedent(text).lstrip("\n")
