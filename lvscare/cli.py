"""`lvscare care` and `lvscare manifest`: flags compatible with the Go lvscare, so sealos
manifests run unchanged. Options go to `build_config` by their own names."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Sequence
from typing import Any

import click

from lvscare import __version__, logs
from lvscare.config import (
    DEFAULT_HEALTH_ADDRESS,
    DEFAULT_RT_PRIORITY,
    DEFAULT_VIP,
    SCHEDULERS,
    CareConfig,
    build_config,
)
from lvscare.errors import BadInput, KernelUnavailable
from lvscare.manifest import DEFAULT_IMAGE, DEFAULT_NAME, render_static_pod


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="lvscare")
def cli() -> None:
    """Keep the kernel's IPVS virtual server for the apiserver on healthy masters."""


@cli.command(context_settings={"max_content_width": 100})
@click.option(
    "--vs",
    default=f"{DEFAULT_VIP}:6443",
    show_default=True,
    help="Virtual server VIP:PORT ([IPv6]:PORT for IPv6).",
)
@click.option(
    "--rs",
    multiple=True,
    metavar="HOST:PORT",
    help="Real server (an apiserver); repeat or comma-separate. Hostnames are "
    "resolved at start and again every few intervals.",
)
@click.option(
    "--scheduler",
    default="rr",
    show_default=True,
    metavar="|".join(SCHEDULERS),
    help="IPVS scheduler.",
)
@click.option(
    "--interval",
    default="5",
    show_default=True,
    help="Time between probe rounds: seconds (5) or a duration (5s, 500ms).",
)
@click.option("--health-path", default="/healthz", show_default=True, help="URL path probed.")
@click.option(
    "--health-schem", "health_scheme", default="https", show_default=True, help="https or http."
)
@click.option("--health-req-method", default="GET", show_default=True, help="HTTP method.")
@click.option(
    "--health-req-headers",
    multiple=True,
    metavar="K=V",
    help="Request header; repeat or comma-separate.",
)
@click.option("--health-req-body", default="", help="Request body.")
@click.option(
    "--health-status",
    multiple=True,
    metavar="CODES",
    help="Extra status codes counted healthy besides 2xx, e.g. 401,403.",
)
@click.option(
    "--health-insecure-skip-verify",
    default="true",
    show_default=True,
    is_flag=False,
    flag_value="true",
    metavar="[true|false]",
    help="Skip TLS verification when no --health-ca-file is given.",
)
@click.option(
    "--health-ca-file",
    type=click.Path(dir_okay=False),
    default=None,
    help="Verify the apiserver certificate with this CA, e.g. /etc/kubernetes/pki/ca.crt.",
)
@click.option(
    "--health-timeout", default=None, help="Probe timeout (default: half the interval, at most 5s)."
)
@click.option(
    "--rise",
    default=1,
    show_default=True,
    type=int,
    help="Consecutive passed probes before a server is put back.",
)
@click.option(
    "--fall",
    default=1,
    show_default=True,
    type=int,
    help="Consecutive failed probes before a server is drained (weight 0); "
    "it is removed on the next failed round.",
)
@click.option(
    "--mode",
    default="route",
    show_default=True,
    metavar="route|link",
    help="link: VIP on a dummy interface plus masquerade; route: route via --ip.",
)
@click.option(
    "-i", "--iface", default="lvscare", show_default=True, help="Dummy interface for --mode link."
)
@click.option("--ip", default=None, help="Gateway for the VIP's route in --mode route.")
@click.option(
    "--masqueradebit",
    default=None,
    hidden=True,
    expose_value=False,
    help="Accepted for compatibility with the Go lvscare; ignored.",
)
@click.option(
    "--all-down",
    type=click.Choice(["keep", "drain"]),
    default="keep",
    show_default=True,
    help="When every master looks down: keep the last healthy ones in the table (fail open;"
    " never one that refused, reset, answered an HTTP error or failed TLS) or drain them all.",
)
@click.option(
    "--watch/--no-watch",
    default=True,
    show_default=True,
    help="Hold an idle connection to each master and probe at once when it drops.",
)
@click.option(
    "--rt-priority",
    default=DEFAULT_RT_PRIORITY,
    show_default=True,
    type=int,
    metavar="0-99",
    help="Run real-time (SCHED_RR) at this priority while serving, so a busy node's work never"
    " delays a drain; 0: an ordinary process. Needs CAP_SYS_NICE (else a warning and ordinary);"
    " given up for good if lvscare ever computes 0.5 s without pausing.",
)
@click.option("--run-once", is_flag=True, help="Create the rules without probing and exit.")
@click.option(
    "-C",
    "--clean",
    is_flag=True,
    help="Remove the virtual server, the interface and our rules, then exit.",
)
@click.option("--logger", default="INFO", show_default=True, metavar="INFO|DEBG", help="Log level.")
@click.option(
    "--log-format",
    type=click.Choice(["json", "console"]),
    default=None,
    help="Default: json unless stderr is a terminal.",
)
@click.option(
    "--health-address",
    default=DEFAULT_HEALTH_ADDRESS,
    show_default=True,
    metavar="IP:PORT",
    help="Serve /healthz, /readyz, /metrics and /status here; 'off' for none.",
)
def care(**opts: Any) -> None:
    """Probe every master's /healthz and keep VIP:PORT in IPVS pointing at the healthy ones.

    Example (what sealos writes into its node manifest):

    \b
      lvscare care --vs 10.103.97.2:6443 --health-path /healthz --health-schem https
      --rs 192.168.0.2:6443 --rs 192.168.0.3:6443 --rs 192.168.0.4:6443

    \b
    Exit codes: 0 stopped by SIGTERM/SIGINT (the table is left in place), 1 the kernel
    cannot do IPVS (no module, no CAP_NET_ADMIN), 2 bad input.
    """
    try:
        config = build_config(**opts)
        logs.configure(debug=config.debug, fmt=config.log_format)
        from lvscare.daemon import run

        asyncio.run(run(config))
    except (BadInput, KernelUnavailable) as e:
        click.echo(f"lvscare: {e}", err=True)
        sys.exit(e.exit_code)


