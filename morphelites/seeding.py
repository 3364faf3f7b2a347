"""Independent random streams from one seed.

Every consumer of randomness gets a seed of its own, derived from its owner's seed (the run's
``evolution.seed``, an individual's :func:`~morphelites.individual.individual_seed`) and the
stream's purpose with numpy's ``SeedSequence`` spawn keys, so that no two purposes read the same
random bits. Seeding each of them with the owner's seed itself (or ``seed + 1``) made, e.g.,
the parents drawn a function of the random start's genes, the action noise a function of the
first environment's resets, and seed s's mutations the same bits as seed s + 1's random start.
"""

from __future__ import annotations

from enum import IntEnum

import numpy as np

__all__ = ["Stream", "stream_seed"]


class Stream(IntEnum):
    """The purposes random numbers are drawn for (the values are spawn keys: never reuse one)."""

    GENOMES = 0  # a run's random start (Variation.rng)
    MUTATION = 1  # a run's variation operator
    PARENT_SAMPLING = 2  # a run's archive draws of parents
    ACTION_NOISE = 3  # an individual's (or a ppo run's) sampled actions
    ENV_RESETS = 4  # its training environments' resets (env i: the stream's seed + i)
    MINIBATCHES = 5  # a PPO updater's minibatch shuffling
    RESUMED_VARIATION = 6  # a resume without an up-to-date checkpoint: a variation of its own


def stream_seed(seed: int, stream: Stream, *more: int) -> int:
    """An int seed (below 2**32) for ``stream`` of the owner seeded with ``seed``; ``more``
    (non-negative ints) tells apart several streams of one purpose (e.g. one per resume)."""
    keys = (int(stream), *(int(k) for k in more))
    return int(np.random.SeedSequence(int(seed), spawn_key=keys).generate_state(1)[0])
