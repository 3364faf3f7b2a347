"""Shared mode: weight broadcast, experience segments, the learner, and whole runs."""

import contextlib
import json
import multiprocessing as mp
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Iterator

import numpy as np
import psutil
import pytest

from conftest import assert_gone, read_results, start_train, wait_for, write_json
from morphelites.config import Settings
from morphelites.individual import Individual
from morphelites.morphology import Morphology
from morphelites.parallel.buffer import SEGMENT_ARRAYS, BufferLayout, SharedExperienceBuffer
from morphelites.parallel.weights import SharedWeights

REPO = Path(__file__).resolve().parents[1]
TINY = {
    "evolution": {"eval_episodes": 3, "heatmap_every": 2, "checkpoint_every": 2, "num_initial_random": 3},
    "training": {"buffer_size": 2000, "min_batch_size": 400, "update_interval": 100},
    "ppo": {"num_minibatches": 4, "update_epochs": 4},
    "env": {"max_episode_steps": 40},
}


def _read_weights(name: str, size: int, queue) -> None:
    weights = SharedWeights.attach(name, size)
    flat, version = weights.read()
    queue.put((version, float(flat.sum()), flat[:3].tolist()))
    weights.close()


def _write_then_exit_without_teardown(written: str, torn_down: str) -> None:
    import atexit

    from morphelites.parallel.pool import exit_without_teardown

    atexit.register(lambda: Path(torn_down).write_text("teardown ran"))
    sys.stdout = open(written, "w")  # block-buffered: the text is still in memory at the exit
    print("last words")
    exit_without_teardown()
    raise AssertionError("exit_without_teardown returned in a child process")


def test_a_child_exits_without_teardown_with_its_output_flushed_and_the_main_process_never_does(tmp_path):
    from morphelites.parallel.pool import exit_without_teardown

    written, torn_down = tmp_path / "stdout.txt", tmp_path / "teardown.txt"
    proc = mp.get_context("spawn").Process(target=_write_then_exit_without_teardown, args=(str(written), str(torn_down)))
    proc.start()
    proc.join(timeout=60)
    assert proc.exitcode == 0
    assert written.read_text() == "last words\n", "stdout was flushed before the exit"
    assert not torn_down.exists(), "the interpreter's teardown (atexit) was skipped"
    exit_without_teardown()  # in the main process: returns, and this test goes on


def test_a_worker_process_sees_exactly_the_published_version():
    weights = SharedWeights.create(1000)
    try:
        assert weights.version == 0
        for version in (1, 2, 7):
            flat = np.full(1000, float(version), dtype=np.float32)
            weights.publish(flat, version)
            ctx = mp.get_context("spawn")
            queue = ctx.Queue()
            proc = ctx.Process(target=_read_weights, args=(weights.name, 1000, queue))
            proc.start()
            seen_version, total, head = queue.get(timeout=60)
            proc.join(timeout=30)
            assert seen_version == version and total == 1000.0 * version and head == [float(version)] * 3
        with pytest.raises(ValueError, match="non-finite"):
            weights.publish(np.full(1000, np.nan, dtype=np.float32), 8)
        assert weights.read()[1] == 7, "a refused publish leaves the previous version"
        # a strided view (found in review: the checksum raised on it after the sequence went odd,
        # and every reader then timed out on a write that never ended)
        strided = np.arange(2000, dtype=np.float32)[::2]
        weights.publish(strided, 9)
        flat, version = weights.read(timeout_s=1.0)
        assert version == 9 and np.array_equal(flat, strided)
    finally:
        weights.close()
        weights.close()


def test_a_weight_read_never_keeps_a_copy_that_does_not_match_what_was_published():
    """Where stores may become visible out of order (ARM, POWER), a reader can see the even
    sequence of a finished write before all its weights. Simulated here by changing a weight in
    shared memory behind the writer's back: the reader must wait, not keep the mixture."""
    import threading

    weights = SharedWeights.create(1000)
    try:
        flat, version = weights.read(timeout_s=0.05)
        assert version == 0 and not flat.any(), "before the first publish: version 0, zeros"
        published = np.linspace(-1, 1, 1000, dtype=np.float32)
        weights.publish(published, 3)
        weights._weights[500] = 99.0  # a store of an older write, seen late
        with pytest.raises(TimeoutError, match="checksum"):
            weights.read(timeout_s=0.05)
        threading.Timer(0.05, lambda: weights._weights.__setitem__(500, published[500])).start()  # now visible
        flat, version = weights.read(timeout_s=5.0)
        assert version == 3 and np.array_equal(flat, published)
        weights._header[1] = 2  # the version word of an older write, seen late: covered too
        with pytest.raises(TimeoutError, match="checksum"):
            weights.read(timeout_s=0.05)
    finally:
        weights.close()


def _layout(workers: int = 2, slots: int = 2) -> BufferLayout:
    return BufferLayout(workers=workers, slots_per_worker=slots, steps=5, envs=2, obs_dim=4, act_dim=3)


def _write_segment(name: str, layout: BufferLayout, worker: int, version: int, fill: float) -> None:
    buffer = SharedExperienceBuffer.attach(name, layout)
    slot = buffer.acquire(worker, timeout_s=5.0)
    slot.obs[:] = fill
    slot.rewards[:] = fill
    buffer.commit(slot, version=version, individual_id=42, worker=worker)
    buffer.close()


def test_segments_carry_their_version_and_the_buffer_is_bounded():
    layout = _layout()
    buffer = SharedExperienceBuffer.create(layout)
    try:
        ctx = mp.get_context("spawn")
        for version, fill in ((3, 1.5), (5, 2.5)):
            proc = ctx.Process(target=_write_segment, args=(buffer.name, layout, 1, version, fill))
            proc.start()
            proc.join(timeout=60)
            assert proc.exitcode == 0
            buffer.reset_worker(1)  # as the supervisor does before a replacement starts
        ready = buffer.ready_slots()
        assert [(s.version, s.worker, s.individual_id, s.incarnation) for s in ready] == [(3, 1, 42, 0), (5, 1, 42, 1)]
        taken = [buffer.take(slot) for slot in ready]
        assert [(t.version, t.worker, t.individual_id, t.incarnation) for t in taken] == [(3, 1, 42, 0), (5, 1, 42, 1)]
        assert buffer.incarnation(1) == 2 and buffer.incarnation(0) == 0
        assert taken[0].arrays["obs"].mean() == 1.5 and taken[1].arrays["rewards"].mean() == 2.5
        occupancy = buffer.occupancy()
        assert occupancy["buffer_transitions"] == 20 and occupancy["buffer_capacity"] == 40
        # worker 1's ring (2 slots) is full: a third write has to wait
        assert buffer.acquire(1, timeout_s=0.05, should_stop=lambda: True) is None
        assert buffer.occupancy()["producer_waits"] == 1
        buffer.release(ready[0])
        buffer.release(ready[1], dropped_for_lag=True)
        occupancy = buffer.occupancy()
        assert occupancy["transitions_consumed"] == 10 and occupancy["segments_dropped_lag"] == 1
        assert occupancy["buffer_transitions"] == 0
    finally:
        buffer.close()


def test_a_slot_a_killed_learner_left_half_released_is_freed_by_the_next_learner():
    """Seen in review: release() clears the checksum, then marks the slot EMPTY; a learner killed
    between the two left it READY with a checksum no copy matches, and every later learner's take
    stopped at it for good (workers waiting at a full buffer, no update ever again)."""
    from morphelites.parallel.buffer import _CHECKSUM

    layout = _layout()
    buffer = SharedExperienceBuffer.create(layout)
    try:
        ctx = mp.get_context("spawn")
        proc = ctx.Process(target=_write_numbered_segments, args=(buffer.name, layout, 0, 2))
        proc.start()
        proc.join(timeout=60)
        first, second = buffer.ready_slots()
        assert buffer.take(first) is not None
        first.header[_CHECKSUM] = 0  # release() cut short after its first store
        assert buffer.take(first) is None and len(buffer.ready_slots()) == 2, "stuck: never takeable"
        assert buffer.finish_torn_releases() == 1
        assert buffer.ready_slots() == [second] and buffer.take(second) is not None, "the good segment stays"
    finally:
        buffer.close()


def _write_numbered_segments(name: str, layout: BufferLayout, worker: int, count: int) -> None:
    """Commit segments 1..count of ``worker`` as fast as the ring lets it (no simulation between)."""
    buffer = SharedExperienceBuffer.attach(name, layout)
    for number in range(1, count + 1):
        slot = buffer.acquire(worker, timeout_s=100.0, max_ready=3 * layout.transitions_per_segment)
        for array in SEGMENT_ARRAYS:
            getattr(slot, array)[:] = number
        buffer.commit(slot, version=number, individual_id=worker, worker=worker)
    buffer.close()


def test_each_workers_segments_are_taken_in_the_order_it_committed_them():
    """Two processes commit as fast as they can while this one takes: the learner's reward
    statistics follow each worker's stream in commit order. (Before, a scan of the ring during
    which a worker committed twice could take its later segment first; half the runs of this test
    caught that. With the fix it cannot happen, so the test cannot fail by chance.)"""
    layout = BufferLayout.for_buffer_size(2000, 2, 25, 4, 54, 6)
    buffer, count = SharedExperienceBuffer.create(layout), 3000
    ctx = mp.get_context("spawn")
    writers = [ctx.Process(target=_write_numbered_segments, args=(buffer.name, layout, w, count)) for w in (0, 1)]
    try:
        for writer in writers:
            writer.start()
        taken: dict[int, list[int]] = {0: [], 1: []}
        deadline = time.monotonic() + 120
        while sum(map(len, taken.values())) < 2 * count and time.monotonic() < deadline:
            for slot in buffer.ready_slots():
                segment = buffer.take(slot)
                if segment is None:  # not wholly visible yet: later ones wait too
                    break
                assert all(np.all(array == segment.version) for array in segment.arrays.values()), "a whole segment"
                taken[segment.worker].append(segment.version)
                buffer.release(slot)
        assert taken == {0: list(range(1, count + 1)), 1: list(range(1, count + 1))}
    finally:
        for writer in writers:
            writer.join(timeout=10)
            if writer.is_alive():
                writer.kill()
        buffer.close()


@pytest.mark.faults  # a Reliability row (README): `make test-faults` runs it too
def test_a_half_written_segment_is_never_read_and_is_cleared_for_the_replacement():
    layout = _layout()
    buffer = SharedExperienceBuffer.create(layout)
    try:
        slot = buffer.acquire(0, timeout_s=1.0)  # a worker that dies before commit()
        slot.obs[:] = 9.0
        assert buffer.ready_slots() == []
        assert buffer.reset_worker(0) == 1
        assert buffer.acquire(0, timeout_s=1.0) is not None
    finally:
        buffer.close()


def test_a_segment_is_not_taken_until_its_data_matches_the_checksum_of_its_commit():
    """The READY flag seen before the data it announces (stores reordered, as on ARM): the learner
    must not copy half of it. Simulated by changing the data behind the committed slot's back."""
    layout = _layout()
    buffer = SharedExperienceBuffer.create(layout)
    try:
        slot = buffer.acquire(0, timeout_s=1.0)
        slot.obs[:] = np.arange(slot.obs.size, dtype=np.float32).reshape(slot.obs.shape)
        slot.rewards[:] = 0.5
        buffer.commit(slot, version=4, individual_id=7, worker=0)
        written = slot.obs.copy()
        slot.obs[2, 1, 3] = 0.0  # a store of the commit not yet visible to the learner
        assert buffer.take(slot) is None
        slot.header[1] = 3  # the version word too is covered
        slot.obs[2, 1, 3] = written[2, 1, 3]
        assert buffer.take(slot) is None
        slot.header[1] = 4
        taken = buffer.take(slot)
        assert taken is not None and (taken.version, taken.individual_id, taken.worker) == (4, 7, 0)
        assert np.array_equal(taken.arrays["obs"], written) and np.all(taken.arrays["rewards"] == 0.5)
        assert buffer.ready_slots() == [slot], "taking copies; only release gives the slot back"
    finally:
        buffer.close()


def test_a_reused_slot_whose_new_data_is_not_yet_visible_is_not_taken_as_its_old_segment():
    """READY seen before any of the next segment's data (stores reordered, as on ARM): the slot
    still holds the segment taken from it before, whose checksum matched it; it must not be taken
    again (and the new one lost)."""
    layout = _layout()
    buffer = SharedExperienceBuffer.create(layout)
    try:
        slot = buffer.acquire(0, timeout_s=1.0)
        slot.rewards[:] = 0.5
        buffer.commit(slot, version=4, individual_id=7, worker=0)
        assert buffer.take(slot) is not None
        buffer.release(slot)
        assert buffer.acquire(0, timeout_s=1.0) is slot
        slot.header[0] = 2  # the worker's READY, seen before its new data, version and checksum
        assert buffer.take(slot) is None
    finally:
        buffer.close()


def _learner(tmp_path: Path, sync: bool = False, max_lag: int = 2, value_targets: str = "current_critic",
             ppo: dict | None = None, workers: int = 2, segments_per_version: int = 1, training: dict | None = None):  # fmt: skip
    from morphelites.parallel.learner import LearnerOptions, SharedPPOTrainer
    from morphelites.parallel.shared_worker import SharedHandles
    from morphelites.policy_numpy import reach_policy_spec

    sections = {**TINY, "training": {**TINY["training"], "value_targets": value_targets, **(training or {})},
                "ppo": ppo or TINY["ppo"]}
    settings = Settings.from_dict(sections).validate()
    spec = reach_policy_spec(6, hidden_dim=32)
    layout = BufferLayout(workers=workers, slots_per_worker=4, steps=25, envs=4, obs_dim=spec.obs_dim, act_dim=spec.action_dim)
    weights, buffer = SharedWeights.create(spec.flat_size), SharedExperienceBuffer.create(layout)
    handles = SharedHandles(weights.name, spec.flat_size, buffer.name, layout, spec.to_dict(), sync,
                            segments_per_version=segments_per_version)  # fmt: skip
    learner = SharedPPOTrainer(LearnerOptions(settings, handles, str(tmp_path), resume=False, max_policy_lag=max_lag))
    return learner, weights, buffer, handles, settings


def _collect(handles, settings, worker: int, body_links: int = 3):
    from morphelites.parallel.shared_worker import MultiProcessPPOWorker

    worker_obj = MultiProcessPPOWorker(worker, handles)
    body = Morphology(body_links, [0.2] * body_links)
    individual = Individual(worker, (0.5,) * 7, body)
    small = Settings.from_dict({**TINY, "evolution": {**TINY["evolution"], "training_steps_per_individual": 200}})
    return worker_obj, worker_obj.train(individual, small)


def test_learner_trains_on_worker_segments_publishes_versions_and_drops_stale_ones(tmp_path):
    learner, weights, buffer, handles, settings = _learner(tmp_path)
    try:
        assert weights.version == 1
        # published before the optimiser is made (its first one imports torch._dynamo, ~1.6 s),
        # so that workers do not wait for that import
        assert learner.updater._optimizer is None
        worker, result = _collect(handles, settings, worker=0)
        assert result.training_env_steps == 200 and result.evaluation["policy_version"] == 1
        assert learner.drain() == 2 and learner.pending_transitions == 200
        assert not learner.ready_to_update(active_workers=1), "min_batch_size is 400"
        _collect(handles, settings, worker=1)
        learner.drain()
        before = weights.read()[0]
        stats = learner.update()
        assert weights.version == 2 and not np.array_equal(weights.read()[0], before)
        assert stats["batch_transitions"] == 400 and stats["batch_mean_lag"] == 0
        # new segments are acted by version 2; three more versions on, their lag 3 exceeds the max of 2
        _collect(handles, settings, worker=0)
        learner.version += 3
        assert learner.drain() == 0
        assert buffer.occupancy()["segments_dropped_lag"] == 2
        assert learner.stats()["max_policy_lag"] == 0
        assert learner.checkpoint() is not None
        worker.weights.close(), worker.buffer.close()
    finally:
        learner.close()
        buffer.close()
        weights.close()


