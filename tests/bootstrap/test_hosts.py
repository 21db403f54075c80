"""/etc/hosts: one managed line, every other byte kept, atomic, crash-safe, idempotent."""

from __future__ import annotations

import errno
import os
import stat
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bootstrap import fsutil
from bootstrap.host import hosts
from bootstrap.host.hosts import remove_entry, set_entry
from tests.support.host_tree import ODD_HOSTS

OURS = b"10.103.97.2 apiserver.cluster.local # lvscare-py"


def test_set_on_odd_file_appends_one_line_and_keeps_every_byte_and_no_final_newline() -> None:
    out = set_entry(ODD_HOSTS, "10.103.97.2")
    assert out == ODD_HOSTS + b"\n" + OURS
    assert out.count(b"apiserver.cluster.local # lvscare-py") == 1


def test_set_then_remove_gives_back_the_odd_file_byte_for_byte() -> None:
    assert remove_entry(set_entry(ODD_HOSTS, "10.103.97.2")) == ODD_HOSTS


def test_change_replaces_our_line_in_place() -> None:
    first = set_entry(b"a 1\n" + ODD_HOSTS + b"\n", "192.168.0.2")
    second = set_entry(first, "10.103.97.2")
    assert second == b"a 1\n" + ODD_HOSTS + b"\n" + OURS + b"\n"


def test_set_is_idempotent() -> None:
    once = set_entry(ODD_HOSTS, "10.103.97.2")
    assert set_entry(once, "10.103.97.2") == once


def test_sealos_duplicates_collapse_to_one_managed_line_where_the_first_was() -> None:
    content = (
        b"127.0.0.1 localhost\n"
        b"192.168.0.2 apiserver.cluster.local\n"
        b"10.0.0.5 other\n"
        b"192.168.0.2  apiserver.cluster.local\n"
        b"\t192.168.0.3\tAPISERVER.cluster.local\n"
    )
    assert set_entry(content, "10.103.97.2") == (
        b"127.0.0.1 localhost\n" + OURS + b"\n" + b"10.0.0.5 other\n"
    )


def test_a_line_with_other_names_loses_only_our_name() -> None:
    content = b"192.168.0.2\tmaster0 apiserver.cluster.local  m0 # sealos\n"
    assert set_entry(content, "10.103.97.2") == (
        b"192.168.0.2\tmaster0  m0 # sealos\n" + OURS + b"\n"
    )


def test_comments_and_names_that_only_contain_ours_are_not_touched() -> None:
    content = (
        b"# 1.2.3.4 apiserver.cluster.local\n"
        b"1.2.3.4 apiserver.cluster.local.example\n"
        b"1.2.3.5 my-apiserver.cluster.local\n"
    )
    assert set_entry(content, "10.103.97.2") == content + OURS + b"\n"


def test_crlf_file_keeps_its_line_ends() -> None:
    content = b"127.0.0.1 localhost\r\n10.0.0.1 apiserver.cluster.local\r\n"
    assert set_entry(content, "10.103.97.2") == b"127.0.0.1 localhost\r\n" + OURS + b"\r\n"


def test_empty_file_gets_our_line_with_a_newline_and_remove_empties_it() -> None:
    assert set_entry(b"", "fd00::2") == b"fd00::2 apiserver.cluster.local # lvscare-py\n"
    assert remove_entry(set_entry(b"", "fd00::2")) == b""


def test_remove_leaves_unmarked_lines_alone() -> None:
    content = b"10.0.0.1 apiserver.cluster.local\n"
    assert remove_entry(content) == content


def test_current_ip_reads_the_managed_line() -> None:
    assert hosts.current_ip(set_entry(ODD_HOSTS, "192.168.0.3")) == "192.168.0.3"
    assert hosts.current_ip(ODD_HOSTS) is None


_piece = st.sampled_from(
    [" ", "\t", "#", "\r", "10.0.0.1", "::1", "x.y", "apiserver.cluster.local", "a", "# lvscare-py"]
)
_line = st.lists(_piece, max_size=6).map("".join)
_content = st.lists(_line, max_size=8).map(lambda ls: "\n".join(ls).encode())


@settings(max_examples=300, deadline=None)
@given(_content, st.sampled_from(["10.103.97.2", "192.168.0.2", "fd00::2"]))
def test_property_one_managed_line_idempotent_and_other_lines_in_order(
    content: bytes, ip: str
) -> None:
    out = set_entry(content, ip)
    assert set_entry(out, ip) == out
    managed = [line for line in out.split(b"\n") if line.rstrip(b"\r") == hosts.managed_line(ip)]
    assert len(managed) == 1
    if b"apiserver.cluster.local" not in content:
        # nothing of ours there before: removing our line gives back the exact bytes
        assert remove_entry(out) == content
        kept = [line for line in out.split(b"\n") if line.rstrip(b"\r") != hosts.managed_line(ip)]
        assert b"\n".join(kept) in (content, content + b"\n", content.rstrip(b"\n"))


