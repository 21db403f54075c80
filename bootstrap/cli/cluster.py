"""`bootstrap init`, `join` and cluster-wide `clean`: flags as sealos users know them.

These run on a workstation and drive every host over SSH; the hosts themselves run the
single-host commands (`bootstrap master0`, `master --join`, `node`, `clean`). The group
loads this module only when one of them is asked for.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from types import FrameType
from typing import Any

import click

from bootstrap.cli.options import (
    cluster_name_option,
    cluster_spec_options,
    host_list_options,
    lvscare_daemon_options,
    package_options,
    preflight_options,
    ssh_options,
)
from bootstrap.cluster import clock, package, plans
from bootstrap.cluster.cluster_file import Cluster, ClusterFile, HostRecord
from bootstrap.cluster.orchestrate import HostFailed, Orchestrator, Settings
from bootstrap.cluster.progress import Reporter
from bootstrap.cluster.ssh import Auth, KnownHosts, Target, parse_target
from bootstrap.defaults import (
    DEFAULT_VIP,
    MAX_CLOCK_SKEW,
    PASSPHRASE_ENV,
    PASSWORD_ENV,
    setting,
)
from bootstrap.errors import BadInput, Interrupted, StepFailed
from bootstrap.host import lvscare_rules
from bootstrap.host.kubeadm_config import read_template
from bootstrap.host.lvscare_rules import Daemon
from bootstrap.inputs import (
    parse_cert_san,
    parse_cidr,
    parse_ip,
    parse_repository,
    parse_version,
    parse_years,
)

MAX_SSH_TIMEOUT = 86400.0


def parse_targets(values: tuple[str, ...], flag: str) -> list[Target]:
    return list(dict.fromkeys(parse_target(value, flag) for value in values))


def _password(given: str | None, needed: bool) -> str | None:
    password = setting(given, PASSWORD_ENV)
    if password is not None or not needed:
        return password
    if sys.stdin.isatty():
        return str(click.prompt("SSH password", hide_input=True))
    raise BadInput(f"no password: give --passwd, {PASSWORD_ENV}, or a key with --pk")


def ssh_settings(
    cfile: ClusterFile,
    user: str,
    passwd: str | None,
    pk: str | None,
    pk_passwd: str | None,
    accept_new_host_keys: bool,
    parallel: int,
    ssh_timeout: float,
    max_clock_skew: float = MAX_CLOCK_SKEW,
    relay: bool = True,
    skip_preflight: bool = False,
) -> Settings:
    if parallel < 1:
        raise BadInput(f"--parallel {parallel}: must be at least 1")
    if not 0 < ssh_timeout <= MAX_SSH_TIMEOUT:  # also nan and inf, which click takes
        raise BadInput(f"--ssh-timeout {ssh_timeout}: must be more than 0 (and a day at most)")
    try:
        key_path = Path(pk).expanduser() if pk else None
    except RuntimeError:  # ~user of a user that does not exist
        raise BadInput(f"--pk {pk!r}: no such file") from None
    if key_path is None and setting(passwd, PASSWORD_ENV) is None:
        default_key = Path.home() / ".ssh" / "id_rsa"
        key_path = default_key if default_key.is_file() else None
    if key_path is not None and not key_path.is_file():
        raise BadInput(f"--pk {pk!r}: no such file")
    auth = Auth(
        user=user,
        password=_password(passwd, needed=key_path is None),
        key_path=key_path,
        key_passphrase=setting(pk_passwd, PASSPHRASE_ENV),
    )
    auth.load_key()  # a wrong passphrase is bad input, said once, before any host
    known = KnownHosts(Path.home() / ".ssh" / "known_hosts", accept_new_host_keys)
    max_skew = clock.parse_max_skew(max_clock_skew)
    return Settings(
        auth,
        known,
        ssh_timeout,
        parallel,
        cfile.logs,
        max_skew,
        relay,
        preflight=not skip_preflight,
    )


def orchestrate_hosts(
    what: str,
    cluster: Cluster,
    cfile: ClusterFile,
    settings: Settings,
    work: Callable[[Orchestrator], None],
    kind: type[Orchestrator] = Orchestrator,
) -> None:
    """`work` across the hosts on an Orchestrator (or a `kind` of one), then the table;
    StepFailed naming the hosts that failed, Interrupted (exit 130) after Ctrl-C."""
    orch = kind(cluster, cfile, settings, Reporter())
    run_hosts(what, orch, lambda: work(orch))
    verdict = orch.report.verdict(what)
    if verdict:
        raise StepFailed(verdict)


def run_hosts(
    what: str, orch: Orchestrator, work: Callable[[], None], *, table: bool = True
) -> None:
    """`work` on the hosts with Ctrl-C handled (the first lets running steps end, the second
    closes every connection), every connection closed after, then the table (unless
    `table` is False: the caller prints its own); Interrupted (exit 130) after Ctrl-C."""
    try:
        with ctrl_c(orch):
            work()
    except KeyboardInterrupt:  # the second Ctrl-C
        orch.abort()
        orch.aborted_under()
    except HostFailed:  # already in the table
        pass
    finally:
        orch.close_all()
        if table:
            orch.report.print_table()
    if orch.stop.is_set():
        raise Interrupted(f"{what}: interrupted by Ctrl-C; run the same command again to continue")


STOPPING = (
    "\nbootstrap: Ctrl-C: stopping once the steps running now end, nothing new starts "
    "(Ctrl-C again: stop at once)\n"
)


@contextlib.contextmanager
def ctrl_c(orch: Orchestrator) -> Iterator[None]:
    """The first Ctrl-C lets the steps running now end (a kubeadm cut short leaves a host
    worse off than one left alone) and starts nothing new; the second stops at once."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def on_sigint(signum: int, frame: FrameType | None) -> None:
        if orch.stop.is_set():
            raise KeyboardInterrupt
        orch.interrupt()
        os.write(2, STOPPING.encode())  # not print(): the main thread may hold its lock

    previous = signal.signal(signal.SIGINT, on_sigint)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


