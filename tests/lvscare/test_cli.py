"""The command line as users meet it: exit codes and one-line errors, no tracebacks."""

from __future__ import annotations

import subprocess
import sys

import pytest

LVSCARE = [sys.executable, "-m", "lvscare"]


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*LVSCARE, *args], capture_output=True, text=True, timeout=60, check=False
    )


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["--vs", "10.103.97.2", "--rs", "198.18.0.11:6443"], "'10.103.97.2': missing port"),
        (["--vs", "10.103.97.2:0", "--rs", "198.18.0.11:6443"], "port 0 is out of range"),
        (["--vs", "10.103.97.2:65536", "--rs", "198.18.0.11:6443"], "port 65536"),
        (["--vs", "fd00::2:6443", "--rs", "198.18.0.11:6443"], "IPv6 addresses need brackets"),
        (["--rs", "198.18.0.11:6443", "--scheduler", "fifo"], "--scheduler 'fifo'"),
        (["--rs", "no-such-host.invalid:6443"], "cannot resolve 'no-such-host.invalid'"),
        ([], "--rs: at least one real server is required"),
        (["--rs", "198.18.0.11:6443", "--health-insecure-skip-verify=maybe"], "'maybe'"),
        (["--rs", "198.18.0.11:6443", "--rt-priority", "100"], "--rt-priority 100"),
    ],
)
def test_bad_input_is_one_line_and_exit_code_2(args: list[str], needle: str) -> None:
    proc = run("care", *args)
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and needle in lines[0], proc.stderr
    assert "Traceback" not in proc.stderr


def test_unknown_flag_is_exit_code_2() -> None:
    proc = run("care", "--no-such-flag")
    assert proc.returncode == 2 and "no-such-flag" in proc.stderr


def test_help_explains_flags_and_exit_codes() -> None:
    proc = run("care", "--help")
    assert proc.returncode == 0
    for word in ("--vs", "--rs", "--run-once", "--clean", "--rise", "--fall", "Exit codes"):
        assert word in proc.stdout


def test_kernel_without_ipvs_is_one_clear_line_and_exit_code_1() -> None:
    proc = run("care", "--rs", "198.18.0.11:6443", "--log-format", "json")
    assert proc.returncode == 1, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("lvscare: opening IPVS: this kernel has no IPVS")
    assert "modprobe ip_vs" in lines[0]
