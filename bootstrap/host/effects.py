"""Every change bootstrap makes to the host goes through here, so --dry-run can print it.

With dry_run, nothing is written, removed or run: each change is printed as it would be
made (a diff for text files we may show, sizes only for keys and kubeconfigs).
"""

from __future__ import annotations

import datetime as dt
import difflib
import os
import shlex
import stat
import subprocess
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

import click

from bootstrap import fsutil
from bootstrap.errors import StepFailed
from bootstrap.host import hosts

Echo = Callable[[str], None]


def _echo(line: str) -> None:
    click.echo(line)


def diff(path: Path, before: bytes, after: bytes) -> list[str]:
    old = before.decode(errors="replace").splitlines()
    new = after.decode(errors="replace").splitlines()
    return list(
        difflib.unified_diff(old, new, f"{path} (now)", f"{path} (after)", lineterm="", n=1)
    )


class Effects:
    """Writes, removals, commands and library calls; printed instead of done in dry-run."""

    def __init__(self, dry_run: bool, echo: Echo = _echo) -> None:
        self.dry_run = dry_run
        self.echo = echo

    def say(self, line: str) -> None:
        self.echo(line)

    def _tell(self, did: str, would: str) -> None:
        self.echo(f"[dry-run] would {would}" if self.dry_run else did)

    def write(
        self,
        path: Path,
        data: bytes,
        mode: int | None = None,
        *,
        why: str,
        secret: bool = False,
        backup: bool = False,
        show: bool = False,
    ) -> bool:
        """Write `data` atomically unless the file already holds it; True if it changed."""
        before = fsutil.read_bytes(path)
        if before == data:
            return self.ensure_mode(path, mode)
        mode_text = f", mode {mode:04o}" if mode is not None else ""
        size = "" if not secret else f" ({len(data)} bytes)"
        self._tell(f"wrote {path}{size}: {why}", f"write {path}{size}{mode_text}: {why}")
        if self.dry_run and show and not secret:
            for line in diff(path, before or b"", data):
                self.echo("    " + line)
        if self.dry_run:
            if backup and before is not None:
                self.echo(f"  (the old file would be kept as {path.name}.lvscare-py-TIME.bak)")
            return True
        if backup and before is not None:
            saved = self.backup(path, before)
            self.echo(f"  kept the old file as {saved}")
        fsutil.write_atomic(path, data, mode)
        return True

    def ensure_mode(self, path: Path, mode: int | None) -> bool:
        """Right content, wrong mode (a key left 0644): only the mode is changed."""
        if mode is None or not path.exists() or stat.S_IMODE(path.stat().st_mode) == mode:
            return False
        self._tell(f"chmod {mode:04o} {path}", f"chmod {mode:04o} {path}")
        if not self.dry_run:
            os.chmod(path, mode)
        return True

    def backup(self, path: Path, data: bytes) -> Path:
        stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%SZ")
        saved = path.with_name(f"{path.name}.lvscare-py-{stamp}.bak")
        fsutil.write_atomic(saved, data, 0o600)
        return saved

    def remove(self, path: Path, *, why: str) -> bool:
        if not path.exists() and not path.is_symlink():
            return False
        self._tell(f"removed {path}: {why}", f"remove {path}: {why}")
        if not self.dry_run:
            fsutil.remove(path)
        return True

    def hosts(self, change: hosts.HostsChange, *, why: str) -> bool:
        if change.recovered:
            self._tell(
                f"put back {change.path} as it was before an interrupted rewrite",
                f"put back {change.path} from the backup of an interrupted rewrite",
            )
        if not change.changed and not change.recovered:
            return False
        if change.changed:
            self._tell(f"updated {change.path}: {why}", f"change {change.path}: {why}")
            if self.dry_run:
                for line in diff(change.path, change.before, change.after):
                    self.echo("    " + line)
        if not self.dry_run:
            hosts.apply(change)
        return True

    def run(self, argv: Sequence[str], *, env: Mapping[str, str] | None = None) -> str:
        """Run a command, its output shown as it comes and returned; StepFailed if it fails."""
        line = shlex.join(argv)
        if self.dry_run:
            self.echo(f"[dry-run] would run: {line}")
            return ""
        self.echo(f"running: {line}")
        try:
            proc = subprocess.Popen(
                list(argv),
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                text=True,
                env=dict(env) if env is not None else None,
            )
        except FileNotFoundError:
            raise StepFailed(f"{argv[0]}: not found on PATH") from None
        assert proc.stdout is not None
        out: list[str] = []
        for text in proc.stdout:
            out.append(text)
            self.echo("  | " + text.rstrip("\n"))
        code = proc.wait()
        if code != 0:
            raise StepFailed(f"{line} failed with exit code {code}")
        return "".join(out)

    def call(self, did: str, would: str, fn: Callable[[], None]) -> None:
        """A library call that changes the host (lvscare's IPVS rules)."""
        self._tell(did, would)
        if not self.dry_run:
            fn()
