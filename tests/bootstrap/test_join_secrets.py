"""The join's secrets on one host: kubeadm gets them in a 0600 file that is gone after it,
the host commands take them from a file or stdin, and every file holding a secret is 0600
from its first byte (watched through Python's audit hooks, under umask 0)."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner, Result

from bootstrap import fsutil
from bootstrap.cli import cli
from bootstrap.host.pki import SHARED_FILES
from bootstrap.join import Join, read_document, redact
from tests.support.file_modes import watch_modes
from tests.support.host_tree import Rules, Tree, run
from tests.support.kubeadm import CA_HASH, CERT_KEY, INIT_OUTPUT, TOKEN, Kubeadm

MASTERS = ["--master", "192.168.0.2", "--master", "192.168.0.3"]
MASTER0 = ["master0", *MASTERS, "--version", "v1.30.4", "--node-name", "m0"]
NODE = ["node", *MASTERS, "--vip", "10.103.97.2", "--node-name", "n1", "--version", "v1.30.4"]
MASTER = ["master", "--join", *MASTERS, "--version", "v1.30.4", "--node-name", "m1"]
MASTER += ["--ip", "192.168.0.3"]


def join_file(tmp_path: Path, join: Join) -> Path:
    path = tmp_path / "join.yaml"
    path.write_text(join.document("kubeadm.k8s.io/v1beta3"))
    path.chmod(0o600)
    return path


def master0_cas_only(tree: Tree) -> None:
    """What a joining master has before `bootstrap master --join`: master0's CAs, copied."""
    assert run(*MASTER0).exit_code == 0
    shared = {name: (tree.pki / name).read_bytes() for name in SHARED_FILES}
    for path in [*tree.kube.rglob("*"), *tree.state.rglob("*"), *tree.home.rglob("*")]:
        if path.is_file():
            path.unlink()
    for name, data in shared.items():
        (tree.pki / name).write_bytes(data)


def joins(kubeadm: Kubeadm) -> list[dict[str, object]]:
    return [c for c in kubeadm.read() if c["argv"][1] == "join"]


def is_secret(path: Path) -> bool:
    """Keys, kubeconfigs, the state file (master0's join), kubeadm's join configuration,
    and any copy of them."""
    name = path.name
    return (
        ".key" in name
        or ".conf" in name
        or name.startswith(("state.json", "kubeadm-join.yaml"))
        or path.parent.name == ".kube"
    )


def test_node_takes_the_join_from_a_file_and_no_secret_reaches_its_output(
    tree: Tree, kubeadm: Kubeadm, rules: Rules, tmp_path: Path
) -> None:
    path = join_file(tmp_path, Join(TOKEN, CA_HASH))
    out = run(*NODE, "--join-config", str(path))
    assert out.exit_code == 0, out.output
    (call,) = joins(kubeadm)
    assert call["argv"] == ["kubeadm", "join", "--config", str(tree.state / "kubeadm-join.yaml")]
    sent = yaml.safe_load(str(call["config"]))["discovery"]["bootstrapToken"]
    assert (sent["token"], sent["caCertHashes"]) == (TOKEN, [CA_HASH])
    assert call["config_mode"] == 0o600
    assert TOKEN not in out.output


def test_master_takes_the_join_and_certificate_key_from_stdin(tree: Tree, kubeadm: Kubeadm) -> None:
    master0_cas_only(tree)
    kubeadm.log.unlink()
    document = Join(TOKEN, CA_HASH, CERT_KEY).document("kubeadm.k8s.io/v1beta3")
    out = run_with_input(document, *MASTER, "--join-config", "-")
    assert out.exit_code == 0, out.output
    (call,) = joins(kubeadm)
    plane = yaml.safe_load(str(call["config"]))["controlPlane"]
    assert plane["certificateKey"] == CERT_KEY
    assert plane["localAPIEndpoint"]["advertiseAddress"] == "192.168.0.3"
    assert CERT_KEY not in out.output and TOKEN not in out.output