@contextlib.contextmanager
def _worker_beside_a_learner(tmp_path: Path, wait_s: float | None = None, **learner_args: Any) -> Iterator[tuple[Any, Any]]:
    """Worker 0 (a MultiProcessPPOWorker, waiting ``wait_s`` for first weights where given) on the
    shared state of :func:`_learner`; yields (worker, weights) and closes all of it at the end."""
    import dataclasses

    from morphelites.parallel.shared_worker import MultiProcessPPOWorker

    learner, weights, buffer, handles, _ = _learner(tmp_path, **learner_args)
    worker = None
    try:
        worker = MultiProcessPPOWorker(0, handles if wait_s is None else dataclasses.replace(handles, first_weights_wait_s=wait_s))
        yield worker, weights
    finally:
        if worker is not None:
            worker.weights.close()
            worker.buffer.close()
        learner.close()
        buffer.close()
        weights.close()


def _commit_rewards(buffer: SharedExperienceBuffer, worker: int, individual_id: int, version: int) -> None:
    """A segment of reward 1 at every step, no episode end, from ``worker`` on body ``individual_id``."""
    slot = buffer.acquire(worker, timeout_s=1.0)
    slot.obs[:], slot.rewards[:], slot.dones[:], slot.bootstrap[:] = 0.0, 1.0, 0.0, 0.0
    buffer.commit(slot, version=version, individual_id=individual_id, worker=worker)


@pytest.mark.faults  # a Reliability row (README): `make test-faults` runs it too
def test_the_learner_takes_a_batch_and_leaves_the_rest_in_the_ring(tmp_path):
    """Memory stays within buffer_size when the learner is slower (a Reliability row): what the
    learner copies out of the ring stops at a batch, so its pending copies do not grow with what
    the workers wrote; the rest waits, READY, in the ring's fixed slots."""
    learner, weights, buffer, _, _ = _learner(tmp_path)
    try:
        for worker in (0, 1, 0, 1, 0, 1):  # 600 transitions READY, min_batch_size 400
            _commit_rewards(buffer, worker, individual_id=worker, version=1)
        assert learner.drain() == 4 and learner.pending_transitions == 400
        assert buffer.occupancy()["buffer_transitions"] == 200
        assert learner.drain() == 0 and learner.pending_transitions == 400, "a full batch takes no more"
        learner.update()
        assert learner.drain() == 2 and buffer.occupancy()["buffer_transitions"] == 0
    finally:
        learner.close()
        buffer.close()
        weights.close()


@pytest.mark.faults  # a Reliability row (README): `make test-faults` runs it too
def test_a_restarted_learner_drops_the_experience_of_weights_it_did_not_publish(tmp_path):
    """Seen in review (session 37): a learner restored from its checkpoint at version C, published
    anew past the last version P its predecessor published, counted data of version P as 1 version
    old, though it lies on the updates after C, which were lost. It now takes only data of weights
    it published; the rest (at most a buffer) is dropped and counted."""
    from morphelites.parallel.learner import LearnerOptions, SharedPPOTrainer

    first, weights, buffer, handles, settings = _learner(tmp_path, max_lag=8)
    restarted = None
    try:
        first.version = 3
        assert first.checkpoint() is not None  # C = 3
        first.version = 8
        first._publish(first.model.flat_weights())  # P = 8, published after the checkpoint
        first.close()
        _commit_rewards(buffer, 0, individual_id=7, version=8)  # acted by the lost version P
        _commit_rewards(buffer, 1, individual_id=8, version=3)  # acted by the weights restored
        restarted = SharedPPOTrainer(LearnerOptions(settings, handles, str(tmp_path), resume=True, max_policy_lag=8))
        assert (restarted.restored_version, restarted.version) == (3, 9)
        _commit_rewards(buffer, 0, individual_id=7, version=9)  # acted by the restored weights, published as 9
        assert restarted.drain() == 1 and buffer.occupancy()["segments_dropped_lag"] == 2
        assert [(segment["individual"], segment["lag"]) for segment in restarted.pending] == [(7, 0)]
    finally:
        if restarted is not None:
            restarted.close()
        buffer.close()
        weights.close()


def test_a_frozen_learner_trains_on_every_whole_batch_waiting_then_keeps_its_weights(tmp_path):
    """learner_main with its freeze event set (the final re-evaluation): it trains on the two whole
    batches of 200 waiting (5 segments of 100), checkpoints, reports ``frozen`` with the 100
    transitions left over, and then neither takes nor trains on what arrives later."""
    import multiprocessing as mp

    from morphelites.parallel.learner import LearnerOptions, learner_main
    from morphelites.parallel.supervisor import SharedFlag

    learner, weights, buffer, handles, settings = _learner(tmp_path, max_lag=8, training={"min_batch_size": 200})
    learner.close()  # only its shared state is needed: the learner under test runs in its own process
    ctx = mp.get_context("spawn")
    receive, send = ctx.Pipe(duplex=False)
    stop, freeze, active = SharedFlag(ctx), SharedFlag(ctx), ctx.Value("i", 0, lock=False)
    options = LearnerOptions(settings, handles, str(tmp_path), resume=False, max_policy_lag=8)
    process = ctx.Process(target=learner_main, args=(options, send, stop, active, None, None, freeze), daemon=True)

    def next_event(kind: str) -> dict:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            if receive.poll(0.1):
                message = receive.recv()
                if message["event"] == kind:
                    return message
        raise AssertionError(f"no {kind!r} event from the learner")

    try:
        first = weights.version + 1  # the learner publishes past the version the one in _learner published
        for worker, individual in ((0, 0), (0, 0), (0, 0), (1, 1), (1, 1)):  # acted by the weights it publishes first
            _commit_rewards(buffer, worker, individual, version=first)
        freeze.set()
        process.start()
        frozen = next_event("frozen")
        assert (frozen["version"], frozen["updates"], frozen["untrained_transitions"]) == (first + 2, 2, 100)
        assert weights.version == first + 2 and sorted(tmp_path.glob("learner-*.pkl")), "published and checkpointed"
        for worker, individual in ((0, 2), (1, 3), (1, 3)):
            _commit_rewards(buffer, worker, individual, version=first + 2)
        time.sleep(1.0)
        assert weights.version == first + 2 and len(buffer.ready_slots()) == 3, "nothing taken or trained on after the freeze"
        idle = next_event("idle")  # a report while frozen, a second or more before the last one
        stop.set()
        stopped = next_event("stopped")
        assert stopped["policy_updates"] == 2
        # Found in review: the frozen time (the final round, the shutdown) counted as idle time in
        # learner_utilisation; the learner's active time ends when it freezes.
        assert stopped["learner_active_s"] == idle["learner_active_s"] > 0
        assert stopped["learner_utilisation"] == stopped["learner_busy_s"] / stopped["learner_active_s"]
        process.join(timeout=30)
        assert process.exitcode == 0
    finally:
        if process.is_alive():
            process.kill()
        buffer.close()
        weights.close()


@pytest.mark.parametrize("case", ["new body", "restarted worker", "dropped segment"])
def test_reward_scaling_streams_restart_with_a_new_body_and_run_on_through_a_dropped_segment(tmp_path, case):
    # The running discounted return of reward 1 is 1, 1 + g, 1 + g + g^2, ... from a stream's start.
    learner, weights, buffer, _, settings = _learner(tmp_path, max_lag=2)
    try:
        T = buffer.layout.steps
        if case == "new body":  # two bodies in turn on worker 0: two streams of T steps each
            _commit_rewards(buffer, 0, individual_id=7, version=1)
            _commit_rewards(buffer, 0, individual_id=8, version=1)
            steps = np.concatenate([np.arange(T), np.arange(T)])
        elif case == "restarted worker":  # worker 0 died; its replacement trains the same body from a reset
            _commit_rewards(buffer, 0, individual_id=7, version=1)
            buffer.reset_worker(0)
            _commit_rewards(buffer, 0, individual_id=7, version=1)
            steps = np.concatenate([np.arange(T), np.arange(T)])
        else:  # one body; its first segment is 3 versions old (dropped), the second is not: one stream of 2T
            _commit_rewards(buffer, 0, individual_id=7, version=1)
            _commit_rewards(buffer, 0, individual_id=7, version=4)
            learner.version = 4
            steps = np.arange(2 * T)
        learner.drain()
        learner.update()
        assert buffer.occupancy()["segments_dropped_lag"] == (case == "dropped segment")
        gamma = settings.ppo.gamma
        expected = (1 - gamma ** (steps + 1)) / (1 - gamma)
        assert learner.return_rms.mean == pytest.approx(expected.mean(), rel=1e-3)
        assert learner.return_rms.var == pytest.approx(expected.var(), rel=1e-3)
    finally:
        learner.close()
        buffer.close()
        weights.close()


@pytest.mark.parametrize("value_targets", ["current_critic", "vtrace", "behaviour"])
def test_a_time_limit_truncation_is_bootstrapped_by_the_critic_the_targets_come_from(tmp_path, value_targets):
    # Env 1 hits the time limit at step 5; the acting critic (versions ago) valued its final
    # observation at 123. Current-critic GAE and V-trace bootstrap it with the critic being trained.
    import torch

    learner, weights, buffer, _, settings = _learner(tmp_path, value_targets=value_targets)
    try:
        rng = np.random.default_rng(0)
        slot = buffer.acquire(0, timeout_s=1.0)
        slot.obs[:] = rng.normal(size=slot.obs.shape)
        slot.actions[:] = rng.normal(size=slot.actions.shape) * 0.1
        T, K, D = slot.obs.shape
        with torch.no_grad():  # behaviour = current policy: V-trace's importance weights are 1
            logp, _, _ = learner.model.evaluate_actions(torch.as_tensor(slot.obs.reshape(T * K, D)),
                                                        torch.as_tensor(slot.actions.reshape(T * K, -1)))  # fmt: skip
        slot.logprobs[:] = logp.numpy().reshape(T, K)
        slot.rewards[:], slot.dones[:], slot.truncated[:], slot.final_obs[:], slot.bootstrap[:] = 0.0, 0.0, 0.0, 0.0, 0.0
        slot.last_obs[:] = rng.normal(size=slot.last_obs.shape)
        final = rng.normal(size=D).astype(np.float32)
        slot.dones[5, 1], slot.truncated[5, 1], slot.final_obs[5, 1], slot.bootstrap[5, 1] = 1.0, 1.0, final, 123.0
        buffer.commit(slot, version=1, individual_id=3, worker=0)
        learner.drain()
        _, _, returns = learner.targets(learner.pending[0])
        with torch.no_grad():
            current = float(learner.model.value(torch.as_tensor(final[None]))[0])
        expected = settings.ppo.gamma * (123.0 if value_targets == "behaviour" else current)
        assert returns[5, 1] == pytest.approx(expected, rel=1e-5)
    finally:
        learner.close()
        buffer.close()
        weights.close()


@pytest.mark.parametrize("join", [True, False])
def test_joined_segments_give_one_advantage_estimate_across_the_segment_end(tmp_path, join):
    # A worker's body: 200 env steps = two segments of T=25 steps of K=4 envs, one stream. Joined,
    # the first segment's advantages run on into the second (GAE over 50 steps, bootstrapped once);
    # not joined, each segment is bootstrapped at its own end. The behaviour critic's values make
    # the expected figures computable from the segments alone.
    from morphelites.ppo import compute_gae

    learner, weights, buffer, handles, settings = _learner(
        tmp_path, value_targets="behaviour", ppo={**TINY["ppo"], "normalize_reward": False},
        training={"join_segments": join})  # fmt: skip
    batches = []
    learner.updater.update = lambda batch: batches.append(batch) or {}
    try:
        worker, _ = _collect(handles, settings, worker=0)
        assert learner.drain() == 2
        first, second = learner.pending
        learner.update()
        advantages = batches[0].advantages
        assert advantages.shape == (200,)

        def gae(*segments):
            cat = {name: np.concatenate([seg[name] for seg in segments]) for name in ("rewards", "bootstrap", "values", "dones")}
            return compute_gae(cat["rewards"] + settings.ppo.gamma * cat["bootstrap"], cat["values"], cat["dones"],
                               segments[-1]["last_values"], settings.ppo.gamma, settings.ppo.gae_lambda)[0]  # fmt: skip

        joined = gae(first, second).reshape(-1)
        apart = np.concatenate([gae(first).reshape(-1), gae(second).reshape(-1)])
        expected, other = (joined, apart) if join else (apart, joined)
        np.testing.assert_allclose(advantages, expected, rtol=1e-5, atol=1e-6)
        assert np.allclose(joined[100:], apart[100:]), "the second segment ends the stream either way"
        assert not np.allclose(advantages[:100], other[:100], atol=1e-4), "the first segment's end must matter"
        worker.weights.close(), worker.buffer.close()
    finally:
        learner.close()
        buffer.close()
        weights.close()


def test_sync_mode_updates_on_one_segment_from_every_busy_worker_and_drops_none(tmp_path):
    # 6 workers x 100 transitions is more than min_batch_size (400): the update must still wait
    # for every busy worker and take all six segments, or those left behind are dropped for lag.
    learner, weights, buffer, handles, _ = _learner(tmp_path, sync=True, max_lag=0, workers=6)
    try:
        for worker in range(5):
            _write_segment(buffer.name, handles.layout, worker, version=1, fill=0.1 * (worker + 1))
        learner.drain()
        assert learner.pending_transitions == 500
        assert not learner.ready_to_update(active_workers=6), "worker 5 is busy and has not delivered"
        _write_segment(buffer.name, handles.layout, 5, version=1, fill=0.6)
        learner.drain()
        assert learner.ready_to_update(active_workers=6)
        stats = learner.update()
        assert stats["batch_transitions"] == 600 and stats["batch_max_lag"] == 0 and weights.version == 2
        assert learner.drain() == 0 and buffer.occupancy()["segments_dropped_lag"] == 0
    finally:
        learner.close()
        buffer.close()
        weights.close()


def test_a_sync_learner_trains_on_the_current_version_only_whatever_max_policy_lag_says(tmp_path):
    # training.max_policy_lag is 4 by default; in sync mode a segment a version old is still dropped.
    learner, weights, buffer, handles, _ = _learner(tmp_path, sync=True, max_lag=4, workers=2)
    try:
        assert learner.lag_limit == 0
        _write_segment(buffer.name, handles.layout, 0, version=1, fill=0.1)
        learner.version += 1  # an update was made after worker 0 acted
        _write_segment(buffer.name, handles.layout, 1, version=2, fill=0.2)
        assert learner.drain() == 1 and [seg["worker"] for seg in learner.pending] == [1]
        assert buffer.occupancy()["segments_dropped_lag"] == 1 and learner.stats()["max_policy_lag"] == 0
    finally:
        learner.close()
        buffer.close()
        weights.close()


@pytest.mark.parametrize(("min_batch", "workers", "segment", "expected"),
                         [(1000, 2, 100, 5), (1000, 3, 100, 4), (1000, 10, 100, 1), (1000, 16, 100, 1),
                          (400, 1, 100, 4), (100, 1, 100, 1), (101, 1, 100, 2)])  # fmt: skip
