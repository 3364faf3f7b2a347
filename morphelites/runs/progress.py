"""Progress on the terminal: a redrawn bar on a TTY, periodic plain lines otherwise, or nothing."""

from __future__ import annotations

import sys
import time
from typing import TextIO

__all__ = ["Progress"]


class Progress:
    """Shows evaluations done / total with QD-score, coverage, best fitness and ETA.

    Args:
        total: evaluations requested.
        quiet: show nothing.
        stream: where to draw (stderr by default).
        interval_s: seconds between plain lines when ``stream`` is not a terminal.
    """

    def __init__(self, total: int, quiet: bool = False, stream: TextIO | None = None, interval_s: float = 10.0) -> None:
        self.total = total
        self.quiet = quiet
        self.stream = stream or sys.stderr
        self.tty = bool(getattr(self.stream, "isatty", lambda: False)())
        self.interval_s = interval_s
        self._start = time.monotonic()
        self._start_done: int | None = None
        self._last_line = 0.0

    def update(self, done: int, qd_score: float, coverage: float, best: float, extra: str = "") -> None:
        if self.quiet:
            return
        now = time.monotonic()
        if self._start_done is None:
            self._start_done, self._start = done, now
        rate = (done - self._start_done) / max(now - self._start, 1e-9)
        eta = (self.total - done) / rate if rate > 0 else float("nan")
        eta_text = "--:--" if eta != eta else time.strftime("%H:%M:%S", time.gmtime(eta))
        text = (f"{done}/{self.total} evaluations | QD-score {qd_score:.2f} | coverage {coverage:.0%} | "
                f"best {best:.3f} | ETA {eta_text}{(' | ' + extra) if extra else ''}")  # fmt: skip
        if self.tty:
            width = 24
            filled = int(width * done / max(self.total, 1))
            self.stream.write(f"\r[{'#' * filled}{'.' * (width - filled)}] {text}\033[K")
            self.stream.flush()
        elif now - self._last_line >= self.interval_s or done >= self.total:
            self._last_line = now
            self.stream.write(text + "\n")
            self.stream.flush()

    def close(self) -> None:
        if self.tty and not self.quiet:
            self.stream.write("\n")
            self.stream.flush()
