"""Feedback without SSH: the terminal lines, the plain lines, the table; host parsing."""

from __future__ import annotations

import io

import pytest

from bootstrap.cluster.progress import Reporter
from bootstrap.cluster.ssh import Target, parse_target
from bootstrap.errors import BadInput
from bootstrap.join import redact


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_terminal_shows_a_line_per_host_with_bytes_and_rate() -> None:
    out, clock = io.StringIO(), Clock()
    r = Reporter(out, tty=True, clock=clock)
    r.add("198.19.0.11", "master")
    r.add("198.19.0.12", "node")
    r.step("198.19.0.11", "package")
    r.sent("198.19.0.11", 0, 200 << 20)
    clock.now += 2
    r.sent("198.19.0.11", 100 << 20, 200 << 20)
    last = out.getvalue().split("\x1b[J")[-1]
    lines = [line.removeprefix("\x1b[2K") for line in last.splitlines()]
    assert lines[0].split() == [
        "198.19.0.11",
        "master",
        "package",
        "100.0",
        "MiB/200.0",
        "MiB",
        "50%",
        "at",
        "50.0",
        "MiB/s",
    ]
    assert lines[1].split() == ["198.19.0.12", "node", "waiting"]


def test_plain_output_is_one_line_per_step_and_a_table() -> None:
    out, clock = io.StringIO(), Clock()
    r = Reporter(out, tty=False, clock=clock)
    r.add("198.19.0.11", "master")
    r.add("198.19.0.12:2222", "node")
    r.step("198.19.0.11", "connect")
    r.step("198.19.0.12:2222", "connect")
    clock.now += 1.5
    r.finish("198.19.0.11", "ok")
    r.finish("198.19.0.12:2222", "failed", "connect", "cannot connect: refused")
    r.print_table()
    text = out.getvalue()
    assert "\x1b" not in text
    assert text.splitlines()[:4] == [
        "198.19.0.11: connect",
        "198.19.0.12:2222: connect",
        "198.19.0.11: ok",
        "198.19.0.12:2222: failed: connect: cannot connect: refused",
    ]
    table = text.splitlines()[-3:]
    assert table[0].split() == ["HOST", "ROLE", "RESULT", "FAILED", "STEP", "TIME", "ERROR"]
    assert table[1].split() == ["198.19.0.11", "master", "ok", "-", "1.5s", "-"]
    assert table[2].split()[:5] == ["198.19.0.12:2222", "node", "failed", "connect", "1.5s"]
    assert r.failed() == ["198.19.0.12:2222"]


@pytest.mark.parametrize(
    ("text", "target", "known"),
    [
        ("192.168.0.2", Target("192.168.0.2", 22), "192.168.0.2"),
        ("192.168.0.2:2222", Target("192.168.0.2", 2222), "[192.168.0.2]:2222"),
        ("[fd00::2]:2222", Target("fd00::2", 2222), "[fd00::2]:2222"),
        ("fd00::2", Target("fd00::2", 22), "fd00::2"),
        ("[fd00:0::2]:2222", Target("fd00::2", 2222), "[fd00::2]:2222"),
    ],
)
def test_hosts_are_ip_or_ip_port(text: str, target: Target, known: str) -> None:
    assert parse_target(text, "--node") == target
    assert target.known_hosts_name == known


@pytest.mark.parametrize(
    "text", ["host.example", "192.168.0.2:0", "192.168.0.2:x", "1.2.3.4:70000"]
)
def test_bad_hosts_name_the_value(text: str) -> None:
    with pytest.raises(BadInput, match="--node"):
        parse_target(text, "--node")


def test_bootstrap_tokens_are_masked_in_messages_and_logs() -> None:
    line = "kubeadm join 10.0.0.1:6443 --token abcdef.0123456789abcdef --discovery-token-ca"
    assert redact(line) == "kubeadm join 10.0.0.1:6443 --token <token> --discovery-token-ca"
    assert redact("version v1.30.4, host 198.19.0.11") == "version v1.30.4, host 198.19.0.11"


def test_the_last_line_names_failed_hosts_apart_from_those_not_done_because_of_them() -> None:
    r = Reporter(io.StringIO(), tty=False)
    for host, role in (("m0", "master"), ("n1", "node"), ("n2", "node"), ("n3", "node")):
        r.add(host, role)
    r.finish("m0", "ok")
    r.finish("n1", "failed", "kubeadm upgrade node", "exit 1")
    r.finish("n2", "skipped", "", "n1 failed before it")
    r.finish("n3", "interrupted", "drain", "Ctrl-C")
    assert r.verdict("upgrade") == "upgrade: 1 of 4 hosts failed: n1; 2 not done: n2, n3"
    ok = Reporter(io.StringIO(), tty=False)
    ok.add("m0", "master")
    ok.finish("m0", "ok")
    assert ok.verdict("init") is None