def _template(path: str | None) -> bytes | None:
    if path is None:
        return None
    return read_template(Path(path)).encode()


@click.command("init")
@host_list_options
@cluster_name_option
@ssh_options
@package_options
@preflight_options
@click.option("--version", "version_text", required=True, metavar="VERSION", help="e.g. v1.30.4")
@click.option(
    "--vip", default=DEFAULT_VIP, show_default=True, help="The VIP nodes reach masters at."
)
@click.option("--kubeadm-config", "template_path", metavar="TEMPLATE", help="kubeadm template.")
@cluster_spec_options
@click.option(
    "--lvscare-image",
    metavar="IMAGE",
    help="Image of the nodes' lvscare static pod [default: the package's, lvscare-py:VERSION].",
)
@lvscare_daemon_options
@click.option(
    "--cni",
    "cni_choice",
    type=click.Choice(["package", "none"]),
    default="package",
    show_default=True,
    help="Apply the package's CNI manifest on master0 after kubeadm init (its pod network "
    "set to --pod-cidr), or none (bring your own).",
)
def init_command(
    masters: tuple[str, ...],
    nodes: tuple[str, ...],
    user: str | None,
    pkg_url: str | None,
    pkg_sha256: str | None,
    version_text: str,
    vip: str,
    template_path: str | None,
    pod_cidr: str,
    svc_cidr: str,
    repo: str,
    cert_sans: tuple[str, ...],
    years: int,
    lvscare_image: str | None,
    lvscare_mode: str,
    interval: str,
    cni_choice: str,
    cluster_name: str | None,
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
    master_list = parse_targets(masters, "--master")
    node_list = parse_targets(nodes, "--node")
    if not master_list:
        raise BadInput("--master is missing: give each master, master0 first")
    both = set(master_list) & set(node_list)
    if both:
        raise BadInput(f"--node {min(both, key=str)}: also given as --master")
    if not pkg_url:
        raise BadInput("--pkg-url is missing: give the offline package (a file or a URL)")
    version = str(parse_version(version_text))
    vip_ip = parse_ip(vip, "--vip")
    pod_net, svc_net = parse_cidr(pod_cidr, "--pod-cidr"), parse_cidr(svc_cidr, "--svc-cidr")
    repository = parse_repository(repo)
    sans = list(dict.fromkeys(parse_cert_san(s) for s in cert_sans if s.strip()))
    lifetime = parse_years(years)
    daemon = Daemon(lvscare_mode, interval)
    lvscare_rules.check(daemon)
    expected = package.parse_sha256(pkg_sha256) if pkg_sha256 else None
    template = _template(template_path)
    cfile = ClusterFile(name=cluster_name)
    settings = ssh_settings(cfile, user or "root", **ssh)
    pkg = package.open_package(pkg_url, expected)  # last: it reads the whole package
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
        pod_cidr=pod_net,
        svc_cidr=svc_net,
        repo=repository,
        cert_sans=sans,
        years=lifetime,
        lvscare_image=lvscare_image,
        lvscare_mode=daemon.mode,
        interval=daemon.interval,
        cni=cni_choice == "package",
    )
    if cfile.exists():  # a re-run: keep what is known of the hosts (node names, results)
        old = cfile.load()
        cluster.hosts = {a: r for a, r in old.hosts.items() if a in (*master_list, *node_list)}
    orchestrate_hosts("init", cluster, cfile, settings, lambda orch: orch.init(pkg, template))


