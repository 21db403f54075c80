"""`bootstrap upgrade` over real SSH: 1 master and 2 nodes from v1.30.4 to v1.31.0, a node
failing half-way and the re-run continuing from it; bad input changing nothing anywhere;
then a patch upgrade catching a shortened certificate and a node that is not Ready.

kubeadm, kubectl, etcdctl and systemctl are the test package's recording stand-ins (the lab
has no kubelet, etcd or systemd): the tests check exactly which of them each host ran, in
order. The certificates are real (bootstrap's 99-year PKI), read with the hosts' openssl.
One lab for the module; the tests run in order.
"""

from __future__ import annotations

import json
import os
import signal
from collections.abc import Iterator
from typing import Any

import pytest
import yaml

from tests.support import ssh_package
from tests.support.ssh_client import Client, bootstrap, init_args, lab_and_client
from tests.support.ssh_hosts import FAIL_FILE, Host, Lab

ADMIN = ["--kubeconfig", "/etc/kubernetes/admin.conf"]
NO_RENEWAL = "--certificate-renewal=false"
UPGRADE_NODE = ["kubeadm", "upgrade", "node", NO_RENEWAL]
KUBELET = [["systemctl", "daemon-reload"], ["systemctl", "restart", "kubelet"]]
PAIR = ("apiserver.crt", "apiserver.key")
READY = 'jsonpath={.status.conditions[?(@.type=="Ready")].status}'


class Hosts:
    def __init__(self, lab: Lab, client: Client) -> None:
        self.master, self.n1, self.n2 = lab.many(["m0", "n1", "n2"])
        client.trust(self.master, self.n1, self.n2)
        self.client = client
        root = client.home.parent
        self.new = ssh_package.build(root / "kube1.31.0.tar.gz", version="v1.31.0")
        self.other = ssh_package.build(root / "kube1.31.1.tar.gz", version="v1.31.1")
        self.marks: dict[str, int] = {}

    @property
    def all(self) -> list[Host]:
        return [self.master, self.n1, self.n2]

    def record(self) -> dict[str, Any]:
        data: dict[str, Any] = json.loads(self.client.cluster_file.read_text())
        return data

    def mark(self) -> None:
        self.marks = {h.name: len(h.calls()) for h in self.all}

    def since(self, host: Host) -> list[list[str]]:
        """What the stand-ins ran on the host since `mark`, but `kubeadm version`."""
        calls = host.calls()[self.marks[host.name] :]
        return [c["argv"] for c in calls if c["argv"][1:2] != ["version"]]

    def upgrade(self, version: str, pkg: str, *more: str) -> Any:
        self.mark()
        args = ["upgrade", "--version", version, "--pkg-url", pkg, "--pk", str(self.client.key)]
        return bootstrap(*args, *more)


@pytest.fixture(scope="module")
def hosts(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Hosts]:
    with lab_and_client(tmp_path_factory.mktemp("upgrade")) as (lab, client):
        h = Hosts(lab, client)
        result = bootstrap(*init_args(client, [h.master.addr], [h.n1.addr, h.n2.addr]))
        assert result.exit_code == 0, result.output
        yield h


def drain(name: str) -> list[str]:
    flags = ["--ignore-daemonsets", "--delete-emptydir-data", "--timeout=300s"]
    return ["kubectl", *ADMIN, "drain", name, *flags]


def after_kubelet(name: str) -> list[list[str]]:
    """On master0 for a host whose kubelet restarted: Ready asked, then uncordoned."""
    return [
        ["kubectl", *ADMIN, "get", "node", name, "-o", READY],
        ["kubectl", *ADMIN, "uncordon", name],
    ]


