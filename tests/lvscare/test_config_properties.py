"""`lvscare care` and `lvscare manifest` flags from hostile text: a checked config or one
line naming the value with exit code 2; never a traceback."""

from __future__ import annotations

from typing import Any

import pytest
from click.testing import CliRunner
from hypothesis import example, given, settings
from hypothesis import strategies as st

from lvscare import cli as lvscare_cli
from lvscare.config import (
    MAX_DURATION,
    build_config,
    parse_duration,
    parse_headers,
    parse_health_address,
    parse_status_codes,
)
from lvscare.errors import BadInput
from tests.support.cli_result import one_line_or_success

_DURATION_PIECES = st.sampled_from(
    ["1", "0", ".", "5", "e", "-", "+", "_", "ns", "us", "µs", "ms", "s", "m", "h", "\u0665", "²",
     "nan", "inf", " ", "9" * 400]
)  # fmt: skip
_TEXT = st.one_of(st.lists(_DURATION_PIECES, max_size=6).map("".join), st.text(max_size=20))


@settings(max_examples=300, deadline=None)
@given(_TEXT)
@example("1_0")  # was: 10 seconds (float() takes underscores)
@example("\u0665")  # was: 5 seconds (float() takes digits of any script)
@example("1e300")  # was: accepted, beyond any Go duration
@example("9" * 400 + "h")  # was: accepted as a float beyond Go's durations
def test_any_duration_text_is_positive_seconds_or_bad_input(text: str) -> None:
    try:
        seconds = parse_duration(text, "--interval")
    except BadInput as e:
        assert str(e).startswith("--interval ") and "\n" not in str(e)
        return
    assert 0 < seconds <= MAX_DURATION
    assert text.strip().replace("µ", "u").isascii()


@settings(max_examples=100, deadline=None)
@given(
    st.lists(
        st.tuples(st.integers(min_value=0, max_value=999), st.sampled_from(["h", "m", "s", "ms"])),
        min_size=1,
        max_size=4,
    )
)
def test_go_durations_add_up(parts: list[tuple[int, str]]) -> None:
    scale = {"h": 3600.0, "m": 60.0, "s": 1.0, "ms": 0.001}
    text = "".join(f"{n}{unit}" for n, unit in parts)
    total = sum(n * scale[unit] for n, unit in parts)
    if total > 0:
        assert parse_duration(text, "--interval") == pytest.approx(total)
    else:
        with pytest.raises(BadInput, match="greater than zero"):
            parse_duration(text, "--interval")


@settings(max_examples=200, deadline=None)
@given(
    st.lists(
        st.one_of(st.text(max_size=12), st.sampled_from(["²⁰⁰", "٢٠٠", "9" * 5000])), max_size=3
    )
)
@example(["²"])  # was: ValueError from int()
@example(["9" * 5000])  # was: ValueError, int() limit of 4300 digits
def test_status_codes_are_http_codes_or_bad_input(values: list[str]) -> None:
    try:
        codes = parse_status_codes(values)
    except BadInput as e:
        assert str(e).startswith("--health-status ")
        return
    assert all(100 <= c <= 599 for c in codes)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.text(max_size=20), max_size=3))
@example(["X-Evil\r\nHost=x"])  # was: a header name with CR LF, sent as is
@example(["X-A=1\r\nHost: evil"])  # was: a header value that injects a header
@example(["X-A=\udcff"])  # was: a value aiohttp cannot encode (argv bytes not UTF-8)
def test_headers_are_tokens_and_clean_values_or_bad_input(values: list[str]) -> None:
    try:
        headers = parse_headers(values)
    except BadInput as e:
        assert str(e).startswith("--health-req-headers ")
        return
    for name, value in headers:
        assert name and name.isascii() and name.isprintable() and " " not in name
        assert "\r" not in value and "\n" not in value and "\x00" not in value
        value.encode()


@settings(max_examples=200, deadline=None)
@given(st.one_of(st.text(max_size=30), st.sampled_from(["[::1]:0", "0.0.0.0:0", ":0", "x:0"])))
def test_health_address_is_an_ip_and_port_or_bad_input(text: str) -> None:
    try:
        got = parse_health_address(text)
    except BadInput as e:
        assert str(e).startswith("--health-address ")
        return
    if got is not None:
        host, port = got
        assert 0 <= port <= 65535 and "%" not in host


