"""What users type into bootstrap, from hostile text: a canonical value that parses back to
itself, or BadInput naming the flag; and the commands say so in one line, exit code 2."""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from bootstrap import inputs, join
from bootstrap.cli import cli
from bootstrap.errors import BadInput
from bootstrap.host import pki
from lvscare.address import HostPort
from tests.support.cli_result import one_line_or_success
from tests.support.host_tree import ODD_HOSTS, Tree

_PIECES = st.sampled_from(
    ["v", "1", ".", "30", "4", "-", "+", "rc.1", "/", "10", "0", ":", "[", "]", "%", "eth0",
     "fd00::", "²", "\u0663", "\n", " ", "9" * 5000, "a", "A", "*.", "é", "_", "sha256:"]
)  # fmt: skip
_TEXT = st.one_of(st.lists(_PIECES, max_size=6).map("".join), st.text(max_size=30))

Parser = Callable[[str], object]
PARSERS: dict[str, Parser] = {
    "version": lambda v: inputs.parse_version(v),
    "ip": lambda v: inputs.parse_ip(v, "--vip"),
    "host": lambda v: inputs.parse_host(v, "--master", 22),
    "cidr": lambda v: inputs.parse_cidr(v, "--pod-cidr"),
    "token": lambda v: inputs.parse_token(v),
    "ca_hash": lambda v: inputs.parse_ca_hash(v),
    "certificate_key": lambda v: inputs.parse_certificate_key(v),
    "node_name": lambda v: inputs.parse_node_name(v),
    "cert_san": lambda v: inputs.parse_cert_san(v),
    "repository": lambda v: inputs.parse_repository(v),
}


@settings(max_examples=150, deadline=None)
@given(_TEXT)
@example("v1." + "9" * 5000 + ".0")  # version: was ValueError, int() limit of 4300 digits
@example("v1.\u0663\u0660.0")  # version: was accepted as v1.30.0 (Arabic-Indic digits)
@example("fe80::1%eth0")  # ip, host: was accepted with a zone index
@example("fe80::%eth0/64")  # cidr: was accepted with a zone index
@example("é")  # cert_san: was accepted, then cryptography's ValueError (traceback)
@example("r\nfoo: bar")  # repository: was written into the kubeadm YAML as is
@pytest.mark.parametrize("kind", sorted(PARSERS))
def test_every_input_is_canonical_or_bad_input(kind: str, text: str) -> None:
    parse = PARSERS[kind]
    try:
        value = parse(text)
    except BadInput as e:
        assert "\n" not in str(e) and "Traceback" not in str(e)
        return
    assert parse(str(value)) == value  # the canonical text is accepted as itself
    printed = str(value)
    assert printed.isascii() and printed.isprintable() and "%" not in printed


@given(st.ip_addresses(), st.integers(min_value=1, max_value=65535))
def test_hosts_with_and_without_port_parse_to_the_address(
    ip: ipaddress.IPv4Address | ipaddress.IPv6Address, port: int
) -> None:
    bracketed = f"[{ip}]:{port}" if ip.version == 6 else f"{ip}:{port}"
    assert inputs.parse_host(bracketed, "--master", 22) == HostPort(str(ip), port)
    assert inputs.parse_host(ip.exploded, "--master", 22) == HostPort(str(ip), 22)


@pytest.mark.parametrize(
    ("kind", "text", "needle"),
    [
        ("version", "v1." + "9" * 5000 + ".0", "not a Kubernetes version"),
        ("ip", "fe80::1%eth0", "--vip 'fe80::1%eth0': not an IP address"),
        ("cidr", "fe80::%eth0/64", "--pod-cidr 'fe80::%eth0/64'"),
        ("cert_san", "é", "--cert-sans 'é': not an IP address or a DNS name"),
        ("cert_san", "a b", "--cert-sans 'a b'"),
        ("repository", "r\nfoo: bar", "--repo 'r\\nfoo: bar': not an image repository"),
    ],
)
def test_bad_inputs_name_the_flag_and_value(kind: str, text: str, needle: str) -> None:
    with pytest.raises(BadInput) as err:
        PARSERS[kind](text)
    assert needle in str(err.value)


