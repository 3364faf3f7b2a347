"""Policy weights broadcast through shared memory with a version counter (a seqlock).

One writer (the learner) and any number of readers (workers). The block holds a header of four
int64 — ``sequence``, ``version``, ``closing`` (sync mode's handshake, see
:attr:`SharedWeights.closing`) and ``checksum`` — then the flat float32 weight vector. The writer
makes the sequence odd, copies the weights, writes the CRC-32 of version and weights, then the
version, and makes the sequence even again; a reader copies weights and version between two reads
of an even, unchanged sequence and keeps them only if their CRC-32 is the one written with them.
Python has no memory barriers: the sequence alone is enough where stores and loads keep their
order (x86), and the checksum makes a torn mixture of two versions detectable where they may not
(ARM, POWER). Nothing is pickled, and readers copy only when the version moved.
"""

from __future__ import annotations

import time
import zlib
from multiprocessing import shared_memory

import numpy as np

from morphelites.parallel.shm import create_shared_memory, release_shared_memory

__all__ = ["SharedWeights"]

_HEADER = 4  # int64 words: sequence, version, closing, checksum
_SEQUENCE, _VERSION, _CLOSING, _CHECKSUM = range(_HEADER)


def _checksum(flat: np.ndarray, version: int) -> int:
    """CRC-32 of a version number and its weights (shape (size,) float32)."""
    return zlib.crc32(flat, zlib.crc32(np.int64(version).tobytes()))


class SharedWeights:
    """A flat float32 weight vector of ``size`` entries plus its version, in shared memory.

    Create it in the parent with ``SharedWeights.create(size)``; hand ``.name`` and ``.size`` to
    children, which ``SharedWeights.attach(name, size)``. Every process calls :meth:`close` at the
    end; the creator's also unlinks the block, after which no process can attach to it (views
    already attached stay valid until they close).
    """

    def __init__(self, shm: shared_memory.SharedMemory, size: int, owner: bool) -> None:
        self._shm = shm
        self.size = size
        self.owner = owner
        self._header = np.ndarray((_HEADER,), dtype=np.int64, buffer=shm.buf, offset=0)
        self._weights = np.ndarray((size,), dtype=np.float32, buffer=shm.buf, offset=8 * _HEADER)

    @staticmethod
    def bytes_for(size: int) -> int:
        """Bytes of the shared block for ``size`` weights: the int64 header, then float32 weights."""
        return 8 * _HEADER + 4 * size

    @classmethod
    def create(cls, size: int, prefix: str | None = None) -> "SharedWeights":
        """New weights of ``size`` floats, version 0 (``prefix``: see create_shared_memory)."""
        shm = create_shared_memory(cls.bytes_for(size), "policy weights", prefix)
        weights = cls(shm, size, owner=True)
        weights._header[:] = 0
        weights._header[_CHECKSUM] = _checksum(weights._weights, 0)  # version 0: zeros, consistent
        return weights

    @classmethod
    def attach(cls, name: str, size: int) -> "SharedWeights":
        """Attach to the block ``name`` made by :meth:`create` with the same ``size`` (not the
        owner: :meth:`close` only detaches)."""
        return cls(shared_memory.SharedMemory(name=name, create=False), size, owner=False)

    @property
    def name(self) -> str:
        return self._shm.name

    @property
    def version(self) -> int:
        """Version of the weights now published (0: none yet)."""
        return int(self._header[_VERSION])

    @property
    def closing(self) -> int:
        """Sync mode: the version the learner has begun to retire (an update on its segments is
        decided), or 0. A worker that is about to act with that version must wait for the next
        one: the update may have been decided without counting it (``SharedPPOTrainer.decide_update``)."""
        return int(self._header[_CLOSING])

    def set_closing(self, version: int) -> None:
        """Mark ``version`` as being retired (0: none; writer side)."""
        self._header[_CLOSING] = version

    def publish(self, flat: np.ndarray, version: int) -> None:
        """Write ``flat`` as ``version`` (writer side; a single writer only)."""
        flat = np.ascontiguousarray(flat, dtype=np.float32)  # the checksum reads its buffer
        if flat.shape != (self.size,):
            raise ValueError(f"weights have shape {flat.shape}, expected ({self.size},)")
        if not np.all(np.isfinite(flat)):
            raise ValueError("refusing to publish non-finite weights")
        checksum = _checksum(flat, version)  # before the sequence goes odd: nothing below may raise
        # Round up to even first: a writer killed mid-write (odd) must not leave the lock inverted
        # for the learner that replaces it.
        stable = int(self._header[_SEQUENCE]) + int(self._header[_SEQUENCE]) % 2
        self._header[_SEQUENCE] = stable + 1  # odd: writing
        self._weights[:] = flat
        self._header[_CHECKSUM] = checksum
        self._header[_VERSION] = version
        self._header[_SEQUENCE] = stable + 2  # even: stable

    def read(self, timeout_s: float = 5.0) -> tuple[np.ndarray, int]:
        """A consistent copy of (weights, version): shape (size,) float32, and the version they
        were published as. Retries while a write is in progress, or while the copy does not match
        the checksum written with it (a write not yet wholly visible to this process).

        Raises TimeoutError if no consistent copy could be made in ``timeout_s`` seconds."""
        deadline = time.monotonic() + timeout_s
        while True:
            before = int(self._header[_SEQUENCE])
            if before % 2 == 0:
                weights = self._weights.copy()
                version = int(self._header[_VERSION])
                checksum = int(self._header[_CHECKSUM])
                if int(self._header[_SEQUENCE]) == before and _checksum(weights, version) == checksum:
                    return weights, version
            if time.monotonic() > deadline:
                raise TimeoutError("no consistent copy of the policy weights in %.0f s: the learner held the write "
                                   "lock all that time (stalled mid-write?), or the weights in shared memory do not "
                                   "match their checksum (overwritten from outside?)" % timeout_s)
            time.sleep(0.0005)

    def close(self) -> None:
        """Detach (and unlink, if owner: nothing can attach after); safe to call twice."""
        if self._shm is None:
            return
        del self._header, self._weights
        release_shared_memory(self._shm, self.owner)
        self._shm = None  # type: ignore[assignment]
