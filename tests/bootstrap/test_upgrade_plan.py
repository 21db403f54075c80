"""`bootstrap upgrade` decided without hosts: the version steps kubeadm takes, the order and
work host by host, what a re-run has left, and the certificates' expiry compared."""

from __future__ import annotations

import datetime as dt
import re
import subprocess
from pathlib import Path

import pytest
from click.testing import CliRunner

from bootstrap.cli import cli
from bootstrap.cluster import upgrade
from bootstrap.cluster.cluster_file import Cluster, ClusterFile, HostRecord, UpgradeRecord
from bootstrap.cluster.ssh import parse_target
from bootstrap.cluster.upgrade_flow import manifest_version
from bootstrap.errors import BadInput
from bootstrap.inputs import parse_version
from tests.support import ssh_package

V130, V131, V132 = parse_version("v1.30.4"), parse_version("v1.31.0"), parse_version("v1.32.1")


def cluster(done: list[str] | None = None) -> Cluster:
    m0, m1 = parse_target("10.0.0.2", "--master"), parse_target("10.0.0.3", "--master")
    n1, n2 = parse_target("10.0.0.4", "--node"), parse_target("10.0.0.5", "--node")
    c = Cluster([m0, m1], [n1, n2], "root", None, "v1.30.4", "10.103.97.2", "kube.tar.gz", None)
    for t, role, name in ((m0, "master", "m0"), (m1, "master", "m1"), (n1, "node", "n1")):
        c.hosts[t] = HostRecord(role, name, "ok")
    if done is not None:
        c.upgrade = UpgradeRecord("v1.30.4", "v1.31.0", "new.tar.gz", None, "/snap.db", done)
    return c


def test_one_minor_up_and_a_patch_up_are_steps_kubeadm_takes() -> None:
    upgrade.check_step(V130, V131)
    upgrade.check_step(V130, parse_version("v1.30.9"))


@pytest.mark.parametrize(
    ("target", "words"),
    [
        ("v1.30.2", "a downgrade"),
        ("v1.29.9", "a downgrade"),
        ("v1.32.1", "skips a minor version"),
        ("v1.30.4", "already"),
    ],
)
def test_a_downgrade_a_skipped_minor_or_the_same_version_is_bad_input(
    target: str, words: str
) -> None:
    with pytest.raises(BadInput) as e:
        upgrade.check_step(V130, parse_version(target))
    assert str(e.value).startswith(f"--version {target}: ")
    assert words in str(e.value) and "the cluster file's version" in str(e.value)


def test_an_upgrade_under_way_is_continued_only_with_its_own_version_and_package() -> None:
    record = UpgradeRecord("v1.30.4", "v1.31.0", "a.tar.gz", "a" * 64, None, ["10.0.0.2"])
    upgrade.check_resume(record, V131, "a" * 64)
    with pytest.raises(BadInput, match=re.escape("an upgrade to v1.31.0 is under way")):
        upgrade.check_resume(record, parse_version("v1.31.1"), "a" * 64)
    with pytest.raises(BadInput, match="not the package the upgrade under way started with"):
        upgrade.check_resume(record, V131, "b" * 64)


def test_the_plan_goes_master0_then_masters_then_nodes_each_in_kubeadms_order() -> None:
    plans = upgrade.plan(cluster(), V131, V130, 120, 60)
    assert [(str(p.target), p.kind) for p in plans] == [
        ("10.0.0.2", "master0"),
        ("10.0.0.3", "master"),
        ("10.0.0.4", "node"),
        ("10.0.0.5", "node"),
    ]
    m0, m1, n1, n2 = (p.actions for p in plans)
    assert m0[2:6] == (
        "etcd snapshot (the package's etcdctl, else the etcd container's)",
        "kubeadm upgrade plan v1.31.0",
        "kubeadm upgrade apply v1.31.0 --yes --certificate-renewal=false",
        f"{upgrade.KEPT_CONFIG}: kubeadm config migrate, v1beta3 -> v1beta4",
    )
    assert m1[2] == "kubeadm upgrade node --certificate-renewal=false"
    assert n1[2:7] == (
        "kubectl --kubeconfig /etc/kubernetes/admin.conf drain n1 --ignore-daemonsets "
        "--delete-emptydir-data --timeout=120s (on master0)",
        "kubeadm upgrade node --certificate-renewal=false",
        "systemctl daemon-reload && systemctl restart kubelet",
        "wait until node n1 is Ready (at most 60 s) (on master0)",
        "kubectl --kubeconfig /etc/kubernetes/admin.conf uncordon n1 (on master0)",
    )
    assert n1[-1] == n2[-1] == "no certificate shorter than before"
    assert "drain 10.0.0.5" in n2[2]  # no node name known yet: its address


def test_within_one_minor_or_past_1_31_the_kubeadm_configuration_stays() -> None:
    assert not upgrade.config_moves(V130, parse_version("v1.30.9"))
    assert not upgrade.config_moves(V131, parse_version("v1.32.0"))
    plans = upgrade.plan(cluster(), parse_version("v1.30.9"), V130, 120, 60)
    assert not [a for a in plans[0].actions if "migrate" in a]