def test_cert_sans_take_ips_names_and_wildcards_in_canonical_form() -> None:
    assert inputs.parse_cert_san(" FD00:0::2 ") == "fd00::2"
    assert inputs.parse_cert_san("API.Example.com") == "api.example.com"
    assert inputs.parse_cert_san("*.example.com") == "*.example.com"


# ---------------------------------------------------------------- the commands


_ARG = st.one_of(
    _TEXT.filter(lambda v: "\x00" not in v and len(v) < 200),  # argv cannot hold NUL
    st.sampled_from(["192.168.0.2", "10.96.0.0/12", "v1.30.4", "-1", "nan", "--dry-run"]),
)
_KEY = pki.new_key()
_MASTER0_FLAGS = [
    "--master", "--vip", "--version", "--pod-cidr", "--svc-cidr", "--repo", "--cert-sans",
    "--years", "--node-name",
]  # fmt: skip


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(flag=st.sampled_from(_MASTER0_FLAGS), value=_ARG)
@example(flag="--cert-sans", value="é")  # was: a traceback from cryptography
def test_master0_dry_run_with_any_flag_value_plans_or_says_one_line(
    tree: Tree, kubeadm: object, flag: str, value: str
) -> None:
    argv = ["master0", "--dry-run", "--master", "192.168.0.2", "--version", "v1.30.4"]
    argv += ["--node-name", "m0", flag, value]
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(pki, "new_key", lambda: _KEY)  # the inputs are tested here, not the PKI
        result = CliRunner().invoke(cli, argv)
    one_line_or_success(result, "bootstrap")
    assert tree.hosts.read_bytes() == ODD_HOSTS  # a dry run, whatever it was given


@settings(max_examples=60, deadline=None)
@given(_ARG)
def test_config_with_any_version_prints_the_template_or_says_one_line(value: str) -> None:
    one_line_or_success(CliRunner().invoke(cli, ["config", "--version", value]), "bootstrap")


def test_hosts_file_that_is_a_directory_is_one_line(tmp_path: Path, kubeadm: object) -> None:
    result = CliRunner().invoke(
        cli,
        ["clean", "--dry-run", "--hosts-file", str(tmp_path), "--state-dir", str(tmp_path / "s")],
    )
    assert result.exit_code == 2, result.output
    assert result.stderr.strip().splitlines()[-1] == (
        f"bootstrap: {tmp_path}: cannot read the hosts file (Is a directory)"
    )


# ---------------------------------------------------------------- --join-config files

_JOIN_FIELDS = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=80),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=20), inner),
    max_leaves=12,
)


@settings(max_examples=200, deadline=None)
@given(
    st.one_of(
        st.text(max_size=300),
        st.builds(
            lambda token, hashes, key: yaml.safe_dump(
                {
                    "kind": "JoinConfiguration",
                    "discovery": {"bootstrapToken": {"token": token, "caCertHashes": hashes}},
                    "controlPlane": {"certificateKey": key},
                }
            ),
            _JOIN_FIELDS,
            _JOIN_FIELDS,
            _JOIN_FIELDS,
        ),
    )
)
@example("kind: JoinConfiguration\ndiscovery: [1, 2]\n")
@example("{{{{")
def test_any_join_config_gives_a_join_or_one_line_that_never_shows_the_token(text: str) -> None:
    try:
        found = join.read_document(text, "join.yaml")
    except BadInput as e:
        assert str(e).startswith("join.yaml: ") and "\n" not in str(e)
        assert not re.search(join.TOKEN, str(e))  # named by its field, never by its value
        return
    assert re.fullmatch(join.TOKEN, found.token) and re.fullmatch(join.CA_HASH, found.ca_cert_hash)
