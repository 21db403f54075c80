"""Failover benchmark (issue 6, point 5): lvscare and keepalived, same lab, same faults.

Runs inside the lab VM, everything in one boot:

    scripts/lab python -m bench.failover            # full run (~15 min emulated)
    scripts/lab python -m bench.failover --quick    # 1 run per scenario, 10 s steady state

Three fake masters (tests/support/labnet.py), one daemon at a time guarding 10.103.97.2:6443:
`lvscare care --interval 1` with every other default, then `keepalived --check` with
SSL_GET /healthz every second (configuration written below). Two helper processes run for
the whole benchmark: bench/vip_client.py opens 50 connections/s through the VIP (TCP connect
and a small read: the apiserver's clean close) and bench/ipvs_poll.py dumps the kernel's
table over netlink every 3 ms.

Scenarios, each against master m2: SIGKILL of its apiserver, 100 % packet loss (tc netem),
/healthz hanging, /healthz answering 500, the apiserver starting again after a kill, and
`ipvsadm -C`. "Drained" is the first table sample in which the victim can no longer get
new connections: weight 0 or absent. A connection *fails* when it is refused, reset or
gets no clean close within 2 s; it is "after the drain" when it *started* after the sample
that showed the drain. Then each daemon's RSS and CPU over a quiet steady
state (client and poller paused).

Everything raw is kept in --out (default .lab/bench-failover/, the one directory the VM can
write): the poller's and the client's JSON lines, each daemon's log, marks.json (what was
done when). `python -m bench.failover --report DIR` prints the tables again from those files,
on any machine. Each scenario also gets a picture, timeline-SCENARIO.png (bench/timeline.py,
with matplotlib from the test extra): the table's weights and the failed connects over time,
lvscare above keepalived, for the median run of each.

--busy (issue 16): the same faults on a busy node, both daemons alike, in one boot. After the
lab is built and before the first daemon starts, one busy loop per CPU (`sh` spinning at
normal priority) keeps the CPUs about fully used until the end, steady state included (its
row is then the busy node's). bench/tls_load.py sends kubelet-like TLS traffic through the
VIP during each daemon's turn (4 kept-alive connections with a `GET /healthz` every 0.5 s,
2 new connections a second; the masters serve RSA-2048 certificates, as kubeadm issues
them), steady state included. During lvscare's turn bench/loop_lag.py times lvscare's
`GET /healthz` every 0.5 s (it waits for a no-op on the care loop): the care loop's lag, in
the steady state and in the fault windows. Extra files: busy.json, tls.jsonl, lag.jsonl;
default --out .lab/bench-failover-busy/.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import json
import math
import os
import signal
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, Protocol

from bench.progress import fresh_dir, log

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent

if TYPE_CHECKING:
    from bench.timeline import Run
    from tests.support.labnet import Lab, LabProcess, Master

VIP, PORT = "10.103.97.2", 6443
CLK_TCK = os.sysconf("SC_CLK_TCK")
DAEMONS = ("lvscare", "keepalived")
FAULTS = ("kill", "blackhole", "hang", "fail")
TITLES = {
    "kill": "killed master",
    "blackhole": "blackholed master",
    "hang": "hung master",
    "fail": "master answering 500",
    "recover": "master recovering",
    "flush": "ipvsadm -C",
}
BUSY_LOOP = ["sh", "-c", "while :; do :; done"]  # no fork per turn: `:` is dash's builtin
# bench/tls_load.py's settings: kept-alive connections, seconds between their requests, new
# connections a second
TLS_LOAD = {"conns": 4, "period": 0.5, "fresh": 2.0}
LAG_PERIOD = 0.5  # seconds between bench/loop_lag.py's requests
# How long a daemon gets to drain (or repair) before the run counts as "never".
DRAIN_TIMEOUT = {"kill": 10.0, "blackhole": 15.0, "hang": 15.0, "fail": 15.0, "flush": 10.0}

Table = dict[str, int] | None


# -- the kernel table, as the poller saw it ----------------------------------------------------


class TableLog:
    """Reads bench/ipvs_poll.py's output as it grows: the table's history with timestamps."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.changes: list[tuple[float, Table]] = []
        self.gaps: list[tuple[float, float]] = []
        self.counts: list[tuple[float, int]] = []
        self._fh: IO[str] | None = None
        self._rest = ""

    def update(self) -> None:
        if self._fh is None:
            if not self.path.exists():
                return
            self._fh = open(self.path, encoding="utf-8")  # noqa: SIM115 - kept open to tail it
        data = self._rest + self._fh.read()
        lines = data.split("\n")
        self._rest = lines.pop()
        for line in lines:
            if line:
                self._add(json.loads(line))

    def _add(self, rec: dict[str, Any]) -> None:
        if "tb" in rec:
            self.changes.append((rec["t"], rec["tb"]))
        elif "gap" in rec:
            self.gaps.append((rec["gap"][0], rec["gap"][1]))
        elif "n" in rec:
            self.counts.append((rec["t"], rec["n"]))

    def state_at(self, t: float) -> Table:
        state: Table = None
        for when, table in self.changes:
            if when > t:
                break
            state = table
        return state

    def first(self, pred: Callable[[Table], bool], since: float) -> float | None:
        """Earliest time >= since at which pred holds (since itself if it already did)."""
        if self.changes and self.changes[0][0] <= since and pred(self.state_at(since)):
            return since
        return next((t for t, table in self.changes if t > since and pred(table)), None)

    def wait(self, pred: Callable[[Table], bool], since: float, timeout: float) -> float | None:
        """Like first(), waiting up to `timeout` s of wall time for it to happen."""
        deadline = time.time() + timeout
        while True:
            self.update()
            found = self.first(pred, since)
            if found is not None or time.time() > deadline:
                return found
            time.sleep(0.01)

    @classmethod
    def load(cls, path: Path) -> TableLog:
        table = cls(path)
        table.update()
        return table


def complete(rs: Sequence[str]) -> Callable[[Table], bool]:
    return lambda tb: tb is not None and all(tb.get(key, 0) > 0 for key in rs)


def drained(victim: str) -> Callable[[Table], bool]:
    """The victim gets no new connections: in a table that exists, at weight 0 or absent."""
    return lambda tb: tb is not None and tb.get(victim, 0) == 0


# -- what was done when -------------------------------------------------------------------------


@dataclass
class Mark:
    """One scenario run: the fault, when the table showed its effect, the repair."""

    daemon: str
    scenario: str  # kill | blackhole | hang | fail | flush
    run: int
    # wall time the fault began (blackhole: the qdisc towards the master in place; flush: the
    # first sample without the full table)
    fault: float
    fault_done: float  # the action returned (kill waited for the exit, tc ran twice, ...)
    drained: float | None = None  # first sample with the victim drained (flush: repaired)
    window_end: float = 0.0  # failures are counted for connections started in [fault, this)
    restore: float | None = None  # the master could serve again (listening, qdisc gone, ok)
    back: float | None = None  # first sample with the victim back at its weight
    back_window_end: float | None = None


@dataclass
class Steady:
    daemon: str
    seconds: float
    pids: list[int]
    rss_kib: list[int] = field(default_factory=list)  # one sample a second, whole process tree
    cpu_s: float = 0.0


# -- processes ----------------------------------------------------------------------------------


def children(pid: int) -> list[int]:
    """pid and all its descendants (keepalived --check forks a checker process)."""
    parents: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            parents[int(entry.name)] = int(stat.rsplit(")", 1)[1].split()[1])
    tree, todo = [pid], [pid]
    while todo:
        parent = todo.pop()
        kids = [p for p, pp in parents.items() if pp == parent]
        tree += kids
        todo += kids
    return tree


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK  # utime + stime, all threads


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