@pytest.mark.parametrize(
    ("version", "pkg", "message"),
    [
        ("v1.30.1", "new", "--version v1.30.1: a downgrade; the cluster runs v1.30.4"),
        ("v1.32.0", "new", "--version v1.32.0: skips a minor version"),
        ("v1.31.0", "other", "--pkg-url: its bin/kubeadm says v1.31.1, not --version v1.31.0"),
    ],
)
def test_bad_input_is_one_line_exit_2_and_changes_nothing_on_any_host(
    hosts: Hosts, version: str, pkg: str, message: str
) -> None:
    before = hosts.client.cluster_file.read_bytes()
    written = {h.name: h.written() for h in hosts.all}
    path = str(hosts.new if pkg == "new" else hosts.other)
    result = hosts.upgrade(version, path)
    assert result.exit_code == 2, result.output
    assert result.output.startswith(f"bootstrap: {message}"), result.output
    assert result.output.count("\n") == 1
    assert {h.name: hosts.since(h) for h in hosts.all} == {h.name: [] for h in hosts.all}
    assert {h.name: h.written() for h in hosts.all} == written
    assert hosts.client.cluster_file.read_bytes() == before


def test_an_unreachable_host_stops_the_upgrade_before_any_host_changes(hosts: Hosts) -> None:
    before = hosts.record()
    assert hosts.n2.proc is not None
    os.kill(hosts.n2.proc.pid, signal.SIGSTOP)  # its sshd answers no more
    try:
        result = hosts.upgrade("v1.31.0", str(hosts.new), "--ssh-timeout", "1")
    finally:
        os.kill(hosts.n2.proc.pid, signal.SIGCONT)
    assert result.exit_code == 1, result.output
    assert f"nothing changed: {hosts.n2.addr} is unreachable" in result.output
    assert {h.name: hosts.since(h) for h in hosts.all} == {h.name: [] for h in hosts.all}
    assert hosts.record() == before  # no upgrade under way: another --version may be given


def test_a_node_failing_half_way_stops_the_upgrade_there(hosts: Hosts) -> None:
    hosts.n1.write(FAIL_FILE, "upgrade\n")
    result = hosts.upgrade("v1.31.0", str(hosts.new))
    assert result.exit_code == 1, result.output
    record = hosts.record()
    up = record["upgrade"]
    snapshot = up["snapshot"]
    assert snapshot.startswith("/var/lib/lvscare-py/etcd-snapshot-v1.30.4-")
    assert f"etcd snapshot on master0 {hosts.master.addr}: {snapshot}" in result.output
    assert hosts.master.exists(snapshot)
    assert up["done"] == [hosts.master.addr]
    assert up["to_version"] == "v1.31.0" and record["version"] == "v1.30.4"
    assert "moved from v1beta3 to v1beta4" in result.output
    kept = hosts.master.read("/var/lib/lvscare-py/kubeadm.yaml")
    assert "kubeadm.k8s.io/v1beta4" in kept and "kubeadm.k8s.io/v1beta3" not in kept
    assert "kubernetesVersion: v1.31.0" in kept
    kinds = [d["kind"] for d in yaml.safe_load_all(kept) if d]
    assert sorted(kinds) == [  # kubelet's and kube-proxy's kept, though migrate drops them
        "ClusterConfiguration",
        "InitConfiguration",
        "KubeProxyConfiguration",
        "KubeletConfiguration",
    ]

    etcdctl = hosts.since(hosts.master)[1]
    assert etcdctl[:1] == ["etcdctl"] and etcdctl[-3:] == ["snapshot", "save", snapshot]
    assert hosts.since(hosts.master) == [
        ["init.sh"],
        etcdctl,
        ["kubeadm", "upgrade", "plan", "v1.31.0"],
        ["kubeadm", "upgrade", "apply", "v1.31.0", "--yes", NO_RENEWAL],
        [
            "kubeadm",
            "config",
            "migrate",
            "--old-config",
            "/var/lib/lvscare-py/kubeadm.yaml.v1beta3",
            "--new-config",
            "/var/lib/lvscare-py/kubeadm.yaml.new",
        ],
        drain("m0"),
        *KUBELET,
        *after_kubelet("m0"),
        drain("n1"),  # n1's: it stays cordoned, no uncordon
    ]
    assert hosts.since(hosts.n1) == [["init.sh"], UPGRADE_NODE]  # failed: no kubelet restart
    assert hosts.since(hosts.n2) == [["init.sh"]]  # the package only, before any kubeadm
    assert "upgrade stopped at" in result.output and hosts.n1.addr in result.output
    # init's record of the hosts is not the upgrade's to change
    assert {rec["result"] for rec in record["hosts"].values()} == {"ok"}


