"""`bootstrap`: the single-host commands that give each Kubernetes node an HA control plane
path, and the cluster commands that run them on every host over SSH.

Bad input is one line naming the value, exit code 2; a step that fails on this host is one
line, exit code 1. No tracebacks for either.
"""

from __future__ import annotations

import importlib
from typing import Any

import click

from bootstrap.cli import host
from bootstrap.errors import BadInput, StepFailed

# Loaded on demand: on a host, `bootstrap node` never imports the SSH library, nor the
# package builder (PyInstaller, the image writer). Name: (module, its attribute).
ON_DEMAND = {
    "init": ("bootstrap.cli.cluster", "init_command"),
    "join": ("bootstrap.cli.cluster", "join_command"),
    "package": ("bootstrap.cli.package", "package_group"),
    "upgrade": ("bootstrap.cli.upgrade", "upgrade_command"),
    "install": ("bootstrap.cli.apps", "install_command"),
    "status": ("bootstrap.cli.apps", "status_command"),
}


class _Group(click.Group):
    """Turns our two exceptions into one line on stderr and their exit codes."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except (BadInput, StepFailed) as e:
            click.echo(f"bootstrap: {e}", err=True)
            raise click.exceptions.Exit(e.exit_code) from None

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*super().list_commands(ctx), *ON_DEMAND})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name in ON_DEMAND:
            module, attribute = ON_DEMAND[cmd_name]
            command = getattr(importlib.import_module(module), attribute)
            assert isinstance(command, click.Command)
            return command
        return super().get_command(ctx, cmd_name)


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
def cli() -> None:
    """Bootstrap one host of a kubeadm cluster whose nodes reach the masters through IPVS.

    \b
    first master:    bootstrap master0 --master IP [--master IP ...] --version v1.30.4
    another master:  bootstrap master --join --master IP ... --join-config join.yaml
    a node:          bootstrap node --master IP ... --join-config join.yaml
    undo any:        bootstrap clean
    (join.yaml: a kubeadm JoinConfiguration with the token, 0600; --token T and
    --discovery-token-ca-cert-hash H do too, but show in ps while the command runs)

    \b
    whole clusters over SSH, from one machine:
      bootstrap init --master IP ... --node IP ... --pkg-url kube.tar.gz --version v1.30.4
      bootstrap join --node IP ...
      bootstrap clean --node IP ... | --all
      bootstrap package build --bin DIR --cni calico.yaml -o kube.tar.gz   (the package)

    \b
    day 2, on the cluster init made (--cluster NAME for one of several):
      bootstrap install --pkg-url dashboard-v2.7.0.tar.gz [--delete]   (an app)
      bootstrap status
      bootstrap upgrade --version v1.31.2 --pkg-url kube1.31.2.tar.gz  (one minor at a time)
      bootstrap certs check [--warn-days 30] | certs renew [--years 99]

    Masters reach the apiserver as apiserver.cluster.local (in /etc/hosts) at their own
    address; nodes at the VIP, a virtual server in the kernel's IPVS table that lvscare keeps
    on the healthy masters. Certificates and kubeconfigs are written before kubeadm runs and
    last --years (99), so kubeadm issues none of its one-year certificates.
    Every command takes --dry-run, and can be run again after a failure: it continues.
    """


for _command in host.COMMANDS:
    cli.add_command(_command)


def main() -> None:
    cli.main(prog_name="bootstrap")


if __name__ == "__main__":  # pragma: no cover
    main()
