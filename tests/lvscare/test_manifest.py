"""`lvscare manifest` and manifests/kube-lvscare.yaml: the same text, and a valid Pod."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes.client import ApiClient, V1Pod

from lvscare.cli import care
from lvscare.config import build_config
from lvscare.errors import BadInput
from lvscare.manifest import render_static_pod

ROOT = Path(__file__).resolve().parents[2]
REFERENCE = ROOT / "manifests" / "kube-lvscare.yaml"
# How manifests/kube-lvscare.yaml was made (sealos' flags, our image):
REFERENCE_ARGS = [
    "--image", "lvscare-py:0.1.0",
    "--vs", "10.103.97.2:6443",
    "--rs", "192.168.0.2:6443", "--rs", "192.168.0.3:6443", "--rs", "192.168.0.4:6443",
    "--health-path", "/healthz", "--health-schem", "https",
]  # fmt: skip
RS = ["192.168.0.2:6443", "192.168.0.3:6443", "192.168.0.4:6443"]


def lvscare(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "lvscare", *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def as_pod(text: str) -> tuple[V1Pod, dict[str, Any]]:
    """The kubernetes client's model of the YAML; a field it does not know fails the round trip."""
    data = yaml.safe_load(text)
    client = ApiClient()
    pod = client.deserialize(json.dumps(data), "V1Pod", "application/json")
    assert isinstance(pod, V1Pod)
    back = client.sanitize_for_serialization(pod)  # type: ignore[no-untyped-call]
    assert back == data, "a field the Pod model does not know"
    return pod, data


def test_the_reference_manifest_is_what_the_generator_prints() -> None:
    proc = lvscare("manifest", *REFERENCE_ARGS)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == REFERENCE.read_text()


def test_render_static_pod_is_the_same_text_for_bootstrap() -> None:
    config = build_config(vs="10.103.97.2:6443", rs=RS, health_path="/healthz",
                          health_scheme="https")  # fmt: skip
    text = render_static_pod(config, "lvscare-py:0.1.0", care_args=REFERENCE_ARGS[2:])
    assert text == REFERENCE.read_text()
    plain = render_static_pod(build_config(vs="10.103.97.2:6443", rs=RS), "lvscare-py:0.1.0")
    pod, _ = as_pod(plain)
    assert pod.spec is not None
    assert pod.spec.containers[0].args == [
        "care", "--vs", "10.103.97.2:6443",
        "--rs", RS[0], "--rs", RS[1], "--rs", RS[2],
        "--health-address", "127.0.0.1:10271",
    ]  # fmt: skip


def test_the_reference_manifest_is_a_valid_pod_with_what_the_issue_asks() -> None:
    pod, data = as_pod(REFERENCE.read_text())
    spec = pod.spec
    assert spec is not None and pod.kind == "Pod" and pod.api_version == "v1"
    assert spec.host_network is True
    assert spec.priority_class_name == "system-node-critical"
    (container,) = spec.containers
    assert container.image == "lvscare-py:0.1.0"
    assert container.command == ["lvscare"]
    assert container.resources is not None and container.resources.requests is not None
    assert set(container.resources.requests) == {"cpu", "memory"}
    probe = container.liveness_probe
    assert probe is not None and probe.http_get is not None
    assert probe.http_get.path == "/healthz" and probe.http_get.host == "127.0.0.1"
    assert container.readiness_probe is not None
    assert container.readiness_probe.http_get is not None
    assert container.readiness_probe.http_get.path == "/readyz"
    # the probes point where the daemon listens
    args = container.args or []
    assert args[args.index("--health-address") + 1] == f"127.0.0.1:{probe.http_get.port}"
    # /lib/modules from the host, read-only
    mounts = {m.mount_path: m for m in container.volume_mounts or []}
    assert mounts["/lib/modules"].read_only is True
    volumes = {v.name: v for v in spec.volumes or []}
    lib = volumes[mounts["/lib/modules"].name].host_path
    assert lib is not None and lib.path == "/lib/modules"
    # privileged, and the reason is written next to it
    sc = container.security_context
    assert sc is not None and sc.privileged is True and sc.read_only_root_filesystem is True
    text = REFERENCE.read_text()
    comment = text[: text.index("    securityContext:")].rsplit("\n\n", 1)[-1]
    assert "/proc/sys is read-only in" in comment and "sysctls" in comment
    assert data["spec"]["containers"][0]["args"][0] == "care"


