"""`bootstrap upgrade` on the hosts, through an Orchestrator; `upgrade` decides the order.

Every host still to upgrade is connected to first (one unreachable: nothing changed), then
gets the new package and its shell/init.sh; master0 takes an etcd snapshot (kept, named in
the output and the cluster file), runs `kubeadm upgrade plan` and `apply`; the other masters
and then the nodes follow one at a time. A host that fails stops the upgrade there; the
cluster file lists the hosts done, so the same command again continues from the failed host
and touches none done before (master0 still runs the kubectl drain/uncordon of the others).
"""

from __future__ import annotations

import datetime as dt
import json
import shlex
import tarfile
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

from bootstrap.cluster import package, upgrade
from bootstrap.cluster.cluster_file import Cluster
from bootstrap.cluster.orchestrate import HostFailed, HostRun, Orchestrator, Settings
from bootstrap.cluster.ssh import TRANSPORT_ERRORS, Connection, Target, describe
from bootstrap.errors import BadInput, StepFailed
from bootstrap.inputs import KubeVersion


@dataclass
class Options:
    current: KubeVersion
    target: KubeVersion
    pkg: package.Package
    drain_timeout: int
    ready_timeout: float
    stamp: str  # names the etcd snapshot


# ------------------------------------------------------------------ the package's version


def _member(path: Path, rel: str) -> bytes | None:
    """A file of the local package by its path under the package's tree (or top dir)."""
    with tarfile.open(path, "r:gz") as tar:
        for member in tar:
            parts = member.name.split("/")
            if member.isfile() and (parts == rel.split("/") or parts[1:] == rel.split("/")):
                f = tar.extractfile(member)
                return f.read() if f is not None else None
    return None


def manifest_version(path: Path) -> str | None:
    """The Kubernetes version manifest.json names (`bootstrap package build` writes it)."""
    data = _member(path, "manifest.json")
    if data is None:
        return None
    try:
        doc = json.loads(data)
    except ValueError:
        return None
    version = doc.get("kubernetes") if isinstance(doc, dict) else None
    return version if isinstance(version, str) else None


def check_package(
    settings: Settings, master0: Target, pkg: package.Package, want: KubeVersion
) -> str:
    """Before any host changes: the package is for `want`. Its manifest.json says so, or (a
    package without one) its bin/kubeadm, run once from a temporary file on master0 and
    removed. A URL is checked on each host after unpacking, before its init.sh. What was
    checked, for the output."""
    if pkg.path is None:
        return "a URL: its bin/kubeadm is checked on each host before its init.sh"
    found = manifest_version(pkg.path)
    if found is not None:
        upgrade.check_package_version(found, want, "its manifest.json")
        return f"its manifest.json says {found}"
    kubeadm = _member(pkg.path, "bin/kubeadm")
    if kubeadm is None:
        raise BadInput(f"--pkg-url {pkg.source!r}: no bin/kubeadm in the package")
    tmp = f"/tmp/lvscare-py-kubeadm-{uuid.uuid4().hex}"
    try:
        with Connection(master0, settings.auth, settings.known, settings.timeout) as conn:
            try:
                conn.write_file(tmp, kubeadm, 0o700)
                result = conn.run(f"{shlex.quote(tmp)} version -o short")
            finally:
                conn.run(f"rm -f -- {shlex.quote(tmp)}")
    except TRANSPORT_ERRORS as e:
        raise StepFailed(f"{master0}: {describe(e)} (checking the package's kubeadm)") from None
    if result.code != 0:
        raise BadInput(
            f"--pkg-url: its bin/kubeadm does not run on {master0}: {result.last_line()}"
        )
    upgrade.check_package_version(result.last_line(), want, "its bin/kubeadm")
    return f"its bin/kubeadm says {result.last_line()}"


# ------------------------------------------------------------------ the flow


class UpgradeOrchestrator(Orchestrator):
    """The hosts' outcomes go to the table and the logs: the cluster file's host records say
    how init left each host; the upgrade's own progress is UpgradeRecord.done."""

    records_hosts = False


