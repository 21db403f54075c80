"""Secrets over a whole `init` and `join` against real sshd: the bootstrap token, the
certificate key and the SSH (and sudo) password never show in any host's process table, in
any log, or in any file but the 0600 ones that must hold them; every file sent over SFTP is
created 0600 by the server; the workstation's files are 0600 from their first byte.

The hosts log in a user `ops` by password, with sudo asking for it: the password travels as
far as it can. The stand-in kubeadm takes 0.3 s a call, so that the watch, which polls
/proc/*/cmdline and /proc/*/environ of every process in the hosts' namespaces without pause,
sees each kubeadm run: the test also shows it saw them.
"""

from __future__ import annotations

import shlex
import stat
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

from bootstrap.host.pki import SHARED_FILES
from tests.support.file_modes import ModeWatch, watch_modes
from tests.support.kubeadm import CA_HASH, CERT_KEY, TOKEN, TOKEN2
from tests.support.proc_watch import ProcWatch, Report, netns_of
from tests.support.ssh_client import Client, bootstrap, lab_and_client
from tests.support.ssh_hosts import CALLS_LOG, OVERLAID, SLOW_FILE, Host, Lab

PASSWORD = """ops' "pass" $(touch /tmp/pwned)"""
OPS = (
    "useradd -m -s /bin/sh ops && "
    f"printf '%s\\n' {shlex.quote('ops:' + PASSWORD)} | chpasswd && "
    "echo 'ops ALL=(ALL:ALL) ALL' > /etc/sudoers.d/ops && chmod 440 /etc/sudoers.d/ops && "
    f"echo 0.3 > {SLOW_FILE}"
)
SECRETS = {"token": TOKEN, "token2": TOKEN2, "certificate key": CERT_KEY, "password": PASSWORD}
JOIN_CONFIG = "/var/lib/lvscare-py/kubeadm-join.yaml"  # on the host, while kubeadm join runs
JOIN_FILE = "/opt/lvscare-py/join.yaml"  # what the workstation sends for `bootstrap` to read
# The one file on a host that keeps a secret after the run: master0's record of its join.
KEEPS_SECRETS = "/var/lib/lvscare-py/state.json"


@dataclass
class Cluster:
    lab: Lab
    client: Client
    m0: Host
    m1: Host
    n1: Host
    n2: Host

    @property
    def hosts(self) -> list[Host]:
        return [self.m0, self.m1, self.n1, self.n2]

    def run(self, *args: str) -> tuple[str, Report, ModeWatch]:
        """A cluster command as ops, watched; its output, the process watch, the file watch."""
        netns = [netns_of(h.proc.pid) for h in self.hosts if h.proc is not None]
        with ProcWatch(netns, SECRETS) as procs, watch_modes(self.client.home) as files:
            out = bootstrap(*args, "--user", "ops", "--passwd", PASSWORD)
        assert out.exit_code == 0, out.output
        assert procs.report is not None
        return out.output, procs.report, files


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    with lab_and_client(tmp_path_factory.mktemp("secrets")) as (lab, client):
        hosts = [lab.host(name, setup=OPS) for name in ("m0", "m1", "n1", "n2")]
        client.trust(*hosts)
        yield Cluster(lab, client, *hosts)


def seen(report: Report, host: Host, *words: str) -> bool:
    """Whether the watch saw, on that host, a command line holding these words in order."""
    assert host.proc is not None
    for argv in report.commands(netns_of(host.proc.pid)):
        at = 0
        for arg in argv:
            if at < len(words) and (arg == words[at] or arg.endswith("/" + words[at])):
                at += 1
        if at == len(words):
            return True
    return False


def kubeadm_joins(host: Host) -> list[dict[str, object]]:
    return [c for c in host.calls() if c["argv"][:2] == ["kubeadm", "join"]]


def assert_joined_through_a_0600_file(host: Host, token: str) -> None:
    """kubeadm got `--config FILE` alone, FILE held the token and was 0600 while kubeadm
    ran, and neither it nor the file the workstation sent is there any more."""
    (call,) = kubeadm_joins(host)
    assert call["argv"] == ["kubeadm", "join", "--config", JOIN_CONFIG]
    sent = yaml.safe_load(str(call["config"]))["discovery"]["bootstrapToken"]
    assert (sent["token"], sent["caCertHashes"]) == (token, [CA_HASH])
    assert call["config_mode"] == 0o600
    assert not host.exists(JOIN_CONFIG) and not host.exists(JOIN_FILE)


def assert_uploads_created_0600(host: Host, *expected: str) -> None:
    """Every file the workstation created over SFTP: born 0600 (the mode sftp-server gave
    open(2)), and new (O_EXCL), so never an older, wider file written into."""
    created = [(p, f, m) for p, f, m in host.sftp_opens() if "CREATE" in f]
    assert created, host.name
    assert [(p, f, m) for p, f, m in created if m != 0o600 or "EXCL" not in f] == []
    for name in expected:  # also what carried secrets
        assert any(p.endswith(name) for p, _f, _m in created), (name, created)