# ---------------------------------------------------------------- the file itself


def test_apply_keeps_mode_and_writes_nothing_when_already_right(tmp_path: Path) -> None:
    path = tmp_path / "hosts"
    path.write_bytes(ODD_HOSTS)
    path.chmod(0o640)
    hosts.apply(hosts.plan_set(path, "10.103.97.2"))
    assert path.read_bytes() == ODD_HOSTS + b"\n" + OURS
    assert stat.S_IMODE(path.stat().st_mode) == 0o640
    inode = path.stat().st_ino
    change = hosts.plan_set(path, "10.103.97.2")
    assert not change.changed
    hosts.apply(change)
    assert path.stat().st_ino == inode  # not even rewritten
    assert sorted(p.name for p in tmp_path.iterdir()) == ["hosts"]  # no temp file left


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to give the file another owner")
def test_apply_keeps_the_owner(tmp_path: Path) -> None:
    path = tmp_path / "hosts"
    path.write_bytes(ODD_HOSTS)
    os.chown(path, 1234, 5678)
    hosts.apply(hosts.plan_set(path, "10.103.97.2"))
    assert (path.stat().st_uid, path.stat().st_gid) == (1234, 5678)
    assert path.read_bytes() == ODD_HOSTS + b"\n" + OURS


def test_symlinked_hosts_file_stays_a_symlink(tmp_path: Path) -> None:
    real = tmp_path / "real-hosts"
    real.write_bytes(ODD_HOSTS)
    link = tmp_path / "hosts"
    link.symlink_to(real)
    hosts.apply(hosts.plan_set(link, "10.103.97.2"))
    assert link.is_symlink()
    assert real.read_bytes() == ODD_HOSTS + b"\n" + OURS


class Crash(Exception):
    """Stands for the process dying at that instant."""


def test_crash_between_write_and_rename_leaves_the_old_file_intact(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "hosts"
    path.write_bytes(ODD_HOSTS)

    def crash(src: object, dst: object) -> None:
        raise Crash

    monkeypatch.setattr(os, "replace", crash)
    with pytest.raises(Crash):
        hosts.apply(hosts.plan_set(path, "10.103.97.2"))
    assert path.read_bytes() == ODD_HOSTS
    assert sorted(p.name for p in tmp_path.iterdir()) == ["hosts"]


@pytest.mark.parametrize("code", [errno.EBUSY, errno.EXDEV, errno.EPERM])
def test_bind_mounted_file_is_rewritten_in_place(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, code: int
) -> None:
    path = tmp_path / "hosts"
    path.write_bytes(ODD_HOSTS)
    inode = path.stat().st_ino

    def busy(src: object, dst: object) -> None:
        raise OSError(code, os.strerror(code))

    monkeypatch.setattr(os, "replace", busy)
    hosts.apply(hosts.plan_set(path, "10.103.97.2"))
    assert path.read_bytes() == ODD_HOSTS + b"\n" + OURS
    assert path.stat().st_ino == inode
    assert sorted(p.name for p in tmp_path.iterdir()) == ["hosts"]  # backup gone when done


def test_crash_during_in_place_rewrite_is_undone_by_the_next_run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "hosts"
    long_content = ODD_HOSTS + b"\n" + b"10.0.0.1 apiserver.cluster.local\n" + b"# padding\n" * 20
    path.write_bytes(long_content)

    def busy(src: object, dst: object) -> None:
        raise OSError(errno.EBUSY, "busy")

    real_overwrite = fsutil._overwrite

    def half_write(target: Path, data: bytes) -> None:
        with open(target, "r+b") as f:  # new bytes written, old tail not yet truncated
            f.write(b"XXXXXXXXXX")
        raise Crash

    monkeypatch.setattr(os, "replace", busy)
    monkeypatch.setattr(fsutil, "_overwrite", half_write)
    with pytest.raises(Crash):
        hosts.apply(hosts.plan_set(path, "10.103.97.2"))
    assert path.read_bytes() != long_content  # the file is damaged now...
    backup = fsutil.backup_paths(path)[0]
    assert backup.read_bytes() == long_content  # ...but the old content is beside it

    monkeypatch.setattr(fsutil, "_overwrite", real_overwrite)
    change = hosts.plan_set(path, "10.103.97.2")
    assert change.recovered and change.before == long_content
    hosts.apply(change)
    assert path.read_bytes() == set_entry(long_content, "10.103.97.2")
    assert not backup.exists()
