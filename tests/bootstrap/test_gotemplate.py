"""The Go template subset: sealos users' kubeadm templates render as Go's text/template would."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from bootstrap.host import gotemplate
from bootstrap.host.gotemplate import TemplateError, render
from bootstrap.host.kubeadm_config import ClusterSpec
from bootstrap.inputs import parse_version

FIXTURES = Path(__file__).parent / "fixtures"
MASTERS = ["192.168.0.2", "192.168.0.3", "192.168.0.4"]


def sealos_data(**extra: object) -> dict[str, object]:
    """The map sealos v3 gave its template (plus what later v3 releases added)."""
    return {
        "Version": "v1.30.4",
        "Masters": MASTERS,
        "Master0": MASTERS[0],
        "VIP": "10.103.97.2",
        "ApiServer": "apiserver.cluster.local",
        "PodCIDR": "100.64.0.0/10",
        "SvcCIDR": "10.96.0.0/12",
        "Repo": "registry.k8s.io",
        "CertSANS": [],
        "CgroupDriver": "systemd",
        "KubeadmApi": "kubeadm.k8s.io/v1beta3",
        "CriSocket": "unix:///var/run/containerd/containerd.sock",
        **extra,
    }


def test_readme_style_template_renders_exactly_as_go_would() -> None:
    text = (FIXTURES / "sealos-readme-style.yaml.tmpl").read_text()
    out = render(text, sealos_data(Version="v1.14.1"))
    assert out == (
        "apiVersion: kubeadm.k8s.io/v1beta1\n"
        "kind: ClusterConfiguration\n"
        "kubernetesVersion: v1.14.1\n"
        'controlPlaneEndpoint: "apiserver.cluster.local:6443"\n'
        "networking:\n"
        "  podSubnet: 100.64.0.0/10\n"
        "apiServer:\n"
        "        certSANs:\n"
        "        - k8s.example.com # a name this user added\n"
        "        - 127.0.0.1\n"
        "        - apiserver.cluster.local\n"
        "        - 192.168.0.2\n"
        "        - 192.168.0.3\n"
        "        - 192.168.0.4\n"
        "        - 10.103.97.2\n"
        "---\n"
        "apiVersion: kubeproxy.config.k8s.io/v1alpha1\n"
        "kind: KubeProxyConfiguration\n"
        'mode: "ipvs"\n'
        "ipvs:\n"
        "        excludeCIDRs: \n"
        '        - "10.103.97.2/32"\n'
    )


def test_full_style_template_renders_to_the_documents_sealos_produced() -> None:
    text = (FIXTURES / "sealos-full-style.yaml.tmpl").read_text()
    out = render(text, sealos_data(CertSANS=["k8s.example.com", "10.0.0.9"]))
    init, cluster, proxy, kubelet = yaml.safe_load_all(out)
    assert init == {
        "apiVersion": "kubeadm.k8s.io/v1beta3",
        "kind": "InitConfiguration",
        "localAPIEndpoint": {"advertiseAddress": "192.168.0.2", "bindPort": 6443},
        "nodeRegistration": {"criSocket": "unix:///var/run/containerd/containerd.sock"},
    }
    assert cluster["controlPlaneEndpoint"] == "apiserver.cluster.local:6443"
    assert cluster["imageRepository"] == "registry.k8s.io"
    assert cluster["networking"] == {"podSubnet": "100.64.0.0/10", "serviceSubnet": "10.96.0.0/12"}
    assert cluster["apiServer"]["certSANs"] == [
        "127.0.0.1",
        "apiserver.cluster.local",
        *MASTERS,
        "k8s.example.com",
        "10.0.0.9",
        "10.103.97.2",
    ]
    assert cluster["controllerManager"] == {"extraArgs": {"cluster-signing-duration": "876000h"}}
    assert proxy == {
        "apiVersion": "kubeproxy.config.k8s.io/v1alpha1",
        "kind": "KubeProxyConfiguration",
        "mode": "ipvs",
        "ipvs": {"excludeCIDRs": ["10.103.97.2/32"]},
    }
    assert kubelet["cgroupDriver"] == "systemd"
    assert out.endswith("cgroupDriver: systemd\n# extra names: 2\n")


def test_our_cluster_spec_gives_every_variable_sealos_templates_use() -> None:
    spec = ClusterSpec(version=parse_version("v1.30.4"), masters=tuple(MASTERS), node_name="m0")
    data = spec.template_data()
    assert set(sealos_data()) <= set(data)
    for name in ("sealos-readme-style.yaml.tmpl", "sealos-full-style.yaml.tmpl"):
        assert render((FIXTURES / name).read_text(), sealos_data()) == render(
            (FIXTURES / name).read_text(), data
        )


@pytest.mark.parametrize(
    ("template", "expected"),
    [
        ("a {{- .X -}} b", "a1b"),
        ("a  {{- .X}}  b", "a1  b"),
        ("{{.X}}\n{{- /* a comment */}}\nz", "1\nz"),
        ("{{if .T}}yes{{else}}no{{end}}", "yes"),
        ("{{if .F}}a{{else if .X}}b{{else}}c{{end}}", "b"),
        ("{{if not .F}}a{{end}}{{if and .T .X}}b{{end}}{{if or .F .E}}c{{end}}", "ab"),
        ("{{range .L}}[{{.}}]{{else}}none{{end}}", "[a][b]"),
        ("{{range .E}}[{{.}}]{{else}}none{{end}}", "none"),
        ("{{range $i, $v := .L}}{{$i}}={{$v}} {{end}}", "0=a 1=b "),
        ("{{$x := .X}}{{range .L}}{{$x}}{{.}}{{end}}", "1a1b"),
        ("{{with .M}}{{.k}}{{end}}", "v"),
        ('{{eq .S "s"}} {{ne .X 2}} {{len .L}} {{index .L 1}} {{index .M "k"}}', "true true 2 b v"),
        ('{{printf "%s:%d" .S 6443}} {{.X | printf "%03d"}} {{print .X 2}}', "s:6443 001 1 2"),
        ("{{.L}} {{.M}} {{.T}} {{.N}}", "[a b] map[k:v] true <no value>"),
        ("{{$.S}}{{range .L}}{{$.S}}{{end}}", "sss"),
        ("{{ `raw {{ text` }}", "raw {{ text"),
    ],
)
def test_go_template_semantics(template: str, expected: str) -> None:
    data = {
        "X": 1,
        "T": True,
        "F": False,
        "E": [],
        "L": ["a", "b"],
        "M": {"k": "v"},
        "S": "s",
        "N": None,
    }
    assert render(template, data) == expected


@pytest.mark.parametrize(
    ("template", "line", "needle"),
    [
        ("a\nb\n{{.Nope}}\n", 3, ".Nope is not defined (known: VIP)"),
        ("a\n{{.VIP\n", 2, "unclosed action"),
        ("a\n\n{{range .VIP}}\n", 3, "{{range}} has no matching {{end}}"),
        ("{{end}}", 1, "unexpected {{end}}"),
        ("x\n{{join .VIP}}", 2, 'function "join" not defined'),
        ('x\n{{template "a"}}', 2, "not supported"),
        ("\n\n\n{{.VIP.Bad}}", 4, "can't get field Bad"),
    ],
)
def test_errors_name_the_line(template: str, line: int, needle: str) -> None:
    with pytest.raises(TemplateError) as caught:
        render(template, {"VIP": "10.103.97.2"})
    assert caught.value.line == line
    assert needle in str(caught.value)
    assert str(caught.value).startswith(f"line {line}: ")


def test_parse_checks_syntax_without_data() -> None:
    gotemplate.parse((FIXTURES / "sealos-full-style.yaml.tmpl").read_text())
