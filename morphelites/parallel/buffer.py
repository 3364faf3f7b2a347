"""SharedExperienceBuffer: a bounded shared-memory ring of experience segments.

Every worker owns a ring of segment slots in one shared-memory block; the learner reads them.
A slot is ``EMPTY``, ``WRITING`` (a worker fills it), or ``READY`` (whole, waiting for the
learner). A worker that dies mid-write leaves ``WRITING`` behind, which the learner never reads
and the supervisor clears before the replacement worker starts: the learner gets whole segments
or nothing. A commit writes the CRC-32 of the segment before it flips the state; the learner
keeps a copy only if it matches (:meth:`SharedExperienceBuffer.take`). Python has no memory
barriers: where stores and loads may be reordered (ARM, POWER) the READY flag could be seen
before the data it announces, and the checksum catches that (a released slot's checksum is
cleared, so that the segment taken from it before cannot pass for the next). Capacity
(:attr:`BufferLayout.capacity`) is as many whole segments per worker as fit in ``buffer_size``
transitions, but at least two per worker, so it exceeds ``buffer_size`` where two segments per
worker come to more (above 100 workers at the defaults). When a worker's ring is full it waits
(backpressure) and says so, and nothing is dropped except segments older than
``max_policy_lag`` policy versions, which are counted.

Why shared memory and not a ``multiprocessing.Queue``: no pickling of arrays, and a worker killed
while writing cannot leave a lock held that would wedge the other workers (a Queue's writers
share one pipe lock).

Segment layout (T steps of K envs of one body, one policy version), see :class:`SegmentView`.
"""

from __future__ import annotations

import contextlib

import time
import zlib
from dataclasses import dataclass
from multiprocessing import shared_memory
from typing import Callable

import numpy as np

from morphelites.parallel.heartbeat import beat
from morphelites.parallel.shm import create_shared_memory, release_shared_memory

__all__ = ["SharedExperienceBuffer", "BufferLayout", "SegmentView", "TakenSegment", "SEGMENT_ARRAYS", "EMPTY", "WRITING",
           "READY"]  # fmt: skip

EMPTY, WRITING, READY = 0, 1, 2
#: The data arrays of a segment slot (everything but its header), in layout order.
SEGMENT_ARRAYS = ("obs", "actions", "logprobs", "values", "rewards", "dones", "bootstrap", "truncated", "final_obs", "last_obs",
                  "last_values")
# header words of a slot: state, policy version, individual id, commit time (monotonic ns), worker,
# the worker's incarnation, CRC-32 of the segment (the five words before it and the data arrays)
_STATE, _VERSION, _INDIVIDUAL, _COMMITTED_NS, _WORKER, _INCARNATION, _CHECKSUM = range(7)
_HEADER_WORDS = 8
# counters (int64) at the start of the block: one row per worker and a last row for the learner,
# so no counter has two writers: a worker row's first two are written by that worker only, its
# incarnation by the supervisor only (reset_worker, while no worker process runs at that index).
_WRITTEN, _WAITS, _WORKER_INCARNATION = 0, 1, 2  # worker rows
_READ, _DROPPED_LAG = 0, 1  # learner row
_COUNTER_COLUMNS = 3


