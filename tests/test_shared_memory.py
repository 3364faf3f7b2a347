"""Shared-memory blocks take all their pages at creation, so a full /dev/shm is a clear error
there, not a SIGBUS in whichever process first touches a page later (a real /dev/shm; Linux)."""

from __future__ import annotations

import os
from multiprocessing import shared_memory

import pytest

from morphelites.config import Settings
from morphelites.parallel.shm import SHM_DIR, SharedMemoryFull, create_shared_memory, release_shared_memory
from morphelites.parallel.supervisor import check_shared_memory, create_shared_state

pytestmark = pytest.mark.skipif(not SHM_DIR.is_dir() or not hasattr(os, "posix_fallocate"), reason="needs Linux's /dev/shm")


def test_a_new_block_has_all_its_pages_reserved():
    size = 64 * 2**20
    shm = create_shared_memory(size, "test block")
    try:
        # the block's own allocation, not the free space of /dev/shm, which other processes share
        allocated = os.stat(SHM_DIR / shm.name.lstrip("/")).st_blocks * 512
        assert allocated >= size, "untouched pages of the block are already taken from /dev/shm"
    finally:
        release_shared_memory(shm, owner=True)
    assert not (SHM_DIR / shm.name.lstrip("/")).exists()


def test_a_block_larger_than_dev_shm_is_refused_at_creation_and_removed(monkeypatch):
    stats = os.statvfs(SHM_DIR)
    size = stats.f_blocks * stats.f_frsize + 2**20  # more than the whole tmpfs: refused before any page is given
    # The refused block's name, from the real class: a listing of /dev/shm before and after would
    # also see the blocks of the tests or benchmarks running beside this one.
    created: list[str] = []

    class NamedBlock(shared_memory.SharedMemory):
        def __init__(self, *args, **kwargs) -> None:
            super().__init__(*args, **kwargs)
            created.append(self.name.lstrip("/"))

    monkeypatch.setattr(shared_memory, "SharedMemory", NamedBlock)
    with pytest.raises(SharedMemoryFull) as refused:
        create_shared_memory(size, "experience buffer")
    message = str(refused.value)
    assert "experience buffer" in message and f"{size / 2**20:.1f} MB" in message
    assert "training.buffer_size" in message and "--shm-size" in message
    assert len(created) == 1 and not (SHM_DIR / created[0]).exists(), "the refused block is not left behind"


def test_the_check_counts_the_weights_and_the_buffer_that_a_run_creates():
    settings = Settings().validate()
    needed = check_shared_memory(settings, 2)
    weights, buffer, _handles = create_shared_state(settings, 2, sync=False, max_policy_lag=4)
    try:
        assert needed == weights._shm.size + buffer._shm.size
    finally:
        buffer.close()
        weights.close()
