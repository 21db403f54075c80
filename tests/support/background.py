"""A loop on daemon threads for the length of a `with` block: the lab's clients, pollers and
fault injectors all run beside the test this way."""

from __future__ import annotations

import threading
from typing import Self


class Background:
    """Subclasses write `_run`, which loops until `self.stopping` is set."""

    def __init__(self, threads: int = 1) -> None:
        self.stopping = threading.Event()
        self._threads = [threading.Thread(target=self._run, daemon=True) for _ in range(threads)]

    def _run(self) -> None:
        raise NotImplementedError

    def __enter__(self) -> Self:
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stopping.set()
        for thread in self._threads:
            thread.join(10)
