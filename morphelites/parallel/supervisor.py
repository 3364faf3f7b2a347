"""Evaluation backends the evolution loop drives: independent workers, or the shared-PPO system.

Each has the interface of :class:`EvaluationBackend` (shared mode's also :class:`SharedBackend`'s,
for the final re-evaluation), so ``MAPElitesEvolutionTrainer`` reads the same in both modes:

- :class:`IndependentBackend`: a WorkerPool whose job trains a fresh PPO per individual.
- :class:`SharedPPOSystem`: the supervisor of shared mode. It creates the shared weights and the
  experience buffer, starts the learner process and the worker pool, watches them (a dead worker
  has its half-written buffer slots cleared and is replaced by the pool; a dead learner is
  restarted from its newest checkpoint, and after ``max_learner_restarts`` deaths in a row the
  run stops with a clear message; a process whose heartbeat is older than ``ipc_timeout`` is
  killed and handled like a dead one), relays the learner's statistics and events, and shuts
  everything down.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import time
import traceback
from pathlib import Path
from typing import Any, Protocol

from morphelites.config import ConfigError, Settings
from morphelites.envs.reach import ObservationLayout
from morphelites.individual import Individual
from morphelites.parallel.buffer import BufferLayout, SharedExperienceBuffer
from morphelites.parallel.heartbeat import STARTUP_GRACE_S, Heartbeats
from morphelites.parallel.learner import COUNTER_COLUMNS, LAG_TOTALS, LEARNER_TIME_KEYS, LearnerOptions, learner_main
from morphelites.parallel.pool import (MAX_START_TRIES, PoolEvent, SerialPool, WorkerPool,
                                       children_skip_the_main_script, children_start_deaf_to_stop_signals,
                                       one_native_thread_per_process, start_resource_tracker, start_retry_at)
from morphelites.parallel.shared_worker import (SharedHandles, segment_shape, sync_segments_per_version,
                                                wait_for_first_weights_s)
from morphelites.parallel.shm import SHM_DIR, shared_memory_free_bytes
from morphelites.parallel.weights import SharedWeights
from morphelites.policy_numpy import PolicySpec, reach_policy_spec

__all__ = ["EvaluationBackend", "SharedBackend", "IndependentBackend", "SharedPPOSystem", "SerialSharedBackend", "LearnerDied",
           "SharedFlag", "ENVS_PER_WORKER", "SESSION_COUNTERS", "check_shared_memory", "create_shared_state"]

#: Counts a backend keeps for its own session only; a resumed run continues them from metrics.csv
#: and summary.json.
SESSION_COUNTERS = ("worker_restarts", "worker_stalls", "learner_restarts", "learner_stalls", "transitions_written",
                    "transitions_consumed", "segments_dropped_lag", "producer_waits")  # fmt: skip


class EvaluationBackend(Protocol):
    """What the evolution loop drives: workers that take individuals and report events."""

    #: Env steps of training the individuals in flight had taken when :meth:`close` stopped them
    #: (shared mode: handed on to the learner, which trains on them; 0 in independent mode).
    in_flight_training_steps: int

    def start(self) -> None:
        """Start the processes (nothing runs before)."""

    @property
    def idle(self) -> list[int]:
        """The workers free to take a task now."""

    def submit(self, worker: int, individual: Individual, kind: str = "train") -> None:
        """Hand ``individual`` to idle ``worker``: ``"train"`` then evaluate it, or (shared
        mode) ``"evaluate"`` it only."""

    def poll(self, timeout: float) -> list[PoolEvent]:
        """Events that arrive within ``timeout`` seconds: results, errors, deaths and stalls."""

    def take_events(self) -> list[dict[str, Any]]:
        """The learner's (or its supervisor's) reports since the last call, oldest first."""

    def raise_deferred_failure(self) -> None:
        """Raise a failure found beside events a poll returned (a dead learner, say)."""

    def pids(self) -> dict[str, int]:
        """The backend's processes by role, for memory accounting."""

    def stats(self) -> dict[str, float]:
        """Counters and figures for training.log, metrics.csv and summary.json."""

    def close(self, graceful: bool = True) -> None:
        """Stop every process (``graceful``: let the learner finish and checkpoint) and free memory."""


class SharedBackend(EvaluationBackend, Protocol):
    """A shared-mode backend: one learner whose weights can be frozen for the final re-evaluation."""

    handles: SharedHandles
    #: The policy version the learner froze at, once it reports it (None before).
    frozen_version: int | None

    def freeze_learner(self) -> None:
        """Ask the learner to train on the whole batches waiting, then keep its weights."""


