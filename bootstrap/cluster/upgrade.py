"""`bootstrap upgrade`, decided without hosts: which version steps kubeadm supports, the work
host by host, what is left after a failed run, and what the hosts' answers mean.

kubeadm upgrades one minor version at a time (v1.30 -> v1.31, never v1.30 -> v1.32) and
never down. Its order: master0 (`kubeadm upgrade apply`), the other masters one at a time
(`kubeadm upgrade node`), then the nodes one at a time (drained, `kubeadm upgrade node`,
kubelet restarted, Ready again, uncordoned). kubeadm renews certificates for one year during
an upgrade unless told `--certificate-renewal=false`, which would undo the 99-year PKI, so
every kubeadm call here says so, and every host's certificates are compared before and after.
"""

from __future__ import annotations

import datetime as dt
import shlex
from dataclasses import dataclass

from bootstrap.cluster.cluster_file import Cluster, UpgradeRecord
from bootstrap.cluster.ssh import Target
from bootstrap.defaults import KUBERNETES_DIR, STATE_DIR
from bootstrap.errors import BadInput
from bootstrap.host.kubeadm_config import V1BETA4_FROM_MINOR, kubeadm_api
from bootstrap.inputs import KubeVersion

ADMIN_CONF = f"{KUBERNETES_DIR}/admin.conf"
# The kubeadm configuration `bootstrap master0` rendered and kept on master0 (steps.CONFIG_NAME).
KEPT_CONFIG = f"{STATE_DIR}/kubeadm.yaml"
NO_RENEWAL = "--certificate-renewal=false"
KUBELET_RESTART = ("systemctl daemon-reload", "systemctl restart kubelet")
READY_PATH = '{.status.conditions[?(@.type=="Ready")].status}'

MASTER0, MASTER, NODE = "master0", "master", "node"


# ------------------------------------------------------------------ versions


def check_step(current: KubeVersion, target: KubeVersion) -> None:
    """BadInput unless kubeadm can go from `current` (the cluster file's version) to
    `target` in one step: up, and at most one minor version."""
    now, want = (current.minor, current.patch), (target.minor, target.patch)
    where = f"the cluster runs {current} (the cluster file's version)"
    if str(current) == str(target):
        raise BadInput(f"--version {target}: {where} already")
    if want < now:
        raise BadInput(f"--version {target}: a downgrade; {where}, and kubeadm only upgrades")
    if target.minor > current.minor + 1:
        raise BadInput(
            f"--version {target}: skips a minor version; {where}, and kubeadm upgrades one "
            f"minor at a time: upgrade to a v1.{current.minor + 1}.x first"
        )


def check_resume(record: UpgradeRecord | None, target: KubeVersion, sha256: str | None) -> None:
    """An upgrade under way is finished with its own version and package (some hosts run
    them already), or not at all."""
    if record is None:
        return
    if record.to_version != str(target):
        raise BadInput(
            f"--version {target}: an upgrade to {record.to_version} is under way "
            f"({len(record.done)} hosts done); run it again with --version {record.to_version}"
        )
    if record.pkg_sha256 and sha256 and record.pkg_sha256 != sha256:
        raise BadInput(
            f"--pkg-url: sha256 {sha256} is not the package the upgrade under way started with "
            f"({record.pkg_sha256}, {record.pkg_url}); give that one"
        )


def check_package_version(found: str, target: KubeVersion, where: str) -> None:
    if found.strip() != str(target):
        raise BadInput(
            f"--pkg-url: {where} says {found.strip() or 'nothing'}, not --version {target}"
        )


def config_moves(current: KubeVersion, target: KubeVersion) -> bool:
    """Crossing v1.31: kubeadm's configuration API goes from v1beta3 to v1beta4."""
    return kubeadm_api(current) != kubeadm_api(target)


def template_note(template: str, target: KubeVersion) -> str | None:
    """The user's --kubeadm-config template, kept for `join`, when it is older than `target`
    reads (kubeadm v1.31+ still reads v1beta3, with a deprecation warning)."""
    if target.at_least(V1BETA4_FROM_MINOR) and "kubeadm.k8s.io/v1beta3" in template:
        return (
            "the --kubeadm-config template this cluster keeps is kubeadm.k8s.io/v1beta3: "
            f"kubeadm {target} reads it with a deprecation warning; convert it to v1beta4 "
            "(`kubeadm config migrate`) before v1beta3 goes"
        )
    return None


# ------------------------------------------------------------------ the plan


@dataclass(frozen=True)
class HostPlan:
    target: Target
    kind: str  # MASTER0, MASTER or NODE
    node_name: str
    done: bool  # upgraded by an earlier run: nothing happens on it
    actions: tuple[str, ...]


def order(cluster: Cluster) -> list[tuple[Target, str]]:
    """kubeadm's order: master0, the other masters, the nodes."""
    kinds = [MASTER0] + [MASTER] * (len(cluster.masters) - 1)
    return [*zip(cluster.masters, kinds, strict=True), *((n, NODE) for n in cluster.nodes)]


