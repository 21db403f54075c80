"""What bootstrap did on this host, so a re-run continues and `clean` removes only ours.

A JSON file (default /var/lib/lvscare-py/state.json, 0600) records the kubeadm steps that
finished, the join parameters kubeadm printed, and a sha256 of every file we wrote: `clean`
removes a file only while it still has that content, so a file someone changed since is
left alone.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from bootstrap.errors import StepFailed
from bootstrap.host.effects import Effects

STATE_FILE = "state.json"


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


class State:
    def __init__(self, directory: Path) -> None:
        self.dir = directory
        self.path = directory / STATE_FILE
        try:
            raw = self.path.read_text(encoding="utf-8")
        except FileNotFoundError:
            raw = "{}"
        try:
            data = json.loads(raw)
        except json.JSONDecodeError as e:
            raise StepFailed(
                f"{self.path}: not valid JSON ({e}); move it away to start over"
            ) from None
        self.data: dict[str, Any] = data if isinstance(data, dict) else {}
        self.data.setdefault("done", [])
        self.data.setdefault("files", {})

    def done(self, step: str) -> bool:
        return step in self.data["done"]

    def mark(self, step: str) -> None:
        if step not in self.data["done"]:
            self.data["done"].append(step)

    def record_file(self, path: Path, data: bytes) -> None:
        self.data["files"][str(path)] = sha256(data)

    def files(self) -> dict[str, str]:
        return dict(self.data["files"])

    def get(self, key: str) -> Any:
        return self.data.get(key)

    def set(self, key: str, value: Any) -> None:
        self.data[key] = value

    def save(self, fx: Effects) -> None:
        text = json.dumps(self.data, indent=2, sort_keys=True) + "\n"
        fx.write(self.path, text.encode(), 0o600, why="bootstrap's record of this host")
