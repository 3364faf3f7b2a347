"""Shared-memory blocks of the weight broadcast and the experience buffer: creation with every
page reserved, the free space left for them, and their release."""

from __future__ import annotations

import os
from multiprocessing import shared_memory
from pathlib import Path

__all__ = ["SHM_DIR", "SharedMemoryFull", "create_shared_memory", "shared_memory_free_bytes", "release_shared_memory"]

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


def create_shared_memory(size: int, what: str) -> shared_memory.SharedMemory:
    """A new block of ``size`` bytes (``what`` names it in errors) whose pages are reserved now.

    A tmpfs hands out a page only when a process first touches it; with ``/dev/shm`` full, that
    process gets SIGBUS and dies without a word, possibly long into a run. Reserved here
    (posix_fallocate), a shortage is :class:`SharedMemoryFull` at creation, and the block is
    removed again. Where there is no ``/dev/shm`` the block is returned as created.
    """
    shm = shared_memory.SharedMemory(create=True, size=size)
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


def release_shared_memory(shm: shared_memory.SharedMemory, owner: bool) -> None:
    """Detach this process from ``shm``; the creating process (``owner``) also unlinks it."""
    shm.close()
    if owner:
        try:
            shm.unlink()
        except FileNotFoundError:
            pass