def files_written(host: Host) -> Iterator[tuple[str, Path]]:
    """Every file the run wrote on the host: the upper layers of its overlays."""
    upper = host.path(str(host.dir / "scratch" / "up"))
    for top in OVERLAID:
        for path in sorted((upper / top.lstrip("/")).rglob("*")):
            if path.is_file() and not path.is_symlink():
                yield "/" + str(path.relative_to(upper)), path


def assert_no_secret_outside_0600_keepers(cluster: Cluster, output: str) -> None:
    """Not in the command's output, not in any file of the workstation (cluster file, the
    hosts' logs), not in any file written on a host but master0's state (0600)."""
    for name, secret in SECRETS.items():
        assert secret not in output, name
    home = cluster.client.home
    for path in sorted(home.rglob("*")):
        if path.is_file():
            text = path.read_text(errors="replace")
            assert [n for n, s in SECRETS.items() if s in text] == [], path
    for host in cluster.hosts:
        for name, path in files_written(host):
            if name == CALLS_LOG:
                continue  # the stand-ins' record, the test's own
            data = path.read_bytes()
            found = [n for n, s in SECRETS.items() if s.encode() in data]
            if name == KEEPS_SECRETS and host is cluster.m0:
                assert stat.S_IMODE(path.stat().st_mode) == 0o600
                continue
            assert found == [], (host.name, name, found)
        assert not host.exists("/tmp/pwned")


def is_workstation_secret(path: Path) -> bool:
    """The cluster file, the per-host logs and known_hosts."""
    return ".lvscare-py" in path.parts or path.name == "known_hosts"


def test_init_shows_no_secret_to_any_process_log_or_file_and_joins_through_0600_files(
    cluster: Cluster,
) -> None:
    c = cluster
    args = ["init", "--master", c.m0.addr, "--master", c.m1.addr, "--node", c.n1.addr]
    args += ["--pkg-url", str(c.client.package), "--version", "v1.30.4"]
    output, procs, files = c.run(*args)

    assert procs.sightings == []
    # The watch saw the processes that would have shown them: kubeadm and bootstrap there.
    assert seen(procs, c.m0, "kubeadm", "init", "--config")
    for host in (c.m1, c.n1):
        assert seen(procs, host, "kubeadm", "join", "--config", JOIN_CONFIG), host.name
        assert seen(procs, host, "bootstrap", "--join-config", JOIN_FILE), host.name
        assert_joined_through_a_0600_file(host, TOKEN)
    # ops is no root: each file goes to a private staging directory, then `install` as root
    for host in (c.m0, c.m1, c.n1):
        assert_uploads_created_0600(host, "/upload")
    # m1: the package, master0's CAs and sa pair, their list, the join
    assert len(c.m1.sftp_opens()) == 1 + len(SHARED_FILES) + 1 + 1
    for key in ("/etc/kubernetes/pki/ca.key", "/etc/kubernetes/pki/sa.key"):
        assert stat.S_IMODE(c.m1.path(key).stat().st_mode) == 0o600
    assert_no_secret_outside_0600_keepers(c, output)
    assert files.wide(is_workstation_secret) == {}
    assert any(w.endswith("cluster.json") for w in files.secrets(is_workstation_secret))
    for path in (c.client.home / ".lvscare-py").rglob("*"):
        if path.is_file():
            assert stat.S_IMODE(path.stat().st_mode) == 0o600, path


def test_join_sends_the_fresh_token_in_a_0600_file_and_shows_it_nowhere(
    cluster: Cluster,
) -> None:
    c = cluster
    output, procs, files = c.run("join", "--node", c.n2.addr)
    assert procs.sightings == []
    assert seen(procs, c.m0, "kubeadm", "token", "create")
    assert seen(procs, c.n2, "kubeadm", "join", "--config", JOIN_CONFIG)
    assert seen(procs, c.n2, "bootstrap", "node", "--join-config", JOIN_FILE)
    assert_joined_through_a_0600_file(c.n2, TOKEN2)
    assert_uploads_created_0600(c.n2, "/upload")
    assert_no_secret_outside_0600_keepers(c, output)
    assert files.wide(is_workstation_secret) == {}


def test_the_watch_sees_a_secret_on_a_command_line_or_in_an_environment(
    cluster: Cluster,
) -> None:
    """The checks above can fail: a token on a command line and a password in an
    environment, each for 0.2 s on a host, are both seen."""
    host = cluster.n2
    assert host.proc is not None
    host.write(
        "/tmp/leak.sh",
        f"sh -c 'sleep 0.2; true' {TOKEN} &\n"
        f"export LVPY_LEAK={shlex.quote(PASSWORD)}\n"
        "exec sleep 0.2\n",
    )
    with ProcWatch([netns_of(host.proc.pid)], SECRETS) as procs:
        host.in_ns("sh /tmp/leak.sh; wait")
    assert procs.report is not None
    found = {(s.secret, s.where) for s in procs.report.sightings}
    assert found == {("token", "cmdline"), ("password", "environ")}
