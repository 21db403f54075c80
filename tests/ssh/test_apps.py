"""`bootstrap install` of an app package, twice, upgraded, deleted; `status`; bad input.

One lab for the file: a master and a node (real sshd), `bootstrap init` once with the test
package (stand-in kubeadm and kubectl recording argv), and one real containerd both hosts
reach at /run/containerd/containerd.sock. `ctr` on the hosts is the real one behind a
wrapper that records its argv to the host's calls log, so a test sees both what ran and
what the runtime holds.
"""

from __future__ import annotations

import io
import json
import sys
import tarfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.support.app_package import app_dir
from tests.support.containerd import Containerd
from tests.support.ssh_client import Client, bootstrap, init_args, lab_and_client
from tests.support.ssh_hosts import CALLS_LOG, FAIL_FILE, Host

RUNTIME_ENV = "/etc/lvscare-py/runtime.env"
V1 = "example.internal/demo/web:1.0"
V2 = "example.internal/demo/web:2.0"
CTR_RECORDER = f"""\
#!{sys.executable} -S
import json, os, sys, time
with open({CALLS_LOG!r}, "a") as f:
    f.write(json.dumps({{"argv": ["ctr", *sys.argv[1:]], "ns": time.time_ns()}}) + "\\n")
if "import" in sys.argv and os.path.exists({FAIL_FILE!r}):
    if "ctr import" in open({FAIL_FILE!r}).read().splitlines():
        sys.exit("ctr: [stand-in] told to fail the import")
os.execv("/usr/bin/ctr", ["ctr", *sys.argv[1:]])
"""
SETUP = f"mkdir -p /usr/local/bin && cat > /usr/local/bin/ctr <<'EOF'\n{CTR_RECORDER}EOF\n"
SETUP += "chmod 755 /usr/local/bin/ctr"


@dataclass
class Env:
    client: Client
    master: Host
    node: Host
    runtime: Containerd
    v1: Path
    v2: Path
    root: Path

    @property
    def hosts(self) -> list[Host]:
        return [self.master, self.node]

    def install(self, *args: str) -> Any:
        return bootstrap("install", "--pk", str(self.client.key), *args)

    def apps(self) -> list[dict[str, Any]]:
        apps: list[dict[str, Any]] = json.loads(self.client.cluster_file.read_text())["apps"]
        return apps


def tool_calls(host: Host, tool: str) -> list[list[str]]:
    return [c["argv"] for c in host.calls() if c["argv"][:1] == [tool]]


def imports(host: Host) -> list[list[str]]:
    return [a for a in tool_calls(host, "ctr") if "import" in a]


def package_app(directory: Path, out: Path, version: str) -> Path:
    result = bootstrap("package", "app", str(directory), "--version", version, "-o", str(out))
    assert result.exit_code == 0, result.output
    return out


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Env]:
    root = tmp_path_factory.mktemp("apps")
    with Containerd() as runtime, lab_and_client(root) as (lab, client):
        master, node = lab.many(["m0", "n1"], setup=f"{runtime.host_setup()}\n{SETUP}")
        client.trust(master, node)
        init = bootstrap(*init_args(client, [master.addr], [node.addr]))
        assert init.exit_code == 0, init.output
        # What the real init.sh records (the test package's stand-in writes none): the
        # master's runtime comes from it, the node's is found by its client and socket.
        master.write(RUNTIME_ENV, "RUNTIME=containerd\nCGROUP_DRIVER=cgroupfs\n")
        v1 = package_app(app_dir(root / "v1" / "demo", V1), root / "demo-1.0.tar.gz", "1.0")
        v2_dir = app_dir(root / "v2" / "demo", V2, gz=True)
        v2 = package_app(v2_dir, root / "demo-2.0.tar.gz", "2.0")
        yield Env(client, master, node, runtime, v1, v2, root)