class SharedFlag:
    """A flag one process sets once and others read, in shared memory and without a lock (the
    learner's stop and freeze signals). A ``multiprocessing`` Event takes a lock shared between
    processes in both ``is_set()`` and ``set()``: a learner killed while it held it (the OOM
    killer, a stall kill) left every replacement blocked at its first look at the flag, and
    ``close()`` blocked for good in ``set()``, with no summary.json (found in review)."""

    def __init__(self, ctx: Any) -> None:
        self._value = ctx.RawValue("b", 0)  # one aligned byte: written and read whole

    def set(self) -> None:
        self._value.value = 1

    def is_set(self) -> bool:
        return bool(self._value.value)


#: Copies of its body each shared-mode worker steps together (one policy forward for all).
ENVS_PER_WORKER = 4


class LearnerDied(RuntimeError):
    """The learner died more often in a row than ``max_learner_restarts`` allows, or its
    replacement could not be started (``pool.MAX_START_TRIES``); its last checkpoint is intact."""


def _shared_layout(settings: Settings, workers: int) -> tuple[PolicySpec, BufferLayout]:
    """The policy (whose weights are broadcast) and the experience buffer's layout of a shared run."""
    layout_obs = ObservationLayout(settings.body_space.max_links)
    spec = reach_policy_spec(settings.body_space.max_links, settings.model.hidden_dim, settings.model.init_log_std,
                             settings.ppo.normalize_obs)  # fmt: skip
    steps, envs = segment_shape(settings.training.update_interval, ENVS_PER_WORKER)
    layout = BufferLayout.for_buffer_size(settings.training.buffer_size, workers, steps, envs,
                                          layout_obs.observation_dim, layout_obs.action_dim)  # fmt: skip
    return spec, layout


def check_shared_memory(settings: Settings, workers: int, reclaimable: int = 0, resume: bool = False) -> int:
    """Refuse (ConfigError) a shared run whose weights and experience buffer do not fit in the
    free space of ``/dev/shm`` (with ``reclaimable`` bytes more: the run's own leftover blocks,
    which it removes as it starts); returns the bytes they take. Called before anything starts:
    :func:`create_shared_state` would fail later, when the run directory already exists."""
    spec, layout = _shared_layout(settings, workers)
    weights = SharedWeights.bytes_for(spec.flat_size)
    needed = weights + layout.total_bytes
    free = shared_memory_free_bytes()
    free = None if free is None else free + reclaimable
    if free is not None and needed > free:
        if weights >= layout.total_bytes:  # the policy's weights, not the experience, fill it
            fix = f"Lower model.hidden_dim (the policy's weights take {weights / 2**20:.1f} MB)"
        elif layout.slots_per_worker == 2 and layout.capacity > settings.training.buffer_size:
            # the floor of two segments per worker decides, not buffer_size
            fix = (f"Lower training.update_interval (each worker needs room for two segments of "
                   f"{layout.transitions_per_segment} transitions, {2 * layout.slot_bytes / 2**20:.1f} MB) or the workers")
        else:
            fix = f"Lower training.buffer_size (about {layout.slot_bytes / layout.transitions_per_segment:.0f} bytes per transition)"
        if resume:  # a resume may not change those settings
            fix = "Use fewer --workers (the other settings are the run's)"
        raise ConfigError(
            f"A shared run with training.buffer_size {settings.training.buffer_size}, {workers} worker(s) and "
            f"model.hidden_dim {settings.model.hidden_dim} needs {needed / 2**20:.1f} MB of shared memory, but "
            f"{SHM_DIR} has {free / 2**20:.1f} MB free. {fix}, or give the machine more shared memory (Docker: "
            f"--shm-size). Runs killed outright with their whole process group (kill -9, a group OOM kill) leave "
            f"their blocks there: `ls -l {SHM_DIR}` shows them (this project's are named mel…_…; each run "
            f"removes its own when it starts again)."
        )  # fmt: skip
    return needed


def learner_stop_wait_s(graceful: bool, longest_update_s: float) -> float:
    """Seconds to wait for a stopped learner to finish the update under way and write its final
    checkpoint before it is killed: 15 at a run's end, 5 at a stop signal, but at least twice the
    longest update it made and a second (an update is not cut short; larger batches take longer: a
    30,000-transition one about 5 s on 2 cores), up to 60 / 20 (a cluster's grace after SIGTERM is
    often 30 s, and the main process still writes summary.json after). Killed, the learner's last
    periodic checkpoint stays."""
    floor, cap = (15.0, 60.0) if graceful else (5.0, 20.0)
    return max(floor, min(cap, 2.0 * longest_update_s + 1.0))


