"""The progress convention of every long tool: ``progress(done, total)``."""

from __future__ import annotations

from collections.abc import Callable

Progress = Callable[[int, "int | None"], None]
"""Called as ``progress(done, total)``: units done so far and in all (``None`` when the
total is not known in advance). The CLI draws it as a bar on a terminal's stderr."""


class Tally:
    """Counts work done in steps and reports the running total to a :data:`Progress`."""

    def __init__(self, progress: Progress | None, total: int | None) -> None:
        self._progress = progress
        self.total = total
        self.done = 0

    def add(self, count: int) -> None:
        self.done += count
        if self._progress is not None:
            self._progress(self.done, self.total)
