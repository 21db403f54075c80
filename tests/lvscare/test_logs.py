"""--log-format json|console: one JSON object per line on stderr, library logs included."""

from __future__ import annotations

import json
import subprocess
import sys

SCRIPT = """
import logging, sys, structlog
from lvscare import logs
fmt = sys.argv[1] if len(sys.argv) > 1 else None
logs.configure(fmt=fmt)
log = structlog.get_logger("lvscare.care")
log.warning("probe failed", rs="198.18.0.11:6443", reason="refused")
log.debug("probe ok")  # below INFO: dropped
logging.getLogger("pyroute2").info("chatter")  # libraries: warnings and up only
try:
    1 / 0
except ZeroDivisionError:
    logging.getLogger("asyncio").exception("Task exception was never retrieved")
"""


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", SCRIPT, *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        stdin=subprocess.DEVNULL,
    )


def test_json_is_one_object_per_line_for_ours_and_for_library_logs() -> None:
    proc = run("json")
    assert proc.returncode == 0, proc.stderr
    lines = [json.loads(line) for line in proc.stderr.splitlines()]
    assert len(lines) == 2, proc.stderr
    ours, theirs = lines
    assert ours["event"] == "probe failed" and ours["level"] == "warning"
    assert ours["rs"] == "198.18.0.11:6443" and ours["timestamp"].endswith("Z")
    assert theirs["event"] == "Task exception was never retrieved"
    assert theirs["level"] == "error" and theirs["logger"] == "asyncio"
    assert "ZeroDivisionError" in theirs["exception"]


def test_the_default_when_stderr_is_not_a_terminal_is_json() -> None:
    proc = run()
    assert json.loads(proc.stderr.splitlines()[0])["event"] == "probe failed"


def test_console_is_for_people_and_has_no_colour_codes_in_a_file() -> None:
    proc = run("console")
    assert proc.returncode == 0, proc.stderr
    first = proc.stderr.splitlines()[0]
    assert "probe failed" in first and "rs=198.18.0.11:6443" in first
    assert not first.startswith("{") and "\x1b[" not in proc.stderr
    assert "ZeroDivisionError" in proc.stderr


def test_the_flag_takes_json_or_console_only() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "lvscare", "care", "--rs", "198.18.0.11:6443", "--log-format=xml"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 2 and "'xml' is not one of 'json', 'console'" in proc.stderr
