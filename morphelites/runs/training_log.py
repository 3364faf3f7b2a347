"""``training.log``: human-readable progress, also echoed to the terminal unless quiet."""

from __future__ import annotations

import logging
import os
import sys
from pathlib import Path

__all__ = ["open_training_log"]


class _FsyncFileHandler(logging.FileHandler):
    """Each line flushed and fsynced, as results.jsonl's are: a power cut keeps what was logged."""

    def emit(self, record: logging.LogRecord) -> None:
        super().emit(record)
        try:
            self.flush()
            if self.stream is not None:
                os.fsync(self.stream.fileno())
        except OSError:  # a full or vanished disk: reported as logging reports its own write errors
            self.handleError(record)


def open_training_log(path: Path | None, quiet: bool = False, name: str = "morphelites", own: bool = False) -> logging.Logger:
    """A logger writing timestamped lines to ``path`` and, unless ``quiet``, to stderr.

    ``own``: a logger of its own rather than logging's registered one of that ``name``, so that
    runs going at once in one process (threads) each write their own training.log; a registered
    one would be taken over by the last run opened (found in review)."""
    logger = logging.Logger(name) if own else logging.getLogger(name)
    for handler in list(logger.handlers):
        handler.close()
        logger.removeHandler(handler)
    logger.setLevel(logging.INFO)
    logger.propagate = False
    formatter = logging.Formatter("%(asctime)s %(levelname)s %(message)s", "%Y-%m-%d %H:%M:%S")
    if path is not None:
        # errors: a path of bytes that are not UTF-8 (surrogates in Python) is written escaped (review)
        file_handler = _FsyncFileHandler(path, encoding="utf-8", errors="backslashreplace")
        file_handler.setFormatter(formatter)
        logger.addHandler(file_handler)
    if not quiet and sys.stderr is not None:  # None: started with stderr closed (2>&-: a crash at start; review)
        console = logging.StreamHandler(sys.stderr)
        # On a terminal a line starts by erasing the progress bar drawn there (runs.progress, no
        # newline), so it is not glued to the bar's end; the next update draws the bar below.
        erase = "\r\033[K" if sys.stderr.isatty() else ""
        console.setFormatter(logging.Formatter(f"{erase}%(asctime)s %(message)s", "%H:%M:%S"))
        logger.addHandler(console)
    return logger