def max_ready_transitions(min_batch_size: int, max_policy_lag: int) -> int:
    """Backpressure by lag: how many transitions may wait for the learner or be being written
    before a worker waits for room. More would wait beyond what the learner takes in
    ``max_policy_lag`` - 1 updates and only be dropped for lag; at least one batch."""
    return max(min_batch_size, (max_policy_lag - 1) * min_batch_size)


def create_shared_state(
    settings: Settings, workers: int, sync: bool, max_policy_lag: int, session: int = 0, block_prefix: str | None = None
) -> tuple[SharedWeights, SharedExperienceBuffer, SharedHandles]:
    """Create the shared weights and experience buffer of a shared-mode run, and their handles
    (``session``: see SharedHandles; ``block_prefix``: the run's block names, see shm.run_block_prefix).

    Raises SharedMemoryFull if ``/dev/shm`` cannot hold them (nothing is left behind then)."""
    training = settings.training
    spec, layout = _shared_layout(settings, workers)
    start_resource_tracker()  # before the first block would start it, hang-ups and all
    weights = SharedWeights.create(spec.flat_size, block_prefix)
    try:
        buffer = SharedExperienceBuffer.create(layout, block_prefix)
    except BaseException:
        weights.close()
        raise
    try:
        max_ready = None if sync else max_ready_transitions(training.min_batch_size, max_policy_lag)
        quota = sync_quota(settings, workers) if sync else 1
        handles = SharedHandles(weights.name, spec.flat_size, buffer.name, layout, spec.to_dict(), sync, max_ready, quota,
                                session=session, first_weights_wait_s=wait_for_first_weights_s(training.ipc_timeout))  # fmt: skip
    except BaseException:  # a Ctrl-C here: the blocks go now, not by the resource tracker with a warning
        buffer.close()
        weights.close()
        raise
    return weights, buffer, handles


def segment_transitions(settings: Settings) -> int:
    """Transitions in one segment of a shared worker: ``ENVS_PER_WORKER`` envs, each stepped
    ``training.update_interval`` / ``ENVS_PER_WORKER`` times, rounded up (see segment_shape)."""
    steps, envs = segment_shape(settings.training.update_interval, ENVS_PER_WORKER)
    return steps * envs


def sync_quota(settings: Settings, workers: int) -> int:
    """Segments each of ``workers`` sync-mode workers writes per policy version under ``settings``."""
    return sync_segments_per_version(settings.training.min_batch_size, workers, segment_transitions(settings))


class IndependentBackend:
    """Independent mode: each worker trains a fresh PPO on its individual, then evaluates it."""

    JOB = "morphelites.independent:train_and_evaluate"

    def __init__(self, settings: Settings, workers: int, multiprocess: bool) -> None:
        self.settings = settings
        self.pool = (WorkerPool(workers, self.JOB, "independent worker", ipc_timeout=settings.training.ipc_timeout)
                     if multiprocess else SerialPool(self.JOB))  # fmt: skip

    def start(self) -> None:
        self.pool.start()

    @property
    def idle(self) -> list[int]:
        return self.pool.idle

    def submit(self, worker: int, individual: Individual, kind: str = "train") -> None:
        """Hand ``individual`` to idle ``worker``, which trains a fresh PPO on its body and then
        evaluates it. ``kind`` must be ``"train"`` (ValueError otherwise)."""
        if kind != "train":
            raise ValueError("independent mode has no shared policy to re-evaluate elites with")
        self.pool.submit(worker, individual.id, (individual, self.settings))

    def poll(self, timeout: float) -> list[PoolEvent]:
        """Outcomes that arrive within ``timeout`` seconds (a ``done`` event's value is an
        IndividualResult); dead and stalled workers are reported and replaced (WorkerPool.poll).
        Without multiprocessing the submitted task runs now instead, whatever ``timeout`` says."""
        return self.pool.poll(timeout)

    def raise_deferred_failure(self) -> None:
        """Raise a worker crash loop that a poll found beside the results it returned."""
        self.pool.raise_deferred_failure()

    def pids(self) -> dict[str, int]:
        return {f"worker {i}": pid for i, pid in self.pool.pids().items()}

    def take_events(self) -> list[dict[str, Any]]:
        """Learner events since the last call (none in independent mode)."""
        return []

    def stats(self) -> dict[str, float]:
        """``worker_restarts`` and ``worker_stalls``: counts so far, as floats."""
        return {"worker_restarts": float(self.pool.restarts), "worker_stalls": float(self.pool.stalls)}

    #: Independent mode counts no steps of a task that did not finish: its PPO is gone with it.
    in_flight_training_steps = 0

    def close(self, graceful: bool = True) -> None:
        self.pool.close(graceful=graceful)


