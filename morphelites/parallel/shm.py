"""Shared-memory blocks of the weight broadcast and the experience buffer: creation with every
page reserved, the free space left for them, and their release."""

from __future__ import annotations

import hashlib
import os
import secrets
from multiprocessing import shared_memory
from pathlib import Path

__all__ = ["SHM_DIR", "SharedMemoryFull", "create_shared_memory", "shared_memory_free_bytes", "release_shared_memory",
           "new_run_id", "run_block_prefix", "leftover_blocks", "leftover_bytes", "remove_leftover_blocks"]

#: Where Linux keeps POSIX shared memory: a tmpfs, which containers often keep small (Docker: 64 MB).
SHM_DIR = Path("/dev/shm")


class SharedMemoryFull(OSError):
    """A shared-memory block could not be given all its pages (``/dev/shm`` is too small)."""


def shared_memory_free_bytes() -> int | None:
    """Bytes still free in :data:`SHM_DIR`, or None where this system has none (not Linux)."""
    try:
        stats = os.statvfs(SHM_DIR)
    except OSError:
        return None
    return stats.f_bavail * stats.f_frsize


def new_run_id() -> str:
    """A run's own id (10 hex digits, drawn once and kept in its config.json), from which its
    blocks are named: not its path, which two runs in containers that share ``/dev/shm`` can have
    alike."""
    return secrets.token_hex(5)


def run_block_prefix(run_id: str, run_path: Path) -> str:
    """The name prefix of the blocks of the run with id ``run_id`` in directory ``run_path``:
    ``mel`` and 10 hex digits of the id and the directory's device and inode, so that each run's
    blocks can be told from any other's: two runs at one path in containers that share
    ``/dev/shm`` (other ids), or a copy of a run directory (the same id, another inode) resumed
    beside it, differ, while the run moved or mounted at another path keeps its blocks' names.
    (A directory not made yet has no leftovers: the id alone then.) With a suffix, names stay
    within macOS's 31 characters."""
    try:
        stat = Path(run_path).stat()
        where = f"{stat.st_dev}:{stat.st_ino}"
    except OSError:
        where = "new"
    digest = hashlib.sha1(f"{run_id}:{where}".encode()).hexdigest()
    return f"mel{digest[:10]}"


def leftover_blocks(prefix: str) -> list[Path]:
    """The blocks in :data:`SHM_DIR` whose names start with ``prefix`` (a run's: see
    :func:`run_block_prefix`); none where this system has no such directory."""
    try:
        return sorted(path for path in SHM_DIR.iterdir() if path.name.startswith(f"{prefix}_"))
    except OSError:
        return []


def leftover_bytes(prefix: str) -> int:
    """Bytes the blocks of :func:`leftover_blocks` take (those gone meanwhile count 0)."""
    total = 0
    for path in leftover_blocks(prefix):
        try:
            total += path.stat().st_size
        except OSError:
            pass
    return total


def remove_leftover_blocks(prefix: str) -> list[tuple[str, int]]:
    """Remove the run's blocks that an earlier session left in :data:`SHM_DIR`; returns each one's
    name and size in bytes. Only while holding the run's lock: then no session of the run is alive
    to use them. Python's resource tracker removes a killed process's blocks, but not when it is
    killed too (SIGKILL to the whole process group: ``timeout -s KILL``, a group OOM kill), and
    then they stayed until reboot, filling ``/dev/shm`` run after run."""
    removed = []
    for path in leftover_blocks(prefix):
        try:
            size = path.stat().st_size
            path.unlink()
        except OSError:  # gone meanwhile, or not ours to remove: the start check said what it needs
            continue
        removed.append((path.name, size))
    return removed


def create_shared_memory(size: int, what: str, prefix: str | None = None) -> shared_memory.SharedMemory:
    """A new block of ``size`` bytes (``what`` names it in errors) whose pages are reserved now;
    ``prefix``: its name starts with that (a run's, see :func:`run_block_prefix`), else Python
    names it.

    A tmpfs hands out a page only when a process first touches it; with ``/dev/shm`` full, that
    process gets SIGBUS and dies without a word, possibly long into a run. Reserved here
    (posix_fallocate), a shortage is :class:`SharedMemoryFull` at creation, and the block is
    removed again. Where there is no ``/dev/shm`` the block is returned as created.
    """
    shm = _new_block(size, prefix)
    path = SHM_DIR / shm.name.lstrip("/")
    if not hasattr(os, "posix_fallocate") or not path.exists():
        return shm
    try:
        descriptor = os.open(path, os.O_RDWR)
        try:
            os.posix_fallocate(descriptor, 0, size)
        finally:
            os.close(descriptor)
    except OSError as error:
        release_shared_memory(shm, owner=True)
        free = shared_memory_free_bytes()
        left = f"; {SHM_DIR} has {free / 2**20:.1f} MB free" if free is not None else ""
        raise SharedMemoryFull(
            f"Could not reserve {size / 2**20:.1f} MB of shared memory for the {what} ({error.strerror}{left}). "
            f"Lower training.buffer_size, or give the machine more shared memory (Docker: --shm-size)."
        ) from error
    return shm


def _new_block(size: int, prefix: str | None) -> shared_memory.SharedMemory:
    if prefix is None:
        return shared_memory.SharedMemory(create=True, size=size)
    for _ in range(100):
        try:
            return shared_memory.SharedMemory(name=f"{prefix}_{secrets.token_hex(4)}", create=True, size=size)
        except FileExistsError:  # a name drawn twice: draw another
            continue
    raise FileExistsError(f"no free shared-memory name starting with {prefix}_ in 100 tries")


def release_shared_memory(shm: shared_memory.SharedMemory, owner: bool) -> None:
    """Detach this process from ``shm``; the creating process (``owner``) also unlinks it."""
    shm.close()
    if owner:
        try:
            shm.unlink()
        except FileNotFoundError:
            pass
