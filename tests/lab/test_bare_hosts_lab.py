"""`bootstrap init` with the package `bootstrap package build` made, on hosts with no Python.

In the kernel lab (the nodes' IPVS rules are real): three SSH hosts (real sshd in
namespaces, tests/support/ssh_hosts.py) whose file systems have no Python at all, and
Debian's containerd running for them. The package carries the one-file `bootstrap`, the
lvscare image, init.sh, and recording stand-ins (POSIX sh) for kubeadm, kubelet and
kubectl, which cannot exist here. The test checks what each host ran and what it holds.
"""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.support import built_package as bp
from tests.support import containerd
from tests.support.labnet import modules_as_before
from tests.support.ssh_client import Client, bootstrap, init_args, lab_and_client
from tests.support.ssh_hosts import Host, Lab

pytestmark = [pytest.mark.kernel, pytest.mark.timeout(1800)]

VIP = "10.103.97.2"
POD_CIDR = "172.20.0.0/16"
# Everything a Python could be found by: interpreters, their libraries, this checkout's venv.
NO_PYTHON = (
    "/usr/bin/python*",
    "/usr/local/bin/python*",
    "/usr/lib/python3*",
    "/usr/local/lib/python3*",
    "/usr/lib/x86_64-linux-gnu/libpython3*",
    "/usr/share/python3",
    "/usr/bin/py3*",
    "/usr/bin/pydoc*",
    "/root/.pyenv",
    f"{bp.ROOT}/.venv",
)
FIND_PYTHON = (
    "command -v python3 python python3.11 2>/dev/null; "
    "ls -d /usr/lib/python3* /usr/local/lib/python3* /root/.pyenv "
    f"{bp.ROOT}/.venv 2>/dev/null; true"
)


@pytest.fixture(scope="module")
def package() -> Path:
    path = bp.existing_package()
    assert path is not None, (
        "no package built for this checkout: the host step of scripts/test builds it "
        "(python -m tests.support.built_package) before the lab boots"
    )
    return path


class Bare:
    def __init__(self, lab: Lab, client: Client, runtime: containerd.Containerd) -> None:
        names = ["m0", "n1", "n2"]
        self.master, *self.nodes = lab.many(names, setup=runtime.host_setup(), hide=NO_PYTHON)
        client.trust(self.master, *self.nodes)
        self.lab, self.client, self.runtime = lab, client, runtime

    @property
    def all(self) -> list[Host]:
        return [self.master, *self.nodes]


@pytest.fixture(scope="module")
def bare(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Bare]:
    root = tmp_path_factory.mktemp("bare")
    with (
        modules_as_before(),  # init.sh loads br_netfilter and more: gone again after
        containerd.Containerd() as runtime,
        lab_and_client(root) as (lab, client),
    ):
        yield Bare(lab, client, runtime)


@pytest.fixture(scope="module")
def ran(bare: Bare, package: Path) -> Any:
    args = init_args(
        bare.client, [bare.master.addr], [n.addr for n in bare.nodes], pkg=str(package)
    )
    result = bootstrap(*args, "--pod-cidr", POD_CIDR, "--lvscare-mode", "link", "--interval", "2")
    print(result.output)  # the preflight and end tables, with each host's time (pytest -s)
    for log in sorted((bare.client.home / ".lvscare-py" / "logs").glob("*.log")):
        begins = [line for line in log.read_text().splitlines() if "-- begins" in line]
        print(f"{log.stem}: where the time went\n  " + "\n  ".join(begins))
    return result


def calls(host: Host) -> list[dict[str, Any]]:
    return host.calls()


def test_the_hosts_have_no_python(bare: Bare) -> None:
    for host in bare.all:
        assert host.in_ns(FIND_PYTHON).strip() == "", host.name
        assert host.in_ns("python3 -c pass 2>&1 || echo missing").strip().endswith("missing")


def test_init_runs_through_on_hosts_without_python(bare: Bare, ran: Any) -> None:
    assert ran.exit_code == 0, ran.output
    assert "preflight" in ran.output.lower(), ran.output
    for host in bare.all:
        # Still none: nothing the package or the steps did brought one in.
        assert host.in_ns(FIND_PYTHON).strip() == "", host.name
        installed = host.path("/usr/local/bin/bootstrap").read_bytes()
        assert installed[:4] == b"\x7fELF"  # the one-file build, run by every step