def node_name(cluster: Cluster, target: Target) -> str:
    rec = cluster.hosts.get(target)
    return rec.node_name if rec is not None and rec.node_name else target.ip


def left(cluster: Cluster, record: UpgradeRecord | None) -> list[Target]:
    done = set(record.done) if record is not None else set()
    return [t for t, _kind in order(cluster) if str(t) not in done]


def kubectl(*args: str) -> list[str]:
    return ["kubectl", "--kubeconfig", ADMIN_CONF, *args]


def drain_argv(name: str, timeout: int) -> list[str]:
    return kubectl(
        "drain", name, "--ignore-daemonsets", "--delete-emptydir-data", f"--timeout={timeout}s"
    )


def uncordon_argv(name: str) -> list[str]:
    return kubectl("uncordon", name)


def ready_argv(name: str) -> list[str]:
    return kubectl("get", "node", name, "-o", f"jsonpath={READY_PATH}")


def plan_argv(target: KubeVersion) -> list[str]:
    return ["kubeadm", "upgrade", "plan", str(target)]


def apply_argv(target: KubeVersion) -> list[str]:
    return ["kubeadm", "upgrade", "apply", str(target), "--yes", NO_RENEWAL]


def node_argv() -> list[str]:
    return ["kubeadm", "upgrade", "node", NO_RENEWAL]


def snapshot_path(current: KubeVersion, stamp: str) -> str:
    return f"{STATE_DIR}/etcd-snapshot-{current}-{stamp}.db"


def actions(
    kind: str,
    name: str,
    current: KubeVersion,
    target: KubeVersion,
    drain_timeout: int,
    ready_timeout: float,
    snapshot: str | None,
) -> tuple[str, ...]:
    """What happens on (and for) one host, in order, as the dry run prints it."""
    on_master0 = "" if kind == MASTER0 else " (on master0)"
    kubelet = (
        shlex.join(drain_argv(name, drain_timeout)) + on_master0,
        " && ".join(KUBELET_RESTART),
        f"wait until node {name} is Ready (at most {ready_timeout:g} s){on_master0}",
        shlex.join(uncordon_argv(name)) + on_master0,
    )
    steps = ["the new package sent, unpacked, its shell/init.sh run"]
    steps.append("read every certificate's expiry (/etc/kubernetes/pki, kubeconfigs)")
    if kind == MASTER0:
        steps.append(
            f"etcd snapshot: kept at {snapshot}"
            if snapshot
            else "etcd snapshot (the package's etcdctl, else the etcd container's)"
        )
        steps += [shlex.join(plan_argv(target)), shlex.join(apply_argv(target))]
        if config_moves(current, target):
            steps.append(f"{KEPT_CONFIG}: kubeadm config migrate, v1beta3 -> v1beta4")
        steps += kubelet
    elif kind == MASTER:
        steps += [shlex.join(node_argv()), *kubelet]
    else:
        steps += [kubelet[0], shlex.join(node_argv()), *kubelet[1:]]
    steps.append("no certificate shorter than before")
    return tuple(steps)


def plan(
    cluster: Cluster,
    target: KubeVersion,
    current: KubeVersion,
    drain_timeout: int,
    ready_timeout: float,
) -> list[HostPlan]:
    record = cluster.upgrade
    done = set(record.done) if record is not None else set()
    snapshot = record.snapshot if record is not None else None
    result = []
    for t, kind in order(cluster):
        name = node_name(cluster, t)
        is_done = str(t) in done
        steps = (
            ()
            if is_done
            else actions(kind, name, current, target, drain_timeout, ready_timeout, snapshot)
        )
        result.append(HostPlan(t, kind, name, is_done, steps))
    return result


def describe(plans: list[HostPlan], current: KubeVersion, target: KubeVersion) -> list[str]:
    lines = [f"upgrade {current} -> {target} ({current}: the cluster file's version)"]
    if config_moves(current, target):
        lines.append(
            f"kubeadm configuration: {kubeadm_api(current)} -> {kubeadm_api(target)} "
            "(kubeadm v1.31 introduced v1beta4)"
        )
    for i, p in enumerate(plans, 1):
        lines.append(f"{i}. {p.target} ({p.kind}, node {p.node_name})")
        if p.done:
            lines.append("   - upgraded by an earlier run: nothing done on it")
        lines += [f"   - {a}" for a in p.actions]
    return lines


# ------------------------------------------------------------------ certificates

# Every certificate kubeadm could renew, with its notAfter; for a kubeconfig, its embedded
# client certificate. openssl is on every host kubeadm runs on (no Python there).
CERTS_SCRIPT = f"""\
if ! command -v openssl >/dev/null; then
    echo "openssl is not on the host: cannot read the certificates' expiry" >&2
    exit 1
fi
for f in {KUBERNETES_DIR}/pki/*.crt {KUBERNETES_DIR}/pki/etcd/*.crt; do
    [ -f "$f" ] || continue
    printf '%s\\t%s\\n' "$f" "$(openssl x509 -enddate -noout -in "$f")"
done
for f in {KUBERNETES_DIR}/*.conf; do
    [ -f "$f" ] || continue
    d=$(sed -n 's/^ *client-certificate-data: *//p' "$f" | head -n 1)
    [ -n "$d" ] || continue
    printf '%s\\t%s\\n' "$f" "$(printf %s "$d" | base64 -d | openssl x509 -enddate -noout)"
done
"""


