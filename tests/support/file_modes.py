"""The modes of the files this process writes, seen at every moment they could change.

A Python audit hook (`sys.addaudithook`) sees every open for writing (`open`, `os.open`,
`tempfile.mkstemp`), every chmod (`os.chmod`, `os.fchmod`), rename and removal, before it
happens, in every thread. At each of those events the watch stats every file it saw opened
for writing under its roots. So a file created with group or other bits is seen so at the
next event (a write of its bytes cannot narrow it; only a chmod can, and that is an event),
and a file narrowed after its bytes went in is seen wide at that chmod. Temporary names are
followed through renames to the name the file ends up with, which says whether it is a
secret. Run the code under `os.umask(0)` so that nothing is narrowed by a kind umask.
"""

from __future__ import annotations

import contextlib
import os
import stat
import sys
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

_WRITE = os.O_WRONLY | os.O_RDWR | os.O_CREAT
_CHECK_AT = ("open", "os.chmod", "os.rename", "os.remove", "os.truncate")


@dataclass
class ModeWatch:
    roots: tuple[str, ...]
    opened: dict[str, None] = field(default_factory=dict)  # in order, no repeats
    modes: dict[str, set[int]] = field(default_factory=dict)  # every mode seen, per path
    renames: dict[str, str] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def event(self, name: str, args: tuple[Any, ...]) -> None:
        if name not in _CHECK_AT:
            return
        with self.lock:
            self._observe()
            if name == "open" and isinstance(args[2], int) and args[2] & _WRITE:
                self._track(args[0])
            elif name == "os.rename":
                src, dst = (self._under(a) for a in args[:2])
                if src and dst:
                    self.renames[src] = dst
                    self.opened.setdefault(dst)

    def _under(self, path: Any) -> str | None:
        if not isinstance(path, (str, bytes, os.PathLike)):
            return None  # an fd: the path it was opened by is tracked already
        text = os.path.abspath(os.fsdecode(path))
        return text if any(text.startswith(f"{r}/") for r in self.roots) else None

    def _track(self, path: Any) -> None:
        text = self._under(path)
        if text is not None:
            self.opened.setdefault(text)

    def _observe(self) -> None:
        for path in self.opened:
            try:
                mode = stat.S_IMODE(os.stat(path).st_mode)
            except OSError:
                continue
            self.modes.setdefault(path, set()).add(mode)

    def final_name(self, path: str) -> str:
        seen = set()
        while path in self.renames and path not in seen:
            seen.add(path)
            path = self.renames[path]
        return path

    def wide(self, secret: Callable[[Path], bool]) -> dict[str, list[str]]:
        """Secret files (by the name they ended with) ever seen with group or other bits:
        final name -> the modes seen, and under which name."""
        found: dict[str, list[str]] = {}
        with self.lock:
            self._observe()
            for path, modes in self.modes.items():
                final = self.final_name(path)
                if not secret(Path(final)):
                    continue
                for mode in sorted(m for m in modes if m & 0o077):
                    found.setdefault(final, []).append(f"{mode:04o} as {path}")
        return found

    def secrets(self, secret: Callable[[Path], bool]) -> list[str]:
        """The secret files written (by their final names), to show the watch saw them."""
        return sorted({f for p in self.opened if secret(Path(f := self.final_name(p)))})


_active: list[ModeWatch] = []
_busy = threading.local()


def _hook(name: str, args: tuple[Any, ...]) -> None:
    if not _active or getattr(_busy, "on", False):
        return
    _busy.on = True
    try:
        for watch in _active:
            watch.event(name, args)
    finally:
        _busy.on = False


_installed = False


@contextlib.contextmanager
def watch_modes(*roots: Path) -> Iterator[ModeWatch]:
    """Files written under `roots` while in the block, with umask 0 (an audit hook cannot be
    removed: it is installed once and does nothing outside a block)."""
    global _installed
    if not _installed:
        sys.addaudithook(_hook)
        _installed = True
    watch = ModeWatch(tuple(os.path.abspath(r) for r in roots))
    old = os.umask(0)
    _active.append(watch)
    try:
        yield watch
    finally:
        _active.remove(watch)
        os.umask(old)
