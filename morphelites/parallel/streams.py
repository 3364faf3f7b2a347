"""Joining consecutive experience segments of one env stream, so that the learner's advantages
run across segment ends instead of being cut (and bootstrapped) at each one.

A worker acts K copies of its body's env and cuts their experience into segments of T steps
(T = 25 at the defaults: ``update_interval`` 100 over K = 4 envs), but episodes run for
``env.max_episode_steps`` (200). GAE computed per segment stops every T steps and stands in the
critic's value for the rest of the return. With gamma 0.99 and lambda 0.95 a step d steps ahead
has weight 0.9405**d in the lambda-return, so over a segment of 25 steps half of that weight, on
average, lies past the cut and goes to the critic, which knows little of a body it has just met.
A batch usually holds several consecutive segments of each busy worker; joined, only the last of
them is cut, as in serial PPO's rollout of ``ppo.num_steps`` steps.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from morphelites.parallel.buffer import SEGMENT_ARRAYS

__all__ = ["TIME_ARRAYS", "continues", "join_consecutive"]

#: Arrays of a segment that describe the step after it; a joined segment takes the last one's.
_AFTER_ARRAYS = ("last_obs", "last_values")
#: Per-step arrays of a segment (leading dimension T), joined along time.
TIME_ARRAYS = tuple(name for name in SEGMENT_ARRAYS if name not in _AFTER_ARRAYS)


def continues(earlier: dict[str, Any], later: dict[str, Any]) -> bool:
    """Whether ``later`` is the segment that came right after ``earlier`` in one worker's env stream:
    same worker process (index and incarnation), same body (individual), and ``later`` starts
    from the observation ``earlier`` ended on (``last_obs``), bit for bit. The incarnation rules
    out a body trained again by a restarted worker; the observation, a segment dropped in between
    (for lag)."""
    return (earlier["worker"] == later["worker"] and earlier["incarnation"] == later["incarnation"]
            and earlier["individual"] == later["individual"]
            and np.array_equal(earlier["last_obs"], later["obs"][0]))  # fmt: skip


def join_consecutive(segments: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The segments, in commit order, with every run of consecutive ones of one stream (see
    :func:`continues`) joined into one.

    Args:
        segments: pending segments as the learner keeps them, oldest commit first: the arrays of
            SEGMENT_ARRAYS (per-step ones (T, K, ...), ``last_obs`` (K, D), ``last_values`` (K,))
            and ``worker``, ``incarnation`` and ``individual``.
    Returns:
        Segments of the same form, each per-step array (sum of the joined T, K, ...); ``last_obs``
        and ``last_values`` of the last one joined. A segment that continues none is returned as it is.
    """
    runs: list[list[dict[str, Any]]] = []
    open_run: dict[int, list[dict[str, Any]]] = {}  # worker -> its latest run
    for segment in segments:
        run = open_run.get(segment["worker"])
        if run is not None and continues(run[-1], segment):
            run.append(segment)
        else:
            run = [segment]
            runs.append(run)
            open_run[segment["worker"]] = run
    return [run[0] if len(run) == 1 else _join(run) for run in runs]


def _join(run: list[dict[str, Any]]) -> dict[str, Any]:
    joined = dict(run[-1])
    for name in TIME_ARRAYS:
        joined[name] = np.concatenate([segment[name] for segment in run], axis=0)
    return joined