def parse_expiries(text: str) -> dict[str, dt.datetime]:
    """CERTS_SCRIPT's lines: path -> notAfter (UTC)."""
    found: dict[str, dt.datetime] = {}
    for line in text.splitlines():
        path, sep, value = line.partition("\t")
        if not sep or not value.startswith("notAfter="):
            continue
        when = dt.datetime.strptime(value[len("notAfter=") :].strip(), "%b %d %H:%M:%S %Y %Z")
        found[path] = when.replace(tzinfo=dt.UTC)
    return found


# A certificate with less left than this, in a cluster whose certificates last longer, is
# one a kubeadm renewed for its one year (a run stopped before `shortened` saw it, say).
SHORT_LEFT = dt.timedelta(days=2 * 365)


def too_short(found: dict[str, dt.datetime], now: dt.datetime, years: int) -> list[str]:
    """Certificates that have less than two years left though the cluster's last `years`
    (more than two): the comparison before/after cannot see those a failed run left."""
    if years <= 2:
        return []
    return [
        f"{path} ends {found[path]:%Y-%m-%d}"
        for path in sorted(found)
        if found[path] < now + SHORT_LEFT
    ]


def renew_hint(years: int) -> str:
    return (
        f"renew them for the cluster's {years} years on that host (`bootstrap certs --renew "
        f"--years {years}`), then run the upgrade again"
    )


def shortened(before: dict[str, dt.datetime], after: dict[str, dt.datetime]) -> list[str]:
    """The certificates that now expire earlier than before (kubeadm renewed them)."""
    return [
        f"{path} {before[path]:%Y-%m-%d} -> {after[path]:%Y-%m-%d}"
        for path in sorted(before)
        if path in after and after[path] < before[path]
    ]


# ------------------------------------------------------------------ remote scripts


def snapshot_script(path: str) -> str:
    """The etcd snapshot on master0: with the package's etcdctl when init.sh put one on PATH,
    else etcdctl inside the etcd static pod's container (`crictl exec`), writing into
    /var/lib/etcd (its hostPath) and moved beside bootstrap's state."""
    pki = f"{KUBERNETES_DIR}/pki/etcd"
    flags = (
        f"--endpoints=https://127.0.0.1:2379 --cacert={pki}/ca.crt "
        f"--cert={pki}/healthcheck-client.crt --key={pki}/healthcheck-client.key"
    )
    q = shlex.quote(path)
    return (
        f"set -e; mkdir -p {shlex.quote(str(STATE_DIR))}; "
        f"if command -v etcdctl >/dev/null; then ETCDCTL_API=3 etcdctl {flags} snapshot save {q}; "
        "else id=$(crictl ps --name etcd -q 2>/dev/null | head -n 1); "
        'if [ -z "$id" ]; then echo "no etcdctl in the package and no etcd container for '
        'crictl exec" >&2; exit 1; fi; '
        f'crictl exec "$id" etcdctl {flags} snapshot save /var/lib/etcd/lvscare-py-snapshot.db; '
        f"mv /var/lib/etcd/lvscare-py-snapshot.db {q}; fi; "
        f'test -s {q} || {{ echo "{path}: empty or missing after the snapshot" >&2; exit 1; }}; '
        f"chmod 600 {q}"
    )


def migrate_script(target: KubeVersion) -> str:
    """The kept kubeadm configuration moved to v1beta4 by the new kubeadm itself (the v1beta3
    one kept beside it), its kubernetesVersion set to the new one. `kubeadm config migrate`
    writes only kubeadm's own documents: the others (KubeProxyConfiguration,
    KubeletConfiguration) are carried over from the old file. Prints what it did."""
    p = shlex.quote(KEPT_CONFIG)
    old, new = shlex.quote(KEPT_CONFIG + ".v1beta3"), shlex.quote(KEPT_CONFIG + ".new")
    others = (
        'awk \'BEGIN { RS = "(^|\\n)---[ \\t]*\\n" } '
        'NF && !/apiVersion: *kubeadm[.]k8s[.]io\\// { printf "---\\n%s\\n", $0 }\''
    )
    return (
        f"set -e; if [ ! -f {p} ]; then echo missing; exit 0; fi; "
        f"if grep -q 'kubeadm.k8s.io/v1beta3' {p}; then "
        f"cp -p {p} {old}; kubeadm config migrate --old-config {old} --new-config {new}; "
        f"echo >> {new}; {others} {old} >> {new}; "
        f"sed -i 's/^kubernetesVersion: .*/kubernetesVersion: {target}/' {new}; "
        f"chmod 600 {new}; mv {new} {p}; echo moved; else echo kept; fi"
    )
