"""The kubeconfig files kubeadm writes in /etc/kubernetes, with long-lived client certificates.

kubeadm keeps an existing kubeconfig whose CA is the cluster's; ours embed a client
certificate signed by that CA for --years, so none of them expires after a year.
"""

from __future__ import annotations

import base64
import datetime as dt
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from bootstrap.defaults import APISERVER_PORT
from bootstrap.host import pki
from bootstrap.inputs import KubeVersion
from lvscare.address import format_hostport

CLUSTER_NAME = "kubernetes"
# kubeadm 1.29 moved admin.conf out of system:masters and added super-admin.conf.
ADMIN_GROUP_FROM_MINOR = 29


@dataclass(frozen=True)
class KubeconfigSpec:
    filename: str
    cn: str
    orgs: tuple[str, ...]
    server: str


def kubeconfig_specs(
    version: KubeVersion, node_name: str, advertise: str, endpoint: str, *, init: bool
) -> tuple[KubeconfigSpec, ...]:
    """Which files a master gets: on `init` also kubelet.conf (a joining master's kubelet
    bootstraps its own, and kubeadm join refuses to start when one exists) and, from 1.29,
    super-admin.conf."""
    shared = f"https://{endpoint}"
    local = f"https://{format_hostport(advertise, APISERVER_PORT)}"
    new_admin = version.at_least(ADMIN_GROUP_FROM_MINOR)
    admin_org = "kubeadm:cluster-admins" if new_admin else "system:masters"
    specs = [
        KubeconfigSpec("admin.conf", "kubernetes-admin", (admin_org,), shared),
        KubeconfigSpec("controller-manager.conf", "system:kube-controller-manager", (), local),
        KubeconfigSpec("scheduler.conf", "system:kube-scheduler", (), local),
    ]
    if init:
        specs.append(
            KubeconfigSpec("kubelet.conf", f"system:node:{node_name}", ("system:nodes",), shared)
        )
        if new_admin:
            specs.append(
                KubeconfigSpec(
                    "super-admin.conf", "kubernetes-super-admin", ("system:masters",), shared
                )
            )
    return tuple(specs)


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def render(spec: KubeconfigSpec, ca_pem: bytes, client_pem: bytes, key_pem: bytes) -> bytes:
    """The file as kubeadm lays it out: one cluster, one user named by the CN, one context."""
    context = f"{spec.cn}@{CLUSTER_NAME}"
    doc: dict[str, Any] = {
        "apiVersion": "v1",
        "clusters": [
            {
                "cluster": {"certificate-authority-data": _b64(ca_pem), "server": spec.server},
                "name": CLUSTER_NAME,
            }
        ],
        "contexts": [{"context": {"cluster": CLUSTER_NAME, "user": spec.cn}, "name": context}],
        "current-context": context,
        "kind": "Config",
        "preferences": {},
        "users": [
            {
                "name": spec.cn,
                "user": {
                    "client-certificate-data": _b64(client_pem),
                    "client-key-data": _b64(key_pem),
                },
            }
        ],
    }
    return yaml.safe_dump(doc, sort_keys=False).encode()


def client_cert_spec(spec: KubeconfigSpec) -> pki.CertSpec:
    return pki.CertSpec(spec.filename, "ca", spec.cn, orgs=spec.orgs, client=True)


@dataclass(frozen=True)
class Embedded:
    ca: bytes
    cert: bytes
    key: bytes
    server: str


def embedded(data: bytes) -> Embedded | None:
    """The credentials inside a kubeconfig we (or kubeadm) wrote; None if not of that shape."""
    try:
        doc = yaml.safe_load(data)
        cluster = doc["clusters"][0]["cluster"]
        user = doc["users"][0]["user"]
        return Embedded(
            base64.b64decode(cluster["certificate-authority-data"]),
            base64.b64decode(user["client-certificate-data"]),
            base64.b64decode(user["client-key-data"]),
            str(cluster["server"]),
        )
    except (yaml.YAMLError, KeyError, IndexError, TypeError, ValueError):
        return None


def problem(
    data: bytes, spec: KubeconfigSpec, ca: pki.CertAndKey, years: int, now: dt.datetime
) -> str | None:
    """Why an existing kubeconfig must be rewritten, or None to keep it."""
    found = embedded(data)
    if found is None:
        return "no embedded client certificate"
    if found.ca.strip() != pki.cert_pem(ca.cert).strip():
        return "another CA"
    if found.server != spec.server:
        return f"server {found.server} instead of {spec.server}"
    try:
        pair = pki.load_pair(found.cert, found.key)
    except ValueError as e:
        return str(e)
    return pki.leaf_problem(pair, client_cert_spec(spec), ca.cert, years, now)


def plan(planner: pki.Pki, specs: tuple[KubeconfigSpec, ...], kubernetes_dir: Path) -> None:
    """Add the kubeconfig files that are missing or must be rewritten to the plan."""
    ca = planner.cas["ca"]
    for spec in specs:
        path = kubernetes_dir / spec.filename
        try:
            data: bytes | None = path.read_bytes()
        except FileNotFoundError:
            data = None
        why = f"new kubeconfig for {spec.cn}"
        if data is not None:
            reason = problem(data, spec, ca, planner.years, planner.now)
            if reason is None:
                continue
            why = f"rewritten kubeconfig for {spec.cn}: {reason}"
        key = pki.new_key()
        cert = pki.make_leaf(client_cert_spec(spec), key, ca, planner.years, planner.now)
        text = render(spec, pki.cert_pem(ca.cert), pki.cert_pem(cert), pki.key_pem(key))
        planner.writes.append(
            pki.FileWrite(path, text, 0o600, why, secret=True, backup=data is not None)
        )