class Helper:
    """A helper process (poller, client): paused and resumed with SIGUSR1 / SIGUSR2."""

    def __init__(self, argv: list[str], log_path: Path) -> None:
        from tests.support.labnet import start_process

        self.proc: LabProcess = start_process(argv, log_path)

    def pause(self) -> None:
        self.proc.signal(signal.SIGUSR1)

    def resume(self) -> None:
        self.proc.signal(signal.SIGUSR2)

    def wait_ready(self, word: str, timeout: float = 120) -> None:
        deadline = time.time() + timeout
        while word not in self.proc.stdout():
            if not self.proc.running() or time.time() > deadline:
                raise RuntimeError(f"{self.proc.argv}: not ready\n{self.proc.tail()}")
            time.sleep(0.1)

    def stop(self) -> None:
        self.proc.stop(timeout=10)


def node_cpu_ticks() -> tuple[int, int]:
    """(busy, total) jiffies of all CPUs since boot, from /proc/stat (busy: not idle/iowait)."""
    fields = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:9]]
    return sum(fields) - fields[3] - fields[4], sum(fields)


# What a process is, from its command line: the label its CPU time is summed under.
LABELS = (
    ("while :; do :; done", "busy loops"),
    ("fake_apiserver.py", "masters"),
    ("tls_load.py", "TLS load"),
    ("loop_lag.py", "lag probe"),
    ("vip_client.py", "client"),
    ("ipvs_poll.py", "poller"),
    ("bench.failover", "this script"),
    ("-m lvscare", "lvscare"),
    ("keepalived", "keepalived"),
)


