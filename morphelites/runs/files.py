"""Crash-safe file writes: whole files by temp-file + fsync + rename, lines by append + fsync."""

from __future__ import annotations

import contextlib
import json
import math
import os
import tempfile
from pathlib import Path
from typing import Any

#: The process's umask, read once at import (reading it means setting it, which is not thread-safe).
_UMASK = os.umask(0o022)
os.umask(_UMASK)

__all__ = ["atomic_write_bytes", "atomic_write_text", "atomic_write_json", "append_line", "truncate_file", "to_jsonable",
           "fsync_directory"]


def atomic_write_bytes(path: Path | str, data: bytes) -> None:
    """Replace ``path`` with ``data`` so that a reader sees the old file or the new one, never half.

    The temp file lives in the same directory (same filesystem, so the rename is atomic); on any
    error it is removed and the previous file is left untouched.
    """
    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        # mkstemp makes the file private (0600); give it the mode open() would, so the run's files
        # can be shared as the user's umask allows (a group's results directory on a cluster).
        os.fchmod(fd, 0o666 & ~_UMASK)
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise
    fsync_directory(path.parent)


def atomic_write_text(path: Path | str, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path: Path | str, data: Any) -> None:
    """Write ``data`` as indented JSON (NaN/Inf become null, numpy scalars plain numbers)."""
    atomic_write_text(path, json.dumps(to_jsonable(data), indent=2, sort_keys=False) + "\n")


def append_line(path: Path | str, line: str) -> None:
    """Append one line (newline added) and fsync, so a crash leaves whole lines only, but for a
    last one it tore. A write that fails (disk full, quota, I/O error) is cut back off, as far as
    the file still lets itself be cut: the caller may go on appending (the other results of a poll),
    and a part-line followed by whole ones would read as damage from outside. The line that creates
    the file also fsyncs its directory: until then, a power cut could lose the file's name, and with
    it lines a later checkpoint counts on."""
    created = not os.path.exists(path)
    data = memoryview((line.rstrip("\n") + "\n").encode("utf-8"))
    with open(path, "ab", buffering=0) as handle:  # unbuffered: nothing left to flush after a failure
        start = handle.seek(0, os.SEEK_END)
        try:
            while data:
                data = data[handle.write(data):]
            os.fsync(handle.fileno())
        except OSError:
            with contextlib.suppress(OSError):
                handle.truncate(start)
                os.fsync(handle.fileno())
            raise
    if created:
        fsync_directory(Path(path).parent)


def truncate_file(path: Path | str, size: int) -> None:
    """Cut the file to its first ``size`` bytes and fsync (drops a line torn by a crash)."""
    with open(path, "r+b") as handle:
        handle.truncate(size)
        os.fsync(handle.fileno())


def to_jsonable(value: Any) -> Any:
    """Recursively turn numpy values and non-finite floats into plain JSON values."""
    if isinstance(value, dict):
        return {str(k): to_jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [to_jsonable(v) for v in value]
    if hasattr(value, "tolist") and not isinstance(value, (str, bytes)):
        return to_jsonable(value.tolist())
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, Path):
        return str(value)
    return value


def fsync_directory(directory: Path) -> None:
    """Make the names in ``directory`` (files created, renamed or removed) durable; errors ignored
    (a filesystem that cannot fsync a directory)."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
