"""The order of work across a cluster and how one host's failure reaches the others.

init: every host gets the package, passed on from host to host (`relay`, so the uplink
carries it about once) or from here over SFTP in parallel (bounded by --parallel; the
uplink is the limit, not the order); then master0 runs `bootstrap master0`, the other
masters join one at a time (etcd members join one by one), and the nodes join in
parallel. A failed node stops no other host; a failed master0 stops everything after it; a
failed master stops the masters after it (etcd), not the nodes. The cluster file is saved
after every host. The join's token reaches each host in a 0600 file (`remote.join_file`),
never in a command.

Before anything is changed, every host is connected to and checked (`preflight`: its clock
against ours, swap, free ports, IPVS modules, a container runtime, a hostname of its own),
and the results printed in one table: one host failing a check stops the run with nothing
done anywhere (--skip-preflight: only connect). Ctrl-C
(`interrupt`) lets the remote commands running now end, abandons uploads (their temporary
files removed), starts nothing new and marks the rest `interrupted`; a second Ctrl-C
(`abort`) closes every connection at once. Either way a second run continues.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from bootstrap.cluster import clock, cni, package, preflight, relay, remote
from bootstrap.cluster.cluster_file import Cluster, ClusterFile
from bootstrap.cluster.progress import Reporter
from bootstrap.cluster.ssh import (
    TRANSPORT_ERRORS,
    Auth,
    Connection,
    ConnectionLost,
    KnownHosts,
    Progress,
    Target,
    describe,
)
from bootstrap.errors import BadInput, Interrupted, StepFailed
from bootstrap.host.kubeadm_config import kubeadm_api
from bootstrap.inputs import parse_version
from bootstrap.join import Join, redact


@dataclass
class Settings:
    auth: Auth
    known: KnownHosts
    timeout: float
    parallel: int
    log_dir: Path
    max_skew: float = clock.DEFAULT_MAX_SKEW
    relay: bool = True  # hosts pass the package on to each other (`relay`)
    preflight: bool = True  # False (--skip-preflight): only connect before changing hosts


class HostFailed(Exception):
    """A host stopped; the step and the error are already reported."""


@dataclass
class HostRun:
    """One host's connection and where it is, so a failure names its step."""

    target: Target
    role: str
    step: str = "connect"
    conn: Connection | None = None
    failed: bool = False
    offset: float | None = None  # its clock against ours, once preflight measured it
    facts: preflight.Facts | None = None  # what the preflight script found there
    seed_made: bool = False  # a node the seed system joined (preflight found its pod)
    log: list[str] = field(default_factory=list)

    @property
    def addr(self) -> str:
        return str(self.target)

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
        self.runs: dict[Target, HostRun] = {}
        self._log_lock = threading.Lock()
        self.stop = threading.Event()  # Ctrl-C: start nothing new
        self.aborted = False  # a second Ctrl-C: connections closed under running steps
        self.relayed: dict[Target, Target | None] = {}  # filled by the relay: who fed it

    # False: the hosts' outcomes go to the table and the logs only. The cluster file's host
    # records say how Kubernetes got onto each host; an app, a certificate check, an upgrade
    # (which keeps its own progress) or a clean of hosts no file knows says nothing of that.
    records_hosts = True

    def record_result(self, run: HostRun, result: str, step: str | None) -> None:
        if self.records_hosts:
            rec = self.cluster.hosts[run.target]
            rec.result, rec.failed_step = result, step
            self.cfile.save(self.cluster)

    # ------------------------------------------------------------ Ctrl-C

    def interrupt(self) -> None:
        """Start no new step; uploads stop at their next chunk (see `progress`)."""
        self.stop.set()

    def abort(self) -> None:
        """Close every connection now: what runs on a host ends as with a lost network."""
        self.aborted = True
        self.stop.set()
        self.close_all()

    def aborted_under(self) -> None:
        """After the second Ctrl-C reached the top: the hosts that were waiting for others
        (those in the middle of a step recorded themselves in `on`)."""
        for run in self.runs.values():
            if not run.failed and self.report.lines[run.addr].result == "pending":
                self.interrupted(run, "stopped while waiting for other hosts")

    def interrupted(self, run: HostRun, how: str) -> None:
        """Recorded as stopped by the operator, at the step it was at (not a failure)."""
        if run.failed:
            return
        run.failed = True
        self.report.finish(run.addr, "interrupted", run.step, f"Ctrl-C: {how}")
        self.write_log(run, f"INTERRUPTED at {run.step}")
        self.record_result(run, "interrupted", run.step)

    def progress(self, run: HostRun) -> Progress:
        """The upload's progress to the screen; after Ctrl-C it stops the upload."""

        def sent(done: int, total: int) -> None:
            if self.stop.is_set():
                raise Interrupted("upload stopped, its partial file removed")
            self.report.sent(run.addr, done, total)

        return sent

    # ------------------------------------------------------------ per host plumbing

    def add(self, target: Target, role: str) -> HostRun:
        run = HostRun(target, role)
        self.runs[target] = run
        self.report.add(run.addr, role)
        if target not in self.cluster.hosts or self.cluster.hosts[target].role != role:
            self.cluster.record(target, role)
        return run

    def step(self, run: HostRun, step: str, note: str = "") -> None:
        """The host moves on to `step`, unless Ctrl-C came: then it stops here."""
        if self.stop.is_set():
            run.step = step
            self.interrupted(run, "not started")
            raise HostFailed(run.addr)
        run.step = step
        self.report.step(run.addr, step, note)
        self.write_log(run, f"[{step}] -- begins{f' ({note})' if note else ''}")

    @contextlib.contextmanager
    def on(self, run: HostRun) -> Iterator[None]:
        """Turn anything that goes wrong on this host into its failure, named by step."""
        try:
            yield
        except Interrupted as e:
            self.interrupted(run, str(e))
            raise HostFailed(run.addr) from None
        except KeyboardInterrupt:  # the second Ctrl-C, in the thread running this step
            self.interrupted(run, "connection closed while it ran")
            raise
        except (StepFailed, BadInput, *TRANSPORT_ERRORS) as e:
            if self.aborted:  # our own Ctrl-C closed the connection under it
                self.interrupted(run, "connection closed while it ran")
            elif isinstance(e, (StepFailed, BadInput)):
                self.fail(run, str(e))
            elif run.conn is not None and not run.conn.alive():
                self.fail(run, str(ConnectionLost(describe(e))))
            else:
                self.fail(run, f"SSH: {describe(e)}")
            raise HostFailed(run.addr) from None

    def fail(self, run: HostRun, error: str) -> None:
        run.failed = True
        self.report.finish(run.addr, "failed", run.step, error)
        self.write_log(run, f"FAILED at {run.step}: {error}")
        self.record_result(run, "failed", run.step)

    def skip(self, run: HostRun, why: str) -> None:
        if self.stop.is_set():
            self.interrupted(run, "not started")
            return
        run.failed = True
        self.report.finish(run.addr, "skipped", "", why)

    def skip_after_master0(self, master0: HostRun, rest: list[HostRun]) -> None:
        """master0 (or the master standing in for it) failed: the rest is skipped."""
        for run in rest:
            if not run.failed:
                self.skip(run, f"master0 {master0.addr} failed")

    def succeed(self, run: HostRun) -> None:
        self.report.finish(run.addr, "ok")
        self.record_result(run, "ok", None)

    def write_log(self, run: HostRun, line: str) -> None:
        """Per-host log of remote output (no password ever reaches a remote command, and
        tokens and certificate keys are masked); 0600 from its creation all the same. Each
        line has its UTC time: where a slow host spent its minutes, step by step."""
        stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        with self._log_lock:
            self.s.log_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
            path = self.s.log_dir / (run.addr.replace(":", "_").replace("/", "_") + ".log")
            fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
            os.fchmod(fd, 0o600)  # a log an older bootstrap left wider: narrowed first
            with open(fd, "a", encoding="utf-8") as f:
                f.write(f"{stamp} {redact(line)}\n")

    def logger(self, run: HostRun) -> Callable[[str], None]:
        return lambda line: self.write_log(run, f"[{run.step}] {line}")

    def connect(self, run: HostRun) -> Connection:
        self.step(run, "connect")
        with self.on(run):
            run.conn = Connection(run.target, self.s.auth, self.s.known, self.s.timeout)
            name = run.conn.check("hostname", "hostname").strip().lower()
            self.cluster.hosts[run.target].node_name = name
        return run.conn

    def close_all(self) -> None:
        for run in list(self.runs.values()):
            conn, run.conn = run.conn, None
            if conn is not None:
                with contextlib.suppress(*TRANSPORT_ERRORS):
                    conn.close()

    def parallel(self, runs: list[HostRun], fn: Callable[[HostRun], None]) -> None:
        """fn on every host, at most --parallel at once; a failure stays with its host."""

        def one(run: HostRun) -> None:
            with contextlib.suppress(HostFailed):
                fn(run)

        if not runs:
            return
        with ThreadPoolExecutor(max_workers=max(1, min(self.s.parallel, len(runs)))) as pool:
            futures = [pool.submit(one, r) for r in runs]
            try:
                for future in futures:
                    future.result()
            except KeyboardInterrupt:  # a second Ctrl-C: the workers must not be waited for
                self.abort()
                pool.shutdown(wait=False, cancel_futures=True)
                raise

    # ------------------------------------------------------------ steps

    def preflight(self, run: HostRun, facts: bool = True) -> None:
        """Connected; unless --skip-preflight, its clock measured and (`facts`) the
        preflight script's facts read. Nothing is judged here: `preflight_all` does, with
        every host's facts at hand. Reads only."""
        conn = run.conn or self.connect(run)
        if not self.s.preflight:
            return
        self.step(run, "preflight")
        with self.on(run):
            if self.s.max_skew > 0:
                run.offset = clock.offset(conn)
                self.write_log(run, f"[clock] {run.offset:+.0f} s from this machine's")
            if not facts:
                return
            try:
                run.facts = preflight.parse(conn.check(preflight.SCRIPT, "preflight"))
            except preflight.BadFacts as e:
                raise StepFailed(str(e)) from None
            if run.role == "node" and run.facts.kubelet_conf:
                run.seed_made = remote.seed_made(conn)  # its ports are its kubelet's
            held = preflight.held_ports(run.facts, run.role)
            if held:  # who holds them, for the table (best effort)
                inodes = [i for p in held for i in run.facts.listening[p]]
                out = conn.run(preflight.owners_script(inodes))
                run.facts.owners = preflight.parse_owners(out.output)

    def member(self, run: HostRun) -> bool:
        """The cluster file says an earlier run got the host as far as kubeadm (read before
        this run records anything of it): its ports are its own cluster's."""
        rec = self.cluster.hosts.get(run.target)
        return rec is not None and preflight.ran_kubeadm(rec.result, rec.failed_step)

    def preflight_all(self, runs: list[HostRun], source: HostRun | None = None) -> bool:
        """Every host connected and checked, one table for all; False (the rest skipped,
        nothing changed anywhere) if one fails a check. An unreachable host fails alone, as
        later. `source` (join: the cluster's first master) gets its clock checked only;
        without it (init) the VIP is checked against the service and pod CIDRs too."""
        if source is None and self.s.preflight:
            self.warn_vip()
        everyone = [source, *runs] if source is not None else runs
        # What the cluster file says of them, read before this run records anything.
        members = {r.target for r in everyone if self.member(r)}
        known = {r.target for r in everyone if self.cluster.hosts[r.target].result != "pending"}
        self.parallel(everyone, lambda r: self.preflight(r, facts=r is not source))
        if self.stop.is_set():
            for run in everyone:
                self.skip(run, "")  # marked interrupted
            return False
        if not self.s.preflight:
            return True
        checked = {r.target for r in runs}
        others = {
            rec.node_name: str(t)
            for t, rec in self.cluster.hosts.items()
            if t not in checked and rec.node_name
        }
        inputs = [
            preflight.HostInput(
                run.addr,
                run.role,
                run.facts,
                run.offset,
                # A node the seed joined is a member for join (of the cluster named by its
                # masters); for init it is another cluster's, and its ports are checked.
                run.target in members or (source is not None and run.seed_made),
                self._failure(run) if run.failed else "",
                run.target in known,
            )
            for run in everyone
        ]
        verdict = preflight.evaluate(inputs, self.s.max_skew, others)
        self.report.say("\n".join(["", *preflight.table(verdict), ""]))
        by_addr = {r.addr: r for r in everyone}
        for row in verdict.rows:
            for check in preflight.CHECKS:
                found = row.findings[check]
                if found.level != preflight.OK and found.level != preflight.SKIP:
                    self.write_log(
                        by_addr[row.addr], f"[preflight] {check}: {found.level} {found.detail}"
                    )
        failing = verdict.failing()
        if not failing:
            return True
        for row in failing:
            run = by_addr[row.addr]
            run.step = f"preflight: {', '.join(row.failures())}"
            self.fail(run, row.reason())
        why = verdict.blame()
        for run in everyone:
            if not run.failed:
                self.skip(run, f"nothing changed: {why}")
        return False

    def _failure(self, run: HostRun) -> str:
        line = self.report.lines[run.addr]
        if line.failed_step in ("", "connect"):
            return line.error
        return f"{line.failed_step}: {line.error}"

    def warn_vip(self) -> None:
        """Once, loudly, before the table: a VIP a Service or Pod may be given."""
        cluster = self.cluster
        warning = preflight.vip_warning(cluster.vip, cluster.svc_cidr, cluster.pod_cidr)
        if warning:
            self.report.say("\n" + warning)

    def relay_package(
        self, runs: list[HostRun], pkg: package.Package, sources: tuple[HostRun, ...] = ()
    ) -> None:
        """Before `prepare`: the hosts pass the package on to each other (`relay`), so this
        machine's uplink carries it about once; a host the relay does not fill gets it from
        here in `prepare` as before. It fails no host: `prepare` says what is wrong."""
        if not self.s.relay or pkg.path is None or self.stop.is_set():
            return
        live = [r for r in runs if not r.failed and r.conn is not None]
        donors = [r for r in sources if not r.failed and r.conn is not None and r not in live]
        if len(live) + len(donors) < 2:  # one host alone: SFTP, nothing to relay
            return
        by_target = {r.target: r for r in [*live, *donors]}

        def started(host: Target, source: Target | None) -> None:
            self.report.step(str(host), "package", f"relay from {source or 'this machine'}")

        def sent(hosts: Sequence[Target], done: int, total: int) -> None:
            for i, host in enumerate(hosts):
                self.report.sent(str(host), done, total, "sent" if i == 0 else "relayed")

        def log(host: Target, line: str) -> None:
            self.write_log(by_target[host], f"[package] {line}")

        engine = relay.Relay(
            {t: r.connection() for t, r in by_target.items()},
            pkg,
            relay.Hooks(started, sent, log),
            self.stop,
            self.s.parallel,
        )
        outcome = engine.run([r.target for r in live], [r.target for r in donors])
        self.relayed = outcome.got

    def prepare(self, run: HostRun, pkg: package.Package, template: bytes | None) -> None:
        """Connect, package there and checked, unpacked, shell/init.sh run, bootstrap found."""
        if run.failed:
            return
        conn = run.conn or self.connect(run)
        with self.on(run):
            digest, sent = self.receive_package(run, pkg, self.cluster.pkg_sha256)
            if self.cluster.pkg_sha256 is None:
                self.cluster.pkg_sha256 = digest  # a URL without --pkg-sha256: the first host's
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

    def receive_package(
        self, run: HostRun, pkg: package.Package, reference: str | None
    ) -> tuple[str, bool]:
        """The package there: relayed, sent from here or downloaded by the host; its sha256
        and whether it came now. `reference`: the other hosts' sha256 (None: this host's is
        the first), which it must match (a URL may serve different bytes to different hosts)."""
        if run.target in self.relayed and pkg.sha256 is not None:
            source = self.relayed[run.target] or "this machine"
            self.step(run, "package", f"relayed from {source}, sha256 checked there")
            digest, sent = pkg.sha256, True
        else:
            self.step(run, "package")
            digest, sent = package.distribute(run.connection(), pkg, self.progress(run))
        if reference is not None and digest != reference:
            raise StepFailed(f"sha256 mismatch: the host has {digest}, other hosts {reference}")
        return digest, sent

    def bootstrap(self, run: HostRun, args: list[str], join: Join | None = None) -> str:
        self.step(run, f"bootstrap {args[0]}")
        return self.run_bootstrap(run, args, join)

    def run_bootstrap(self, run: HostRun, args: list[str], join: Join | None = None) -> str:
        """A single-host command there; `join` goes with it in a file, not on its line."""
        with self.on(run):
            conn = run.connection()
            if join is None:
                return remote.run_bootstrap(conn, args, self.logger(run))
            api = kubeadm_api(parse_version(self.cluster.version))
            with remote.join_file(conn, join, api) as flags:
                return remote.run_bootstrap(conn, [*args, *flags], self.logger(run))

    # ------------------------------------------------------------ flows

    def cluster_args(self, masters: list[Target]) -> list[str]:
        template = package.REMOTE_TEMPLATE if self.cluster.kubeadm_config else None
        args = remote.cluster_args(
            [m.ip for m in masters], self.cluster.vip, self.cluster.version, template
        )
        return [*args, *remote.spec_args(self.cluster)]

    def node_args(self, masters: list[Target]) -> list[str]:
        args = remote.node_args([m.ip for m in masters], self.cluster.vip, self.cluster.version)
        return [*args, *remote.daemon_args(self.cluster)]

    def join_masters(
        self, runs: list[HostRun], source: HostRun, join: Join, masters: list[Target]
    ) -> None:
        """Masters one at a time: CAs from `source`, then `bootstrap master --join`."""
        # The CAs are copied, so no certificate key: kubeadm would download them again
        # (and the uploaded ones expire after two hours).
        join = dataclasses.replace(join, certificate_key=None)
        for i, run in enumerate(runs):
            if run.failed:
                continue
            try:
                self.step(run, "copy CAs")
                with self.on(run):
                    remote.copy_cas(source.connection(), run.connection())
                self.bootstrap(
                    run,
                    [
                        "master",
                        "--join",
                        *self.cluster_args(masters),
                        "--ip",
                        run.target.ip,
                    ],
                    join,
                )
                self.succeed(run)
            except HostFailed:
                for later in runs[i + 1 :]:
                    if not later.failed:
                        self.skip(
                            later, f"master {run.addr} failed before it (etcd joins one by one)"
                        )
                return

    def join_nodes(self, runs: list[HostRun], join: Join, masters: list[Target]) -> None:
        args = self.node_args(masters)

        def one(run: HostRun) -> None:
            if run.failed:
                return
            self.bootstrap(run, args, join)
            self.succeed(run)

        self.parallel(runs, one)

    def rewrite_nodes(self, nodes: list[Target], join: Join, masters: list[Target]) -> None:
        """Every node's lvscare manifest (and IPVS rules) with the current masters: the
        single-host `bootstrap node` again, which skips its done kubeadm join."""
        runs = [self.add(n, "node") for n in nodes]

        def one(run: HostRun) -> None:
            self.connect(run)
            self.step(run, "rewrite manifest")
            self.run_bootstrap(run, self.node_args(masters), join)
            self.succeed(run)

        self.parallel(runs, one)

    def init(self, pkg: package.Package, template: bytes | None) -> None:
        masters = [self.add(m, "master") for m in self.cluster.masters]
        nodes = [self.add(n, "node") for n in self.cluster.nodes]
        self.cfile.save(self.cluster)
        if not self.preflight_all([*masters, *nodes]):
            return
        self.relay_package([*masters, *nodes], pkg)
        self.parallel([*masters, *nodes], lambda r: self.prepare(r, pkg, template))
        master0, others = masters[0], masters[1:]
        join = None if master0.failed else self.first_master(master0)
        if join is None:
            self.skip_after_master0(master0, [*others, *nodes])
            return
        self.join_masters(others, master0, join, self.cluster.masters)
        self.join_nodes(nodes, join, self.cluster.masters)

    def first_master(self, master0: HostRun) -> Join | None:
        """`bootstrap master0` there; the join it prints, None if it failed."""
        try:
            out = self.bootstrap(master0, ["master0", *self.cluster_args(self.cluster.masters)])
            with self.on(master0):
                join = remote.parse_join(out, "bootstrap master0")
            if self.cluster.cni:
                self.apply_cni(master0)
        except HostFailed:
            return None
        self.succeed(master0)
        return join

    def apply_cni(self, master0: HostRun) -> None:
        """The package's CNI manifest, its pod network set to the cluster's, applied on
        master0 with the package's kubectl (again on a re-run: `apply` is idempotent)."""
        with self.on(master0):
            conn = master0.connection()
            root = package.package_root(conn)
            manifest = cni.find_manifest(conn, root)
        if manifest is None:  # a package without one (sealos' without-cni): nothing to do
            return
        self.step(master0, "cni")
        with self.on(master0):
            done = cni.apply(conn, root, manifest, self.cluster.pod_cidr)
            self.report.step(master0.addr, "cni", done)
            self.write_log(master0, f"[cni] {done}")

    def fresh_join(self, source: HostRun) -> Join | None:
        """A new bootstrap token from a master; None if it failed."""
        try:
            self.step(source, "kubeadm token create")
            with self.on(source):
                return remote.fresh_join(source.connection())
        except HostFailed:
            return None

    def join(
        self,
        new_masters: list[Target],
        new_nodes: list[Target],
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
        if not source.failed and not self.cluster.version:
            self.learn_version(source, [*masters, *nodes])
        if source.failed or not self.preflight_all([*masters, *nodes], source):
            return
        join = self.fresh_join(source)
        if join is None:
            self.skip_after_master0(source, [*masters, *nodes])
            return
        self.relay_package([*masters, *nodes], pkg, (source,))
        self.parallel([*masters, *nodes], lambda r: self.prepare(r, pkg, template))
        self.join_masters(masters, source, join, all_masters)
        joined = [r.target for r in masters if not r.failed]
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

    def learn_version(self, source: HostRun, dependents: list[HostRun]) -> None:
        """A cluster made elsewhere: its Kubernetes version, as its first master's kubeadm
        says (the nodes' kubeadm join must speak the same configuration API)."""
        try:
            self.step(source, "kubeadm version")
            with self.on(source):
                text = remote.kubeadm_version(source.connection())
                try:
                    self.cluster.version = str(parse_version(text))
                except BadInput:
                    raise StepFailed(
                        f"`kubeadm version -o short` said {text!r}: not a version; give --version"
                    ) from None
        except HostFailed:
            self.skip_after_master0(source, dependents)

    def join_made_elsewhere(self, new_nodes: list[Target], pkg: package.Package) -> None:
        """`join` without a cluster file, the seed's form: the cluster's masters (recorded as
        members already) and new nodes; a node the seed made is taken over there by
        `bootstrap node`. The cluster file is kept once a node joined; else it goes, so the
        same command can be run again."""
        self.join([], new_nodes, pkg, None)
        if not any(
            self.cluster.hosts[n].result == "ok" for n in new_nodes if n in self.cluster.hosts
        ):
            self.cfile.remove()

    def connect_or_stop(self, source: HostRun, dependents: list[HostRun]) -> None:
        try:
            self.connect(source)
        except HostFailed:
            self.skip_after_master0(source, dependents)

    def clean_host(self, run: HostRun) -> bool:
        """`bootstrap clean` there, then the package, the copied CAs and relay leftovers;
        False if no bootstrap of ours was there to clean with (nothing of ours to undo)."""
        conn = self.connect(run)
        self.step(run, "bootstrap clean")
        with self.on(run):
            ours = remote.has_bootstrap(conn)
            if not ours:
                self.report.step(run.addr, "bootstrap clean", "no bootstrap there: skipped")
                self.write_log(run, "[bootstrap clean] no lvscare-py bootstrap on PATH: skipped")
            problems = remote.clean_host(conn)
            self.step(run, "remove package")
            problem = remote.remove_copied_cas(conn)
            problems += [problem] if problem else []
            problem = relay.sweep(conn)  # what a relay cut off left (before REMOTE_DIR goes)
            problems += [problem] if problem else []
            problems += package.remove_from_host(conn)
            if problems:
                raise StepFailed("; ".join(problems))
        return ours

    def clean_unrecorded(self, masters: list[Target], nodes: list[Target]) -> None:
        """`clean` without a cluster file (the seed's form): exactly the hosts named, with
        the flags' credentials; nothing recorded. No master is known to stay, so no
        `kubectl delete node` runs and no node is told of fewer masters: said at the end."""
        self.records_hosts = False
        runs = [self.add(m, "master") for m in masters] + [self.add(n, "node") for n in nodes]
        untouched: list[HostRun] = []

        def one(run: HostRun) -> None:
            if not self.clean_host(run):
                untouched.append(run)
            self.report.finish(run.addr, "ok")

        self.parallel(runs, one)
        done = [r for r in runs if not r.failed and r not in untouched]
        lines = [""]
        if untouched:
            lines.append(
                "left as they were (no lvscare-py bootstrap there, nothing of ours to undo): "
                + ", ".join(r.addr for r in untouched)
            )
        if not done:
            if untouched:
                self.report.say("\n".join(lines))
            return
        names = ", ".join(self.cluster.hosts[r.target].node_name or r.addr for r in done)
        lines.append(
            f"not done (no cluster file names a master that stays): `kubectl delete node` of "
            f"{names}; run it on a master of their cluster."
        )
        if any(r.role == "master" for r in done):
            lines.append(
                "The other nodes' lvscare pods still list the masters cleaned: run "
                "`bootstrap join` with a cluster file, or the seed's tools, to rewrite them."
            )
        self.report.say("\n".join(lines))

    def clean(self, chosen: list[Target], everything: bool) -> None:
        """Clean hosts; on a partial clean, delete their nodes from Kubernetes first (on a
        remaining master) and give the remaining nodes the remaining masters."""
        remaining_masters = [m for m in self.cluster.masters if m not in chosen]
        if not everything and not remaining_masters:
            raise BadInput("that would clean every master: use --all to clean the whole cluster")
        runs = [
            self.add(a, self.cluster.hosts[a].role if a in self.cluster.hosts else "node")
            for a in chosen
        ]
        join: Join | None = None
        keeper: HostRun | None = None
        if not everything:
            keeper = self.add(remaining_masters[0], "master")
            self.connect_or_stop(keeper, runs)
            if keeper.failed:
                return

        def one(run: HostRun) -> None:
            record = self.cluster.hosts.get(run.target)
            name = record.node_name if record is not None else None
            if keeper is not None and name:
                self.step(keeper, f"kubectl delete node {name}")
                with self.on(run):
                    remote.delete_node(keeper.connection(), name)
            self.clean_host(run)
            self.cluster.hosts.pop(run.target, None)
            self.cluster.masters = [m for m in self.cluster.masters if m != run.target]
            self.cluster.nodes = [n for n in self.cluster.nodes if n != run.target]
            self.report.finish(run.addr, "ok")
            self.cfile.save(self.cluster)

        self.parallel(runs, one)
        if keeper is None:
            if not self.cluster.hosts:
                self.cfile.remove()
            return
        if any(r.role == "master" and not r.failed for r in runs):
            join = self.fresh_join(keeper)
            if join is None:
                return
        self.succeed(keeper)
        if join is not None:
            nodes = [n for n in self.cluster.nodes if n not in chosen]
            self.rewrite_nodes(nodes, join, self.cluster.masters)
