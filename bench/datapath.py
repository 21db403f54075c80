"""Data-path benchmark (issue 14, point 2): direct, through lvscare's VIP, through haproxy.

Runs inside the lab VM, everything in one boot:

    scripts/lab python -m bench.datapath            # full run
    scripts/lab python -m bench.datapath --quick    # small samples, one round
    python -m bench.datapath --report DIR           # the tables again from DIR's raw files

Three fake masters (tests/support/labnet.py, HTTPS with RSA-2048 certificates), the client
on the node (the VM's root namespace), four paths to the same masters' :6443:

- direct: round-robin over the three masters' IPs, one master per connection.
- VIP route: 10.103.97.2:6443 with `lvscare care --mode route --interval 1`, every other
  flag at its default (no --ip: the lab's default route carries the VIP, the source address
  is the node's 198.18.0.1).
- VIP link: the same with `--mode link`: the VIP on the dummy `lvscare`, the source address
  is the VIP, masqueraded by lvscare's nft rule, `net.ipv4.vs.conntrack=1`.
- haproxy: Debian's haproxy on the node, configured as the kubeadm HA guide
  (kubernetes/kubeadm docs/ha-considerations.md) does: `mode tcp`, `balance roundrobin`, the
  three masters with `check`, the guide's defaults; frontend on 127.0.0.1:8443 (haproxy_conf
  below has the whole file and its two differences from the guide).

Route and link mode cannot guard the same VIP at once, so the run is made of phases: route,
link, route, link (--rounds 2, the default; --quick: one of each). Each phase starts lvscare
in its mode and a fresh haproxy, waits until both reach all three masters, then runs
bench/datapath_client.py (stdlib, `python -S`, single-threaded) over direct, VIP and haproxy,
the three paths taking turns sample by sample. Link mode turns conntrack on for the whole
node, so every ratio is taken against direct measured in the same phases (direct and haproxy
run in every phase).

TLS 1.2 at most (the client's choice, every path alike): with 1.3 the fake apiserver sends its
session tickets after the handshake and, being Python without TCP_NODELAY (kube-apiserver,
in Go, sets it), holds the first response behind them until the client's delayed ACK comes,
40 ms later, or not, by a race whose outcome depends on the path's timing. With 1.2 the
tickets are inside the handshake. The handshake then takes two round trips through the path
instead of one: if anything, a stricter test of the path.

The client binds each direct connection to 198.18.0.2 and haproxy connects to the masters
from 198.18.0.3 (`source`), both extra addresses on labbr0: with one source address for all,
a connection straight to a master can reuse the source port of a VIP connection whose IPVS
entry still lives (TIME_WAIT, 2 min), and IPVS then rewrites that connection's replies as
the VIP's. The benchmark keeps its own direct traffic out of that; lvscare's probes go
straight to the masters from 198.18.0.1, as they do from a node's address in route mode.

Raw files in --out (default .lab/bench-datapath/): meta.json (settings, commit, phases and
what the kernel looked like in each), samples-NN-MODE.jsonl (the client's samples), the logs
of lvscare, haproxy and the client, haproxy.cfg; report.txt and table.md at the end.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import math
import os
import shutil
import statistics
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bench.progress import START, fresh_dir, log

if TYPE_CHECKING:
    from tests.support.labnet import Lab, LabProcess

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
CLIENT = HERE / "datapath_client.py"

VIP, PORT = "10.103.97.2", 6443
SERVER_NAME = "apiserver.cluster.local"  # in every lab master's certificate
HAPROXY_BIND = ("127.0.0.1", 8443)  # the guide's example port for the balanced apiserver
DIRECT_SOURCE = "198.18.0.2"  # extra addresses on labbr0 (see the docstring)
HAPROXY_SOURCE = "198.18.0.3"
MODES = ("route", "link")
PATHS = ("direct", "vip", "haproxy")
KINDS = ("connect", "kept", "fresh", "bulk")
LATENCY_KINDS = ("connect", "kept", "fresh")
TARGET = 1.05  # issue 14: through the VIP <= 1.05 x direct at p50 and p99
MAX_TLS = "1.2"  # see the docstring


# -- haproxy, as the kubeadm HA guide configures it ----------------------------------------------


def haproxy_conf(
    masters: Sequence[tuple[str, str]],
    bind: tuple[str, int] = HAPROXY_BIND,
    source: str | None = HAPROXY_SOURCE,
    port: int = PORT,
) -> str:
    """/etc/haproxy/haproxy.cfg of kubernetes/kubeadm docs/ha-considerations.md ("has been
    successfully used with haproxy version 2.1.4"), its placeholders filled in: frontend port
    8443 (the guide's own example of APISERVER_DEST_PORT), the masters (name, ip) at `port`.

    Two differences: the frontend binds 127.0.0.1 rather than `*` (haproxy on the node, for
    the node's own clients), and the backend's `source` line (the docstring says why). The
    guide's `daemon` stays; haproxy runs with -db, which keeps it in the foreground."""
    servers = "".join(f"        server {name} {ip}:{port} check\n" for name, ip in masters)
    src = (
        f"    # not in the guide: the lab's own source address for haproxy's connections\n"
        f"    source {source}\n"
        if source
        else ""
    )
    return f"""\
# /etc/haproxy/haproxy.cfg
#---------------------------------------------------------------------
# Global settings
#---------------------------------------------------------------------
global
    log /dev/log local0
    log /dev/log local1 notice
    daemon

#---------------------------------------------------------------------
# common defaults that all the 'listen' and 'backend' sections will
# use if not designated in their block
#---------------------------------------------------------------------
defaults
    mode                    http
    log                     global
    option                  httplog
    option                  dontlognull
    option http-server-close
    option forwardfor       except 127.0.0.0/8
    option                  redispatch
    retries                 1
    timeout http-request    10s
    timeout queue           20s
    timeout connect         5s
    timeout client          20s
    timeout server          20s
    timeout http-keep-alive 10s
    timeout check           10s

#---------------------------------------------------------------------
# apiserver frontend which proxys to the control plane nodes
#---------------------------------------------------------------------
frontend apiserver
    bind {bind[0]}:{bind[1]}
    mode tcp
    option tcplog
    default_backend apiserverbackend

#---------------------------------------------------------------------
# round robin balancing for apiserver
#---------------------------------------------------------------------
backend apiserverbackend
    option httpchk GET /healthz
    http-check expect status 200
    mode tcp
    option ssl-hello-chk
    balance     roundrobin
{src}{servers}"""


# -- statistics and the tables (host-safe: files only) --------------------------------------------


def percentile(xs: Sequence[float], p: float) -> float | None:
    """Nearest rank: the smallest sample with at least p % of the samples at or below it."""
    if not xs:
        return None
    ordered = sorted(xs)
    rank = max(1, math.ceil(p / 100 * len(ordered)))
    return ordered[rank - 1]


Key = tuple[str, str, str]  # (mode, path, kind)


@dataclass
class Samples:
    """Every kept sample: seconds (latency kinds) or MiB/s (bulk), by (mode, path, kind)."""

    values: dict[Key, list[float]]
    turns: dict[Key, list[int]]  # the turn of each value (for the A/A split)
    failed: dict[Key, list[str]]
    masters: dict[Key, Counter[str]]

    @classmethod
    def empty(cls) -> Samples:
        return cls({}, {}, {}, {})

    def add(self, mode: str, rec: dict[str, Any]) -> None:
        if rec.get("warm"):
            return
        key = (mode, rec["path"], rec["kind"])
        if rec.get("s") is None:
            self.failed.setdefault(key, []).append(str(rec.get("err", "?")))
            return
        value = float(rec["s"])
        if rec["kind"] == "bulk":
            value = rec["bytes"] / (1 << 20) / value if value > 0 else 0.0
        self.values.setdefault(key, []).append(value)
        self.turns.setdefault(key, []).append(int(rec.get("i", 0)))
        if rec.get("master"):
            self.masters.setdefault(key, Counter())[rec["master"]] += 1

    def pick(self, path: str, kind: str, modes: Sequence[str] = MODES) -> list[float]:
        return [v for m in modes for v in self.values.get((m, path, kind), [])]

    def halves(self, path: str, kind: str) -> tuple[list[float], list[float]]:
        """The samples of even and of odd turns, every mode pooled."""
        even: list[float] = []
        odd: list[float] = []
        for m in MODES:
            for v, i in zip(
                self.values.get((m, path, kind), []),
                self.turns.get((m, path, kind), []),
                strict=True,
            ):
                (odd if i % 2 else even).append(v)
        return even, odd


def stat(xs: Sequence[float], kind: str, what: str) -> float | None:
    """p50 / p99 of latencies, the median of bulk MiB/s."""
    if kind == "bulk":
        return statistics.median(xs) if xs else None
    return percentile(xs, 50 if what == "p50" else 99)


def fmt_ms(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    ms = seconds * 1000
    if ms >= 100:
        return f"{ms:.0f}"
    if ms >= 10:
        return f"{ms:.1f}"
    if ms >= 1:
        return f"{ms:.2f}"
    return f"{ms:.3f}"


def fmt_value(x: float | None, kind: str) -> str:
    if x is None:
        return "-"
    return f"{x:.1f}" if kind == "bulk" else fmt_ms(x)


def ratio(a: float | None, b: float | None) -> float | None:
    return None if a is None or b is None or b == 0 else a / b


def fmt_ratio(r: float | None) -> str:
    return "-" if r is None else f"{r:.2f}"


ROWS: tuple[tuple[str, str, str], ...] = (
    ("connect", "p50", "TCP connect p50 (ms)"),
    ("connect", "p99", "TCP connect p99 (ms)"),
    ("kept", "p50", "kept-alive TLS GET p50 (ms)"),
    ("kept", "p99", "kept-alive TLS GET p99 (ms)"),
    ("fresh", "p50", "fresh TLS GET p50 (ms)"),
    ("fresh", "p99", "fresh TLS GET p99 (ms)"),
    ("bulk", "median", "bulk over TLS, MiB/s (median)"),
)


def main_rows(s: Samples) -> list[tuple[str, ...]]:
    """direct, VIP route, VIP link, haproxy, then VIP route/direct, VIP link/direct,
    haproxy/direct, each ratio against direct of the same phases."""
    rows = []
    for kind, what, label in ROWS:
        direct = stat(s.pick("direct", kind), kind, what)
        d_route = stat(s.pick("direct", kind, ["route"]), kind, what)
        d_link = stat(s.pick("direct", kind, ["link"]), kind, what)
        v_route = stat(s.pick("vip", kind, ["route"]), kind, what)
        v_link = stat(s.pick("vip", kind, ["link"]), kind, what)
        hap = stat(s.pick("haproxy", kind), kind, what)
        rows.append(
            (
                label,
                *(fmt_value(x, kind) for x in (direct, v_route, v_link, hap)),
                fmt_ratio(ratio(v_route, d_route)),
                fmt_ratio(ratio(v_link, d_link)),
                fmt_ratio(ratio(hap, direct)),
            )
        )
    return rows


MAIN_HEAD = (
    "",
    "direct",
    "VIP route",
    "VIP link",
    "haproxy",
    "VIP route/direct",
    "VIP link/direct",
    "haproxy/direct",
)


def phase_rows(s: Samples) -> list[tuple[str, ...]]:
    """Every path in each kind of phase: what the pooled columns are made of."""
    rows = []
    for kind, what, label in ROWS:
        cells = [
            fmt_value(stat(s.pick(path, kind, [mode]), kind, what), kind)
            for mode in MODES
            for path in PATHS
        ]
        rows.append((label, *cells))
    return rows


PHASE_HEAD = (
    "",
    "route: direct",
    "route: VIP",
    "route: haproxy",
    "link: direct",
    "link: VIP",
    "link: haproxy",
)


def render(head: Sequence[str], rows: Sequence[Sequence[str]], markdown: bool) -> str:
    if markdown:
        lines = ["| " + " | ".join(head) + " |", "|---" + "|---:" * (len(head) - 1) + "|"]
        lines += ["| " + " | ".join(r) + " |" for r in rows]
        return "\n".join(lines)
    table = [tuple(head), *(tuple(r) for r in rows)]
    widths = [max(len(r[i]) for r in table) for i in range(len(head))]
    return "\n".join(
        "  ".join(
            c.ljust(w) if i == 0 else c.rjust(w)
            for i, (c, w) in enumerate(zip(r, widths, strict=True))
        ).rstrip()
        for r in table
    )


TITLES = {"connect": "TCP connect", "kept": "kept-alive TLS GET", "fresh": "fresh TLS GET"}
MODE_TITLES = {"route": "VIP route", "link": "VIP link"}


def targets(s: Samples) -> list[str]:
    """Issue 14's target on this run's numbers, then the VIP against haproxy."""
    lines = [f"Targets (issue 14): through the VIP <= {TARGET:.2f}x direct at p50 and p99"]
    beat = ["haproxy, the peer to beat: the VIP below haproxy at p50 and p99 (same phases)"]

    def check(ok: bool | None, text: str) -> str:
        return f"  {'n/a ' if ok is None else 'PASS' if ok else 'FAIL'}  {text}"

    for mode in MODES:
        for kind in LATENCY_KINDS:
            vip = s.pick("vip", kind, [mode])
            direct = s.pick("direct", kind, [mode])
            hap = s.pick("haproxy", kind, [mode])
            r = [ratio(percentile(vip, p), percentile(direct, p)) for p in (50, 99)]
            ok = None if None in r else all(x is not None and x <= TARGET for x in r)
            lines.append(
                check(
                    ok,
                    f"{MODE_TITLES[mode]}, {TITLES[kind]}: p50 {fmt_ratio(r[0])}x, "
                    f"p99 {fmt_ratio(r[1])}x",
                )
            )
            h = [ratio(percentile(vip, p), percentile(hap, p)) for p in (50, 99)]
            ok = None if None in h else all(x is not None and x < 1 for x in h)
            beat.append(
                check(
                    ok,
                    f"{MODE_TITLES[mode]}, {TITLES[kind]}: VIP/haproxy p50 {fmt_ratio(h[0])}x, "
                    f"p99 {fmt_ratio(h[1])}x",
                )
            )
        vip_mb = stat(s.pick("vip", "bulk", [mode]), "bulk", "median")
        hap_mb = stat(s.pick("haproxy", "bulk", [mode]), "bulk", "median")
        direct_mb = stat(s.pick("direct", "bulk", [mode]), "bulk", "median")
        beat.append(
            f"  info  {MODE_TITLES[mode]}, bulk MiB/s: VIP {fmt_value(vip_mb, 'bulk')}, haproxy "
            f"{fmt_value(hap_mb, 'bulk')}, direct {fmt_value(direct_mb, 'bulk')} (same phases)"
        )
    return [*lines, "", *beat]


def noise_floor(s: Samples) -> list[str]:
    """direct against itself: even turns' samples over odd turns'. A ratio the paths cannot
    be told apart by (the measurement's resolution at this sample size)."""
    out = ["Noise floor, direct against itself (even turns / odd turns, every phase):"]
    for kind in LATENCY_KINDS:
        even, odd = s.halves("direct", kind)
        r = [ratio(percentile(even, p), percentile(odd, p)) for p in (50, 99)]
        out.append(f"  {TITLES[kind]}: p50 {fmt_ratio(r[0])}x, p99 {fmt_ratio(r[1])}x")
    return out


def counts(s: Samples) -> list[str]:
    """Samples, failures and the masters each path reached."""
    out = ["Samples (failed) and the masters they reached:"]
    for mode in MODES:
        for path in PATHS:
            cells = []
            for kind in KINDS:
                key = (mode, path, kind)
                n = len(s.values.get(key, []))
                bad = len(s.failed.get(key, []))
                spread = s.masters.get(key)
                where = (
                    " " + "/".join(f"{m}:{c}" for m, c in sorted(spread.items())) if spread else ""
                )
                cells.append(f"{kind} {n}{f' ({bad} failed)' if bad else ''}{where}")
            out.append(f"  {mode:<5} {path:<7} " + "; ".join(cells))
    errors = Counter(e.split(":")[0] for errs in s.failed.values() for e in errs)
    if errors:
        out.append("  failures by reason: " + ", ".join(f"{k} {v}" for k, v in errors.items()))
    return out


def load(out: Path) -> tuple[dict[str, Any], Samples, list[Samples]]:
    """meta.json, every phase's samples together, and each phase's alone."""
    meta = json.loads((out / "meta.json").read_text())
    samples = Samples.empty()
    each = []
    for phase in meta["phases"]:
        own = Samples.empty()
        path = out / phase["samples"]
        lines = path.read_text().splitlines() if path.exists() else []
        for line in lines:
            if line.strip():
                try:
                    rec = json.loads(line)
                except ValueError:  # a torn last line
                    continue
                samples.add(phase["mode"], rec)
                own.add(phase["mode"], rec)
        each.append(own)
    return meta, samples, each


def phase_ratios(mode: str, s: Samples) -> str:
    """One phase: VIP/direct at p50 and p99 per latency kind, bulk MiB/s of each path."""
    cells = []
    for kind in LATENCY_KINDS:
        vip, direct = s.pick("vip", kind, [mode]), s.pick("direct", kind, [mode])
        r = [fmt_ratio(ratio(percentile(vip, p), percentile(direct, p))) for p in (50, 99)]
        cells.append(f"{TITLES[kind]} {r[0]} / {r[1]}")
    bulk = [fmt_value(stat(s.pick(p, "bulk", [mode]), "bulk", "median"), "bulk") for p in PATHS]
    return "; ".join(cells) + f"; bulk MiB/s direct {bulk[0]}, VIP {bulk[1]}, haproxy {bulk[2]}"


def print_report(out: Path) -> str:
    meta, s, each = load(out)
    st = meta.get("settings", {})
    phases = meta.get("phases", [])
    order = ", ".join(p["mode"] for p in phases)
    took = meta.get("seconds")
    text = "\n".join(
        [
            f"Data path, {meta.get('started', '?')}, commit {meta.get('commit', '?')}, "
            f"kernel {meta.get('kernel', '?')}, {meta.get('cpus', '?')} CPUs, "
            f"{meta.get('haproxy', 'haproxy ?')}",
            f"Phases: {order}; per phase and path: {st.get('connects')} connects, "
            f"{st.get('requests')} kept-alive requests, {st.get('fresh')} fresh TLS requests, "
            f"{st.get('bulk')} x {st.get('bulk_mb')} MiB bulk"
            + (f"; run took {took:.0f} s" if took else ""),
            "direct: round-robin over the three masters' IPs; ratios against direct of the "
            "same phases (VIP route: route phases, VIP link: link phases, haproxy: all); "
            "latency: lower is better, bulk: higher is better. TCP connect: to what the client "
            "dials (haproxy: its listener on the node; its connection to a master comes after).",
            "",
            render(MAIN_HEAD, main_rows(s), markdown=False),
            "",
            *targets(s),
            "",
            "Each kind of phase on its own:",
            render(PHASE_HEAD, phase_rows(s), markdown=False),
            "",
            *noise_floor(s),
            "",
            "Each phase on its own, VIP/direct at p50 / p99:",
            *(
                f"  {p.get('tag', p['mode'])}: {phase_ratios(p['mode'], own)}"
                for p, own in zip(phases, each, strict=True)
            ),
            "",
            *counts(s),
            "",
            "Phases:",
            *(f"  {p['mode']:<5} {phase_line(p)}" for p in phases),
        ]
    )
    print(text)
    (out / "report.txt").write_text(text + "\n")
    (out / "table.md").write_text(
        render(MAIN_HEAD, main_rows(s), markdown=True)
        + "\n\n"
        + render(PHASE_HEAD, phase_rows(s), markdown=True)
        + "\n"
    )
    return text


def phase_line(p: dict[str, Any]) -> str:
    node, masters = p.get("node", {}), p.get("masters", {})
    return (
        f"{p.get('seconds', 0):.0f} s measuring; VIP route: {p.get('vip_route', '?')}; "
        f"net.ipv4.vs.conntrack {p.get('conntrack', '?')}; forward {p.get('forward', '?')}; "
        f"lvscare alive at the end: {p.get('lvscare_alive', '?')}; node: "
        + ", ".join(f"{k.split(':')[1]} {v}" for k, v in node.items())
        + "; masters: "
        + ", ".join(f"{k.split(':')[1]} {v}" for k, v in masters.items())
    )


NODE_COUNTERS = ("TcpExt:TCPSynRetrans", "Tcp:RetransSegs", "TcpExt:ListenOverflows")
MASTER_COUNTERS = ("TcpExt:ListenOverflows", "TcpExt:ListenDrops", "Tcp:RetransSegs")


def parse_netstat(text: str) -> dict[str, int]:
    """/proc/net/netstat or /proc/net/snmp (or both, one after the other): "Group:Field" ->
    value; each group is a line of names and a line of values."""
    out: dict[str, int] = {}
    lines = text.splitlines()
    for head, values in zip(lines[::2], lines[1::2], strict=False):
        group, _, names = head.partition(":")
        for name, value in zip(names.split(), values.partition(":")[2].split(), strict=False):
            out[f"{group}:{name}"] = int(value)
    return out


def counter_delta(
    before: dict[str, int], after: dict[str, int], names: Sequence[str]
) -> dict[str, int]:
    return {n: after.get(n, 0) - before.get(n, 0) for n in names}


# -- the run (lab VM only) -------------------------------------------------------------------------


@dataclass
class Settings:
    connects: int
    requests: int
    fresh: int
    bulk: int
    bulk_mb: int
    warmup: int
    rounds: int


def commit() -> str:
    def git(*args: str) -> str:
        proc = subprocess.run(
            ["git", "-c", "safe.directory=*", "-C", str(ROOT), *args],
            capture_output=True,
            text=True,
            check=False,
            timeout=120,
        )
        return proc.stdout.strip() if proc.returncode == 0 else ""

    head = git("rev-parse", "--short", "HEAD") or "unknown"
    changed = git("diff", "--name-only", "HEAD")
    return f"{head} (changed: {', '.join(changed.split())})" if changed else head


def wait_for(
    what: str, pred: Callable[[], bool], timeout: float, proc: LabProcess | None = None
) -> None:
    deadline = time.monotonic() + timeout
    while not pred():
        if proc is not None and not proc.running():
            raise RuntimeError(f"{what}: the process exited\n{proc.tail()}")
        if time.monotonic() > deadline:
            raise RuntimeError(f"{what}: not within {timeout:.0f} s")
        time.sleep(0.5)


def reaches_all(lab: Lab, host: str, port: int) -> bool:
    """Three fresh connections to host:port reach the three masters, one each."""
    from tests.support.labnet import reach

    hits = reach(host, port, count=len(lab.masters), timeout=10)
    return set(hits) == {m.name for m in lab.masters}


def run_phase(lab: Lab, out: Path, settings: Settings, k: int, mode: str) -> dict[str, Any]:
    from tests.support.lab_lvscare import all_up, care_argv, dests, every_master_up_and_watched
    from tests.support.labnet import ip_batch, ipvs_table, sh

    tag = f"{k:02d}-{mode}"
    ip_batch([f"addr add {a}/24 dev {lab.bridge}" for a in (DIRECT_SOURCE, HAPROXY_SOURCE)])
    conf = out / "haproxy.cfg"
    haproxy = lab.spawn([haproxy_bin(), "-db", "-f", str(conf)], out / f"haproxy-{tag}.log")
    argv = care_argv(lab.rs_args(), "--mode", mode, "--interval", "1")
    lvscare = lab.spawn(argv, out / f"lvscare-{tag}.log")
    log(f"phase {tag}: {' '.join(argv[1:])}")
    t0 = time.monotonic()
    wait_for("lvscare's table", lambda: dests() == all_up(lab), 300, lvscare)
    wait_for("lvscare's /status", every_master_up_and_watched, 120, lvscare)
    log(f"phase {tag}: lvscare ready after {time.monotonic() - t0:.1f} s")
    wait_for("the VIP to reach every master", lambda: reaches_all(lab, VIP, PORT), 60)
    wait_for("haproxy to reach every master", lambda: reaches_all(lab, *HAPROXY_BIND), 60, haproxy)
    route = sh("ip", "route", "get", VIP).stdout.split("\n")[0].strip()
    service = ipvs_table().get((VIP, PORT))
    forward = sorted(set((service or {"forward": {}})["forward"].values()))
    conntrack = Path("/proc/sys/net/ipv4/vs/conntrack").read_text().strip()
    direct = ",".join(f"{m.ip}:{PORT}" for m in lab.masters)
    samples = out / f"samples-{tag}.jsonl"
    node0, masters0 = node_counters(), master_counters(lab)
    client = [
        sys.executable, "-S", str(CLIENT), "--ca", str(lab.ca_file),
        "--server-name", SERVER_NAME,
        "--path", f"direct={direct}@{DIRECT_SOURCE}",
        "--path", f"vip={VIP}:{PORT}",
        "--path", f"haproxy={HAPROXY_BIND[0]}:{HAPROXY_BIND[1]}",
        "--connects", str(settings.connects), "--requests", str(settings.requests),
        "--fresh", str(settings.fresh), "--bulk", str(settings.bulk),
        "--bulk-mb", str(settings.bulk_mb), "--warmup", str(settings.warmup),
        "--max-tls", MAX_TLS,
        "--out", str(samples),
    ]  # fmt: skip
    log(f"phase {tag}: client running (VIP route: {route}; conntrack {conntrack})")
    started = time.monotonic()
    with open(out / f"client-{tag}.log", "w", encoding="utf-8") as client_log:
        proc = subprocess.Popen(client, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        assert proc.stdout is not None
        for line in proc.stdout:
            client_log.write(line)
            client_log.flush()
            log(f"phase {tag}: {line.rstrip()}")
        code = proc.wait()
    seconds = time.monotonic() - started
    node = counter_delta(node0, node_counters(), NODE_COUNTERS)
    masters = counter_delta(masters0, master_counters(lab), MASTER_COUNTERS)
    if code != 0:
        raise RuntimeError(f"the client exited {code}; see client-{tag}.log")
    phase = {
        "mode": mode,
        "tag": tag,
        "samples": samples.name,
        "seconds": seconds,
        "vip_route": route,
        "conntrack": conntrack,
        "forward": ",".join(forward),
        "lvscare_alive": lvscare.running(),
        "haproxy_alive": haproxy.running(),
        "node": node,  # the kernel's counters over the measurement, the node's namespace
        "masters": masters,  # and the masters' namespaces summed
    }
    lab.reset()  # stops lvscare and haproxy; the table, dummy, nft rules, sysctls, addresses
    return phase


def node_counters() -> dict[str, int]:
    return parse_netstat(Path("/proc/net/netstat").read_text() + Path("/proc/net/snmp").read_text())


def master_counters(lab: Lab) -> dict[str, int]:
    total: dict[str, int] = {}
    for m in lab.masters:
        text = m.exec("cat", "/proc/net/netstat", "/proc/net/snmp").stdout
        for k, v in parse_netstat(text).items():
            total[k] = total.get(k, 0) + v
    return total


def haproxy_bin() -> str:
    found = shutil.which("haproxy")
    if found is None and Path("/usr/sbin/haproxy").exists():
        found = "/usr/sbin/haproxy"
    if found is None:
        raise RuntimeError("no haproxy: scripts/setup installs Debian's package")
    return found


def run(opts: argparse.Namespace) -> None:
    from tests.support.labnet import Lab

    out: Path = opts.out
    fresh_dir(out)
    quick = opts.quick
    settings = Settings(
        connects=200 if quick else opts.connects,
        requests=200 if quick else opts.requests,
        fresh=50 if quick else opts.fresh,
        bulk=3 if quick else opts.bulk,
        bulk_mb=4 if quick else opts.bulk_mb,
        warmup=opts.warmup,
        rounds=1 if quick else opts.rounds,
    )
    hap = haproxy_bin()
    version = subprocess.run([hap, "-v"], capture_output=True, text=True, check=False)
    meta: dict[str, Any] = {
        "started": dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "commit": commit(),
        "kernel": os.uname().release,
        "cpus": os.cpu_count(),
        "haproxy": " ".join(version.stdout.split("\n")[0].split()[:3]),
        "settings": asdict(settings),
        "phases": [],
    }
    log(f"commit {meta['commit']}; {meta['haproxy']}; settings {asdict(settings)}")
    lab = Lab(3).build()
    (out / "haproxy.cfg").write_text(haproxy_conf([(m.name, m.ip) for m in lab.masters]))
    try:
        k = 0
        for _ in range(settings.rounds):
            for mode in MODES:
                k += 1
                meta["phases"].append(run_phase(lab, out, settings, k, mode))
                (out / "meta.json").write_text(json.dumps(meta, indent=1) + "\n")
    finally:
        meta["seconds"] = time.monotonic() - START
        (out / "meta.json").write_text(json.dumps(meta, indent=1) + "\n")
        lab.destroy()
    print()
    print_report(out)


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=(__doc__ or "").splitlines()[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--quick", action="store_true", help="200 connects / requests, 50 fresh, 3 x 4 MiB, 1 round"
    )
    parser.add_argument("--connects", type=int, default=2000, help="per path and phase")
    parser.add_argument("--requests", type=int, default=2000, help="kept-alive, per path and phase")
    parser.add_argument("--fresh", type=int, default=500, help="fresh TLS, per path and phase")
    parser.add_argument("--bulk", type=int, default=10, help="bulk transfers per path and phase")
    parser.add_argument("--bulk-mb", type=int, default=16, help="MiB per bulk transfer")
    parser.add_argument("--warmup", type=int, default=5, help="turns left out per section")
    parser.add_argument(
        "--rounds", type=int, default=2, help="route + link phase pairs (default 2)"
    )
    parser.add_argument("--out", type=Path, default=ROOT / ".lab" / "bench-datapath")
    parser.add_argument(
        "--report", type=Path, metavar="DIR", help="only print the tables from a run's files"
    )
    opts = parser.parse_args(argv)
    if opts.report:
        print_report(opts.report)
        return
    run(opts)


if __name__ == "__main__":
    main()