@dataclass(frozen=True)
class BufferLayout:
    """Sizes of the ring: ``workers`` rings of ``slots_per_worker`` segments of T x K steps."""

    workers: int
    slots_per_worker: int
    steps: int  # T
    envs: int  # K
    obs_dim: int
    act_dim: int

    @classmethod
    def for_buffer_size(cls, buffer_size: int, workers: int, steps: int, envs: int, obs_dim: int, act_dim: int) -> "BufferLayout":
        """As many slots per worker as fit in ``buffer_size`` transitions, but at least 2 each: where
        ``2 * workers * steps * envs`` exceeds ``buffer_size``, that is the capacity instead."""
        per_segment = steps * envs
        slots = max(2, buffer_size // (per_segment * workers))
        return cls(workers, slots, steps, envs, obs_dim, act_dim)

    @property
    def transitions_per_segment(self) -> int:
        return self.steps * self.envs

    @property
    def capacity(self) -> int:
        """Transitions the whole buffer holds."""
        return self.workers * self.slots_per_worker * self.transitions_per_segment

    def _fields(self) -> list[tuple[str, tuple[int, ...], type]]:
        T, K, D, A = self.steps, self.envs, self.obs_dim, self.act_dim
        return [
            ("header", (_HEADER_WORDS,), np.int64),
            ("obs", (T, K, D), np.float32),
            ("actions", (T, K, A), np.float32),
            ("logprobs", (T, K), np.float32),
            ("values", (T, K), np.float32),
            ("rewards", (T, K), np.float32),
            ("dones", (T, K), np.float32),
            ("bootstrap", (T, K), np.float32),
            ("truncated", (T, K), np.float32),
            ("final_obs", (T, K, D), np.float32),
            ("last_obs", (K, D), np.float32),
            ("last_values", (K,), np.float32),
        ]

    @property
    def slot_bytes(self) -> int:
        return sum(int(np.prod(shape)) * np.dtype(dtype).itemsize for _, shape, dtype in self._fields())

    @property
    def counter_bytes(self) -> int:
        return 8 * (self.workers + 1) * _COUNTER_COLUMNS

    @property
    def total_bytes(self) -> int:
        return self.counter_bytes + self.workers * self.slots_per_worker * self.slot_bytes


class SegmentView:
    """Numpy views of one slot. Arrays (time-major): obs (T, K, D) raw observations; actions
    (T, K, A); logprobs, values (behaviour policy), rewards (raw), dones, bootstrap (T, K), where
    ``bootstrap`` is the behaviour critic's V(final obs) for a time-limit truncation at that step,
    else 0; truncated (T, K), 1 at those steps; final_obs (T, K, D), their final observations
    (0 elsewhere); last_obs (K, D) and last_values (K,), the behaviour critic's value of last_obs."""

    def __init__(self, layout: BufferLayout, buffer: memoryview, offset: int) -> None:
        for name, shape, dtype in layout._fields():
            array = np.ndarray(shape, dtype=dtype, buffer=buffer, offset=offset)
            setattr(self, name, array)
            offset += array.nbytes

    header: np.ndarray
    obs: np.ndarray
    actions: np.ndarray
    logprobs: np.ndarray
    values: np.ndarray
    rewards: np.ndarray
    dones: np.ndarray
    bootstrap: np.ndarray
    truncated: np.ndarray
    final_obs: np.ndarray
    last_obs: np.ndarray
    last_values: np.ndarray

    @property
    def version(self) -> int:
        return int(self.header[_VERSION])

    @property
    def individual_id(self) -> int:
        return int(self.header[_INDIVIDUAL])

    @property
    def worker(self) -> int:
        return int(self.header[_WORKER])

    @property
    def incarnation(self) -> int:
        return int(self.header[_INCARNATION])


@dataclass(frozen=True)
class TakenSegment:
    """The learner's own copy of a READY segment: ``arrays`` by the names of SEGMENT_ARRAYS (shapes
    as in :class:`SegmentView`), the policy version that acted, the individual, the worker (its
    index, which a restarted worker keeps) and its incarnation (how many times the worker at that
    index had been replaced when it wrote the segment: tells a restarted worker from the one it
    replaced)."""

    arrays: dict[str, np.ndarray]
    version: int
    individual_id: int
    worker: int
    incarnation: int


def _checksum(meta: np.ndarray, arrays: list[np.ndarray]) -> int:
    """CRC-32 of a slot's meta words (version, individual, commit time, worker, incarnation) and data arrays."""
    crc = zlib.crc32(np.ascontiguousarray(meta))
    for array in arrays:
        crc = zlib.crc32(array, crc)
    return crc


class SharedExperienceBuffer:
    """The ring, shared by the supervisor (creates it), the workers (write) and the learner (read).

    Args:
        layout: sizes; see :meth:`BufferLayout.for_buffer_size`.
        shm: the shared-memory block (use :meth:`create` / :meth:`attach`).
        owner: whether this process created the block (its :meth:`close` also unlinks it).
    """

    def __init__(self, layout: BufferLayout, shm: shared_memory.SharedMemory, owner: bool) -> None:
        self.layout = layout
        self._shm = shm
        self.owner = owner
        self._counters = np.ndarray((layout.workers + 1, _COUNTER_COLUMNS), dtype=np.int64, buffer=shm.buf, offset=0)
        self._slots = [
            [SegmentView(layout, shm.buf, layout.counter_bytes + (w * layout.slots_per_worker + s) * layout.slot_bytes)
             for s in range(layout.slots_per_worker)]
            for w in range(layout.workers)
        ]  # fmt: skip

    @classmethod
    def create(cls, layout: BufferLayout, prefix: str | None = None) -> "SharedExperienceBuffer":
        """A new, empty buffer of ``layout`` (``prefix``: see create_shared_memory)."""
        shm = create_shared_memory(layout.total_bytes, "experience buffer", prefix)
        try:
            buffer = cls(layout, shm, owner=True)
            buffer._counters[:] = 0
            for ring in buffer._slots:
                for slot in ring:
                    slot.header[:] = 0
        except BaseException:  # a Ctrl-C in the ~50 ms this takes: the block goes now, not by the resource tracker
            # Unlinked, not closed: views made before the failure may still hold the mapping.
            with contextlib.suppress(FileNotFoundError):
                shm.unlink()
            raise
        return buffer

    @classmethod
    def attach(cls, name: str, layout: BufferLayout) -> "SharedExperienceBuffer":
        return cls(layout, shared_memory.SharedMemory(name=name, create=False), owner=False)

    @property
    def name(self) -> str:
        return self._shm.name

    # ------------------------------------------------------------------ worker side
    def ready_transitions(self) -> int:
        """Transitions in READY slots, over all workers."""
        ready = sum(1 for ring in self._slots for slot in ring if slot.header[_STATE] == READY)
        return ready * self.layout.transitions_per_segment

    def claimed_transitions(self) -> int:
        """Transitions in READY and WRITING slots, over all workers: those waiting for the learner
        and those being acted into a slot now."""
        claimed = sum(1 for ring in self._slots for slot in ring if slot.header[_STATE] != EMPTY)
        return claimed * self.layout.transitions_per_segment

    def acquire(
        self, worker: int, timeout_s: float, on_wait: Callable[[float], None] | None = None,
        should_stop: Callable[[], bool] | None = None, max_ready: int | None = None,
    ) -> SegmentView | None:
        """A free slot of ``worker``'s ring, marked WRITING; waits while the ring is full or, with
        ``max_ready``, while at least that many transitions wait for the learner or are being
        written (a worker takes its slot before it acts the segment, so that it acts with the
        weights of after the wait: see shared_worker.py). Those being written count: workers that
        all found room at once, each then adding a segment, put the last ones past the learner's
        lag limit (24 workers at the defaults: a sixth dropped). So at most ``max_ready`` / segment,
        rounded up, workers act at once; with more, the others' segments would only be dropped.

        ``on_wait(waited_s)`` is called every ``timeout_s`` seconds of waiting (to warn); returns
        None if ``should_stop()`` turns true while waiting.
        """
        ring = self._slots[worker]
        start = last_warning = time.monotonic()
        counted = False
        while True:
            if max_ready is None or self.claimed_transitions() < max_ready:
                for slot in ring:
                    if slot.header[_STATE] == EMPTY:
                        slot.header[_STATE] = WRITING
                        return slot
            if not counted:
                self._counters[worker, _WAITS] += 1
                counted = True
            now = time.monotonic()
            if on_wait is not None and now - last_warning >= timeout_s:
                last_warning = now
                on_wait(now - start)
            if should_stop is not None and should_stop():
                return None
            beat()  # waiting for the learner is progress, not a stall
            time.sleep(0.002)

    def abandon(self, slot: SegmentView) -> None:
        """Give back a slot taken with :meth:`acquire` and left unwritten (acting the segment
        failed), so that neither the worker's ring nor the room of ``max_ready`` loses it."""
        slot.header[_STATE] = EMPTY

    def commit(self, slot: SegmentView, version: int, individual_id: int, worker: int) -> None:
        """Mark a filled slot READY (all arrays written before the state flips), stamped with the
        worker's current incarnation (:meth:`incarnation`)."""
        slot.header[_VERSION] = version
        slot.header[_INDIVIDUAL] = individual_id
        # perf_counter, not monotonic: both are one system-wide clock of ns steps on Linux and macOS,
        # but Python 3.11's monotonic moves in 15.6 ms steps on Windows, and equal stamps break
        # the commit order that ready_slots relies on (a sync serial run waited forever there).
        slot.header[_COMMITTED_NS] = time.perf_counter_ns()
        slot.header[_WORKER] = worker
        slot.header[_INCARNATION] = self._counters[worker, _WORKER_INCARNATION]
        slot.header[_CHECKSUM] = _checksum(slot.header[_VERSION:_CHECKSUM], [getattr(slot, n) for n in SEGMENT_ARRAYS])
        self._counters[worker, _WRITTEN] += self.layout.transitions_per_segment
        slot.header[_STATE] = READY

    def written(self, worker: int) -> int:
        """Transitions the workers at index ``worker`` have committed, all incarnations together."""
        return int(self._counters[worker, _WRITTEN])

    def incarnation(self, worker: int) -> int:
        """How many times the worker at index ``worker`` has been replaced (0 for the first)."""
        return int(self._counters[worker, _WORKER_INCARNATION])

    # ------------------------------------------------------------------ learner side
    def ready_slots(self) -> list[SegmentView]:
        """READY slots committed before this call, oldest commit first across all workers.

        The states are read one by one while workers go on committing, so a worker's segment n
        could commit into a slot already read and its segment n+1 into one not read yet; n+1 would
        then be taken before n. A segment committed since the call began waits for the next call
        instead: if n+1 was committed before the call, so was n, and both are READY when read."""
        start = time.perf_counter_ns()  # the clock of the commit stamps (see commit)
        ready = [slot for ring in self._slots for slot in ring
                 if slot.header[_STATE] == READY and int(slot.header[_COMMITTED_NS]) < start]  # fmt: skip
        return sorted(ready, key=lambda s: int(s.header[_COMMITTED_NS]))

    def take(self, slot: SegmentView) -> TakenSegment | None:
        """A copy of a READY slot, or None if the copy does not match the checksum its worker wrote
        (the commit is not yet wholly visible to this process: try again later). The slot stays
        READY until :meth:`release`."""
        meta = slot.header[_VERSION:_CHECKSUM].copy()
        arrays = {name: getattr(slot, name).copy() for name in SEGMENT_ARRAYS}
        if _checksum(meta, list(arrays.values())) != int(slot.header[_CHECKSUM]):
            return None
        return TakenSegment(arrays, int(meta[_VERSION - 1]), int(meta[_INDIVIDUAL - 1]), int(meta[_WORKER - 1]),
                            int(meta[_INCARNATION - 1]))  # fmt: skip

    def release(self, slot: SegmentView, dropped_for_lag: bool = False) -> None:
        """Give a slot back to its worker after the learner copied (or dropped) it."""
        learner = self.layout.workers
        if dropped_for_lag:
            self._counters[learner, _DROPPED_LAG] += 1
        else:
            self._counters[learner, _READ] += self.layout.transitions_per_segment
        # The taken segment stays in the slot until a worker overwrites it. Where stores may be
        # reordered, the worker's next READY could be seen before any of its new data: the old
        # segment and its own checksum would match, and be taken twice. Cleared, they cannot.
        slot.header[_CHECKSUM] = 0
        slot.header[_STATE] = EMPTY

    def finish_torn_releases(self) -> int:
        """Mark EMPTY every READY slot whose checksum is cleared: a learner killed between the two
        stores of :meth:`release` left it so (already counted, and copied into the batch it lost),
        and no copy could ever match it, so every later :meth:`take` would stop at it. Call it in
        a learner starting up, before it takes anything; returns the slots freed. (A worker's
        commit writes a nonzero checksum, but for one chance in 2**32.)"""
        freed = 0
        for ring in self._slots:
            for slot in ring:
                if slot.header[_STATE] == READY and int(slot.header[_CHECKSUM]) == 0:
                    slot.header[_STATE] = EMPTY
                    freed += 1
        return freed

    # ------------------------------------------------------------------ supervisor side
    def reset_worker(self, worker: int) -> int:
        """Clear the half-written slots of a dead worker (READY ones are kept) and count a new
        incarnation at its index, before its replacement starts; returns the slots cleared."""
        self._counters[worker, _WORKER_INCARNATION] += 1
        cleared = 0
        for slot in self._slots[worker]:
            if slot.header[_STATE] == WRITING:
                slot.header[_STATE] = EMPTY
                cleared += 1
        return cleared

    def occupancy(self) -> dict[str, float]:
        """READY transitions and their size (``buffer_mb``, in 2**20 bytes), capacity, totals
        written / consumed, segments dropped for lag, and producer waits (all as floats)."""
        transitions = self.ready_transitions()
        ready = transitions // self.layout.transitions_per_segment
        return {
            "buffer_transitions": float(transitions),
            "buffer_mb": ready * self.layout.slot_bytes / 2**20,
            "buffer_capacity": float(self.layout.capacity),
            "transitions_written": float(self._counters[:-1, _WRITTEN].sum()),
            "transitions_consumed": float(self._counters[-1, _READ]),
            "segments_dropped_lag": float(self._counters[-1, _DROPPED_LAG]),
            "producer_waits": float(self._counters[:-1, _WAITS].sum()),
        }

    def close(self) -> None:
        """Detach (and unlink, if owner); safe to call twice."""
        if self._shm is None:
            return
        self._slots = []
        del self._counters
        release_shared_memory(self._shm, self.owner)
        self._shm = None  # type: ignore[assignment]
