"""The commands end to end on a temp tree, kubeadm a recording stand-in, IPVS a recorder."""

from __future__ import annotations

import json
import os
import stat
import sys
from pathlib import Path

import pytest
import yaml

from bootstrap.errors import StepFailed
from bootstrap.host import kubeadm as kubeadm_mod
from bootstrap.host import lvscare_rules
from bootstrap.host.hosts import managed_line
from bootstrap.host.kubeadm_config import ClusterSpec, default_template, render
from bootstrap.inputs import parse_version
from bootstrap.join import Join
from tests.support.host_tree import ODD_HOSTS, Rules, Tree, run
from tests.support.kubeadm import CA_HASH, CERT_KEY, INIT_OUTPUT, TOKEN, Kubeadm

FIXTURES = Path(__file__).parent / "fixtures"
MASTERS = ["--master", "192.168.0.2", "--master", "192.168.0.3", "--master", "192.168.0.4"]
MASTER0 = ["master0", *MASTERS, "--vip", "10.103.97.2", "--version", "v1.30.4", "--node-name", "m0"]
JOIN = ["--token", TOKEN, "--discovery-token-ca-cert-hash", CA_HASH]
MASTER = [
    "master",
    "--join",
    *MASTERS,
    "--version",
    "v1.30.4",
    "--node-name",
    "m1",
    "--ip",
    "192.168.0.3",
    *JOIN,
    "--certificate-key",
    CERT_KEY,
]
NODE = ["node", *MASTERS, "--vip", "10.103.97.2", *JOIN, "--node-name", "n1"]


def snapshot(root: Path) -> dict[str, tuple[bytes, int]]:
    out = {}
    for p in sorted(root.rglob("*")):
        if p.is_file():
            out[str(p.relative_to(root))] = (p.read_bytes(), stat.S_IMODE(p.stat().st_mode))
    return out


def hosts_with(ip: str) -> bytes:
    return ODD_HOSTS + b"\n" + managed_line(ip)


def copy_cluster_cas(tree: Tree, tmp_path: Path) -> None:
    """What issue 5 does over SFTP: master0's shared CA files onto the joining master."""
    out = run(*MASTER0)
    assert out.exit_code == 0, out.output
    from bootstrap.host.pki import SHARED_FILES

    shared = {name: (tree.pki / name).read_bytes() for name in SHARED_FILES}
    for path in sorted(tree.root.rglob("*"), reverse=True):
        if path.is_file() and path != tree.hosts:
            path.unlink()
    tree.hosts.write_bytes(ODD_HOSTS)
    for name, data in shared.items():
        (tree.pki / name).parent.mkdir(parents=True, exist_ok=True)
        (tree.pki / name).write_bytes(data)


# ---------------------------------------------------------------- master0


def test_master0_runs_kubeadm_init_with_the_rendered_config_and_prints_join_commands(
    tree: Tree, kubeadm: Kubeadm
) -> None:
    out = run(*MASTER0)
    assert out.exit_code == 0, out.output
    config = tree.state / "kubeadm.yaml"
    calls = [c for c in kubeadm.read() if c["argv"][1] != "version"]
    assert [c["argv"] for c in calls] == [
        ["kubeadm", "init", "--config", str(config), "--upload-certs"]
    ]
    spec = ClusterSpec(
        version=parse_version("v1.30.4"),
        masters=("192.168.0.2", "192.168.0.3", "192.168.0.4"),
        node_name="m0",
    )
    assert calls[0]["config"] == render(default_template(spec.version), spec)
    assert calls[0]["hosts"].encode() == hosts_with("192.168.0.2")  # set before init
    assert tree.hosts.read_bytes() == hosts_with("192.168.0.2")
    assert stat.S_IMODE(tree.hosts.stat().st_mode) == 0o640
    kube_config = tree.home / ".kube" / "config"
    assert kube_config.read_bytes() == (tree.kube / "admin.conf").read_bytes()
    assert stat.S_IMODE(kube_config.stat().st_mode) == 0o600
    assert (
        f"--token {TOKEN}" in out.stdout
        and f"--discovery-token-ca-cert-hash {CA_HASH}" in out.stdout
        and f"--certificate-key {CERT_KEY}" in out.stdout
        and "bootstrap master --join" in out.stdout
        and "bootstrap node" in out.stdout
    )