class SharedPPOSystem:
    """Shared mode: one learner process, ``workers`` worker processes, shared weights and buffer.

    Args:
        settings: the run's settings (training section: buffer_size, min_batch_size, update_interval).
        workers: worker processes.
        checkpoint_dir: where the learner writes ``learner-*.pkl``.
        resume: the learner restores its newest checkpoint.
        sync: every update uses only data of the current policy version (lag 0).
        max_policy_lag: segments older than this many versions are dropped (and counted).
        counters_floor: work counters (``updates``, ``samples_consumed``, ``skipped_updates``) and
            the largest lag seen (``max_lag_seen``) the learner continues from at least (a resumed
            run: those of its metrics.csv); see :class:`LearnerOptions`.
        version_floor: a resumed run's newest recorded policy version; see :class:`LearnerOptions`.
        session: the run's session, 0 for its first (see SharedHandles).
        block_prefix: the start of the names of its shared-memory blocks (see shm.run_block_prefix).
    """

    WORKER_JOB = "morphelites.parallel.shared_worker:run_task"

    def __init__(self, settings: Settings, workers: int, checkpoint_dir: Path, resume: bool,
                 sync: bool = False, max_policy_lag: int = 4, counters_floor: dict[str, int] | None = None,
                 version_floor: int = 0, session: int = 0, block_prefix: str | None = None) -> None:  # fmt: skip
        self.settings = settings
        self.workers = workers
        self._counters_floor = dict(counters_floor or {})
        self._version_floor = version_floor
        self.checkpoint_dir = checkpoint_dir
        self.sync = sync
        self.max_policy_lag = max_policy_lag
        self.weights, self.buffer, self.handles = create_shared_state(settings, workers, sync, max_policy_lag, session,
                                                                      block_prefix)  # fmt: skip
        try:  # nobody would close() a system that was never made: its shared memory would stay in /dev/shm
            self._ctx = mp.get_context("spawn")
            self._stop = SharedFlag(self._ctx)
            self._freeze = SharedFlag(self._ctx)  # freeze_learner()
            self._active = self._ctx.Value("i", 0, lock=False)  # busy_workers
            self._learner_beat = Heartbeats(1, self._ctx)
            self.pool = WorkerPool(workers, self.WORKER_JOB, "shared_ppo worker", on_died=self.buffer.reset_worker,
                                   ipc_timeout=settings.training.ipc_timeout)  # fmt: skip
        except BaseException:  # a semaphore or heartbeat array in a /dev/shm that just filled, say
            self.buffer.close()
            self.weights.close()
            raise
        self.frozen_version: int | None = None  # the version the learner reported it froze at
        self._kinds: dict[int, str] = {}  # worker -> kind of its last task ("train" or "evaluate")
        self.learner: Any = None
        self._stats_recv: Any = None
        self._resume = resume
        self.learner_stats: dict[str, float] = {}
        self._learner_stats_at = 0.0  # when learner_stats came (monotonic s)
        self.longest_update_s = 0.0  # of the updates reported: how long a stopped learner may need (learner_stop_wait_s)
        self.learner_events: list[dict[str, Any]] = []
        self.learner_restarts = 0
        self.learner_stalls = 0
        self._deaths_in_row = 0
        self._learner_gone: LearnerDied | None = None  # found by a poll that also had results to return
        self._learner_unstarted: tuple[int, float] | None = None  # a refused replacement: (tries, next try at, monotonic s)
        self._written_at_submit: dict[int, int] = {}  # worker -> buffer.written(worker) when its task was sent
        #: Env steps that the train tasks still in flight when the workers were stopped had committed
        #: (the learner trains on them; no result or death reports them). Set by close().
        self.in_flight_training_steps = 0
        self._closed = False  # closing has begun: no more restarts
        self._shut_down = False  # closing has finished
        self._final_occupancy: dict[str, float] | None = None  # the buffer's figures as close() freed it

    def _start_learner(self, resume: bool) -> None:
        floor = dict(self._counters_floor)
        for name, key in {**COUNTER_COLUMNS, **LAG_TOTALS}.items():
            if key in self.learner_stats:
                floor[name] = max(floor.get(name, 0), int(self.learner_stats[key]))
        busy_s, active_s = (float(self.learner_stats.get(key, 0.0)) for key in LEARNER_TIME_KEYS)
        if self.learner_stats:  # a replacement: the time since its predecessor's last report (its stall, its
            active_s += time.monotonic() - self._learner_stats_at  # death, this restart) was not spent updating
        options = LearnerOptions(self.settings, self.handles, str(self.checkpoint_dir), resume,
                                 self.max_policy_lag,
                                 checkpoint_every_updates=self.settings.training.learner_checkpoint_every,
                                 checkpoints_kept=self.settings.evolution.checkpoints_kept,
                                 seed=self.settings.evolution.seed + self.learner_restarts,
                                 counters_floor=floor or None, time_floor_s=(busy_s, active_s),
                                 version_floor=self._version_floor)  # fmt: skip
        if self._stats_recv is not None:
            self._stats_recv.close()
        self.frozen_version = None  # a frozen learner that died: its successor reports again
        self._stats_recv, stats_send = self._ctx.Pipe(duplex=False)
        self._learner_beat.stamp(0, STARTUP_GRACE_S)
        learner = self._ctx.Process(target=learner_main, name="shared_ppo learner", daemon=True,
                                    args=(options, stats_send, self._stop, self._active, self._learner_beat.array,
                                          os.getpid(), self._freeze))  # fmt: skip
        try:
            with one_native_thread_per_process(), children_start_deaf_to_stop_signals(), children_skip_the_main_script():
                learner.start()
        finally:
            stats_send.close()
        # Only a started process: close() joins it (a failed start, e.g. fork refused under memory
        # pressure, left one that join() refuses, and close() then freed no shared memory).
        self.learner = learner

    def start(self) -> None:
        self._start_learner(self._resume)
        self.pool.start()

    @property
    def idle(self) -> list[int]:
        return self.pool.idle

    def freeze_learner(self) -> None:
        """Ask the learner to train on every whole batch still in the buffer and then keep its
        weights; :attr:`frozen_version` is set (by :meth:`poll`) once it has. For the final
        re-evaluation, which must score every elite with one policy."""
        self._freeze.set()

    @property
    def busy_workers(self) -> int:
        """Workers the learner counts as busy (a sync update waits for each one's segments): those
        with a ``train`` task, and, until the next :meth:`poll`, those whose result the last poll
        returned. A worker evaluating elites writes no segments, so nothing waits for it."""
        return int(self._active.value)

    def submit(self, worker: int, individual: Individual, kind: str = "train") -> None:
        """Hand ``individual`` to idle ``worker``: ``kind`` ``"train"`` (act
        ``training_steps_per_individual`` env steps into the buffer, then evaluate the current
        policy) or ``"evaluate"`` (evaluate only: the re-evaluation of elites)."""
        if kind == "train":  # counted before the task is sent: sync mode's handshake (learner.py) relies on it
            self._active.value = max(self._active.value, self._training_in_flight() + 1)
        # before the task goes: a worker quick to commit its first segment must not slip under the baseline
        self._written_at_submit[worker] = self.buffer.written(worker)
        self.pool.submit(worker, individual.id, (worker, kind, individual, self.settings, self.handles))
        self._kinds[worker] = kind

    def _training_in_flight(self) -> int:
        """Workers busy with a train task (one killed as stalled that lives on has none: the pool
        gives its task up at once, or a sync update would wait for its segments forever)."""
        return sum(self._kinds[w] == "train" for w in self.pool.in_flight)

    def poll(self, timeout: float) -> list[PoolEvent]:
        """Worker outcomes that arrive within ``timeout`` seconds (a ``done`` event's value is an
        IndividualResult; the rest as WorkerPool.poll), then a look at the learner: a stalled one
        is killed, a dead one restarted. Raises LearnerDied when the learner may not be restarted
        again: at once if there are no events to return, else from the next call."""
        # The busy count drops only here, before waiting: by then the caller has handed out its
        # next tasks, so a worker between two bodies is not left out of a sync update meanwhile
        # (the handshake would make it wait for the next version, not lose data, but it need not wait).
        if self._learner_gone is not None:
            raise self._learner_gone
        self._active.value = self._training_in_flight()
        events = self.pool.poll(timeout)
        # A train task that died or raised had handed training on (a dead worker's replacement writes
        # nothing before it gets a task, so the count is the dead one's)
        for event in events:
            if event.kind in ("died", "error") and event.task_id is not None and self._kinds.get(event.worker) == "train":
                event.env_steps = self.buffer.written(event.worker) - self._written_at_submit.get(event.worker, 0)
        self._read_learner_stats()
        try:
            self._watch_learner()
        except LearnerDied as gone:
            if not events:
                raise
            self._learner_gone = gone  # the caller records these results and deaths first; the next poll raises
        return events

    def raise_deferred_failure(self) -> None:
        """Raise a learner death or worker crash loop that a poll found beside the results it
        returned, which the next poll would raise: for a caller that has no next poll because
        those were the last results. Without this, a learner that died for good with the run's
        last results let it end as completed, its final checkpoint never written."""
        if self._learner_gone is not None:
            raise self._learner_gone
        self.pool.raise_deferred_failure()

    def _watch_learner(self) -> None:
        """Kill a stalled learner; restart a dead one from its newest checkpoint, or give up."""
        if self._closed:
            return
        if self._learner_unstarted is not None:  # a replacement the system refused to start
            tries, due = self._learner_unstarted
            if time.monotonic() >= due:
                self._start_replacement_learner(tries)
            return
        timeout = self.settings.training.ipc_timeout
        if self.learner.is_alive():
            if self._learner_beat.restamp_after_own_pause(timeout / 2):
                return
            age = self._learner_beat.age(0)
            if age <= timeout:
                return
            self.learner_stalls += 1
            self.learner_events.append({"event": "learner_stalled", "seconds": age, "ipc_timeout": timeout})
            self.learner.kill()
            self.learner.join(timeout=5.0)
        self.learner.join(timeout=1.0)
        self._read_learner_stats()
        exit_code = self.learner.exitcode
        self._deaths_in_row += 1
        allowed = self.settings.training.max_learner_restarts
        if self._deaths_in_row > allowed:
            raise LearnerDied(
                f"The shared PPO learner process died {self._deaths_in_row} time(s) in a row (last exit code "
                f"{exit_code}; training.max_learner_restarts is {allowed}), so the run stops here. Its last checkpoint "
                f"is intact and --resume continues from it; see training.log for what it printed "
                f"before it died."
            )
        self.learner_restarts += 1
        self.learner_events.append({"event": "learner_died", "exit_code": exit_code, "restart": self.learner_restarts,
                                    "in_row": self._deaths_in_row, "allowed": allowed})  # fmt: skip
        self._start_replacement_learner(tries=0)

    def _start_replacement_learner(self, tries: int) -> None:
        """Start the dead learner's replacement, after ``tries`` refused starts. A refusal (fork or a
        pipe: EAGAIN under a pids limit, EMFILE, memory) is tried again by a later poll, each wait
        twice the last (``pool.START_RETRY_S`` first), not counted as another death; after
        ``pool.MAX_START_TRIES`` the run stops."""
        try:
            self._start_learner(resume=True)
        except OSError as error:
            tries += 1
            reason = f"{type(error).__name__}: {error}"
            if tries >= MAX_START_TRIES:
                raise LearnerDied(
                    f"The shared PPO learner's replacement could not be started {tries} times in a row (last: {reason}): "
                    f"this system refuses new processes (a limit on processes or open files, or memory), so the run "
                    f"stops here. Its last checkpoint is intact; free what the system lacks and continue with "
                    f"--resume."
                ) from None  # fmt: skip
            self._learner_unstarted = (tries, start_retry_at(tries))
            self.learner_events.append({"event": "learner_start_failed", "error": reason, "tries": tries})
            return
        self._learner_unstarted = None

    def _read_learner_stats(self) -> None:
        try:
            while self._stats_recv.poll():
                message = self._stats_recv.recv()
                if message.get("event") in ("update", "idle", "stopped"):
                    self.learner_stats = message
                    self._learner_stats_at = time.monotonic()
                    if message.get("event") == "update":
                        self.longest_update_s = max(self.longest_update_s, float(message.get("update_s", 0.0)))
                else:
                    if message.get("event") == "frozen":
                        self.frozen_version = int(message["version"])
                    if message.get("event") == "checkpoint":
                        self._deaths_in_row = 0  # the restarted learner made progress that is kept
                    self.learner_events.append(message)
        except (EOFError, OSError):
            pass

    def take_events(self) -> list[dict[str, Any]]:
        """Learner events (e.g. the checkpoint it restored) since the last call."""
        events, self.learner_events = self.learner_events, []
        return events

    def pids(self) -> dict[str, int]:
        named = {f"worker {i}": pid for i, pid in self.pool.pids().items()}
        if self.learner is not None and self.learner.pid is not None:
            named["learner"] = self.learner.pid
        return named

    def stats(self) -> dict[str, float]:
        """Counters as floats: ``worker_restarts``, ``worker_stalls``, ``learner_restarts``,
        ``learner_stalls``; from the learner's last report (absent before it) ``policy_version``,
        ``policy_updates``, ``samples_consumed``, ``skipped_updates``, ``mean_policy_lag`` and
        ``max_policy_lag`` (versions), ``learner_utilisation`` (share of its time spent
        updating); and the buffer's :meth:`~SharedExperienceBuffer.occupancy` read now (after
        :meth:`close`: as it freed it)."""
        keys = ("policy_version", "policy_updates", "samples_consumed", "mean_policy_lag", "max_policy_lag",
                "learner_utilisation", "buffer_transitions", "buffer_mb", "buffer_capacity", "transitions_written",
                "transitions_consumed", "segments_dropped_lag", "producer_waits", "skipped_updates")  # fmt: skip
        # The buffer's counters live in shared memory: read now, not as of the learner's last message
        # (which a learner killed at the end, or dead, never sent), and once the buffer is freed as
        # close() read them last.
        live = self._final_occupancy if self._final_occupancy is not None else self.buffer.occupancy()
        return {"worker_restarts": float(self.pool.restarts), "worker_stalls": float(self.pool.stalls),
                "learner_restarts": float(self.learner_restarts), "learner_stalls": float(self.learner_stalls),
                **{k: float(self.learner_stats[k]) for k in keys if k in self.learner_stats}, **live}  # fmt: skip

    def close(self, graceful: bool = True) -> None:
        """Stop workers, then the learner (it writes a final checkpoint), then free shared memory.

        Safe to call twice: a call cut short (a second Ctrl-C while it waited for the learner) is
        finished by the next one, which stops the learner without waiting for its final checkpoint.
        """
        if self._shut_down:
            return
        cut_short = self._closed
        graceful = graceful and not cut_short
        self._closed = True
        training = [w for w in self.pool.in_flight if self._kinds.get(w) == "train"]
        self.pool.close(graceful=graceful, timeout=5.0 if graceful else 0.0)
        # the workers have stopped (a call cut short is finished by the next): what they committed is final
        self.in_flight_training_steps = sum(max(0, self.buffer.written(w) - self._written_at_submit.get(w, 0))
                                            for w in training)  # fmt: skip
        self._stop.set()
        if self.learner is None:  # never started
            if self._stats_recv is not None:
                self._stats_recv.close()
            self._final_occupancy = self.buffer.occupancy()
            self.buffer.close()
            self.weights.close()
            self._shut_down = True
            return
        self.learner.join(timeout=0.0 if cut_short else learner_stop_wait_s(graceful, self.longest_update_s))
        if self.learner.is_alive():  # it ignores SIGTERM (pool.ignore_stop_signals); its last checkpoint stays
            self.learner.kill()
            self.learner.join(timeout=2.0)
        if self.learner.exitcode is not None:  # its descriptors go now, not when the trainer is collected (review)
            self.learner.close()
            self.learner = None
        self._read_learner_stats()
        self._stats_recv.close()
        self._final_occupancy = self.buffer.occupancy()
        self.buffer.close()
        self.weights.close()
        self._shut_down = True


