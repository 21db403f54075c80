"""Watching the SSH hosts' process tables for secrets, as any user of a host could.

`ps` and /proc/PID/cmdline show every process's command line to every user; /proc/PID/environ
shows its environment to its owner (and root). `ProcWatch` runs a poller in a process of its
own (not slowed by the test's threads), which reads both for every process in the hosts'
network namespaces, as fast as it can, until stopped. The secrets reach it on stdin, never on
its own command line. It reports every place a secret was seen, and every distinct command
line it saw (secrets masked), so a test can show the watch saw the processes that matter.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]


@dataclass
class Sighting:
    """A secret found: which, where (cmdline or environ), in which process (masked)."""

    secret: str
    where: str
    pid: int
    cmdline: list[str]


@dataclass
class Report:
    polls: int
    sightings: list[Sighting]
    # per network namespace inode: the distinct command lines seen there, secrets masked
    seen: dict[int, list[list[str]]] = field(default_factory=dict)

    def commands(self, netns: int) -> list[list[str]]:
        return self.seen.get(netns, [])


def netns_of(pid: int) -> int:
    return os.stat(f"/proc/{pid}/ns/net").st_ino


class ProcWatch:
    """`with ProcWatch(netns, {"token": T, ...}) as watch:` ... then `watch.report`."""

    def __init__(self, netns: list[int], secrets: dict[str, str]) -> None:
        self.netns = netns
        self.secrets = secrets
        self.report: Report | None = None
        self._proc: subprocess.Popen[str] | None = None

    def __enter__(self) -> ProcWatch:
        self._proc = subprocess.Popen(
            [sys.executable, "-m", "tests.support.proc_watch"],
            cwd=ROOT,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert self._proc.stdin is not None and self._proc.stdout is not None
        self._proc.stdin.write(json.dumps({"netns": self.netns, "secrets": self.secrets}) + "\n")
        self._proc.stdin.flush()
        ready = self._proc.stdout.readline()  # the first poll is done: nothing before is missed
        assert ready.strip() == "polling", ready
        return self

    def __exit__(self, *exc: object) -> None:
        assert self._proc is not None
        out, _ = self._proc.communicate("stop\n", timeout=30)
        data = json.loads(out)
        self.report = Report(
            data["polls"],
            [Sighting(**s) for s in data["sightings"]],
            {int(k): v for k, v in data["seen"].items()},
        )


def _read(path: str) -> bytes:
    try:
        with open(path, "rb") as f:
            return f.read()
    except OSError:  # the process ended meanwhile
        return b""


def _mask(raw: bytes, secrets: dict[str, bytes]) -> list[str]:
    for name, secret in secrets.items():
        raw = raw.replace(secret, f"<{name}>".encode())
    return [a.decode(errors="replace") for a in raw.split(b"\0") if a]


def poll(netns: set[int], secrets: dict[str, bytes], stop: threading.Event) -> dict[str, Any]:
    sightings: dict[tuple[str, str, int], dict[str, Any]] = {}
    seen: dict[int, set[tuple[str, ...]]] = {n: set() for n in netns}
    polls = 0
    while True:
        last = stop.is_set()  # one more full poll after the stop was asked for
        for name in os.listdir("/proc"):
            if not name.isdigit():
                continue
            try:
                ns = os.stat(f"/proc/{name}/ns/net").st_ino
            except OSError:
                continue
            if ns not in netns:
                continue
            cmdline = _read(f"/proc/{name}/cmdline")
            environ = _read(f"/proc/{name}/environ")
            seen[ns].add(tuple(_mask(cmdline, secrets)))
            for secret_name, secret in secrets.items():
                for where, raw in (("cmdline", cmdline), ("environ", environ)):
                    if secret in raw:
                        sightings[(secret_name, where, int(name))] = {
                            "secret": secret_name,
                            "where": where,
                            "pid": int(name),
                            "cmdline": _mask(cmdline, secrets),
                        }
        polls += 1
        if polls == 1:
            print("polling", flush=True)
        if last:
            break
        time.sleep(0.0005)
    return {
        "polls": polls,
        "sightings": list(sightings.values()),
        "seen": {str(ns): sorted(list(c) for c in cmds) for ns, cmds in seen.items()},
    }


def main() -> None:
    config = json.loads(sys.stdin.readline())
    secrets = {k: v.encode() for k, v in config["secrets"].items()}
    stop = threading.Event()

    def wait_for_stop() -> None:
        sys.stdin.readline()
        stop.set()

    threading.Thread(target=wait_for_stop, daemon=True).start()
    result = poll(set(config["netns"]), secrets, stop)
    print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