def test_the_rerun_continues_from_the_failed_node_and_touches_no_host_done_before(
    hosts: Hosts,
) -> None:
    hosts.n1.path(FAIL_FILE).unlink()
    result = hosts.upgrade("v1.31.0", str(hosts.new))
    assert result.exit_code == 0, result.output
    assert "continuing: 1 hosts done earlier" in result.output
    # master0, done, runs only the kubectl that drains and uncordons the others
    assert hosts.since(hosts.master) == [
        drain("n1"),
        *after_kubelet("n1"),
        drain("n2"),
        *after_kubelet("n2"),
    ]
    assert hosts.since(hosts.n1) == [UPGRADE_NODE, *KUBELET]  # package and init.sh: done
    assert hosts.since(hosts.n2) == [UPGRADE_NODE, *KUBELET]
    # one node at a time: n1 drained, upgraded, Ready and uncordoned before n2 is drained
    timeline = sorted(
        (c["ns"], h.name, c["argv"][:3])
        for h in hosts.all
        for c in h.calls()[hosts.marks[h.name] :]
        if "ns" in c and c["argv"][1:2] != ["version"]
    )
    assert [(name, argv[0]) for _ns, name, argv in timeline] == [
        ("m0", "kubectl"),
        ("n1", "kubeadm"),
        ("n1", "systemctl"),
        ("n1", "systemctl"),
        ("m0", "kubectl"),
        ("m0", "kubectl"),
        ("m0", "kubectl"),
        ("n2", "kubeadm"),
        ("n2", "systemctl"),
        ("n2", "systemctl"),
        ("m0", "kubectl"),
        ("m0", "kubectl"),
    ]
    record = hosts.record()
    assert record["version"] == "v1.31.0" and record["upgrade"] is None
    assert record["pkg_url"] == str(hosts.new)
    assert record["pkg_sha256"] is not None
    assert "cluster upgraded to v1.31.0" in result.output
    assert "etcd snapshot from before, kept on master0" in result.output


def test_a_certificate_kubeadm_shortened_fails_the_host_and_a_node_not_ready_times_out(
    hosts: Hosts,
) -> None:
    # a kubeadm that renews certificates despite --certificate-renewal=false
    kept = {n: hosts.master.path(f"/etc/kubernetes/pki/{n}").read_bytes() for n in PAIR}
    hosts.master.write(ssh_package.RENEW_FILE, "")
    hosts.master.write(ssh_package.RENEW_FILE + ".always", "")
    result = hosts.upgrade("v1.31.1", str(hosts.other))
    assert result.exit_code == 1, result.output
    assert "certificates got shorter during the upgrade" in result.output
    assert "/etc/kubernetes/pki/apiserver.crt" in result.output
    assert hosts.record()["upgrade"]["done"] == []
    assert hosts.since(hosts.n1) == [["init.sh"]]

    hosts.master.path(ssh_package.RENEW_FILE).unlink()
    # the re-run sees the one-year certificate the failed run left, before any kubeadm
    result = hosts.upgrade("v1.31.1", str(hosts.other))
    assert result.exit_code == 1, result.output
    assert "certificates before the upgrade end within two years" in result.output
    assert "bootstrap certs --renew --years 99" in result.output
    assert hosts.since(hosts.master) == []

    for name in PAIR:  # as `bootstrap certs --renew` would
        hosts.master.path(f"/etc/kubernetes/pki/{name}").write_bytes(kept[name])
    hosts.master.write(ssh_package.NOT_READY_FILE, "n1\n")
    result = hosts.upgrade("v1.31.1", str(hosts.other), "--ready-timeout", "1")
    assert result.exit_code == 1, result.output
    assert "node n1 not Ready after 1 s (last answer: False); it stays cordoned" in result.output
    assert hosts.record()["upgrade"]["done"] == [hosts.master.addr]
    on_master0 = hosts.since(hosts.master)
    assert on_master0[-1][4:6] == ["node", "n1"]  # asked Ready until the timeout, no uncordon
    assert ["kubectl", *ADMIN, "uncordon", "n1"] not in on_master0
    assert hosts.since(hosts.n2) == []
