"""`join --dry-run` and cluster-wide `clean --dry-run`: the plan host by host, from the cluster
file or (made elsewhere) from the flags; no host is connected to and no file changes. The
addresses are documentation ones (192.0.2.0/24): nothing could answer there."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from bootstrap.cli import cli
from bootstrap.cluster.cluster_file import Cluster, ClusterFile, HostRecord, default_path
from bootstrap.cluster.ssh import parse_target

M0, M1, N1, N2 = "192.0.2.10", "192.0.2.11", "192.0.2.20", "192.0.2.21"


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("LVSCARE_PY_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("HOME", str(tmp_path))
    return tmp_path / "home"


def run(*args: str) -> Result:
    return CliRunner().invoke(cli, list(args), catch_exceptions=False)


def made_by_init() -> bytes:
    """A cluster file as init leaves it: masters m0, m1 and node n1, all ok."""
    t = {a: parse_target(a, "test") for a in (M0, M1, N1)}
    cluster = Cluster(
        [t[M0], t[M1]], [t[N1]], "root", None, "v1.30.4", "10.103.97.2", "/p/kube.tar.gz", "ab"
    )
    for addr, role, name in ((M0, "master", "m0"), (M1, "master", "m1"), (N1, "node", "n1")):
        cluster.hosts[t[addr]] = HostRecord(role, name, "ok")
    ClusterFile().save(cluster)
    return default_path().read_bytes()


def test_join_dry_run_prints_each_hosts_commands_and_changes_nothing(home: Path) -> None:
    before = made_by_init()
    result = run("join", "--master", "192.0.2.12", "--node", N2, "--dry-run")
    assert result.exit_code == 0, result.output
    out = result.output
    assert "no host is connected to" in out
    assert f"{M0:<22} master0 kubeadm token create --print-join-command" in out
    assert "bootstrap master --join --master 192.0.2.10 --master 192.0.2.11 --master " in out
    assert (
        "bootstrap node --master 192.0.2.10 --master 192.0.2.11 --master 192.0.2.12 "
        "--vip 10.103.97.2 --version v1.30.4 --join-config '<0600 file>'"
    ) in out
    assert f"{N1:<22} node    its lvscare manifest rewritten" in out  # learns the new master
    assert default_path().read_bytes() == before
    assert not (home / "logs").exists()


def test_join_dry_run_without_a_cluster_file_asks_master0_for_the_version_and_writes_no_file(
    home: Path,
) -> None:
    result = run("join", "--master", M0, "--node", N1, "--pkg-url", "/p/kube.tar.gz", "--dry-run")
    assert result.exit_code == 0, result.output
    assert "kubeadm version -o short (the cluster's version)" in result.output
    assert "kube-sealyun-lvscare.yaml is there: moved to /var/lib/lvscare-py/adopted/" in (
        result.output
    )
    assert "--version '<as master0'\"'\"'s kubeadm says>'" in result.output
    assert not default_path().exists()


def test_clean_dry_run_names_the_node_deletion_and_the_nodes_told_of_fewer_masters(
    home: Path,
) -> None:
    before = made_by_init()
    result = run("clean", "--master", M1, "--dry-run")
    assert result.exit_code == 0, result.output
    assert f"{M0:<22} master  kubectl delete node m1" in result.output
    assert f"{M1:<22} master  bootstrap clean" in result.output
    assert f"{N1:<22} node    its lvscare manifest rewritten with the masters ['{M0}']" in (
        result.output
    )
    assert default_path().read_bytes() == before


def test_clean_dry_run_of_every_master_without_all_is_bad_input(home: Path) -> None:
    made_by_init()
    result = run("clean", "--master", M0, "--master", M1, "--dry-run")
    assert result.exit_code == 2
    assert result.output.strip().endswith("use --all to clean the whole cluster")


def test_clean_dry_run_without_a_cluster_file_runs_no_kubectl(home: Path) -> None:
    result = run("clean", "--master", M0, "--node", N1, "--dry-run")
    assert result.exit_code == 0, result.output
    assert "kubectl delete node" not in result.output.replace("no `kubectl delete node` is run", "")
    assert "if lvscare-py's bootstrap is there" in result.output
    assert not default_path().exists()