class Upgrade:
    def __init__(self, orch: Orchestrator, opts: Options) -> None:
        self.orch = orch
        self.o = opts
        record = orch.cluster.upgrade
        assert record is not None
        self.record = record
        self.started = False

    @property
    def cluster(self) -> Cluster:
        return self.orch.cluster

    def save(self) -> None:
        self.orch.cfile.save(self.orch.cluster)

    def run(self) -> None:
        cluster = self.cluster
        try:
            self._run()
        finally:
            if not self.started and cluster.upgrade is self.record and not self.record.done:
                cluster.upgrade = None  # nothing changed on any host: no upgrade under way
            self.save()

    def _run(self) -> None:
        orch, cluster = self.orch, self.orch.cluster
        todo = upgrade.left(cluster, self.record)
        kinds = dict(upgrade.order(cluster))
        master0_target = cluster.masters[0]
        runs: dict[Target, HostRun] = {}
        for t in [master0_target, *todo]:
            if t not in runs:
                runs[t] = orch.add(t, "node" if kinds[t] == upgrade.NODE else "master")
        master0 = runs[master0_target]
        everyone = list(runs.values())

        def connect(run: HostRun) -> None:
            orch.connect(run)

        orch.parallel(everyone, connect)
        unreachable = [r for r in everyone if r.failed]
        if unreachable:
            for r in everyone:
                if not r.failed:
                    orch.skip(r, f"nothing changed: {unreachable[0].addr} is unreachable")
            return
        self.started = True  # from here the hosts change: the cluster file says so
        self.save()
        left_runs = [runs[t] for t in todo]
        orch.relay_package(left_runs, self.o.pkg, (master0,) if master0 not in left_runs else ())
        orch.parallel(left_runs, self.prepare)
        failed = [r for r in left_runs if r.failed]
        if failed:
            for r in everyone:
                if not r.failed:
                    orch.skip(r, f"not upgraded: the package failed on {failed[0].addr}")
            return
        for i, run in enumerate(left_runs):
            try:
                self.host(run, kinds[run.target], master0)
            except HostFailed:
                for later in left_runs[i + 1 :]:
                    orch.skip(later, f"{run.addr} failed before it: the upgrade stops there")
                if master0 not in left_runs and not master0.failed:
                    orch.report.finish(master0.addr, "ok", "", "kubectl for the others")
                orch.report.say(
                    f"\nupgrade stopped at {run.addr}; the cluster file lists the "
                    f"{len(self.record.done)} hosts done. Fix it and run the same command "
                    "again: it continues from there."
                )
                return
        if master0 not in left_runs:
            orch.report.finish(master0.addr, "ok", "", "kubectl for the others")
        self.finish()

    def finish(self) -> None:
        cluster = self.cluster
        snapshot = self.record.snapshot
        cluster.version = self.record.to_version
        cluster.pkg_url = self.record.pkg_url
        cluster.pkg_sha256 = self.record.pkg_sha256
        cluster.upgrade = None
        self.save()
        lines = [f"\ncluster upgraded to {cluster.version} (the cluster file says so now)"]
        if snapshot:
            lines.append(
                f"etcd snapshot from before, kept on master0 {cluster.masters[0]}: {snapshot}"
            )
        self.orch.report.say("\n".join(lines))

    # ------------------------------------------------------------ package

    def prepare(self, run: HostRun) -> None:
        """The new package there (sent or relayed), unpacked, its kubeadm the version asked
        for, then its shell/init.sh. Marks make a re-run skip what is done."""
        orch, pkg = self.orch, self.o.pkg
        conn = run.connection()
        with orch.on(run):
            digest, _sent = orch.receive_package(run, pkg, self.record.pkg_sha256)
            if self.record.pkg_sha256 is None:
                self.record.pkg_sha256 = digest  # a URL without --pkg-sha256: the first host's
            orch.step(run, "unpack")
            package.unpack(conn, digest)
            root = package.package_root(conn)
            kubeadm = shlex.quote(f"{root}/bin/kubeadm")
            out = conn.run(f"[ ! -x {kubeadm} ] || {kubeadm} version -o short")
            if out.code == 0 and out.output.strip():
                found = out.last_line()
                if found != str(self.o.target):
                    raise StepFailed(
                        f"the package's bin/kubeadm says {found}, not {self.o.target}: "
                        "its init.sh not run"
                    )
            orch.step(run, "init.sh")
            package.run_init(conn, root, digest)

    # ------------------------------------------------------------ one host

    def host(self, run: HostRun, kind: str, master0: HostRun) -> None:
        orch, o = self.orch, self.o
        conn = run.connection()
        name = upgrade.node_name(self.cluster, run.target)
        orch.step(run, "certificates")
        with orch.on(run):
            before = self.certificates(conn, "before the upgrade")
        if kind == upgrade.MASTER0:
            self.snapshot(run)
            self.remote(run, conn, upgrade.plan_argv(o.target))
            self.remote(run, conn, upgrade.apply_argv(o.target))
            if upgrade.config_moves(o.current, o.target):
                self.migrate(run)
        elif kind == upgrade.MASTER:
            self.remote(run, conn, upgrade.node_argv())
        else:
            self.remote(run, master0.connection(), upgrade.drain_argv(name, o.drain_timeout))
            self.remote(run, conn, upgrade.node_argv())
        if kind != upgrade.NODE:
            self.remote(run, master0.connection(), upgrade.drain_argv(name, o.drain_timeout))
        orch.step(run, "restart kubelet")
        with orch.on(run):
            conn.check(" && ".join(upgrade.KUBELET_RESTART), "restarting kubelet")
        self.wait_ready(run, master0, name)
        self.remote(run, master0.connection(), upgrade.uncordon_argv(name))
        orch.step(run, "certificates")
        with orch.on(run):
            after = upgrade.parse_expiries(conn.check(upgrade.CERTS_SCRIPT, "certificates"))
            shorter = upgrade.shortened(before, after)
            if shorter:
                raise StepFailed(
                    "certificates got shorter during the upgrade (kubeadm renewed them): "
                    + "; ".join(shorter)
                    + "; "
                    + upgrade.renew_hint(self.cluster.years)
                )
            self.left_enough(after, "after the upgrade")
        self.record.done.append(str(run.target))
        orch.succeed(run)  # saves the cluster file, with `done`

    def certificates(self, conn: Connection, when: str) -> dict[str, dt.datetime]:
        """Every certificate's end on the host, each with enough left (`left_enough`)."""
        found = upgrade.parse_expiries(conn.check(upgrade.CERTS_SCRIPT, "certificates"))
        self.left_enough(found, when)
        return found

    def left_enough(self, found: dict[str, dt.datetime], when: str) -> None:
        """A failure if one has less than two years left in a cluster whose certificates
        last longer (a run that stopped after kubeadm renewed it, say)."""
        short = upgrade.too_short(found, dt.datetime.now(dt.UTC), self.cluster.years)
        if short:
            raise StepFailed(
                f"certificates {when} end within two years, though this cluster's last "
                f"{self.cluster.years} years: {'; '.join(short)}; "
                + upgrade.renew_hint(self.cluster.years)
            )

    def remote(self, run: HostRun, conn: Connection, argv: list[str]) -> str:
        """One command (on this host or, kubectl, on master0), its failure this host's."""
        step = " ".join(argv[:3]) if argv[0] == "kubeadm" else f"kubectl {argv[3]}"
        self.orch.step(run, step)
        with self.orch.on(run):
            where = "" if conn is run.conn else f" (on master0 {conn.target})"
            self.orch.write_log(run, f"[{step}] {shlex.join(argv)}{where}")
            return conn.check(shlex.join(argv), step, on_line=self.orch.logger(run))

    def snapshot(self, run: HostRun) -> None:
        if self.record.snapshot:
            self.orch.report.step(run.addr, "etcd snapshot", "taken earlier, kept")
            return
        path = upgrade.snapshot_path(self.o.current, self.o.stamp)
        self.orch.step(run, "etcd snapshot")
        with self.orch.on(run):
            run.connection().check(upgrade.snapshot_script(path), "etcd snapshot")
        self.record.snapshot = path
        self.save()
        self.orch.report.say(f"etcd snapshot on master0 {run.addr}: {path} (kept)")

    def migrate(self, run: HostRun) -> None:
        self.orch.step(run, "kubeadm config migrate")
        with self.orch.on(run):
            out = run.connection().check(
                upgrade.migrate_script(self.o.target), "kubeadm config migrate"
            )
        if out.strip().endswith("moved"):
            self.orch.report.say(
                f"kubeadm configuration on master0 {run.addr} moved from v1beta3 to v1beta4: "
                f"{upgrade.KEPT_CONFIG} (the old one kept as {upgrade.KEPT_CONFIG}.v1beta3)"
            )

    def wait_ready(self, run: HostRun, master0: HostRun, name: str) -> None:
        """`kubectl get node` on master0 until the node's Ready condition is True."""
        self.orch.step(run, "wait Ready")
        argv = upgrade.ready_argv(name)
        deadline = time.monotonic() + self.o.ready_timeout
        pause = min(2.0, max(0.2, self.o.ready_timeout / 10))
        with self.orch.on(run):
            while True:
                result = master0.connection().run(shlex.join(argv))
                if result.code == 0 and result.output.strip() == "True":
                    return
                if time.monotonic() + pause > deadline or self.orch.stop.is_set():
                    raise StepFailed(
                        f"node {name} not Ready after {self.o.ready_timeout:g} s "
                        f"(last answer: {result.output.strip() or result.code}); it stays cordoned"
                    )
                time.sleep(pause)
