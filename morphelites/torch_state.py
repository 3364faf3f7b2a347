"""Give the calling process back the torch state that a run in it changes."""

from __future__ import annotations

import contextlib
from typing import Iterator

from morphelites.cpu_affinity import cores_kept

__all__ = ["caller_torch_state_kept"]


@contextlib.contextmanager
def caller_torch_state_kept() -> Iterator[None]:
    """Restore torch's thread count and global RNG state, and the process's cores, on exit.

    A run that trains in the calling process (``morphelites ppo``, a serial evolution run) sets
    both (``ppo.torch_threads``, its seeds). From Python, that process is the user's notebook or
    script, whose own torch work afterwards should run as it did before. torch is imported here,
    so use this only where the run imports it anyway.
    """
    # torch's OpenMP pins a process whose environment binds threads (OMP_PROC_BIND, ...) to one
    # core as it loads, and may again as the run trains: the caller gets its cores back after both.
    with cores_kept():
        import torch
    with cores_kept():
        threads, rng_state = torch.get_num_threads(), torch.get_rng_state()
        try:
            yield
        finally:
            torch.set_num_threads(threads)
            torch.set_rng_state(rng_state)
