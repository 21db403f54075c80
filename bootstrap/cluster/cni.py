"""The package's CNI manifest, applied on master0 once `kubeadm init` is done.

The pod network lives in two places, kubeadm's `podSubnet` and the CNI's own setting, and
a cluster whose two disagree gives pods addresses its routes do not know. For the common
CNIs the manifest gets the cluster's --pod-cidr here, at install time: Calico's
`CALICO_IPV4POOL_CIDR` (manifest install) or the Installation's ipPools (operator install),
Flannel's `net-conf.json` Network. Any other manifest is applied as it is.
"""

from __future__ import annotations

import json
import shlex
from typing import Any

import yaml

from bootstrap.cluster.package import REMOTE_DIR
from bootstrap.cluster.ssh import Connection
from bootstrap.errors import StepFailed

ADMIN_CONF = "/etc/kubernetes/admin.conf"
REMOTE_CNI = f"{REMOTE_DIR}/cni.yaml"
CALICO_POOL = "CALICO_IPV4POOL_CIDR"


def _calico_node(doc: dict[str, Any], pod_cidr: str) -> bool:
    if doc.get("kind") != "DaemonSet" or (doc.get("metadata") or {}).get("name") != "calico-node":
        return False
    changed = False
    for container in doc.get("spec", {}).get("template", {}).get("spec", {}).get("containers", []):
        if container.get("name") != "calico-node":
            continue
        env = container.setdefault("env", [])
        for var in env:
            if var.get("name") == CALICO_POOL:
                var.clear()
                var.update(name=CALICO_POOL, value=pod_cidr)
                break
        else:
            env.append({"name": CALICO_POOL, "value": pod_cidr})
        changed = True
    return changed


def _calico_installation(doc: dict[str, Any], pod_cidr: str) -> bool:
    if doc.get("kind") != "Installation" or "tigera" not in str(doc.get("apiVersion", "")):
        return False
    network = doc.setdefault("spec", {}).setdefault("calicoNetwork", {})
    pools = network.setdefault("ipPools", [])
    v4 = [p for p in pools if ":" not in str(p.get("cidr", ""))]
    if v4:
        v4[0]["cidr"] = pod_cidr
    else:
        pools.append({"cidr": pod_cidr})
    return True


def _flannel(doc: dict[str, Any], pod_cidr: str) -> bool:
    data = doc.get("data") if doc.get("kind") == "ConfigMap" else None
    if not isinstance(data, dict) or "net-conf.json" not in data:
        return False
    try:
        conf = json.loads(data["net-conf.json"])
    except ValueError:
        raise StepFailed("the CNI manifest's net-conf.json is not JSON") from None
    conf["Network"] = pod_cidr
    data["net-conf.json"] = json.dumps(conf, indent=2) + "\n"
    return True


def set_pod_network(text: str, pod_cidr: str) -> tuple[str, str]:
    """The manifest with its pod network set to `pod_cidr`, and what was changed."""
    try:
        docs = [d for d in yaml.safe_load_all(text) if d is not None]
    except yaml.YAMLError as e:
        raise StepFailed(f"the package's CNI manifest is not YAML ({e})") from None
    done = []
    for doc in docs:
        if not isinstance(doc, dict):
            continue
        if _calico_node(doc, pod_cidr):
            done.append(f"calico-node {CALICO_POOL}={pod_cidr}")
        elif _calico_installation(doc, pod_cidr):
            done.append(f"Installation ipPools cidr {pod_cidr}")
        elif _flannel(doc, pod_cidr):
            done.append(f"flannel net-conf.json Network {pod_cidr}")
    if not done:
        return text, "applied as it is (neither Calico nor Flannel: pod network not set)"
    out = yaml.safe_dump_all(docs, sort_keys=False, default_flow_style=False, width=120)
    return out, "pod network set: " + ", ".join(done)


def find_manifest(conn: Connection, root: str) -> str | None:
    """The CNI manifest in the unpacked package on this host (conf/net/), if any."""
    out = conn.check(
        f"find {shlex.quote(root + '/conf/net')} -maxdepth 1 -type f "
        "\\( -name '*.yaml' -o -name '*.yml' -o -name '*.json' \\) 2>/dev/null | sort | head -n 1",
        "looking for the CNI manifest",
    ).strip()
    return out or None


def apply(conn: Connection, root: str, path: str, pod_cidr: str) -> str:
    """Set the pod network in the package's manifest at `path` and apply it with the
    package's own kubectl against admin.conf; what was done, in one line."""
    text, how = set_pod_network(conn.read_file(path).decode("utf-8"), pod_cidr)
    conn.write_file(REMOTE_CNI, text.encode(), 0o644)
    kubectl = f"{root}/bin/kubectl"
    conn.run_argv(
        [kubectl, "--kubeconfig", ADMIN_CONF, "apply", "-f", REMOTE_CNI],
        f"kubectl apply -f {path.rsplit('/', 1)[-1]}",
    )
    return f"{path.rsplit('/', 1)[-1]}: {how}"
