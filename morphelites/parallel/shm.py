"""Shared-memory block lifetime, shared by the weight broadcast and the experience buffer."""

from __future__ import annotations

from multiprocessing import shared_memory

__all__ = ["release_shared_memory"]


def release_shared_memory(shm: shared_memory.SharedMemory, owner: bool) -> None:
    """Detach this process from ``shm``; the creating process (``owner``) also unlinks it."""
    shm.close()
    if owner:
        try:
            shm.unlink()
        except FileNotFoundError:
            pass