@pytest.fixture(scope="module")
def first(env: Env) -> Any:
    return env.install("--pkg-url", str(env.v1))


@pytest.fixture(scope="module")
def second(env: Env, first: Any) -> tuple[Any, dict[str, tuple[int, int]]]:
    before = {h.name: (len(h.calls()), len(h.sftp_opens())) for h in env.hosts}
    return env.install("--pkg-url", str(env.v1)), before


def test_install_loads_the_images_on_every_host_and_applies_the_manifests_in_order(
    env: Env, first: Any
) -> None:
    assert first.exit_code == 0, first.output
    for host in env.hosts:
        assert [a[-1] for a in imports(host)] == ["/opt/lvscare-py/apps/demo/images/web.tar"]
        sent = [p for p, _flags, _mode in host.sftp_opens() if "/apps/demo.pkg" in p]
        assert len(sent) == 1, sent
        assert host.read("/opt/lvscare-py/app-state/demo/loaded").strip() == env.apps()[0]["sha256"]
    assert f"docker.io/{V1}" in env.runtime.images() or V1 in env.runtime.images()
    applies = [a for a in tool_calls(env.master, "kubectl") if "apply" in a]
    tree = "/opt/lvscare-py/apps/demo"
    assert applies[-2:] == [
        ["kubectl", "--kubeconfig", "/etc/kubernetes/admin.conf", "apply", "-f", f"{tree}/{m}"]
        for m in ("manifests/00-namespace.yaml", "manifests/10-web.yaml")
    ]
    assert not [a for a in tool_calls(env.node, "kubectl") if "apply" in a]


def test_install_shows_install_sh_output_and_records_the_app(env: Env, first: Any) -> None:
    assert first.exit_code == 0, first.output
    assert "login token: demo-token-0123" in first.output
    assert "KUBECONFIG=/etc/kubernetes/admin.conf" in first.output
    [app] = env.apps()
    assert (app["name"], app["version"]) == ("demo", "1.0")
    assert app["manifests"] == ["manifests/00-namespace.yaml", "manifests/10-web.yaml"]
    assert app["images"] == ["images/web.tar"]


def test_installing_the_same_package_again_changes_nothing_on_any_host(
    env: Env, second: tuple[Any, dict[str, tuple[int, int]]]
) -> None:
    result, before = second
    assert result.exit_code == 0, result.output
    assert "installed already" in result.output
    # No ctr, no kubectl, no file sent.
    assert {h.name: (len(h.calls()), len(h.sftp_opens())) for h in env.hosts} == before
    assert len(env.apps()) == 1


def test_status_shows_hosts_version_vip_and_apps(env: Env, second: Any) -> None:
    result = bootstrap("status")
    assert result.exit_code == 0, result.output
    assert "v1.30.4" in result.output
    assert f"{env.master.addr}" in result.output and "master0" in result.output
    assert env.node.addr in result.output
    demo = [line.split() for line in result.output.splitlines() if line.startswith("demo ")]
    assert demo and demo[0][:2] == ["demo", "1.0"]


def test_dry_run_prints_the_plan_host_by_host_and_changes_nothing(env: Env, second: Any) -> None:
    before = {h.name: len(h.calls()) for h in env.hosts}
    result = env.install("--pkg-url", str(env.v2), "--dry-run")
    assert result.exit_code == 0, result.output
    assert "upgrade demo 1.0 -> 2.0" in result.output
    assert f"{env.master.addr} (master, master0):" in result.output
    assert f"{env.node.addr} (node):" in result.output
    assert "kubectl apply -f manifests/10-web.yaml" in result.output
    assert {h.name: len(h.calls()) for h in env.hosts} == before
    assert env.apps()[0]["version"] == "1.0"


def without_manifests(env: Env) -> Path:
    path = env.root / "broken-1.0.tar.gz"
    with tarfile.open(path, "w:gz") as tar:
        data = (env.v1.parent / "v1" / "demo" / "images" / "web.tar").read_bytes()
        info = tarfile.TarInfo("images/web.tar")
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
    return path


