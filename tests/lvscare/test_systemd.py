"""systemd/lvscare.service: Type=notify, flags from an environment file, READY=1 sent by the
daemon itself once the first reconcile is done, on a real unix datagram socket."""

from __future__ import annotations

import configparser
import os
import shlex
import shutil
import signal
import socket
import subprocess
import threading
import time
from pathlib import Path

import pytest
import structlog

from lvscare import cli
from lvscare.kernel.table import Op
from lvscare.telemetry import sdnotify
from tests.support.inproc_daemon import MASTERS, without_kernel

ROOT = Path(__file__).resolve().parents[2]
UNIT = ROOT / "systemd" / "lvscare.service"
ENV_EXAMPLE = ROOT / "systemd" / "lvscare.env"


def read_unit() -> configparser.ConfigParser:
    unit = configparser.ConfigParser(interpolation=None, strict=True)
    unit.optionxform = str  # type: ignore[assignment,method-assign]
    unit.read(UNIT)
    return unit


def environment_file(path: Path) -> dict[str, str]:
    """systemd's EnvironmentFile= subset we use: KEY="value" lines and comments."""
    env: dict[str, str] = {}
    for line in path.read_text().splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        key, _, value = line.partition("=")
        env[key.strip()] = shlex.split(value)[0] if value.strip() else ""
    return env


def exec_start_argv(unit: configparser.ConfigParser, env: dict[str, str]) -> list[str]:
    """ExecStart with `$VAR` replaced by its words, as systemd does for unbraced variables."""
    argv: list[str] = []
    for word in unit["Service"]["ExecStart"].split():
        argv += env[word[1:]].split() if word.startswith("$") else [word]
    return argv


class Socket:
    """The listening end systemd would hold: a bound AF_UNIX datagram socket."""

    def __init__(self, path: str) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(path)
        self.sock.settimeout(20)

    def recv(self) -> list[str]:
        return self.sock.recv(4096).decode().split("\n")


def test_the_unit_is_type_notify_with_flags_from_an_environment_file() -> None:
    service = read_unit()["Service"]
    assert service["Type"] == "notify"
    assert service["NotifyAccess"] == "main"
    assert service["Restart"] == "always"
    assert service["EnvironmentFile"] == "/etc/default/lvscare"
    assert service["ExecStart"] == "/usr/local/bin/lvscare care $LVSCARE_ARGS"
    assert "CAP_NET_ADMIN" in service["CapabilityBoundingSet"].split()
    argv = exec_start_argv(read_unit(), environment_file(ENV_EXAMPLE))
    assert argv[:2] == ["/usr/local/bin/lvscare", "care"]
    assert argv[argv.index("--vs") + 1] == "10.103.97.2:6443"


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="no systemd-analyze")
def test_systemd_analyze_verify_finds_nothing_to_say(tmp_path: Path) -> None:
    text = UNIT.read_text().replace("/usr/local/bin/lvscare", shutil.which("true") or "/bin/true")
    text = text.replace("EnvironmentFile=/etc/default/lvscare", f"EnvironmentFile={ENV_EXAMPLE}")
    unit = tmp_path / "lvscare.service"
    unit.write_text(text)
    proc = subprocess.run(
        ["systemd-analyze", "verify", str(unit)], capture_output=True, text=True, timeout=60
    )
    said = [
        line
        for line in (proc.stdout + proc.stderr).splitlines()
        if "lvscare.service" in line  # verify also comments on units it pulls in
    ]
    assert proc.returncode == 0 and said == [], proc.stdout + proc.stderr


def test_notify_sends_one_datagram_and_is_a_no_op_without_the_variable(tmp_path: Path) -> None:
    listener = Socket(str(tmp_path / "notify"))
    assert sdnotify.notify("READY=1", "STATUS=hi", env={"NOTIFY_SOCKET": str(tmp_path / "notify")})
    assert listener.recv() == ["READY=1", "STATUS=hi"]
    assert not sdnotify.notify("READY=1", env={})


def test_notify_reaches_an_abstract_socket() -> None:
    name = f"lvscare-test-{os.getpid()}"
    listener = Socket("\0" + name)
    assert sdnotify.notify("READY=1", env={"NOTIFY_SOCKET": "@" + name})
    assert listener.recv() == ["READY=1"]


def test_a_missing_socket_is_a_warning_not_a_crash(tmp_path: Path) -> None:
    assert not sdnotify.notify("READY=1", env={"NOTIFY_SOCKET": str(tmp_path / "gone")})


def test_the_daemon_started_as_the_unit_says_sends_ready_after_the_first_reconcile(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`lvscare care $LVSCARE_ARGS` through the real CLI and Daemon.serve(), in this process,
    with the kernel table in memory; the masters of the example file are swapped for ours."""
    path = str(tmp_path / "notify")
    listener = Socket(path)
    monkeypatch.setenv("NOTIFY_SOCKET", path)
    tables = without_kernel(monkeypatch.setattr).tables  # no modprobe, no netlink
    reconciles: list[float] = []
    original = sdnotify.ReadyNotifier.reconciled

    def reconciled(
        self: sdnotify.ReadyNotifier, ops: list[Op], error: BaseException | None, s: float
    ) -> None:
        reconciles.append(time.monotonic())
        original(self, ops, error, s)

    monkeypatch.setattr(sdnotify.ReadyNotifier, "reconciled", reconciled)

    argv = exec_start_argv(read_unit(), environment_file(ENV_EXAMPLE))
    args = argv[1:]
    while "--rs" in args:  # drop the example's masters
        i = args.index("--rs")
        del args[i : i + 2]
    args += [a for m in MASTERS for a in ("--rs", f"{m}:6443")]
    args += ["--interval", "0.2", "--no-watch", "--health-address", "127.0.0.1:0"]
    args += ["--rt-priority", "0"]  # pytest's own process: never real-time

    got: list[list[str]] = []
    weights_at_ready: list[dict[str, int]] = []

    def systemd_side() -> None:
        try:
            first = listener.recv()
            got.append(first)
            weights_at_ready.append(tables[0].weights())
            time.sleep(0.5)  # a few more rounds: READY=1 must come only once
        finally:
            os.kill(os.getpid(), signal.SIGTERM)  # what systemctl stop does
        listener.sock.settimeout(5)
        while True:
            try:
                got.append(listener.recv())
            except TimeoutError:
                return
            if got[-1][0] == "STOPPING=1":
                return

    side = threading.Thread(target=systemd_side)
    side.start()
    try:
        cli.cli.main(args=args, prog_name="lvscare", standalone_mode=False)
    finally:
        side.join(10)
        structlog.reset_defaults()  # the CLI pointed logging at this test's captured stderr

    assert got[0][0] == "READY=1"
    assert got[0][1] == "STATUS=10.103.97.2:6443: 3/3 real servers up"
    assert weights_at_ready == [dict.fromkeys(MASTERS, 1)]  # the table was there first
    assert len(reconciles) >= 3
    assert [m[0] for m in got[1:]] == ["STOPPING=1"]
