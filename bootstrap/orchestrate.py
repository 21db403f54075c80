"""The order of work across a cluster and how one host's failure reaches the others.

init: every host gets the package in parallel (bounded by --parallel; the uplink is the
limit, not the order); then master0 runs `bootstrap master0`, the other masters join one
at a time (etcd members join one by one), and the nodes join in parallel. A failed node
stops no other host; a failed master0 stops everything after it; a failed master stops
the masters after it (etcd), not the nodes. The cluster file is saved after every host.
"""

from __future__ import annotations

import contextlib
import shlex
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

import paramiko

from bootstrap import package, remote
from bootstrap.cluster_file import Cluster, ClusterFile
from bootstrap.errors import BadInput, StepFailed
from bootstrap.progress import Reporter
from bootstrap.ssh import Auth, Connection, KnownHosts, parse_target, redact

T = TypeVar("T")


@dataclass
class Settings:
    auth: Auth
    known: KnownHosts
    timeout: float
    parallel: int
    log_dir: Path


class HostFailed(Exception):
    """A host stopped; the step and the error are already reported."""


@dataclass
class HostRun:
    """One host's connection and where it is, so a failure names its step."""

    addr: str
    role: str
    step: str = "connect"
    conn: Connection | None = None
    failed: bool = False
    log: list[str] = field(default_factory=list)

    def connection(self) -> Connection:
        assert self.conn is not None
        return self.conn


