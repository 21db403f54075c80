"""The hosts-file editor on real files holding anything at all: every line that is not ours
comes back byte for byte and in order, whatever the file holds (CRLF, no final newline,
NUL bytes, bytes that are not UTF-8, 1 MB lines, our marker inside other text)."""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

from hypothesis import example, given, settings
from hypothesis import strategies as st

from bootstrap.host import hosts

NAME = b"apiserver.cluster.local"

_PIECE = st.one_of(
    st.sampled_from(
        [
            b" ",
            b"\t",
            b"\r",
            b"\x00",
            b"#",
            b"# lvscare-py",
            b"lvscare-py",
            b"10.0.0.1",
            b"::1",
            NAME,
            NAME.upper(),
            NAME + b".example",
            b"my-" + NAME,
            b"\xff\xfe",
            b"\xc3\xa9",
            b"\f",
            b"\v",
            b"a",
        ]
    ),
    st.binary(max_size=4),
)
_LINE = st.lists(_PIECE, max_size=6).map(b"".join)
_CONTENT = st.one_of(
    st.lists(_LINE, max_size=8).map(b"\n".join),
    st.lists(_LINE, max_size=8).map(b"\r\n".join),
    st.binary(max_size=60),
)
_IP = st.sampled_from(["10.103.97.2", "192.168.0.2", "fd00::2"])


def _ours(line: bytes) -> bool:
    """A line the editor may change: one that gives our name as a host name."""
    fields = line.split(b"#", 1)[0].split()
    return any(f.lower() == NAME for f in fields[1:])


def _others(content: bytes) -> list[bytes]:
    return [line for line in content.split(b"\n") if not _ours(line)]


def _set_in_a_real_file(content: bytes, ip: str) -> tuple[bytes, bytes]:
    """The file after setting, and after removing again; each through plan and apply."""
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "hosts"
        path.write_bytes(content)
        hosts.apply(hosts.plan_set(path, ip))
        after_set = path.read_bytes()
        again = hosts.plan_set(path, ip)
        assert not again.changed  # a second run changes nothing
        hosts.apply(hosts.plan_remove(path))
        after_remove = path.read_bytes()
        assert sorted(p.name for p in Path(tmp).iterdir()) == ["hosts"]  # no temp, no backup
        return after_set, after_remove


def _without_final_empty(lines: list[bytes]) -> list[bytes]:
    return lines[:-1] if lines and lines[-1] == b"" else lines


def _expected_others(content: bytes) -> list[bytes]:
    """Lines not ours as they are; lines giving our name among others without that name."""
    out = []
    for line in content.split(b"\n"):
        if not _ours(line):
            out.append(line)
        elif not hosts._is_sole(line, NAME.decode()):
            cut = hosts._without_name(line, NAME.decode())
            # only our name went: the other fields and the comment are as they were
            assert cut.split(b"#", 1)[0].split() == [
                f for f in line.split(b"#", 1)[0].split() if f.lower() != NAME
            ]
            assert cut.partition(b"#")[1:] == line.partition(b"#")[1:]
            out.append(cut)
    return out


@settings(max_examples=200, deadline=None)
@given(_CONTENT, _IP)
@example(b"127.0.0.1 localhost\r\n10.0.0.1 apiserver.cluster.local\r\n", "10.103.97.2")
@example(b"1.2.3.4 x # lvscare-py\n10.0.0.9 other # lvscare-py", "fd00::2")
@example(b"\x00\xff\n# apiserver.cluster.local # lvscare-py\n\n", "10.103.97.2")
@example(b"10.0.0.1 a\tapiserver.cluster.local b # c\n", "10.103.97.2")
def test_lines_that_are_not_ours_survive_set_and_remove_in_order(content: bytes, ip: str) -> None:
    after_set, after_remove = _set_in_a_real_file(content, ip)
    managed = hosts.managed_line(ip)
    set_lines = after_set.split(b"\n")
    assert [line.rstrip(b"\r") for line in set_lines].count(managed) == 1
    # Every other line is there, byte for byte and in order; only a final newline (the
    # empty piece after it) may move to after our line.
    others = [line for line in set_lines if line.rstrip(b"\r") != managed]
    assert _without_final_empty(others) == _without_final_empty(_expected_others(content))
    # Remove takes our line and nothing else.
    assert after_remove == b"\n".join(others)
    if NAME.lower() not in content.lower():
        assert after_remove == content  # nothing of ours before: the same bytes again


def test_a_one_megabyte_line_is_kept_and_the_edit_is_quick(tmp_path: Path) -> None:
    big_words = b"a " * 500_000  # 500,000 fields on one line
    big_blob = b"\x00\xff" * 500_000  # 1 MB with no blank at all
    content = big_words + b"\n" + big_blob + b"\r\n# apiserver.cluster.local # lvscare-py"
    path = tmp_path / "hosts"
    path.write_bytes(content)
    start = time.monotonic()
    hosts.apply(hosts.plan_set(path, "10.103.97.2"))
    hosts.apply(hosts.plan_remove(path))
    elapsed = time.monotonic() - start
    assert path.read_bytes() == content
    assert elapsed < 5.0, elapsed  # was: 4 s for the set alone, a Python loop per byte


def test_our_marker_inside_other_lines_is_never_taken_for_our_line(tmp_path: Path) -> None:
    content = (
        b"10.0.0.5 db # lvscare-py\n"
        b"# 10.0.0.1 apiserver.cluster.local # lvscare-py\n"
        b"10.0.0.6 apiserver.cluster.local.example # lvscare-py\n"
        b"10.0.0.7 x#lvscare-py apiserver.cluster.local\n"
    )
    path = tmp_path / "hosts"
    path.write_bytes(content)
    hosts.apply(hosts.plan_set(path, "10.103.97.2"))
    assert path.read_bytes() == content + hosts.managed_line("10.103.97.2") + b"\n"
    hosts.apply(hosts.plan_remove(path))
    assert path.read_bytes() == content
