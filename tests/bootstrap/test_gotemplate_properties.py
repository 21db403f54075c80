"""The Go template engine with arbitrary templates: text, or a TemplateError naming a line
of the template; never another exception. Through the command: one line, exit code 2."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from bootstrap.errors import BadInput
from bootstrap.host import gotemplate
from bootstrap.host.gotemplate import TemplateError
from bootstrap.host.kubeadm_config import ClusterSpec, default_template, facts, render
from bootstrap.inputs import parse_version

DATA = {
    "Version": "v1.30.4",
    "Masters": ["192.168.0.2", "192.168.0.3"],
    "VIP": "10.103.97.2",
    "CertSANS": [],
    "M": {"k": "v"},
    "N": None,
    "X": 1,
    "T": True,
}

# Words of the template language and its near misses, joined at random into actions.
_WORD = st.sampled_from(
    ["if", "else", "end", "range", "with", "define", "not", "and", "or", "eq", "lt", "len",
     "index", "print", "printf", "println", "nil", "true", ".", ".Masters", ".M.k", ".N.x",
     ".VIP", "$", "$x", "$x :=", "$i, $v :=", "=", "|", "(", ")", ",", '"%d"', '"\\x4"',
     '"\\u00e9"', '"é"', "'a'", "'ab'", "'\\''", "`raw`", "1", "-1", "1.5", "1e999",
     "9" * 30, "0x10", "/*", "*/", "-", " ", "\n", "{{", "}}", "\\"]
)  # fmt: skip
_ACTION = st.lists(_WORD, max_size=6).map(lambda ws: "{{" + " ".join(ws) + "}}")
_TEMPLATE = st.lists(
    st.one_of(_ACTION, st.sampled_from(["x", "\n", " ", "{{- ", " -}}", "{{", "}}", "{"])),
    max_size=10,
).map("".join)


def _render_or_error(template: str) -> str | None:
    try:
        return gotemplate.render(template, DATA)
    except TemplateError as e:
        assert 1 <= e.line <= template.count("\n") + 1, (e.line, template)
        assert str(e).startswith(f"line {e.line}: ")
        return None


@settings(max_examples=400, deadline=None)
@given(st.one_of(_TEMPLATE, st.text(max_size=30)))
@example('{{"\\x1"}}')  # was: UnicodeDecodeError
@example("{{'ab'}}")  # was: TypeError from ord()
@example("{{1e999}}")  # was: OverflowError printing inf
@example("{{" + "9" * 5000 + "}}")  # was: ValueError, int() limit of 4300 digits
@example("{{" + "(" * 2000 + "1" + ")" * 2000 + "}}")  # was: RecursionError
@example("{{if 1}}" * 2000 + "{{end}}" * 2000)  # was: RecursionError
def test_any_template_renders_or_names_a_line(template: str) -> None:
    out = _render_or_error(template)
    if out is not None:
        gotemplate.parse(template)  # what renders also passes the syntax check


@settings(max_examples=100, deadline=None)
@given(st.text(alphabet=st.characters(blacklist_categories=["Cs"]), max_size=20))
def test_string_literals_of_any_text_render_as_that_text(text: str) -> None:
    quoted = '"' + "".join(f"\\u{ord(c):04x}" if ord(c) < 0x10000 else c for c in text) + '"'
    assert gotemplate.render("{{" + quoted + "}}", {}) == text
    raw = text.replace("`", "")
    assert gotemplate.render("{{`" + raw + "`}}", {}) == raw


@pytest.mark.parametrize(
    ("template", "expected"),
    [
        ('{{"é"}}', "é"),  # was: "Ã©" (unicode_escape read the UTF-8 bytes as Latin-1)
        ('{{"\\xc3\\xa9 \\101\\t\\""}}', 'é A\t"'),  # Go's byte escapes make UTF-8 text
        ("{{'\\n'}}", "10"),
        ("{{99999999999999999999}}", "100000000000000000000"),  # beyond int64: a float
    ],
)
def test_literals_read_as_go_reads_them(template: str, expected: str) -> None:
    assert gotemplate.render(template, {}) == expected


@pytest.mark.parametrize(
    ("template", "needle"),
    [
        ('x\n{{"\\q"}}', "line 2: invalid escape \\q"),
        ("{{'ab'}}", "line 1: 'ab' is not one character"),
        ("\n\n{{1e999}}", "line 3: number 1e999 is out of range"),
        ("{{" + "(" * 101 + "1" + ")" * 101 + "}}", "more than 100 nested parentheses"),
        ("{{if 1}}" * 101 + "{{end}}" * 101, "more than 100 nested if, range or with"),
    ],
)
def test_template_errors_name_the_line_and_the_problem(template: str, needle: str) -> None:
    with pytest.raises(TemplateError) as err:
        gotemplate.render(template, {})
    assert needle in str(err.value)


def test_a_hundred_levels_of_nesting_still_render() -> None:
    assert gotemplate.render("{{if 1}}" * 100 + "x" + "{{end}}" * 100, {}) == "x"


# ---------------------------------------------------------------- the kubeadm configuration

SPEC = ClusterSpec(version=parse_version("v1.30.4"), masters=("192.168.0.2",), node_name="m0")

_YAML_VALUE = st.sampled_from(
    ["é", "[1]", "{a: 1}", "'[x'", "bogus", "10.96.0.0/12", "a b", "'1.2.3.4'", "''", "null"]
)


@settings(max_examples=100, deadline=None)
@given(
    st.sampled_from(
        [
            ("InitConfiguration", "nodeRegistration:\n  name: {v}"),
            ("InitConfiguration", "localAPIEndpoint:\n  advertiseAddress: {v}"),
            ("ClusterConfiguration", "apiServer:\n  certSANs: {v}"),
            ("ClusterConfiguration", "apiServer:\n  certSANs: [{v}]"),
            ("ClusterConfiguration", "networking: {v}"),
            ("ClusterConfiguration", "networking:\n  serviceSubnet: {v}"),
            ("ClusterConfiguration", "networking:\n  dnsDomain: {v}"),
            ("ClusterConfiguration", "controlPlaneEndpoint: {v}"),
        ]
    ),
    _YAML_VALUE,
)
@example(("ClusterConfiguration", "networking: {v}"), "[1]")  # was: AttributeError
@example(("ClusterConfiguration", "networking:\n  serviceSubnet: {v}"), "bogus")  # ValueError
@example(("ClusterConfiguration", "controlPlaneEndpoint: {v}"), "'[x'")  # was: ValueError
@example(("ClusterConfiguration", "apiServer:\n  certSANs: [{v}]"), "é")  # was: ValueError
def test_what_a_users_template_renders_is_read_back_or_refused_in_one_line(
    place: tuple[str, str], value: str
) -> None:
    kind, body = place
    text = render(f"kind: {kind}\n" + body.format(v=value) + "\n", SPEC, "mine.tmpl")
    try:
        read = facts(text, SPEC, "192.168.0.2")
    except BadInput as e:
        assert str(e).startswith("the configuration's ") and "\n" not in str(e)
        return
    assert read.service_ip and read.endpoint_host
    assert all(san.isascii() for san in read.cert_sans)


def test_the_default_templates_read_back_cleanly(tmp_path: Path) -> None:
    for version in ("v1.30.4", "v1.31.0"):
        spec = ClusterSpec(version=parse_version(version), masters=("192.168.0.2",), node_name="m0")
        read = facts(render(default_template(spec.version), spec), spec, "192.168.0.2")
        assert read.node_name == "m0" and read.service_ip == "10.96.0.1"


def test_yaml_nested_too_deeply_is_refused_in_one_line() -> None:
    # was: RecursionError from PyYAML's composer
    with pytest.raises(BadInput, match=r"mine\.tmpl renders to YAML nested too deeply"):
        render("a: " + "[" * 5000 + "]" * 5000, SPEC, "mine.tmpl")
