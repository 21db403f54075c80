"""The single-host commands: `master0`, `master --join`, `node`, `clean`, `config`, `certs`.

Each works on this host only; `clean --master/--node/--all` hands over to the cluster
commands (loaded then, so that a host never loads the SSH library for its own commands).
"""

from __future__ import annotations

import importlib
import socket
import sys
from pathlib import Path
from typing import Any, ClassVar

import click

from bootstrap import defaults
from bootstrap.cli.options import (
    F,
    cluster_name_option,
    host_list_options,
    host_options,
    join_options,
    kubeadm_options,
    lvscare_daemon_options,
    renewal_wait_options,
    ssh_options,
)
from bootstrap.defaults import APISERVER_PORT, DEFAULT_VIP
from bootstrap.errors import BadInput, StepFailed
from bootstrap.host import kubeadm, lvscare_rules, renewal, runtime, steps
from bootstrap.host.effects import Effects
from bootstrap.host.kubeadm_config import (
    DEFAULT_CRI_SOCKET,
    ClusterSpec,
    default_template,
    read_template,
)
from bootstrap.host.state import State
from bootstrap.inputs import (
    KubeVersion,
    parse_ca_hash,
    parse_cert_san,
    parse_certificate_key,
    parse_cidr,
    parse_ip,
    parse_master,
    parse_node_name,
    parse_repository,
    parse_token,
    parse_version,
    parse_years,
)
from bootstrap.join import Join, read_document


def _host(
    dry_run: bool, hosts_file: str | None, kubernetes_dir: str | None, state_dir_opt: str | None
) -> steps.Host:
    paths = steps.Paths(
        hosts_file=defaults.hosts_file(hosts_file),
        kubernetes_dir=defaults.kubernetes_dir(kubernetes_dir),
        state_dir=defaults.state_dir(state_dir_opt),
        home=Path.home(),
    )
    return steps.Host(Effects(dry_run), paths, State(paths.state_dir))


def _version(text: str | None) -> KubeVersion:
    if text:
        return parse_version(text)
    try:
        return kubeadm.installed_version()
    except StepFailed:
        raise BadInput("--version is missing and there is no kubeadm on PATH to ask") from None


def _node_name(text: str | None) -> str:
    if text:
        return parse_node_name(text)
    name = socket.gethostname().strip().lower()
    try:
        return parse_node_name(name, "hostname")
    except BadInput as e:
        raise BadInput(f"{e}; give --node-name") from None


def _spec(
    masters: tuple[str, ...],
    vip: str,
    version_text: str | None,
    pod_cidr: str,
    svc_cidr: str,
    repo: str,
    cert_sans: tuple[str, ...],
    years: int,
    node_name: str | None,
    cgroup_driver: str = runtime.AUTO,
) -> ClusterSpec:
    if not masters:
        raise BadInput("--master is missing: give each master's address, master0 first")
    parsed = tuple(dict.fromkeys(parse_master(m) for m in masters))
    return ClusterSpec(
        version=_version(version_text),
        masters=parsed,
        vip=parse_ip(vip, "--vip"),
        pod_cidr=parse_cidr(pod_cidr, "--pod-cidr"),
        svc_cidr=parse_cidr(svc_cidr, "--svc-cidr"),
        repo=parse_repository(repo),
        cert_sans=tuple(dict.fromkeys(parse_cert_san(s) for s in cert_sans if s.strip())),
        node_name=_node_name(node_name),
        years=parse_years(years),
        cgroup_driver=runtime.cgroup_driver(cgroup_driver),
        cri_socket=runtime.cri_socket(DEFAULT_CRI_SOCKET),
    )


def _template(path: str | None, spec: ClusterSpec) -> tuple[str, str]:
    """The template text and how errors should name it."""
    if path:
        return read_template(Path(path)), path
    return default_template(spec.version), "the default template"


def _own_ip(ip: str | None, towards: str) -> str:
    """--ip, else the address this host uses to reach `towards` (no packet is sent)."""
    if ip:
        return parse_ip(ip, "--ip")
    family = socket.AF_INET6 if ":" in towards else socket.AF_INET
    try:
        with socket.socket(family, socket.SOCK_DGRAM) as s:
            s.connect((towards, APISERVER_PORT))
            return str(s.getsockname()[0])
    except OSError:
        raise BadInput(f"cannot tell this host's address towards {towards}: give --ip") from None