def test_sync_workers_write_the_fewest_segments_per_version_that_fill_a_batch(min_batch, workers, segment, expected):
    from morphelites.parallel.shared_worker import sync_segments_per_version

    assert sync_segments_per_version(min_batch, workers, segment) == expected
    assert expected * workers * segment >= min_batch
    assert expected == 1 or (expected - 1) * workers * segment < min_batch


def test_sync_segments_per_version_rejects_sizes_below_one():
    from morphelites.parallel.shared_worker import sync_segments_per_version

    with pytest.raises(ValueError, match="at least 1"):
        sync_segments_per_version(1000, 0, 100)


def test_a_sync_shared_run_takes_min_batch_size_per_update_at_the_default_update_interval(tmp_path):
    from morphelites.parallel.supervisor import create_shared_state

    settings = Settings.from_dict({"training": {"sync": True}}).validate()  # min_batch 1000, interval 100
    weights, buffer, handles = create_shared_state(settings, workers=2, sync=True, max_policy_lag=0)
    try:
        segment = handles.layout.steps * handles.layout.envs
        assert segment == 100 and handles.segments_per_version == 5
    finally:
        buffer.close()
        weights.close()
    weights, buffer, handles = create_shared_state(settings, workers=2, sync=False, max_policy_lag=4)
    try:
        assert handles.segments_per_version == 1, "async workers never wait for a version"
    finally:
        buffer.close()
        weights.close()


def test_sync_update_waits_for_every_busy_workers_quota_of_segments(tmp_path):
    learner, weights, buffer, handles, _ = _learner(tmp_path, sync=True, max_lag=0, workers=2, segments_per_version=2)
    try:
        _write_segment(buffer.name, handles.layout, 0, version=1, fill=0.1)
        _write_segment(buffer.name, handles.layout, 1, version=1, fill=0.2)
        learner.drain()
        assert not learner.ready_to_update(active_workers=2), "each worker owes a second segment"
        assert not learner.ready_to_update(active_workers=1), "no worker has delivered its quota yet"
        _write_segment(buffer.name, handles.layout, 0, version=1, fill=0.3)
        learner.drain()
        assert not learner.ready_to_update(active_workers=2), "worker 1 is busy and owes a segment"
        assert learner.ready_to_update(active_workers=1), "worker 1 went idle part-way: no more will come from it"
        _write_segment(buffer.name, handles.layout, 1, version=1, fill=0.4)
        learner.drain()
        assert learner.ready_to_update(active_workers=2)
        stats = learner.update()
        assert stats["batch_transitions"] == 400 and stats["batch_max_lag"] == 0 and weights.version == 2
    finally:
        learner.close()
        buffer.close()
        weights.close()


@pytest.mark.faults  # a Reliability row (README): `make test-faults` runs it too
@pytest.mark.parametrize("dead_wrote", [1, 2])
def test_a_sync_update_waits_for_the_full_quota_of_a_worker_restarted_part_way_through_one(tmp_path, dead_wrote):
    # Worker 0 wrote part (1) or all (2) of its quota of two and died; its replacement (same index)
    # starts a quota of its own. Counting the dead one's segments, towards the replacement's quota or
    # as a quota done, would update before the replacement delivered and leave its segment in
    # progress a version old, dropped for lag.
    learner, weights, buffer, handles, _ = _learner(tmp_path, sync=True, max_lag=0, workers=2, segments_per_version=2)
    try:
        for k in range(dead_wrote):
            _write_segment(buffer.name, handles.layout, 0, version=1, fill=0.1 + k)
        buffer.reset_worker(0)  # the supervisor, after worker 0 died and before its replacement starts
        _write_segment(buffer.name, handles.layout, 1, version=1, fill=0.2)
        _write_segment(buffer.name, handles.layout, 1, version=1, fill=0.3)
        learner.drain()
        assert not learner.ready_to_update(active_workers=2), "the replacement has a body and has delivered nothing"
        assert learner.ready_to_update(active_workers=1), "with the body issued elsewhere, worker 1 was all there was"
        _write_segment(buffer.name, handles.layout, 0, version=1, fill=0.4)  # the replacement
        learner.drain()
        assert not learner.ready_to_update(active_workers=2), "the replacement owes a second segment"
        _write_segment(buffer.name, handles.layout, 0, version=1, fill=0.5)
        learner.drain()
        assert learner.ready_to_update(active_workers=2)
        stats = learner.update()
        assert stats["batch_transitions"] == 100 * (dead_wrote + 4), "the dead worker's segments are trained on too"
        assert stats["batch_max_lag"] == 0 and weights.version == 2
        assert buffer.occupancy()["segments_dropped_lag"] == 0
    finally:
        learner.close()
        buffer.close()
        weights.close()


def test_a_sync_update_decided_while_a_worker_joins_is_withdrawn_until_it_delivers(tmp_path):
    # The learner marks the version closing, then counts the busy workers again: one more than
    # at the decision means a worker joined that it has not waited for.
    learner, weights, buffer, handles, _ = _learner(tmp_path, sync=True, max_lag=0, workers=2)
    try:
        _write_segment(buffer.name, handles.layout, 0, version=1, fill=0.1)
        learner.drain()
        counts = iter([1, 2])
        assert not learner.decide_update(lambda: next(counts)), "worker 1 joined between the two counts"
        assert weights.closing == 0, "the mark is withdrawn: worker 1 may act with version 1"
        assert learner.decide_update(lambda: 1) and weights.closing == 1, "nobody joined: decided, version 1 marked"
        learner.update()
        assert weights.version == 2 and weights.closing == 1, "the stale mark names a retired version"
    finally:
        learner.close()
        buffer.close()
        weights.close()


@pytest.mark.timeout(120)
def test_a_worker_joining_as_a_sync_update_is_decided_acts_with_the_next_version_and_loses_nothing(tmp_path):
    # The race sync mode had: the learner decides an update on worker 0's segments alone, and
    # worker 1 is handed a body in that moment. Worker 1 sees version 1 marked closing and waits
    # for version 2 instead of writing a segment of version 1, which would be dropped.
    import threading

    from morphelites.parallel.shared_worker import MultiProcessPPOWorker

    learner, weights, buffer, handles, _ = _learner(tmp_path, sync=True, max_lag=0, workers=2)
    worker = MultiProcessPPOWorker(1, handles)
    one_segment = Settings.from_dict({**TINY, "evolution": {**TINY["evolution"], "training_steps_per_individual": 100}})
    results: list = []
    try:
        _write_segment(buffer.name, handles.layout, 0, version=1, fill=0.1)
        learner.drain()
        assert learner.decide_update(lambda: 1), "worker 1 was not busy when counted"
        individual = Individual(7, (0.5,) * 7, Morphology(3, [0.2] * 3))
        thread = threading.Thread(target=lambda: results.append(worker.train(individual, one_segment)))
        thread.start()
        time.sleep(0.5)
        assert buffer.ready_slots() == [] and thread.is_alive(), "worker 1 waits rather than act with version 1"
        learner.update()
        deadline = time.monotonic() + 60
        while not buffer.ready_slots() and time.monotonic() < deadline:
            time.sleep(0.01)
        assert [(s.worker, s.version) for s in buffer.ready_slots()] == [(1, 2)]
        learner.drain()
        assert learner.decide_update(lambda: 1)
        learner.update()  # worker 1 waits for it after its quota, then evaluates
        thread.join(timeout=60)
        assert results and results[0].training_env_steps == 100
        assert buffer.occupancy()["segments_dropped_lag"] == 0 and learner.stats()["max_policy_lag"] == 0
    finally:
        worker.weights.close(), worker.buffer.close()
        learner.close()
        buffer.close()
        weights.close()


@pytest.mark.timeout(120)
def test_a_sync_worker_writes_its_quota_with_one_version_then_waits_for_the_next(tmp_path):
    # The worker runs the learner after each segment (as the serial backend does). With a quota of
    # 2 it must not wait after its first segment (nothing would publish: it would hang), and after
    # the second it goes on only because the update published version 2.
    from morphelites.parallel.shared_worker import MultiProcessPPOWorker

    learner, weights, buffer, handles, _ = _learner(tmp_path, sync=True, max_lag=0, workers=1, segments_per_version=2)
    versions_seen: list[int] = []

    def learn() -> None:
        learner.drain()
        versions_seen.append(worker.version)
        if learner.ready_to_update(active_workers=1):
            learner.update()

    worker = MultiProcessPPOWorker(0, handles, after_segment=learn)
    try:
        body = Morphology(3, [0.2] * 3)
        small = Settings.from_dict({**TINY, "evolution": {**TINY["evolution"], "training_steps_per_individual": 400}})
        result = worker.train(Individual(0, (0.5,) * 7, body), small)
        assert versions_seen == [1, 1, 2, 2], "two segments with each version"
        assert learner.updates == 2 and learner.stats()["max_policy_lag"] == 0
        assert result.training_env_steps == 400 and result.evaluation["policy_version"] == 3
    finally:
        worker.weights.close(), worker.buffer.close()
        learner.close()
        buffer.close()
        weights.close()


def test_sync_updates_wait_for_training_workers_only_and_count_one_until_the_poll_after_its_result(tmp_path):
    # A worker evaluating elites writes no segments: a sync update must not wait for it (training
    # workers would stall for the whole re-evaluation round). A training worker is counted from
    # before its task is sent until the poll after its result: between the two the trainer gives
    # it its next body, and the learner waits for that body's segments.
    from morphelites.parallel.supervisor import SharedPPOSystem

    settings = Settings.from_dict({**TINY, "training": {**TINY["training"], "sync": True},
                                   "evolution": {**TINY["evolution"], "training_steps_per_individual": 200}}).validate()  # fmt: skip
    system = SharedPPOSystem(settings, 2, tmp_path, resume=False, sync=True, max_policy_lag=0)
    body = Morphology(3, [0.2] * 3)
    try:
        system.start()
        system.submit(0, Individual(0, (0.5,) * 7, body), kind="evaluate")
        assert system.busy_workers == 0, "evaluating: no segments will come from it"
        system.submit(1, Individual(1, (0.5,) * 7, body), kind="train")
        assert system.busy_workers == 1
        deadline, kinds = time.monotonic() + 120, []
        while len(kinds) < 2 and time.monotonic() < deadline:
            kinds += [(e.worker, e.kind) for e in system.poll(0.25)]
        assert sorted(kinds) == [(0, "done"), (1, "done")], kinds
        system.poll(0.0)
        assert system.busy_workers == 0, "no next task came: the learner no longer waits for it"
        system.submit(1, Individual(2, (0.5,) * 7, body), kind="train")
        deadline, events = time.monotonic() + 120, []
        while not events and time.monotonic() < deadline:
            events = system.poll(0.25)
        assert [e.kind for e in events] == ["done"] and system.busy_workers == 1, "still counted until the next poll"
        system.poll(0.0)
        assert system.busy_workers == 0
        assert system.buffer.occupancy()["segments_dropped_lag"] == 0
    finally:
        system.close(graceful=False)


def test_a_close_cut_short_by_a_second_ctrl_c_is_finished_by_the_next_call(tmp_path):
    """The trainer's second-Ctrl-C handler calls close() again after the KeyboardInterrupt cut the
    first call short; that call must still stop every process and free the shared memory."""
    from morphelites.parallel.supervisor import SharedPPOSystem

    settings = Settings.from_dict(TINY).validate()
    system = SharedPPOSystem(settings, 1, tmp_path, resume=False)
    blocks = _blocks_of(system)
    assert blocks <= _shared_memory_blocks()
    system.start()
    processes = [psutil.Process(pid) for pid in system.pids().values()]
    assert len(processes) == 2, "the learner and one worker"

    def interrupted_join(timeout=None):
        raise KeyboardInterrupt  # the second Ctrl-C, while close() waits for the learner

    system.learner.join = interrupted_join
    with pytest.raises(KeyboardInterrupt):
        system.close(graceful=False)
    del system.learner.join
    start = time.monotonic()
    system.close(graceful=False)
    assert time.monotonic() - start < 5, "the second call does not wait for the learner's final checkpoint"
    assert_gone(processes, timeout=2.0)
    assert not blocks & _shared_memory_blocks(), "the weights and the buffer are unlinked"
    system.close(graceful=False)  # and a third call does nothing


@pytest.mark.faults  # a Reliability row (README): `make test-faults` runs it too
def test_the_slots_a_dead_worker_was_writing_are_cleared_for_its_replacement(tmp_path):
    """A worker killed mid-write leaves its slot WRITING; the supervisor must free it when it
    replaces the worker, or that ring loses the slot for the rest of the run."""
    from morphelites.parallel.buffer import EMPTY
    from morphelites.parallel.supervisor import SharedPPOSystem

    system = SharedPPOSystem(Settings.from_dict(TINY).validate(), 1, tmp_path, resume=False)
    system.start()
    try:
        slot = system.buffer.acquire(0, timeout_s=1.0)  # as worker 0 does before it fills a slot (it is idle)
        assert slot is not None and slot.header[0] != EMPTY
        psutil.Process(system.pids()["worker 0"]).kill()
        deadline = time.monotonic() + 60
        events: list = []
        while not any(e.kind == "died" for e in events) and time.monotonic() < deadline:
            events += system.poll(0.2)
        assert any(e.kind == "died" for e in events), events
        assert all(s.header[0] == EMPTY for s in system.buffer._slots[0]), "its half-written slot is free again"
    finally:
        system.close(graceful=False)


def test_a_serial_close_cut_short_by_a_second_ctrl_c_is_finished_by_the_next_call(tmp_path):
    from morphelites.parallel.supervisor import SerialSharedBackend

    backend = SerialSharedBackend(Settings.from_dict(TINY).validate(), tmp_path, resume=False)
    blocks = _blocks_of(backend)
    assert len(blocks) == 2 and blocks <= _shared_memory_blocks()

    def interrupted_checkpoint(final=False):
        raise KeyboardInterrupt  # the second Ctrl-C, while close() writes the learner's final checkpoint

    backend._checkpoint = interrupted_checkpoint
    with pytest.raises(KeyboardInterrupt):
        backend.close()
    backend.close()
    assert not blocks & _shared_memory_blocks(), "the weights and the buffer are unlinked"


def _blocks_of(system) -> set[str]:
    """The /dev/shm names of a backend's weights and experience buffer (other processes' blocks,
    such as a benchmark's running beside the tests, are none of the test's business)."""
    return {system.weights.name.lstrip("/"), system.buffer.name.lstrip("/")}


def _title(process: psutil.Process) -> str:
    """The process's title, or "" once it has exited (it may be reaped between listing and asking)."""
    try:
        return " ".join(process.cmdline())
    except (psutil.NoSuchProcess, psutil.ZombieProcess):
        return ""


def _shared_memory_blocks() -> set[str]:
    """Names in /dev/shm, without multiprocessing's semaphores ("sem.*", which live with their objects)."""
    return {name for name in os.listdir("/dev/shm") if not name.startswith("sem.")}


@pytest.mark.parametrize(("ppo", "epochs"), [({"num_minibatches": 4}, 4), ({"num_minibatches": 4, "update_epochs": 7}, 7)])
def test_the_learner_makes_four_passes_over_a_batch_unless_told_otherwise(tmp_path, ppo, epochs):
    learner, weights, buffer, handles, settings = _learner(tmp_path, ppo=ppo)
    steps = []
    beat = learner.updater.on_minibatch
    learner.updater.on_minibatch = lambda: (steps.append(1), beat())
    stats = _check_one_update(learner, weights, buffer, handles, settings)
    assert len(steps) == epochs * 4 and stats["gradient_steps"] == epochs * 4, (len(steps), stats["gradient_steps"])


