"""`bootstrap install` (apps from offline app packages) and `bootstrap status`.

Both work on the cluster `init` made (its cluster file); `status` reads only that file.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import click

from bootstrap.cli.cluster import cluster_settings, orchestrate_hosts
from bootstrap.cli.options import cluster_name_option, ssh_options
from bootstrap.cluster import app_format, apps
from bootstrap.cluster.cluster_file import Cluster, ClusterFile
from bootstrap.errors import StepFailed


@click.command("install")
@click.option(
    "--pkg-url",
    required=True,
    metavar="FILE",
    help="The app package (.tar.gz or .tar; `bootstrap package app` makes one).",
)
@click.option(
    "--delete",
    is_flag=True,
    help="Remove what the package installed: its manifests deleted on master0 (reverse "
    "order, --ignore-not-found), shell/uninstall.sh run, then on every host the images its "
    "imports created (unless another app lists them) and its files.",
)
@click.option("--dry-run", is_flag=True, help="Print the plan host by host, change nothing.")
@cluster_name_option
@ssh_options
def install_command(
    pkg_url: str,
    delete: bool,
    dry_run: bool,
    cluster_name: str | None,
    user: str | None,
    pk: str | None,
    **ssh: Any,
) -> None:
    """Install an app from an offline app package on the cluster `init` made.

    \b
      bootstrap install --pkg-url dashboard-v2.7.0.tar.gz
      bootstrap install --pkg-url dashboard-v2.7.0.tar.gz --delete

    \b
    The package: manifests/*.yaml (Kubernetes objects), images/*.tar[.gz] (image
    archives), optionally shell/install.sh and shell/uninstall.sh, and app.json.
    The app's name and version come from app.json ({"name": ..., "version": ...}, which
    `bootstrap package app` writes), else from the file name NAME-VERSION.tar.gz (version
    "unknown" without one); the manifests are applied in app.json's order, else by name.

    \b
    1. every host of the cluster file, in parallel: the package sent (once: sha256) to
       /opt/lvscare-py/apps/NAME.pkg and unpacked, its images imported into the runtime
       /etc/lvscare-py/runtime.env names (containerd: ctr -n k8s.io images import;
       docker: docker load), each archive once; recorded in /opt/lvscare-py/app-state/NAME/
    2. master0, once every host has the images: kubectl apply -f each manifest in order
       (KUBECONFIG /etc/kubernetes/admin.conf), then shell/install.sh, its output shown
    3. the cluster file records the app (name, version, sha256); `bootstrap status` shows it

    The same package again changes nothing on any host; another version of the same app
    replaces it (its manifests applied over the old ones). The package is checked whole
    before any host is connected to: one line and exit 2 if it is not usable.
    """
    app = app_format.open_app(pkg_url)
    cfile = ClusterFile(name=cluster_name)
    cluster = cfile.load()
    if not cluster.masters:
        raise StepFailed(f"{cfile.path}: the cluster has no master")
    the_plan = apps.plan(cluster, app, delete)
    if dry_run:
        click.echo("\n".join(["dry run: nothing is changed", *the_plan.lines()]))
        return
    settings = cluster_settings(cfile, cluster, user, pk, **ssh)
    click.echo(the_plan.summary)
    if delete:
        orchestrate_hosts(
            "install --delete",
            cluster,
            cfile,
            settings,
            lambda orch: apps.delete(orch, app),
            apps.AppOrchestrator,
        )
        return
    orchestrate_hosts(
        "install",
        cluster,
        cfile,
        settings,
        lambda orch: apps.install(orch, app),
        apps.AppOrchestrator,
    )


@click.command("status")
@cluster_name_option
def status_command(cluster_name: str | None) -> None:
    """The cluster as its cluster file records it: hosts (role, node name, how their last
    run ended), Kubernetes version, VIP, package and apps. Reads only that file; no host
    is connected to."""
    cfile = ClusterFile(name=cluster_name)
    cluster = cfile.load()
    click.echo("\n".join(status_lines(cluster, str(cfile.path))))


def status_lines(cluster: Cluster, where: str) -> list[str]:
    out = [
        f"cluster file: {where}",
        f"Kubernetes:   {cluster.version}",
        f"VIP:          {cluster.vip}",
        f"package:      {cluster.pkg_url} (sha256 {cluster.pkg_sha256 or 'unknown'})",
    ]
    if cluster.upgrade is not None:
        up = cluster.upgrade
        out.append(f"upgrade:      {up.from_version} -> {up.to_version} under way")
    rows = [("HOST", "ROLE", "NODE", "RESULT")]
    for target in [*cluster.masters, *cluster.nodes]:
        rec = cluster.hosts.get(target)
        role = "node" if target in cluster.nodes else "master"
        role = "master0" if target == cluster.masters[0] else role
        result = "-"
        if rec is not None:
            result = rec.result + (f" at {rec.failed_step}" if rec.failed_step else "")
        rows.append((str(target), role, (rec.node_name if rec else None) or "-", result))
    out += ["", *_table(rows)]
    if cluster.apps:
        app_rows = [("APP", "VERSION", "SHA256", "IMAGES", "MANIFESTS")]
        app_rows += [
            (a.name, a.version, a.sha256[:12], str(len(a.images)), str(len(a.manifests)))
            for a in cluster.apps
        ]
        out += ["", *_table(app_rows)]
    else:
        out += ["", "apps: none (bootstrap install --pkg-url APP.tar.gz)"]
    return out


def _table(rows: Sequence[Sequence[str]]) -> list[str]:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    return ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in rows]