def run_with_input(text: str, *args: str) -> Result:
    return CliRunner().invoke(cli, list(args), input=text, catch_exceptions=False)


def test_a_failed_kubeadm_join_leaves_no_file_with_the_token(
    tree: Tree, kubeadm: Kubeadm, rules: Rules, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("KUBEADM_FAIL", "join")
    out = run(*NODE, "--token", TOKEN, "--discovery-token-ca-cert-hash", CA_HASH)
    assert out.exit_code == 1
    assert out.stderr.strip() == (
        f"bootstrap: kubeadm join --config {tree.state / 'kubeadm-join.yaml'} "
        "failed with exit code 1"
    )
    (call,) = joins(kubeadm)
    assert TOKEN in str(call["config"])  # it was there while kubeadm ran
    assert not (tree.state / "kubeadm-join.yaml").exists()


def test_clean_removes_a_join_configuration_an_interrupted_join_left(
    tree: Tree, kubeadm: Kubeadm, rules: Rules
) -> None:
    assert run(*NODE, "--token", TOKEN, "--discovery-token-ca-cert-hash", CA_HASH).exit_code == 0
    left = tree.state / "kubeadm-join.yaml"  # as if bootstrap had been killed during the join
    left.write_text(f"token: {TOKEN}\n")
    out = run("clean")
    assert out.exit_code == 0, out.output
    assert not left.exists() and not tree.state.exists()


@pytest.mark.parametrize(
    ("document", "flags", "needle"),
    [
        (None, [], "the join is missing: give --join-config FILE"),
        (None, ["--token", TOKEN], "the join is missing"),
        (Join(TOKEN, CA_HASH), ["--token", TOKEN], "give it or --token"),
        ("kind: InitConfiguration\n", [], "no document of kind JoinConfiguration"),
        ("{{{{", [], "not YAML"),
        (
            f"kind: JoinConfiguration\ndiscovery:\n  bootstrapToken:\n    token: {TOKEN}x\n",
            [],
            "discovery.bootstrapToken.token is not a bootstrap token",
        ),
        (
            f"kind: JoinConfiguration\ndiscovery:\n  bootstrapToken:\n    token: {TOKEN}\n",
            [],
            "caCertHashes must list sha256:HEX",
        ),
        (
            Join(TOKEN, CA_HASH, CERT_KEY[:-1] + "x"),
            [],
            "controlPlane.certificateKey must be 64 hex digits",
        ),
    ],
)
def test_a_bad_join_is_one_line_exit_2_and_never_echoes_the_secret(
    tree: Tree,
    kubeadm: Kubeadm,
    tmp_path: Path,
    document: Join | str | None,
    flags: list[str],
    needle: str,
) -> None:
    args = [*NODE, *flags]
    if document is not None:
        path = tmp_path / "join.yaml"
        text = document.document("v1") if isinstance(document, Join) else document
        if isinstance(document, Join) and document.certificate_key:
            text = text.replace(document.certificate_key, CERT_KEY[:-1] + "x")
        path.write_text(text)
        args += ["--join-config", str(path)]
    out = run(*args)
    assert out.exit_code == 2, out.output
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and needle in lines[0], out.stderr
    assert TOKEN not in out.stderr and CERT_KEY[:-1] not in out.stderr
    assert joins(kubeadm) == []


def test_an_unreadable_join_config_names_the_file(tree: Tree, kubeadm: Kubeadm) -> None:
    out = run(*NODE, "--join-config", "/nonexistent/join.yaml")
    assert out.exit_code == 2
    assert out.stderr.strip() == (
        "bootstrap: --join-config '/nonexistent/join.yaml': cannot read it "
        "(No such file or directory)"
    )


def test_the_join_document_reads_back_as_the_join() -> None:
    join = Join(TOKEN, CA_HASH, CERT_KEY)
    assert read_document(join.document("kubeadm.k8s.io/v1beta4"), "x") == join
    assert read_document(Join(TOKEN, CA_HASH).document("v"), "x") == Join(TOKEN, CA_HASH)


def test_redact_masks_tokens_and_named_certificate_keys_but_not_other_digests() -> None:
    text = redact(INIT_OUTPUT + f'certificateKey: {CERT_KEY}\n"certificate_key": "{CERT_KEY}"')
    assert TOKEN not in text and CERT_KEY not in text
    assert text.count("<certificate-key>") == 3
    assert CA_HASH in text  # the CA hash is public; package digests look the same
    assert redact(f"sha256 {CERT_KEY}") == f"sha256 {CERT_KEY}"


# ---------------------------------------------------------------- modes from the first byte


def test_every_secret_file_is_0600_from_its_first_byte_on_master0_master_and_node(
    tree: Tree, kubeadm: Kubeadm, rules: Rules, tmp_path: Path
) -> None:
    with watch_modes(tree.root) as watch:
        assert run(*MASTER0).exit_code == 0
        assert run(*MASTER0).exit_code == 0  # again: rewrites the state file
    assert watch.wide(is_secret) == {}
    written = watch.secrets(is_secret)
    for name in ("pki/ca.key", "pki/sa.key", "admin.conf", "state.json", ".kube/config"):
        assert any(w.endswith(name) for w in written), (name, written)

    master0_cas_only(tree)
    path = join_file(tmp_path, Join(TOKEN, CA_HASH, CERT_KEY))
    with watch_modes(tree.root) as watch:
        assert run(*MASTER, "--join-config", str(path)).exit_code == 0
        other = ["--state-dir", str(tree.root / "n"), "--kubernetes-dir", str(tree.root / "nk")]
        node = run(*NODE, "--join-config", str(path), *other)  # another host, as it were
    assert node.exit_code == 0, node.output
    assert watch.wide(is_secret) == {}
    written = watch.secrets(is_secret)
    assert any(w.endswith("kubeadm-join.yaml") for w in written), written
    assert {c["config_mode"] for c in joins(kubeadm)} == {0o600}


def test_a_rewrite_in_place_keeps_its_backup_0600_and_narrows_before_writing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The in-place path (a bind-mounted file) of a key: the backup is a copy of the key,
    and a key left 0644 is 0600 before its new bytes go in."""
    key = tmp_path / "apiserver.key"
    key.write_bytes(b"old secret")
    key.chmod(0o600)
    with watch_modes(tmp_path) as watch:
        fsutil.write_in_place(key, b"new secret", 0o600)
    assert watch.wide(is_secret) == {}
    assert any(w.endswith(".key.lvscare-py.bak") for w in watch.secrets(is_secret))

    key.chmod(0o644)
    modes: list[int] = []
    overwrite = fsutil._overwrite

    def recording(target: Path, data: bytes) -> None:
        modes.append(stat.S_IMODE(target.stat().st_mode))
        overwrite(target, data)

    monkeypatch.setattr(fsutil, "_overwrite", recording)
    fsutil.write_in_place(key, b"newer secret", 0o600)
    assert modes == [0o600]
    assert key.read_bytes() == b"newer secret"


def test_the_mode_watch_sees_a_file_written_wide_then_narrowed(tmp_path: Path) -> None:
    """The check above can fail: a file written under umask 0 and chmod-ed after, and one
    created 0644 and narrowed before its first byte, are both caught."""
    with watch_modes(tmp_path) as watch:
        late = tmp_path / "late.key"
        late.write_text("secret")
        late.chmod(0o600)
        early = tmp_path / "early.key"
        with open(early, "w") as f:
            os.fchmod(f.fileno(), 0o600)
            f.write("secret")
    assert watch.wide(is_secret) == {
        str(late): [f"0666 as {late}"],
        str(early): [f"0666 as {early}"],
    }
