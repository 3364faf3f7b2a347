"""MultiProcessPPOWorker: a shared-mode worker. Simulates its body, feeds the learner, evaluates.

Runs inside a :class:`WorkerPool` process (``morphelites: shared_ppo worker N``) and imports
neither torch nor ribs: it acts with the numpy twin of the policy, refreshed from shared memory.

For a ``train`` task the worker runs K copies of the body side by side (one policy forward
serves all K), cuts the experience into segments of T steps — T*K = ``update_interval`` env
steps, one policy version per segment — and writes each into its ring of the
SharedExperienceBuffer, refreshing its weights between segments when the version moved. In sync
mode it writes ``segments_per_version`` segments with one version and then waits for the next, so
that the learner's batch (that many segments from every busy worker) reaches ``min_batch_size``;
it never starts a segment with a version the learner has marked closing (learner.py). After
``training_steps_per_individual`` env steps it evaluates the current policy on the body. An
``evaluate`` task only evaluates (used to re-evaluate elites with the final policy).
"""

from __future__ import annotations

import contextlib
import math
import os
import sys
import time
from dataclasses import dataclass
from typing import Any, Callable

import numpy as np

from morphelites.config import Settings
from morphelites.envs.reach import ReachEnv
from morphelites.individual import Individual, IndividualResult, individual_seed
from morphelites.parallel.heartbeat import STARTUP_GRACE_S, beat
from morphelites.parallel.buffer import SEGMENT_ARRAYS, BufferLayout, SharedExperienceBuffer
from morphelites.parallel.weights import SharedWeights
from morphelites.policy_numpy import NumpyActorCritic, PolicySpec
from morphelites.rollout import SegmentCollector, evaluate
from morphelites.seeding import Stream, stream_seed

__all__ = ["SharedHandles", "MultiProcessPPOWorker", "run_task", "segment_shape", "sync_segments_per_version"]

#: Seconds a worker waits for a free buffer slot before it warns (and again every this long).
BACKPRESSURE_WARN_S = 10.0
#: Seconds one try to read the published weights may take: a write takes microseconds, so a
#: longer wait means a learner that died mid-write (or one the OS has not run for that long).
READ_TRY_S = 0.5
#: Seconds a worker without weights (a new one, or its first task) waits for a restarted learner
#: to publish after its predecessor died mid-write, trying every ``READ_TRY_S``, beyond the time it
#: takes to find a learner that stalled mid-write (``training.ipc_timeout``) and start another
#: (``heartbeat.STARTUP_GRACE_S``): see :func:`wait_for_first_weights_s`.
FIRST_WEIGHTS_MARGIN_S = 60.0


def wait_for_first_weights_s(ipc_timeout: float) -> float:
    """Seconds a worker without weights waits for them to be readable: a learner that stalls
    mid-write is killed only after ``ipc_timeout`` s, and its successor may take up to
    ``STARTUP_GRACE_S`` to publish (a fixed 120 s gave up first at the default ``ipc_timeout``,
    and always with a larger one; found in review)."""
    return ipc_timeout + STARTUP_GRACE_S + FIRST_WEIGHTS_MARGIN_S


@dataclass(frozen=True)
class SharedHandles:
    """Names and sizes a process needs to attach to the shared weights and buffer."""

    weights_name: str
    weights_size: int
    buffer_name: str
    layout: BufferLayout
    spec: dict[str, Any]
    sync: bool = False
    max_ready: int | None = None
    #: Sync mode: segments a worker writes with one policy version before it waits for the next.
    segments_per_version: int = 1
    #: The run's session (0 for its first, one more for each --resume): a worker's random draws of
    #: a resumed session are its own, so that it never repeats those of a try lost at a hard stop.
    session: int = 0
    #: How long a worker without weights waits for them (:func:`wait_for_first_weights_s`).
    first_weights_wait_s: float = wait_for_first_weights_s(120.0)


def segment_shape(update_interval: int, envs_per_worker: int) -> tuple[int, int]:
    """(T, K): K envs per worker and T steps each, so that T*K is about ``update_interval``."""
    return max(1, math.ceil(update_interval / envs_per_worker)), envs_per_worker