def _read_join_config(path: str) -> str:
    if path == "-":
        return sys.stdin.read()
    try:
        return Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        reason = e.strerror if isinstance(e, OSError) and e.strerror else str(e)
        raise BadInput(f"--join-config {path!r}: cannot read it ({reason})") from None


def _join(
    join_config: str | None, token: str | None, ca_hash: str | None, certificate_key: str | None
) -> Join:
    """The join's secrets from --join-config (a file or stdin), else from the flags."""
    if join_config is not None:
        if token or ca_hash or certificate_key:
            raise BadInput(
                f"--join-config {join_config!r}: give it or --token, "
                "--discovery-token-ca-cert-hash and --certificate-key, not both"
            )
        return read_document(_read_join_config(join_config), f"--join-config {join_config!r}")
    if not token or not ca_hash:
        raise BadInput(
            "the join is missing: give --join-config FILE (or --token and "
            "--discovery-token-ca-cert-hash, which show in ps)"
        )
    return Join(
        parse_token(token),
        parse_ca_hash(ca_hash),
        parse_certificate_key(certificate_key) if certificate_key else None,
    )


def _kubeadm_command(fn: F) -> F:
    return host_options(kubeadm_options(fn))


@click.command("master0")
@_kubeadm_command
def master0_command(
    dry_run: bool,
    hosts_file: str | None,
    kubernetes_dir: str | None,
    state_dir: str | None,
    template_path: str | None,
    **cluster: Any,
) -> None:
    """Make this host the first master: hosts line, PKI, kubeadm init, join commands.

    \b
      bootstrap master0 --master 192.168.0.2 --master 192.168.0.3 --master 192.168.0.4 \\
          --vip 10.103.97.2 --version v1.30.4
    """
    spec = _spec(**cluster)
    template, source = _template(template_path, spec)
    host = _host(dry_run, hosts_file, kubernetes_dir, state_dir)
    info = steps.master0(host, spec, template, source)
    if info is None and dry_run:
        host.fx.say("(the join commands are printed once kubeadm init has run)")
        return
    if info is None:
        raise StepFailed(
            "kubeadm init is done but no join parameters were recorded: "
            "make them with `kubeadm token create --print-join-command`"
        )
    for line in steps.join_commands(spec, info, template_path):
        click.echo(line)


@click.command("master")
@click.option("--join", "join_flag", is_flag=True, help="Join an existing cluster (required).")
@click.option(
    "--ip", metavar="IP", help="This master's address [default: the one towards master0]."
)
@join_options
@click.option(
    "--certificate-key",
    metavar="HEX",
    help="Optional: kubeadm then also downloads the CAs it already finds here. Shows in `ps` "
    "while the command runs: --join-config does not.",
)
@_kubeadm_command
def master_command(
    join_flag: bool,
    ip: str | None,
    join_config: str | None,
    token: str | None,
    ca_hash: str | None,
    certificate_key: str | None,
    dry_run: bool,
    hosts_file: str | None,
    kubernetes_dir: str | None,
    state_dir: str | None,
    template_path: str | None,
    **cluster: Any,
) -> None:
    """Join this host as another master (the cluster's CAs must already be in pki/).

    Copy ca.crt/key, front-proxy-ca.crt/key, etcd/ca.crt/key, sa.key and sa.pub from
    master0 first: this master then makes its own long-lived certificates from them.
    """
    if not join_flag:
        raise BadInput("bootstrap master needs --join (the first master is `bootstrap master0`)")
    join = _join(join_config, token, ca_hash, certificate_key)
    spec = _spec(**cluster)
    template, source = _template(template_path, spec)
    own = _own_ip(ip, spec.master0)
    host = _host(dry_run, hosts_file, kubernetes_dir, state_dir)
    steps.master_join(host, spec, template, source, own, join)


