"""`lvscare care ...`: flags compatible with the Go lvscare, so sealos manifests run unchanged."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Mapping

import click

from lvscare import __version__, logs
from lvscare.config import DEFAULT_VIP, SCHEDULERS, CareConfig, build_config
from lvscare.errors import BadInput, KernelUnavailable
from lvscare.http_endpoint import DEFAULT_HEALTH_ADDRESS
from lvscare.manifest import manifest_command

TRUE_WORDS = {"true", "t", "1", "yes"}
FALSE_WORDS = {"false", "f", "0", "no"}


def _bool_word(value: str, flag: str) -> bool:
    word = value.strip().lower()
    if word in TRUE_WORDS:
        return True
    if word in FALSE_WORDS:
        return False
    raise BadInput(f"{flag} {value!r}: use true or false")


def config_from_options(opts: Mapping[str, object]) -> CareConfig:
    """The parsed options of `care` (click's names) as a checked CareConfig; BadInput if not."""
    return build_config(
        vs=str(opts["vs"]),
        rs=opts["rs"],  # type: ignore[arg-type]
        scheduler=str(opts["scheduler"]),
        interval=str(opts["interval"]),
        health_path=str(opts["health_path"]),
        health_scheme=str(opts["health_scheme"]),
        health_method=str(opts["health_req_method"]),
        health_headers=opts["health_req_headers"],  # type: ignore[arg-type]
        health_body=str(opts["health_req_body"]),
        health_status=opts["health_status"],  # type: ignore[arg-type]
        health_insecure_skip_verify=_bool_word(
            str(opts["health_insecure_skip_verify"]), "--health-insecure-skip-verify"
        ),
        health_ca_file=opts["health_ca_file"],  # type: ignore[arg-type]
        health_timeout=opts["health_timeout"],  # type: ignore[arg-type]
        mode=str(opts["mode"]),
        iface=str(opts["iface"]),
        ip=opts["ip"],  # type: ignore[arg-type]
        rise=int(opts["rise"]),  # type: ignore[call-overload]
        fall=int(opts["fall"]),  # type: ignore[call-overload]
        logger=str(opts["logger"]),
        all_down=str(opts["all_down"]),
        watch=bool(opts["watch"]),
        require_rs=not opts["clean"],
    )


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
    help="Accepted for compatibility with the Go lvscare; ignored.",
)
@click.option(
    "--all-down",
    type=click.Choice(["keep", "drain"]),
    default="keep",
    show_default=True,
    help="When every master looks down: keep all in the table (fail open) or drain them.",
)
@click.option(
    "--watch/--no-watch",
    default=True,
    show_default=True,
    help="Hold an idle connection to each master and probe at once when it drops.",
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
def care(**opts: object) -> None:
    """Probe every master's /healthz and keep VIP:PORT in IPVS pointing at the healthy ones.

    Example (what sealos writes into its node manifest):

    \b
      lvscare care --vs 10.103.97.2:6443 --health-path /healthz --health-schem https
      --rs 192.168.0.2:6443 --rs 192.168.0.3:6443 --rs 192.168.0.4:6443

    \b
    Exit codes: 0 stopped by SIGTERM/SIGINT (the table is left in place), 1 the kernel
    cannot do IPVS (no module, no CAP_NET_ADMIN), 2 bad input.
    """
    clean = bool(opts["clean"])
    run_once = bool(opts["run_once"])
    try:
        config = config_from_options(opts)
        logs.configure(debug=config.debug, fmt=opts["log_format"])  # type: ignore[arg-type]
        from lvscare.daemon import run

        health_address = str(opts["health_address"])
        asyncio.run(run(config, run_once=run_once, clean=clean, health_address=health_address))
    except (BadInput, KernelUnavailable) as e:
        click.echo(f"lvscare: {e}", err=True)
        sys.exit(e.exit_code)


cli.add_command(manifest_command)


def main() -> None:
    cli()


if __name__ == "__main__":
    main()
