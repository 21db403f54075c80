"""`bootstrap init`, `join` and cluster-wide `clean`: flags as sealos users know them.

These run on a workstation and drive every host over SSH; the hosts themselves run the
single-host commands (`bootstrap master0`, `master --join`, `node`, `clean`).
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click

from bootstrap import package
from bootstrap.cluster_file import Cluster, ClusterFile, home_dir
from bootstrap.errors import BadInput, StepFailed
from bootstrap.inputs import parse_ip, parse_version
from bootstrap.kubeadm_config import DEFAULT_VIP, read_template
from bootstrap.orchestrate import Orchestrator, Settings
from bootstrap.progress import Reporter
from bootstrap.ssh import Auth, KnownHosts, parse_target

F = TypeVar("F", bound=Callable[..., Any])
PASSWORD_ENV = "LVSCARE_SSH_PASSWORD"
PASSPHRASE_ENV = "LVSCARE_SSH_KEY_PASSPHRASE"
DEFAULT_PARALLEL = 20


def host_list_options(fn: F) -> F:
    fn = click.option(
        "--node", "nodes", multiple=True, metavar="IP[:PORT]", help="A node (repeatable)."
    )(fn)
    return click.option(
        "--master",
        "masters",
        multiple=True,
        metavar="IP[:PORT]",
        help="A master (repeatable); for init the first is master0.",
    )(fn)


def ssh_options(fn: F) -> F:
    """How to reach the hosts. The password is never stored, logged or put on a command line."""
    options = [
        click.option(
            "--user", "-u", default=None, help="SSH user [default: root, or the cluster's]."
        ),
        click.option(
            "--passwd",
            "-p",
            default=None,
            help=f"SSH (and sudo) password [env {PASSWORD_ENV}; else asked on a terminal].",
        ),
        click.option(
            "--pk", default=None, metavar="FILE", help="Private key file, e.g. ~/.ssh/id_rsa."
        ),
        click.option(
            "--pk-passwd", default=None, help=f"The key's passphrase [env {PASSPHRASE_ENV}]."
        ),
        click.option(
            "--accept-new-host-keys",
            is_flag=True,
            help="Trust and record unknown host keys in ~/.ssh/known_hosts (a changed key is "
            "always refused).",
        ),
        click.option(
            "--parallel",
            default=DEFAULT_PARALLEL,
            show_default=True,
            type=int,
            help="Hosts worked on at once.",
        ),
        click.option(
            "--ssh-timeout",
            default=10.0,
            show_default=True,
            type=float,
            help="Seconds to wait for a host to answer.",
        ),
    ]
    for option in reversed(options):
        fn = option(fn)
    return fn


def package_options(fn: F) -> F:
    fn = click.option(
        "--pkg-sha256",
        default=None,
        metavar="HEX",
        help="The package's sha256 (checked on every host; for a URL, else the first "
        "host's download is the reference).",
    )(fn)
    return click.option(
        "--pkg-url",
        default=None,
        metavar="FILE|URL",
        help="Offline package: a local file (sent over SFTP) or an http(s) URL (each host "
        "downloads it).",
    )(fn)


def _targets(values: tuple[str, ...], flag: str) -> list[str]:
    out: list[str] = []
    for value in values:
        addr = str(parse_target(value, flag))
        if addr not in out:
            out.append(addr)
    return out


def _password(given: str | None, needed: bool) -> str | None:
    if given is not None:
        return given
    env = os.environ.get(PASSWORD_ENV)
    if env:
        return env
    if not needed:
        return None
    if sys.stdin.isatty():
        return str(click.prompt("SSH password", hide_input=True))
    raise BadInput(f"no password: give --passwd, {PASSWORD_ENV}, or a key with --pk")


def _settings(
    user: str,
    passwd: str | None,
    pk: str | None,
    pk_passwd: str | None,
    accept_new_host_keys: bool,
    parallel: int,
    ssh_timeout: float,
) -> Settings:
    if parallel < 1:
        raise BadInput(f"--parallel {parallel}: must be at least 1")
    if ssh_timeout <= 0:
        raise BadInput(f"--ssh-timeout {ssh_timeout}: must be more than 0")
    key_path = Path(pk).expanduser() if pk else None
    if key_path is None and passwd is None and not os.environ.get(PASSWORD_ENV):
        default_key = Path.home() / ".ssh" / "id_rsa"
        key_path = default_key if default_key.is_file() else None
    if key_path is not None and not key_path.is_file():
        raise BadInput(f"--pk {pk!r}: no such file")
    auth = Auth(
        user=user,
        password=_password(passwd, needed=key_path is None),
        key_path=key_path,
        key_passphrase=pk_passwd if pk_passwd is not None else os.environ.get(PASSPHRASE_ENV),
    )
    auth.load_key()  # a wrong passphrase is bad input, said once, before any host
    known = KnownHosts(Path.home() / ".ssh" / "known_hosts", accept_new_host_keys)
    return Settings(auth, known, ssh_timeout, parallel, home_dir() / "logs")


def _finish(orch: Orchestrator, report: Reporter, what: str) -> None:
    orch.close_all()
    report.print_table()
    failed = report.failed()
    if failed:
        raise StepFailed(
            f"{what}: {len(failed)} of {len(report.lines)} hosts failed: {', '.join(failed)}"
        )


def _template(path: str | None) -> bytes | None:
    if path is None:
        return None
    return read_template(Path(path)).encode()


def register(cli: click.Group) -> None:
    cli.add_command(init_command)
    cli.add_command(join_command)


@click.command("init")
@host_list_options
@ssh_options
@package_options
@click.option("--version", "version_text", required=True, metavar="VERSION", help="e.g. v1.30.4")
@click.option(
    "--vip", default=DEFAULT_VIP, show_default=True, help="The VIP nodes reach masters at."
)
@click.option("--kubeadm-config", "template_path", metavar="TEMPLATE", help="kubeadm template.")
def init_command(
    masters: tuple[str, ...],
    nodes: tuple[str, ...],
    user: str | None,
    pkg_url: str | None,
    pkg_sha256: str | None,
    version_text: str,
    vip: str,
    template_path: str | None,
    **ssh: Any,
) -> None:
    """Install a whole cluster over SSH from an offline package.

    \b
      bootstrap init --master 192.168.0.2 --master 192.168.0.3 --master 192.168.0.4 \\
          --node 192.168.0.5 --user root --pk ~/.ssh/id_rsa \\
          --pkg-url /root/kube1.30.4.tar.gz --version v1.30.4

    master0 first, the other masters one at a time, then the nodes in parallel. Run it
    again after a failure: what is done on a host is skipped.
    """
    master_list = _targets(masters, "--master")
    node_list = _targets(nodes, "--node")
    if not master_list:
        raise BadInput("--master is missing: give each master, master0 first")
    both = set(master_list) & set(node_list)
    if both:
        raise BadInput(f"--node {sorted(both)[0]}: also given as --master")
    if not pkg_url:
        raise BadInput("--pkg-url is missing: give the offline package (a file or a URL)")
    version = str(parse_version(version_text))
    vip_ip = parse_ip(vip, "--vip")
    expected = package.parse_sha256(pkg_sha256) if pkg_sha256 else None
    pkg = package.open_package(pkg_url, expected)
    template = _template(template_path)
    settings = _settings(user or "root", **ssh)
    cfile = ClusterFile()
    cluster = Cluster(
        masters=master_list,
        nodes=node_list,
        user=settings.auth.user,
        key_path=str(settings.auth.key_path) if settings.auth.key_path else None,
        version=version,
        vip=vip_ip,
        pkg_url=pkg_url,
        pkg_sha256=pkg.sha256,
        kubeadm_config=str(Path(template_path).resolve()) if template_path else None,
    )
    if cfile.exists():  # a re-run: keep what is known of the hosts (node names, results)
        old = cfile.load()
        cluster.hosts = {a: r for a, r in old.hosts.items() if a in (*master_list, *node_list)}
    report = Reporter()
    orch = Orchestrator(cluster, cfile, settings, report)
    try:
        orch.init(pkg, template)
    finally:
        _finish(orch, report, "init")


def _cluster_settings(cluster: Cluster, user: str | None, pk: str | None, **ssh: Any) -> Settings:
    return _settings(user or cluster.user, pk=pk or cluster.key_path, **ssh)


@click.command("join")
@host_list_options
@ssh_options
@package_options
def join_command(
    masters: tuple[str, ...],
    nodes: tuple[str, ...],
    user: str | None,
    pk: str | None,
    pkg_url: str | None,
    pkg_sha256: str | None,
    **ssh: Any,
) -> None:
    """Add masters or nodes to the cluster `init` made (the cluster file knows the rest)."""
    cfile = ClusterFile()
    cluster = cfile.load()
    new_masters = _targets(masters, "--master")
    new_nodes = _targets(nodes, "--node")
    if not new_masters and not new_nodes:
        raise BadInput("nothing to join: give --master or --node")
    for addr in (*new_masters, *new_nodes):
        if addr in cluster.masters or (
            addr in cluster.nodes and cluster.hosts[addr].result == "ok"
        ):
            raise BadInput(f"{addr}: already in the cluster ({cfile.path})")
    expected = package.parse_sha256(pkg_sha256) if pkg_sha256 else None
    pkg = package.open_package(pkg_url or cluster.pkg_url, expected)
    if pkg.sha256 is None and cluster.pkg_sha256:
        pkg = package.Package(pkg.source, None, cluster.pkg_sha256)
    template = _template(cluster.kubeadm_config)
    settings = _cluster_settings(cluster, user, pk, **ssh)
    report = Reporter()
    orch = Orchestrator(cluster, cfile, settings, report)
    try:
        orch.join(new_masters, new_nodes, pkg, template)
    finally:
        _finish(orch, report, "join")


def clean_cluster(
    masters: tuple[str, ...],
    nodes: tuple[str, ...],
    everything: bool,
    user: str | None,
    pk: str | None,
    **ssh: Any,
) -> None:
    """`bootstrap clean --master/--node/--all`: hosts of the cluster file, over SSH."""
    cfile = ClusterFile()
    cluster = cfile.load()
    chosen = [*_targets(masters, "--master"), *_targets(nodes, "--node")]
    if everything:
        chosen = [*cluster.nodes, *cluster.masters]
        chosen += [a for a in cluster.hosts if a not in chosen]
    for addr in chosen:
        if addr not in cluster.hosts:
            raise BadInput(f"{addr}: not in the cluster ({cfile.path})")
    settings = _cluster_settings(cluster, user, pk, **ssh)
    report = Reporter()
    orch = Orchestrator(cluster, cfile, settings, report)
    try:
        orch.clean(chosen, everything)
    finally:
        _finish(orch, report, "clean")