def split_vs_rs(argv: Sequence[str]) -> tuple[str | None, list[str], list[str]]:
    """--vs and every --rs out of a `care` command line, and the flags that remain."""
    vs: str | None = None
    rs: list[str] = []
    rest: list[str] = []
    args = list(argv)
    i = 0
    while i < len(args):
        arg = args[i]
        flag, eq, value = arg.partition("=")
        if flag in ("--vs", "--rs"):
            if not eq:
                if i + 1 >= len(args):
                    raise BadInput(f"{flag}: option requires an argument")
                value = args[i + 1]
                i += 1
            if flag == "--vs":
                vs = value
            else:
                rs.append(value)
        else:
            rest.append(arg)
        i += 1
    return vs, rs, rest


def config_from_care_args(argv: Sequence[str]) -> CareConfig:
    """Parse and check `care` flags exactly as `lvscare care` would; BadInput if it refuses."""
    try:
        ctx = care.make_context("care", list(argv))
    except click.ClickException as e:
        raise BadInput(e.format_message()) from None
    return build_config(**ctx.params)


@cli.command(
    "manifest",
    context_settings={
        "ignore_unknown_options": True,
        "help_option_names": ["-h", "--help"],
        "max_content_width": 100,
    },
)
@click.option(
    "--image", default=DEFAULT_IMAGE, show_default=True, help="Container image with lvscare."
)
@click.option(
    "-o",
    "--output",
    type=click.Path(dir_okay=False, writable=True),
    default=None,
    help="Write here (e.g. /etc/kubernetes/manifests/kube-lvscare.yaml) instead of stdout.",
)
@click.option("--name", default=DEFAULT_NAME, show_default=True, help="Pod name.")
@click.option(
    "--unprivileged",
    is_flag=True,
    help="NET_ADMIN, SYS_MODULE and SYS_NICE instead of privileged; lvscare then cannot set"
    " sysctls.",
)
@click.argument("care_args", nargs=-1, type=click.UNPROCESSED)
def manifest(
    image: str, output: str | None, name: str, unprivileged: bool, care_args: tuple[str, ...]
) -> None:
    """Print the static pod that runs `lvscare care` with CARE_ARGS on every node.

    CARE_ARGS are the flags of `lvscare care`, checked the same way, e.g.:

    \b
      lvscare manifest --image registry.example/lvscare-py:0.1.0 \\
        --vs 10.103.97.2:6443 --rs 192.168.0.2:6443 --rs 192.168.0.3:6443 -o kube-lvscare.yaml
    """
    try:
        vs, rs, rest = split_vs_rs(care_args)
        args = ["--vs", vs or f"{DEFAULT_VIP}:6443"]
        for r in rs:
            args += ["--rs", r]
        args += rest
        text = render_static_pod(
            config_from_care_args(args),
            image,
            care_args=args,
            name=name,
            unprivileged=unprivileged,
        )
    except BadInput as e:
        click.echo(f"lvscare: {e}", err=True)
        raise SystemExit(e.exit_code) from None
    if output is None:
        click.echo(text, nl=False)
        return
    with open(output, "w") as f:
        f.write(text)


def main() -> None:
    cli()


if __name__ == "__main__":
    main()