def process_cpu() -> dict[int, tuple[str, float]]:
    """pid -> (label, CPU seconds so far) of every process; kernel threads as one label."""
    found: dict[int, tuple[str, float]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        comm = stat[stat.find("(") + 1 : stat.rfind(")")]
        fields = stat.rsplit(")", 1)[1].split()
        label = next((name for key, name in LABELS if key in cmdline), None)
        if label is None:
            label = "kernel threads" if not cmdline else f"other ({comm})"
        found[int(entry.name)] = (label, (int(fields[11]) + int(fields[12])) / CLK_TCK)
    return found


def cpu_by_label(
    before: dict[int, tuple[str, float]], after: dict[int, tuple[str, float]], wall: float
) -> dict[str, float]:
    """% of one core each label used between two process_cpu() snapshots, largest first
    (a process that started in between counts from 0; one that ended is lost)."""
    used: dict[str, float] = {}
    for pid, (label, cpu) in after.items():
        was = before.get(pid)
        base = was[1] if was is not None and was[0] == label else 0.0
        used[label] = used.get(label, 0.0) + cpu - base
    pct = {k: round(100 * v / max(wall, 1e-9), 1) for k, v in used.items()}
    return dict(sorted(((k, v) for k, v in pct.items() if v >= 0.05), key=lambda kv: -kv[1]))


class BusyLoops:
    """One plain busy process per CPU at normal priority: a node whose CPUs its pods use up."""

    def __init__(self, count: int) -> None:
        self.count = count
        self.procs: list[subprocess.Popen[bytes]] = []
        self.started = 0.0
        self.cpu_s = 0.0  # CPU time they got, summed (set by stop())
        self.wall = 0.0

    def start(self) -> None:
        self.started = time.monotonic()
        for _ in range(self.count):
            self.procs.append(
                subprocess.Popen(
                    BUSY_LOOP,
                    stdin=subprocess.DEVNULL,
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                    start_new_session=True,  # a ^C at the terminal goes to us, not to them
                )
            )

    def stop(self) -> None:
        for p in self.procs:
            with contextlib.suppress(OSError, ValueError, IndexError):
                self.cpu_s += cpu_seconds(p.pid)
            p.kill()
        for p in self.procs:
            with contextlib.suppress(subprocess.TimeoutExpired):
                p.wait(timeout=10)
        if self.procs:
            self.wall = time.monotonic() - self.started
        self.procs.clear()


class Daemon(Protocol):
    name: str

    def start(self) -> None: ...

    def stop(self) -> None: ...

    def pid(self) -> int: ...

    def steady(self) -> bool: ...


class Lvscare:
    """`lvscare care --interval 1`, every other option at its default; JSON log to a file."""

    name = "lvscare"

    def __init__(self, lab: Lab, out: Path) -> None:
        self.lab = lab
        self.log_path = out / "lvscare.log"
        self.proc: LabProcess | None = None

    def argv(self) -> list[str]:
        from tests.support.lab_lvscare import care_argv

        return care_argv(self.lab.rs_args(), "--interval", "1")

    def start(self) -> None:
        self.proc = self.lab.spawn(self.argv(), self.log_path)

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.stop()

    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def steady(self) -> bool:
        """Every master "up" and watched in /status (every probe may time out at start
        under emulation: fail-open)."""
        from tests.support.lab_lvscare import every_master_up_and_watched

        return every_master_up_and_watched()


def keepalived_conf(masters: Sequence[str]) -> str:
    """keepalived.conf(5) as issue 6 asks: SSL_GET /healthz, delay_loop 1, connect_timeout 1,
    retry 1, delay_before_retry 1. No inhibit_on_failure, so a failed real server is removed
    (keepalived's default), which drains it as surely as weight 0. lvs_sched/lvs_method are
    the current names of lb_algo/lb_kind (keepalived 2.2 accepts both)."""
    servers = "".join(
        f"""    real_server {ip} {PORT} {{
        weight 1
        SSL_GET {{
            url {{
                path /healthz
                status_code 200
            }}
            connect_timeout 1
            retry 1
            delay_before_retry 1
        }}
    }}
"""
        for ip in masters
    )
    return (
        "global_defs {\n    router_id lvscare_bench\n}\n"
        f"virtual_server {VIP} {PORT} {{\n    delay_loop 1\n    lvs_sched rr\n"
        f"    lvs_method NAT\n    protocol TCP\n{servers}}}\n"
    )


class Keepalived:
    """`keepalived --check` in the foreground; its console log is timestamped as it arrives
    (keepalived's own stamps have whole seconds), one "<wall time> <line>" per line."""

    name = "keepalived"

    def __init__(self, lab: Lab, out: Path) -> None:
        self.conf = out / "keepalived.conf"
        self.conf.write_text(keepalived_conf([m.ip for m in lab.masters]))
        self.log_path = out / "keepalived.log"
        self.run_dir = Path("/tmp/bench-keepalived")
        self.proc: subprocess.Popen[str] | None = None
        self.reader: threading.Thread | None = None

    def start(self) -> None:
        self.run_dir.mkdir(parents=True, exist_ok=True)
        argv = [
            "keepalived",
            "--dont-fork",
            "--check",
            "--log-console",
            "--log-detail",
            "--no-syslog",
            "--use-file",
            str(self.conf),
            "--pid",
            str(self.run_dir / "keepalived.pid"),
            "--checkers_pid",
            str(self.run_dir / "checkers.pid"),
        ]
        self.proc = subprocess.Popen(
            argv,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            text=True,
            bufsize=1,
        )
        self.reader = threading.Thread(target=self._read, args=(self.proc,), daemon=True)
        self.reader.start()

    def _read(self, proc: subprocess.Popen[str]) -> None:
        assert proc.stdout is not None
        with open(self.log_path, "a", encoding="utf-8") as out:
            for line in proc.stdout:
                out.write(f"{time.time():.6f} {line.rstrip()}\n")
                out.flush()

    def stop(self) -> None:
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
        if self.reader is not None:
            self.reader.join(timeout=5)
        self.proc = None

    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def steady(self) -> bool:
        return True


# -- the runs -----------------------------------------------------------------------------------


@dataclass
class Settings:
    runs: dict[str, int]  # scenario -> runs
    steady: float
    after: float  # seconds failures are still counted after the drain
    settle: float  # seconds the full table must hold before the next fault


class Bench:
    """One lab, one victim, the helpers; runs scenarios against one daemon at a time."""

    def __init__(self, lab: Lab, out: Path, settings: Settings, victim: Master) -> None:
        self.lab = lab
        self.out = out
        self.settings = settings
        self.victim = victim
        self.victim_key = f"{victim.ip}:{PORT}"
        self.all_keys = [f"{m.ip}:{PORT}" for m in lab.masters]
        self.table = TableLog(out / "table.jsonl")
        self.marks: list[Mark] = []
        self.steady: list[Steady] = []
        self.windows: list[tuple[str, float, float]] = []  # (daemon, start, end) of its turn
        self.checks: list[str] = []
        # --busy only: the TLS load helper, the busy loops, the steady windows (wall time) and
        # the share of the node's CPUs in use during them
        self.load: Helper | None = None
        self.lag_probe: Helper | None = None  # --busy, lvscare's turn: bench/loop_lag.py
        self.busy: BusyLoops | None = None
        self.steady_windows: dict[str, tuple[float, float]] = {}
        self.node_busy: dict[str, float] = {}
        # label -> % of one core, over the steady state and over the daemon's whole turn
        self.steady_cpu: dict[str, dict[str, float]] = {}
        self.turn_cpu: dict[str, dict[str, float]] = {}
        self.early_ends: list[str] = []  # turns that ended early, and why

    def wait_complete(self, timeout: float, since: float | None = None) -> float:
        when = self.table.wait(complete(self.all_keys), since or time.time(), timeout)
        if when is None:
            raise RuntimeError(f"the table never held all masters: {self.table.state_at(1e12)}")
        return when

    def crosscheck(self) -> None:
        """The hand-made netlink dump of the poller must agree with pyroute2's reading."""
        from tests.support.labnet import ipvs_table

        service = ipvs_table().get((VIP, PORT))
        theirs = {f"{a}:{p}": w for (a, p), w in (service or {"dests": {}})["dests"].items()}
        self.table.update()
        ours = self.table.state_at(time.time())
        verdict = "agree" if ours == theirs else "DISAGREE"
        self.checks.append(f"poller and pyroute2 {verdict}: {ours} / {theirs}")
        log(self.checks[-1])

    def settle(self, daemon: Daemon) -> None:
        """Full table, unchanged for `settle` seconds, and the daemon says all are healthy:
        it is back in its steady state (lvscare's watch reconnects within one interval of a
        master's return)."""
        deadline = time.time() + 180
        while True:
            self.wait_complete(60)
            last_change = self.table.changes[-1][0]
            wait = last_change + self.settings.settle - time.time()
            if wait <= 0 and daemon.steady():
                return
            if time.time() > deadline:
                raise RuntimeError(f"{daemon.name} never settled: {self.table.state_at(1e12)}")
            if wait <= 0:
                wait = 0.2
            time.sleep(wait)
            self.table.update()

    def inject(self, scenario: str) -> tuple[float, float]:
        """Start the fault; (when it took effect, when the action returned)."""
        v = self.victim
        if scenario == "blackhole":  # from the moment packets to the master are dropped
            effective = v.blackhole()
            return effective, time.time()
        action: Callable[[], None] = {
            "kill": v.kill,
            "hang": lambda: v.set_mode("hang"),
            "fail": lambda: v.set_mode("fail"),
        }[scenario]
        t0 = time.time()
        action()
        return t0, time.time()

    def restore(self, scenario: str) -> float:
        """Undo the fault; the time the master could serve again."""
        v = self.victim
        if scenario == "kill":
            v.start()
            return v.ready_file.stat().st_mtime  # written right after listen()
        if scenario == "blackhole":
            v.unblackhole()
        else:
            v.set_mode("ok")
        return time.time()

    def fault_run(self, daemon: Daemon, scenario: str, run: int) -> Mark:
        self.settle(daemon)
        fault, done = self.inject(scenario)
        mark = Mark(daemon.name, scenario, run, fault, done)
        mark.drained = self.table.wait(drained(self.victim_key), fault, DRAIN_TIMEOUT[scenario])
        end = (mark.drained or time.time()) + self.settings.after
        time.sleep(max(0.0, end - time.time()))
        mark.window_end = end
        mark.restore = self.restore(scenario)
        mark.back = self.table.wait(complete(self.all_keys), mark.restore, 30)
        if mark.back is not None:
            mark.back_window_end = mark.back + min(self.settings.after, self.settings.settle)
        took = "never" if mark.drained is None else f"{mark.drained - fault:.3f} s"
        log(f"{daemon.name} {scenario} #{run}: drained after {took}")
        self.marks.append(mark)
        return mark

    def flush_run(self, daemon: Daemon, run: int) -> Mark:
        from tests.support.labnet import sh

        self.settle(daemon)
        t0 = time.time()
        sh("ipvsadm", "-C")
        done = time.time()
        whole = complete(self.all_keys)
        flushed = self.table.wait(lambda tb: not whole(tb), t0, 5) or t0
        mark = Mark(daemon.name, "flush", run, flushed, done)
        mark.drained = self.table.wait(whole, flushed, DRAIN_TIMEOUT["flush"])
        end = (mark.drained or time.time()) + self.settings.after
        time.sleep(max(0.0, end - time.time()))
        mark.window_end = end
        took = "never" if mark.drained is None else f"{mark.drained - flushed:.3f} s"
        log(f"{daemon.name} flush #{run}: table complete again after {took}")
        self.marks.append(mark)
        if mark.drained is None:  # keepalived does not repair: restart it for the next run
            daemon.stop()
            daemon.start()
            self.wait_complete(120)
        return mark

    def measure_steady(self, daemon: Daemon, helpers: Sequence[Helper]) -> Steady:
        """RSS and CPU with the VM quiet: the client and the poller paused."""
        self.settle(daemon)
        for h in helpers:
            h.pause()
        time.sleep(2.5)  # the client's last attempts end (2 s timeout)
        pids = children(daemon.pid())
        result = Steady(daemon.name, self.settings.steady, pids)
        t0, c0 = time.monotonic(), sum(cpu_seconds(p) for p in pids)
        wall0, node0 = time.time(), node_cpu_ticks()
        procs0 = process_cpu() if self.busy is not None else {}
        while time.monotonic() - t0 < self.settings.steady:
            result.rss_kib.append(sum(rss_kib(p) for p in pids))
            time.sleep(1.0)
        wall = time.monotonic() - t0
        result.cpu_s = sum(cpu_seconds(p) for p in pids) - c0
        result.seconds = wall
        node1 = node_cpu_ticks()
        if self.busy is not None:
            self.steady_cpu[daemon.name] = cpu_by_label(procs0, process_cpu(), wall)
        self.steady_windows[daemon.name] = (wall0, time.time())
        self.node_busy[daemon.name] = (node1[0] - node0[0]) / max(1, node1[1] - node0[1])
        for h in helpers:
            h.resume()
        log(
            f"{daemon.name} steady state: {statistics.mean(result.rss_kib) / 1024:.1f} MiB, "
            f"{100 * result.cpu_s / wall:.2f} % CPU over {wall:.0f} s ({len(pids)} processes)"
        )
        self.steady.append(result)
        return result

    def run_daemon(self, daemon: Daemon, client: Helper, poller: Helper) -> None:
        log(f"{daemon.name}: starting")
        begin = time.time()
        cpu0 = process_cpu() if self.busy is not None else {}
        daemon.start()
        try:
            up = self.wait_complete(180, begin)
            log(f"{daemon.name}: table complete {up - begin:.1f} s after start")
            self.crosscheck()
            client.resume()
            if self.load is not None:
                self.load.resume()
            runs = self.settings.runs
            for scenario in FAULTS:
                for i in range(runs[scenario]):
                    self.fault_run(daemon, scenario, i + 1)
            quiet = [client, poller, *([self.lag_probe] if self.lag_probe else [])]
            self.measure_steady(daemon, quiet)
            for i in range(runs["flush"]):
                self.flush_run(daemon, i + 1)
            self.settle(daemon)
        finally:  # also when a turn ends early (--busy goes on with the next daemon)
            client.pause()
            if self.load is not None:
                self.load.pause()
            poller.resume()  # in case the steady state was cut short
            if self.lag_probe is not None:
                self.lag_probe.resume()
            time.sleep(2.5)
            self.windows.append((daemon.name, begin, time.time()))
            if self.busy is not None:
                self.turn_cpu[daemon.name] = cpu_by_label(cpu0, process_cpu(), time.time() - begin)
        daemon.stop()

    def save(self) -> None:
        doc = {
            "victim": {"name": self.victim.name, "key": self.victim_key},
            "masters": self.all_keys,
            "settings": asdict(self.settings),
            "marks": [asdict(m) for m in self.marks],
            "steady": [asdict(s) for s in self.steady],
            "windows": self.windows,
            "checks": self.checks,
        }
        (self.out / "marks.json").write_text(json.dumps(doc, indent=1) + "\n")
        if self.busy is not None:
            busy = {
                "busy_loops": self.busy.count,
                "cpus": os.cpu_count(),
                "busy_loop_cpu_s": self.busy.cpu_s,
                "busy_loop_wall": self.busy.wall,
                "steady_windows": self.steady_windows,
                "node_busy": self.node_busy,
                "steady_cpu": self.steady_cpu,
                "turn_cpu": self.turn_cpu,
                "early_ends": self.early_ends,
                "tls_load": TLS_LOAD,
                "lag_period": LAG_PERIOD,
            }
            (self.out / "busy.json").write_text(json.dumps(busy, indent=1) + "\n")


# -- analysis (host-safe: files only) -----------------------------------------------------------


@dataclass
class Attempt:
    t0: float
    t1: float
    out: str  # ok | refused | reset | timeout | errno name
    stage: str = "connect"
    ipvs: str | None = None  # failed ones: "DEST:PORT STATE" of their IPVS entry, if any

    @property
    def failed(self) -> bool:
        return self.out != "ok"


def load_attempts(path: Path) -> list[Attempt]:
    attempts = []
    for line in path.read_text().splitlines():
        if line.strip():
            r = json.loads(line)
            attempts.append(
                Attempt(r["t0"], r["t1"], r["out"], r.get("stage", "connect"), r.get("ipvs"))
            )
    attempts.sort(key=lambda a: a.t0)
    return attempts


def load_jsonl(path: Path) -> list[dict[str, Any]]:
    """A helper's JSON lines; a torn last line (killed mid-write) is left out."""
    if not path.exists():
        return []
    records = []
    for line in path.read_text().splitlines():
        with contextlib.suppress(ValueError):
            records.append(json.loads(line))
    return records


def percentiles(xs: Sequence[float]) -> tuple[float, float, float] | None:
    """p50, p99 (nearest rank) and max; None without samples."""
    if not xs:
        return None
    vals = sorted(xs)

    def rank(p: float) -> float:
        return vals[max(0, min(len(vals) - 1, math.ceil(len(vals) * p / 100) - 1))]

    return rank(50), rank(99), vals[-1]


def lag_cell(samples: Sequence[dict[str, Any]]) -> str:
    """p50 / p99 / max of the requests' times: "12 / 80 / 95 ms"."""
    p = percentiles([r["lat"] for r in samples])
    if p is None:
        return "-"
    return " / ".join(f"{x * 1000:.0f}" for x in p) + " ms"


def outcomes(records: Sequence[dict[str, Any]]) -> str:
    """How many of each outcome, most first: "timeout 3, 500 1"."""
    counts: dict[str, int] = {}
    for r in records:
        counts[str(r["out"])] = counts.get(str(r["out"]), 0) + 1
    return ", ".join(f"{k} {n}" for k, n in sorted(counts.items(), key=lambda kv: -kv[1]))


def readmitted(
    changes: Sequence[tuple[float, Table]], victim: str, start: float, end: float
) -> bool:
    """A table sample strictly inside (start, end) with the victim at a weight above 0."""
    return any(start < t < end and tb is not None and tb.get(victim, 0) > 0 for t, tb in changes)


def iso_wall(ts: str) -> float:
    return dt.datetime.fromisoformat(ts.replace("Z", "+00:00")).timestamp()


@dataclass
class RunResult:
    """One scenario run, as the table reports it."""

    latency: float | None  # fault -> drained (flush: -> complete; recover: listening -> back)
    failed: int
    failed_after: int  # failures of connections started after the drain / repair
    attempts: int
    # of failed_after, those IPVS had sent to the victim, or whose entry was already gone
    failed_after_victim: int = 0


def count(
    attempts: Sequence[Attempt], start: float, end: float, after: float | None, victim: str
) -> tuple[int, int, int, int]:
    """Failures among connections started in [start, end), among those started after
    `after` (the drain): classified by start time, so a connection that was already on its
    way to the victim when the drain came is not counted against the drain; and among
    those, the ones IPVS had sent to the victim (or whose entry was gone: counted as such)."""
    window = [a for a in attempts if start <= a.t0 < end]
    late = [a for a in window if after is not None and a.t0 >= after and a.failed]
    to_victim = [a for a in late if a.ipvs is None or a.ipvs.startswith(victim + " ")]
    return sum(a.failed for a in window), len(late), len(window), len(to_victim)


class Report:
    """Numbers from the raw files: marks.json, table.jsonl, client.jsonl, daemon logs."""

    def __init__(self, out: Path) -> None:
        self.out = out
        self.doc = json.loads((out / "marks.json").read_text())
        self.marks = [Mark(**m) for m in self.doc["marks"]]
        self.steady = [Steady(**s) for s in self.doc["steady"]]
        self.victim = self.doc["victim"]["name"]
        self.victim_key = self.doc["victim"]["key"]
        self.attempts = load_attempts(out / "client.jsonl")
        self.table = TableLog.load(out / "table.jsonl")
        # --busy runs only (busy.json): None for an idle run's directory
        busy = out / "busy.json"
        self.busy: dict[str, Any] | None = json.loads(busy.read_text()) if busy.exists() else None
        self.lag = load_jsonl(out / "lag.jsonl") if self.busy else []
        self.tls = load_jsonl(out / "tls.jsonl") if self.busy else []

    def fault_windows(self, daemon: str) -> list[tuple[float, float]]:
        """Where the daemon's faults were: [fault, window end) of every run and [restore,
        back + a while) of each recovery."""
        spans = [(m.fault, m.window_end) for m in self.marks if m.daemon == daemon]
        spans += [
            (m.restore, m.back_window_end)
            for m in self.marks
            if m.daemon == daemon and m.restore is not None and m.back_window_end is not None
        ]
        return spans

    def lag_windows(self) -> dict[str, list[tuple[float, float]]]:
        """Where lvscare's care loop lag is summarised: its steady state (runs before the
        probe was paused there), its fault runs, and its whole turn once it answered."""
        assert self.busy is not None
        steady = self.busy["steady_windows"].get("lvscare")
        # the whole turn from the endpoint's first answer (before it, lvscare is starting)
        first = next((r["t"] for r in self.lag if isinstance(r["out"], int)), None)
        turn = [(max(a, first), b) for d, a, b in self.doc["windows"] if d == "lvscare" and first]
        return {
            "steady state": [tuple(steady)] if steady else [],
            "fault runs": self.fault_windows("lvscare"),
            "whole turn, once up": turn,
        }

    def lag_samples(self, windows: list[tuple[float, float]]) -> list[dict[str, Any]]:
        return [r for r in self.lag if any(a <= r["t"] < b for a, b in windows)]

    def lag_rows(self) -> list[tuple[str, str, str, str]]:
        """The care loop's lag (lvscare only: keepalived has no such endpoint)."""
        rows = []
        for label, windows in self.lag_windows().items():
            samples = self.lag_samples(windows)
            if samples and label != "whole turn, once up":
                title = f"    care loop lag, {label}: p50 / p99 / max"
                rows.append((title, lag_cell(samples), "-", ""))
        return rows

    def lag_lines(self) -> list[str]:
        assert self.busy is not None
        spans = self.lag_windows()
        period = self.busy.get("lag_period", LAG_PERIOD)
        lines = [
            f"lvscare's care loop lag (GET /healthz on its endpoint every {period:g} s: a no-op "
            "on the care loop; p50 / p99 / max):"
        ]
        for label, windows in spans.items():
            samples = self.lag_samples(windows)
            if not samples and label == "steady state":
                lines.append(f"  {label + ':':<22}paused (the CPU figure is lvscare's own)")
                continue
            bad = [r for r in samples if r["out"] != 200]
            lines.append(
                f"  {label + ':':<22}{lag_cell(samples)} ({len(samples)} requests, "
                f"{len(bad)} not answered 200{': ' + outcomes(bad) if bad else ''})"
            )
        return lines

    def tls_line(self) -> str:
        """The TLS load's own counts, per daemon turn; failures outside the fault windows."""
        assert self.busy is not None
        load = self.busy.get("tls_load", TLS_LOAD)
        parts = []
        for daemon, begin, end in self.doc["windows"]:
            mine = [r for r in self.tls if begin <= r["t0"] < end]
            keep = [r for r in mine if r["kind"] == "keep"]
            fresh = [r for r in mine if r["kind"] == "fresh"]
            faults = self.fault_windows(daemon)
            quiet = [r for r in mine if not any(a <= r["t0"] < b for a, b in faults)]
            failed = [r for r in mine if r["out"] != "ok"]
            parts.append(
                f"{daemon}'s turn {len(keep)} kept-alive requests "
                f"({sum(r['out'] != 'ok' for r in keep)} failed, "
                f"{sum(bool(r.get('new')) for r in keep)} connections opened), "
                f"{len(fresh)} new connections ({sum(r['out'] != 'ok' for r in fresh)} failed), "
                f"{sum(r['out'] != 'ok' for r in quiet)} failed outside the fault windows"
                f"{' [' + outcomes(failed) + ']' if failed else ''}"
            )
        return (
            f"TLS load through the VIP ({load['conns']} kept-alive connections, a GET /healthz "
            f"each every {load['period']:g} s, {load['fresh']:g} new connections/s): "
            + ("; ".join(parts) or "no turns")
        )

    def cpu_lines(self) -> list[str]:
        """Who used the CPUs, by kind of process, and the turns that ended early."""
        assert self.busy is not None
        cpus = self.busy.get("cpus") or 1
        lines = [f"Who used the CPUs (% of one core; the node has {100 * cpus:g}):"]
        for what, key in (("steady state", "steady_cpu"), ("whole turn", "turn_cpu")):
            for daemon, used in self.busy.get(key, {}).items():
                total = sum(used.values())
                parts = ", ".join(f"{k} {v:.1f}" for k, v in used.items())
                lines.append(f"  {daemon}'s {what}: {total:.0f} in all: {parts}")
        for end in self.busy.get("early_ends", []):
            lines.append(f"Turn ended early: {end}")
        return lines

    def busy_title(self) -> list[str]:
        assert self.busy is not None
        nb = self.busy.get("node_busy", {})
        cpus = ", ".join(f"{100 * nb[d]:.1f} % in {d}'s" for d in DAEMONS if d in nb)
        got = ""
        if self.busy.get("busy_loop_wall"):
            share = self.busy["busy_loop_cpu_s"] / self.busy["busy_loop_wall"]
            got = f"; the loops got {share:.2f} CPUs on average"
        return [
            "Fail-over on a busy node: lvscare beside keepalived, same faults (issue 16)",
            f"busy node: {self.busy['busy_loops']} busy loops on {self.busy['cpus']} CPUs "
            f"(normal priority){got}; all CPUs busy "
            f"{cpus or '?'} steady state; masters with RSA-2048 certificates; TLS load "
            "through the VIP",
        ]

    def readmitted(self, m: Mark) -> bool:
        """The victim back in the table (weight > 0) after its drain and before it could
        serve again."""
        if m.drained is None:
            return False
        return readmitted(self.table.changes, self.victim_key, m.drained, m.restore or m.window_end)

    def kill_exits(self, daemon: str) -> list[float | None]:
        """Per kill run, SIGKILL to the bench seeing the master's process reaped."""
        return [
            m.fault_done - m.fault
            for m in self.marks
            if m.daemon == daemon and m.scenario == "kill"
        ]

    def runs(self, daemon: str, scenario: str) -> list[RunResult]:
        results = []
        source = "kill" if scenario == "recover" else scenario
        for m in self.marks:
            if m.daemon != daemon or m.scenario != source:
                continue
            if scenario == "recover":
                if m.restore is None or m.back_window_end is None:
                    continue
                latency = None if m.back is None else m.back - m.restore
                c = count(self.attempts, m.restore, m.back_window_end, m.back, self.victim_key)
            else:
                latency = None if m.drained is None else m.drained - m.fault
                end = m.window_end
                c = count(self.attempts, m.fault, end, m.drained or end, self.victim_key)
            results.append(RunResult(latency, *c))
        return results

    def late_failures(self) -> list[str]:
        """Each failure counted "after": its time, kind and the IPVS entry it had, so a
        stale entry to the victim tells itself apart from a slow healthy master."""
        lines = []
        for m in self.marks:
            spans = [(m.drained, m.window_end)]
            if m.back is not None and m.back_window_end is not None:
                spans.append((m.back, m.back_window_end))
            for start, end in spans:
                if start is None:
                    continue
                for a in self.attempts:
                    if start <= a.t0 < end and a.failed:
                        lines.append(
                            f"  {m.daemon} {m.scenario} #{m.run}: +{a.t0 - start:.3f} s, "
                            f"{a.out} at {a.stage}, IPVS entry {a.ipvs or 'none'} "
                            f"(victim {self.victim_key})"
                        )
        return lines

    def lvscare_timeline(self, m: Mark) -> str:
        """fault -> first failed probe -> state change -> netlink call, from lvscare's log."""
        path = self.out / "lvscare.log"
        if not path.exists():
            return ""
        firsts: dict[str, float] = {}
        for line in path.read_text().splitlines():
            try:
                e = json.loads(line)
            except ValueError:
                continue
            ts = e.get("timestamp")
            if not ts or iso_wall(ts) < m.fault - 0.001:
                continue
            name = e.get("event", "")
            if name == "probe failed" and e.get("rs") == self.victim_key:
                firsts.setdefault(f"probe failed ({e.get('reason')})", iso_wall(ts))
            elif name == "real server state changed" and e.get("rs") == self.victim_key:
                firsts.setdefault(f"{e.get('new')} ({e.get('reason')})", iso_wall(ts))
            elif name == "ipvs change" and self.victim_key in str(e.get("op")):
                firsts.setdefault(f"ipvs {e.get('op')}", iso_wall(ts))
            if len(firsts) >= 4 or iso_wall(ts) > (m.drained or m.window_end):
                break
        steps = sorted(firsts.items(), key=lambda kv: kv[1])[:4]
        return ", ".join(f"{k} +{(t - m.fault) * 1000:.0f} ms" for k, t in steps)

    def keepalived_timeline(self, m: Mark) -> str:
        path = self.out / "keepalived.log"
        if not path.exists():
            return ""
        lines = []
        for line in path.read_text().splitlines():
            stamp, _, text = line.partition(" ")
            t = float(stamp)
            if t < m.fault:
                continue
            if t > (m.drained or m.window_end) + 0.05:
                break
            if self.victim_key.split(":")[0] in text:
                lines.append(f"+{(t - m.fault) * 1000:.0f} ms {text.split(': ', 1)[-1][:70]}")
        return "; ".join(lines[:3])

    def timeline(self, m: Mark) -> str:
        took = fmt_s(None if m.drained is None else m.drained - m.fault)
        steps = self.lvscare_timeline(m) if m.daemon == "lvscare" else self.keepalived_timeline(m)
        return f"{m.daemon} {m.scenario} #{m.run}: drained {took}; {steps}"

    def poll_quality(self) -> str:
        """How often the poller really sampled, over the scenario windows only."""
        gaps = [b - a for a, b in self.table.gaps]
        counts = [n for _, n in self.table.counts]
        windows = [(m.fault, m.window_end) for m in self.marks]
        inside = [b - a for a, b in self.table.gaps if any(s <= b and a <= e for s, e in windows)]
        rate = statistics.median(counts) if counts else 0
        worst = max(inside, default=0.0)
        return (
            f"table polled {rate:.0f} times/s (median); inside scenario windows "
            f"{len(inside)} gaps > 5 ms, longest {worst * 1000:.1f} ms "
            f"({len(gaps)} such gaps over the whole run)"
        )

    def client_quality(self) -> str:
        ok = [a.t1 - a.t0 for a in self.attempts if not a.failed]
        windows = [(m.fault, m.window_end) for m in self.marks] + [
            (m.restore, m.back_window_end)
            for m in self.marks
            if m.restore is not None and m.back_window_end is not None
        ]
        quiet = [a for a in self.attempts if not any(s <= a.t0 < e for s, e in windows)]
        lat = sorted(ok)
        p50 = lat[len(lat) // 2] if lat else 0.0
        p99 = lat[int(len(lat) * 0.99)] if lat else 0.0
        return (
            f"{len(self.attempts)} client connections; answered ones took {p50 * 1000:.0f} ms "
            f"median, {p99 * 1000:.0f} ms p99; {sum(a.failed for a in quiet)} failed outside "
            f"the scenario windows (of {len(quiet)})"
        )


def fmt_s(x: float | None) -> str:
    return "never" if x is None else f"{x:.3f} s"


def median(xs: Sequence[float | None]) -> float | None:
    vals = [x for x in xs if x is not None]
    if not vals or len(vals) < len(xs):  # a run that never drained makes the median "never"
        return None if len(vals) * 2 <= len(xs) else statistics.median(vals)
    return statistics.median(vals)


def ratio(a: float | None, b: float | None) -> str:
    if a is None or b is None:
        return "-"
    if b == 0:
        return "-" if a == 0 else "inf"
    return f"{a / b:.2f}"


def _row_cells(
    per: dict[str, list[RunResult]], f: Callable[[list[RunResult]], str]
) -> tuple[str, str]:
    lv, ka = (f(per[d]) if per.get(d) else "-" for d in DAEMONS)
    return lv, ka


def _scenario_rows(report: Report, scenario: str) -> list[tuple[str, str, str, str]]:
    per = {d: report.runs(d, scenario) for d in DAEMONS}
    n = max(len(r) for r in per.values())
    if n == 0:
        return []
    what = {"recover": "listening -> back in table", "flush": "flush -> table complete again"}
    title = f"{TITLES[scenario]} ({n} run{'s' if n > 1 else ''}): "
    title += what.get(scenario, "fault -> drained") + (", median" if n > 1 else "")
    lat = {d: median([r.latency for r in per[d]]) if per[d] else None for d in DAEMONS}
    fails = {d: median([float(r.failed) for r in per[d]]) if per[d] else None for d in DAEMONS}
    rows = [(title, fmt_s(lat["lvscare"]), fmt_s(lat["keepalived"]), ratio(*lat.values()))]
    label = "    failed connects" + (", median" if n > 1 else "")
    rows.append((label, *_row_cells(per, _counts), ratio(*fails.values())))
    after = {"flush": "repair", "recover": "return"}.get(scenario, "drain")
    late = _row_cells(per, lambda r: str(sum(x.failed_after for x in r)))
    rows.append((f"    failed connects after the {after}, all runs", *late, ""))
    if after == "drain":
        mine = _row_cells(per, lambda r: str(sum(x.failed_after_victim for x in r)))
        rows.append(("      of which IPVS had sent to the drained master", *mine, ""))
    if scenario == "kill" and report.busy is not None:
        # On a busy node the killed process itself waits for a CPU to exit (and close its
        # sockets): a floor under "fault -> drained" that no daemon can go below.
        gone = {d: median(report.kill_exits(d)) for d in DAEMONS}
        label = "    of that, SIGKILL -> process reaped" + (", median" if n > 1 else "")
        rows.append((label, fmt_s(gone["lvscare"]), fmt_s(gone["keepalived"]), ""))
    return rows


def render(report: Report, markdown: bool) -> str:
    """Rows per scenario: lvscare, keepalived, and lvscare/keepalived."""
    rows: list[tuple[str, str, str, str]] = []
    for scenario in (*FAULTS, "recover", "flush"):
        rows += _scenario_rows(report, scenario)
    st = {s.daemon: s for s in report.steady}
    if st:
        secs = max(s.seconds for s in st.values())
        rss = {d: statistics.mean(st[d].rss_kib) / 1024 if d in st else None for d in DAEMONS}
        cpu = {d: 100 * st[d].cpu_s / st[d].seconds if d in st else None for d in DAEMONS}
        lv, ka = rss["lvscare"], rss["keepalived"]
        title = f"steady state {secs:.0f} s, 3 healthy masters: RSS (MiB, mean)"
        rows.append((title, _num(lv, "{:.1f}"), _num(ka, "{:.1f}"), ratio(lv, ka)))
        lv, ka = cpu["lvscare"], cpu["keepalived"]
        rows.append(
            ("    CPU (% of one core)", _num(lv, "{:.2f}"), _num(ka, "{:.2f}"), ratio(lv, ka))
        )
    if report.busy is not None:
        rows += report.lag_rows()
    head = ("", "lvscare", "keepalived", "lvscare/keepalived")
    if markdown:
        lines = ["| " + " | ".join(head) + " |", "|---|---:|---:|---:|"]
        lines += ["| " + " | ".join(c.replace("|", "/") for c in r) + " |" for r in rows]
        return "\n".join(lines)
    widths = [max(len(r[i]) for r in [head, *rows]) for i in range(4)]
    return "\n".join(
        "  ".join(
            c.ljust(w) if i == 0 else c.rjust(w)
            for i, (c, w) in enumerate(zip(r, widths, strict=True))
        )
        for r in [head, *rows]
    )


def _counts(results: list[RunResult]) -> str:
    return f"{statistics.median(r.failed for r in results):g}"


def every_run(report: Report) -> list[str]:
    """Each run's numbers, for the medians above."""
    lines = []
    for scenario in (*FAULTS, "recover", "flush"):
        for d in DAEMONS:
            runs = report.runs(d, scenario)
            if not runs:
                continue
            lat = " ".join(fmt_s(r.latency).removesuffix(" s") for r in runs)
            failed = " ".join(str(r.failed) for r in runs)
            late = " ".join(str(r.failed_after) for r in runs)
            lines.append(
                f"  {TITLES[scenario]:<21} {d:<10}  seconds {lat}; failed {failed}; after {late}"
            )
    return lines


def _num(x: float | None, f: str) -> str:
    return "-" if x is None else f.format(x)


class Checks:
    """A target list: one PASS / FAIL / n/a line per target."""

    def __init__(self) -> None:
        self.lines: list[str] = []

    def __call__(self, ok: bool | None, text: str) -> None:
        self.lines.append(f"{'n/a ' if ok is None else 'PASS' if ok else 'FAIL'}  {text}")

    def kill_speed(self, report: Report) -> None:
        """Killed master drained <= 100 ms median, and <= 0.1 x keepalived."""
        kill = report.runs("lvscare", "kill")
        kill_ka = report.runs("keepalived", "kill")
        med = median([r.latency for r in kill]) if kill else None
        med_ka = median([r.latency for r in kill_ka]) if kill_ka else None
        self(
            None if not kill else med is not None and med <= 0.1,
            f"killed master drained <= 100 ms median: {fmt_s(med)}",
        )
        self(
            None if med is None or med_ka is None else med <= 0.1 * med_ka,
            f"killed master <= 0.1 x keepalived: {ratio(med, med_ka)} x",
        )

    def kill_failures(self, report: Report, label: str) -> None:
        kill = report.runs("lvscare", "kill")
        most = max((r.failed for r in kill), default=None)
        self(
            None if most is None else most <= 2,
            f"<= 2 failed connects {label}: most in one run {most}, "
            f"median {median([r.failed for r in kill]) if kill else None}",
        )

    def slowest(self, report: Report, scenario: str, limit: float, what: str) -> None:
        runs = report.runs("lvscare", scenario)
        worst = max((r.latency or 1e9 for r in runs), default=None)
        self(
            None if not runs else worst is not None and worst <= limit,
            f"{what} drained <= {limit:g} s: slowest run {fmt_s(worst)}",
        )

    def none_late(self, report: Report) -> None:
        """No failed connect to the drained master after the drain, in any fault run."""
        runs = [r for s in FAULTS for r in report.runs("lvscare", s)]
        late = sum(r.failed_after_victim for r in runs)
        self(
            None if not report.runs("lvscare", "kill") else late == 0,
            f"0 failed connects to the drained master after the drain (every fault run): {late}"
            f" (failures after the drain anywhere: {sum(r.failed_after for r in runs)},"
            " listed at the end)",
        )


def targets(report: Report) -> list[str]:
    """Issue 6's "done means", checked on this run's numbers."""
    check = Checks()
    check.kill_speed(report)
    check.slowest(report, "blackhole", 1.5, "blackholed master")
    check.slowest(report, "hang", 2.0, "hung master")
    check.kill_failures(report, "after a kill")
    check.none_late(report)
    return check.lines


def busy_targets(report: Report) -> list[str]:
    """Issue 16's targets for the busy node, checked on this run's numbers."""
    check = Checks()
    check.kill_speed(report)
    check.kill_failures(report, "per kill")
    check.slowest(report, "blackhole", 1.5, "blackholed master")
    kills = [m for m in report.marks if m.daemon == "lvscare" and m.scenario == "kill"]
    back = sum(report.readmitted(m) for m in kills)
    others = [m for m in report.marks if m.daemon == "lvscare" and m.scenario in FAULTS[1:]]
    check(
        None if not kills else back == 0 and all(m.drained is not None for m in kills),
        f"no killed master ever re-admitted before it listened again: {back} of {len(kills)} "
        f"runs (other faults, before their repair: {sum(report.readmitted(m) for m in others)}"
        f" of {len(others)})",
    )
    check.none_late(report)
    st = {s.daemon: 100 * s.cpu_s / s.seconds for s in report.steady if s.seconds}
    lv, ka = st.get("lvscare"), st.get("keepalived")
    probed = bool(report.lag_samples(report.lag_windows()["steady state"]))
    check(
        None if lv is None or ka is None else lv <= ka,
        f"steady-state CPU on the busy node <= keepalived's: {_num(lv, '{:.2f}')} % against "
        f"{_num(ka, '{:.2f}')} % of one core"
        + (" (lvscare's includes answering the lag probe)" if probed else ""),
    )
    return check.lines


def print_report(out: Path) -> str:
    report = Report(out)
    busy = report.busy is not None
    text = "\n".join(
        [
            *([*report.busy_title(), ""] if busy else []),
            render(report, markdown=False),
            "",
            "Every run (seconds to drained / back / repaired; failed connects; of which after):",
            *every_run(report),
            "",
            "Targets (issue 16, busy node):" if busy else "Targets (issue 6):",
            *("  " + t for t in (busy_targets(report) if busy else targets(report))),
            "",
            *([*report.lag_lines(), *report.cpu_lines(), ""] if busy else []),
            report.poll_quality(),
            report.client_quality(),
            *([report.tls_line()] if busy else []),
            "",
            "Where the time went (lvscare's JSON log; keepalived's console, stamped on arrival):",
            *(f"  {report.timeline(m)}" for m in report.marks if m.scenario != "flush"),
            "",
            "Failed connects after a drain, return or repair, and where IPVS had sent them:",
            *(report.late_failures() or ["  none"]),
        ]
    )
    print(text)
    (out / "report.txt").write_text(text + "\n")
    (out / "table.md").write_text(render(report, markdown=True) + "\n")
    return text


# -- pictures (bench/timeline.py) ----------------------------------------------------------------

PICTURE_TITLES = {
    "kill": "apiserver of {victim} killed (SIGKILL), then started again",
    "blackhole": "{victim} blackholed (100 % packet loss), then reachable again",
    "hang": "{victim}'s /healthz hangs, then answers again",
    "fail": "{victim}'s /healthz answers 500, then 200 again",
    "flush": "the IPVS table flushed by someone else (ipvsadm -C)",
}
BEFORE = 1.0  # seconds drawn before the fault and before the master serves again


def picture_runs(report: Report, scenario: str) -> list[Run]:
    """timeline.Run per daemon for one scenario: its median run by fault -> drained (the
    earlier of the middle two for an even count; a run that never drained counts as slowest)."""
    from bench.timeline import Run

    runs: list[Run] = []
    for daemon in DAEMONS:
        marks = [m for m in report.marks if m.daemon == daemon and m.scenario == scenario]
        if not marks:
            continue
        by_speed = sorted(
            marks, key=lambda m: math.inf if m.drained is None else m.drained - m.fault
        )
        m = by_speed[(len(marks) - 1) // 2]
        windows = [(m.fault - BEFORE, m.window_end)]
        if m.restore is not None and m.back_window_end is not None:
            windows.append((m.restore - BEFORE, m.back_window_end))
        start, stop = windows[0][0], windows[-1][1]
        samples: list[tuple[float, Table]] = [(start, report.table.state_at(start))]
        samples += [(t, tb) for t, tb in report.table.changes if start < t <= stop]
        drawn = [x for x in report.attempts if any(a <= x.t0 < b for a, b in windows)]
        failed = [(x.t0, x.out) for x in drawn if x.failed]
        # counted as the report counts them: started from the fault (the return) on
        counted = [x for x in drawn if any(a + BEFORE <= x.t0 < b for a, b in windows)]
        note = f"run {m.run} of {len(marks)}" + (", the median" if len(marks) > 1 else "")
        note += f"  ·  {sum(x.failed for x in counted)} of {len(counted)} connects started "
        note += f"from the {'flush' if scenario == 'flush' else 'fault'} on failed"
        runs.append(
            Run(daemon, samples, failed, m.fault, m.window_end, m.drained, m.restore, m.back,
                m.back_window_end, note)
        )  # fmt: skip
    return runs


def write_timelines(out: Path) -> list[Path]:
    """One picture per scenario, lvscare above keepalived: timeline-SCENARIO.png in out.
    Per scenario rather than per run: the two daemons under the same fault, one above the
    other, is the comparison to see; other runs of a scenario look alike (their numbers are
    in the report)."""
    try:
        from bench.timeline import Words, draw
    except ImportError as e:  # matplotlib is a test extra: the tables do without it
        print(f"no timeline pictures: {e}")
        return []
    report = Report(out)
    names = {key: f"m{i + 1}" for i, key in enumerate(report.doc["masters"])}
    names[report.victim_key] = report.victim
    busy = " (busy node)" if report.busy is not None else ""
    written = []
    for scenario in (*FAULTS, "flush"):
        runs = picture_runs(report, scenario)
        if not runs:
            continue
        words = None
        if scenario == "flush":
            words = Words(fault="flush", drained="table complete again", never="never repaired")
        title = PICTURE_TITLES[scenario].format(victim=report.victim) + busy
        path = out / f"timeline-{scenario}.png"
        draw(path, title, report.doc["masters"], runs, names=names,
             victim=None if scenario == "flush" else report.victim_key, words=words,
             before=BEFORE)  # fmt: skip
        written.append(path)
    if written:
        print("timelines: " + " ".join(str(p) for p in written))
    return written


# -- main ---------------------------------------------------------------------------------------


def run(opts: argparse.Namespace) -> None:
    from tests.support.labnet import Lab

    out: Path = opts.out
    fresh_dir(out)
    n = 1 if opts.quick else opts.runs
    settings = Settings(
        runs={
            "kill": 1 if opts.quick else opts.kill_runs,
            **{s: n for s in FAULTS[1:]},
            "flush": n,
        },
        steady=10.0 if opts.quick else opts.steady,
        after=3.0,
        settle=2.5,
    )
    py = [sys.executable, "-S"]  # both helpers are stdlib only: no site-packages to import
    poller = Helper(
        [*py, str(HERE / "ipvs_poll.py"), "--out", str(out / "table.jsonl")], out / "poller.log"
    )
    client = Helper(
        [*py, str(HERE / "vip_client.py"), "--paused", "--out", str(out / "client.jsonl")],
        out / "client.log",
    )
    helpers = [client, poller]
    busy = BusyLoops(os.cpu_count() or 1) if opts.busy else None
    if busy is not None:  # a SIGTERM (the lab's timeout) still stops the busy loops
        signal.signal(signal.SIGTERM, lambda _s, _f: sys.exit(143))
    try:
        lab = Lab(3).build()
    except BaseException:
        for h in helpers:
            h.stop()
        raise
    bench = Bench(lab, out, settings, lab.master(opts.victim))
    try:
        if busy is not None:
            load = Helper(
                [*py, str(HERE / "tls_load.py"), "--paused", "--ca", str(lab.ca_file),
                 "--conns", str(TLS_LOAD["conns"]), "--period", str(TLS_LOAD["period"]),
                 "--fresh", str(TLS_LOAD["fresh"]), "--out", str(out / "tls.jsonl")],
                out / "tls.log",
            )  # fmt: skip
            helpers.insert(0, load)
            bench.load, bench.busy = load, busy
            busy.start()
        poller.wait_ready("poller ready")
        client.wait_ready("client ready")
        if bench.load is not None:
            bench.load.wait_ready("tls load ready")
        log(
            f"lab built; victim {opts.victim}; runs {settings.runs}; steady {settings.steady:.0f} s"
        )
        if busy is not None:
            log(f"busy node: {busy.count} busy loops running; TLS load through the VIP ready")
        makers: dict[str, Callable[[], Daemon]] = {
            "lvscare": lambda: Lvscare(lab, out),
            "keepalived": lambda: Keepalived(lab, out),
        }
        for name in opts.daemons:
            daemon = makers[name]()
            lag = None
            try:
                if busy is not None and name == "lvscare":  # the care loop's lag, from outside
                    lag = Helper(
                        [*py, str(HERE / "loop_lag.py"), "--period", str(LAG_PERIOD),
                         "--out", str(out / "lag.jsonl")],
                        out / "lag.log",
                    )  # fmt: skip
                bench.lag_probe = lag
                try:
                    bench.run_daemon(daemon, client, poller)
                except RuntimeError as e:  # --busy: a daemon that never settles is a result
                    if busy is None:
                        raise
                    bench.early_ends.append(f"{name}: {e}")
                    log(f"{name}: turn ended early: {e}")
            finally:
                bench.lag_probe = None
                if lag is not None:
                    lag.stop()
                daemon.stop()
                bench.save()
            lab.reset()
    finally:
        if busy is not None:
            busy.stop()
        for h in helpers:
            h.stop()
        bench.save()
        lab.destroy()
    print()
    print_report(out)
    write_timelines(out)


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=(__doc__ or "").splitlines()[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--quick", action="store_true", help="1 run per scenario, 10 s steady")
    parser.add_argument("--kill-runs", type=int, default=5, help="killed-master runs (default 5)")
    parser.add_argument("--runs", type=int, default=3, help="runs of the other scenarios")
    parser.add_argument("--steady", type=float, default=60.0, help="steady-state seconds")
    parser.add_argument(
        "--daemons",
        type=lambda s: s.split(","),
        default=list(DAEMONS),
        help="comma-separated, in order (default lvscare,keepalived)",
    )
    parser.add_argument("--victim", default="m2")
    parser.add_argument(
        "--busy",
        action="store_true",
        help="busy node: a busy loop per CPU, TLS load through the VIP, the care loop's lag",
    )
    parser.add_argument(
        "--out",
        type=Path,
        help="raw files and report (default .lab/bench-failover, --busy: .lab/bench-failover-busy)",
    )
    parser.add_argument(
        "--report",
        type=Path,
        metavar="DIR",
        help="only print the tables from a finished run's files",
    )
    opts = parser.parse_args(argv)
    if opts.report:
        print_report(opts.report)
        write_timelines(opts.report)
        return
    unknown = set(opts.daemons) - set(DAEMONS)
    if unknown:
        parser.error(f"unknown daemon(s): {', '.join(sorted(unknown))}")
    if opts.out is None:
        opts.out = ROOT / ".lab" / ("bench-failover-busy" if opts.busy else "bench-failover")
    run(opts)


if __name__ == "__main__":
    main()
