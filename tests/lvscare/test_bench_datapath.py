"""bench/datapath.py's pure parts: percentiles, the tables from made-up raw files, the haproxy
configuration; and the client's parsing (bench/datapath_client.py)."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from bench.datapath import (
    MAIN_HEAD,
    Samples,
    haproxy_conf,
    main_rows,
    parse_netstat,
    percentile,
    print_report,
    render,
    targets,
)
from bench.datapath_client import parse_head, parse_path, read_response, turn_order

MASTERS = [("m1", "198.18.0.11"), ("m2", "198.18.0.12"), ("m3", "198.18.0.13")]


def test_percentile_is_the_nearest_rank() -> None:
    assert percentile([], 50) is None
    assert percentile([7.0], 99) == 7.0
    xs = [float(i) for i in range(100, 0, -1)]  # 1..100, unordered
    assert percentile(xs, 50) == 50.0
    assert percentile(xs, 99) == 99.0
    assert percentile(xs, 100) == 100.0
    assert percentile([1.0, 2.0, 3.0], 50) == 2.0
    assert percentile([1.0, 2.0, 3.0, 4.0], 50) == 2.0  # a sample, never an interpolation
    assert percentile([1.0, 2.0, 3.0], 99) == 3.0


def test_haproxy_conf_is_the_kubeadm_guides_with_the_masters() -> None:
    conf = haproxy_conf(MASTERS)
    frontend = conf.split("frontend apiserver\n")[1].split("\n\n")[0]
    assert "    bind 127.0.0.1:8443\n" in frontend
    assert "    mode tcp\n" in frontend
    assert "default_backend apiserverbackend" in frontend
    backend = conf.split("\nbackend apiserverbackend\n")[1]
    for line in (
        "    option httpchk GET /healthz",
        "    http-check expect status 200",
        "    mode tcp",
        "    option ssl-hello-chk",
        "    balance     roundrobin",
        "    source 198.18.0.3",
    ):
        assert line + "\n" in backend
    servers = [line.split() for line in backend.splitlines() if line.split()[:1] == ["server"]]
    assert servers == [["server", n, f"{ip}:6443", "check"] for n, ip in MASTERS]
    for line in (
        "timeout connect         5s",
        "timeout client          20s",
        "retries                 1",
    ):
        assert line in conf
    assert "source" not in haproxy_conf(MASTERS, source=None)


@pytest.mark.skipif(shutil.which("haproxy") is None, reason="haproxy is not installed")
def test_haproxy_accepts_the_configuration(tmp_path: Path) -> None:
    cfg = tmp_path / "haproxy.cfg"
    cfg.write_text(haproxy_conf(MASTERS))
    proc = subprocess.run(
        ["haproxy", "-c", "-f", str(cfg)], capture_output=True, text=True, check=False
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_parse_netstat_pairs_names_with_values() -> None:
    text = (
        "TcpExt: SyncookiesSent ListenOverflows\nTcpExt: 0 39\nTcp: RtoMin MaxConn\nTcp: 200 -1\n"
    )
    assert parse_netstat(text) == {
        "TcpExt:SyncookiesSent": 0,
        "TcpExt:ListenOverflows": 39,
        "Tcp:RtoMin": 200,
        "Tcp:MaxConn": -1,
    }


# -- the client's parts ----------------------------------------------------------------------


def test_a_path_spec_gives_targets_in_turn_and_a_source() -> None:
    p = parse_path("direct=198.18.0.11:6443,198.18.0.12:6443@198.18.0.2")
    assert (p.name, p.source) == ("direct", "198.18.0.2")
    assert [p.next_target() for _ in range(3)] == [
        ("198.18.0.11", 6443),
        ("198.18.0.12", 6443),
        ("198.18.0.11", 6443),
    ]
    assert parse_path("vip=10.103.97.2:6443").source is None
    for bad in ("vip", "=1.2.3.4:1", "vip=1.2.3.4", "vip=1.2.3.4:x"):
        with pytest.raises(ValueError):
            parse_path(bad)


def test_each_path_takes_each_place_in_turn_equally_often() -> None:
    paths = ["direct", "vip", "haproxy"]
    orders = [turn_order(paths, i) for i in range(6)]
    assert orders[0] == paths and orders[3] == paths
    for place in range(3):
        assert sorted(o[place] for o in orders) == sorted(paths * 2)


class FakeTLS:
    """recv() hands out the stream in the given pieces."""

    def __init__(self, *pieces: bytes) -> None:
        self.pieces = list(pieces)

    def recv(self, n: int) -> bytes:
        return self.pieces.pop(0) if self.pieces else b""


def test_a_response_is_read_to_its_content_length_across_pieces() -> None:
    sock: Any = FakeTLS(
        b"HTTP/1.1 200 OK\r\nContent-Le", b"ngth: 2\r\nX-Lab-Master: m2\r\n\r\nm", b"2"
    )
    status, headers, body = read_response(sock)
    assert (status, headers["x-lab-master"], body) == (200, "m2", b"m2")
    with pytest.raises(ConnectionResetError):
        read_response(FakeTLS(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nab"))  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        parse_head(b"SSH-2.0-OpenSSH")


# -- the tables, from made-up raw files ------------------------------------------------------


def write_run(out: Path, values: dict[tuple[str, str, str], list[float]]) -> None:
    """A run's directory: meta.json and one samples file per mode, values in seconds (bulk:
    seconds per 8 MiB transfer)."""
    phases = []
    for k, mode in enumerate(("route", "link"), 1):
        lines = [
            json.dumps({"kind": "connect", "path": "vip", "i": -1, "warm": True, "s": 9.0}),
            json.dumps({"kind": "fresh", "path": "haproxy", "i": 0, "s": None, "err": "timeout"}),
        ]
        for (m, path, kind), xs in values.items():
            if m != mode:
                continue
            for i, x in enumerate(xs):
                rec: dict[str, Any] = {"kind": kind, "path": path, "i": i, "s": x}
                if kind != "connect":  # the client learns the master from a response
                    rec["master"] = "m1"
                if kind == "bulk":
                    rec["bytes"] = 8 << 20
                lines.append(json.dumps(rec))
        name = f"samples-{k:02d}-{mode}.jsonl"
        (out / name).write_text("\n".join(lines) + "\n")
        phases.append({"mode": mode, "samples": name, "seconds": 60.0, "node": {}, "masters": {}})
    settings = {"connects": 100, "requests": 100, "fresh": 100, "bulk": 3, "bulk_mb": 8}
    meta = {"commit": "abc1234", "settings": settings, "phases": phases}
    (out / "meta.json").write_text(json.dumps(meta))


def ms(*xs: float) -> list[float]:
    return [x / 1000 for x in xs]


def made_up() -> dict[tuple[str, str, str], list[float]]:
    base = [1.0] * 98 + [2.0, 3.0]  # p50 1 ms, p99 2 ms
    values: dict[tuple[str, str, str], list[float]] = {}
    for mode, slow in (("route", 1.0), ("link", 1.5)):  # link phases: everything 1.5x slower
        for kind in ("connect", "kept", "fresh"):
            values[(mode, "direct", kind)] = ms(*(x * slow for x in base))
            values[(mode, "vip", kind)] = ms(*(x * slow * 1.02 for x in base))
            values[(mode, "haproxy", kind)] = ms(*(x * slow * 2 for x in base))
        values[(mode, "direct", "bulk")] = [0.1, 0.1, 0.1]  # 80 MiB/s
        values[(mode, "vip", "bulk")] = [0.1, 0.1, 0.1]
        values[(mode, "haproxy", "bulk")] = [0.2, 0.2, 0.2]  # 40 MiB/s
    return values


def test_the_table_takes_each_ratio_against_direct_of_the_same_phases(tmp_path: Path) -> None:
    write_run(tmp_path, made_up())
    text = print_report(tmp_path)
    lines = text.splitlines()
    connect50 = next(line for line in lines if line.startswith("TCP connect p50 (ms)")).split()
    # direct pooled (1 and 1.5 ms: p50 of the pool 1.5), VIP route 1.02, VIP link 1.53,
    # haproxy pooled; each VIP 1.02x its own phases' direct, haproxy 2x
    assert connect50[4:] == ["1.50", "1.02", "1.53", "3.00", "1.02", "1.02", "2.00"]
    bulk = next(line for line in lines if line.startswith("bulk over TLS")).split()
    assert bulk[-7:] == ["80.0", "80.0", "80.0", "40.0", "1.00", "1.00", "0.50"]
    assert "  PASS  VIP route, TCP connect: p50 1.02x, p99 1.02x" in lines
    assert (
        "  link: TCP connect 1.02 / 1.02; kept-alive TLS GET 1.02 / 1.02; "
        "fresh TLS GET 1.02 / 1.02; bulk MiB/s direct 80.0, VIP 80.0, haproxy 40.0"
    ) in lines
    assert "  PASS  VIP link, fresh TLS GET: VIP/haproxy p50 0.51x, p99 0.51x" in lines
    assert (
        "  route haproxy connect 100; kept 100 m1:100; fresh 100 (1 failed) m1:100; bulk 3 m1:3"
        in (lines)
    )
    md = (tmp_path / "table.md").read_text().splitlines()
    assert md[0] == "| " + " | ".join(MAIN_HEAD) + " |"
    assert md[1] == "|---" + "|---:" * 7 + "|"
    assert md[2].startswith("| TCP connect p50 (ms) | 1.50 | 1.02 | 1.53 | 3.00 |")
    assert (tmp_path / "report.txt").read_text() == text + "\n"


def test_a_vip_slower_than_the_target_fails_and_a_missing_mode_is_not_checked() -> None:
    s = Samples.empty()
    for i in range(100):
        s.add("route", {"kind": "kept", "path": "direct", "i": i, "s": 0.010})
        s.add("route", {"kind": "kept", "path": "vip", "i": i, "s": 0.011 if i < 99 else 0.010})
        s.add("route", {"kind": "kept", "path": "haproxy", "i": i, "s": 0.020})
    lines = targets(s)
    assert "  FAIL  VIP route, kept-alive TLS GET: p50 1.10x, p99 1.10x" in lines
    assert "  n/a   VIP link, kept-alive TLS GET: p50 -x, p99 -x" in lines
    assert "  PASS  VIP route, kept-alive TLS GET: VIP/haproxy p50 0.55x, p99 0.55x" in lines
    rows = main_rows(s)
    assert rows[2] == (
        "kept-alive TLS GET p50 (ms)",
        "10.0",
        "11.0",
        "-",
        "20.0",
        "1.10",
        "-",
        "2.00",
    )


def test_render_aligns_columns() -> None:
    text = render(("", "a", "bb"), [("row one", "1", "2"), ("r", "10", "200")], markdown=False)
    assert text.splitlines() == ["          a   bb", "row one   1    2", "r        10  200"]
