"""`bootstrap certs check` and `bootstrap certs renew`: the certificates of every master of a
cluster, over SSH. Loaded only when one of them is asked for (they load the SSH library)."""

from __future__ import annotations

import datetime as dt
import io
from typing import Any

import click

from bootstrap.cli.cluster import cluster_settings, parse_targets, run_hosts
from bootstrap.cli.options import cluster_name_option, renewal_wait_options, ssh_options
from bootstrap.cluster import certs
from bootstrap.cluster.cluster_file import ClusterFile
from bootstrap.cluster.progress import Reporter
from bootstrap.errors import StepFailed
from bootstrap.host.renewal import parse_restart_wait
from bootstrap.inputs import parse_years

DEFAULT_WARN_DAYS = 30

master_option = click.option(
    "--master",
    "masters",
    multiple=True,
    metavar="IP[:PORT]",
    help="Only this master (repeatable) [default: every master of the cluster file].",
)


def _failures(report: Reporter) -> list[str]:
    return [
        f"{host}: failed at {line.failed_step}: {line.error}"
        for host, line in report.lines.items()
        if line.result != "ok"
    ]


@click.command("check")
@master_option
@click.option(
    "--warn-days",
    default=DEFAULT_WARN_DAYS,
    show_default=True,
    type=int,
    metavar="DAYS",
    help="Exit 1 when a certificate ends within this many days (or has ended).",
)
@click.option(
    "--dry-run", is_flag=True, help="Print which masters would be asked; connect to none."
)
@cluster_name_option
@ssh_options
def check_command(
    masters: tuple[str, ...],
    warn_days: int,
    dry_run: bool,
    cluster_name: str | None,
    **ssh: Any,
) -> None:
    """Every certificate and kubeconfig of every master, with its end and the time left.

    Reads only (`bootstrap certs list --json` on each master, in parallel); judged by this
    machine's clock. Exit 0: all good; 1: one ends within --warn-days, has ended, cannot be
    read, or a master could not be asked. For cron and monitoring:

    \b
      bootstrap certs check --warn-days 60 || mail -s "renew the certificates" ops
    """
    days = certs.parse_warn_days(warn_days)
    cfile = ClusterFile(name=cluster_name)
    cluster = cfile.load()
    chosen = certs.choose_masters(cluster, parse_targets(masters, "--master"))
    if dry_run:
        for target in chosen:
            click.echo(f"{target}: would run `bootstrap certs list --json` (reads only)")
        return
    settings = cluster_settings(cfile, cluster, **ssh)
    report = Reporter(out=io.StringIO(), tty=False)  # the certificate table says it all
    orch = certs.CertsOrchestrator(cluster, cfile, settings, report)
    found: dict[str, list[Any]] = {}
    run_hosts("certs check", orch, lambda: found.update(orch.list_all(chosen)), table=False)
    rows = certs.rows_of(found, dt.datetime.now(dt.UTC), days)
    click.echo("\n".join(certs.table(rows)))
    failures = _failures(report)
    for line in failures:
        click.echo(line, err=True)
    problem = certs.summary(rows, days)
    if problem or failures:
        hosts = f"{len(failures)} masters could not be asked" if failures else ""
        raise StepFailed("certs check: " + "; ".join(p for p in (problem, hosts) if p))


@click.command("renew")
@master_option
@click.option(
    "--years",
    type=int,
    default=None,
    help="New lifetime of every leaf certificate [default: the cluster's --years, from init]; "
    "never past its CA's end.",
)
@renewal_wait_options(each_master=True)
@click.option(
    "--dry-run",
    is_flag=True,
    help="Each master prints what it would back up, write and restart; nothing changes.",
)
@cluster_name_option
@ssh_options
def renew_command(
    masters: tuple[str, ...],
    years: int | None,
    restart_wait: float,
    serve_timeout: float,
    dry_run: bool,
    cluster_name: str | None,
    **ssh: Any,
) -> None:
    """Renew every master's leaf certificates and kubeconfigs from the kept CAs.

    One master at a time: `bootstrap certs --renew` there backs up pki/ and the kubeconfigs
    to /var/lib/lvscare-py/backup/certs-TIME/, re-signs each leaf with its own key and names,
    then moves the control plane manifests out and back so the static pods restart with the
    new files, and waits until its kube-apiserver serves the renewed certificate before the
    next master starts. The CAs, keys and service account keys are not changed. Then master0's new
    admin.conf is copied beside the cluster file, and the certificates are listed again.

    \b
      bootstrap certs renew --years 10
    """
    lifetime = parse_years(years) if years is not None else None
    wait = parse_restart_wait(restart_wait)
    serve = parse_restart_wait(serve_timeout, "--serve-timeout")
    cfile = ClusterFile(name=cluster_name)
    cluster = cfile.load()
    chosen = certs.choose_masters(cluster, parse_targets(masters, "--master"))
    lifetime = lifetime or parse_years(cluster.years, "the cluster file's years")
    settings = cluster_settings(cfile, cluster, **ssh)
    report = Reporter()
    orch = certs.CertsOrchestrator(cluster, cfile, settings, report)
    dest = cfile.path.parent / certs.ADMIN_CONF
    copied: list[bool] = []
    found: dict[str, list[Any]] = {}

    def work() -> None:
        plans = orch.renew(chosen, lifetime, wait, serve, dry_run)
        for host, out in plans.items():
            report.say(f"\n{host} (dry run):\n{out.rstrip()}")
        if dry_run:
            return
        if cluster.masters[0] in chosen:
            copied.append(orch.fetch_admin_conf(cluster.masters[0], dest))
        renewed = [m for m in chosen if not orch.runs[m].failed]
        found.update(orch.list_all(renewed))

    run_hosts("certs renew", orch, work)
    if found:
        rows = certs.rows_of(found, dt.datetime.now(dt.UTC), DEFAULT_WARN_DAYS)
        click.echo("\n" + "\n".join(certs.table(rows)))
    if copied and copied[0]:
        click.echo(f"\nmaster0's renewed admin.conf: {dest} (0600); kubectl --kubeconfig {dest}")
    failed = report.failed()
    if failed:
        raise StepFailed(
            f"certs renew: {len(failed)} of {len(report.lines)} masters not renewed: "
            f"{', '.join(failed)}; a failed one has its backup under "
            "/var/lib/lvscare-py/backup/ and can be renewed again"
        )