def test_a_rerun_has_left_the_hosts_not_done_and_plans_nothing_on_those_done() -> None:
    c = cluster(done=["10.0.0.2", "10.0.0.3"])
    assert [str(t) for t in upgrade.left(c, c.upgrade)] == ["10.0.0.4", "10.0.0.5"]
    plans = upgrade.plan(c, V131, V130, 120, 60)
    assert [p.done for p in plans] == [True, True, False, False]
    assert plans[0].actions == plans[1].actions == ()
    text = "\n".join(upgrade.describe(plans, V130, V131))
    assert "upgraded by an earlier run: nothing done on it" in text


def test_a_certificate_renewed_for_a_year_is_found_shorter(tmp_path: Path) -> None:
    def enddate(days: int) -> str:
        subprocess.run(
            [
                *("openssl", "req", "-x509", "-newkey", "ec", "-nodes", "-days", str(days)),
                *("-pkeyopt", "ec_paramgen_curve:prime256v1"),
                *("-subj", "/CN=t", "-keyout", str(tmp_path / "k"), "-out", str(tmp_path / "c")),
            ],
            check=True,
            capture_output=True,
        )
        out = subprocess.run(
            ["openssl", "x509", "-enddate", "-noout", "-in", str(tmp_path / "c")],
            check=True,
            capture_output=True,
            text=True,
        )
        return out.stdout.strip()

    long_, short = enddate(36135), enddate(365)
    before = upgrade.parse_expiries(f"/p/apiserver.crt\t{long_}\n/p/ca.crt\t{long_}\nnoise\n")
    after = upgrade.parse_expiries(f"/p/apiserver.crt\t{short}\n/p/ca.crt\t{long_}\n")
    assert before["/p/ca.crt"] > dt.datetime.now(dt.UTC) + dt.timedelta(days=365 * 98)
    assert upgrade.shortened(before, before) == []
    (line,) = upgrade.shortened(before, after)
    assert line.startswith("/p/apiserver.crt ")


def test_the_packages_version_is_read_from_its_manifest(tmp_path: Path) -> None:
    with_manifest = ssh_package.build(tmp_path / "a.tar.gz", version="v1.31.0", manifest=True)
    assert manifest_version(with_manifest) == "v1.31.0"
    assert manifest_version(ssh_package.build(tmp_path / "b.tar.gz")) is None
    upgrade.check_package_version("v1.31.0", V131, "its manifest.json")
    with pytest.raises(
        BadInput, match=re.escape("its manifest.json says v1.31.0, not --version v1.32.1")
    ):
        upgrade.check_package_version("v1.31.0", V132, "its manifest.json")


def test_a_v1beta3_template_kept_for_join_is_pointed_out_past_1_31() -> None:
    assert upgrade.template_note("apiVersion: kubeadm.k8s.io/v1beta3\n", V131)
    assert upgrade.template_note("apiVersion: kubeadm.k8s.io/v1beta4\n", V131) is None
    assert upgrade.template_note("apiVersion: kubeadm.k8s.io/v1beta3\n", V130) is None


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> ClusterFile:
    monkeypatch.setenv("LVSCARE_PY_HOME", str(tmp_path / "home"))
    cfile = ClusterFile()
    cfile.save(cluster())
    return cfile


def test_dry_run_prints_the_plan_host_by_host_and_changes_nothing(
    home: ClusterFile, tmp_path: Path
) -> None:
    pkg = ssh_package.build(tmp_path / "new.tar.gz", version="v1.31.0", manifest=True)
    before = home.path.read_bytes()
    args = ["upgrade", "--version", "v1.31.0", "--pkg-url", str(pkg), "--dry-run"]
    result = CliRunner().invoke(cli, args, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert "upgrade v1.30.4 -> v1.31.0 (v1.30.4: the cluster file's version)" in result.output
    assert "1. 10.0.0.2 (master0, node m0)" in result.output
    assert "4. 10.0.0.5 (node, node 10.0.0.5)" in result.output
    assert "kubeadm.k8s.io/v1beta3 -> kubeadm.k8s.io/v1beta4" in result.output
    assert "manifest.json says v1.31.0" in result.output
    assert home.path.read_bytes() == before


@pytest.mark.parametrize(
    ("version", "pkg_version", "message"),
    [
        ("v1.30.1", "v1.30.1", "--version v1.30.1: a downgrade"),
        ("v1.32.0", "v1.32.0", "--version v1.32.0: skips a minor version"),
        ("v1.31.0", "v1.31.1", "--pkg-url: its manifest.json says v1.31.1, not --version v1.31.0"),
    ],
)
def test_bad_versions_are_one_line_exit_2_and_the_cluster_file_unchanged(
    home: ClusterFile, tmp_path: Path, version: str, pkg_version: str, message: str
) -> None:
    pkg = ssh_package.build(tmp_path / "new.tar.gz", version=pkg_version, manifest=True)
    before = home.path.read_bytes()
    args = ["upgrade", "--version", version, "--pkg-url", str(pkg), "--dry-run"]
    result = CliRunner().invoke(cli, args, catch_exceptions=False)
    assert result.exit_code == 2
    assert result.output.startswith(f"bootstrap: {message}")
    assert result.output.count("\n") == 1
    assert home.path.read_bytes() == before


def test_a_certificate_with_under_two_years_left_is_too_short_only_for_a_long_lived_pki() -> None:
    now = dt.datetime(2030, 1, 1, tzinfo=dt.UTC)
    found = {"/p/a.crt": now + dt.timedelta(days=365), "/p/b.crt": now + dt.timedelta(days=9000)}
    assert upgrade.too_short(found, now, 99) == ["/p/a.crt ends 2031-01-01"]
    assert upgrade.too_short(found, now, 1) == []
