"""The single-host `bootstrap` commands, as run on a remote host over SSH.

The offline package carries lvscare-py's `bootstrap` in bin/ (beside kubeadm and kubectl);
its shell/init.sh puts it on PATH. The orchestrator then runs the same single-host commands
a user would run by hand on each host, so one code path renders configurations, PKI,
/etc/hosts and the lvscare manifest, and records what it did for `bootstrap clean` there.
The join's secrets go in a file (`join_file`), never on those command lines.
"""

from __future__ import annotations

import contextlib
import hashlib
import shlex
from collections.abc import Callable, Iterator

from bootstrap.cluster.cluster_file import DEFAULT_YEARS, Cluster
from bootstrap.cluster.package import REMOTE_DIR
from bootstrap.cluster.preflight import KUBELET_CONF
from bootstrap.cluster.ssh import TRANSPORT_ERRORS, Connection
from bootstrap.defaults import KUBERNETES_DIR
from bootstrap.errors import StepFailed
from bootstrap.host import seed
from bootstrap.host.kubeadm_config import DEFAULT_POD_CIDR, DEFAULT_REPO, DEFAULT_SVC_CIDR
from bootstrap.host.lvscare_rules import Daemon
from bootstrap.host.pki import SHARED_FILES
from bootstrap.join import Join, find_join

BOOTSTRAP = "bootstrap"
ADMIN_CONF = f"{KUBERNETES_DIR}/admin.conf"
COPIED_LIST = "/var/lib/lvscare-py-copied-cas.sha256"
# The join's secrets while a single-host command reads them; under REMOTE_DIR, which
# `clean` removes, should a lost connection leave it behind.
JOIN_FILE = f"{REMOTE_DIR}/join.yaml"

Line = Callable[[str], None]


def parse_join(output: str, what: str) -> Join:
    join, _missing = find_join(output)
    if join is None:
        raise StepFailed(f"{what}: no --token and --discovery-token-ca-cert-hash in its output")
    return join


def require_bootstrap(conn: Connection) -> None:
    result = conn.run(f"command -v {BOOTSTRAP}")
    if result.code != 0:
        raise StepFailed(
            "`bootstrap` is not on PATH after shell/init.sh: the package's bin/ must carry "
            "lvscare-py's bootstrap command"
        )


def run_bootstrap(conn: Connection, args: list[str], on_line: Line | None = None) -> str:
    argv = [BOOTSTRAP, *args]
    return conn.check(shlex.join(argv), f"bootstrap {args[0]}", on_line=on_line)


def cluster_args(masters: list[str], vip: str, version: str, template: str | None) -> list[str]:
    args: list[str] = []
    for ip in masters:
        args += ["--master", ip]
    args += ["--vip", vip, "--version", version]
    if template:
        args += ["--kubeadm-config", template]
    return args


def spec_args(cluster: Cluster) -> list[str]:
    """The cluster's kubeadm settings for `bootstrap master0` / `master --join`, those that
    differ from the single-host commands' defaults (which are init's too)."""
    args: list[str] = []
    if cluster.pod_cidr != DEFAULT_POD_CIDR:
        args += ["--pod-cidr", cluster.pod_cidr]
    if cluster.svc_cidr != DEFAULT_SVC_CIDR:
        args += ["--svc-cidr", cluster.svc_cidr]
    if cluster.repo != DEFAULT_REPO:
        args += ["--repo", cluster.repo]
    for san in cluster.cert_sans:
        args += ["--cert-sans", san]
    if cluster.years != DEFAULT_YEARS:
        args += ["--years", str(cluster.years)]
    return args


def daemon_args(cluster: Cluster) -> list[str]:
    """The node daemon's settings for `bootstrap node`, where not the defaults."""
    args: list[str] = []
    if cluster.lvscare_image:
        args += ["--lvscare-image", cluster.lvscare_image]
    if cluster.lvscare_mode != Daemon.mode:
        args += ["--lvscare-mode", cluster.lvscare_mode]
    if cluster.interval != Daemon.interval:
        args += ["--interval", cluster.interval]
    return args