def test_the_pod_args_are_valid_care_flags() -> None:
    pod, _ = as_pod(REFERENCE.read_text())
    assert pod.spec is not None
    args = pod.spec.containers[0].args or []
    ctx = care.make_context("care", args[1:])
    config = build_config(**ctx.params)
    assert [str(r) for r in config.rs] == RS
    assert str(config.vs) == "10.103.97.2:6443"


def test_unprivileged_is_two_capabilities_and_no_escalation() -> None:
    text = render_static_pod(build_config(vs="10.103.97.2:6443", rs=RS), "img:1", unprivileged=True)
    pod, _ = as_pod(text)
    assert pod.spec is not None
    sc = pod.spec.containers[0].security_context
    assert sc is not None and not sc.privileged
    assert sc.capabilities is not None
    assert sc.capabilities.add == ["NET_ADMIN", "SYS_MODULE", "SYS_NICE"]
    assert sc.capabilities.drop == ["ALL"]
    assert sc.allow_privilege_escalation is False and sc.run_as_user == 0
    assert "Least privilege" in text
    link = build_config(vs="10.103.97.2:6443", rs=RS, mode="link")
    with pytest.raises(BadInput, match="--mode link"):
        render_static_pod(link, "img:1", unprivileged=True)


def test_flags_pass_through_and_shape_the_pod(tmp_path: Path) -> None:
    ca = tmp_path / "ca.crt"
    ca.write_text("not checked here\n")
    out = tmp_path / "kube-lvscare.yaml"
    proc = lvscare(
        "manifest", "--image", "img:2", "-o", str(out),
        "--rs", "m1.example:6443,m2.example:6443", "--interval=2", "--health-ca-file", str(ca),
        "--health-address", "0.0.0.0:10300", "--mode", "link", "-i", "kube-lvs",
    )  # fmt: skip
    assert proc.returncode == 0 and proc.stdout == "", proc.stderr
    pod, _ = as_pod(out.read_text())
    assert pod.spec is not None
    (c,) = pod.spec.containers
    assert c.args == [
        "care", "--vs", "10.103.97.2:6443", "--rs", "m1.example:6443,m2.example:6443",
        "--interval=2", "--health-ca-file", str(ca), "--health-address", "0.0.0.0:10300",
        "--mode", "link", "-i", "kube-lvs",
    ]  # fmt: skip
    assert c.liveness_probe is not None and c.liveness_probe.http_get is not None
    assert c.liveness_probe.http_get.host == "127.0.0.1"
    assert c.liveness_probe.http_get.port == 10300
    mounts = {m.mount_path: m.read_only for m in c.volume_mounts or []}
    assert mounts == {"/lib/modules": True, str(ca): True}


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["--rs", "198.18.0.11:6443", "--interval", "soon"], "--interval 'soon'"),
        (["--rs", "198.18.0.11"], "missing port"),
        (["--rs", "198.18.0.11:6443", "--run-once"], "a static pod must keep it running"),
        (["--rs", "198.18.0.11:6443", "--health-address", "off"], "livenessProbe"),
        (["--rs", "198.18.0.11:6443", "--health-address", "127.0.0.1:0"], "fixed port"),
        (["--rs", "198.18.0.11:6443", "--no-such-flag"], "No such option"),
        (["--vs"], "--vs: option requires an argument"),
        ([], "--rs: at least one real server is required"),
    ],
)
def test_bad_flags_are_one_line_and_exit_code_2(args: list[str], needle: str) -> None:
    proc = lvscare("manifest", *args)
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and needle in lines[0], proc.stderr
    assert proc.stdout == ""
