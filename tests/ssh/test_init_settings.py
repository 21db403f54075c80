"""`bootstrap init` passes the cluster's settings down to every host, applies the package's
CNI on master0 with the cluster's pod network, and `join` uses what init recorded.

Real sshd hosts (tests/support/ssh_hosts.py); kubeadm and kubectl are the recording
stand-ins of the test package, bootstrap is this checkout's own.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.support import ssh_package
from tests.support.built_package import CALICO
from tests.support.ssh_client import Client, bootstrap, init_args, lab_and_client
from tests.support.ssh_hosts import Host, Lab

POD_CIDR = "172.20.0.0/16"
SVC_CIDR = "10.200.0.0/16"
VIP = "10.255.0.2"
SETTINGS = (
    "--vip",
    VIP,
    "--pod-cidr",
    POD_CIDR,
    "--svc-cidr",
    SVC_CIDR,
    "--repo",
    "registry.example.internal/k8s",
    "--cert-sans",
    "api.example.internal",
    "--years",
    "50",
    "--lvscare-image",
    "registry.example.internal/lvscare-py:0.1.0",
    "--lvscare-mode",
    "link",
    "--interval",
    "2",
)


class Hosts:
    def __init__(self, lab: Lab, client: Client) -> None:
        self.master = lab.host("m0")
        self.node = lab.host("n1")
        self.extra = lab.host("n2")
        client.trust(self.master, self.node, self.extra)
        self.client = client
        self.package = ssh_package.build(client.home.parent / "kube-cni.tar.gz", cni=CALICO)


@pytest.fixture(scope="module")
def hosts(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Hosts]:
    with lab_and_client(tmp_path_factory.mktemp("settings")) as (lab, client):
        yield Hosts(lab, client)


@pytest.fixture(scope="module")
def init(hosts: Hosts) -> Any:
    args = init_args(hosts.client, [hosts.master.addr], [hosts.node.addr], pkg=str(hosts.package))
    return bootstrap(*args, *SETTINGS)


def kubeadm_config(host: Host, sub: str) -> dict[str, Any]:
    calls = [c for c in host.calls() if c["argv"][:2] == ["kubeadm", sub]]
    assert len(calls) == 1, host.calls()
    return {d["kind"]: d for d in yaml.safe_load_all(calls[0]["config"])}


def node_manifest_args(host: Host) -> list[str]:
    pod = yaml.safe_load(host.read("/etc/kubernetes/manifests/kube-lvscare.yaml"))
    container = pod["spec"]["containers"][0]
    return [container["image"], *container["args"]]


def test_master0_gets_the_clusters_network_images_and_certificates(hosts: Hosts, init: Any) -> None:
    assert init.exit_code == 0, init.output
    config = kubeadm_config(hosts.master, "init")
    cluster = config["ClusterConfiguration"]
    assert cluster["networking"]["podSubnet"] == POD_CIDR
    assert cluster["networking"]["serviceSubnet"] == SVC_CIDR
    assert cluster["imageRepository"] == "registry.example.internal/k8s"
    assert "api.example.internal" in cluster["apiServer"]["certSANs"]
    assert config["KubeProxyConfiguration"]["ipvs"]["excludeCIDRs"] == [f"{VIP}/32"]
    pem = hosts.master.path("/etc/kubernetes/pki/apiserver.crt").read_bytes()
    from cryptography import x509

    cert = x509.load_pem_x509_certificate(pem)
    years = (cert.not_valid_after_utc - cert.not_valid_before_utc).days / 365.25
    assert 49.9 < years < 50.1


def test_the_package_cni_is_applied_on_master0_with_the_pod_network(
    hosts: Hosts, init: Any
) -> None:
    assert init.exit_code == 0, init.output
    applies = [c["argv"] for c in hosts.master.calls() if c["argv"][:1] == ["kubectl"]]
    assert applies == [
        [
            "kubectl",
            "--kubeconfig",
            "/etc/kubernetes/admin.conf",
            "apply",
            "-f",
            "/opt/lvscare-py/cni.yaml",
        ]
    ]
    docs = list(yaml.safe_load_all(hosts.master.read("/opt/lvscare-py/cni.yaml")))
    daemonset = next(d for d in docs if d["kind"] == "DaemonSet")
    env = daemonset["spec"]["template"]["spec"]["containers"][0]["env"]
    assert {"name": "CALICO_IPV4POOL_CIDR", "value": POD_CIDR} in env
    assert "pod network set" in init.output


def test_nodes_get_the_daemons_mode_interval_and_image(hosts: Hosts, init: Any) -> None:
    assert init.exit_code == 0, init.output
    args = node_manifest_args(hosts.node)
    assert args[0] == "registry.example.internal/lvscare-py:0.1.0"
    assert args[args.index("--mode") + 1] == "link"
    assert args[args.index("--interval") + 1] == "2"
    creates = [c["argv"] for c in hosts.node.calls() if c["argv"][:2] == ["ipvs", "create"]]
    assert creates == [["ipvs", "create", f"{VIP}:6443", f"{hosts.master.ip}:6443", "--mode=link"]]


def test_join_uses_the_settings_init_recorded(hosts: Hosts, init: Any) -> None:
    assert init.exit_code == 0, init.output
    record = json.loads(hosts.client.cluster_file.read_text())
    assert record["pod_cidr"] == POD_CIDR and record["lvscare_mode"] == "link"
    result = bootstrap("join", "--node", hosts.extra.addr, "--pk", str(hosts.client.key))
    assert result.exit_code == 0, result.output
    args = node_manifest_args(hosts.extra)
    assert args[args.index("--mode") + 1] == "link"
    assert args[0] == "registry.example.internal/lvscare-py:0.1.0"


def test_cni_none_applies_nothing(tmp_path: Path) -> None:
    with lab_and_client(tmp_path) as (lab, client):
        master = lab.host("m0")
        client.trust(master)
        package = ssh_package.build(tmp_path / "kube-cni.tar.gz", cni=CALICO)
        args = init_args(client, [master.addr], [], pkg=str(package))
        result = bootstrap(*args, "--cni", "none")
        assert result.exit_code == 0, result.output
        assert not [c for c in master.calls() if c["argv"][:1] == ["kubectl"]]


@pytest.mark.parametrize(
    ("flag", "value", "expect"),
    [
        ("--pod-cidr", "10.0.0.300/8", "--pod-cidr"),
        ("--lvscare-mode", "tunnel", "--lvscare-mode"),
        ("--interval", "0", "--interval"),
        ("--years", "0", "--years"),
    ],
)
def test_bad_settings_are_refused_before_any_host_is_touched(
    tmp_path: Path, flag: str, value: str, expect: str
) -> None:
    client_home = tmp_path / "home"
    client_home.mkdir()
    package = ssh_package.build(tmp_path / "kube.tar.gz")
    key = tmp_path / "key"
    key.write_text("not used: the flag is refused first\n")
    args = ["init", "--master", "198.18.255.1", "--pk", str(key), "--pkg-url", str(package)]
    result = bootstrap(*args, "--version", "v1.30.4", flag, value)
    assert result.exit_code == 2, result.output
    assert expect in result.output