def test_the_learner_trains_on_the_behaviour_log_probs_the_workers_wrote(tmp_path):
    """DESIGN: the PPO ratio is new / behaviour. The segments' log-probs are shifted as if another
    policy had acted, so a learner that recomputed them with its own weights would be caught."""
    learner, weights, buffer, handles, settings = _learner(tmp_path)
    try:
        for worker in (0, 1):
            w, _ = _collect(handles, settings, worker=worker)
            w.weights.close(), w.buffer.close()
        learner.drain()
        for segment in learner.pending:
            segment["logprobs"] = segment["logprobs"] - 0.5
        behaviour = np.concatenate([segment["logprobs"].reshape(-1) for segment in learner.pending])
        batches = []
        update = learner.updater.update
        learner.updater.update = lambda batch: (batches.append(batch), update(batch))[1]
        stats = learner.update()
        np.testing.assert_array_equal(batches[0].logprobs, behaviour)
        # new / behaviour starts near e^0.5 on every transition: far outside the clip range
        assert stats["clip_fraction"] > 0.5 and stats["approx_kl"] > 0.05, stats
    finally:
        learner.close()
        buffer.close()
        weights.close()


@pytest.mark.parametrize("value_targets", ["behaviour", "vtrace"])
def test_every_kind_of_value_target_trains_and_publishes_finite_weights(tmp_path, value_targets):
    _check_one_update(*_learner(tmp_path, value_targets=value_targets))


def test_the_learner_clipping_against_the_proximal_policy_trains_and_publishes_finite_weights(tmp_path):
    learner, *rest = _learner(tmp_path, training={"clip_against": "proximal"})
    assert learner.updater.clip_against == "proximal"
    stats = _check_one_update(learner, *rest)
    assert 0.0 < stats["proximal_weight"] <= 2.0


def _check_one_update(learner, weights, buffer, handles, settings) -> dict:
    """Two workers' segments, one update: a new version of finite, changed weights; its stats."""
    try:
        for worker in (0, 1):
            w, _ = _collect(handles, settings, worker=worker)
            w.weights.close(), w.buffer.close()
        learner.drain()
        before = weights.read()[0]
        stats = learner.update()
        after, version = weights.read()
        assert version == 2 and "skipped" not in stats
        assert np.all(np.isfinite(after)) and not np.array_equal(after, before)
        return stats
    finally:
        learner.close()
        buffer.close()
        weights.close()


