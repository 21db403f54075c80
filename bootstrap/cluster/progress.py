"""What the user sees while hosts are worked on, and the table at the end.

On a terminal: one line per host, redrawn in place (step, bytes sent, rate). Otherwise
(CI, a pipe, a log file): a plain line per step change, which reads well after the fact.
Called from several threads; one lock keeps the lines whole.
"""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TextIO

Clock = Callable[[], float]


@dataclass
class HostLine:
    host: str
    role: str
    step: str = "waiting"
    sent: int = 0
    total: int = 0
    started: float | None = None
    send_started: float | None = None
    finished: float | None = None
    # ok, failed, skipped (a host it depends on failed), interrupted (Ctrl-C), pending
    result: str = "pending"
    failed_step: str = ""
    error: str = ""
    note: str = ""  # what the step is doing, e.g. where the package comes from
    notes: list[str] = field(default_factory=list)


def human_bytes(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} GiB"  # pragma: no cover


class Reporter:
    def __init__(
        self, out: TextIO | None = None, tty: bool | None = None, clock: Clock = time.monotonic
    ) -> None:
        self.out = out or sys.stdout
        self.tty = self.out.isatty() if tty is None else tty
        self.clock = clock
        self.lines: dict[str, HostLine] = {}
        self._lock = threading.Lock()
        self._drawn = 0
        self._last_draw = 0.0

    def add(self, host: str, role: str) -> None:
        with self._lock:
            self.lines.setdefault(host, HostLine(host, role))

    def say(self, text: str) -> None:
        with self._lock:
            self._clear()
            self.out.write(text + "\n")
            self._draw()

    def step(self, host: str, step: str, note: str = "") -> None:
        with self._lock:
            line = self.lines[host]
            if line.started is None:
                line.started = self.clock()
            line.step, line.note = step, note
            if self.tty:
                self._redraw()
            else:
                self.out.write(f"{host}: {step}{' (' + note + ')' if note else ''}\n")
                self.out.flush()

    def sent(self, host: str, sent: int, total: int, verb: str = "sent") -> None:
        """Bytes of the package on their way to the host; `verb`: "relayed" when another
        host passes them on (the count is then this machine's, a pipe ahead)."""
        with self._lock:
            line = self.lines[host]
            now = self.clock()
            if line.send_started is None or sent < line.sent:
                line.send_started = now
            line.sent, line.total = sent, total
            if self.tty and (now - self._last_draw > 0.2 or sent == total):
                self._redraw()
            elif not self.tty and total and sent == total:
                self.out.write(f"{host}: {verb} {human_bytes(total)}{self._rate(line)}\n")
                self.out.flush()

    def finish(self, host: str, result: str, failed_step: str = "", error: str = "") -> None:
        with self._lock:
            line = self.lines[host]
            line.finished = self.clock()
            line.result, line.failed_step, line.error = result, failed_step, error
            line.step = result if not failed_step else f"failed at {failed_step}"
            if self.tty:
                self._redraw()
            else:
                tail = (
                    f": {failed_step}: {error}" if failed_step else (f": {error}" if error else "")
                )
                self.out.write(f"{host}: {result}{tail}\n")
                self.out.flush()

    def _rate(self, line: HostLine) -> str:
        if line.send_started is None:
            return ""
        elapsed = self.clock() - line.send_started
        if elapsed <= 0 or not line.sent:
            return ""
        return f" at {human_bytes(line.sent / elapsed)}/s"

    def _render(self, line: HostLine) -> str:
        text = f"{line.host:<22} {line.role:<7} {line.step}"
        if line.note and line.result == "pending":
            text += f" ({line.note})"
        if line.total and line.result == "pending":
            pct = 100 * line.sent // line.total
            text += f"  {human_bytes(line.sent)}/{human_bytes(line.total)} {pct}%{self._rate(line)}"
        return text

    def _clear(self) -> None:
        if self.tty and self._drawn:
            self.out.write(f"\x1b[{self._drawn}F\x1b[J")
            self._drawn = 0

    def _draw(self) -> None:
        if not self.tty:
            self.out.flush()
            return
        for line in self.lines.values():
            self.out.write("\x1b[2K" + self._render(line) + "\n")
        self._drawn = len(self.lines)
        self._last_draw = self.clock()
        self.out.flush()

    def _redraw(self) -> None:
        self._clear()
        self._draw()

    def table(self) -> list[str]:
        """Per host: result, the step that failed, the error, time taken."""
        rows = [("HOST", "ROLE", "RESULT", "FAILED STEP", "TIME", "ERROR")]
        for line in self.lines.values():
            took = ""
            if line.started is not None and line.finished is not None:
                took = f"{line.finished - line.started:.1f}s"
            rows.append(
                (
                    line.host,
                    line.role,
                    line.result,
                    line.failed_step or "-",
                    took or "-",
                    line.error or "-",
                )
            )
        widths = [max(len(r[i]) for r in rows) for i in range(5)]
        return [
            "  ".join(cell.ljust(w) for cell, w in zip(r[:5], widths, strict=True)) + "  " + r[5]
            for r in rows
        ]

    def print_table(self) -> None:
        with self._lock:
            self._drawn = 0
            self.out.write("\n" + "\n".join(self.table()) + "\n")
            self.out.flush()

    def failed(self) -> list[str]:
        """Every host that did not end ok (failed, skipped, interrupted)."""
        return [h for h, line in self.lines.items() if line.result != "ok"]

    def verdict(self, what: str) -> str | None:
        """One line for a run that did not end ok everywhere, None if it did: the hosts that
        failed apart from those skipped or stopped because of them (or of Ctrl-C)."""
        failed = [h for h, line in self.lines.items() if line.result == "failed"]
        rest = [h for h, line in self.lines.items() if line.result not in ("ok", "failed")]
        parts = []
        if failed:
            parts.append(f"{len(failed)} of {len(self.lines)} hosts failed: {', '.join(failed)}")
        if rest:
            parts.append(f"{len(rest)} not done: {', '.join(rest)}")
        return f"{what}: {'; '.join(parts)}" if parts else None
