"""The default kubeadm configuration, per Kubernetes version, and what is read back from it."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from bootstrap.errors import BadInput
from bootstrap.host.kubeadm_config import ClusterSpec, default_template, facts, render
from bootstrap.inputs import parse_version
from tests.support.host_tree import run

FIXTURES = Path(__file__).parent / "fixtures"
MASTERS = ("192.168.0.2", "192.168.0.3", "192.168.0.4")


def spec(version: str = "v1.30.4", **kw: object) -> ClusterSpec:
    return ClusterSpec(version=parse_version(version), masters=MASTERS, node_name="m0", **kw)  # type: ignore[arg-type]


def docs(text: str) -> dict[str, dict[str, object]]:
    return {d["kind"]: d for d in yaml.safe_load_all(text)}


def test_default_for_1_30_is_v1beta3_with_everything_the_issue_lists() -> None:
    s = spec()
    rendered = docs(render(default_template(s.version), s))
    assert rendered == {
        "InitConfiguration": {
            "apiVersion": "kubeadm.k8s.io/v1beta3",
            "kind": "InitConfiguration",
            "localAPIEndpoint": {"advertiseAddress": "192.168.0.2", "bindPort": 6443},
            "nodeRegistration": {"name": "m0"},
        },
        "ClusterConfiguration": {
            "apiVersion": "kubeadm.k8s.io/v1beta3",
            "kind": "ClusterConfiguration",
            "kubernetesVersion": "v1.30.4",
            "controlPlaneEndpoint": "apiserver.cluster.local:6443",
            "imageRepository": "registry.k8s.io",
            "networking": {
                "dnsDomain": "cluster.local",
                "podSubnet": "100.64.0.0/10",
                "serviceSubnet": "10.96.0.0/12",
            },
            "apiServer": {
                "certSANs": [
                    "127.0.0.1",
                    "apiserver.cluster.local",
                    "192.168.0.2",
                    "192.168.0.3",
                    "192.168.0.4",
                    "10.103.97.2",
                ]
            },
            "controllerManager": {"extraArgs": {"cluster-signing-duration": "867240h"}},
        },
        "KubeProxyConfiguration": {
            "apiVersion": "kubeproxy.config.k8s.io/v1alpha1",
            "kind": "KubeProxyConfiguration",
            "mode": "ipvs",
            "ipvs": {"excludeCIDRs": ["10.103.97.2/32"]},
        },
        "KubeletConfiguration": {
            "apiVersion": "kubelet.config.k8s.io/v1beta1",
            "kind": "KubeletConfiguration",
            "cgroupDriver": "systemd",
        },
    }


@pytest.mark.parametrize("version", ["v1.31.0", "v1.33.1"])
def test_default_from_1_31_is_v1beta4_with_extra_args_as_a_list(version: str) -> None:
    s = spec(version, years=10, cert_sans=("k8s.example.com",))
    rendered = docs(render(default_template(s.version), s))
    cluster = rendered["ClusterConfiguration"]
    assert (
        cluster["apiVersion"]
        == rendered["InitConfiguration"]["apiVersion"]
        == ("kubeadm.k8s.io/v1beta4")
    )
    assert cluster["controllerManager"] == {
        "extraArgs": [{"name": "cluster-signing-duration", "value": "87600h"}]
    }
    assert (
        cluster["certificateValidityPeriod"] == cluster["caCertificateValidityPeriod"] == ("87600h")
    )
    assert cluster["apiServer"]["certSANs"][-2:] == ["k8s.example.com", "10.103.97.2"]  # type: ignore[index]


def test_ipv6_vip_is_excluded_as_a_128_bit_prefix() -> None:
    s = spec(vip="fd00::2")
    proxy = docs(render(default_template(s.version), s))["KubeProxyConfiguration"]
    assert proxy["ipvs"] == {"excludeCIDRs": ["fd00::2/128"]}


def test_facts_come_from_the_rendered_config_including_the_users_extra_names() -> None:
    s = spec()
    text = render((FIXTURES / "sealos-readme-style.yaml.tmpl").read_text(), s)
    f = facts(text, s, "192.168.0.2")
    assert f.node_name == "m0"  # the template names no node: kubeadm's default, the hostname
    assert f.advertise_address == "192.168.0.2"
    assert "k8s.example.com" in f.cert_sans
    assert f.service_ip == "10.96.0.1"
    assert f.endpoint_host == "apiserver.cluster.local"
    assert any("v1beta1" in w for w in f.warnings)


def test_a_template_that_renders_bad_yaml_is_bad_input_naming_the_file() -> None:
    with pytest.raises(BadInput, match=r"my.tmpl renders to YAML that does not parse: line 2"):
        render("a: 1\n b: [\n", spec(), "my.tmpl")


def test_config_command_prints_the_default_template_for_the_version() -> None:
    out = run("config", "-t", "kubeadm", "--version", "v1.30.4")
    assert out.exit_code == 0
    assert out.output == default_template(parse_version("v1.30.4"))
    assert "{{range .Masters}}" not in out.output and "{{- range .Masters}}" in out.output
    out = run("config", "-t", "kubeadm", "--version", "v1.31.0")
    assert "kubeadm.k8s.io/v1beta4" in out.output
