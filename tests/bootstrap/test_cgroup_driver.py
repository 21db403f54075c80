"""The kubelet's cgroup driver comes from what the package's init.sh found on the host
(/etc/lvscare-py/runtime.env), unless --cgroup-driver says otherwise; systemd without it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click
import pytest
import yaml

from bootstrap import defaults
from bootstrap.cli.host import certs_command, master0_command, master_command
from bootstrap.errors import BadInput
from bootstrap.host import runtime
from tests.support.host_tree import Tree, run
from tests.support.kubeadm import Kubeadm

MASTERS = ["--master", "192.168.0.2", "--master", "192.168.0.3"]
MASTER0 = ["master0", *MASTERS, "--version", "v1.30.4", "--node-name", "m0"]
# As init.sh writes it.
RUNTIME_ENV = """\
# Written by the offline package's shell/init.sh (lvscare-py); clean.sh removes it.
# The container runtime found on this host; bootstrap reads CGROUP_DRIVER.
RUNTIME=containerd
CGROUP_DRIVER={driver}
CRI_SOCKET=unix:///run/containerd/containerd.sock
"""


@pytest.fixture
def env_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / "lvscare-py" / "runtime.env"
    monkeypatch.setenv(defaults.RUNTIME_ENV_ENV, str(path))
    return path


def kubelet_config(kubeadm: Kubeadm) -> dict[str, Any]:
    (init,) = [c for c in kubeadm.read() if c["argv"][1] == "init"]
    docs = {d["kind"]: d for d in yaml.safe_load_all(init["config"])}
    kubelet: dict[str, Any] = docs["KubeletConfiguration"]
    return kubelet


def test_master0_gives_the_kubelet_the_driver_init_sh_recorded(
    tree: Tree, kubeadm: Kubeadm, env_file: Path
) -> None:
    env_file.parent.mkdir()
    env_file.write_text(RUNTIME_ENV.format(driver="cgroupfs"))
    out = run(*MASTER0)
    assert out.exit_code == 0, out.output
    assert kubelet_config(kubeadm)["cgroupDriver"] == "cgroupfs"


def test_without_the_file_the_kubelet_gets_systemd(
    tree: Tree, kubeadm: Kubeadm, env_file: Path
) -> None:
    out = run(*MASTER0)
    assert out.exit_code == 0, out.output
    assert kubelet_config(kubeadm)["cgroupDriver"] == "systemd"


def test_the_option_wins_over_the_file(tree: Tree, kubeadm: Kubeadm, env_file: Path) -> None:
    env_file.parent.mkdir()
    env_file.write_text(RUNTIME_ENV.format(driver="cgroupfs"))
    out = run(*MASTER0, "--cgroup-driver", "systemd")
    assert out.exit_code == 0, out.output
    assert kubelet_config(kubeadm)["cgroupDriver"] == "systemd"


def test_a_driver_the_kubelet_does_not_know_in_the_file_stops_before_kubeadm(
    tree: Tree, kubeadm: Kubeadm, env_file: Path
) -> None:
    env_file.parent.mkdir()
    env_file.write_text(RUNTIME_ENV.format(driver="sytemd"))
    out = run(*MASTER0)
    assert out.exit_code == 2
    assert f"{env_file}: CGROUP_DRIVER='sytemd' is neither systemd nor cgroupfs" in out.output
    assert [c["argv"][1] for c in kubeadm.read() if c["argv"][1] != "version"] == []


def test_the_option_takes_only_auto_systemd_or_cgroupfs(tree: Tree, kubeadm: Kubeadm) -> None:
    out = run(*MASTER0, "--cgroup-driver", "cgroup")
    assert out.exit_code == 2
    assert "'cgroup' is not one of 'auto', 'systemd', 'cgroupfs'" in out.output


@pytest.mark.parametrize("command", [master0_command, master_command, certs_command])
def test_help_names_the_file_auto_reads(command: click.Command) -> None:
    (option,) = [p for p in command.params if p.name == "cgroup_driver"]
    assert isinstance(option, click.Option)
    assert option.help is not None and str(defaults.RUNTIME_ENV) in option.help


def test_the_file_is_read_as_a_shell_would_source_it(tmp_path: Path) -> None:
    path = tmp_path / "runtime.env"
    path.write_text("# comment\n\n  RUNTIME=\"docker\"\nCGROUP_DRIVER='cgroupfs'\nEMPTY=\n")
    assert runtime.read_env(path) == {"RUNTIME": "docker", "CGROUP_DRIVER": "cgroupfs", "EMPTY": ""}
    assert runtime.cgroup_driver("auto", path) == "cgroupfs"
    assert runtime.read_env(tmp_path / "missing") == {}


def test_a_line_that_is_not_key_value_is_named(tmp_path: Path) -> None:
    path = tmp_path / "runtime.env"
    path.write_text("RUNTIME=containerd\nCGROUP_DRIVER systemd\n")
    with pytest.raises(BadInput, match=r"runtime.env line 2: 'CGROUP_DRIVER systemd' is not"):
        runtime.read_env(path)


def test_an_unreadable_file_is_named(tmp_path: Path) -> None:
    path = tmp_path / "runtime.env"
    path.mkdir()
    with pytest.raises(BadInput, match=r"runtime.env: cannot read it \(Is a directory\)"):
        runtime.cgroup_driver("auto", path)
