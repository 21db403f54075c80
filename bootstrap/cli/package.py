"""`bootstrap package build` and `bootstrap package inspect`: the offline package.

Run on the operator's machine, from a checkout or an installed lvscare-py with PyInstaller
(`pip install 'lvscare-py[package]'`); the hosts get one file and need no Python.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import click

from bootstrap.build import assemble, executables
from bootstrap.errors import BadInput, StepFailed


@click.group("package")
def package_group() -> None:
    """Build an offline package, or look inside one."""


@package_group.command("build")
@click.option(
    "--bin",
    "bin_dir",
    required=True,
    metavar="DIR",
    help="Your Kubernetes binaries: kubeadm, kubelet, kubectl (and optionally crictl; CNI "
    "plugins in DIR/cni/ go to /opt/cni/bin).",
)
@click.option(
    "--version",
    "version_text",
    metavar="VERSION",
    help="Kubernetes version [default: what `DIR/kubeadm version -o short` says].",
)
@click.option(
    "--images",
    multiple=True,
    metavar="FILE",
    help="An image archive (docker save / ctr export, OCI or docker format, .tar or "
    ".tar.gz) loaded into every host's runtime by shell/init.sh; repeatable. Control-plane "
    "images for hosts that reach no registry.",
)
@click.option(
    "--cni",
    metavar="FILE|none",
    help="The CNI manifest applied on master0 after `kubeadm init` (kept under conf/net/). "
    "Calico's CALICO_IPV4POOL_CIDR and Flannel's net-conf.json get the cluster's "
    "--pod-cidr at install time. Default: none.",
)
@click.option(
    "-o",
    "--output",
    metavar="FILE.tar.gz",
    help="Where to write the package [default: kubeVERSION.tar.gz here].",
)
@click.option(
    "--cache",
    metavar="DIR",
    help="Where built executables are kept for the next build [default: "
    "~/.cache/lvscare-py/executables].",
)
def build_command(
    bin_dir: str,
    version_text: str | None,
    images: tuple[str, ...],
    cni: str | None,
    output: str | None,
    cache: str | None,
) -> None:
    """Build the offline package: your Kubernetes binaries, lvscare-py's own one-file
    `bootstrap` and `lvscare` (no Python needed on the hosts), the lvscare image as an
    archive, shell/init.sh and clean.sh, and a manifest with every file's sha256.

    \b
      bootstrap package build --bin ./k8s-v1.30.4/ --cni calico.yaml -o kube1.30.4.tar.gz
      bootstrap init --master 192.168.0.2 ... --pkg-url kube1.30.4.tar.gz

    Every input is checked before anything is built; the package is written under a
    temporary name and renamed once whole.
    """
    started = time.monotonic()
    inputs = assemble.check_inputs(bin_dir, version_text, images, cni, output)

    def log(line: str) -> None:
        click.echo(f"bootstrap: {line}", err=True)

    exe = executables.build(Path(cache).expanduser() if cache else None, log)
    built = assemble.build(inputs, exe, log)
    assemble.check_built(built.path)
    click.echo(
        f"{built.path}\n  Kubernetes {inputs.version}, {len(built.manifest['files'])} files, "
        f"{built.size / 1e6:.1f} MB, sha256 {built.sha256}\n"
        f"  built in {time.monotonic() - started:.0f} s"
    )


@package_group.command("inspect")
@click.argument("package", metavar="FILE")
@click.option("--json", "as_json", is_flag=True, help="Print the manifest as JSON.")
@click.option(
    "--no-verify", is_flag=True, help="Do not check every file's sha256 against the manifest."
)
def inspect_command(package: str, as_json: bool, no_verify: bool) -> None:
    """Print a package's manifest (versions, every file's size and sha256) and check
    that its files match it (exit 1 if not)."""
    path = Path(package).expanduser()
    if not path.is_file():
        raise BadInput(f"{package!r}: no such file")
    doc, problems = assemble.read_manifest(path, verify=not no_verify)
    click.echo(json.dumps(doc, indent=2, sort_keys=True) if as_json else assemble.describe(doc))
    if problems:
        raise StepFailed(f"{package}: does not match its manifest: " + "; ".join(problems))
    if not no_verify and not as_json:
        click.echo(f"\nall {len(doc['files'])} files match the manifest")


@package_group.command("app")
@click.argument("directory", metavar="DIR")
@click.option("--name", metavar="NAME", help="The app's name [default: app.json's, else DIR's].")
@click.option(
    "--version", "version_text", metavar="VERSION", help="The app's version [default: app.json's]."
)
@click.option(
    "-o", "--output", metavar="FILE.tar.gz", help="Where [default: NAME-VERSION.tar.gz here]."
)
def app_command(
    directory: str, name: str | None, version_text: str | None, output: str | None
) -> None:
    """Build an app package for `bootstrap install` from DIR: manifests/*.yaml (applied on
    master0 in name order), images/*.tar[.gz] (image archives, loaded on every host),
    optionally shell/install.sh and shell/uninstall.sh. The package's app.json records the
    name, the version and the manifests' order.

    \b
      bootstrap package app ./dashboard --version v2.7.0
      bootstrap install --pkg-url dashboard-v2.7.0.tar.gz
    """
    from bootstrap.build import app_package

    inputs = app_package.check_inputs(directory, name, version_text, output)
    app = app_package.build(inputs)
    click.echo(
        f"{app.path}\n  {app.name} {app.version}: {len(app.manifests)} manifests, "
        f"{len(app.images)} image archives, {app.size / 1e6:.1f} MB, sha256 {app.sha256}"
    )