def cluster_settings(
    cfile: ClusterFile, cluster: Cluster, user: str | None, pk: str | None, **ssh: Any
) -> Settings:
    return ssh_settings(cfile, user or cluster.user, pk=pk or cluster.key_path, **ssh)


@click.command("join")
@host_list_options
@cluster_name_option
@ssh_options
@package_options
@preflight_options
@click.option(
    "--version",
    "version_text",
    metavar="VERSION",
    help="Without a cluster file: the cluster's Kubernetes version [default: what "
    "`kubeadm version` says on the first --master].",
)
@click.option(
    "--vip",
    default=None,
    metavar="IP",
    help=f"Without a cluster file: the VIP nodes reach the masters at [default: {DEFAULT_VIP}].",
)
@click.option(
    "--dry-run",
    is_flag=True,
    help="Print what would be done on each host; connect to none, change nothing.",
)
def join_command(
    masters: tuple[str, ...],
    nodes: tuple[str, ...],
    user: str | None,
    pk: str | None,
    pkg_url: str | None,
    pkg_sha256: str | None,
    cluster_name: str | None,
    version_text: str | None,
    vip: str | None,
    dry_run: bool,
    **ssh: Any,
) -> None:
    """Add masters or nodes to the cluster `init` made (the cluster file knows the rest).

    \b
    Without a cluster file (a cluster the seed system, sealos, made), its form:
      bootstrap join --master 192.168.0.2 --master 192.168.0.3 --node 192.168.0.5 \\
          --user root --pk ~/.ssh/id_rsa --pkg-url /root/kube1.30.4.tar.gz

    There --master names the cluster's masters (master0 first: it gives the join token and
    its kubeadm the version) and --node the hosts to join. A node the seed made is taken
    over: its lvscare pod (kube-sealyun-lvscare.yaml) moved to /var/lib/lvscare-py/adopted/,
    ours in its place, its kubeadm join kept. The cluster file is then written, so later
    `join` and `clean` need only the hosts that change.
    """
    cfile = ClusterFile(name=cluster_name)
    if not cfile.exists():
        _join_made_elsewhere(
            cfile, masters, nodes, user, pk, pkg_url, pkg_sha256, version_text, vip, dry_run, ssh
        )
        return
    if version_text or vip:
        raise BadInput(
            f"--version and --vip are for a cluster without a cluster file; {cfile.path} has them"
        )
    cluster = cfile.load()
    new_masters = parse_targets(masters, "--master")
    new_nodes = parse_targets(nodes, "--node")
    if not new_masters and not new_nodes:
        raise BadInput("nothing to join: give --master or --node")
    for addr in (*new_masters, *new_nodes):
        record = cluster.hosts.get(addr)
        if addr in cluster.masters or (
            addr in cluster.nodes and record is not None and record.result == "ok"
        ):
            raise BadInput(f"{addr}: already in the cluster ({cfile.path})")
    expected = package.parse_sha256(pkg_sha256) if pkg_sha256 else None
    template = _template(cluster.kubeadm_config)
    if dry_run:
        source = pkg_url or cluster.pkg_url
        click.echo("\n".join(plans.join_plan(cluster, new_masters, new_nodes, source, False)))
        return
    settings = cluster_settings(cfile, cluster, user, pk, **ssh)
    pkg = package.open_package(pkg_url or cluster.pkg_url, expected)  # reads it whole
    if pkg.sha256 is None and cluster.pkg_sha256:
        pkg = package.Package(pkg.source, None, cluster.pkg_sha256)
    orchestrate_hosts(
        "join",
        cluster,
        cfile,
        settings,
        lambda orch: orch.join(new_masters, new_nodes, pkg, template),
    )


