"""`bootstrap certs check` and `renew`: the masters' certificates over SSH.

check: every master (in parallel) runs the single-host `bootstrap certs list --json`; this
machine judges each certificate against its own clock and prints one table, for cron and
monitoring (exit 1 if one ends within --warn-days). renew: the masters one at a time (the
control plane of each restarts, the others keep serving), each running the single-host
`bootstrap certs --renew`; a failed master stops the ones after it. Then master0's new
admin.conf is copied beside the cluster file for the operator, and the table printed again.

The cluster file's host records say how init and join left each host; a certificate run
changes none of them (`CertsOrchestrator`).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from pathlib import Path

from bootstrap import fsutil
from bootstrap.cluster import remote
from bootstrap.cluster.cluster_file import Cluster
from bootstrap.cluster.orchestrate import HostFailed, HostRun, Orchestrator
from bootstrap.cluster.ssh import Target
from bootstrap.errors import BadInput, StepFailed
from bootstrap.host.renewal import Entry, parse_inventory

MAX_WARN_DAYS = 36500
ADMIN_CONF = "admin.conf"
OK, SOON, EXPIRED, UNREADABLE = "ok", "EXPIRES SOON", "EXPIRED", "UNREADABLE"


# ---------------------------------------------------------------- pure decisions


def choose_masters(cluster: Cluster, given: list[Target]) -> list[Target]:
    """The masters to work on, in the cluster's order: all, or those given (each must be one)."""
    for target in given:
        if target not in cluster.masters:
            raise BadInput(
                f"--master {target}: not a master of this cluster "
                f"({', '.join(str(m) for m in cluster.masters)})"
            )
    return [m for m in cluster.masters if not given or m in given]


def parse_warn_days(value: int) -> int:
    if not 0 <= value <= MAX_WARN_DAYS:
        raise BadInput(f"--warn-days {value}: must be between 0 and {MAX_WARN_DAYS}")
    return value


def renew_args(years: int, wait: float, serve: float, dry_run: bool) -> list[str]:
    """The single-host command each master runs."""
    args = ["certs", "--renew", "--years", str(years), "--restart-wait", f"{wait:g}"]
    args += ["--serve-timeout", f"{serve:g}"]
    return [*args, "--dry-run"] if dry_run else args


@dataclass(frozen=True)
class Row:
    host: str
    file: str
    expires: str
    remaining: str
    verdict: str
    bad: bool  # what --warn-days flags: exit 1


def remaining(left: dt.timedelta) -> str:
    """Time left, coarse enough to read at a glance: 98y 364d, 29d, 5h, -3d."""
    if left < dt.timedelta(0):
        return f"-{(-left).days}d" if -left >= dt.timedelta(days=1) else "-0d"
    if left < dt.timedelta(days=1):
        return f"{int(left.total_seconds() // 3600)}h"
    years, days = divmod(left.days, 365)
    return f"{years}y {days}d" if years else f"{days}d"


def judge(host: str, entry: Entry, now: dt.datetime, warn_days: int) -> Row:
    """One certificate's verdict by this machine's clock. A kubelet's rotated client
    certificate is the kubelet's to renew: only an expired one counts against it."""
    if not entry.not_after:
        return Row(host, entry.file, "-", "-", f"{UNREADABLE}: {entry.note}", True)
    end = dt.datetime.strptime(entry.not_after, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=dt.UTC)
    left = end - now
    if left <= dt.timedelta(0):
        verdict = EXPIRED
    elif entry.kind == "kubelet":
        verdict = f"{OK} ({entry.note})"
    elif left < dt.timedelta(days=warn_days):
        verdict = SOON
    else:
        verdict = OK
    if entry.kind == "ca" and verdict == OK:
        verdict = "ok (CA)"
    bad = verdict in (SOON, EXPIRED)
    return Row(host, entry.file, f"{end:%Y-%m-%d %H:%M}", remaining(left), verdict, bad)


def rows_of(listings: dict[str, list[Entry]], now: dt.datetime, warn_days: int) -> list[Row]:
    return [judge(h, e, now, warn_days) for h, entries in listings.items() for e in entries]


def table(rows: list[Row]) -> list[str]:
    cells = [("HOST", "FILE", "EXPIRES (UTC)", "REMAINING", "VERDICT")]
    cells += [(r.host, r.file, r.expires, r.remaining, r.verdict) for r in rows]
    widths = [max(len(c[i]) for c in cells) for i in range(4)]
    return [
        "  ".join(c.ljust(w) for c, w in zip(row[:4], widths, strict=True)) + "  " + row[4]
        for row in cells
    ]


def summary(rows: list[Row], warn_days: int) -> str | None:
    """The one line of a failing check, naming every flagged certificate; None if none."""
    bad = [r for r in rows if r.bad]
    if not bad:
        return None
    names = ", ".join(f"{r.host} {r.file} ({r.verdict.split(':')[0].lower()})" for r in bad)
    return f"{len(bad)} certificates expire within {warn_days} days or are unusable: {names}"


# ---------------------------------------------------------------- over SSH


class CertsOrchestrator(Orchestrator):
    """An Orchestrator whose hosts' outcomes go to the table and the logs only, not to the
    cluster file: checking or renewing certificates says nothing of how init left a host."""

    records_hosts = False

    # ------------------------------------------------------------ flows

    def listing(self, run: HostRun) -> list[Entry] | None:
        """`bootstrap certs list --json` there; None if the host failed (in the table)."""
        try:
            conn = run.conn or self.connect(run)
            self.step(run, "certs list")
            with self.on(run):
                out = remote.run_bootstrap(conn, ["certs", "list", "--json"])
                try:
                    return parse_inventory(out)
                except ValueError as e:
                    raise StepFailed(f"bootstrap certs list: {e}") from None
        except HostFailed:
            return None

    def list_all(self, masters: list[Target]) -> dict[str, list[Entry]]:
        runs = [self.runs.get(m) or self.add(m, "master") for m in masters]
        found: dict[str, list[Entry]] = {}

        def one(run: HostRun) -> None:
            if run.failed:
                return
            entries = self.listing(run)
            if entries is not None:
                found[run.addr] = entries
                self.succeed(run)

        self.parallel(runs, one)
        return {r.addr: found[r.addr] for r in runs if r.addr in found}

    def renew(
        self, masters: list[Target], years: int, wait: float, serve: float, dry_run: bool
    ) -> dict[str, str]:
        """One master at a time: `bootstrap certs --renew` there (backup, re-sign, restart).
        With dry_run, what each master said it would do, to be shown host by host."""
        runs = [self.add(m, "master") for m in masters]
        plans: dict[str, str] = {}
        for i, run in enumerate(runs):
            try:
                self.connect(run)
                out = self.bootstrap(run, renew_args(years, wait, serve, dry_run))
                if dry_run:
                    plans[run.addr] = out
                self.succeed(run)
            except HostFailed:
                for later in runs[i + 1 :]:
                    self.skip(later, f"master {run.addr} failed before it (one at a time)")
                break
        return plans

    def fetch_admin_conf(self, master0: Target, dest: Path) -> bool:
        """master0's renewed admin.conf to `dest` (0600); False if it could not be read."""
        run = self.runs[master0]
        if run.failed or run.conn is None:
            return False
        try:
            self.step(run, "copy admin.conf")
            with self.on(run):
                data = run.conn.read_file(remote.ADMIN_CONF)
        except HostFailed:
            return False
        dest.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        fsutil.write_atomic(dest, data, 0o600)
        self.succeed(run)
        return True
