"""The option groups commands share, with the names sealos users know. Importing this
module loads no SSH library: the host commands use it too."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol, TypeVar

import click

from bootstrap.defaults import (
    DEFAULT_VIP,
    HOSTS_FILE,
    HOSTS_FILE_ENV,
    KUBERNETES_DIR,
    KUBERNETES_DIR_ENV,
    MAX_CLOCK_SKEW,
    PASSPHRASE_ENV,
    PASSWORD_ENV,
    STATE_DIR,
    STATE_DIR_ENV,
)
from bootstrap.host.kubeadm_config import DEFAULT_POD_CIDR, DEFAULT_REPO, DEFAULT_SVC_CIDR
from bootstrap.host.renewal import RESTART_WAIT, SERVE_TIMEOUT

F = TypeVar("F", bound=Callable[..., Any])


class Decorator(Protocol):
    def __call__(self, fn: F, /) -> F: ...


DEFAULT_PARALLEL = 20


def _stack(*options: Decorator) -> Decorator:
    """The options in the order given, as one decorator."""

    def apply(fn: F) -> F:
        for option in reversed(options):
            fn = option(fn)
        return fn

    return apply


# --dry-run and where the host's files are (the defaults are the real places).
host_options = _stack(
    click.option(
        "--dry-run", is_flag=True, help="Print the commands and file changes, change nothing."
    ),
    click.option(
        "--hosts-file",
        metavar="FILE",
        help=f"The hosts file [env {HOSTS_FILE_ENV}; default {HOSTS_FILE}].",
    ),
    click.option(
        "--kubernetes-dir",
        metavar="DIR",
        help=f"kubeadm's directory [env {KUBERNETES_DIR_ENV}; default "
        f"{KUBERNETES_DIR}]. Certificates go to DIR/pki, manifests to DIR/manifests.",
    ),
    click.option(
        "--state-dir",
        metavar="DIR",
        help=f"Where bootstrap records what it did [env {STATE_DIR_ENV}; default {STATE_DIR}].",
    ),
)

# The cluster's network, images and certificates: the single-host commands' and `init`'s.
_CLUSTER_SPEC = (
    click.option("--pod-cidr", default=DEFAULT_POD_CIDR, show_default=True),
    click.option("--svc-cidr", default=DEFAULT_SVC_CIDR, show_default=True),
    click.option(
        "--repo",
        default=DEFAULT_REPO,
        show_default=True,
        help="Image repository for the control plane images.",
    ),
    click.option(
        "--cert-sans",
        multiple=True,
        metavar="NAME",
        help="Another name or address for the apiserver certificate (repeatable).",
    ),
    click.option(
        "--years",
        default=99,
        show_default=True,
        type=int,
        help="Lifetime of every certificate, and of kubelets' client certificates.",
    ),
)
cluster_spec_options = _stack(*_CLUSTER_SPEC)

# What the kubeadm configuration is made of.
kubeadm_options = _stack(
    click.option(
        "--master",
        "masters",
        multiple=True,
        metavar="IP",
        help="A master's address, repeated for each; the first is master0.",
    ),
    click.option(
        "--vip",
        default=DEFAULT_VIP,
        show_default=True,
        help="The virtual IP nodes use to reach the masters.",
    ),
    click.option(
        "--version",
        "version_text",
        metavar="VERSION",
        help="Kubernetes version, e.g. v1.30.4 [default: what `kubeadm version` says].",
    ),
    click.option(
        "--kubeadm-config",
        "template_path",
        metavar="TEMPLATE",
        help="Your kubeadm configuration template (Go template, as for sealos) "
        "instead of the default (`bootstrap config -t kubeadm` prints it).",
    ),
    *_CLUSTER_SPEC,
    click.option(
        "--node-name",
        metavar="NAME",
        help="This host's node name [default: its hostname, lower case].",
    ),
    click.option(
        "--cgroup-driver",
        type=click.Choice(["auto", "systemd", "cgroupfs"]),
        default="auto",
        show_default=True,
        help="The kubelet's cgroup driver; auto: the container runtime's, as the package's "
        "shell/init.sh recorded it in /etc/lvscare-py/runtime.env, else systemd.",
    ),
)

# The node daemon's flags that bootstrap sets in the lvscare static pod.
lvscare_daemon_options = _stack(
    click.option(
        "--lvscare-mode",
        type=click.Choice(["route", "link"]),
        default="route",
        show_default=True,
        help="How nodes hold the VIP: route (IPVS table only) or link (a dummy interface "
        "holds it, as kube-proxy's kube-ipvs0); see `lvscare care --help`.",
    ),
    click.option(
        "--interval",
        default="5",
        show_default=True,
        metavar="SECONDS",
        help="How often lvscare probes every master.",
    ),
)

# How a joining host gets the join's secrets: a file (or stdin), or flags for use by hand.
join_options = _stack(
    click.option(
        "--join-config",
        metavar="FILE",
        help="A kubeadm JoinConfiguration (0600) with discovery.bootstrapToken.token and "
        "caCertHashes (and controlPlane.certificateKey); - reads it from stdin. Keeps the "
        "secrets off command lines; `bootstrap init` and `join` use it.",
    ),
    click.option(
        "--token",
        help="Bootstrap token from master0's output. Shows in `ps` on this host while the "
        "command runs: --join-config does not.",
    ),
    click.option("--discovery-token-ca-cert-hash", "ca_hash", metavar="sha256:HEX"),
)

# The hosts a cluster command works on.
host_list_options = _stack(
    click.option(
        "--master",
        "masters",
        multiple=True,
        metavar="IP[:PORT]",
        help="A master (repeatable); for init the first is master0.",
    ),
    click.option(
        "--node", "nodes", multiple=True, metavar="IP[:PORT]", help="A node (repeatable)."
    ),
)

# How to reach the hosts. The password is never stored, logged or put on a command line.
ssh_options = _stack(
    click.option("--user", "-u", default=None, help="SSH user [default: root, or the cluster's]."),
    click.option(
        "--passwd",
        "-p",
        default=None,
        help=f"SSH (and sudo) password [env {PASSWORD_ENV}; else asked on a terminal]. "
        "On the command line it shows in `ps` on this machine: prefer the prompt or the "
        "variable.",
    ),
    click.option(
        "--pk", default=None, metavar="FILE", help="Private key file, e.g. ~/.ssh/id_rsa."
    ),
    click.option("--pk-passwd", default=None, help=f"The key's passphrase [env {PASSPHRASE_ENV}]."),
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
)


def renewal_wait_options(each_master: bool) -> Decorator:
    """--restart-wait and --serve-timeout of a certificate renewal: on this host
    (`certs --renew`), or on each master in turn (`certs renew` over SSH)."""
    how_long, then_wait = (
        ("How long", "Then wait")
        if each_master
        else ("With --renew: how long", "With --renew: then wait")
    )
    then = " on each master before the next one starts" if each_master else ""
    return _stack(
        click.option(
            "--restart-wait",
            default=RESTART_WAIT,
            show_default=True,
            type=float,
            metavar="SECONDS",
            help=f"{how_long} the control plane manifests stay out of the kubelet's "
            "directory (it looks every 20 s), so the kubelet stops the pods before they go back.",
        ),
        click.option(
            "--serve-timeout",
            default=SERVE_TIMEOUT,
            show_default=True,
            type=float,
            metavar="SECONDS",
            help=f"{then_wait} this long for kube-apiserver to serve the renewed "
            f"certificate (HTTPS /readyz, checked against ca.crt){then}; 0: do not wait.",
        ),
    )


# Which cluster file: several clusters side by side on one workstation.
cluster_name_option = click.option(
    "--cluster",
    "cluster_name",
    default=None,
    metavar="NAME",
    help="Keep this cluster's file under ~/.lvscare-py/clusters/NAME/ [default: "
    "~/.lvscare-py/cluster.json], so one workstation can manage several clusters.",
)

# The offline package `init` and `join` put on every host.
package_options = _stack(
    click.option(
        "--pkg-url",
        default=None,
        metavar="FILE|URL",
        help="Offline package: a local file (sent over SFTP) or an http(s) URL (each host "
        "downloads it).",
    ),
    click.option(
        "--pkg-sha256",
        default=None,
        metavar="HEX",
        help="The package's sha256 (checked on every host; for a URL, else the first "
        "host's download is the reference).",
    ),
    click.option(
        "--relay/--no-relay",
        default=True,
        show_default=True,
        help="Hosts pass a local package on to each other over SSH (a key per link made "
        "for the run and removed after), so it leaves this machine about once; a host "
        "they miss gets it from here. Not used for one host alone or a URL.",
    ),
)

# The check `init` and `join` make of every host before they change anything.
clock_option = click.option(
    "--max-clock-skew",
    "max_clock_skew",
    default=MAX_CLOCK_SKEW,
    show_default=True,
    type=float,
    metavar="SECONDS",
    help="Refuse to start when a host's clock differs from this machine's by more "
    "(certificates and etcd break on skewed clocks); 0: no check.",
)

# ... and every other check, with the way past them all.
preflight_options = _stack(
    clock_option,
    click.option(
        "--skip-preflight",
        is_flag=True,
        help="Change the hosts without checking them first (swap, free ports, IPVS modules, "
        "a container runtime, unique hostnames, and the clock: --max-clock-skew goes with "
        "it); only connect.",
    ),
)
