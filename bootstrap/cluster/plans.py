"""What `join` and cluster-wide `clean` would do, host by host, for `--dry-run`: pure, from
the cluster record and the flags; no host is connected to (so what only a host can tell, a
seed-made node or a missing bootstrap, is said as a condition)."""

from __future__ import annotations

import shlex

from bootstrap.cluster import remote
from bootstrap.cluster.cluster_file import Cluster
from bootstrap.cluster.remote import SEED_MANIFEST
from bootstrap.cluster.ssh import Target
from bootstrap.defaults import STATE_DIR
from bootstrap.host import seed

ADOPTED_DIR = STATE_DIR / seed.ADOPTED_DIR
PREPARE = "preflight; the package ({pkg}) sent and checked, unpacked, its shell/init.sh run"


def _line(addr: Target | str, role: str, what: str) -> str:
    return f"{addr!s:<22} {role:<7} {what}"


def _bootstrap(args: list[str]) -> str:
    return shlex.join(["bootstrap", *args, "--join-config", "<0600 file>"])


def join_plan(
    cluster: Cluster,
    new_masters: list[Target],
    new_nodes: list[Target],
    pkg: str,
    made_elsewhere: bool,
) -> list[str]:
    """`join` host by host: master0 gives the token (and, made elsewhere, the version), new
    masters join one at a time, new nodes in parallel, old nodes learn of new masters."""
    master0 = cluster.masters[0]
    version = cluster.version or "<as master0's kubeadm says>"
    masters = [*cluster.masters, *[m for m in new_masters if m not in cluster.masters]]
    ips = [m.ip for m in masters]
    lines = ["join --dry-run: no host is connected to, nothing changes.", ""]
    first = "kubeadm token create --print-join-command (a fresh join token)"
    if made_elsewhere and not cluster.version:
        first = "kubeadm version -o short (the cluster's version); " + first
    lines.append(_line(master0, "master0", first))
    args = remote.cluster_args(ips, cluster.vip, version, None) + remote.spec_args(cluster)
    for m in new_masters:
        lines.append(_line(m, "master", PREPARE.format(pkg=pkg)))
        lines.append(_line("", "", "the CAs copied from master0, then (one master at a time)"))
        lines.append(_line("", "", _bootstrap(["master", "--join", *args, "--ip", m.ip])))
    node = remote.node_args(ips, cluster.vip, version) + remote.daemon_args(cluster)
    for n in new_nodes:
        lines.append(_line(n, "node", PREPARE.format(pkg=pkg)))
        lines.append(
            _line("", "", f"if the seed's {SEED_MANIFEST} is there: moved to {ADOPTED_DIR}/")
        )
        lines.append(_line("", "", _bootstrap(node)))
    if new_masters:
        for n in (n for n in cluster.nodes if n not in new_nodes):
            lines.append(_line(n, "node", "its lvscare manifest rewritten: " + _bootstrap(node)))
    if made_elsewhere:
        return [*lines, "", "the cluster file: written once a node joined (none: none written)"]
    return [*lines, "", "the cluster file: the hosts joined added"]


def clean_plan(
    cluster: Cluster | None, chosen: list[tuple[Target, str]], everything: bool
) -> list[str]:
    """Cluster-wide `clean` host by host; `cluster` None: made elsewhere, nothing recorded."""
    lines = ["clean --dry-run: no host is connected to, nothing changes.", ""]
    cleaned = {t for t, _ in chosen}
    keeper = None
    if cluster is not None and not everything:
        keeper = next((m for m in cluster.masters if m not in cleaned), None)
    for target, role in chosen:
        if keeper is not None and cluster is not None:
            record = cluster.hosts.get(target)
            name = record.node_name if record is not None and record.node_name else "its node"
            lines.append(_line(keeper, "master", f"kubectl delete node {name}"))
        what = "bootstrap clean (kubeadm reset -f, our manifest, hosts line, IPVS rules)"
        if cluster is None:
            what += ", if lvscare-py's bootstrap is there (else left as it is)"
        lines.append(_line(target, role, what))
        lines.append(_line("", "", "then the package, copied CAs and relay leftovers removed"))
    if keeper is not None and cluster is not None and any(r == "master" for _, r in chosen):
        masters = [m.ip for m in cluster.masters if m not in cleaned]
        for n in (n for n in cluster.nodes if n not in cleaned):
            lines.append(
                _line(n, "node", f"its lvscare manifest rewritten with the masters {masters}")
            )
    if cluster is None:
        lines += ["", "no cluster file: nothing recorded; no `kubectl delete node` is run"]
    elif everything:
        lines += ["", "the cluster file: removed once every host is clean"]
    else:
        lines += ["", "the cluster file: the hosts cleaned taken out"]
    return lines