class Orchestrator:
    def __init__(
        self, cluster: Cluster, cfile: ClusterFile, settings: Settings, report: Reporter
    ) -> None:
        self.cluster = cluster
        self.cfile = cfile
        self.s = settings
        self.report = report
        self.runs: dict[str, HostRun] = {}
        self._log_lock = threading.Lock()

    # ------------------------------------------------------------ per host plumbing

    def add(self, addr: str, role: str) -> HostRun:
        run = HostRun(addr, role)
        self.runs[addr] = run
        self.report.add(addr, role)
        if addr not in self.cluster.hosts or self.cluster.hosts[addr].role != role:
            self.cluster.record(addr, role)
        return run

    def step(self, run: HostRun, step: str, note: str = "") -> None:
        run.step = step
        self.report.step(run.addr, step, note)

    @contextlib.contextmanager
    def on(self, run: HostRun) -> Iterator[None]:
        """Turn anything that goes wrong on this host into its failure, named by step."""
        try:
            yield
        except (StepFailed, BadInput) as e:
            self.fail(run, str(e))
            raise HostFailed(run.addr) from None
        except (paramiko.SSHException, OSError, EOFError) as e:
            self.fail(run, f"SSH: {e or type(e).__name__}")
            raise HostFailed(run.addr) from None

    def fail(self, run: HostRun, error: str) -> None:
        run.failed = True
        rec = self.cluster.hosts[run.addr]
        rec.result, rec.failed_step = "failed", run.step
        self.report.finish(run.addr, "failed", run.step, error)
        self.write_log(run, f"FAILED at {run.step}: {error}")
        self.cfile.save(self.cluster)

    def skip(self, run: HostRun, why: str) -> None:
        run.failed = True
        self.report.finish(run.addr, "skipped", "", why)

    def succeed(self, run: HostRun) -> None:
        rec = self.cluster.hosts[run.addr]
        rec.result, rec.failed_step = "ok", None
        self.report.finish(run.addr, "ok")
        self.cfile.save(self.cluster)

    def write_log(self, run: HostRun, line: str) -> None:
        """Per-host log of remote output (no password ever reaches a remote command, and
        bootstrap tokens are masked)."""
        with self._log_lock:
            self.s.log_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
            path = self.s.log_dir / (run.addr.replace(":", "_").replace("/", "_") + ".log")
            with open(path, "a", encoding="utf-8") as f:
                f.write(redact(line) + "\n")

    def logger(self, run: HostRun) -> Callable[[str], None]:
        return lambda line: self.write_log(run, f"[{run.step}] {line}")

    def connect(self, run: HostRun) -> Connection:
        self.step(run, "connect")
        with self.on(run):
            run.conn = Connection(
                parse_target(run.addr, "host"), self.s.auth, self.s.known, self.s.timeout
            )
            name = run.conn.check("hostname", "hostname").strip().lower()
            self.cluster.hosts[run.addr].node_name = name
        return run.conn

    def close_all(self) -> None:
        for run in self.runs.values():
            if run.conn is not None:
                run.conn.close()
                run.conn = None

    def parallel(self, runs: list[HostRun], fn: Callable[[HostRun], None]) -> None:
        """fn on every host, at most --parallel at once; a failure stays with its host."""

        def one(run: HostRun) -> None:
            with contextlib.suppress(HostFailed):
                fn(run)

        if not runs:
            return
        with ThreadPoolExecutor(max_workers=max(1, min(self.s.parallel, len(runs)))) as pool:
            for future in [pool.submit(one, r) for r in runs]:
                future.result()

    # ------------------------------------------------------------ steps

    def prepare(self, run: HostRun, pkg: package.Package, template: bytes | None) -> None:
        """Connect, package there and checked, unpacked, shell/init.sh run, bootstrap found."""
        conn = self.connect(run)
        with self.on(run):
            self.step(run, "package")
            digest, sent = package.distribute(
                conn, pkg, lambda done, total: self.report.sent(run.addr, done, total)
            )
            if self.cluster.pkg_sha256 is None:
                self.cluster.pkg_sha256 = digest  # a URL without --pkg-sha256: the first host's
            elif digest != self.cluster.pkg_sha256:
                raise StepFailed(
                    f"sha256 mismatch: the host downloaded {digest}, "
                    f"other hosts {self.cluster.pkg_sha256}"
                )
            if not sent:
                self.report.step(run.addr, "package", "already there, same sha256: not sent")
            self.step(run, "unpack")
            if not package.unpack(conn, digest):
                self.report.step(run.addr, "unpack", "done earlier, skipped")
            self.step(run, "init.sh")
            root = package.package_root(conn)
            if not package.run_init(conn, root, digest):
                self.report.step(run.addr, "init.sh", "done earlier, skipped")
            remote.require_bootstrap(conn)
            if template is not None:
                conn.write_file(package.REMOTE_TEMPLATE, template, 0o644)

    def bootstrap(self, run: HostRun, args: list[str]) -> str:
        self.step(run, f"bootstrap {args[0]}")
        with self.on(run):
            return remote.run_bootstrap(run.connection(), args, self.logger(run))

    # ------------------------------------------------------------ flows

    def master_ips(self, masters: list[str]) -> list[str]:
        return [parse_target(m, "--master").ip for m in masters]

    def cluster_args(self, masters: list[str]) -> list[str]:
        template = package.REMOTE_TEMPLATE if self.cluster.kubeadm_config else None
        return remote.cluster_args(
            self.master_ips(masters), self.cluster.vip, self.cluster.version, template
        )

    def join_masters(
        self, runs: list[HostRun], source: HostRun, join: remote.Join, masters: list[str]
    ) -> None:
        """Masters one at a time: CAs from `source`, then `bootstrap master --join`."""
        for i, run in enumerate(runs):
            if run.failed:
                continue
            try:
                self.step(run, "copy CAs")
                with self.on(run):
                    remote.copy_cas(source.connection(), run.connection())
                own = parse_target(run.addr, "--master").ip
                self.bootstrap(
                    run,
                    [
                        "master",
                        "--join",
                        *self.cluster_args(masters),
                        "--ip",
                        own,
                        *remote.join_args(join),
                    ],
                )
                self.succeed(run)
            except HostFailed:
                for later in runs[i + 1 :]:
                    if not later.failed:
                        self.skip(
                            later, f"master {run.addr} failed before it (etcd joins one by one)"
                        )
                return

    def join_nodes(self, runs: list[HostRun], join: remote.Join, masters: list[str]) -> None:
        args = remote.node_args(self.master_ips(masters), self.cluster.vip, join)

        def one(run: HostRun) -> None:
            if run.failed:
                return
            self.bootstrap(run, args)
            self.succeed(run)

        self.parallel(runs, one)

    def rewrite_nodes(self, nodes: list[str], join: remote.Join, masters: list[str]) -> None:
        """Every node's lvscare manifest (and IPVS rules) with the current masters: the
        single-host `bootstrap node` again, which skips its done kubeadm join."""
        runs = [self.add(n, "node") for n in nodes]

        def one(run: HostRun) -> None:
            self.connect(run)
            self.step(run, "rewrite manifest")
            with self.on(run):
                remote.run_bootstrap(
                    run.connection(),
                    remote.node_args(self.master_ips(masters), self.cluster.vip, join),
                    self.logger(run),
                )
            self.succeed(run)

        self.parallel(runs, one)

    def init(self, pkg: package.Package, template: bytes | None) -> None:
        masters = [self.add(m, "master") for m in self.cluster.masters]
        nodes = [self.add(n, "node") for n in self.cluster.nodes]
        self.cfile.save(self.cluster)
        self.parallel([*masters, *nodes], lambda r: self.prepare(r, pkg, template))
        master0, others = masters[0], masters[1:]
        rest = [*others, *nodes]
        if master0.failed:
            for run in rest:
                if not run.failed:
                    self.skip(run, f"master0 {master0.addr} failed")
            return
        try:
            out = self.bootstrap(master0, ["master0", *self.cluster_args(self.cluster.masters)])
            with self.on(master0):
                join = remote.parse_join(out, "bootstrap master0")
            self.succeed(master0)
        except HostFailed:
            for run in rest:
                if not run.failed:
                    self.skip(run, f"master0 {master0.addr} failed")
            return
        self.join_masters(others, master0, join, self.cluster.masters)
        self.join_nodes(nodes, join, self.cluster.masters)

    def join(
        self,
        new_masters: list[str],
        new_nodes: list[str],
        pkg: package.Package,
        template: bytes | None,
    ) -> None:
        """New hosts into the running cluster; nodes learn of new masters."""
        old_nodes = [n for n in self.cluster.nodes if n not in new_nodes]
        all_masters = [
            *self.cluster.masters,
            *[m for m in new_masters if m not in self.cluster.masters],
        ]
        source = self.add(self.cluster.masters[0], "master")
        masters = [self.add(m, "master") for m in new_masters]
        nodes = [self.add(n, "node") for n in new_nodes]
        self.connect_or_stop(source, [*masters, *nodes])
        if source.failed:
            return
        self.step(source, "kubeadm token create")
        try:
            with self.on(source):
                join = remote.fresh_join(source.connection())
        except HostFailed:
            for run in [*masters, *nodes]:
                self.skip(run, f"master0 {source.addr} failed")
            return
        self.parallel([*masters, *nodes], lambda r: self.prepare(r, pkg, template))
        self.join_masters(masters, source, join, all_masters)
        joined = [r.addr for r in masters if not r.failed]
        self.cluster.masters = [
            *self.cluster.masters,
            *[a for a in joined if a not in self.cluster.masters],
        ]
        self.cluster.nodes = [
            *self.cluster.nodes,
            *[n for n in new_nodes if n not in self.cluster.nodes],
        ]
        self.cfile.save(self.cluster)
        self.join_nodes(nodes, join, self.cluster.masters)
        self.succeed(source)
        if joined:
            self.rewrite_nodes(old_nodes, join, self.cluster.masters)

    def connect_or_stop(self, source: HostRun, dependents: list[HostRun]) -> None:
        try:
            self.connect(source)
        except HostFailed:
            for run in dependents:
                self.skip(run, f"master0 {source.addr} failed")

    def clean(self, chosen: list[str], everything: bool) -> None:
        """Clean hosts; on a partial clean, delete their nodes from Kubernetes first (on a
        remaining master) and give the remaining nodes the remaining masters."""
        remaining_masters = [m for m in self.cluster.masters if m not in chosen]
        if not everything and not remaining_masters:
            raise BadInput("that would clean every master: use --all to clean the whole cluster")
        runs = [
            self.add(a, self.cluster.hosts[a].role if a in self.cluster.hosts else "node")
            for a in chosen
        ]
        join: remote.Join | None = None
        keeper: HostRun | None = None
        if not everything:
            keeper = self.add(remaining_masters[0], "master")
            self.connect_or_stop(keeper, runs)
            if keeper.failed:
                return

        def one(run: HostRun) -> None:
            name = (
                self.cluster.hosts[run.addr].node_name if run.addr in self.cluster.hosts else None
            )
            if keeper is not None and name:
                self.step(keeper, f"kubectl delete node {name}")
                with self.on(run):
                    remote.delete_node(keeper.connection(), name)
            conn = self.connect(run)
            self.step(run, "bootstrap clean")
            with self.on(run):
                problems = remote.clean_host(conn)
                self.step(run, "remove package")
                problem = remote.remove_copied_cas(conn)
                problems += [problem] if problem else []
                problems += package.remove_from_host(conn)
                if problems:
                    raise StepFailed("; ".join(problems))
            self.cluster.hosts.pop(run.addr, None)
            self.cluster.masters = [m for m in self.cluster.masters if m != run.addr]
            self.cluster.nodes = [n for n in self.cluster.nodes if n != run.addr]
            self.report.finish(run.addr, "ok")
            self.cfile.save(self.cluster)

        self.parallel(runs, one)
        if keeper is None:
            if not self.cluster.hosts:
                self.cfile.remove()
            return
        cleaned_masters = [r.addr for r in runs if r.role == "master" and not r.failed]
        try:
            if cleaned_masters:
                self.step(keeper, "kubeadm token create")
                with self.on(keeper):
                    join = remote.fresh_join(keeper.connection())
            self.succeed(keeper)
        except HostFailed:
            return
        if join is not None:
            nodes = [n for n in self.cluster.nodes if n not in chosen]
            self.rewrite_nodes(nodes, join, self.cluster.masters)


def quote_for_display(argv: list[str]) -> str:
    return shlex.join(argv)
