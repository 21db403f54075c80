"""A whole cluster over real SSH: init of 3 masters and 3 nodes, join of 2 nodes, clean of a
node, of a master, then of everything. One lab for the module; the tests run in order."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
import yaml

from tests.support.kubeadm import CA_HASH, CERT_KEY, TOKEN, TOKEN2
from tests.support.ssh_client import Client, bootstrap, init_args, lab_and_client
from tests.support.ssh_hosts import Host, Lab

RUNTIME = "/usr/local/bin/containerd"  # a container runtime there before init
PRE = f"printf '#!/bin/sh\\necho containerd\\n' > {RUNTIME} && chmod 755 {RUNTIME}"
PLACES = (  # what init puts on a host, which clean takes away again
    "/opt/lvscare-py",
    "/usr/local/bin/kubeadm",
    "/usr/local/bin/kubectl",
    "/usr/local/bin/bootstrap",
    "/var/lib/lvscare-py",
    "/etc/kubernetes/manifests/kube-lvscare.yaml",
)


class Cluster:
    def __init__(self, lab: Lab, client: Client) -> None:
        self.lab, self.client = lab, client
        self.masters = [lab.host(f"m{i}", setup=PRE) for i in range(3)]
        self.nodes = [lab.host(f"n{i}", setup=PRE) for i in range(1, 4)]
        self.extra = [lab.host(f"n{i}", setup=PRE) for i in range(4, 6)]
        client.trust(*self.masters, *self.nodes, *self.extra)
        self.hosts_before = {h.name: h.read("/etc/hosts") for h in self.all}

    @property
    def all(self) -> list[Host]:
        return [*self.masters, *self.nodes, *self.extra]

    def init_args(self) -> list[str]:
        """`bootstrap init` of the three masters and three nodes."""
        masters, nodes = [m.addr for m in self.masters], [n.addr for n in self.nodes]
        return init_args(self.client, masters, nodes)


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    with lab_and_client(tmp_path_factory.mktemp("cluster")) as (lab, client):
        yield Cluster(lab, client)


def kubeadm_calls(host: Host) -> list[dict[str, Any]]:
    return [c for c in host.calls() if c["argv"][0] == "kubeadm" and c["argv"][1] != "version"]


def manifest_rs(host: Host) -> list[str]:
    pod = yaml.safe_load(host.read("/etc/kubernetes/manifests/kube-lvscare.yaml"))
    args: list[str] = pod["spec"]["containers"][0]["args"]
    return [args[i + 1] for i, a in enumerate(args) if a == "--rs"]


JOIN_CONFIG = "/var/lib/lvscare-py/kubeadm-join.yaml"


def joined_with(
    call: dict[str, Any], endpoint: str, token: str, name: str, advertise: str | None = None
) -> None:
    """kubeadm join got its configuration file alone, 0600, with this join in it (a master's
    without the certificate key: it has master0's CAs copied)."""
    assert call["argv"] == ["kubeadm", "join", "--config", JOIN_CONFIG]
    assert call["config_mode"] == 0o600
    expected: dict[str, Any] = {
        "apiVersion": "kubeadm.k8s.io/v1beta3",
        "kind": "JoinConfiguration",
        "discovery": {
            "bootstrapToken": {
                "apiServerEndpoint": endpoint,
                "token": token,
                "caCertHashes": [CA_HASH],
            }
        },
        "nodeRegistration": {"name": name},
    }
    if advertise is not None:
        expected["controlPlane"] = {
            "localAPIEndpoint": {"advertiseAddress": advertise, "bindPort": 6443}
        }
    assert yaml.safe_load(call["config"]) == expected


def sent_0600(host: Host) -> list[str]:
    """The files sent to the host over SFTP, each checked to be created new and 0600."""
    created = [(p, f, m) for p, f, m in host.sftp_opens() if "CREATE" in f]
    assert [(p, f, m) for p, f, m in created if m != 0o600 or "EXCL" not in f] == []
    return [p for p, _f, _m in created]


def cluster_file(client: Client) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(client.cluster_file.read_text())
    return data


def test_init_installs_three_masters_then_three_nodes_in_order(cluster: Cluster) -> None:
    m0, m1, m2 = cluster.masters
    ips = [m.ip for m in cluster.masters]
    out = bootstrap(*cluster.init_args(), "--vip", "10.103.97.2")
    assert out.exit_code == 0, out.output
    # master0: kubeadm init with the config bootstrap rendered, /etc/hosts at itself.
    (init,) = kubeadm_calls(m0)
    assert init["argv"] == [
        "kubeadm",
        "init",
        "--config",
        "/var/lib/lvscare-py/kubeadm.yaml",
        "--upload-certs",
    ]
    assert 'controlPlaneEndpoint: "apiserver.cluster.local:6443"' in init["config"]
    assert all(ip in init["config"] for ip in ips)  # every master in the certificate SANs
    assert init["hosts"].endswith(f"{ips[0]} apiserver.cluster.local # lvscare-py\n")
    # other masters: one kubeadm join each, through master0, with master0's CAs.
    for m in (m1, m2):
        (join,) = kubeadm_calls(m)
        joined_with(join, "apiserver.cluster.local:6443", TOKEN, m.name, m.ip)
        assert CERT_KEY not in join["config"]
        assert "/etc/kubernetes/pki/ca.key.lvscare-py-part" in sent_0600(m)
        assert join["hosts"].endswith(f"{ips[0]} apiserver.cluster.local # lvscare-py\n")
        assert m.read("/etc/hosts") == cluster.hosts_before[m.name] + (
            f"{m.ip} apiserver.cluster.local # lvscare-py\n"
        )
        for name in ("ca.crt", "ca.key", "etcd/ca.key", "front-proxy-ca.crt", "sa.key", "sa.pub"):
            path = f"/etc/kubernetes/pki/{name}"
            assert m.path(path).read_bytes() == m0.path(path).read_bytes()
    # nodes: IPVS rules, then the join through the VIP, then the lvscare static pod.
    for n in cluster.nodes:
        rs = [f"{ip}:6443" for ip in ips]
        assert [c["argv"] for c in n.calls() if c["argv"][0] != "kubeadm"] == [
            ["init.sh"],
            ["ipvs", "create", "10.103.97.2:6443", *rs],
        ]
        (join,) = kubeadm_calls(n)
        joined_with(join, "10.103.97.2:6443", TOKEN, n.name)
        # The package came by relay (m0, m1, m2, n1, n2, n3 in one chain): a host that
        # passed it on got that link's key, 0600 like every file sent.
        passed_on = n is not cluster.nodes[-1]
        assert sent_0600(n) == [
            *(["/opt/lvscare-py/relay/key-1.lvscare-py-part"] if passed_on else []),
            "/opt/lvscare-py/join.yaml.lvscare-py-part",
        ]
        assert not n.exists("/opt/lvscare-py/join.yaml") and not n.exists(JOIN_CONFIG)
        assert manifest_rs(n) == rs
        assert n.read("/etc/hosts") == cluster.hosts_before[n.name] + (
            "10.103.97.2 apiserver.cluster.local # lvscare-py\n"
        )
    # order: master0's init, then m1's join, then m2's join, then every node's join.
    at = {h.name: kubeadm_calls(h)[0]["ns"] for h in [*cluster.masters, *cluster.nodes]}
    assert at["m0"] < at["m1"] < at["m2"] < min(at[n.name] for n in cluster.nodes)
    for h in cluster.masters + cluster.nodes:
        assert h.path("/opt/lvscare-py/package.tar.gz").read_bytes() == (
            cluster.client.package.read_bytes()
        )
    recorded = cluster_file(cluster.client)
    assert recorded["masters"] == [m.addr for m in cluster.masters]
    assert {a: h["result"] for a, h in recorded["hosts"].items()} == {
        h.addr: "ok" for h in cluster.masters + cluster.nodes
    }
    assert "HOST" in out.output and out.output.count(" ok ") >= 6


def test_init_again_skips_what_is_done(cluster: Cluster) -> None:
    before = {h.name: len(h.calls()) for h in cluster.masters + cluster.nodes}
    out = bootstrap(*cluster.init_args())
    assert out.exit_code == 0, out.output
    assert out.output.count("already there, same sha256: not sent") == 6
    for h in cluster.masters + cluster.nodes:
        new = h.calls()[before[h.name] :]
        assert [c["argv"] for c in new if c["argv"][0] in ("kubeadm", "init.sh")] == []


def test_join_adds_two_nodes_with_every_master(cluster: Cluster) -> None:
    n4, n5 = cluster.extra
    out = bootstrap("join", "--node", n4.addr, "--node", n5.addr)
    assert out.exit_code == 0, out.output
    m0 = cluster.masters[0]
    assert [c["argv"] for c in kubeadm_calls(m0)][-1] == [
        "kubeadm",
        "token",
        "create",
        "--print-join-command",
    ]
    for n in (n4, n5):
        (join,) = kubeadm_calls(n)
        joined_with(join, "10.103.97.2:6443", TOKEN2, n.name)
        assert manifest_rs(n) == [f"{m.ip}:6443" for m in cluster.masters]
    assert cluster_file(cluster.client)["nodes"] == [n.addr for n in cluster.nodes + cluster.extra]


def test_clean_one_node_deletes_it_from_kubernetes_and_leaves_the_runtime(cluster: Cluster) -> None:
    n1 = cluster.nodes[0]
    out = bootstrap("clean", "--node", n1.addr)
    assert out.exit_code == 0, out.output
    m0 = cluster.masters[0]
    kubectl = [c["argv"] for c in m0.calls() if c["argv"][0] == "kubectl"]
    assert kubectl == [
        [
            "kubectl",
            "--kubeconfig",
            "/etc/kubernetes/admin.conf",
            "delete",
            "node",
            "n1",
            "--ignore-not-found",
        ]
    ]
    assert [c["argv"] for c in kubeadm_calls(n1)][-1] == ["kubeadm", "reset", "-f"]
    assert ["ipvs", "remove", "10.103.97.2:6443"] in [c["argv"] for c in n1.calls()]
    assert n1.calls()[-1]["argv"] == ["clean.sh"]
    for place in PLACES:
        assert not n1.exists(place), place
    assert n1.read("/etc/hosts") == cluster.hosts_before["n1"]
    assert n1.exists(RUNTIME)
    assert n1.addr not in cluster_file(cluster.client)["nodes"]


def test_clean_a_master_gives_every_node_the_remaining_masters(cluster: Cluster) -> None:
    m0, m1, m2 = cluster.masters
    out = bootstrap("clean", "--master", m2.addr)
    assert out.exit_code == 0, out.output
    assert [c["argv"] for c in kubeadm_calls(m2)][-1] == ["kubeadm", "reset", "-f"]
    for place in (*PLACES, "/etc/kubernetes/pki/ca.key", "/etc/kubernetes/pki/sa.key"):
        assert not m2.exists(place), place
    remaining = [f"{m0.ip}:6443", f"{m1.ip}:6443"]
    for n in [*cluster.nodes[1:], *cluster.extra]:
        assert manifest_rs(n) == remaining
        assert n.calls()[-1]["argv"] == ["ipvs", "create", "10.103.97.2:6443", *remaining]
    assert cluster_file(cluster.client)["masters"] == [m0.addr, m1.addr]


def test_join_a_master_copies_the_cas_and_gives_every_node_the_new_list(cluster: Cluster) -> None:
    m0, m1, m2 = cluster.masters
    out = bootstrap("join", "--master", m2.addr)
    assert out.exit_code == 0, out.output
    joined_with(kubeadm_calls(m2)[-1], "apiserver.cluster.local:6443", TOKEN2, "m2", m2.ip)
    for name in ("ca.key", "etcd/ca.key", "front-proxy-ca.key", "sa.key"):
        path = f"/etc/kubernetes/pki/{name}"
        assert m2.path(path).read_bytes() == m0.path(path).read_bytes()
    every = [f"{m.ip}:6443" for m in (m0, m1, m2)]
    for n in [*cluster.nodes[1:], *cluster.extra]:
        assert manifest_rs(n) == every
    assert cluster_file(cluster.client)["masters"] == [m0.addr, m1.addr, m2.addr]


def test_clean_all_leaves_every_host_as_before(cluster: Cluster) -> None:
    out = bootstrap("clean", "--all")
    assert out.exit_code == 0, out.output
    for h in cluster.all:
        for place in PLACES:
            assert not h.exists(place), (h.name, place)
        assert h.read("/etc/hosts") == cluster.hosts_before[h.name]
        assert h.exists(RUNTIME)
    assert not cluster.client.cluster_file.exists()
