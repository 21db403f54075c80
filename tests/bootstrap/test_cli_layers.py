"""The host commands run without the cluster layer: on a host, `bootstrap node` never loads
paramiko (checked in a fresh interpreter, where nothing else could have loaded it)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from tests.support.kubeadm import CA_HASH, TOKEN

ROOT = Path(__file__).resolve().parents[2]
RUN_AND_TELL = """\
import sys
from bootstrap.cli import cli
try:
    cli.main(sys.argv[1:], prog_name="bootstrap", standalone_mode=False)
finally:
    print("paramiko loaded:", "paramiko" in sys.modules)
"""


def bootstrap_in_fresh_python(*args: str) -> list[str]:
    proc = subprocess.run(
        [sys.executable, "-c", RUN_AND_TELL, *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    return proc.stdout.splitlines()


def test_node_help_loads_no_paramiko() -> None:
    out = bootstrap_in_fresh_python("node", "--help")
    assert out[0].startswith("Usage: bootstrap node")
    assert out[-1] == "paramiko loaded: False"


def test_node_dry_run_loads_no_paramiko(tmp_path: Path) -> None:
    (tmp_path / "hosts").write_text("127.0.0.1 localhost\n")
    out = bootstrap_in_fresh_python(
        "node",
        "--master",
        "192.168.0.2",
        "--token",
        TOKEN,
        "--discovery-token-ca-cert-hash",
        CA_HASH,
        "--node-name",
        "n1",
        "--version",
        "v1.30.4",
        "--dry-run",
        "--hosts-file",
        str(tmp_path / "hosts"),
        "--kubernetes-dir",
        str(tmp_path / "kubernetes"),
        "--state-dir",
        str(tmp_path / "state"),
    )
    assert any("would run: kubeadm join --config" in line for line in out), out
    assert out[-1] == "paramiko loaded: False"


def test_the_cluster_commands_do_load_it_and_are_listed() -> None:
    """The check above can see paramiko: `init` loads it, on demand."""
    assert bootstrap_in_fresh_python("init", "--help")[-1] == "paramiko loaded: True"
    listed = bootstrap_in_fresh_python("--help")
    commands = [line.split()[0] for line in listed[listed.index("Commands:") + 1 : -1]]
    assert commands == [
        "certs",
        "clean",
        "config",
        "init",
        "install",
        "join",
        "master",
        "master0",
        "node",
        "package",
        "status",
        "upgrade",
    ]