def test_the_package_was_sent_checked_and_init_sh_ran(bare: Bare, ran: Any, package: Path) -> None:
    assert ran.exit_code == 0, ran.output
    digest = subprocess.run(
        ["sha256sum", str(package)], capture_output=True, text=True, check=True
    ).stdout.split()[0]
    for host in bare.all:
        assert host.read("/opt/lvscare-py/package/.lvscare-py-init-done").strip() == digest
        env = host.read("/etc/lvscare-py/runtime.env")
        assert "RUNTIME=containerd" in env
        assert host.in_ns("grep -c ip_vs /etc/modules-load.d/*.conf").strip() != "0"
    images = bare.runtime.images()
    assert any(i.endswith("lvscare-py:0.1.0") for i in images), images


def test_master0_ran_kubeadm_init_with_the_exact_config(bare: Bare, ran: Any) -> None:
    assert ran.exit_code == 0, ran.output
    inits = [c for c in calls(bare.master) if c["argv"][:2] == ["kubeadm", "init"]]
    assert len(inits) == 1
    argv = inits[0]["argv"]
    assert argv[2] == "--config"
    docs = list(yaml.safe_load_all(bare.master.read(inits[0]["file"])))
    by_kind = {d["kind"]: d for d in docs}
    cluster = by_kind["ClusterConfiguration"]
    assert cluster["controlPlaneEndpoint"] == "apiserver.cluster.local:6443"
    assert cluster["networking"]["podSubnet"] == POD_CIDR
    proxy = by_kind["KubeProxyConfiguration"]
    assert proxy["mode"] == "ipvs"
    assert proxy["ipvs"]["excludeCIDRs"] == [f"{VIP}/32"]
    kubelet = by_kind["KubeletConfiguration"]
    driver = bare.master.read("/etc/lvscare-py/runtime.env")
    assert f"CGROUP_DRIVER={kubelet['cgroupDriver']}" in driver


def test_the_cni_was_applied_on_master0_with_the_clusters_pod_network(bare: Bare, ran: Any) -> None:
    assert ran.exit_code == 0, ran.output
    applies = [
        c for c in calls(bare.master) if c["argv"][:1] == ["kubectl"] and "apply" in c["argv"]
    ]
    assert len(applies) == 1
    argv = applies[0]["argv"]
    assert argv[argv.index("--kubeconfig") + 1] == "/etc/kubernetes/admin.conf"
    docs = list(yaml.safe_load_all(bare.master.read(applies[0]["file"])))
    ds = next(d for d in docs if d["kind"] == "DaemonSet")
    env = {
        e["name"]: e.get("value") for e in ds["spec"]["template"]["spec"]["containers"][0]["env"]
    }
    assert env["CALICO_IPV4POOL_CIDR"] == POD_CIDR
    for node in bare.nodes:
        assert not [c for c in calls(node) if c["argv"][:1] == ["kubectl"]]


def test_nodes_have_the_hosts_line_the_manifest_and_the_ipvs_rules(bare: Bare, ran: Any) -> None:
    assert ran.exit_code == 0, ran.output
    for node in bare.nodes:
        hosts = node.read("/etc/hosts")
        assert f"{VIP} apiserver.cluster.local # lvscare-py" in hosts
        pod = yaml.safe_load(node.read("/etc/kubernetes/manifests/kube-lvscare.yaml"))
        container = pod["spec"]["containers"][0]
        assert container["image"] == "lvscare-py:0.1.0"
        args = container["args"]
        assert args[args.index("--mode") + 1] == "link"
        assert args[args.index("--rs") + 1] == f"{bare.master.ip}:6443"
        table = subprocess.run(
            ["ip", "netns", "exec", node.ns, "ipvsadm", "-Ln"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        assert f"{VIP}:6443" in table and f"{bare.master.ip}:6443" in table, table
        joins = [c for c in calls(node) if c["argv"][:2] == ["kubeadm", "join"]]
        assert len(joins) == 1
    master_hosts = bare.master.read("/etc/hosts")
    assert f"{bare.master.ip} apiserver.cluster.local # lvscare-py" in master_hosts


def test_the_cluster_file_records_the_settings_for_join(bare: Bare, ran: Any) -> None:
    assert ran.exit_code == 0, ran.output
    home = Path(os.environ.get("LVSCARE_PY_HOME") or bare.client.home / ".lvscare-py")
    record = json.loads((home / "cluster.json").read_text())
    assert record["pod_cidr"] == POD_CIDR
    assert record["lvscare_mode"] == "link"
    assert record["interval"] == "2"