def _join_made_elsewhere(
    cfile: ClusterFile,
    masters: tuple[str, ...],
    nodes: tuple[str, ...],
    user: str | None,
    pk: str | None,
    pkg_url: str | None,
    pkg_sha256: str | None,
    version_text: str | None,
    vip: str | None,
    dry_run: bool,
    ssh: dict[str, Any],
) -> None:
    """The seed's `join --master ... --node ...` with no cluster file: every input checked
    before any host is reached; the Cluster record built from the flags."""
    master_list = parse_targets(masters, "--master")
    node_list = parse_targets(nodes, "--node")
    if not master_list:
        raise BadInput(
            f"{cfile.path}: no cluster file; give --master (the cluster's masters, master0 "
            "first) and --node (the hosts to join), or make the cluster with `bootstrap init`"
        )
    if not node_list:
        raise BadInput(
            "nothing to join: give --node (without a cluster file, --master names the "
            "cluster's masters)"
        )
    both = set(master_list) & set(node_list)
    if both:
        raise BadInput(f"--node {min(both, key=str)}: also given as --master")
    if not pkg_url:
        raise BadInput("--pkg-url is missing: give the offline package (a file or a URL)")
    version = str(parse_version(version_text)) if version_text else ""  # "": master0 says
    vip_ip = parse_ip(vip or DEFAULT_VIP, "--vip")
    expected = package.parse_sha256(pkg_sha256) if pkg_sha256 else None
    if dry_run:
        cluster = Cluster(master_list, [], user or "root", pk, version, vip_ip, pkg_url, None)
        click.echo("\n".join(plans.join_plan(cluster, [], node_list, pkg_url, True)))
        return
    settings = ssh_settings(cfile, user or "root", pk=pk, **ssh)
    pkg = package.open_package(pkg_url, expected)  # last: it reads the whole package
    cluster = Cluster(
        masters=master_list,
        nodes=[],
        user=settings.auth.user,
        key_path=str(settings.auth.key_path) if settings.auth.key_path else None,
        version=version,
        vip=vip_ip,
        pkg_url=pkg_url,
        pkg_sha256=pkg.sha256,
    )
    for addr in master_list:  # members already: their ports are their own cluster's
        cluster.hosts[addr] = HostRecord("master", result="ok")
    orchestrate_hosts(
        "join",
        cluster,
        cfile,
        settings,
        lambda orch: orch.join_made_elsewhere(node_list, pkg),
    )


def _clean_made_elsewhere(
    cfile: ClusterFile,
    masters: tuple[str, ...],
    nodes: tuple[str, ...],
    user: str | None,
    pk: str | None,
    dry_run: bool,
    ssh: dict[str, Any],
) -> None:
    """The seed's `clean --master ... --node ...` with no cluster file: exactly those hosts."""
    master_list = parse_targets(masters, "--master")
    node_list = parse_targets(nodes, "--node")
    both = set(master_list) & set(node_list)
    if both:
        raise BadInput(f"--node {min(both, key=str)}: also given as --master")
    if dry_run:
        roles = [*[(m, "master") for m in master_list], *[(n, "node") for n in node_list]]
        click.echo("\n".join(plans.clean_plan(None, roles, False)))
        return
    settings = ssh_settings(cfile, user or "root", pk=pk, **ssh)
    cluster = Cluster(
        masters=master_list,
        nodes=node_list,
        user=settings.auth.user,
        key_path=None,
        version="",
        vip=DEFAULT_VIP,
        pkg_url="",
        pkg_sha256=None,
    )
    orchestrate_hosts(
        "clean",
        cluster,
        cfile,
        settings,
        lambda orch: orch.clean_unrecorded(master_list, node_list),
    )


def clean_cluster(
    masters: tuple[str, ...],
    nodes: tuple[str, ...],
    everything: bool,
    user: str | None,
    pk: str | None,
    cluster_name: str | None = None,
    dry_run: bool = False,
    **ssh: Any,
) -> None:
    """`bootstrap clean --master/--node/--all`: hosts of the cluster file, over SSH; without
    a cluster file (not with --all), exactly the hosts named (`_clean_made_elsewhere`)."""
    cfile = ClusterFile(name=cluster_name)
    if not everything and not cfile.exists():
        _clean_made_elsewhere(cfile, masters, nodes, user, pk, dry_run, ssh)
        return
    cluster = cfile.load()
    chosen = [*parse_targets(masters, "--master"), *parse_targets(nodes, "--node")]
    if everything:
        chosen = [*cluster.nodes, *cluster.masters]
        chosen += [a for a in cluster.hosts if a not in chosen]
    for addr in chosen:
        if addr not in cluster.hosts:
            raise BadInput(f"{addr}: not in the cluster ({cfile.path})")
    if not everything and all(m in chosen for m in cluster.masters):
        raise BadInput("that would clean every master: use --all to clean the whole cluster")
    if dry_run:
        roles = [(a, cluster.hosts[a].role) for a in chosen]
        click.echo("\n".join(plans.clean_plan(cluster, roles, everything)))
        return
    settings = cluster_settings(cfile, cluster, user, pk, **ssh)
    orchestrate_hosts(
        "clean", cluster, cfile, settings, lambda orch: orch.clean(chosen, everything)
    )


COMMANDS = {"init": init_command, "join": join_command}
