"""Joining consecutive segments of one env stream (morphelites/parallel/streams.py)."""

from __future__ import annotations

import numpy as np

from morphelites.parallel.buffer import SEGMENT_ARRAYS
from morphelites.parallel.streams import TIME_ARRAYS, join_consecutive

T, K, D = 3, 2, 4


def _segment(worker: int, individual: int, first_obs: np.ndarray, fill: float, incarnation: int = 0) -> dict:
    """A segment of one value ``fill`` everywhere, starting from ``first_obs`` (K, D), ending on
    ``first_obs + 1``."""
    segment = {name: np.full((T, K), fill, dtype=np.float32) for name in TIME_ARRAYS}
    segment["obs"] = np.full((T, K, D), fill, dtype=np.float32)
    segment["obs"][0] = first_obs
    segment["final_obs"] = np.zeros((T, K, D), dtype=np.float32)
    segment["actions"] = np.full((T, K, 1), fill, dtype=np.float32)
    segment["last_obs"] = first_obs + 1.0
    segment["last_values"] = np.full(K, fill, dtype=np.float32)
    return segment | {"worker": worker, "incarnation": incarnation, "individual": individual}


def test_consecutive_segments_of_one_stream_are_joined_in_time_and_no_others():
    start = np.zeros((K, D), dtype=np.float32)
    a = _segment(0, individual=5, first_obs=start, fill=1.0)
    x = _segment(1, individual=6, first_obs=start + 10, fill=2.0)
    b = _segment(0, individual=5, first_obs=a["last_obs"], fill=3.0)  # continues a, after x's commit
    gap = _segment(1, individual=6, first_obs=x["last_obs"] + 1, fill=4.0)  # one segment of x's stream is missing
    other_body = _segment(0, individual=7, first_obs=b["last_obs"], fill=5.0)  # same observation, next body
    c = _segment(0, individual=7, first_obs=other_body["last_obs"], fill=6.0)
    # worker 0 died and its replacement trains body 7 again, from the same observation by chance
    restarted = _segment(0, individual=7, first_obs=c["last_obs"], fill=7.0, incarnation=1)
    joined = join_consecutive([a, x, b, gap, other_body, c, restarted])
    assert [float(s["rewards"][-1, 0]) for s in joined] == [3.0, 2.0, 4.0, 6.0, 7.0]
    assert joined[4] is restarted
    ab = joined[0]
    for name in TIME_ARRAYS:
        assert ab[name].shape == (2 * T, *a[name].shape[1:])
    assert np.array_equal(ab["rewards"][:T], a["rewards"]) and np.array_equal(ab["rewards"][T:], b["rewards"])
    assert np.array_equal(ab["obs"][T], b["obs"][0]) and np.array_equal(ab["last_obs"], b["last_obs"])
    assert np.array_equal(ab["last_values"], b["last_values"]) and ab["worker"] == 0 and ab["individual"] == 5
    assert joined[1] is x and joined[2] is gap
    assert joined[3]["rewards"].shape == (2 * T, K) and np.array_equal(joined[3]["obs"][0], other_body["obs"][0])


def test_segments_that_continue_nothing_come_back_unchanged_and_in_order():
    start = np.zeros((K, D), dtype=np.float32)
    segments = [_segment(w, individual=w, first_obs=start + w, fill=float(w)) for w in range(3)]
    joined = join_consecutive(segments)
    assert len(joined) == 3 and all(out is segment for out, segment in zip(joined, segments))
    assert join_consecutive([]) == []


def test_every_per_step_array_of_a_segment_is_joined():
    # Every array of the buffer's segments but the two that describe the step after a segment is
    # joined; one left out would be taken from the last segment only, out of line with the obs.
    assert set(TIME_ARRAYS) == set(SEGMENT_ARRAYS) - {"last_obs", "last_values"}
