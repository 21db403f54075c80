"""/etc/hosts: exactly one line of ours for apiserver.cluster.local, every other byte kept.

sealos edited the file with `sed` and lost users' lines, and appended a line on every run.
Here the file is handled as bytes split on "\\n" only, so comments, tabs, CR, IPv6 lines,
blank lines and a missing final newline all come back unchanged; only lines that give
the name are touched:

- a line whose only name is apiserver.cluster.local (ours, marked `# lvscare-py`, or one
  left by sealos, `10.103.97.2 apiserver.cluster.local` with or without a comment) is the
  managed line: the first is replaced in place, the others dropped, so a node the seed
  made ends with exactly one line, ours (which `clean` removes);
- a line that gives the name among other names keeps its other names: only that name
  (and the blank before it) is cut out.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from bootstrap import fsutil
from bootstrap.defaults import APISERVER_NAME
from bootstrap.errors import BadInput

MARKER = "lvscare-py"

_BLANKS = b" \t\r\f\v"
_FIELD = re.compile(rb"[^ \t\r\f\v]+")


@dataclass(frozen=True)
class _Token:
    start: int
    end: int
    text: bytes


def _tokens(line: bytes) -> Iterator[_Token]:
    """Whitespace-separated fields before any `#`, with their positions in the line."""
    data = line.split(b"#", 1)[0]
    for match in _FIELD.finditer(data):
        yield _Token(match.start(), match.end(), match.group())


def _names(line: bytes) -> list[_Token]:
    fields = list(_tokens(line))
    return fields[1:] if len(fields) >= 2 else []


def _is(token: _Token, name: str) -> bool:
    return token.text.lower() == name.lower().encode()


def managed_line(ip: str, name: str = APISERVER_NAME) -> bytes:
    return f"{ip} {name} # {MARKER}".encode()


def _mentions(line: bytes, name: str) -> bool:
    """Whether `name` is anywhere in the line (the quick test before splitting it)."""
    return name.lower().encode() in line.lower()


def _is_sole(line: bytes, name: str) -> bool:
    if not _mentions(line, name):
        return False
    names = _names(line)
    return len(names) == 1 and _is(names[0], name)


def _without_name(line: bytes, name: str) -> bytes:
    """The line with every `name` field and the blanks before it cut out."""
    pieces: list[bytes] = []
    kept_from = 0
    for token in _names(line):
        if _is(token, name):
            start = token.start
            while start > kept_from and line[start - 1] in b" \t":
                start -= 1
            pieces.append(line[kept_from:start])
            kept_from = token.end
    pieces.append(line[kept_from:])
    return b"".join(pieces)


def set_entry(content: bytes, ip: str, name: str = APISERVER_NAME) -> bytes:
    """`content` with exactly one managed line mapping `name` to `ip`."""
    lines = content.split(b"\n")
    out: list[bytes] = []
    placed = False
    for line in lines:
        if _is_sole(line, name):
            if not placed:
                cr = b"\r" if line.endswith(b"\r") else b""
                out.append(managed_line(ip, name) + cr)
                placed = True
            continue
        if _mentions(line, name) and any(_is(t, name) for t in _names(line)):
            line = _without_name(line, name)
        out.append(line)
    if not placed:
        new = managed_line(ip, name)
        if any(line.endswith(b"\r") for line in out):  # a CRLF file gets a CRLF line
            new += b"\r"
        if out[-1] == b"":  # empty file or a final newline: keep that newline last
            out.insert(len(out) - 1, new)
        else:  # no final newline: start our line after the last one, and still end without
            out.append(new)
    return b"\n".join(out)


def remove_entry(content: bytes, name: str = APISERVER_NAME) -> bytes:
    """`content` without our marked line(s); everything else unchanged."""
    lines = content.split(b"\n")
    kept = [line for line in lines if not (_is_sole(line, name) and _is_marked(line))]
    if kept == lines:
        return content
    if not kept:
        return b""
    return b"\n".join(kept)


def _is_marked(line: bytes) -> bool:
    _, sep, comment = line.partition(b"#")
    return bool(sep) and comment.strip() == MARKER.encode()


def current_ip(content: bytes, name: str = APISERVER_NAME) -> str | None:
    """The address our managed line gives, if any."""
    for line in content.split(b"\n"):
        if _is_sole(line, name):
            return next(_tokens(line)).text.decode(errors="replace")
    return None


@dataclass(frozen=True)
class HostsChange:
    """What a set or remove would do to the file: the bytes before and after."""

    path: Path
    before: bytes
    after: bytes
    recovered: bool = False

    @property
    def changed(self) -> bool:
        return self.before != self.after


def _current(path: Path) -> tuple[bytes, bool]:
    """The file's true content: the backup of an interrupted in-place rewrite wins."""
    try:
        for backup in fsutil.backup_paths(fsutil.resolve(path)):
            old = fsutil.read_bytes(backup)
            if old is not None:
                return old, True
        return fsutil.read_bytes(path) or b"", False
    except OSError as e:  # a directory, no permission: nothing to edit
        raise BadInput(f"{path}: cannot read the hosts file ({e.strerror or e})") from None


def plan_set(path: Path, ip: str, name: str = APISERVER_NAME) -> HostsChange:
    """What setting `name` to `ip` would change; reads only."""
    before, recovered = _current(path)
    return HostsChange(path, before, set_entry(before, ip, name), recovered)


def plan_remove(path: Path, name: str = APISERVER_NAME) -> HostsChange:
    """What removing our line would change; reads only."""
    before, recovered = _current(path)
    return HostsChange(path, before, remove_entry(before, name), recovered)


def apply(change: HostsChange) -> None:
    """Write the change, unless the file already has it (no needless rewrite).

    After a crash in an in-place rewrite the saved content is put back first, so the
    change is made to the file as it was, never to a half-written one.
    """
    if change.recovered:
        fsutil.recover_in_place(change.path)
    if change.changed or (change.recovered and fsutil.read_bytes(change.path) != change.after):
        fsutil.write_atomic(change.path, change.after)