@click.command("node")
@click.option(
    "--master", "masters", multiple=True, metavar="IP", help="Every master's address (repeatable)."
)
@click.option("--vip", default=DEFAULT_VIP, show_default=True)
@join_options
@click.option(
    "--version",
    "version_text",
    metavar="VERSION",
    help="Kubernetes version, for kubeadm's configuration [default: what `kubeadm version` says].",
)
@click.option("--node-name", metavar="NAME", help="[default: the hostname, lower case]")
@click.option("--lvscare-image", metavar="IMAGE", help="Image of the lvscare static pod.")
@lvscare_daemon_options
@host_options
def node_command(
    masters: tuple[str, ...],
    vip: str,
    join_config: str | None,
    token: str | None,
    ca_hash: str | None,
    version_text: str | None,
    node_name: str | None,
    lvscare_image: str | None,
    lvscare_mode: str,
    interval: str,
    dry_run: bool,
    hosts_file: str | None,
    kubernetes_dir: str | None,
    state_dir: str | None,
) -> None:
    """Join this host as a node, reaching the masters through lvscare's virtual server.

    The IPVS rules are made first (kubeadm join goes through the VIP), the lvscare static
    pod is written after the join (kubeadm wants the manifests directory empty).
    """
    if not masters:
        raise BadInput("--master is missing: give every master's address")
    parsed = tuple(dict.fromkeys(parse_master(m) for m in masters))
    join = _join(join_config, token, ca_hash, None)
    vip_ip = parse_ip(vip, "--vip")
    name = _node_name(node_name)
    version = _version(version_text)
    daemon = lvscare_rules.Daemon(lvscare_mode, interval)
    lvscare_rules.check(daemon)
    host = _host(dry_run, hosts_file, kubernetes_dir, state_dir)
    image = lvscare_image or lvscare_rules.default_image()
    steps.node(host, parsed, vip_ip, join, name, image, version, daemon)


@click.command("clean")
@click.option(
    "--vip",
    metavar="IP",
    help="Remove this VIP's IPVS rules too [default: the one bootstrap recorded].",
)
@host_list_options
@click.option("--all", "everything", is_flag=True, help="Clean every host of the cluster file.")
@cluster_name_option
@ssh_options
@host_options
def clean_command(
    vip: str | None,
    masters: tuple[str, ...],
    nodes: tuple[str, ...],
    everything: bool,
    dry_run: bool,
    hosts_file: str | None,
    kubernetes_dir: str | None,
    state_dir: str | None,
    **ssh: Any,
) -> None:
    """Undo master0, master or node on this host: kubeadm reset -f, our manifest, hosts line,
    IPVS rules and the files bootstrap wrote (those changed since are kept). Safe to run twice.

    With --master/--node (hosts of the cluster `init` made) or --all, clean those hosts over
    SSH instead: everything init put there, and the cluster learns they are gone.

    \b
    Without a cluster file (the seed's form), exactly the hosts named are cleaned:
      bootstrap clean --master 192.168.0.2 --node 192.168.0.5 --user root --passwd PW
    No master is then known to stay, so `kubectl delete node` is left to you (said at the
    end); a host without lvscare-py's bootstrap on it is left as it is.
    """
    if masters or nodes or everything:
        if hosts_file or kubernetes_dir or state_dir or vip:
            raise BadInput(
                "--vip, --hosts-file, --kubernetes-dir and --state-dir are for cleaning this "
                "host; not with --master, --node or --all"
            )
        from bootstrap.cli.cluster import clean_cluster  # the SSH side, only when asked for

        clean_cluster(masters, nodes, everything, dry_run=dry_run, **ssh)
        return
    if ssh.get("cluster_name"):
        raise BadInput("--cluster is for cleaning hosts over SSH: give --master, --node or --all")
    host = _host(dry_run, hosts_file, kubernetes_dir, state_dir)
    problems = steps.clean(host, parse_ip(vip, "--vip") if vip else None)
    if problems:
        raise StepFailed("clean finished, but: " + "; ".join(problems))


@click.command("config")
@click.option(
    "-t",
    "--type",
    "kind",
    type=click.Choice(["kubeadm"]),
    default="kubeadm",
    show_default=True,
    help="Which template to print.",
)
@click.option(
    "--version",
    "version_text",
    metavar="VERSION",
    help="Kubernetes version: v1.31 and later get kubeadm.k8s.io/v1beta4.",
)
def config_command(kind: str, version_text: str | None) -> None:
    """Print the default kubeadm template, to edit and pass back with --kubeadm-config."""
    if version_text:
        version = parse_version(version_text)
    else:
        try:
            version = kubeadm.installed_version()
        except (StepFailed, BadInput):
            version = KubeVersion(1, 30, 0)
    click.echo(default_template(version), nl=False)


