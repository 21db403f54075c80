"""The workstation side of the SSH lab: the client's key, known_hosts and cluster directory
in a temp HOME, the offline package, a lab whose hosts trust that key, and the CLI."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from click.testing import CliRunner, Result

from bootstrap.cli import cli
from tests.support import ssh_package
from tests.support.ssh_hosts import Host, Lab, keygen


@dataclass
class Client:
    home: Path
    key: Path
    package: Path

    @property
    def known_hosts(self) -> Path:
        return self.home / ".ssh" / "known_hosts"

    @property
    def cluster_file(self) -> Path:
        return self.home / ".lvscare-py" / "cluster.json"

    def trust(self, *hosts: Host) -> None:
        """Put the hosts' keys in known_hosts, as a user who checked them would."""
        with open(self.known_hosts, "a") as f:
            for h in hosts:
                f.write(h.known_hosts_line + "\n")


def make_client(root: Path) -> Client:
    home = root / "home"
    (home / ".ssh").mkdir(parents=True, mode=0o700)
    key = home / ".ssh" / "id_lvpy"
    keygen(key)
    return Client(home, key, ssh_package.build(root / "kube1.30.4.tar.gz"))


@contextlib.contextmanager
def lab_and_client(root: Path) -> Iterator[tuple[Lab, Client]]:
    """A lab whose hosts trust the client's key; HOME and the cluster dir point into root.

    Namespaces, sshd processes and the bridge are removed however the test ends."""
    client = make_client(root)
    lab = Lab(root / "lab", client_pub=client.key.with_name("id_lvpy.pub").read_text().strip())
    saved = {k: os.environ.get(k) for k in ENV_KEYS}
    os.environ["HOME"] = str(client.home)
    for k in ENV_KEYS[1:]:
        os.environ.pop(k, None)
    try:
        lab.up()
        yield lab, client
    finally:
        lab.down()
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


ENV_KEYS = ("HOME", "LVSCARE_PY_HOME", "LVSCARE_SSH_PASSWORD", "LVSCARE_SSH_KEY_PASSPHRASE")


def init_args(
    client: Client, masters: list[str], nodes: list[str], *, pkg: str | None = None
) -> list[str]:
    """`bootstrap init` of these hosts with the client's key, the test package (or `pkg`)
    and Kubernetes v1.30.4; further flags go after it."""
    return [
        "init",
        *[a for m in masters for a in ("--master", m)],
        *[a for n in nodes for a in ("--node", n)],
        "--pk",
        str(client.key),
        "--pkg-url",
        pkg or str(client.package),
        "--version",
        "v1.30.4",
    ]


def bootstrap(*args: str, env: dict[str, str] | None = None) -> Result:
    """The CLI in this process, as a user would run it (output captured, not a TTY)."""
    return CliRunner().invoke(cli, list(args), env=env, catch_exceptions=False)
