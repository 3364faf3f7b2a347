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
        time_left_s: seconds the run's wall-time budget leaves it, if it has one: the ETA is never
            later than that.
        start_done: evaluations already done when this session starts (a resumed run's).
        env_steps_left: env steps the run's env-step budget (``--max-env-steps``) leaves it when
            this session starts, if it has one: the ETA is never later than the time they take at
            the session's rate (``update``'s ``env_steps`` counts this session's steps).

    The rate behind the ETA counts from this object's creation, not from the first update: the
    workers start together and finish their first bodies within moments of each other, so a rate
    taken between the first two results would put the ETA near zero.
    """

    def __init__(self, total: int, quiet: bool = False, stream: TextIO | None = None, interval_s: float = 10.0,
                 time_left_s: float | None = None, start_done: int = 0, env_steps_left: int | None = None) -> None:  # fmt: skip
        self.total = total
        self.time_left_s = time_left_s
        self.stream = stream or sys.stderr
        self.quiet = quiet or self.stream is None  # None: started with stderr closed (2>&-; review)
        self.tty = bool(getattr(self.stream, "isatty", lambda: False)())
        self.interval_s = interval_s
        self._created = time.monotonic()
        self._start_done = start_done
        self.env_steps_left = env_steps_left
        self._last_line = 0.0

    def update(self, done: int, qd_score: float, coverage: float, best: float, env_steps: int = 0,
               after_s: float = 0.0) -> None:  # fmt: skip
        """Show ``done`` evaluations; ``env_steps``: those this session has simulated (for the
        env-step budget's ETA); ``after_s``: seconds the run is expected to take after its last
        evaluation (shared mode's final re-evaluation of the elites), which the ETA includes."""
        if self.quiet:
            return
        now = time.monotonic()
        elapsed = max(now - self._created, 1e-9)
        rate = (done - self._start_done) / elapsed
        eta = (self.total - done) / rate if rate > 0 else float("nan")
        if self.env_steps_left is not None and env_steps > 0:  # the env-step budget ends the run first
            steps_eta = max(0.0, self.env_steps_left - env_steps) / (env_steps / elapsed)
            eta = min(eta, steps_eta) if eta == eta else steps_eta
        if self.time_left_s is not None:  # the wall-time budget ends the run first
            eta = min(eta, max(0.0, self.time_left_s - (now - self._created))) if eta == eta else eta
        eta += after_s  # after any budget: the final re-evaluation follows the stop
        eta_text = "--:--" if eta != eta else _duration(eta)
        text = (f"{done}/{self.total} evaluations | QD-score {qd_score:.2f} | coverage {coverage:.0%} | "
                f"best {best:.3f} | ETA {eta_text}")  # fmt: skip
        if self.tty:
            width = 24
            filled = int(width * done / max(self.total, 1))
            self._write(f"\r[{'#' * filled}{'.' * (width - filled)}] {text}\033[K")
        elif now - self._last_line >= self.interval_s or done >= self.total:
            self._last_line = now
            self._write(text + "\n")

    def close(self) -> None:
        if self.tty and not self.quiet:
            self._write("\n")

    def _write(self, text: str) -> None:
        """Draw ``text``; a console that is gone (a hung-up terminal: EIO, a closed pipe) is passed
        over, since training.log and metrics.csv keep the record."""
        try:
            self.stream.write(text)
            self.stream.flush()
        except (OSError, ValueError):  # ValueError: the stream was closed
            pass


def _duration(seconds: float) -> str:
    """``HH:MM:SS``, with a day count in front from one day on (``2d 03:45:00``)."""
    days, rest = divmod(int(seconds), 86_400)
    clock = time.strftime("%H:%M:%S", time.gmtime(rest))
    return f"{days}d {clock}" if days else clock
