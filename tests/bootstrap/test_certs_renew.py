"""Certificates of a running master on the master itself (`bootstrap certs --years`, `certs
list`, `certs --renew`), and the pure decisions of `certs check` / `renew` over SSH. Real
openssl checks what was signed; the SSH side is proven in tests/ssh/test_certs.py."""

from __future__ import annotations

import base64
import datetime as dt
import json
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml
from cryptography import x509

from bootstrap.cluster import certs
from bootstrap.cluster.cluster_file import Cluster
from bootstrap.cluster.ssh import parse_target
from bootstrap.errors import BadInput
from bootstrap.host import kubeconfig, pki, renewal
from tests.bootstrap.test_cli_layers import bootstrap_in_fresh_python
from tests.support.host_tree import Tree, run

MASTER = ["--master", "192.168.0.2", "--version", "v1.30.4", "--node-name", "m0"]
NOW = dt.datetime(2030, 1, 1, tzinfo=dt.UTC)


def make(*extra: str) -> None:
    out = run("certs", *MASTER, *extra)
    assert out.exit_code == 0, out.output


@pytest.fixture(scope="module")
def made_10y(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A master's PKI and kubeconfigs for 10 years, made once (RSA keys take seconds)."""
    root = tmp_path_factory.mktemp("made")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("BOOTSTRAP_HOSTS_FILE", str(root / "hosts"))
        mp.setenv("BOOTSTRAP_KUBERNETES_DIR", str(root / "kubernetes"))
        mp.setenv("BOOTSTRAP_STATE_DIR", str(root / "state"))
        mp.setenv("HOME", str(root))
        make("--years", "10")
    return root / "kubernetes"


@pytest.fixture
def ten(tree: Tree, made_10y: Path) -> Tree:
    """`tree` holding a copy of that PKI, as `bootstrap certs --years 10` left it."""
    shutil.copytree(made_10y, tree.kube)
    return tree


def load(path: Path) -> x509.Certificate:
    return x509.load_pem_x509_certificate(path.read_bytes())


def years_left(cert: x509.Certificate) -> float:
    return (cert.not_valid_after_utc - dt.datetime.now(dt.UTC)).days / 365


def snapshot(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in root.rglob("*") if p.is_file()}


def ca_pair(tree: Tree, name: str = "ca") -> pki.CertAndKey:
    return pki.load_pair(
        (tree.pki / f"{name}.crt").read_bytes(), (tree.pki / f"{name}.key").read_bytes()
    )


def shorten(tree: Tree, leaf: str, ca: str, days_left: int) -> None:
    """The leaf re-signed (same key) as a one-year certificate with `days_left` to go."""
    path = tree.pki / f"{leaf}.crt"
    issued = dt.datetime.now(dt.UTC) - dt.timedelta(days=365 - days_left)
    path.write_bytes(pki.cert_pem(pki.reissue(load(path), ca_pair(tree, ca), 1, issued)))


def openssl_verify(ca: Path, cert: Path) -> None:
    result = subprocess.run(
        ["openssl", "verify", "-CAfile", str(ca), str(cert)], capture_output=True, text=True
    )
    assert result.returncode == 0 and result.stdout.strip().endswith(": OK"), result


def control_plane(tree: Tree) -> dict[str, str]:
    manifests = tree.kube / "manifests"
    manifests.mkdir(parents=True, exist_ok=True)
    texts = {n: f"kind: Pod  # {n}\n" for n in renewal.CONTROL_PLANE}
    for name, text in texts.items():
        (manifests / name).write_text(text)
    return texts


# ---------------------------------------------------------------- bootstrap certs --years


def test_a_ca_shorter_than_years_asks_is_named_and_kept(tree: Tree) -> None:
    make("--years", "1")
    cas = {n: (tree.pki / f"{n}.crt").read_bytes() for n in pki.CA_NAMES}
    out = run("certs", *MASTER, "--years", "99")
    assert out.exit_code == 0, out.output
    for name in pki.CA_NAMES:
        assert f"warning: {name}.crt expires on" in out.output
        assert (tree.pki / f"{name}.crt").read_bytes() == cas[name]
    assert "a CA is not re-issued without a new cluster" in out.output


def test_a_kubeconfig_client_certificate_shorter_than_years_asks_is_reissued(
    ten: Tree,
) -> None:
    tree = ten
    path = tree.kube / "admin.conf"
    found = kubeconfig.embedded(path.read_bytes())
    assert found is not None
    pair = pki.load_pair(found.cert, found.key)
    short = pki.reissue(pair.cert, ca_pair(tree), 1, dt.datetime.now(dt.UTC))
    doc = yaml.safe_load(path.read_bytes())
    doc["users"][0]["user"]["client-certificate-data"] = base64.b64encode(
        pki.cert_pem(short)
    ).decode()
    path.write_text(yaml.safe_dump(doc))
    out = run("certs", *MASTER, "--years", "10")
    assert out.exit_code == 0, out.output
    assert "rewritten kubeconfig for kubernetes-admin: expires on" in out.output
    again = kubeconfig.embedded(path.read_bytes())
    assert again is not None and years_left(x509.load_pem_x509_certificate(again.cert)) > 9.9


# ---------------------------------------------------------------- certs list


def test_list_reports_every_certificate_and_kubeconfig_with_its_end(ten: Tree) -> None:
    tree = ten
    out = run("certs", "list", "--json")
    assert out.exit_code == 0, out.output
    entries = renewal.parse_inventory(out.output)
    files = {Path(e.file).relative_to(tree.kube).as_posix(): e for e in entries}
    assert files["pki/ca.crt"].kind == "ca" and files["pki/etcd/ca.crt"].kind == "ca"
    assert files["pki/apiserver.crt"].kind == "leaf"
    assert files["pki/apiserver.crt"].subject == "kube-apiserver"
    assert files["admin.conf"].kind == "kubeconfig"
    assert files["super-admin.conf"].subject == "kubernetes-super-admin"
    assert len(entries) == 10 + 5
    end = load(tree.pki / "apiserver.crt").not_valid_after_utc
    assert files["pki/apiserver.crt"].not_after == f"{end:%Y-%m-%dT%H:%M:%SZ}"


def test_a_kubelet_conf_naming_its_rotated_file_is_listed_as_the_kubelets(ten: Tree) -> None:
    tree = ten
    pem = tree.root / "kubelet-client-current.pem"
    found = kubeconfig.embedded((tree.kube / "kubelet.conf").read_bytes())
    assert found is not None
    pem.write_bytes(found.cert + found.key)
    doc = yaml.safe_load((tree.kube / "kubelet.conf").read_bytes())
    doc["users"][0]["user"] = {"client-certificate": str(pem), "client-key": str(pem)}
    (tree.kube / "kubelet.conf").write_text(yaml.safe_dump(doc))
    entries = renewal.inventory(tree.kube)
    (kubelet,) = [e for e in entries if e.kind == "kubelet"]
    assert kubelet.file == f"{tree.kube / 'kubelet.conf'} ({pem})"
    assert kubelet.note == "the kubelet rotates it"
    plan = renewal.plan_renew(tree.kube, 5, dt.datetime.now(dt.UTC))
    assert "kubelet.conf" not in [w.path.name for w in plan.writes]


def test_list_with_options_before_it_is_refused(tree: Tree) -> None:
    out = run("certs", "--years", "5", "list")
    assert out.exit_code == 2
    assert "--years: give it after `certs list`, not before" in out.output


# ---------------------------------------------------------------- certs --renew


def test_renew_resigns_every_leaf_from_the_kept_cas_with_the_same_keys(ten: Tree) -> None:
    tree = ten
    shorten(tree, "apiserver", "ca", 20)
    shorten(tree, "etcd/peer", "etcd/ca", 20)
    keep = [f"{n}.{ext}" for n in pki.CA_NAMES for ext in ("crt", "key")]
    keep += ["sa.key", "sa.pub", "apiserver.key", "etcd/peer.key"]
    before = {n: (tree.pki / n).read_bytes() for n in keep}
    old_apiserver = (tree.pki / "apiserver.crt").read_bytes()
    (tree.home / ".kube").mkdir()
    (tree.home / ".kube" / "config").write_bytes((tree.kube / "admin.conf").read_bytes())
    texts = control_plane(tree)

    out = run("certs", "--renew", "--years", "5", "--restart-wait", "0", "--serve-timeout", "0")
    assert out.exit_code == 0, out.output

    assert {n: (tree.pki / n).read_bytes() for n in keep} == before
    for leaf, ca in [("apiserver", "ca"), ("etcd/peer", "etcd/ca"), ("front-proxy-client", "")]:
        ca = ca or "front-proxy-ca"
        openssl_verify(tree.pki / f"{ca}.crt", tree.pki / f"{leaf}.crt")
        assert 4.9 < years_left(load(tree.pki / f"{leaf}.crt")) <= 5
    new = load(tree.pki / "apiserver.crt")
    old = x509.load_pem_x509_certificate(old_apiserver)
    assert new.subject == old.subject and new.serial_number != old.serial_number
    assert pki.cert_names(new) == pki.cert_names(old)
    admin = kubeconfig.embedded((tree.kube / "admin.conf").read_bytes())
    assert admin is not None and years_left(x509.load_pem_x509_certificate(admin.cert)) > 4.9
    assert (tree.home / ".kube" / "config").read_bytes() == (tree.kube / "admin.conf").read_bytes()
    (backup,) = (tree.state / "backup").iterdir()
    assert backup.name.startswith("certs-") and backup.stat().st_mode & 0o777 == 0o700
    assert (backup / "pki" / "apiserver.crt").read_bytes() == old_apiserver
    assert (backup / "admin.conf").exists()
    assert {n: (tree.kube / "manifests" / n).read_text() for n in texts} == texts
    moved = [line for line in out.output.splitlines() if line.startswith("moved ")]
    assert len(moved) == 2 * len(texts)
    assert all("manifests-stopped" in line for line in moved)
    assert not (tree.state / renewal.STOPPED_DIR).exists()


def test_renew_dry_run_changes_nothing(ten: Tree) -> None:
    tree = ten
    control_plane(tree)
    before = snapshot(tree.root)
    out = run("certs", "--renew", "--years", "5", "--dry-run")
    assert out.exit_code == 0, out.output
    assert "[dry-run] would write" in out.output and "would move" in out.output
    assert snapshot(tree.root) == before


def test_renew_puts_back_manifests_an_interrupted_run_left_out(ten: Tree) -> None:
    tree = ten
    texts = control_plane(tree)
    stopped = tree.state / renewal.STOPPED_DIR
    stopped.mkdir(parents=True)
    (tree.kube / "manifests" / "etcd.yaml").rename(stopped / "etcd.yaml")
    out = run("certs", "--renew", "--years", "5", "--restart-wait", "0", "--serve-timeout", "0")
    assert out.exit_code == 0, out.output
    assert "left stopped by an interrupted renewal" in out.output
    assert (tree.kube / "manifests" / "etcd.yaml").read_text() == texts["etcd.yaml"]


@pytest.mark.parametrize(
    ("break_it", "expect"),
    [
        (lambda t: (t.pki / "front-proxy-client.key").unlink(), "front-proxy-client.crt: its key"),
        (lambda t: (t.pki / "etcd" / "ca.key").unlink(), "etcd/ca.crt exists but"),
    ],
)
def test_renew_that_cannot_finish_changes_nothing(ten: Tree, break_it: object, expect: str) -> None:
    tree = ten
    assert callable(break_it)
    break_it(tree)
    before = snapshot(tree.root)
    out = run("certs", "--renew", "--years", "5", "--restart-wait", "0", "--serve-timeout", "0")
    assert out.exit_code == 1
    assert expect in out.output
    assert snapshot(tree.root) == before


@pytest.mark.parametrize(
    ("flags", "expect"),
    [
        (["--years", "0"], "--years 0: must be between"),
        (["--restart-wait", "-1"], "--restart-wait -1: must be between"),
        (["--serve-timeout", "nan"], "--serve-timeout nan: must be between"),
        (["--master", "192.168.0.2"], "--renew keeps each certificate's names"),
    ],
)
def test_renew_bad_input_is_one_line_and_changes_nothing(
    ten: Tree, flags: list[str], expect: str
) -> None:
    tree = ten
    before = snapshot(tree.root)
    out = run("certs", "--renew", *flags)
    assert out.exit_code == 2
    assert out.output.startswith(f"bootstrap: {expect}")
    assert len(out.output.strip().splitlines()) == 1
    assert snapshot(tree.root) == before


def test_renew_on_a_host_loads_no_ssh_library(tmp_path: Path) -> None:
    kube = tmp_path / "kubernetes"
    out = bootstrap_in_fresh_python("certs", "--renew", "--dry-run", "--kubernetes-dir", str(kube))
    assert out[-1] == "paramiko loaded: False"


# ---------------------------------------------------------------- the pure side of check/renew


def entry(kind: str, end: dt.datetime | None, note: str = "") -> renewal.Entry:
    when = f"{end:%Y-%m-%dT%H:%M:%SZ}" if end else ""
    return renewal.Entry(f"/etc/kubernetes/pki/{kind}.crt", kind, kind, when, note)


@pytest.mark.parametrize(
    ("kind", "left", "verdict", "bad"),
    [
        ("leaf", dt.timedelta(days=400), "ok", False),
        ("leaf", dt.timedelta(days=29), "EXPIRES SOON", True),
        ("leaf", dt.timedelta(days=-2), "EXPIRED", True),
        ("ca", dt.timedelta(days=3650), "ok (CA)", False),
        ("ca", dt.timedelta(days=3), "EXPIRES SOON", True),
        ("kubelet", dt.timedelta(days=3), "ok (rotated)", False),
        ("kubelet", dt.timedelta(hours=-1), "EXPIRED", True),
    ],
)
def test_each_certificate_is_judged_by_the_time_it_has_left(
    kind: str, left: dt.timedelta, verdict: str, bad: bool
) -> None:
    row = certs.judge("m0", entry(kind, NOW + left, "rotated"), NOW, 30)
    assert (row.verdict, row.bad) == (verdict, bad)


def test_an_unreadable_certificate_is_flagged_with_its_reason() -> None:
    row = certs.judge("m0", entry("unreadable", None, "not a PEM certificate"), NOW, 30)
    assert row.bad and row.verdict == "UNREADABLE: not a PEM certificate"


@pytest.mark.parametrize(
    ("left", "text"),
    [
        (dt.timedelta(days=365 * 98 + 10, hours=3), "98y 10d"),
        (dt.timedelta(days=29, hours=23), "29d"),
        (dt.timedelta(hours=5, minutes=59), "5h"),
        (dt.timedelta(days=-3, hours=-1), "-3d"),
    ],
)
def test_remaining_time_reads_at_a_glance(left: dt.timedelta, text: str) -> None:
    assert certs.remaining(left) == text


def test_the_table_and_the_summary_name_the_short_leaf() -> None:
    listings = {
        "10.0.0.2": [entry("ca", NOW + dt.timedelta(days=3650)), entry("apiserver", NOW)],
    }
    rows = certs.rows_of(listings, NOW - dt.timedelta(days=10), 30)
    lines = certs.table(rows)
    assert lines[0].split() == ["HOST", "FILE", "EXPIRES", "(UTC)", "REMAINING", "VERDICT"]
    assert "/etc/kubernetes/pki/apiserver.crt" in lines[2] and "EXPIRES SOON" in lines[2]
    assert certs.summary(rows, 30) == (
        "1 certificates expire within 30 days or are unusable: "
        "10.0.0.2 /etc/kubernetes/pki/apiserver.crt (expires soon)"
    )
    assert certs.summary(rows[:1], 30) is None


def test_masters_are_the_clusters_and_a_stranger_is_refused() -> None:
    m = [parse_target(a, "--master") for a in ("10.0.0.2", "10.0.0.3", "10.0.0.4")]
    cluster = Cluster(m, [], "root", None, "v1.30.4", "10.103.97.2", "kube.tar.gz", None)
    assert certs.choose_masters(cluster, []) == m
    assert certs.choose_masters(cluster, [m[2], m[0]]) == [m[0], m[2]]
    with pytest.raises(BadInput, match=r"--master 10.0.0.9: not a master of this cluster"):
        certs.choose_masters(cluster, [parse_target("10.0.0.9", "--master")])


def test_warn_days_must_not_be_negative() -> None:
    assert certs.parse_warn_days(0) == 0
    with pytest.raises(BadInput, match=r"--warn-days -1: must be between 0 and"):
        certs.parse_warn_days(-1)


def test_each_master_runs_the_single_host_renewal() -> None:
    assert certs.renew_args(10, 20.0, 300.0, False) == [
        "certs",
        "--renew",
        "--years",
        "10",
        "--restart-wait",
        "20",
        "--serve-timeout",
        "300",
    ]
    assert certs.renew_args(1, 0.5, 0, True)[-1] == "--dry-run"


def test_the_inventory_survives_the_trip_as_json(ten: Tree) -> None:
    tree = ten
    entries = renewal.inventory(tree.kube)
    noisy = "a warning line\n" + renewal.inventory_json(tree.kube) + "\n"
    assert renewal.parse_inventory(noisy) == entries
    with pytest.raises(ValueError, match="no JSON line"):
        renewal.parse_inventory("bootstrap: no such command\n")
    assert json.loads(renewal.inventory_json(tree.kube))["certs"][0]["kind"] == "leaf"