# Each flag of build_config with text that is often nearly right.
_FLAG_VALUES: dict[str, st.SearchStrategy[Any]] = {
    "vs": st.sampled_from(["10.103.97.2:6443", "[fd00::2]:6443", "10.103.97.2", "m:1"]),
    "rs": st.lists(st.sampled_from(["192.168.0.2:6443", "m1:6443", "[fd00::3]:1", ""]), max_size=3),
    "scheduler": st.sampled_from(["rr", "wlc", "fifo", ""]),
    "interval": _TEXT,
    "health_path": st.one_of(st.text(max_size=10), st.just("/healthz")),
    "health_scheme": st.sampled_from(["https", "http", "ftp"]),
    "health_req_method": st.one_of(
        st.sampled_from(["GET", "post", "ß", "G T"]), st.text(max_size=5)
    ),
    "health_req_headers": st.lists(st.text(max_size=10), max_size=2),
    "health_req_body": st.text(max_size=10),
    "health_status": st.lists(st.text(max_size=6), max_size=2),
    "health_insecure_skip_verify": st.sampled_from(["true", "no", "maybe", ""]),
    "health_ca_file": st.sampled_from([None, "/nonexistent", "/", "a\x00b"]),
    "health_timeout": st.one_of(st.none(), _TEXT),
    "rise": st.integers(min_value=-2, max_value=10**30),
    "mode": st.sampled_from(["route", "link", "tunnel"]),
    "iface": st.sampled_from(["lvscare", ".", "..", "x" * 16, "a b", "eth0.1"]),
    "ip": st.one_of(st.none(), st.sampled_from(["10.0.0.1", "fd00::1", "fe80::1%eth0", "gw"])),
    "health_address": st.one_of(st.text(max_size=20), st.just("off")),
}


@settings(max_examples=300, deadline=None)
@given(st.fixed_dictionaries({}, optional=_FLAG_VALUES))
@example({"iface": "..", "mode": "link"})  # was: accepted, an interface Linux cannot make
@example({"ip": "fe80::1%eth0"})  # was: accepted as the gateway, zone and all
@example({"health_ca_file": "a\x00b"})  # was: ValueError from open()
@example({"health_path": "/a b\r\nX: y"})  # was: accepted into the request line
@example({"health_path": "\x80"})  # was: accepted, a C1 control character
@example({"health_req_method": "ß"})  # was: accepted as "SS"
def test_any_flags_give_a_config_or_one_bad_input(flags: dict[str, Any]) -> None:
    args: dict[str, Any] = {"vs": "10.103.97.2:6443", "rs": ["192.168.0.2:6443"], **flags}
    try:
        cfg = build_config(**args)
    except BadInput as e:
        assert str(e).startswith("--") and "\n" not in str(e), e
        return
    assert cfg.rs and cfg.interval > 0 and cfg.probe.timeout > 0
    assert cfg.probe.path.startswith("/") and cfg.probe.path.isprintable()
    assert " " not in cfg.probe.path and cfg.probe.method.isascii()
    cfg.probe.body.encode()


# ---------------------------------------------------------------- the command line


_FLAGS = [
    "--vs", "--rs", "--scheduler", "--interval", "--health-path", "--health-schem",
    "--health-req-method", "--health-req-headers", "--health-req-body", "--health-status",
    "--health-insecure-skip-verify", "--health-timeout", "--rise", "--fall", "--mode",
    "--iface", "--ip", "--all-down", "--logger", "--log-format", "--health-address",
]  # fmt: skip
_VALUE = st.one_of(
    st.text(max_size=20).filter(lambda v: "\x00" not in v),  # argv cannot hold NUL
    st.sampled_from(["10.103.97.2:6443", "-1", "nan", "1e999", "[::1]:0", "", "-C", "--rs"]),
)


async def _no_daemon(config: object) -> None:
    """`care` with flags that pass stops where the daemon would start."""


@settings(max_examples=150, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(_FLAGS), _VALUE), max_size=3))
def test_care_with_any_flag_values_starts_or_says_one_line(flags: list[tuple[str, str]]) -> None:
    import lvscare.daemon

    argv = ["care", "--rs", "192.168.0.2:6443"]
    for flag, value in flags:
        argv += [flag, value]
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(lvscare.daemon, "run", _no_daemon)
        result = CliRunner().invoke(lvscare_cli.cli, argv)
    one_line_or_success(result, "lvscare")


@settings(max_examples=150, deadline=None)
@given(
    st.lists(st.tuples(st.sampled_from(_FLAGS), _VALUE), max_size=3),
    st.one_of(st.none(), st.sampled_from(["reg/lvscare:1", "x\n    securityContext:\n", "é"])),
    st.one_of(st.none(), st.text(max_size=10).filter(lambda v: "\x00" not in v)),
)
def test_manifest_with_any_flag_values_prints_yaml_or_says_one_line(
    flags: list[tuple[str, str]], image: str | None, name: str | None
) -> None:
    argv = ["manifest"]
    if image is not None:
        argv += ["--image", image]
    if name is not None:
        argv += ["--name", name]
    argv += ["--rs", "192.168.0.2:6443"]
    for flag, value in flags:
        argv += [flag, value]
    result = CliRunner().invoke(lvscare_cli.cli, argv)
    one_line_or_success(result, "lvscare")
    if result.exit_code == 0:
        import yaml

        assert yaml.safe_load(result.stdout)["kind"] == "Pod"


def test_split_vs_rs_without_a_value_is_one_line() -> None:
    result = CliRunner().invoke(lvscare_cli.cli, ["manifest", "--rs"])
    assert result.exit_code == 2
    assert result.stderr.strip() == "lvscare: --rs: option requires an argument"