def node_args(masters: list[str], vip: str, version: str) -> list[str]:
    """`bootstrap node` without the join, which `join_file` adds."""
    args = ["node"]
    for ip in masters:
        args += ["--master", ip]
    return [*args, "--vip", vip, "--version", version]


@contextlib.contextmanager
def join_file(conn: Connection, join: Join, api: str) -> Iterator[list[str]]:
    """The flags that hand the join to a single-host command: the token (and certificate
    key) in a JoinConfiguration uploaded 0600, removed after. On the command line they
    would show in `ps` and /proc/PID/cmdline to every user of the host while it runs."""
    conn.write_file(JOIN_FILE, join.document(api).encode(), 0o600)
    try:
        yield ["--join-config", JOIN_FILE]
    finally:
        with contextlib.suppress(StepFailed, *TRANSPORT_ERRORS):  # the connection may be gone
            conn.run(f"rm -f -- {shlex.quote(JOIN_FILE)}")


def fresh_join(conn: Connection) -> Join:
    """A new bootstrap token from a master (the one kubeadm init printed lasts 24 hours)."""
    out = conn.check(
        "kubeadm token create --print-join-command", "kubeadm token create --print-join-command"
    )
    return parse_join(out, "kubeadm token create")


def copy_cas(source: Connection, dest: Connection) -> None:
    """master0's CAs and service-account keys, for `bootstrap master --join` to build on.

    A list of what was copied (with sha256) stays on the host so `clean` removes exactly those.
    """
    lines = []
    for name in SHARED_FILES:
        path = f"{KUBERNETES_DIR}/pki/{name}"
        data = source.read_file(path)
        mode = 0o600 if name.endswith(".key") else 0o644
        dest.write_file(path, data, mode)
        lines.append(f"{hashlib.sha256(data).hexdigest()}  {path}\n")
    dest.write_file(COPIED_LIST, "".join(lines).encode(), 0o600)


def remove_copied_cas(conn: Connection) -> str | None:
    """Remove the CA files `copy_cas` put here, those still unchanged; a problem, or None."""
    q = shlex.quote(COPIED_LIST)
    result = conn.run(
        f"if [ -f {q} ]; then while read -r sum path; do "
        '[ -f "$path" ] && [ "$(sha256sum < "$path" | cut -d" " -f1)" = "$sum" ] '
        f'&& rm -f -- "$path"; done < {q}; rm -f -- {q}; fi; true'
    )
    return None if result.code == 0 else f"removing copied CAs: {result.last_line()}"


def delete_node(conn: Connection, node_name: str) -> None:
    conn.run_argv(
        ["kubectl", "--kubeconfig", ADMIN_CONF, "delete", "node", node_name, "--ignore-not-found"],
        f"kubectl delete node {node_name}",
    )


def has_bootstrap(conn: Connection) -> bool:
    """Whether lvscare-py's `bootstrap` is on the host (a package of ours was set up there)."""
    return conn.run(f"command -v {BOOTSTRAP}").code == 0


def clean_host(conn: Connection) -> list[str]:
    """The single-host clean (kubeadm reset, hosts line, manifest, bootstrap's files)."""
    if not has_bootstrap(conn):
        return []
    result = conn.run(shlex.join([BOOTSTRAP, "clean"]))
    return [] if result.code == 0 else [f"bootstrap clean: {result.last_line()}"]


def kubeadm_version(conn: Connection) -> str:
    """The Kubernetes version of a cluster made elsewhere, as its master's kubeadm says."""
    out = conn.check("kubeadm version -o short", "kubeadm version -o short")
    lines = [line.strip() for line in out.splitlines() if line.strip()]
    return lines[-1] if lines else ""


SEED_MANIFEST = f"{KUBERNETES_DIR}/manifests/{seed.SEED_MANIFEST}"


def seed_made(conn: Connection) -> bool:
    """A node the seed system (sealos v3) joined: its lvscare pod and kubeadm's kubelet.conf
    are there, so its kubelet holds its ports (of the cluster it is in)."""
    script = f"test -f {shlex.quote(SEED_MANIFEST)} && test -f {shlex.quote(KUBELET_CONF)}"
    return conn.run(script).code == 0