class SerialSharedBackend:
    """Shared mode in one process, for debugging and exact tests: the same worker and learner
    objects, stepped in turn (the learner takes what is ready after every segment), so a run is
    reproducible to the bit under a seed."""

    def __init__(self, settings: Settings, checkpoint_dir: Path, resume: bool, sync: bool = False,
                 max_policy_lag: int = 4, counters_floor: dict[str, int] | None = None,
                 version_floor: int = 0, session: int = 0, block_prefix: str | None = None) -> None:  # fmt: skip
        from morphelites.parallel.learner import SharedPPOTrainer
        from morphelites.parallel.shared_worker import MultiProcessPPOWorker

        self.settings = settings
        self.weights, self.buffer, self.handles = create_shared_state(settings, 1, sync, max_policy_lag, session, block_prefix)
        options = LearnerOptions(settings, self.handles, str(checkpoint_dir), resume, max_policy_lag,
                                 checkpoint_every_updates=settings.training.learner_checkpoint_every,
                                 checkpoints_kept=settings.evolution.checkpoints_kept,
                                 seed=settings.evolution.seed, counters_floor=counters_floor or None,
                                 version_floor=version_floor)  # fmt: skip
        try:
            self.learner = SharedPPOTrainer(options)
            self.worker = MultiProcessPPOWorker(0, self.handles, after_segment=self._learn)
        except BaseException:  # nobody would close() a backend that was never made
            self.buffer.close()
            self.weights.close()
            raise
        self.learner_events: list[dict[str, Any]] = [self.learner.restored_event()] if resume else []
        self.frozen_version: int | None = None  # freeze_learner()
        self._task: tuple[Individual, str] | None = None
        self._closed = False  # closing has begun
        self._shut_down = False  # closing has finished
        #: A task runs whole inside poll(), so one is in flight at a stop only when a second Ctrl-C
        #: cut it short: the transitions it had written, which the learner took after each segment.
        self.in_flight_training_steps = 0

    def _learn(self) -> None:
        self.learner.drain()
        while self.learner.decide_update(lambda: 1):
            record = self.learner.update()
            if "skipped" in record:
                self.learner_events.append({"event": "skipped_update", "reason": record["skipped"],
                                            "update": self.learner.updates, "skipped_updates": self.learner.skipped_updates})  # fmt: skip
            if self.learner.updates % self.learner.options.checkpoint_every_updates == 0:
                self._checkpoint()
            self.learner.drain()

    def freeze_learner(self) -> None:
        """As :meth:`SharedPPOSystem.freeze_learner`; here the learner has already trained on every
        whole batch (it learns after each segment), so it only checkpoints and reports."""
        self._learn()
        self.learner.frozen_at = time.monotonic()  # its active time ends here, as the learner process's
        self._checkpoint()
        event = self.learner.frozen_event()
        self.learner_events.append(event)
        self.frozen_version = event["version"]

    def _checkpoint(self, final: bool = False) -> None:
        event = self.learner.checkpoint_event(final)
        if event["event"] == "checkpoint_failed":
            self.learner_events.append(event)

    def start(self) -> None:
        pass

    @property
    def idle(self) -> list[int]:
        return [] if self._task is not None else [0]

    def submit(self, worker: int, individual: Individual, kind: str = "train") -> None:
        """Keep the task (``kind`` as in :meth:`SharedPPOSystem.submit`) for :meth:`poll` to run."""
        self._task = (individual, kind)

    def poll(self, timeout: float) -> list[PoolEvent]:
        """Run the submitted task to its end in this process, the learner updating after every
        segment (``timeout`` is not waited on); returns its ``done`` or ``error`` event, or no
        event without a task."""
        if self._task is None:
            return []
        individual, kind = self._task
        self._task = None
        written = self.buffer.written(0)
        try:
            if kind == "train":
                result = self.worker.train(individual, self.settings)
            else:
                result = self.worker.evaluate_only(individual, self.settings)
        except Exception:  # as a pool worker reports it: the trainer tries once more, then fails the run
            return [PoolEvent("error", 0, individual.id, traceback.format_exc(), env_steps=self.buffer.written(0) - written)]
        except KeyboardInterrupt:  # a second Ctrl-C cut the task short
            self.in_flight_training_steps = self.buffer.written(0) - written
            raise
        return [PoolEvent("done", 0, individual.id, result)]

    def raise_deferred_failure(self) -> None:
        """Nothing is ever deferred: learner and worker run in this process."""

    def take_events(self) -> list[dict[str, Any]]:
        """Learner events (e.g. the checkpoint it restored) since the last call."""
        events, self.learner_events = self.learner_events, []
        return events

    def pids(self) -> dict[str, int]:
        return {}

    def stats(self) -> dict[str, float]:
        """``worker_restarts`` (0) and :meth:`SharedPPOTrainer.stats` (lags in versions, times in
        seconds, the buffer's occupancy); after :meth:`close`, those of when it closed."""
        return {"worker_restarts": 0.0, **(self._final_stats if self._closed else self.learner.stats())}

    def close(self, graceful: bool = True) -> None:
        """Write the learner's final checkpoint, then free shared memory. Safe to call twice: a
        call cut short (a second Ctrl-C during the checkpoint) is finished by the next one,
        without the checkpoint."""
        if self._shut_down:
            return
        if not self._closed:
            self._final_stats = self.learner.stats()
            self._closed = True
            try:
                self._checkpoint(final=True)
            except Exception as error:  # a bug, or a module a second Ctrl-C left half imported: free the blocks all the same
                self.learner_events.append({"event": "checkpoint_failed", "updates": self.learner.updates, "final": True,
                                            "error": f"{type(error).__name__}: {error}"})  # fmt: skip
        self.worker.weights.close()
        self.worker.buffer.close()
        self.learner.close()
        self.buffer.close()
        self.weights.close()
        self._shut_down = True
