"""`bootstrap upgrade`: the cluster `init` made, to the next Kubernetes version, as kubeadm's
own procedure does it, host by host; a re-run after a failure continues from the failed host.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import click

from bootstrap.cli.cluster import cluster_settings, orchestrate_hosts
from bootstrap.cli.options import cluster_name_option, package_options, ssh_options
from bootstrap.cluster import package, upgrade
from bootstrap.cluster.cluster_file import ClusterFile, UpgradeRecord
from bootstrap.cluster.upgrade_flow import (
    Options,
    Upgrade,
    UpgradeOrchestrator,
    check_package,
    manifest_version,
)
from bootstrap.errors import BadInput
from bootstrap.inputs import parse_version

MAX_TIMEOUT = 86400


@click.command("upgrade")
@cluster_name_option
@ssh_options
@package_options
@click.option(
    "--version", "version_text", required=True, metavar="VERSION", help="The new one, e.g. v1.31.2."
)
@click.option(
    "--drain-timeout",
    default=300,
    show_default=True,
    type=int,
    metavar="SECONDS",
    help="How long `kubectl drain` may take per host before that host fails.",
)
@click.option(
    "--ready-timeout",
    default=300.0,
    show_default=True,
    type=float,
    metavar="SECONDS",
    help="How long a host's node may take to be Ready after kubelet restarts.",
)
@click.option(
    "--dry-run", is_flag=True, help="Print the plan host by host; connect to none, change nothing."
)
def upgrade_command(
    version_text: str,
    pkg_url: str | None,
    pkg_sha256: str | None,
    drain_timeout: int,
    ready_timeout: float,
    dry_run: bool,
    user: str | None,
    pk: str | None,
    cluster_name: str | None,
    **ssh: Any,
) -> None:
    """Upgrade the cluster to the next Kubernetes version from a new offline package.

    \b
      bootstrap upgrade --version v1.31.2 --pkg-url /root/kube1.31.2.tar.gz

    The version in use is the cluster file's. kubeadm goes up one minor version at a time
    (v1.30 -> v1.31), never down; the package must be for --version (its manifest.json, or
    its bin/kubeadm run once on master0). Then: the package and its init.sh on every host;
    an etcd snapshot on master0 (kept, its path printed); `kubeadm upgrade plan` and `apply`
    on master0; `kubeadm upgrade node` on the other masters one at a time; each node one at
    a time drained, upgraded, kubelet restarted, Ready again, uncordoned (masters too, after
    kubeadm). kubeadm is told --certificate-renewal=false and each host's certificates are
    compared before and after: the 99-year PKI stays. A failed host stops the upgrade; run
    the same command again to continue from it (hosts done are not touched again).
    """
    target = parse_version(version_text)
    if not pkg_url:
        raise BadInput("--pkg-url is missing: give the new version's offline package")
    if not 0 < drain_timeout <= MAX_TIMEOUT:
        raise BadInput(f"--drain-timeout {drain_timeout}: must be more than 0 (a day at most)")
    if not 0 < ready_timeout <= MAX_TIMEOUT:  # also nan and inf
        raise BadInput(f"--ready-timeout {ready_timeout}: must be more than 0 (a day at most)")
    cfile = ClusterFile(name=cluster_name)
    cluster = cfile.load()
    current = parse_version(cluster.version, f"{cfile.path}: version")
    if cluster.upgrade is None:
        upgrade.check_step(current, target)
    expected = package.parse_sha256(pkg_sha256) if pkg_sha256 else None
    upgrade.check_resume(cluster.upgrade, target, expected)
    settings = None if dry_run else cluster_settings(cfile, cluster, user, pk, **ssh)
    pkg = package.open_package(pkg_url, expected)  # reads it whole
    upgrade.check_resume(cluster.upgrade, target, pkg.sha256)
    plans = upgrade.plan(cluster, target, current, drain_timeout, ready_timeout)
    if dry_run:
        found = manifest_version(pkg.path) if pkg.path is not None else None
        if found is not None:
            upgrade.check_package_version(found, target, "its manifest.json")
        click.echo("\n".join(upgrade.describe(plans, current, target)))
        click.echo(
            f"package: {pkg_url} ("
            + (f"manifest.json says {found}" if found else "its kubeadm checked when run")
            + ")\n[dry-run] nothing changed, no host connected to"
        )
        return
    assert settings is not None
    checked = check_package(settings, cluster.masters[0], pkg, target)
    if cluster.kubeadm_config and Path(cluster.kubeadm_config).is_file():
        note = upgrade.template_note(Path(cluster.kubeadm_config).read_text(), target)
        if note:
            click.echo(f"note: {note}")
    click.echo(f"{upgrade.describe(plans, current, target)[0]}; package: {checked}")
    if cluster.upgrade is None:
        cluster.upgrade = UpgradeRecord(str(current), str(target), pkg_url, pkg.sha256)
    else:
        cluster.upgrade.pkg_url = pkg_url
        click.echo(f"continuing: {len(cluster.upgrade.done)} hosts done earlier, not touched")
    stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%SZ")
    opts = Options(current, target, pkg, drain_timeout, ready_timeout, stamp)
    orchestrate_hosts(
        "upgrade",
        cluster,
        cfile,
        settings,
        lambda orch: Upgrade(orch, opts).run(),
        UpgradeOrchestrator,
    )