class _CertsGroup(click.Group):
    """`certs` with subcommands, the SSH ones loaded only when asked for (a host running
    `bootstrap certs --years` never loads the SSH library)."""

    ON_DEMAND: ClassVar[dict[str, str]] = {"check": "check_command", "renew": "renew_command"}
    MODULE = "bootstrap.cli.certs"

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*super().list_commands(ctx), *self.ON_DEMAND})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name in self.ON_DEMAND:
            command = getattr(importlib.import_module(self.MODULE), self.ON_DEMAND[cmd_name])
            assert isinstance(command, click.Command)
            return command
        return super().get_command(ctx, cmd_name)


@click.group("certs", cls=_CertsGroup, invoke_without_command=True)
@click.option("--ip", metavar="IP", help="This host's address [default: the first --master].")
@click.option(
    "--renew",
    is_flag=True,
    help="Renew this running master's certificates instead: every leaf and kubeconfig "
    "client certificate re-signed by the kept CAs for --years, same keys and names, after a "
    "backup to STATE_DIR/backup/certs-TIME/; then the control plane restarted. Needs no "
    "--master or --version.",
)
@renewal_wait_options(each_master=False)
@_kubeadm_command
@click.pass_context
def certs_command(
    ctx: click.Context,
    /,
    ip: str | None,
    renew: bool,
    restart_wait: float,
    serve_timeout: float,
    dry_run: bool,
    hosts_file: str | None,
    kubernetes_dir: str | None,
    state_dir: str | None,
    template_path: str | None,
    **cluster: Any,
) -> None:
    """Write the kubeadm PKI and kubeconfigs for --years, so kubeadm reuses them; a
    certificate that ends sooner than --years asks is re-issued from the kept CA (a CA
    itself cannot be: it is named and kept).

    \b
      bootstrap certs --years 99 --master 192.168.0.2 --version v1.30.4
      bootstrap certs --renew --years 10      (a running master, on the master)
      bootstrap certs list [--json]           (every certificate here, with its end)
      bootstrap certs check | renew ...       (every master of a cluster, over SSH)
    """
    if ctx.invoked_subcommand is not None:
        given = [
            p.opts[0]
            for p in ctx.command.params
            if isinstance(p, click.Option)
            and ctx.get_parameter_source(p.name or "") != click.core.ParameterSource.DEFAULT
        ]
        if given:
            raise BadInput(
                f"{given[0]}: give it after `certs {ctx.invoked_subcommand}`, not before"
            )
        return
    if renew:
        if cluster["masters"] or template_path:
            raise BadInput(
                "--renew keeps each certificate's names and needs no cluster settings: "
                "give no --master or --kubeadm-config"
            )
        years = parse_years(cluster["years"])
        wait = renewal.parse_restart_wait(restart_wait)
        serve = renewal.parse_restart_wait(serve_timeout, "--serve-timeout")
        host = _host(dry_run, hosts_file, kubernetes_dir, state_dir)
        renewal.renew(host, years, wait, serve)
        return
    spec = _spec(**cluster)
    template, source = _template(template_path, spec)
    own = parse_ip(ip, "--ip") if ip else spec.master0
    host = _host(dry_run, hosts_file, kubernetes_dir, state_dir)
    steps.certs(host, spec, template, source, own)


@certs_command.command("list")
@click.option("--json", "as_json", is_flag=True, help="One JSON line, for `certs check`.")
@click.option(
    "--kubernetes-dir",
    metavar="DIR",
    help="kubeadm's directory [default: /etc/kubernetes].",
)
def certs_list_command(as_json: bool, kubernetes_dir: str | None) -> None:
    """Every certificate of this host (pki/, pki/etcd/, the kubeconfigs' client
    certificates) with its end. Reads only."""
    kdir = defaults.kubernetes_dir(kubernetes_dir)
    if as_json:
        click.echo(renewal.inventory_json(kdir))
        return
    for entry in renewal.inventory(kdir):
        click.echo(
            f"{entry.not_after or '-':<21} {entry.kind:<10} {entry.file} {entry.note}".rstrip()
        )


COMMANDS = (
    master0_command,
    master_command,
    node_command,
    clean_command,
    config_command,
    certs_command,
)