def test_master0_again_runs_no_second_init_changes_nothing_and_reprints_the_commands(
    tree: Tree, kubeadm: Kubeadm
) -> None:
    first = run(*MASTER0)
    before = snapshot(tree.root)
    again = run(*MASTER0)
    assert again.exit_code == 0, again.output
    assert [a[1] for a in kubeadm.argvs()] == ["init"]
    assert snapshot(tree.root) == before
    assert "kubeadm init: done earlier, skipped" in again.stdout
    tail = first.stdout[first.stdout.index("To add a master") :]
    assert again.stdout.endswith(tail)


def test_master0_after_a_failed_init_continues_on_the_next_run(
    tree: Tree, kubeadm: Kubeadm, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("KUBEADM_FAIL", "init")
    failed = run(*MASTER0)
    assert failed.exit_code == 1
    assert failed.stderr.strip().splitlines() == [
        f"bootstrap: kubeadm init --config {tree.state / 'kubeadm.yaml'} --upload-certs "
        "failed with exit code 1"
    ]
    ca = (tree.pki / "ca.crt").read_bytes()
    monkeypatch.delenv("KUBEADM_FAIL")
    again = run(*MASTER0)
    assert again.exit_code == 0, again.output
    assert [a[1] for a in kubeadm.argvs()] == ["init", "init"]
    assert (tree.pki / "ca.crt").read_bytes() == ca  # same CA, not a new one
    assert "Using existing" not in again.stderr


def test_master0_refuses_to_run_init_over_a_half_finished_one(tree: Tree, kubeadm: Kubeadm) -> None:
    (tree.kube / "manifests").mkdir(parents=True)
    (tree.kube / "manifests" / "kube-apiserver.yaml").write_text("left by kubeadm\n")
    out = run(*MASTER0)
    assert out.exit_code == 1
    assert "an earlier kubeadm init stopped half-way" in out.stderr
    assert "bootstrap clean" in out.stderr
    assert kubeadm.argvs() == []
    assert tree.hosts.read_bytes() == ODD_HOSTS  # stopped before changing anything


def test_master0_with_a_sealos_template_gives_kubeadm_that_yaml_and_certs_its_names(
    tree: Tree, kubeadm: Kubeadm
) -> None:
    template = FIXTURES / "sealos-readme-style.yaml.tmpl"
    out = run(*MASTER0, "--kubeadm-config", str(template))
    assert out.exit_code == 0, out.output
    given = next(c for c in kubeadm.read() if c["argv"][1] == "init")["config"]
    docs = list(yaml.safe_load_all(given))
    assert docs[0]["apiServer"]["certSANs"] == [
        "k8s.example.com",
        "127.0.0.1",
        "apiserver.cluster.local",
        "192.168.0.2",
        "192.168.0.3",
        "192.168.0.4",
        "10.103.97.2",
    ]
    from cryptography import x509

    from bootstrap.host.pki import cert_names

    cert = x509.load_pem_x509_certificate((tree.pki / "apiserver.crt").read_bytes())
    assert "k8s.example.com" in cert_names(cert)[0]
    assert "warning: the configuration says kubeadm.k8s.io/v1beta1" in out.stdout
    assert f"--kubeadm-config {template}" in out.stdout


def test_master0_without_version_asks_the_kubeadm_on_path(
    tree: Tree, kubeadm: Kubeadm, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("KUBEADM_VERSION", "v1.31.1")
    out = run("master0", *MASTERS, "--node-name", "m0")
    assert out.exit_code == 0, out.output
    config = next(c for c in kubeadm.read() if c["argv"][1] == "init")["config"]
    assert "kubeadm.k8s.io/v1beta4" in config and "kubernetesVersion: v1.31.1" in config


def test_join_info_is_parsed_from_real_shaped_output() -> None:
    info = kubeadm_mod.parse_init_output(INIT_OUTPUT)
    assert info == Join(TOKEN, CA_HASH, CERT_KEY, "apiserver.cluster.local:6443")
    with pytest.raises(StepFailed, match="no --token"):
        kubeadm_mod.parse_init_output(
            "kubeadm join x:6443 --discovery-token-ca-cert-hash " + CA_HASH
        )


# ---------------------------------------------------------------- master --join


def test_master_join_goes_through_master0_then_points_at_itself(
    tree: Tree, kubeadm: Kubeadm, tmp_path: Path
) -> None:
    copy_cluster_cas(tree, tmp_path)
    kubeadm.log.unlink()
    out = run(*MASTER)
    assert out.exit_code == 0, out.output
    calls = kubeadm.read()
    join_config = tree.state / "kubeadm-join.yaml"
    assert [c["argv"] for c in calls] == [["kubeadm", "join", "--config", str(join_config)]]
    assert yaml.safe_load(calls[0]["config"]) == {
        "apiVersion": "kubeadm.k8s.io/v1beta3",
        "kind": "JoinConfiguration",
        "discovery": {
            "bootstrapToken": {
                "apiServerEndpoint": "apiserver.cluster.local:6443",
                "token": TOKEN,
                "caCertHashes": [CA_HASH],
            }
        },
        "nodeRegistration": {"name": "m1"},
        "controlPlane": {
            "localAPIEndpoint": {"advertiseAddress": "192.168.0.3", "bindPort": 6443},
            "certificateKey": CERT_KEY,
        },
    }
    assert calls[0]["config_mode"] == 0o600
    assert not join_config.exists()  # the token is gone with kubeadm
    assert calls[0]["hosts"].encode() == hosts_with("192.168.0.2")  # master0 during the join
    assert tree.hosts.read_bytes() == hosts_with("192.168.0.3")  # itself afterwards
    assert (tree.pki / "apiserver.crt").exists()  # made before kubeadm: kubeadm issues none

    again = run(*MASTER)
    assert again.exit_code == 0, again.output
    assert len(kubeadm.read()) == 1
    assert tree.hosts.read_bytes() == hosts_with("192.168.0.3")


def test_master_without_join_flag_is_bad_input(tree: Tree, kubeadm: Kubeadm) -> None:
    out = run("master", *MASTERS, "--version", "v1.30.4", *JOIN)
    assert out.exit_code == 2
    assert out.stderr.strip() == (
        "bootstrap: bootstrap master needs --join (the first master is `bootstrap master0`)"
    )


# ---------------------------------------------------------------- node


def test_node_makes_ipvs_rules_before_join_and_the_static_pod_after(
    tree: Tree, kubeadm: Kubeadm, rules: Rules, monkeypatch: pytest.MonkeyPatch
) -> None:
    seen: list[tuple[int, bool]] = []
    recorder = lvscare_rules.create_rules

    def create(vs: str, rs: list[str], daemon: lvscare_rules.Daemon) -> None:
        seen.append((len(kubeadm.argvs()), (tree.kube / "manifests").exists()))
        recorder(vs, rs, daemon)

    monkeypatch.setattr(lvscare_rules, "create_rules", create)
    out = run(*NODE)
    assert out.exit_code == 0, out.output
    assert rules.calls == [
        ("create", "10.103.97.2:6443", ["192.168.0.2:6443", "192.168.0.3:6443", "192.168.0.4:6443"])
    ]
    assert seen == [(0, False)]  # no kubeadm call yet, no manifest yet
    calls = [c for c in kubeadm.read() if c["argv"][1] != "version"]  # no --version given
    join_config = tree.state / "kubeadm-join.yaml"
    assert [c["argv"] for c in calls] == [["kubeadm", "join", "--config", str(join_config)]]
    assert yaml.safe_load(calls[0]["config"]) == {
        "apiVersion": "kubeadm.k8s.io/v1beta3",
        "kind": "JoinConfiguration",
        "discovery": {
            "bootstrapToken": {
                "apiServerEndpoint": "10.103.97.2:6443",
                "token": TOKEN,
                "caCertHashes": [CA_HASH],
            }
        },
        "nodeRegistration": {"name": "n1"},
    }
    assert calls[0]["config_mode"] == 0o600
    assert not join_config.exists()
    assert calls[0]["hosts"].encode() == hosts_with("10.103.97.2")
    manifest = tree.kube / "manifests" / "kube-lvscare.yaml"
    pod = yaml.safe_load(manifest.read_text())
    assert pod["kind"] == "Pod" and pod["spec"]["hostNetwork"] is True
    command = " ".join(
        pod["spec"]["containers"][0]["command"] + pod["spec"]["containers"][0].get("args", [])
    )
    assert "10.103.97.2:6443" in command and "192.168.0.4:6443" in command


def test_node_again_keeps_the_rules_and_does_not_join_twice(
    tree: Tree, kubeadm: Kubeadm, rules: Rules
) -> None:
    assert run(*NODE).exit_code == 0
    before = snapshot(tree.root)
    again = run(*NODE)
    assert again.exit_code == 0, again.output
    assert len(kubeadm.argvs()) == 1
    assert [c[0] for c in rules.calls] == ["create", "create"]  # lvscare adopts its own table
    assert snapshot(tree.root) == before


def test_node_whose_ipvs_rules_fail_does_not_join(
    tree: Tree, kubeadm: Kubeadm, rules: Rules
) -> None:
    rules.fail = StepFailed("IPVS rules for 10.103.97.2:6443: no ip_vs module")
    out = run(*NODE)
    assert out.exit_code == 1
    assert out.stderr.strip() == "bootstrap: IPVS rules for 10.103.97.2:6443: no ip_vs module"
    assert kubeadm.argvs() == []


# ---------------------------------------------------------------- clean


def test_clean_after_node_undoes_everything_and_twice_is_fine(
    tree: Tree, kubeadm: Kubeadm, rules: Rules
) -> None:
    assert run(*NODE).exit_code == 0
    out = run("clean")
    assert out.exit_code == 0, out.output
    assert kubeadm.argvs()[-1] == ["kubeadm", "reset", "-f"]
    assert rules.calls[-1] == ("remove", "10.103.97.2:6443")
    assert tree.hosts.read_bytes() == ODD_HOSTS
    assert stat.S_IMODE(tree.hosts.stat().st_mode) == 0o640
    leftover = [p for p in tree.root.rglob("*") if p.is_file() and p != tree.hosts]
    assert leftover == []
    again = run("clean")
    assert again.exit_code == 0, again.output
    assert tree.hosts.read_bytes() == ODD_HOSTS


def test_clean_after_master0_removes_our_files_but_keeps_one_changed_since(
    tree: Tree, kubeadm: Kubeadm, rules: Rules
) -> None:
    assert run(*MASTER0).exit_code == 0
    kube_config = tree.home / ".kube" / "config"
    kube_config.write_text("the user's own now\n")
    out = run("clean")
    assert out.exit_code == 0, out.output
    assert kube_config.read_text() == "the user's own now\n"
    assert f"kept {kube_config}: changed since bootstrap wrote it" in out.stdout
    assert not any(tree.pki.rglob("*.key"))
    assert not (tree.kube / "admin.conf").exists()
    assert tree.hosts.read_bytes() == ODD_HOSTS
    assert rules.calls == []  # a master had no IPVS rules to remove


def test_clean_on_a_host_that_never_joined_and_has_no_kubeadm(
    tree: Tree, rules: Rules, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PATH", os.path.dirname(sys.executable))
    out = run("clean")
    assert out.exit_code == 0, out.output
    assert "kubeadm is not on PATH" in out.stdout
    assert tree.hosts.read_bytes() == ODD_HOSTS
    assert rules.calls == []


# ---------------------------------------------------------------- --dry-run


@pytest.mark.parametrize(
    ("args", "needles"),
    [
        (
            MASTER0,
            [
                "[dry-run] would run: kubeadm init --config",
                "would change",
                "would write",
                "ca.key (1",
                "would copy",
            ],
        ),
        (
            NODE,
            [
                "kubeadm-join.yaml (",  # a secret: its size, never its text
                "would run: kubeadm join --config",
                "would set IPVS virtual server",
                "+10.103.97.2 apiserver.cluster.local",
                "would write",
                "kube-lvscare.yaml",
            ],
        ),
        (["certs", *MASTERS, "--version", "v1.30.4", "--node-name", "m0"], ["would write"]),
        (["clean"], ["would run: kubeadm reset -f"]),
    ],
)
def test_dry_run_prints_the_changes_and_leaves_the_tree_byte_identical(
    tree: Tree, kubeadm: Kubeadm, rules: Rules, args: list[str], needles: list[str]
) -> None:
    before = snapshot(tree.root)
    out = run(*args, "--dry-run")
    assert out.exit_code == 0, out.output
    assert snapshot(tree.root) == before
    assert [a for a in kubeadm.argvs()] == []
    assert rules.calls == []
    for needle in needles:
        assert needle.lower() in out.stdout.lower(), (needle, out.stdout)


def test_dry_run_after_a_real_run_shows_nothing_left_to_do_for_files(
    tree: Tree, kubeadm: Kubeadm, rules: Rules
) -> None:
    assert run(*NODE).exit_code == 0
    before = snapshot(tree.root)
    out = run(*NODE, "--dry-run")
    assert out.exit_code == 0
    assert snapshot(tree.root) == before
    assert "would write" not in out.stdout and "would change" not in out.stdout


def test_dry_run_of_master_join_changes_nothing(
    tree: Tree, kubeadm: Kubeadm, tmp_path: Path
) -> None:
    copy_cluster_cas(tree, tmp_path)
    kubeadm.log.unlink()
    before = snapshot(tree.root)
    out = run(*MASTER, "--dry-run")
    assert out.exit_code == 0, out.output
    assert snapshot(tree.root) == before
    assert kubeadm.read() == []
    assert "would run: kubeadm join --config" in out.stdout
    assert TOKEN not in out.stdout and CERT_KEY not in out.stdout


# ---------------------------------------------------------------- bad input


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (
            ["master0", "--master", "192.168.0.300", "--version", "v1.30.4"],
            "--master '192.168.0.300': not an IP address",
        ),
        (
            ["master0", *MASTERS, "--vip", "10.103.97", "--version", "v1.30.4"],
            "--vip '10.103.97': not an IP address",
        ),
        (["master0", *MASTERS, "--version", "1.30"], "--version '1.30': not a Kubernetes version"),
        (["master0", *MASTERS, "--version", "v1.20.4"], "supports Kubernetes v1.22 and later"),
        (
            ["master0", *MASTERS, "--version", "v1.30.4", "--pod-cidr", "100.64.0.1/10"],
            "--pod-cidr '100.64.0.1/10'",
        ),
        (["master0", *MASTERS, "--version", "v1.30.4", "--years", "300"], "--years 300"),
        (
            ["master0", *MASTERS, "--version", "v1.30.4", "--kubeadm-config", "/nonexistent.tmpl"],
            "--kubeadm-config '/nonexistent.tmpl': cannot read it (No such file or directory)",
        ),
        (
            ["master0", *MASTERS, "--version", "v1.30.4", "--node-name", "Bad_Name"],
            "--node-name 'Bad_Name'",
        ),
        (["master0", "--version", "v1.30.4"], "--master is missing"),
        (
            ["node", *MASTERS, "--token", "nope", "--discovery-token-ca-cert-hash", CA_HASH],
            "--token 'nope': not a bootstrap token",
        ),
        (
            ["node", *MASTERS, "--token", TOKEN, "--discovery-token-ca-cert-hash", "abc"],
            "--discovery-token-ca-cert-hash 'abc'",
        ),
        (["clean", "--vip", "x"], "--vip 'x': not an IP address"),
        (["config", "--version", "v2.0.0"], "--version 'v2.0.0'"),
    ],
)
def test_bad_input_is_one_line_naming_the_value_and_exit_code_2(
    tree: Tree, kubeadm: Kubeadm, args: list[str], needle: str
) -> None:
    before = snapshot(tree.root)
    out = run(*args)
    assert out.exit_code == 2, out.output
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and needle in lines[0], out.stderr
    assert "Traceback" not in out.output
    assert snapshot(tree.root) == before


def test_a_template_that_does_not_render_names_the_file_and_line(
    tree: Tree, kubeadm: Kubeadm, tmp_path: Path
) -> None:
    template = tmp_path / "mine.tmpl"
    template.write_text("kind: ClusterConfiguration\nkubernetesVersion: {{.Verison}}\n")
    out = run(*MASTER0, "--kubeadm-config", str(template))
    assert out.exit_code == 2
    assert out.stderr.startswith(f"bootstrap: {template} line 2: .Verison is not defined")
    assert len(out.stderr.strip().splitlines()) == 1
    assert tree.hosts.read_bytes() == ODD_HOSTS and not tree.kube.exists()


def test_missing_kubeadm_stops_before_any_change(
    tree: Tree, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PATH", os.path.dirname(sys.executable))
    out = run(*MASTER0)
    assert out.exit_code == 1
    assert out.stderr.strip().startswith("bootstrap: kubeadm: not found on PATH")
    assert tree.hosts.read_bytes() == ODD_HOSTS and not tree.kube.exists()


def test_state_file_records_our_files_with_their_digests(tree: Tree, kubeadm: Kubeadm) -> None:
    assert run(*MASTER0).exit_code == 0
    state = json.loads((tree.state / "state.json").read_text())
    assert state["done"] == ["kubeadm-init"]
    assert str(tree.pki / "ca.key") in state["files"]
    assert state["join"]["token"] == TOKEN
    assert stat.S_IMODE((tree.state / "state.json").stat().st_mode) == 0o600


def test_init_output_without_join_lines_says_how_to_make_them_and_is_not_rerun(
    tree: Tree, kubeadm: Kubeadm, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    quiet = tmp_path / "quiet-init.txt"
    quiet.write_text("Your Kubernetes control-plane has initialized successfully!\n")
    monkeypatch.setenv("KUBEADM_INIT_OUTPUT", str(quiet))
    first = run(*MASTER0)
    assert first.exit_code == 1
    assert "kubeadm token create --print-join-command" in first.stderr
    again = run(*MASTER0)
    assert again.exit_code == 1
    assert "kubeadm token create --print-join-command" in again.stderr
    assert [a[1] for a in kubeadm.argvs()] == ["init"]