def sync_segments_per_version(min_batch_size: int, workers: int, segment_transitions: int) -> int:
    """Sync mode: segments each worker writes per policy version: the fewest (at least 1) with
    which every worker's together make at least ``min_batch_size`` transitions.

    Args:
        min_batch_size: transitions the learner wants per update.
        workers: worker processes that feed the learner.
        segment_transitions: T*K transitions in one segment.
    """
    if min(min_batch_size, workers, segment_transitions) < 1:
        raise ValueError(f"min_batch_size, workers and segment_transitions must be at least 1, got "
                         f"{min_batch_size}, {workers}, {segment_transitions}")  # fmt: skip
    return math.ceil(min_batch_size / (workers * segment_transitions))  # >= 1: every size is >= 1


class MultiProcessPPOWorker:
    """The worker's state across tasks: its index, attachments and local policy copy.

    Args:
        index: the worker's index: its ring in the buffer (a replacement keeps it).
        handles: names and sizes of the shared weights and buffer, attached here (they must
            exist), and the sync-mode settings.
        after_segment: called after every committed segment (the serial backend runs the learner
            there); None in a pool worker.
    """

    def __init__(self, index: int, handles: SharedHandles, after_segment: Callable[[], None] | None = None) -> None:
        self.index = index
        self.handles = handles
        self.after_segment = after_segment  # the serial backend runs the learner here
        self.weights = SharedWeights.attach(handles.weights_name, handles.weights_size)
        self.buffer = SharedExperienceBuffer.attach(handles.buffer_name, handles.layout)
        self.policy = NumpyActorCritic(PolicySpec.from_dict(handles.spec))
        self.version = 0
        self.refreshes = 0
        self.backpressure_s = 0.0
        # Sync mode: the version of the last segment written and how many were written with it.
        # Kept across tasks: a body's budget may end part-way through a version's quota, and the
        # next body's first segments complete it.
        self.quota_version, self.quota_written = 0, 0

    def refresh(self) -> int:
        """Copy the published weights if their version moved; returns the version in use.

        If the learner died in the middle of a write, the weights stay unreadable until its
        restarted successor publishes again (seconds: the supervisor's next poll, a torch import,
        a checkpoint restore): a worker that has weights goes on with them after a short try, one
        that has none waits for its successor, beating, up to ``handles.first_weights_wait_s``."""
        while self.weights.version == 0:  # the learner has not published yet
            beat()
            time.sleep(0.01)
        if self.weights.version != self.version:
            deadline = time.monotonic() + self.handles.first_weights_wait_s
            while True:
                try:
                    flat, version = self.weights.read(timeout_s=READ_TRY_S)
                    break
                except TimeoutError:
                    if self.version != 0:
                        return self.version
                    if time.monotonic() > deadline:
                        raise
                    beat()
            self.policy.load_flat(flat)
            self.version = version
            self.refreshes += 1
        return self.version

    def train(self, individual: Individual, settings: Settings) -> IndividualResult:
        """Collect ``training_steps_per_individual`` env steps of experience on the body, then evaluate."""
        layout = self.handles.layout
        seed = individual_seed(settings.evolution.seed, individual.id) % (2**31)
        # A reissue, or any issue in a resumed session, draws other noise and resets: the learner may
        # have taken an earlier try's segments (one lost at a hard stop is known to no checkpoint)
        retry = (individual.attempt, self.handles.session) if individual.attempt or self.handles.session else ()
        rng = np.random.default_rng(stream_seed(seed, Stream.ACTION_NOISE, *retry))
        envs = [ReachEnv(individual.body, body_space=settings.body_space, env_config=settings.env) for _ in range(layout.envs)]
        collector = SegmentCollector(envs, seed=stream_seed(seed, Stream.ENV_RESETS, *retry))
        budget = settings.evolution.training_steps_per_individual
        steps, start = 0, time.perf_counter()
        while steps < budget:
            # Room first, then act: a segment acted before waiting for room aged while the worker
            # waited, and with many workers reached the learner past max_policy_lag, to be dropped.
            waited = time.perf_counter()
            slot = self.buffer.acquire(self.index, BACKPRESSURE_WARN_S, on_wait=self._warn_full, max_ready=self.handles.max_ready)
            self.backpressure_s += time.perf_counter() - waited
            assert slot is not None
            try:
                version = self._open_version() if self.handles.sync else self.refresh()
                segment = collector.collect(self.policy, layout.steps, rng)
                for name in SEGMENT_ARRAYS[:-1]:  # last_values is not part of a Segment
                    getattr(slot, name)[:] = getattr(segment, name)
                slot.last_values[:] = self.policy.value(segment.last_obs)
            except BaseException:  # an unstable body, say: the task fails, the worker goes on
                self.buffer.abandon(slot)
                raise
            self.buffer.commit(slot, version, individual.id, self.index)
            steps += segment.num_transitions
            if self.after_segment is not None:
                self.after_segment()
            if self.handles.sync and self._sync_quota_met(version):
                self._wait_for_new_version(version)
        collector.close()
        training_wall = time.perf_counter() - start
        return self._evaluate(individual, settings, steps, training_wall, {"refreshes": self.refreshes,
                              "backpressure_s": round(self.backpressure_s, 3)})  # fmt: skip

    def _evaluate(self, individual: Individual, settings: Settings, training_steps: int, training_wall: float,
                  extra: dict[str, Any]) -> IndividualResult:  # fmt: skip
        version = self.refresh()
        start = time.perf_counter()
        evo = settings.evolution
        result = evaluate(self.policy, individual.body, evo.eval_episodes, evo.eval_seed, body_space=settings.body_space,
                          env_config=settings.env, policy_version=version)  # fmt: skip
        return IndividualResult(individual.id, result.to_dict(), training_steps, result.env_steps, training_wall,
                                time.perf_counter() - start, extra=extra)  # fmt: skip

    def evaluate_only(self, individual: Individual, settings: Settings) -> IndividualResult:
        """Evaluate the current policy (:meth:`refresh`) on ``individual.body``
        (``evolution.eval_episodes`` episodes on the fixed goals) without training: the
        re-evaluation of elites. The result's ``training_env_steps`` is 0; its evaluation names
        the policy version used."""
        return self._evaluate(individual, settings, 0, 0.0, {})

    def _sync_quota_met(self, version: int) -> bool:
        """Count a segment written with ``version``; true once ``segments_per_version`` were."""
        if version != self.quota_version:
            self.quota_version, self.quota_written = version, 0
        self.quota_written += 1
        return self.quota_written >= self.handles.segments_per_version

    def _open_version(self) -> int:
        """Sync mode: the version to write the next segment with, never one the learner has marked
        closing (an update it may have decided without counting this worker; see learner.py):
        wait for the next version, or for the mark to be withdrawn. Never an older version than
        the one published: where the newest weights cannot be read (a learner that stalled or died
        mid-write), :meth:`refresh` falls back on the worker's own, whose segments a sync update
        would only drop; the worker waits for readable weights instead (found in review)."""
        while True:
            version = self.refresh()
            if version < self.weights.version:
                beat()
                time.sleep(0.01)
                continue
            if self.weights.closing != version:
                return version
            while self.weights.version == version and self.weights.closing == version:
                beat()
                time.sleep(0.001)

    def _wait_for_new_version(self, version: int) -> None:
        """Sync mode: produce nothing more until the learner has trained on what we gave it."""
        while self.weights.version == version:
            beat()
            time.sleep(0.001)

    def _warn_full(self, waited_s: float) -> None:
        """Say on the console that this worker has waited ``waited_s`` s for room (training.log gets
        the main process's count of such waits). On stderr, as the run's other console lines; a
        console that is gone (a closed pipe: ``| head``) must not fail the task (review: the
        BrokenPipeError of a print to stdout had failed the run)."""
        if sys.stderr is None:  # started with no stderr at all (2>&-); print would take stdout
            return
        with contextlib.suppress(OSError, ValueError):
            print(f"morphelites: shared_ppo worker {self.index}: waited {waited_s:.0f} s for the learner to take the "
                  f"experience already waiting (it is slower than the workers; see README troubleshooting)",
                  file=sys.stderr, flush=True)  # fmt: skip


_WORKER: MultiProcessPPOWorker | None = None


def run_task(worker_index: int, kind: str, individual: Individual, settings: Settings, handles: SharedHandles) -> IndividualResult:
    """WorkerPool job: ``kind`` is ``train`` (collect experience, then evaluate) or ``evaluate``."""
    global _WORKER
    if _WORKER is None or _WORKER.index != worker_index:
        _WORKER = MultiProcessPPOWorker(worker_index, handles)
    if kind == "train":
        result = _WORKER.train(individual, settings)
    elif kind == "evaluate":
        result = _WORKER.evaluate_only(individual, settings)
    else:
        raise ValueError(f"unknown task kind {kind!r}")
    result.extra["pid"] = os.getpid()
    return result
