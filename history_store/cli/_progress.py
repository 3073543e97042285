"""A tiny progress bar for long commands: on stderr, and only when stderr is a terminal.

Scripts that capture or redirect stderr see nothing, so the bar never ends up in log files.
"""

from __future__ import annotations

import sys
from types import TracebackType
from typing import TextIO

_WIDTH = 30


class ProgressBar:
    """Draws ``label [#####.....] done/total`` in place, redrawn only when it changes.

    Call it as ``bar(done, total)`` (the library functions' ``progress`` callback) and
    :meth:`close` at the end, or use it as a context manager. ``total`` may be ``None`` when
    unknown: only the count shows.
    """

    def __init__(self, label: str, stream: TextIO | None = None) -> None:
        self.label = label
        self.stream = stream if stream is not None else sys.stderr
        self.enabled = self.stream.isatty()
        self._last = ""

    def render(self, done: int, total: int | None) -> str:
        if not total:
            return f"{self.label} {done}"
        filled = min(_WIDTH, _WIDTH * done // total)
        return f"{self.label} [{'#' * filled}{'.' * (_WIDTH - filled)}] {done}/{total}"

    def __call__(self, done: int, total: int | None) -> None:
        if not self.enabled:
            return
        line = self.render(done, total)
        if line != self._last:
            # \r and a clear-to-end-of-line redraw in place without scrolling.
            self.stream.write(f"\r{line}\x1b[K")
            self.stream.flush()
            self._last = line

    def close(self) -> None:
        """End the bar's line, so later output starts on a fresh line."""
        if self.enabled and self._last:
            self.stream.write("\n")
            self.stream.flush()
        self._last = ""

    def __enter__(self) -> ProgressBar:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()