def test_the_packages_export_the_classes_design_places_in_them_without_loading_them_early():
    """Review (session 40): DESIGN puts the trainer in evolution/ and the shared-mode classes in
    parallel/, re-exported through ``__all__``; ``from morphelites.evolution import
    MAPElitesEvolutionTrainer`` raised ImportError. They load when asked for, so a worker that
    imports the package still loads neither torch nor pyribs."""
    code = (
        "import sys\n"
        "import morphelites.parallel, morphelites.parallel.shared_worker\n"
        "assert not [m for m in ('torch', 'ribs') if m in sys.modules]\n"
        "from morphelites.parallel import (MultiProcessPPOWorker, SharedExperienceBuffer, SharedPPOSystem,\n"
        "                                  SharedPPOTrainer, SharedWeights)\n"
        "from morphelites.parallel.learner import SharedPPOTrainer as learner_class\n"
        "assert SharedPPOTrainer is learner_class and MultiProcessPPOWorker.__name__ == 'MultiProcessPPOWorker'\n"
        "from morphelites.evolution import EXIT_CODES, MAPElitesEvolutionTrainer\n"
        "from morphelites.evolution.trainer import MAPElitesEvolutionTrainer as trainer_class\n"
        "assert MAPElitesEvolutionTrainer is trainer_class and EXIT_CODES['failed'] == 1\n"
        "import morphelites.evolution, morphelites.parallel\n"
        "assert all(hasattr(morphelites.evolution, n) for n in morphelites.evolution.__all__)\n"
        "assert all(hasattr(morphelites.parallel, n) for n in morphelites.parallel.__all__)\n"
        "try:\n"
        "    morphelites.parallel.NoSuchThing\n"
        "except AttributeError as error:\n"
        "    assert 'NoSuchThing' in str(error)\n"
        "else:\n"
        "    raise AssertionError('an unknown name must raise AttributeError')\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, env=dict(os.environ, PYTHONPATH=str(REPO)))


def test_worker_acting_path_imports_neither_torch_nor_ribs():
    code = (
        "import sys\n"
        "from morphelites.parallel.shared_worker import run_task, MultiProcessPPOWorker\n"
        "from morphelites.parallel.pool import WorkerPool\n"
        "bad = [m for m in ('torch', 'ribs') if m in sys.modules]\n"
        "assert not bad, bad\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, env=dict(os.environ, PYTHONPATH=str(REPO)))


def test_worker_processes_do_not_run_a_users_script_that_imports_the_trainer_at_its_top(tmp_path):
    """Found in review (session 40): spawn runs the parent's main script again in each child, so a
    script that imports the trainer at its top (as README's Python examples do) made every worker
    and the learner load pyribs, scipy and matplotlib (250 MB against 39 MB per process). Processes
    are started without it now, and the script's own ``__file__`` stays meanwhile (hidden while a
    process started, it broke main-thread code that read it beside a run started in a thread)."""
    (tmp_path / "probe_job.py").write_text(
        "import sys\n"
        "def heavy_modules():\n"
        "    return sorted(m for m in ('ribs', 'scipy', 'matplotlib', 'torch') if m in sys.modules)\n"
    )
    (tmp_path / "experiment.py").write_text(
        "import time\n"
        "from morphelites.evolution.trainer import MAPElitesEvolutionTrainer  # noqa: F401  (at the top, as README's)\n"
        "from morphelites.parallel.pool import WorkerPool, children_skip_the_main_script\n"
        "if __name__ == '__main__':\n"
        "    with children_skip_the_main_script():\n"
        "        assert __file__.endswith('experiment.py'), 'the script keeps its file while processes start'\n"
        "    pool = WorkerPool(1, 'probe_job:heavy_modules', role='test worker').start()\n"
        "    assert __file__.endswith('experiment.py') and __spec__ is None, 'the script is itself again'\n"
        "    try:\n"
        "        pool.submit(0, 't', ())\n"
        "        events, deadline = [], time.monotonic() + 60\n"
        "        while not events and time.monotonic() < deadline:\n"
        "            events = pool.poll(1.0)\n"
        "        print([(e.kind, e.value) for e in events])\n"
        "    finally:\n"
        "        pool.close()\n"
    )
    done = subprocess.run([sys.executable, str(tmp_path / "experiment.py")], capture_output=True, text=True, timeout=120,
                          env=dict(os.environ, PYTHONPATH=str(REPO)))  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[('done', [])]", "the worker loaded none of what the script imported"


def openblas_threads() -> tuple[str | None, int]:
    """Worker job for the test below: OPENBLAS_NUM_THREADS as this process got it, and how many
    threads numpy's OpenBLAS runs here."""
    import numpy  # noqa: F401  (loads OpenBLAS)
    import threadpoolctl

    threads = max(info["num_threads"] for info in threadpoolctl.threadpool_info() if info["internal_api"] == "openblas")
    return os.environ.get("OPENBLAS_NUM_THREADS"), threads


@pytest.mark.parametrize(("user_setting", "threads"), [(None, 1), ("2", 2)])
def test_worker_processes_run_native_libraries_single_threaded_unless_the_user_says(monkeypatch, user_setting, threads):
    """One process per core: a BLAS thread per core in each would fight over the cores (8x slower)."""
    from morphelites.parallel.pool import NATIVE_THREAD_VARIABLES, WorkerPool

    for name in NATIVE_THREAD_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    if user_setting is not None:
        monkeypatch.setenv("OPENBLAS_NUM_THREADS", user_setting)
    pool = WorkerPool(1, "test_shared:openblas_threads", role="test worker").start()
    try:
        pool.submit(0, "t", ())
        events = []
        deadline = time.monotonic() + 60
        while not events and time.monotonic() < deadline:
            events = pool.poll(1.0)
        # OpenBLAS runs at most a thread per core, so on one core only the variable tells the cases apart
        assert [(e.kind, e.value) for e in events] == [("done", (str(threads), min(threads, os.cpu_count())))]
        assert "OMP_NUM_THREADS" not in os.environ, "the parent's environment is restored"
    finally:
        pool.close()


def test_pyribs_is_imported_without_torch_and_still_works():
    code = (
        "import sys\n"
        "from morphelites.evolution.archive import BodyArchive\n"
        "import morphelites.viz, morphelites.evolution.variation, ribs, ribs.visualize\n"  # as heatmap_png does
        "assert 'torch' not in sys.modules and not ribs.typing.IS_TORCH_AVAILABLE\n"
        "import torch\n"  # the block is lifted: a later import works as usual
        "assert torch.ones(2).sum().item() == 2.0\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, env=dict(os.environ, PYTHONPATH=str(REPO)))


def test_pyribs_falls_back_to_an_ordinary_import_when_the_blocked_one_fails():
    code = (
        "import sys\n"
        "import morphelites.ribs_without_torch as loader\n"
        "loader._RIBS_PACKAGES = ('ribs', 'torch')\n"  # the second fails under the block
        "loader.import_ribs()\n"
        "import ribs\n"
        "assert ribs.typing.IS_TORCH_AVAILABLE and sys.modules['torch'] is not None\n"
        "from morphelites.evolution.archive import BodyArchive\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, env=dict(os.environ, PYTHONPATH=str(REPO)))


# ---------------------------------------------------------------------------- whole runs


@pytest.fixture
def tiny_config(tmp_path) -> Path:
    return write_json(tmp_path / "tiny.json", TINY)


@pytest.mark.parametrize("mode", ["shared", "independent"])
def test_the_main_process_of_a_run_never_imports_torch(tmp_path, tiny_config, mode):
    """torch lives in the learner and in independent workers only; in the main process it would
    cost ~230 MB (the archive, heatmaps and checkpoints need numpy only).

    Also: the main loop imports nothing. A second Ctrl-C raises KeyboardInterrupt wherever the
    loop is, and one inside a first import leaves a half-initialised module that the final files
    then trip over. (The archive inserts with pyribs' add_single: add() would compile a numba
    kernel, importing numba's modules, on the first insert.)
    """
    out = tmp_path / "run"
    argv = ["train", "--quiet", "--mode", mode, "--workers", "2", "--evaluations", "3", "--steps-per-individual", "200",
            "--config", str(tiny_config), "--output", str(out)]  # fmt: skip
    code = (
        "import sys\n"
        "from morphelites.cli import main\n"
        "from morphelites.evolution.trainer import MAPElitesEvolutionTrainer as Trainer\n"
        "loop, imported = Trainer._loop, []\n"
        "def watched_loop(self, pool):\n"
        "    before = set(sys.modules)\n"
        "    try:\n"
        "        return loop(self, pool)\n"
        "    finally:\n"
        "        imported.extend(sorted(set(sys.modules) - before))\n"
        "Trainer._loop = watched_loop\n"
        f"code = main({argv!r})\n"
        "assert 'torch' not in sys.modules, 'the main process imported torch'\n"
        "assert not imported, f'the main loop imported {imported}: import them before the Ctrl-C handler is installed'\n"
        "sys.exit(code)\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], env=dict(os.environ, PYTHONPATH=str(REPO)),
                          capture_output=True, text=True, timeout=240)  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    summary = json.loads((out / "summary.json").read_text())
    assert summary["mode"] == mode and summary["evaluations"] == 3 and summary["elites"] >= 1
    assert (out / "heatmap.png").read_bytes()[:4] == b"\x89PNG"


_train, _results = start_train, read_results


# whole-quotas' checks are a subset of quota-across-bodies' (review): `make test-all` runs it
@pytest.mark.parametrize("steps, evaluations", [pytest.param(400, 3, marks=pytest.mark.slow), (300, 5)],
                         ids=["whole-quotas", "quota-across-bodies"])
def test_sync_mode_has_zero_policy_lag(tmp_path, steps, evaluations):
    """Segments of 100 transitions and batches of 400 from 2 workers: a quota of 2 segments per
    worker and version. At 300 steps per body (review) a body ends part-way through a quota, and
    the worker's next body completes it: a worker that started a fresh quota there would write a
    third segment of a version the learner had already trained on, and it would be dropped."""
    config = tmp_path / "sync.json"
    config.write_text(json.dumps({**TINY, "training": {**TINY["training"], "sync": True}}))
    out = tmp_path / "run"
    proc = _train("--workers", "2", "--evaluations", str(evaluations), "--steps-per-individual", str(steps), "--config",
                  str(config), "--output", str(out))  # fmt: skip
    _, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err
    summary = json.loads((out / "summary.json").read_text())
    assert summary["mode"] == "shared" and summary["policy_updates"] >= 2
    # The learner trains on lag 0 only (its rule is unit-tested above); the lag comes from the data it took.
    assert summary["max_policy_lag"] == 0 and summary["mean_policy_lag"] == 0
    # Nothing goes stale: the learner updates only once every busy worker (one about to get its
    # next body included) has written its segments of the version.
    assert summary["segments_dropped_lag"] == 0
    assert {r["policy_version"] for r in _results(out)} - {0}, "evaluations record the policy version used"
    counts = ("worker_restarts", "learner_restarts", "policy_version", "policy_updates", "samples_consumed",
              "max_policy_lag", "transitions_written", "segments_dropped_lag", "producer_waits", "buffer_capacity")  # fmt: skip
    assert all(type(summary[name]) is int for name in counts), {name: summary[name] for name in counts}
    assert summary["peak_memory_mb"] == round(summary["peak_memory_mb"], 1), "MB to 0.1, like metrics.csv"


def _assert_the_final_round_used_one_policy(out: Path, min_batch_size: int) -> None:
    """The learner froze before the final re-evaluation, after training on every whole batch
    waiting, and that one version scored every elite, is the summary's and the newest learner
    checkpoint's. (Left to go on, the learner updated during the round whenever data was still
    waiting; the process test of the freeze above fails on that.)"""
    import csv

    from morphelites.parallel.learner import newest_learner_checkpoint

    log = (out / "training.log").read_text()
    frozen = re.search(r"Learner stopped training for the final re-evaluation at policy version (\d+) \((\d+) updates\)"
                       r"(?:; (\d+) transitions, less than a batch, were left untrained)?\.", log)  # fmt: skip
    assert frozen, log
    version = int(frozen.group(1))
    assert int(frozen.group(3) or 0) < min_batch_size, "every whole batch was trained on"
    assert log.index(frozen.group(0)) < log.index("Re-evaluating"), "frozen before the first elite is re-evaluated"
    final = list(csv.DictReader((out / "reevaluations.csv").open()))[-1]
    assert final["final"] == "1" and int(final["policy_version_min"]) == int(final["policy_version_max"]) == version
    summary = json.loads((out / "summary.json").read_text())
    assert summary["policy_version"] == version and summary["policy_updates"] == int(frozen.group(2))
    assert newest_learner_checkpoint(out / "checkpoints")[1]["version"] == version, "animate shows that policy"


@pytest.mark.faults  # a Reliability row (README): `make test-faults` runs it too
def test_killed_worker_is_replaced_and_ctrl_c_leaves_no_process(tmp_path, tiny_config):
    out = tmp_path / "run"
    proc = _train("--workers", "2", "--evaluations", "10", "--steps-per-individual", "800", "--config", str(tiny_config), "--output", str(out))
    deadline = time.monotonic() + 240
    log_path = out / "training.log"
    reissued = None
    for attempt in range(4):  # a worker killed between two tasks has nothing to reissue: kill again
        victim = None
        while time.monotonic() < deadline and victim is None:
            titles = {c.pid: _title(c) for c in psutil.Process(proc.pid).children(recursive=True)}
            workers = [pid for pid, title in titles.items() if "shared_ppo worker" in title]
            learners = [pid for pid, title in titles.items() if "shared_ppo learner" in title]
            if len(_results(out)) >= 1 + attempt and len(workers) == 2 and learners:
                victim = workers[attempt % 2]
            time.sleep(0.1)
        assert victim is not None, "process titles name the learner and the workers"
        title = " ".join(psutil.Process(proc.pid).cmdline()).rstrip()  # setproctitle pads with NULs
        assert title.endswith(f"morphelites: map_elites main {out.resolve()}"), f"and the run, as realpath names it: {title}"
        os.kill(victim, signal.SIGKILL)
        while time.monotonic() < deadline and log_path.read_text().count("died") <= attempt:
            time.sleep(0.1)
        assert re.search(r"Worker [01] died", log_path.read_text())
        # The individual it was training is issued again in this run (a resume would hide its loss:
        # it hands lost ids to new bodies), so wait for that very id before the Ctrl-C.
        reissued = re.search(r"died \(exit code -9\); replacing it\. Individual (\d+) is issued again", log_path.read_text())
        if reissued:
            break
    assert reissued, log_path.read_text()
    while time.monotonic() < deadline and (len(_results(out)) < 4 or
                                           int(reissued.group(1)) not in {r["id"] for r in _results(out)}):  # fmt: skip
        time.sleep(0.1)
    assert int(reissued.group(1)) in {r["id"] for r in _results(out)}
    children = psutil.Process(proc.pid).children(recursive=True)
    proc.send_signal(signal.SIGINT)
    start = time.monotonic()
    proc.communicate(timeout=60)
    assert time.monotonic() - start < 10 and proc.returncode == 130
    assert_gone(children)  # no orphan processes
    assert list((out / "checkpoints").glob("learner-*.pkl")), "the learner wrote its final checkpoint"

    resumed = _train("--resume", "--output", str(out))
    _, err = resumed.communicate(timeout=300)
    assert resumed.returncode == 0, err
    ids = [r["id"] for r in _results(out)]
    assert len(ids) == 10 and len(set(ids)) == 10
    summary = json.loads((out / "summary.json").read_text())
    assert summary["evaluations"] == 10
    assert "qd_score_reevaluated" in summary and (out / "archive_reevaluated.csv").is_file()
    assert type(summary["elites"]) is int and type(summary["elites_reevaluated"]) is int, "counts are whole numbers"
    assert "Learner restored from learner-" in (out / "training.log").read_text()


def test_a_tiny_shared_run_learns(tmp_path):
    """The shared policy improves over the run: the final policy scores the elites far above
    what the first individuals (acted on by an early policy) scored."""
    config = tmp_path / "learn.json"
    config.write_text(json.dumps({
        "evolution": {"eval_episodes": 8, "num_initial_random": 4},
        "training": {"buffer_size": 4000, "min_batch_size": 800, "update_interval": 100},
        "ppo": {"num_minibatches": 4, "update_epochs": 5},
        "env": {"goal_sampling": "reachable"},
    }))  # fmt: skip
    out = tmp_path / "run"
    proc = _train("--workers", "2", "--evaluations", "20", "--steps-per-individual", "3000", "--config", str(config), "--output", str(out))
    _, err = proc.communicate(timeout=400)
    assert proc.returncode == 0, err
    results = _results(out)
    summary = json.loads((out / "summary.json").read_text())
    first = np.mean([r["fitness"] for r in results[:4]])
    last = np.mean([r["fitness"] for r in results[-4:]])
    # Runs with worker processes are not reproducible to the bit. Over 6 runs of 20 evaluations the
    # first four scored 0.07-0.11 and the re-evaluated elites 0.22-0.57, so a gain of 0.05 is a clear
    # margin. (With 14 evaluations the elites got 0.15-0.37, and 1 run in ~10 missed the margin.)
    assert summary["mean_elite_fitness_reevaluated"] > first + 0.05, (first, summary["mean_elite_fitness_reevaluated"])
    assert last > first, (first, last)
    assert results[-1]["policy_version"] > results[0]["policy_version"] + 10
    # Each row's buffer counts are current (read from shared memory, not the learner's last message):
    # every finished individual's experience was written before its result came back.
    import csv

    rows = list(csv.DictReader((out / "metrics.csv").open()))
    behind = [(r["evaluations"], r["transitions_written"], r["training_env_steps"]) for r in rows
              if float(r["transitions_written"]) < float(r["training_env_steps"])]  # fmt: skip
    assert not behind, behind
    # Every row has the memory of each kind of process: main, learner, the largest worker.
    for row in rows:
        parts = [float(row[c]) for c in ("rss_main_mb", "rss_learner_mb", "rss_worker_max_mb")]
        assert min(parts) > 0 and sum(parts) <= float(row["rss_mb"]) + 0.2 <= float(row["peak_memory_mb"]) + 0.2, row
    assert summary["peak_memory_mb"] >= max(float(r["peak_memory_mb"]) for r in rows) - 0.05, "rows are rounded to 0.1 MB"
    _assert_the_final_round_used_one_policy(out, min_batch_size=800)


def test_serial_shared_backend_is_reproducible_to_the_bit(tmp_path):
    """Everything in one process (worker and learner stepped in turn): same seed, same run."""
    from morphelites.evolution.trainer import MAPElitesEvolutionTrainer

    def run(name: str) -> tuple[list[dict], dict]:
        summary = MAPElitesEvolutionTrainer(
            TINY, num_initial_random=2, training_steps_per_individual=400, enable_multiprocess=False,
            use_shared_ppo=True, output_dir=str(tmp_path / name), evaluations=4, seed=3, quiet=True,
        ).run()  # fmt: skip
        return read_results(tmp_path / name), summary

    from setproctitle import getproctitle, setproctitle

    own_title = getproctitle()
    try:
        setproctitle("pytest: a script that runs experiments")
        first, summary = run("a")
        assert getproctitle() == "pytest: a script that runs experiments", "the caller's process title is given back"
    finally:
        setproctitle(own_title)
    second, _ = run("b")
    assert summary["status"] == "completed" and summary["policy_updates"] >= 2 and summary["workers"] == 1
    assert [(r["id"], r["fitness"], r["policy_version"]) for r in first] == [(r["id"], r["fitness"], r["policy_version"]) for r in second]
    assert first[-1]["policy_version"] > first[0]["policy_version"]


def _serial_shared_run(out: Path, config: dict, evaluations: int, resume: bool, num_initial_random: int) -> dict:
    """A shared-mode run in one process (400 env steps per body, seed 5) in ``out``; its summary."""
    from morphelites.evolution.trainer import MAPElitesEvolutionTrainer

    return MAPElitesEvolutionTrainer(
        config, num_initial_random=num_initial_random, training_steps_per_individual=400, enable_multiprocess=False,
        use_shared_ppo=True, output_dir=str(out), evaluations=evaluations, seed=5, quiet=True, resume=resume,
    ).run()  # fmt: skip


def test_a_resume_continues_the_learner_counts_of_summary_json_where_they_pass_metrics_csv(tmp_path, monkeypatch):
    """Found in review: after a graceful stop summary.json counts the updates the learner made
    after the last metrics.csv row, but a resume floored the learner's counters with metrics.csv
    alone, so a session that ended before its learner reported wrote smaller counts into
    summary.json, and the first shared_ppo line's rates held the previous session's work. Here
    summary.json counts 7 updates past what metrics.csv and the learner's checkpoint hold."""
    import re

    config = {**TINY, "training": {**TINY["training"], "learner_checkpoint_every": 1}}
    out = tmp_path / "run"
    before = _serial_shared_run(out, config, 2, False, num_initial_random=2)
    ahead = {**before, "policy_updates": before["policy_updates"] + 7, "samples_consumed": before["samples_consumed"] + 7000}
    (out / "summary.json").write_text(json.dumps(ahead))
    monkeypatch.setattr("morphelites.evolution.trainer._SUMMARY_EVERY_S", 0.0)  # a shared_ppo line every loop step
    after = _serial_shared_run(out, config, 3, True, num_initial_random=2)
    assert after["policy_updates"] >= ahead["policy_updates"] and after["samples_consumed"] >= ahead["samples_consumed"]
    log = (out / "training.log").read_text()
    assert "Lost: 7 update(s) made after that checkpoint" in log
    first_rate = float(re.search(r"updates/min, (\d+) samples/s", log[log.rindex("Resumed from"):]).group(1))
    # the line says which figures are rates of the last seconds and which stand for the run so far
    assert re.search(r"shared_ppo: last [\d.]+ s: experience \d+ steps/s, .* \| now: buffer .* \| so far: learner busy", log)
    first = read_results(out)[-1]
    session = after["samples_consumed"] - ahead["samples_consumed"]
    assert first_rate <= session / (first["training_wall_s"] + first["eval_wall_s"]) + 1, (first_rate, session)


def test_periodic_reevaluation_rounds_use_the_current_policy_and_count_their_steps(tmp_path, monkeypatch):
    """training.reevaluate_every = 2: rounds after 2 and 4 evaluations and the final one, each a
    row of reevaluations.csv scored by a policy at least as new as the evaluations before it;
    their env steps count in env_steps, also after a resume. The resume also finds its newest
    learner checkpoint truncated and the one before it gone: training.log says so once and names
    the checkpoint it used, and neither the learner's work counters nor the buffer's transition
    counts in metrics.csv step back, nor do they inflate its first learner rates."""
    import csv
    import re

    config = {**TINY, "training": {**TINY["training"], "reevaluate_every": 2, "learner_checkpoint_every": 2}}
    out = tmp_path / "run"

    def run(evaluations: int, resume: bool) -> dict:
        return _serial_shared_run(out, config, evaluations, resume, num_initial_random=2)

    from morphelites.parallel.supervisor import SerialSharedBackend

    close = SerialSharedBackend.close

    def slow_close(backend: SerialSharedBackend, graceful: bool = True) -> None:
        time.sleep(2.0)  # a shutdown that takes a while (in shared mode, the learner's last checkpoint)
        close(backend, graceful=graceful)

    monkeypatch.setattr(SerialSharedBackend, "close", slow_close)
    summary = run(5, resume=False)
    monkeypatch.setattr(SerialSharedBackend, "close", close)
    wall_of_first_session = summary["wall_s"]
    rows = list(csv.DictReader((out / "reevaluations.csv").open()))
    results = read_results(out)
    assert all(0.0 <= r["fitness"] <= r["fitness_ceiling"] <= 1.0 for r in results), "shared workers report it too"
    assert [(int(r["evaluations"]), int(r["final"])) for r in rows] == [(2, 0), (4, 0), (5, 1)]
    for row in rows:
        earlier = [r["policy_version"] for r in results[: int(row["evaluations"])]]
        assert int(row["policy_version_min"]) >= max(earlier), (row, earlier)
        assert int(row["elites"]) >= 1 and int(row["reevaluation_env_steps"]) > 0
    assert int(rows[-1]["elites"]) == summary["elites"]
    assert float(rows[-1]["qd_score_reevaluated"]) == pytest.approx(summary["qd_score_reevaluated"], rel=1e-5)  # .6g in the csv
    round_steps = sum(int(r["reevaluation_env_steps"]) for r in rows)
    spent = sum(r["training_steps"] + r["eval_env_steps"] for r in results)
    assert summary["reevaluation_env_steps"] == round_steps
    assert summary["env_steps"] == spent + round_steps
    assert int(rows[-1]["env_steps"]) == summary["env_steps"]
    curves_before = (out / "curves.png").read_bytes()
    assert curves_before[:4] == b"\x89PNG"
    reevaluated_at_5 = {name: (out / f"{name}_reevaluated.{kind}").read_bytes() for name, kind in (("archive", "csv"), ("heatmap", "png"))}
    assert {row["reevaluated_at"] for row in csv.DictReader((out / "archive_reevaluated.csv").open())} == {"5"}

    learner_checkpoints = sorted((out / "checkpoints").glob("learner-*.pkl"))
    assert len(learner_checkpoints) >= 3
    newest = learner_checkpoints[-1]
    newest.write_bytes(newest.read_bytes()[:100])
    learner_checkpoints[-2].unlink()  # so the learner restores a checkpoint two updates behind metrics.csv
    samples_before = max(float(r["samples_consumed"]) for r in csv.DictReader((out / "metrics.csv").open()))
    recorded_version = max(int(rows[-1]["policy_version_max"]), *(r["policy_version"] for r in read_results(out)))
    monkeypatch.setattr("morphelites.evolution.trainer._SUMMARY_EVERY_S", 0.0)  # a shared_ppo line every loop step
    summary = run(6, resume=True)
    # Seen in review: the older checkpoint's weights were published again under version numbers
    # the first session had recorded for other weights.
    assert read_results(out)[-1]["policy_version"] > recorded_version
    assert f"Its weights are published as version {recorded_version + 1}, past the versions other weights" \
        in (out / "training.log").read_text()
    log = (out / "training.log").read_text()
    # Seen: the first shared_ppo line after a resume divided every earlier session's samples by its
    # own first seconds. Rate times interval is work done in it: at most this session's samples,
    # and the interval is longer than the session's first (and only) evaluation.
    first_rate = float(re.search(r"updates/min, (\d+) samples/s", log[log.rindex("Resumed from"):]).group(1))
    first = read_results(out)[-1]
    session_samples = summary["samples_consumed"] - samples_before
    assert first_rate <= session_samples / (first["training_wall_s"] + first["eval_wall_s"]) + 1, (first_rate, session_samples)
    assert log.count(f"Checkpoint {newest} is unreadable") == 1, "each skip reason is logged once"
    assert f"Learner restored from {learner_checkpoints[-3].name}" in log
    # Seen in review: a resume stopped before its final re-evaluation left the last session's
    # archive_reevaluated.csv beside an archive.csv that had moved on. They are set aside, named.
    assert "Renamed the files of the last final re-evaluation to archive_reevaluated_at_5.csv and " \
           "heatmap_reevaluated_at_5.png" in log
    assert {name: (out / f"{name}_reevaluated_at_5.{kind}").read_bytes() for name, kind in (("archive", "csv"), ("heatmap", "png"))} \
        == reevaluated_at_5
    assert {row["reevaluated_at"] for row in csv.DictReader((out / "archive_reevaluated.csv").open())} == {"6"}
    rows = list(csv.DictReader((out / "reevaluations.csv").open()))
    assert [(int(r["evaluations"]), int(r["final"])) for r in rows][-1] == (6, 1)
    assert (out / "curves.png").read_bytes() not in (b"", curves_before), "curves.png redrawn at the resumed run's end"
    metrics = list(csv.DictReader((out / "metrics.csv").open()))
    for column in ("env_steps", "policy_updates", "samples_consumed", "transitions_written", "transitions_consumed", "wall_s"):
        values = [float(r[column]) for r in metrics]
        assert values == sorted(values), f"{column} never steps back, also across a resume from an older checkpoint"
    # Seen in review: the resumed clock started from the last metrics.csv row, so the time after
    # the last evaluation (the final re-evaluation, the shutdown) was lost from wall_s.
    assert float(metrics[5]["wall_s"]) > wall_of_first_session
    assert summary["env_steps"] == sum(r["training_steps"] + r["eval_env_steps"] for r in read_results(out)) + sum(
        int(r["reevaluation_env_steps"]) for r in rows
    )

    # Resuming a run that has done everything its budget asks (a job script that always passes
    # --resume, restarted once more) changes nothing and starts nothing; it redraws the figures.
    kept = ("summary.json", "results.jsonl", "reevaluations.csv", "metrics.csv", "archive.csv", "archive_reevaluated.csv")
    before = {name: (out / name).read_bytes() for name in kept}
    events = sorted((out / "tensorboard").rglob("events.*"))
    restores = log.count("Learner restored from")
    (out / "curves.png").unlink()
    assert run(6, resume=True) == json.loads(before["summary.json"])
    assert {name: (out / name).read_bytes() for name in kept} == before
    assert sorted((out / "tensorboard").rglob("events.*")) == events, "no empty TensorBoard file either"
    assert (out / "curves.png").read_bytes()[:4] == b"\x89PNG"
    log = (out / "training.log").read_text()
    assert "Nothing to do: this run already completed 6 evaluations" in log and log.count("Learner restored from") == restores

    # A final re-evaluation that did not finish (no row for it) is made by the next resume. The
    # steps it took still count: the summary.json of its session holds them.
    lines = before["reevaluations.csv"].decode().splitlines(keepends=True)
    (out / "reevaluations.csv").write_text("".join(lines[:-1]))
    unfinished = int(list(csv.DictReader(lines))[-1]["reevaluation_env_steps"])
    summary = run(6, resume=True)
    rows = list(csv.DictReader((out / "reevaluations.csv").open()))
    assert [(int(r["evaluations"]), int(r["final"])) for r in rows][-2:] == [(5, 1), (6, 1)]
    assert summary["env_steps"] == sum(r["training_steps"] + r["eval_env_steps"] for r in read_results(out)) + sum(
        int(r["reevaluation_env_steps"]) for r in rows
    ) + unfinished
    # the files of the round at 6 were set aside before it was made again; the first ones are kept
    assert sorted(path.name for path in out.glob("*_reevaluated*")) == [
        "archive_reevaluated.csv", "archive_reevaluated_at_5.csv", "archive_reevaluated_at_6.csv",
        "heatmap_reevaluated.png", "heatmap_reevaluated_at_5.png", "heatmap_reevaluated_at_6.png"]
    assert summary["reevaluation_env_steps"] == sum(int(r["reevaluation_env_steps"]) for r in rows) + unfinished


@pytest.mark.parametrize("stop", ["graceful", "hard stop after a result"])
def test_the_training_steps_of_a_dead_worker_stay_training_steps_after_resume(tmp_path, monkeypatch, stop):
    """Seen in session 36 (left open): the training a worker had handed on before it died counted
    in training_env_steps, but a resumed run filed those steps under reevaluation_env_steps, since
    it did not read the split back from metrics.csv and summary.json. Also after a hard stop that
    left results.jsonl a line ahead of metrics.csv (session 37's review: that line's training was
    taken off the dead worker's steps)."""
    import csv

    from morphelites.parallel.pool import PoolEvent
    from morphelites.parallel.supervisor import SerialSharedBackend

    poll = SerialSharedBackend.poll
    lost_steps, died = 777, []

    def the_worker_dies_on_individual_1_once(backend, timeout):
        task = backend._task
        if task is not None and task[1] == "train" and task[0].id == 1 and not died:
            backend._task = None  # as SharedPPOSystem reports a worker death, with what it committed
            died.append(task[0].id)
            return [PoolEvent("died", 0, task[0].id, -9, env_steps=lost_steps)]
        return poll(backend, timeout)

    monkeypatch.setattr(SerialSharedBackend, "poll", the_worker_dies_on_individual_1_once)
    out = tmp_path / "run"

    def reevaluation_steps() -> int:
        return sum(int(r["reevaluation_env_steps"]) for r in csv.DictReader((out / "reevaluations.csv").open()))

    summary = _serial_shared_run(out, TINY, 3, resume=False, num_initial_random=2)
    assert died == [1] and summary["status"] == "completed"
    assert summary["training_env_steps"] == sum(r["training_steps"] for r in read_results(out)) + lost_steps
    if stop != "graceful":  # killed after results.jsonl took the last line, before metrics.csv took its row
        (out / "summary.json").unlink()
        lines = (out / "metrics.csv").read_text().splitlines(keepends=True)
        (out / "metrics.csv").write_text("".join(lines[:-1]))
    monkeypatch.setattr(SerialSharedBackend, "poll", poll)
    summary = _serial_shared_run(out, TINY, 4, resume=True, num_initial_random=2)
    assert summary["status"] == "completed" and summary["evaluations"] == 4
    assert summary["training_env_steps"] == sum(r["training_steps"] for r in read_results(out)) + lost_steps
    assert summary["reevaluation_env_steps"] == reevaluation_steps()
    assert summary["env_steps"] == (sum(r["training_steps"] + r["eval_env_steps"] for r in read_results(out))
                                    + reevaluation_steps() + lost_steps)  # fmt: skip


def test_a_reevaluation_round_stopped_part_way_counts_the_env_steps_it_took_also_after_resume(tmp_path, monkeypatch):
    """Seen: the finished tasks of a round that never completed (cancelled by the end of the run, or
    stopped by Ctrl-C) were dropped without counting their env steps."""
    import csv

    from morphelites.evolution.reevaluation import ReevaluationRound

    handle = ReevaluationRound.handle
    stopped_after: list[int] = []

    def ctrl_c_after_the_first_task(round_, event):
        handle(round_, event)
        if event.kind == "done" and not round_.complete and not stopped_after:
            stopped_after.append(int(event.value.eval_env_steps))
            os.kill(os.getpid(), signal.SIGINT)  # Python runs the run's handler at once, in this thread

    monkeypatch.setattr(ReevaluationRound, "handle", ctrl_c_after_the_first_task)
    config = {**TINY, "training": {**TINY["training"], "reevaluate_every": 3}}
    out = tmp_path / "run"

    def run(evaluations: int, resume: bool) -> dict:
        return _serial_shared_run(out, config, evaluations, resume, num_initial_random=3)

    summary = run(5, resume=False)
    assert summary["status"] == "interrupted" and stopped_after, "the round at 3 evaluations was stopped part way"
    assert not (out / "reevaluations.csv").exists() or not list(csv.DictReader((out / "reevaluations.csv").open()))
    spent = sum(r["training_steps"] + r["eval_env_steps"] for r in read_results(out))
    assert summary["reevaluation_env_steps"] == stopped_after[0] > 0
    assert summary["env_steps"] == spent + stopped_after[0]

    monkeypatch.setattr(ReevaluationRound, "handle", handle)
    summary = run(5, resume=True)
    assert summary["status"] == "completed"
    rows = list(csv.DictReader((out / "reevaluations.csv").open()))
    round_steps = sum(int(r["reevaluation_env_steps"]) for r in rows)
    assert summary["reevaluation_env_steps"] == round_steps + stopped_after[0], "the stopped round's steps still count"
    spent = sum(r["training_steps"] + r["eval_env_steps"] for r in read_results(out))
    assert summary["env_steps"] == spent + round_steps + stopped_after[0]


def test_a_budget_stops_the_issuing_and_the_run_says_how_far_past_it_it_ended(tmp_path):
    """Seen in review (session 37): --max-env-steps stops the issuing of individuals, and those in
    flight and the final re-evaluation came on top, unsaid; the README and config said "stop"."""
    out = tmp_path / "run"
    config = {**TINY, "evolution": {**TINY["evolution"], "max_env_steps": 500}}
    summary = _serial_shared_run(out, config, 20, resume=False, num_initial_random=3)
    assert summary["status"] == "completed" and summary["evaluations"] < 20 and summary["env_steps"] > 500
    assert (f"The run ended {summary['env_steps'] - 500:,} env steps past evolution.max_env_steps (500): it stops the "
            "issuing of individuals; those in flight finished, and the final re-evaluation came on top.") in (
        out / "training.log").read_text()


def test_no_periodic_reevaluation_round_is_announced_once_a_budget_is_spent(tmp_path):
    """Review (session 38): the evaluation that spent the budget started a round, which training.log
    announced and the loop cancelled before it began (no row of reevaluations.csv)."""
    import csv

    config = {**TINY, "training": {**TINY["training"], "reevaluate_every": 2}}
    free = _serial_shared_run(tmp_path / "free", config, 3, resume=False, num_initial_random=3)
    assert "(round at 2 evaluations)" in (tmp_path / "free" / "training.log").read_text()
    with open(tmp_path / "free" / "metrics.csv") as handle:
        after_first = int(float(next(csv.DictReader(handle))["env_steps"]))
    budget = {**config, "evolution": {**TINY["evolution"], "max_env_steps": after_first + 1}}  # spent by the second
    out = tmp_path / "budget"
    summary = _serial_shared_run(out, budget, 3, resume=False, num_initial_random=3)
    assert summary["status"] == "completed" and summary["evaluations"] == 2 and free["status"] == "completed"
    log = (out / "training.log").read_text()
    assert "(round at 2 evaluations)" not in log and "env-step budget" in log


def test_a_run_started_in_another_thread_completes_or_stops_when_told(tmp_path):
    """Review (session 38): signal handlers can be set only from the main thread; a run started in
    another one (a GUI, a dashboard) raised ValueError after its shared memory was made, left it
    in /dev/shm and wrote no summary.json."""
    import threading

    outcome: dict = {}

    def run() -> None:
        try:
            outcome["summary"] = _serial_shared_run(tmp_path / "run", TINY, 2, resume=False, num_initial_random=2)
        except BaseException as error:  # noqa: BLE001 - reported by the assertion below
            outcome["error"] = error

    thread = threading.Thread(target=run)
    thread.start()
    thread.join(timeout=120)
    assert "error" not in outcome, outcome.get("error")
    assert outcome["summary"]["status"] == "completed" and (tmp_path / "run" / "summary.json").is_file()

    # Ctrl-C does not reach such a run: stop() stops it as a first Ctrl-C would
    from morphelites.evolution.trainer import MAPElitesEvolutionTrainer

    out = tmp_path / "stopped"
    trainer = MAPElitesEvolutionTrainer(TINY, num_initial_random=2, training_steps_per_individual=400,
                                        enable_multiprocess=False, use_shared_ppo=True, output_dir=str(out),
                                        evaluations=50, seed=5, quiet=True)  # fmt: skip
    thread = threading.Thread(target=lambda: outcome.update(stopped=trainer.run()))
    thread.start()
    wait_for(lambda: read_results(out), 120, "a first result")
    trainer.stop()
    thread.join(timeout=120)
    assert outcome["stopped"]["status"] == "interrupted" and outcome["stopped"]["evaluations"] < 50
    assert "Stopping (stop() called): writing a checkpoint" in (out / "training.log").read_text()


def test_a_worker_without_weights_waits_for_a_restarted_learner_after_a_death_mid_write(tmp_path, monkeypatch):
    """Review (session 38): a learner killed between the two sequence stores of a publish left the
    weights unreadable until its successor published; a worker still without weights (a new one,
    or its first task) raised TimeoutError after 5 s, and its body was charged with the failure."""
    import threading

    from morphelites.parallel import shared_worker
    from morphelites.parallel.weights import _SEQUENCE, _VERSION

    monkeypatch.setattr(shared_worker, "READ_TRY_S", 0.1, raising=False)
    with _worker_beside_a_learner(tmp_path) as (worker, weights):
        read = worker.weights.read
        # each try gives up within 0.3 s: the successor (1 s here) comes later than one try, as a real
        # one (seconds) comes later than the old 5 s read
        worker.weights.read = lambda timeout_s=5.0: read(timeout_s=min(timeout_s, 0.3))
        flat = weights.read()[0]
        weights._header[_SEQUENCE] += 1  # odd: a write the dead learner never finished
        successor = threading.Timer(1.0, lambda: weights.publish(flat, 7))  # after several tries
        successor.start()
        assert worker.refresh() == 7
        weights._header[_SEQUENCE] += 1  # and again, version 8 half written: a worker with weights goes on with them
        weights._header[_VERSION] = 8
        assert worker.refresh() == 7
        weights.publish(flat, 8)
        assert worker.refresh() == 8
        successor.join()


def test_a_worker_without_weights_waits_as_long_as_finding_a_stalled_learner_and_replacing_it_takes(tmp_path, monkeypatch):
    """Found in review: the wait was a fixed 120 s, sized for a learner that died mid-write. One
    that stalls mid-write is killed only after training.ipc_timeout (120 s by default), and its
    successor may take up to the start-up allowance to publish: the worker gave up first, and with
    a larger ipc_timeout (README's advice on a loaded machine) always did, charging its body."""
    from morphelites.parallel import shared_worker
    from morphelites.parallel.heartbeat import STARTUP_GRACE_S
    from morphelites.parallel.supervisor import create_shared_state
    from morphelites.parallel.weights import _SEQUENCE

    settings = Settings.from_dict({**TINY, "training": {**TINY["training"], "ipc_timeout": 600.0}}).validate()
    made_weights, made_buffer, made = create_shared_state(settings, 1, False, 4)
    made_weights.close()
    made_buffer.close()
    assert made.first_weights_wait_s > 600.0 + STARTUP_GRACE_S
    monkeypatch.setattr(shared_worker, "READ_TRY_S", 0.1, raising=False)
    with _worker_beside_a_learner(tmp_path, wait_s=0.5) as (worker, weights):
        weights._header[_SEQUENCE] += 1  # a write the stalled learner never finished, and no successor
        started = time.monotonic()
        with pytest.raises(TimeoutError):
            worker.refresh()
        assert 0.5 <= time.monotonic() - started < 30, "the handles' wait, not a fixed one"


def test_an_individual_issued_again_draws_other_action_noise_and_resets_than_its_earlier_try(tmp_path):
    """Found in review (session 39, left open until session 40): an individual issued again (its
    worker died, its evaluation failed, it was in flight at a stop) drew the same env resets and
    action noise as its first try, so the learner took a near-copy of segments it may already hold.
    A try is a function of (id, attempt): the same attempt repeats, another one does not."""
    import dataclasses

    from morphelites.parallel.shared_worker import MultiProcessPPOWorker

    learner, weights, buffer, handles, _ = _learner(tmp_path, workers=1)
    worker = MultiProcessPPOWorker(0, handles)
    one_segment = Settings.from_dict({**TINY, "evolution": {**TINY["evolution"], "training_steps_per_individual": 100}})
    first_try = Individual(3, (0.5,) * 7, Morphology(3, [0.2] * 3))

    def segment_of(individual: Individual, by: MultiProcessPPOWorker | None = None) -> dict[str, np.ndarray]:
        (by or worker).train(individual, one_segment)
        (slot,) = buffer.ready_slots()
        taken = buffer.take(slot)
        buffer.release(slot)
        assert taken is not None and taken.individual_id == 3
        return taken.arrays

    resumed = MultiProcessPPOWorker(0, dataclasses.replace(handles, session=1))  # a worker of a resumed session
    try:
        first = segment_of(first_try)
        again = segment_of(first_try.issued_again())
        repeated = segment_of(first_try)
        in_a_later_session = segment_of(first_try, by=resumed)
        assert weights.version == 1, "no update between them: only the random draws can differ"
        for name in ("obs", "actions"):
            assert np.array_equal(first[name], repeated[name]), f"the same attempt's {name} repeat"
            assert not np.array_equal(first[name], again[name]), f"attempt 1's {name} are its own"
            assert not np.array_equal(first[name], in_a_later_session[name]), f"a resumed session's {name} are its own"
        assert not np.array_equal(first["obs"][0], again["obs"][0]), "its env resets differ too (the first obs)"
    finally:
        resumed.weights.close(), resumed.buffer.close()
        worker.weights.close(), worker.buffer.close()
        learner.close()
        buffer.close()
        weights.close()


def test_an_individual_is_issued_again_as_its_next_attempt_after_a_death_a_stop_or_a_lost_id(tmp_path, monkeypatch):
    """What the trainer hands on with an individual issued again (session 40): a worker death and
    a checkpoint that holds it in flight each give the next attempt; a new individual is attempt 0
    (one taking the id of one lost at a hard stop too: its session differs, see the test below)
    and its results.jsonl line has no ``attempt``, as before."""
    from types import SimpleNamespace

    from morphelites.evolution.trainer import MAPElitesEvolutionTrainer
    from morphelites.parallel.pool import PoolEvent
    from morphelites.parallel.supervisor import SerialSharedBackend

    poll = SerialSharedBackend.poll
    trained: list[tuple[int, int]] = []

    def the_worker_dies_on_individual_1_once(backend, timeout):
        task = backend._task
        if task is not None and task[1] == "train":
            trained.append((task[0].id, task[0].attempt))
            if task[0].id == 1 and trained.count((1, 0)) == 1 and (1, 1) not in trained:
                backend._task = None
                return [PoolEvent("died", 0, 1, -9, env_steps=0)]
        return poll(backend, timeout)

    monkeypatch.setattr(SerialSharedBackend, "poll", the_worker_dies_on_individual_1_once)
    out = tmp_path / "run"
    assert _serial_shared_run(out, TINY, 3, resume=False, num_initial_random=2)["status"] == "completed"
    assert trained == [(0, 0), (1, 0), (1, 1), (2, 0)]
    assert [(r["id"], r.get("attempt")) for r in read_results(out)] == [(0, None), (1, 1), (2, None)]

    trainer = MAPElitesEvolutionTrainer(TINY, enable_multiprocess=False, use_shared_ppo=True, quiet=True,
                                        output_dir=str(tmp_path / "stopped"), evaluations=20)  # fmt: skip
    (genome,) = trainer.space.random_genomes(np.random.default_rng(0), 1)
    one = (tuple(map(float, genome)), trainer.space.decode(genome))
    trainer.next_id, trainer.free_ids = 6, [4]
    trainer.in_flight = {3: Individual(3, *one)}
    trainer.pending = [Individual(2, *one, attempt=2)]
    trainer._start, written = time.monotonic(), []  # as run() sets it; the state the recorder would write
    trainer.recorder = SimpleNamespace(checkpoint=lambda completed, state, keep: written.append(state))
    trainer._checkpoint()
    (state,) = written
    assert [(e["id"], e["attempt"]) for e in state["pending"]] == [(2, 2), (3, 1)], "the one in flight: its next try"
    assert [(Individual.from_dict(e).id, Individual.from_dict(e).attempt) for e in state["pending"]] == [(2, 2), (3, 1)]
    assert [(i.id, i.attempt) for i in (trainer._new_individual(), trainer._new_individual())] == [(4, 0), (6, 0)]
    with pytest.raises(ValueError, match="attempt must be 0 or more"):
        Individual.from_dict({**state["pending"][0], "attempt": -1})


def test_each_session_of_a_run_has_a_number_of_its_own_that_its_shared_workers_draw_with(tmp_path, monkeypatch):
    """Review (session 40): after a hard stop a resumed run issued a try no checkpoint knew of (a
    new id drawn after the last checkpoint, say) again with the same id, genome and attempt, so the
    same draws. Each session now has a number (config.json's ``sessions``, written as it starts),
    and a resumed session's workers draw from streams of it."""
    from morphelites.parallel.supervisor import SerialSharedBackend

    sessions: list[int] = []
    init = SerialSharedBackend.__init__

    def recording(backend, *args, **kwargs):
        sessions.append(kwargs["session"])
        init(backend, *args, **kwargs)

    monkeypatch.setattr(SerialSharedBackend, "__init__", recording)
    out = tmp_path / "run"
    _serial_shared_run(out, TINY, 2, resume=False, num_initial_random=2)
    assert json.loads((out / "config.json").read_text())["sessions"] == 1
    config = json.loads((out / "config.json").read_text())
    (out / "config.json").write_text(json.dumps({k: v for k, v in config.items() if k != "sessions"}))  # an older run's
    _serial_shared_run(out, TINY, 3, resume=True, num_initial_random=2)
    _serial_shared_run(out, TINY, 4, resume=True, num_initial_random=2)
    assert sessions == [0, 1, 2] and json.loads((out / "config.json").read_text())["sessions"] == 3


def test_room_for_a_segment_counts_those_being_written():
    """A worker takes its slot before it acts the segment, so the room that ``max_ready`` leaves
    counts the slots being written as well as those waiting for the learner."""
    layout = BufferLayout(workers=3, slots_per_worker=4, steps=25, envs=4, obs_dim=54, act_dim=6)
    buffer, per_segment = SharedExperienceBuffer.create(layout), layout.transitions_per_segment
    full = lambda: True  # noqa: E731  (acquire returns None instead of waiting)
    try:
        first = buffer.acquire(0, 100.0, max_ready=2 * per_segment)
        second = buffer.acquire(1, 100.0, max_ready=2 * per_segment)
        assert first is not None and second is not None and buffer.claimed_transitions() == 2 * per_segment
        assert buffer.acquire(2, 100.0, should_stop=full, max_ready=2 * per_segment) is None, "two being written"
        buffer.commit(first, version=1, individual_id=0, worker=0)
        assert buffer.acquire(2, 100.0, should_stop=full, max_ready=2 * per_segment) is None, "one waits, one written"
        buffer.abandon(second)
        assert buffer.acquire(2, 100.0, should_stop=full, max_ready=2 * per_segment) is not None
    finally:
        buffer.close()


def test_a_slot_taken_for_a_segment_that_could_not_be_acted_is_given_back_to_the_ring():
    """A worker takes its slot before it acts the segment (session 40's review); a slot whose
    segment could not be acted (an unstable body) is given back, not lost to the worker's ring."""
    layout = BufferLayout(workers=1, slots_per_worker=2, steps=25, envs=4, obs_dim=54, act_dim=6)
    buffer = SharedExperienceBuffer.create(layout)
    full = lambda: True  # noqa: E731  (acquire returns None instead of waiting)
    try:
        first, second = buffer.acquire(0, 100.0), buffer.acquire(0, 100.0)
        assert first is not None and second is not None and buffer.acquire(0, 100.0, should_stop=full) is None
        buffer.abandon(second)
        assert buffer.acquire(0, 100.0, should_stop=full) is not None, "the abandoned slot is free again"
        assert buffer.ready_transitions() == 0, "and it was never offered to the learner"
    finally:
        buffer.close()


def test_a_worker_waits_for_room_before_it_acts_a_segment_so_it_acts_with_the_newest_weights(tmp_path, monkeypatch):
    """Found in review (session 40): a worker acted its next segment, then waited for room. With
    more workers than a batch holds segments, a held segment aged through several updates and was
    dropped for lag when it got in (8 workers: 12 of 60). Now each segment's slot comes first, then
    the refresh, then acting; a failure while acting gives the slot back."""
    from morphelites.parallel.shared_worker import MultiProcessPPOWorker
    from morphelites.rollout import SegmentCollector

    learner, weights, buffer, handles, _ = _learner(tmp_path, workers=1)
    worker = MultiProcessPPOWorker(0, handles)
    two_segments = Settings.from_dict({**TINY, "evolution": {**TINY["evolution"], "training_steps_per_individual": 200}})
    calls: list[str] = []
    acquire, refresh, collect = buffer.__class__.acquire, MultiProcessPPOWorker.refresh, SegmentCollector.collect
    monkeypatch.setattr(buffer.__class__, "acquire", lambda *a, **k: calls.append("room") or acquire(*a, **k))
    monkeypatch.setattr(MultiProcessPPOWorker, "refresh", lambda *a, **k: calls.append("refresh") or refresh(*a, **k))
    monkeypatch.setattr(SegmentCollector, "collect", lambda *a, **k: calls.append("act") or collect(*a, **k))
    try:
        worker.train(Individual(0, (0.5,) * 7, Morphology(3, [0.2] * 3)), two_segments)
        acting = [c for c in calls if c in ("room", "act")]
        assert acting == ["room", "act", "room", "act"], calls
        assert calls[:3] == ["room", "refresh", "act"], "the weights are refreshed after the wait, before acting"
        for slot in buffer.ready_slots():
            buffer.release(slot)

        def unstable(*args, **kwargs):
            raise FloatingPointError("the simulation went unstable")

        monkeypatch.setattr(SegmentCollector, "collect", unstable)
        with pytest.raises(FloatingPointError):
            worker.train(Individual(1, (0.5,) * 7, Morphology(3, [0.2] * 3)), two_segments)
        from morphelites.parallel.buffer import _STATE, EMPTY

        assert all(slot.header[_STATE] == EMPTY for ring in buffer._slots for slot in ring), "the slot is given back"
    finally:
        worker.weights.close(), worker.buffer.close()
        learner.close()
        buffer.close()
        weights.close()


@pytest.mark.parametrize("room_first", [True, False], ids=["room then act", "act then room (before)"])
def test_with_more_workers_than_a_batch_of_segments_none_is_dropped_for_lag(tmp_path, room_first):
    """The review's reproduction, with the learner the bottleneck: after each update the learner
    takes a batch, and the waiting workers all find room in the same moment and act side by side.
    A worker that finds room (counting the segments others are writing) and then acts with the
    weights of that moment (train()'s order, checked above) never gets to the learner past
    max_policy_lag; one that acted before it waited (the order before session 40) holds a segment
    of older weights, and some of those were dropped. (Counting only the waiting segments, 24
    workers at the defaults dropped a sixth: session 40's second review.)"""
    from morphelites.parallel.supervisor import max_ready_transitions

    workers = 24  # a batch (min_batch_size 400) holds 4 segments of 100; the room, 12
    learner, weights, buffer, handles, settings = _learner(tmp_path, max_lag=4, workers=workers)
    max_ready = max_ready_transitions(settings.training.min_batch_size, max_policy_lag=4)
    order = np.random.default_rng(0)
    held = dict.fromkeys(range(workers), weights.version)  # act first: the version of the segment in hand
    try:
        def workers_act() -> None:
            while True:  # rounds: every worker that finds room takes it, then all of them commit
                acting = []
                for worker in map(int, order.permutation(workers)):
                    slot = buffer.acquire(worker, 100.0, should_stop=lambda: True, max_ready=max_ready)
                    if slot is not None:
                        acting.append((worker, slot, weights.version if room_first else held[worker]))
                        held[worker] = weights.version  # act first: the next segment, acted now, waits for room
                if not acting:
                    return
                for worker, slot, version in acting:
                    for name in ("obs", "rewards", "dones", "bootstrap", "truncated", "final_obs"):
                        getattr(slot, name)[:] = 0.0
                    buffer.commit(slot, version, 1 + worker, worker)

        workers_act()
        learner.drain()
        for _ in range(12):
            workers_act()
            if learner.pending_transitions >= settings.training.min_batch_size:
                learner.update()
            learner.drain()
        dropped = buffer.occupancy()["segments_dropped_lag"]
        assert (dropped == 0) if room_first else (dropped > 0), dropped
        assert learner.updates == 12 if room_first else learner.updates >= 1
    finally:
        learner.close()
        buffer.close()
        weights.close()


def test_a_budget_that_whole_segments_pass_by_more_than_5_percent_is_said_and_each_body_trains_what_was_said(tmp_path):
    """Review (session 40): training goes in whole segments (shared) or whole steps of all envs
    (independent), so training.update_interval 2,048 trained 2,048 steps per body at a budget of
    1,500 (37% more), with nothing said. The run now says so before it starts, and each body
    trains what it says (results.jsonl)."""
    from morphelites.evolution.run_plan import training_steps_each
    from morphelites.evolution.trainer import MAPElitesEvolutionTrainer
    from morphelites.train_ppo import rollout_plan

    config = {**TINY, "training": {**TINY["training"], "update_interval": 100}}
    out = tmp_path / "run"
    MAPElitesEvolutionTrainer(config, num_initial_random=2, training_steps_per_individual=150, enable_multiprocess=False,
                              use_shared_ppo=True, output_dir=str(out), evaluations=2, seed=5, quiet=True).run()  # fmt: skip
    assert {r["training_steps"] for r in read_results(out)} == {200}
    assert ("Each body will train 200 env steps, 33% more than evolution.training_steps_per_individual (150): a shared "
            "worker writes whole segments of 100 transitions") in (out / "training.log").read_text()
    exact = Settings.from_dict({**config, "evolution": {**config["evolution"], "training_steps_per_individual": 300}})
    assert training_steps_each(exact, "shared") == 300
    for budget, num_envs, num_steps in ((1500, 16, 128), (1500, 7, 32), (20_496, 16, 128), (10, 4096, 8)):
        settings = Settings.from_dict({"evolution": {"training_steps_per_individual": budget},
                                       "ppo": {"num_envs": num_envs, "num_steps": num_steps}})  # fmt: skip
        full, last = rollout_plan(budget, num_envs, num_steps, min_transitions=1)
        assert training_steps_each(settings, "independent") == num_envs * (full * num_steps + last), budget


def test_the_learner_keeps_as_many_checkpoints_as_evolution_checkpoints_kept(tmp_path):
    """Review (session 40): the learner kept 3 checkpoints whatever evolution.checkpoints_kept said."""
    config = {**TINY, "evolution": {**TINY["evolution"], "checkpoints_kept": 1},
              "training": {**TINY["training"], "learner_checkpoint_every": 1}}  # fmt: skip
    out = tmp_path / "run"
    summary = _serial_shared_run(out, config, 3, resume=False, num_initial_random=2)
    assert summary["policy_updates"] >= 2, "more than one learner checkpoint was written"
    assert len(list((out / "checkpoints").glob("learner-*.pkl"))) == 1
    assert len(list((out / "checkpoints").glob("evolution-*.pkl"))) == 1


def test_a_stopped_learner_gets_time_for_its_update_under_way_and_final_checkpoint():
    """Review (session 40): a stop signal gave the learner 5 s before it was killed, and an update
    is not cut short, so with large batches (about 5 s for 30,000 transitions on 2 cores) every
    preemption lost the final checkpoint and up to learner_checkpoint_every updates."""
    from morphelites.parallel.supervisor import SharedPPOSystem, learner_stop_wait_s

    assert learner_stop_wait_s(graceful=False, longest_update_s=0.3) == 5.0
    assert learner_stop_wait_s(graceful=True, longest_update_s=0.3) == 15.0
    assert learner_stop_wait_s(graceful=False, longest_update_s=6.0) == 13.0
    assert learner_stop_wait_s(graceful=False, longest_update_s=100.0) == 20.0, "within a cluster's usual grace"
    assert learner_stop_wait_s(graceful=True, longest_update_s=100.0) == 60.0

    class Pipe:
        def __init__(self, messages):
            self.messages = messages

        def poll(self):
            return bool(self.messages)

        def recv(self):
            return self.messages.pop(0)

        def close(self):
            pass

    system = SharedPPOSystem.__new__(SharedPPOSystem)  # only what reading the learner's reports touches
    system.learner_stats, system.longest_update_s, system.learner_events = {}, 0.0, []
    system._stats_recv = Pipe([{"event": "update", "update_s": 2.5}, {"event": "update", "update_s": 1.0},
                               {"event": "idle"}])  # fmt: skip
    system._read_learner_stats()
    assert system.longest_update_s == 2.5 and system.learner_stats == {"event": "idle"}

    # close() at a stop signal waits that long for the learner (the review: the test must see it)
    class Stub:
        def __init__(self):
            self.waits: list[float] = []
            self.killed = False

        def close(self, *args, **kwargs):
            pass

        def join(self, timeout=None):
            self.waits.append(timeout)

        def is_alive(self):
            return False

        exitcode = None  # as a process that never ran: close() leaves it be

        def kill(self):
            self.killed = True

        def occupancy(self):  # as the buffer: read as close() frees it
            return {}

    learner, stub = Stub(), Stub()
    system._shut_down, system._closed, system._kinds, system._written_at_submit = False, False, {}, {}
    system.pool = type("Pool", (), {"in_flight": {}, "close": lambda self, graceful, timeout: None})()
    system._stop = type("Event", (), {"set": lambda self: None})()
    system.buffer, system.weights, system.learner = stub, stub, learner
    system._stats_recv = Pipe([{"event": "update", "update_s": 6.0}])
    system._read_learner_stats()
    system.close(graceful=False)
    assert learner.waits == [13.0] and not learner.killed


def test_the_room_for_experience_says_how_many_workers_act_at_once():
    """(max_policy_lag - 1) x min_batch_size transitions of room hold that many segments: with more
    workers, the rest wait (their experience would only be dropped), and the run says so as it
    starts (trainer: "At most N of the W workers act at once")."""
    from morphelites.evolution.run_plan import workers_acting_at_once
    from morphelites.parallel.supervisor import max_ready_transitions, segment_transitions

    defaults = Settings()  # room 3,000: 30 segments of 100
    assert workers_acting_at_once(defaults, 16) == 16 and workers_acting_at_once(defaults, 48) == 30
    wide = Settings.from_dict({"training": {"update_interval": 500}})  # 6 segments of 500
    assert workers_acting_at_once(wide, 8) == 6
    huge = Settings.from_dict({"training": {"update_interval": 5000, "buffer_size": 20_000}})
    assert workers_acting_at_once(huge, 4) == 1, "one at least"
    # Review: with a segment that does not divide the room it said one too few (23 of 24 here)
    uneven = Settings.from_dict({"training": {"update_interval": 128}})
    assert workers_acting_at_once(uneven, 24) == 24 and workers_acting_at_once(uneven, 40) == 24
    for settings in (defaults, wide, huge, uneven):  # acquire's rule: a slot while fewer than the room are claimed
        room = max_ready_transitions(settings.training.min_batch_size, settings.training.max_policy_lag)
        claimed, admitted = 0, 0
        while claimed < room:
            claimed, admitted = claimed + segment_transitions(settings), admitted + 1
        assert workers_acting_at_once(settings, 1000) == admitted
    assert workers_acting_at_once(Settings.from_dict({"training": {"sync": True, "update_interval": 500}}), 8) == 8


def test_the_start_warnings_name_the_workers_the_buffer_keeps_idle_and_say_nothing_of_default_settings():
    """settings_warnings (the trainer logs each as it starts): 48 default workers get room for 30
    at once; a run with the defaults and workers the buffer admits gets no warning at all."""
    from morphelites.evolution.run_plan import settings_warnings

    assert settings_warnings(Settings(), "shared", 16) == []
    assert settings_warnings(Settings(), "independent", 16) == []
    (warning,) = settings_warnings(Settings(), "shared", 48)
    assert warning.startswith("At most 30 of the 48 workers act at once: experience waiting for the learner or being "
                              "written is held to (max_policy_lag - 1) x min_batch_size = 3000 transitions, 30 segments "
                              "of 100, since more"), warning
    assert settings_warnings(Settings(), "independent", 48) == [], "independent workers share no buffer"


def test_the_eta_counts_a_final_re_evaluation_only_where_there_is_one(tmp_path):
    """Session 40's second review: the final round's share of the ETA was counted with
    training.reevaluate_elites off too, where no round follows."""
    import dataclasses

    from morphelites.evolution import compute_measures
    from morphelites.evolution.trainer import MAPElitesEvolutionTrainer

    trainer = MAPElitesEvolutionTrainer(TINY, enable_multiprocess=False, use_shared_ppo=True, quiet=True,
                                        output_dir=str(tmp_path / "run"))  # fmt: skip
    for individual_id, genome in enumerate(trainer.space.random_genomes(np.random.default_rng(0), 3)):
        measures = compute_measures(trainer.space.decode(genome), trainer.archive.specs)
        trainer.archive.add(individual_id, None, genome, 0.5, measures, {})
    trainer._eval_wall_s, trainer._evaluated_this_session = 6.0, 3  # 2 s an evaluation, one worker
    assert trainer._final_round_estimate_s() == pytest.approx(2.0 * len(trainer.archive)) and len(trainer.archive) >= 1
    off = dataclasses.replace(trainer.settings.training, reevaluate_elites=False)
    trainer.settings = dataclasses.replace(trainer.settings, training=off)
    assert trainer._final_round_estimate_s() == 0.0


def test_the_learners_stop_and_freeze_flags_cross_processes_and_hold_no_lock():
    """Found in review: they were multiprocessing Events, whose is_set() and set() take a lock
    shared between processes; a learner SIGKILLed while holding it (the OOM killer, a stall kill)
    left each replacement blocked at its first look at the flag and close() blocked in set()."""
    import multiprocessing as mp

    from morphelites.parallel.supervisor import SharedFlag

    ctx = mp.get_context("spawn")
    flag = SharedFlag(ctx)
    assert not flag.is_set()
    child = ctx.Process(target=SharedFlag.set, args=(flag,))
    child.start()
    child.join(60)
    assert child.exitcode == 0 and flag.is_set(), "set in a child, seen here"
    assert not hasattr(flag._value, "get_lock") and not any(
        isinstance(value, type(ctx.Lock())) for value in vars(flag).values()), "nothing a killed process could hold"


def test_summary_figures_of_the_buffer_are_its_own_when_the_learner_sends_no_last_report(tmp_path):
    """Found in review: once closed, stats() took the buffer's counters from the learner's last
    message; a learner killed at the end (a second Ctrl-C, an update longer than its stop wait)
    or dead never sends its final one, so summary.json had transitions_written (and producer
    waits, segments dropped) as of an earlier update, below the env steps it counted."""
    from morphelites.parallel.supervisor import SharedFlag, SharedPPOSystem

    learner, weights, buffer, _, _ = _learner(tmp_path)
    learner.close()

    class Learner:  # alive until killed, and it never reports again
        killed = closed = False

        def join(self, timeout=None):
            pass

        def is_alive(self):
            return not self.killed

        def kill(self):
            self.killed = True

        @property
        def exitcode(self):
            return -9 if self.killed else None

        def close(self):  # its descriptors, once it is gone
            self.closed = True

    class Pipe:
        def poll(self, timeout=0.0):
            return False

        def close(self):
            pass

    system = SharedPPOSystem.__new__(SharedPPOSystem)  # only what close() and stats() touch
    system.learner_stats = {"transitions_written": 100.0, "producer_waits": 0.0, "policy_updates": 1.0}
    system.longest_update_s, system.learner_events, system._final_occupancy = 0.0, [], None
    system._shut_down, system._closed, system._kinds, system._written_at_submit = False, False, {}, {}
    system.learner_restarts = system.learner_stalls = 0
    system.pool = type("Pool", (), {"in_flight": {}, "restarts": 0, "stalls": 0,
                                    "close": lambda self, graceful, timeout: None})()  # fmt: skip
    system._stop, system._stats_recv = SharedFlag(mp.get_context("spawn")), Pipe()
    learner = Learner()
    system.buffer, system.weights, system.learner = buffer, weights, learner
    try:
        for worker in (0, 1):  # committed after the learner's last report
            _commit_rewards(buffer, worker, worker, version=0)
        assert system.stats()["transitions_written"] == 200.0
        system.close(graceful=False)
    finally:  # closing twice is safe: a failed assertion must not leave the blocks in /dev/shm
        buffer.close()
        weights.close()
    assert learner.killed and learner.closed and system.learner is None
    stats = system.stats()
    assert stats["transitions_written"] == 200.0 and stats["buffer_transitions"] == 200.0
    assert stats["policy_updates"] == 1.0, "the learner's own figures stay its last report's"


def test_a_worker_killed_as_stalled_that_lives_on_gives_its_task_up_at_once():
    """Found in review: a worker killed as stalled that stays alive (uninterruptible sleep on a hung
    mount) kept its task until its death, which may never come: its individual was never issued
    again, so the run waited for it forever at its end, and in sync mode every update waited for
    its segments. Its SIGKILL is pending, so it never runs its own code again: its task is lost at
    once (a `died` event with no exit code), its buffer state is cleared, and it takes no new task."""
    from morphelites.parallel.pool import WorkerPool
    from morphelites.parallel.supervisor import SharedPPOSystem

    class Process:  # what a process in uninterruptible sleep does with a SIGKILL: nothing yet
        pid = 4321

        def kill(self):
            pass

        def join(self, timeout=None):
            pass

        def is_alive(self):
            return True

    class Heartbeats:
        def restamp_after_own_pause(self, seconds):
            return False

        def age(self, index):
            return 500.0 if index == 1 else 1.0

    cleared: list[int] = []
    pool = WorkerPool.__new__(WorkerPool)  # only what finding a stall and `idle`/`in_flight` read
    pool.ipc_timeout, pool._closed, pool.heartbeats, pool.stalls, pool.on_died = 120.0, False, Heartbeats(), 0, cleared.append
    pool._procs, pool._tasks, pool._killed = [Process(), Process()], [7, 8], {}
    events = pool._kill_stalled()
    assert [(e.kind, e.worker, e.task_id, e.value) for e in events] == [("stalled", 1, 8, 500.0), ("died", 1, 8, None)]
    assert cleared == [1] and pool.in_flight == {0: 7} and pool.idle == []
    assert pool._kill_stalled() == [], "killed once, reported once"
    system = SharedPPOSystem.__new__(SharedPPOSystem)
    system.pool, system._kinds = pool, {0: "train", 1: "train"}
    assert system._training_in_flight() == 1, "a sync update does not wait for it"


def test_a_replacement_learner_counts_its_predecessors_silent_time_as_active_not_busy(tmp_path):
    """Found in review: a restarted learner took its predecessor's active time as of that one's
    last report, so the stall before the kill (up to ipc_timeout) and the restart were left out of
    learner_utilisation's denominator, which then read too high."""
    from morphelites.parallel.supervisor import SharedPPOSystem

    started: list = []

    class Context:
        def Pipe(self, duplex=True):
            end = type("End", (), {"close": lambda self: None})()
            return end, end

        def Process(self, target, name, daemon, args):
            started.append(args[0])  # the LearnerOptions
            return type("Process", (), {"start": lambda self: None})()

    system = SharedPPOSystem.__new__(SharedPPOSystem)  # only what starting a learner touches
    system.settings, system.handles, system.checkpoint_dir = Settings(), None, tmp_path
    system.max_policy_lag, system.learner_restarts, system._version_floor, system._counters_floor = 4, 1, 0, {}
    system._stats_recv, system._ctx, system._stop, system._active, system._freeze = None, Context(), None, None, None
    system._learner_beat = type("Beat", (), {"stamp": lambda self, i, s: None, "array": None})()
    system.learner_stats = {"learner_busy_s": 5.0, "learner_active_s": 10.0}
    system._learner_stats_at = time.monotonic() - 30.0  # its last report came 30 s ago
    system._start_learner(resume=True)
    busy_s, active_s = started[0].time_floor_s
    assert busy_s == 5.0 and 40.0 <= active_s < 45.0


def test_sync_workers_never_act_with_weights_older_than_the_published_ones(tmp_path):
    """Found in review: a sync worker holding version 1, given a body while the learner (version
    2 published, closing 2) stalled mid-write of version 3, fell back on its own version 1 after a
    short try, acted with it and skipped the sync wait: every segment of that body dropped. It now
    waits until the weights are readable, and acts with the newest."""
    import threading

    from morphelites.parallel.weights import _SEQUENCE

    with _worker_beside_a_learner(tmp_path, sync=True, max_lag=0) as (worker, weights):
        flat = weights.read()[0]
        weights.publish(flat, 1)
        assert worker.refresh() == 1
        weights.publish(flat, 2)  # while the worker was idle
        weights.set_closing(2)
        weights._header[_SEQUENCE] += 1  # a write of version 3 left half done
        successor = threading.Timer(1.5, lambda: weights.publish(flat, 3))  # the learner that replaces it
        successor.start()
        assert worker._open_version() == 3
        successor.join()


def test_a_serial_shared_learner_stops_its_active_time_when_it_freezes(tmp_path):
    """A second review: only the learner process stopped its active time at the freeze; with
    --serial, learner_utilisation still counted the final round and the shutdown as idle."""
    from morphelites.parallel.supervisor import SerialSharedBackend

    settings = Settings.from_dict(TINY).validate()
    backend = SerialSharedBackend(settings, tmp_path, resume=False)
    try:
        backend.freeze_learner()
        first = backend.learner.stats()["learner_active_s"]
        time.sleep(0.2)
        assert backend.learner.stats()["learner_active_s"] == first
    finally:
        backend.close()


def test_a_learner_process_whose_final_checkpoint_fails_says_it_was_the_final_one(tmp_path):
    """Review: the learner process sent its final checkpoint's failure as any other, and the trainer
    logged the advice for a learner still running ("if the learner dies now ..."); only the serial
    backend had been told apart."""
    from morphelites.parallel.learner import LearnerOptions, learner_main
    from morphelites.parallel.supervisor import SharedFlag, create_shared_state

    not_a_directory = tmp_path / "file"
    not_a_directory.write_text("x")  # every checkpoint write fails (an OSError, as on a full disk)
    settings = Settings().validate()
    weights, buffer, handles = create_shared_state(settings, 1, False, 4)
    ctx = mp.get_context("spawn")
    receive, send = ctx.Pipe(duplex=False)
    stop, freeze, active = SharedFlag(ctx), SharedFlag(ctx), ctx.Value("i", 0, lock=False)
    stop.set()  # as close() does at the run's end: the learner checkpoints once more and stops
    learner = ctx.Process(target=learner_main, daemon=True, args=(LearnerOptions(settings, handles, str(not_a_directory),
                          resume=False, max_policy_lag=4), send, stop, active, None, None, freeze))  # fmt: skip
    try:
        learner.start()
        send.close()
        messages = []
        with contextlib.suppress(EOFError):
            while True:
                messages.append(receive.recv())
        learner.join(30)
    finally:
        if learner.is_alive():
            learner.kill()
        buffer.close()
        weights.close()
    failed = [m for m in messages if m["event"] == "checkpoint_failed"]
    assert len(failed) == 1 and failed[0]["final"] is True, messages


def test_every_backend_has_the_interface_the_evolution_loop_drives(tmp_path):
    """The trainer drives its backend through supervisor.EvaluationBackend (shared mode's through
    SharedBackend too): each backend, as made before start(), has every member of its protocol."""
    from morphelites.parallel.supervisor import (EvaluationBackend, IndependentBackend, SerialSharedBackend, SharedBackend,
                                                 SharedPPOSystem)

    def members(protocol: type) -> set[str]:
        return {name for klass in protocol.__mro__ if klass.__name__ in ("EvaluationBackend", "SharedBackend")
                for name in [*vars(klass), *getattr(klass, "__annotations__", {})] if not name.startswith("_")}

    assert members(EvaluationBackend) >= {"start", "idle", "submit", "poll", "take_events", "stats", "close",
                                          "in_flight_training_steps"}  # fmt: skip
    settings = Settings.from_dict(TINY).validate()
    independent = IndependentBackend(settings, 1, False)
    shared = SharedPPOSystem(settings, 1, tmp_path / "shared", resume=False)
    serial = SerialSharedBackend(settings, tmp_path / "serial", resume=False)
    try:
        for backend, protocol in ((independent, EvaluationBackend), (shared, SharedBackend), (serial, SharedBackend)):
            missing = [name for name in members(protocol) if not hasattr(backend, name)]
            assert not missing, (type(backend).__name__, missing)
    finally:
        for backend in (independent, shared, serial):
            backend.close(graceful=False)