def test_a_package_without_manifests_is_one_line_exit_2_and_nothing_changes(
    env: Env, second: Any
) -> None:
    before = {h.name: len(h.calls()) for h in env.hosts}
    record = env.client.cluster_file.read_text()
    result = env.install("--pkg-url", str(without_manifests(env)))
    assert result.exit_code == 2, result.output
    assert result.output.count("\n") == 1 and "no manifests/" in result.output
    assert {h.name: len(h.calls()) for h in env.hosts} == before
    assert env.client.cluster_file.read_text() == record
    for host in env.hosts:
        assert not host.exists("/opt/lvscare-py/apps/broken")


@pytest.fixture(scope="module")
def failed_upgrade(env: Env, second: Any) -> tuple[Any, str]:
    """v2 while the node's image import fails; then the node may import again."""
    env.node.write(FAIL_FILE, "ctr import\n")
    try:
        result = env.install("--pkg-url", str(env.v2))
    finally:
        env.node.write(FAIL_FILE, "")
    return result, env.client.cluster_file.read_text()


@pytest.fixture(scope="module")
def upgraded(env: Env, failed_upgrade: Any) -> Any:
    return env.install("--pkg-url", str(env.v2))


def test_a_host_failing_its_images_stops_the_manifests_and_keeps_the_old_record(
    env: Env, failed_upgrade: tuple[Any, str]
) -> None:
    result, record = failed_upgrade
    assert result.exit_code == 1, result.output
    assert "told to fail the import" in result.output
    assert "manifests not applied: images missing on " + env.node.addr in result.output
    assert len([a for a in tool_calls(env.master, "kubectl") if "apply" in a]) == 2  # v1's
    cluster = json.loads(record)
    assert [(a["name"], a["version"]) for a in cluster["apps"]] == [("demo", "1.0")]
    # An app's failure is not the host's: the cluster file still has it as installed.
    assert cluster["hosts"][env.node.addr]["result"] == "ok"


def test_another_version_replaces_the_app_and_a_rerun_continues(env: Env, upgraded: Any) -> None:
    assert upgraded.exit_code == 0, upgraded.output
    [app] = env.apps()
    assert app["version"] == "2.0"
    assert [a[-1] for a in imports(env.master)][1:] == ["-"]  # v2's .tar.gz once, piped
    assert len(imports(env.node)) == 3  # v1, the failed v2, v2 again
    images = env.runtime.images()
    assert any(i.endswith(V2) for i in images), images
    applies = [a for a in tool_calls(env.master, "kubectl") if "apply" in a]
    assert len(applies) == 2 + 2  # v1's two, v2's two


def test_delete_removes_what_the_package_installed(env: Env, upgraded: Any) -> None:
    assert upgraded.exit_code == 0, upgraded.output
    before = len(tool_calls(env.master, "kubectl"))
    result = env.install("--pkg-url", str(env.v2), "--delete")
    assert result.exit_code == 0, result.output
    deletes = tool_calls(env.master, "kubectl")[before:]
    tree = "/opt/lvscare-py/apps/demo"
    assert deletes == [
        [
            "kubectl",
            "--kubeconfig",
            "/etc/kubernetes/admin.conf",
            "delete",
            "--ignore-not-found",
            "-f",
            f"{tree}/{m}",
        ]
        for m in ("manifests/10-web.yaml", "manifests/00-namespace.yaml")
    ]
    assert "removed the demo's leftovers" in result.output
    # Nothing else put images in this containerd: the CRI plugin's sha256:... names of
    # the app's images went with them.
    assert env.runtime.images() == []
    for host in env.hosts:
        assert not host.exists("/opt/lvscare-py/apps/demo")
        assert not host.exists("/opt/lvscare-py/app-state/demo")
    assert env.apps() == []
