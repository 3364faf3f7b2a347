"""SharedPPOTrainer: the learner process, owner of the only trainable policy.

Loop: take the workers' whole segments, oldest commit first (dropping, and counting, those whose
policy lag exceeds ``max_policy_lag``), until ``min_batch_size`` transitions are pending; the rest
stay in the ring for later batches (sync mode takes every one, see
:meth:`SharedPPOTrainer.drain`). Once a batch is pending (in sync mode: once every busy worker
has delivered its segments of this version), recompute values and GAE with the *current*
critic, run the PPO update with the *behaviour* log-probs in the ratio (or, with
``training.clip_against="proximal"``, Decoupled PPO's ratio against the update's starting
policy, weighted by that policy over the behaviour one), fold the batch into the observation
normaliser, and publish the new weights as version k+1.

Why GAE with the current critic: segments are short (T*K ~ update_interval steps) and the lag is
a few versions at most, so the behaviour policy is close to the current one and the ratio's
importance weight corrects the policy term for the lag (its clip, though, is around the behaviour
policy, not the current one; ``clip_against="proximal"`` moves it). The values come from a critic
that keeps improving, and stale values bias every advantage. Recomputing them costs one critic
forward over the batch.
Measured (benchmarks/learner_targets.py, 5 seeds, mean lag ~3 versions; README, "Learner value
targets"): at this lag the benchmark does not tell current-critic GAE, behaviour-critic GAE and
V-trace (``value_targets="vtrace"``, which also corrects the targets for the policy change) apart;
three runs ordered the first two differently (level over their 15 seed pairs), and V-trace's mean,
never ahead, stayed within the seeds' spread; every gap was smaller than the spread between seeds. The
current critic is kept for the reason above, which grows with the lag; the other two stay options
to measure again if lags grow.

With ``training.join_segments`` the consecutive segments of one worker's env stream in a batch
are joined first, so that GAE or V-trace runs across their ends (parallel/streams.py; off by
default, see its measurement in the config's docstring).

Sync mode's handshake: the learner decides an update from the number of busy workers, and a
worker given a body just then may not have been counted; its first segment would be a version
old, and dropped. So the learner first marks the version as closing, then counts the busy workers
again (:meth:`SharedPPOTrainer.decide_update`), and a worker never starts a segment with a
version marked closing (it waits for the next). One of the two sees the other: either the
second count includes the worker (the learner waits for its segments), or the worker sees the
mark. No lock is shared, so a process killed at any moment cannot wedge the others.

Reward scaling lives here, not in the workers, so that every worker's experience is scaled
alike: a running std of the discounted return, tracked per (worker, env) stream.
"""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any, Callable

import numpy as np

from morphelites.config import Settings
from morphelites.normalization import RunningMeanStd, scale_rewards
from morphelites.parallel import heartbeat
from morphelites.parallel.buffer import SEGMENT_ARRAYS, SharedExperienceBuffer, TakenSegment
from morphelites.parallel.pool import die_with_parent, exit_without_teardown, ignore_stop_signals, set_process_title
from morphelites.parallel.shared_worker import SharedHandles
from morphelites.parallel.streams import join_consecutive
from morphelites.parallel.weights import SharedWeights
from morphelites.seeding import Stream, stream_seed

__all__ = ["LearnerOptions", "SharedPPOTrainer", "learner_main", "newest_learner_checkpoint", "LEARNER_CHECKPOINT",
           "COUNTER_COLUMNS", "LAG_TOTALS", "LEARNER_TIME_KEYS"]

LEARNER_CHECKPOINT = "learner"
_FORMAT = "morphelites-learner-1"
#: Fields of a learner checkpoint that restoring reads.
_FIELDS = ("policy", "optimizer", "return_rms", "version", "updates", "samples_consumed", "skipped_updates")


@dataclass(frozen=True)
class LearnerOptions:
    """What the learner process is started with."""

    settings: Settings
    handles: SharedHandles
    checkpoint_dir: str
    resume: bool
    max_policy_lag: int  # in sync mode the learner uses 0 whatever this says (lag_limit)
    checkpoint_every_updates: int = 20
    checkpoints_kept: int = 3
    seed: int = 0
    #: Work counters (``updates``, ``samples_consumed``, ``skipped_updates``, and the
    #: :data:`LAG_TOTALS`) that the learner this one replaces had reached (a restart within a
    #: run), or that metrics.csv holds (a resumed run).
    #: A restart from an older checkpoint continues them from here, so that they count all work
    #: done (updates lost with the dead learner included) and the learner columns of metrics.csv
    #: never step back; the restored policy is still the checkpoint's.
    counters_floor: dict[str, int] | None = None
    #: Seconds the learners this one replaces (a restart within a run) spent updating and were
    #: alive, as ``(busy_s, active_s)``, so that ``learner_utilisation`` covers this run's whole
    #: learner time. Not carried over by ``--resume``: there it covers the resumed part.
    time_floor_s: tuple[float, float] = (0.0, 0.0)
    #: A resumed run: the newest policy version its files record (results.jsonl, metrics.csv,
    #: reevaluations.csv). A checkpoint older than that (a hard stop between two checkpoints) is
    #: published as ``version_floor + 1``, so that a recorded version never names two policies.
    version_floor: int = 0


#: Sync mode: the sleep between marking a version closing and counting the busy workers again.
_BARRIER_SLEEP_S = 0.0005

#: The learner's work counters (the names ``counters_floor`` takes) and their metrics.csv columns.
COUNTER_COLUMNS = {"updates": "policy_updates", "samples_consumed": "samples_consumed", "skipped_updates": "skipped_updates"}
#: Running totals of the policy lag of the segments taken (names ``counters_floor`` also takes, and
#: their keys in the learner's statistics). Checkpointed, and carried over to a restarted learner
#: like the work counters, so that mean_policy_lag and max_policy_lag cover the whole run.
LAG_TOTALS = {"lag_sum": "policy_lag_sum", "lag_count": "policy_lag_count", "max_lag_seen": "max_policy_lag"}
#: The learner's statistics a supervisor passes to a restarted learner as ``time_floor_s``.
LEARNER_TIME_KEYS = ("learner_busy_s", "learner_active_s")


#: The lag of experience acted by weights a restarted learner did not publish (:meth:`SharedPPOTrainer.lag`).
_UNKNOWN_LAG = 2**31 - 1


class SharedPPOTrainer:
    """The learner's state and one step of its loop (usable in-process for tests).

    Args:
        options: settings, shared-memory handles, checkpoint place.
    """

    def __init__(self, options: LearnerOptions) -> None:
        import torch

        from morphelites.policy import ActorCritic
        from morphelites.policy_numpy import PolicySpec
        from morphelites.ppo import PPOUpdater

        self.options = options
        settings = options.settings
        torch.set_num_threads(settings.ppo.torch_threads)
        torch.manual_seed(options.seed)
        self.model = ActorCritic(PolicySpec.from_dict(options.handles.spec))
        self.updater = PPOUpdater(self.model, settings.ppo.with_default_epochs(evolution=True),
                                  seed=stream_seed(options.seed, Stream.MINIBATCHES),
                                  clip_against=settings.training.clip_against, on_minibatch=heartbeat.beat)
        self.weights = SharedWeights.attach(options.handles.weights_name, options.handles.weights_size)
        self.buffer = SharedExperienceBuffer.attach(options.handles.buffer_name, options.handles.layout)
        self.buffer.finish_torn_releases()  # of a learner this one replaces, killed mid-release
        self.return_rms = RunningMeanStd(())
        # Per worker: the body (individual id) and worker incarnation its K reward streams belong
        # to, and their running discounted returns (K,), the statistic reward scaling divides by
        # the spread of: worker -> ((body, incarnation), returns).
        self.running_returns: dict[int, tuple[tuple[int, int], np.ndarray]] = {}
        self.version = 1
        self.updates = 0
        self.samples_consumed = 0
        self.skipped_updates = 0
        self.lag_sum, self.lag_count, self.max_lag_seen = 0, 0, 0
        self.pending: list[dict[str, np.ndarray]] = []
        self.busy_s = options.time_floor_s[0]  # s spent updating
        self.started = time.monotonic() - options.time_floor_s[1]  # as if alive since the first learner started
        # When it froze for the final re-evaluation (monotonic s): its active time ends there, or the
        # utilisation in summary.json would count the round and the shutdown as idle (found in review).
        self.frozen_at: float | None = None
        self.restored_from: str | None = None
        self.last_checkpoint_error: str | None = None
        self.skipped_checkpoints: list[str] = []  # why each unusable checkpoint was passed over
        self.restore_notes: list[str] = []  # what differs in the restored checkpoint, for the run's log
        if options.resume:
            self._restore()
        self.restored_updates = self.updates  # as in the checkpoint, for the "restored" message
        self.restored_samples = self.samples_consumed  # likewise
        self.restored_version = self.version  # likewise (the version published may be moved on below)
        floor = options.counters_floor or {}
        # Updates made after that checkpoint by the learner(s) this one replaces, or before a
        # resumed run stopped: lost. (Counted from updates, not versions: each restart also
        # moves the version on once without an update.)
        self.lost_updates = max(0, int(floor.get("updates", 0)) - self.restored_updates)
        for name, value in floor.items():
            setattr(self, name, max(getattr(self, name), int(value)))
        if self.version < options.version_floor:
            self.version = options.version_floor + 1
        # A learner restarted after a crash: its predecessor may have published versions newer
        # than the checkpoint; the version counter moves on past them so that every worker
        # refreshes and no two different weight vectors share a version.
        published = self.weights.version
        if published > 0 and published >= self.version:
            self.version = published + 1
        self.first_published = self.version  # the restored (or fresh) weights, under this learner's first version
        self._publish(self.model.flat_weights())

    def _publish(self, flat: np.ndarray) -> None:
        """Publish ``flat`` (the model's weights) as ``self.version`` and keep it as the last good one."""
        self._published = flat
        self.weights.publish(flat, self.version)

    def _restore_published(self, normaliser: dict[str, Any]) -> None:
        """Put the model back to the last published weights and ``normaliser`` (its statistics
        before this update); Adam's moments are cleared if they are no longer finite."""
        import torch

        self.model.load_flat_weights(self._published)
        self.model.obs_rms.load_state_dict(normaliser)
        self.model._sync_normaliser()
        moments = [t for state in self.updater.optimizer.state.values() for t in state.values()
                   if isinstance(t, torch.Tensor)]
        if not all(bool(t.isfinite().all()) for t in moments):
            self.updater.optimizer.state.clear()

    # ------------------------------------------------------------------ loop body
    def drain(self) -> int:
        """Copy READY segments out of the buffer, oldest commit first, until ``min_batch_size``
        transitions are pending; returns the segments kept. Segments past the lag limit are
        dropped (and counted) as they come, even once the batch is full (that only frees their
        slots). Stops at a segment not yet wholly visible here (:meth:`SharedExperienceBuffer.take`).
        Leaving the rest in the ring makes producers wait when the learner is slower, so memory
        stays within the ring's capacity (at most ``buffer_size``, or two segments per worker
        where that is more: :attr:`BufferLayout.capacity`) plus the pending batch.

        In sync mode every READY segment is taken: each is of the current version, and one left
        behind would be a version old after the update, and dropped."""
        taken = 0
        batch_size = self.options.settings.training.min_batch_size
        sync = self.options.handles.sync
        for slot in self.buffer.ready_slots():
            lag = self.lag(slot.version)
            if not sync and lag <= self.lag_limit and self.pending_transitions >= batch_size:
                break
            segment = self.buffer.take(slot)
            if segment is None:  # not yet wholly visible here; later ones wait too, to keep the commit order
                break
            lag = self.lag(segment.version)
            self._advance_returns(segment)  # in commit order, dropped segments too: each stream stays whole
            if lag > self.lag_limit:
                self.buffer.release(slot, dropped_for_lag=True)
                continue
            self.pending.append(dict(segment.arrays) | {"worker": segment.worker, "incarnation": segment.incarnation,
                                                        "individual": segment.individual_id, "lag": lag})  # fmt: skip
            self.lag_sum, self.lag_count = self.lag_sum + lag, self.lag_count + 1
            self.max_lag_seen = max(self.max_lag_seen, lag)
            self.buffer.release(slot)
            taken += 1
        return taken

    def lag(self, version: int) -> int:
        """Updates between the weights published as ``version`` and the current ones, for a version
        this learner published. An older version (a restarted learner's buffer still holds the
        experience its predecessors' weights acted) is given a lag past any limit, so that it is
        dropped and counted: its weights may lie on updates that were lost with a predecessor
        (made after its last checkpoint), at a distance no version number tells once restarts
        follow each other (seen in review: such data counted as 1-4 versions old). At most a
        buffer's worth is dropped per restart."""
        if version >= self.first_published:
            return self.version - version
        return _UNKNOWN_LAG

    @property
    def lag_limit(self) -> int:
        """The most policy versions a segment may lag and still be trained on: ``max_policy_lag``,
        or 0 in sync mode (every update uses only data of the current version)."""
        return 0 if self.options.handles.sync else self.options.max_policy_lag

    @property
    def pending_transitions(self) -> int:
        return sum(seg["rewards"].size for seg in self.pending)

    def ready_to_update(self, active_workers: int = 0) -> bool:
        """Enough data: ``min_batch_size`` transitions. In sync mode: ``segments_per_version``
        segments from as many workers as are busy (``active_workers``). A sync worker waits for the
        new version after its quota, so no more will come from it, and updating before every busy
        worker has delivered would leave the rest a version old, to be dropped for lag. (A worker
        whose body ended part-way through its quota completes it with its next body; one that
        went idle no longer counts as busy.) A dead worker is replaced under the same index, and
        its replacement starts a quota of its own: only the segments of the incarnation now at an
        index count (the buffer's, moved on before the replacement starts). Those of the dead one
        are trained on but fill no quota, neither the replacement's nor one of their own, or the
        update would leave the replacement's segment in progress a version old, to be dropped."""
        if not self.pending:
            return False
        if self.options.handles.sync:
            per_worker = Counter(seg["worker"] for seg in self.pending
                                 if seg["incarnation"] == self.buffer.incarnation(seg["worker"]))  # fmt: skip
            quota = self.options.handles.segments_per_version
            return sum(count >= quota for count in per_worker.values()) >= max(active_workers, 1)
        return self.pending_transitions >= self.options.settings.training.min_batch_size

    def decide_update(self, busy_workers: Callable[[], int]) -> bool:
        """Whether to update now: :meth:`ready_to_update` with ``busy_workers()``; in sync mode
        also the handshake with workers about to start (module docstring).

        Sync mode: mark the version closing, then count again; a worker that became busy in the
        meantime withdraws the decision (and the mark) until it has delivered its segments. The
        sleep between the mark and the count is a full memory barrier (Linux's nanosleep sets the
        task state with one), so no worker can miss the mark while the count misses the worker.
        """
        if not self.ready_to_update(busy_workers()):
            return False
        if not self.options.handles.sync:
            return True
        self.weights.set_closing(self.version)
        time.sleep(_BARRIER_SLEEP_S)
        if self.ready_to_update(busy_workers()):
            return True
        self.weights.set_closing(0)
        return False

    def update(self) -> dict[str, Any]:
        """One PPO update on the pending segments; publishes version+1 (also after a skip: sync
        workers wait for it).

        Returns :meth:`PPOUpdater.update`'s diagnostics (only ``skipped_steps`` where non-finite
        data skipped the whole update), plus ``batch_transitions``, ``update_s`` (wall seconds this
        call took), ``batch_mean_lag`` and ``batch_max_lag`` (policy versions), and ``skipped`` (a
        str: what was skipped or restored, and why) where anything was."""
        from morphelites.ppo import Batch

        start = time.perf_counter()
        ppo = self.options.settings.ppo
        segments, self.pending = self.pending, []
        normaliser_before = self.model.obs_rms.state_dict()  # with self._published, the model before this update
        # Checked before anything learns from the data (the reward statistics were already spared
        # such segments, in _advance_returns): one NaN would poison the weights for good.
        bad = sorted({name for seg in segments for name in SEGMENT_ARRAYS if not np.all(np.isfinite(seg[name]))})
        transitions = sum(seg["rewards"].size for seg in segments)
        parts: list[tuple[np.ndarray, ...]] = []
        streams = join_consecutive(segments) if self.options.settings.training.join_segments else segments
        for seg in streams if not bad else []:
            T, K = seg["rewards"].shape
            values, advantages, returns = self.targets(seg)
            parts.append((seg["obs"].reshape(T * K, -1), seg["actions"].reshape(T * K, -1), seg["logprobs"].reshape(-1),
                          advantages.reshape(-1), returns.reshape(-1), values.reshape(-1)))  # fmt: skip
        if not bad:
            batch = Batch(*(np.concatenate(column) for column in zip(*parts)))
            bad = [name for name, array in zip(Batch._fields, batch) if not np.all(np.isfinite(array))]
        before = self.updater.skipped_steps
        stats = self.updater.update(batch) if not bad else {"skipped_steps": float(self.updater.skipped_steps)}
        skipped: str | None = None
        if bad:
            skipped = f"non-finite values in the batch ({', '.join(bad)}); the whole update was skipped"
        elif self.updater.skipped_steps > before:
            skipped = (f"non-finite loss or gradients in {self.updater.skipped_steps - before:.0f} minibatch step(s); "
                       "those steps were skipped")  # fmt: skip
        if ppo.normalize_obs and not bad:
            self.model.update_normaliser(batch.obs)
        flat = self.model.flat_weights()
        if not np.all(np.isfinite(flat)):  # not expected: PPOUpdater and the normaliser keep them finite
            self._restore_published(normaliser_before)
            flat = self._published
            skipped = (f"{skipped + '; ' if skipped else ''}the weights became non-finite; "
                       f"the last published ones were restored and published again as version {self.version + 1}")  # fmt: skip
        # A new version also after a skip or a restore: sync-mode workers wait for one.
        self.version += 1
        self._publish(flat)
        if skipped:
            self.skipped_updates += 1
        self.updates += 1
        self.samples_consumed += transitions
        self.busy_s += time.perf_counter() - start
        lags = [seg["lag"] for seg in segments]
        return {**stats, "batch_transitions": float(transitions), "update_s": time.perf_counter() - start,
                "batch_mean_lag": float(np.mean(lags)), "batch_max_lag": float(np.max(lags)),
                **({"skipped": skipped} if skipped else {})}  # fmt: skip

    def targets(self, seg: dict[str, Any]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Values, advantages and value targets, each (T, K), of one pending segment, by
        ``training.value_targets``: GAE with the values of the critic being trained
        (``current_critic``; time-limit truncations bootstrapped with it too, from the segment's
        final observations), GAE with the acting critic's values (``behaviour``), or V-trace."""
        import torch

        from morphelites.ppo import compute_gae, compute_vtrace

        ppo = self.options.settings.ppo
        targets = self.options.settings.training.value_targets
        T, K = seg["rewards"].shape
        rewards = self._scale_rewards(seg)
        with torch.no_grad():
            if targets in ("current_critic", "vtrace"):
                truncated = seg["truncated"] > 0
                obs_all = np.concatenate([seg["obs"].reshape(T * K, -1), seg["last_obs"], seg["final_obs"][truncated]])
                inputs, mask = self.model.features(torch.as_tensor(obs_all))
                values_all = self.model.critic_value(inputs).numpy()
                values, last_values = values_all[: T * K].reshape(T, K), values_all[T * K : T * K + K]
                bootstrap = np.zeros((T, K), dtype=np.float32)
                bootstrap[truncated] = values_all[T * K + K :]
            else:
                values, last_values, bootstrap = seg["values"], seg["last_values"], seg["bootstrap"]
            rewards = rewards + ppo.gamma * bootstrap
            if targets == "vtrace":
                # The actor alone, on the rows of the features above that are the segment's steps.
                logp_now, _ = self.model.log_prob_entropy(inputs[: T * K], mask[: T * K],
                                                          torch.as_tensor(seg["actions"].reshape(T * K, -1)))  # fmt: skip
                log_rhos = logp_now.numpy().reshape(T, K) - seg["logprobs"]
                advantages, returns = compute_vtrace(rewards, values, seg["dones"], last_values, log_rhos, ppo.gamma,
                                                     ppo.gae_lambda)  # fmt: skip
            else:
                advantages, returns = compute_gae(rewards, values, seg["dones"], last_values, ppo.gamma, ppo.gae_lambda)
        return values, advantages, returns

    def _advance_returns(self, segment: TakenSegment) -> None:
        """Fold the segment's raw rewards into its worker's running discounted returns and those
        into ``return_rms`` (reward scaling as in SB3's VecNormalize, one stream per env copy).

        Called in commit order for every segment, dropped ones included, so a stream misses no
        step. A stream starts from 0 when its worker moved on to another body (the episodes of
        the last one ended with it) or was restarted (a new process, whose envs start from a
        reset, on the same body too). Non-finite rewards are not folded in (the update skips
        their batch); that stream starts again from 0."""
        if not self.options.settings.ppo.normalize_reward:
            return
        gamma = self.options.settings.ppo.gamma
        rewards, dones = segment.arrays["rewards"], segment.arrays["dones"]
        stream = (segment.individual_id, segment.incarnation)
        last_stream, running = self.running_returns.get(segment.worker, (None, None))
        if last_stream != stream or running is None:
            running = np.zeros(rewards.shape[1])
        if not (np.all(np.isfinite(rewards)) and np.all(np.isfinite(dones))):
            self.running_returns.pop(segment.worker, None)
            return
        returns = np.empty(rewards.shape)  # (T, K): the running return after each step
        for t in range(len(rewards)):
            running = running * gamma + rewards[t]
            returns[t] = running
            running = np.where(dones[t] > 0, 0.0, running)
        # One merge per segment, not per step: the same statistics but for rounding (Chan's merge
        # does not depend on the grouping), at a sixth of the cost (a review profiled ~4% of the
        # learner's time in the per-step updates).
        self.return_rms.update(returns.reshape(-1))
        self.running_returns[segment.worker] = (stream, running)

    def _scale_rewards(self, seg: dict[str, Any]) -> np.ndarray:
        """Raw rewards divided by the running std of discounted returns (see :meth:`_advance_returns`)."""
        if not self.options.settings.ppo.normalize_reward:
            return seg["rewards"]
        return scale_rewards(seg["rewards"], self.return_rms.var).astype(np.float32)

    def stats(self) -> dict[str, float]:
        """Counters for monitoring (sent to the supervisor). ``learner_utilisation``: the share of
        its active time (since it started, until it froze, if it did) spent updating."""
        elapsed = (self.frozen_at if self.frozen_at is not None else time.monotonic()) - self.started
        return {
            "policy_version": float(self.version), "policy_updates": float(self.updates),
            "samples_consumed": float(self.samples_consumed), "skipped_updates": float(self.skipped_updates),
            "mean_policy_lag": self.lag_sum / max(self.lag_count, 1), "max_policy_lag": float(self.max_lag_seen),
            "policy_lag_sum": float(self.lag_sum), "policy_lag_count": float(self.lag_count),
            "learner_utilisation": self.busy_s / max(elapsed, 1e-9), "learner_busy_s": self.busy_s,
            "learner_active_s": elapsed, "pending_transitions": float(self.pending_transitions),
            **self.buffer.occupancy(),
        }  # fmt: skip

    # ------------------------------------------------------------------ checkpoints
    def checkpoint(self) -> Path | None:
        from morphelites.runs.checkpoints import save_checkpoint

        state = {"format": _FORMAT, "policy": self.model.policy_state(), "optimizer": self.updater.optimizer.state_dict(),
                 "return_rms": self.return_rms.state_dict(), "version": self.version, "updates": self.updates,
                 "samples_consumed": self.samples_consumed, "skipped_updates": self.skipped_updates,
                 "skipped_steps": self.updater.skipped_steps, "minibatch_rng": self.updater.rng.bit_generator.state,
                 **{name: getattr(self, name) for name in LAG_TOTALS}}  # fmt: skip
        try:
            path = save_checkpoint(Path(self.options.checkpoint_dir), LEARNER_CHECKPOINT, self.updates, state,
                                   keep=self.options.checkpoints_kept)  # fmt: skip
        except OSError as error:  # disk full, directory gone: keep training, the older checkpoints are intact
            self.last_checkpoint_error = f"{type(error).__name__}: {error}"
            return None
        self.last_checkpoint_error = None
        return path

    def checkpoint_event(self, final: bool = False) -> dict[str, Any]:
        """Write a checkpoint (:meth:`checkpoint`) and return the event that says how it went:
        ``checkpoint`` (file, updates) or ``checkpoint_failed`` (updates, error, ``final``: the run's
        last, after which no learner goes on, so the trainer's log does not advise as for a running one)."""
        path = self.checkpoint()
        if path is not None:
            return {"event": "checkpoint", "file": path.name, "updates": self.updates}
        return {"event": "checkpoint_failed", "updates": self.updates, "error": self.last_checkpoint_error, "final": final}

    def _restore(self) -> None:
        """Load the newest learner checkpoint that is intact and has this run's policy spec.

        Each one skipped (unreadable, another format or version, missing a field, contents that
        cannot be loaded, another policy shape such as a different max_links or hidden_dim) is kept in ``self.skipped_checkpoints``
        as a message naming the file and why; the run writes them to training.log (and so to the
        terminal unless quiet), once. If none is usable the learner starts from a fresh policy
        instead of refusing: the archive and results.jsonl do not depend on the policy and stay
        valid, and this same path restarts a learner that died mid-run, where refusing would end a
        run that can go on. ``restored_from`` stays None, which the run logs in training.log as
        "Learner started from a fresh policy (no usable learner checkpoint)".
        """
        from morphelites.policy import ActorCritic
        from morphelites.runs.checkpoints import CheckpointError, all_of, matching, newest_usable

        def skip(error: CheckpointError, older: int) -> None:
            then = "Trying an older one." if older else "No older one is left: starting from a fresh policy."
            self.skipped_checkpoints.append(f"{error} {then}")

        # input_clip is no shape: the clip is this run's setting (see below)
        fits = all_of(matching("policy shape", self.options.handles.spec, "policy", "spec", ignore=("input_clip",)),
                      _unloadable)  # fmt: skip
        found = newest_usable(Path(self.options.checkpoint_dir), LEARNER_CHECKPOINT, _FORMAT, fits, on_skip=skip,
                              required=_FIELDS)
        if found is None:
            return
        path, state = found
        restored = ActorCritic.from_policy_state(state["policy"])
        if restored.spec.input_clip != self.model.spec.input_clip:  # a checkpoint from before ppo.normalize_obs=False stopped clipping
            self.restore_notes.append(
                f"{path.name}'s policy clipped its inputs to ±{restored.spec.input_clip} (written by a version of "
                f"morphelites that clipped them also with ppo.normalize_obs off); it goes on "
                f"{'unclipped' if self.model.spec.input_clip is None else f'clipped to ±{self.model.spec.input_clip}'}, "
                f"as this run's settings say.")  # fmt: skip
        self.model.load_state_dict(restored.state_dict())
        self.model.obs_rms = restored.obs_rms
        self.model._sync_normaliser()
        self.updater.load_optimizer_state(state["optimizer"])
        self.return_rms.load_state_dict(state["return_rms"])
        self.version, self.updates = int(state["version"]), int(state["updates"])
        self.samples_consumed, self.skipped_updates = int(state["samples_consumed"]), int(state["skipped_updates"])
        for name in LAG_TOTALS:  # absent from checkpoints of earlier versions
            setattr(self, name, int(state.get(name, 0)))
        # Also absent from earlier ones: the minibatch shuffling goes on from where it was, not
        # from the seed again, and the count of skipped minibatch steps covers the whole run.
        self.updater.skipped_steps = int(state.get("skipped_steps", 0))
        if "minibatch_rng" in state:
            self.updater.rng.bit_generator.state = state["minibatch_rng"]
        self.restored_from = path.name

    def restored_event(self) -> dict[str, Any]:
        """The ``restored`` event for the run's log: the checkpoint restored (None: a fresh policy),
        its policy version and updates, the version published now (past any that a learner this
        one replaces had published), the updates lost, and each checkpoint skipped and why."""
        return {"event": "restored", "checkpoint": self.restored_from, "version": self.restored_version,
                "published_version": self.version, "updates": self.restored_updates,
                "samples_consumed": self.restored_samples,
                "lost_updates": self.lost_updates, "skipped": self.skipped_checkpoints,
                "notes": self.restore_notes}  # fmt: skip

    def frozen_event(self) -> dict[str, Any]:
        """The ``frozen`` event: the version the learner stopped at, its updates, and the transitions
        taken from the buffer but never trained on (less than a batch)."""
        return {"event": "frozen", "version": self.version, "updates": self.updates,
                "untrained_transitions": self.pending_transitions}  # fmt: skip

    def close(self) -> None:
        self.weights.close()
        self.buffer.close()


def newest_learner_checkpoint(checkpoint_dir: Path) -> tuple[Path, dict[str, Any]]:
    """The newest learner checkpoint in ``checkpoint_dir`` that loads, as ``(path, state)``; the
    state's ``policy`` rebuilds the policy (``ActorCritic.from_policy_state``), ``version`` is its
    policy version. For reading a run's policy after (or during) the run.

    Raises:
        CheckpointError: there is none, or none of them loads (the message says why for each).
    """
    from morphelites.runs.checkpoints import CheckpointError, list_checkpoints, newest_usable

    skipped: list[str] = []
    found = newest_usable(Path(checkpoint_dir), LEARNER_CHECKPOINT, _FORMAT, _unloadable,
                          on_skip=lambda error, _older: skipped.append(str(error)), required=_FIELDS)  # fmt: skip
    if found is None:
        if not list_checkpoints(Path(checkpoint_dir), LEARNER_CHECKPOINT):
            raise CheckpointError(f"{checkpoint_dir} holds no learner checkpoint ({LEARNER_CHECKPOINT}-*.pkl): the "
                                  f"shared learner writes one periodically and when the run ends.")  # fmt: skip
        raise CheckpointError(f"None of the learner checkpoints in {checkpoint_dir} loads: " + " ".join(skipped))
    return found


def _unloadable(state: dict[str, Any]) -> str | None:
    """What stops a learner checkpoint of the right format and policy shape from loading, or None.

    Loads it into scratch objects first, so that a checkpoint with malformed contents (edited, or
    a tensor of another shape) is passed over like any other unusable one instead of crashing the
    learner on every restart. Adam does not check the shapes of its moment estimates when it loads
    them, so they are compared with the parameters here. Non-finite weights, normaliser statistics
    or moments are refused too: the learner never writes them (it restores the last good weights
    first), and publishing them would fail, or every update from them would be skipped.
    """
    import torch

    from morphelites.policy import ActorCritic

    try:
        model = ActorCritic.from_policy_state(state["policy"])
        if not np.all(np.isfinite(model.flat_weights())):
            return "its policy weights or observation statistics are not all finite (NaN or inf)"
        params = list(model.parameters())
        optimizer = torch.optim.Adam(params)
        optimizer.load_state_dict(state["optimizer"])
        for index, param in enumerate(params):
            for name, value in optimizer.state.get(param, {}).items():
                if torch.is_tensor(value) and value.dim() > 0 and value.shape != param.shape:
                    return f"its optimizer state {name} of parameter {index} has shape {tuple(value.shape)}, not {tuple(param.shape)}"
                if torch.is_tensor(value) and not bool(torch.isfinite(value).all()):
                    return f"its optimizer state {name} of parameter {index} is not all finite (NaN or inf)"
        RunningMeanStd(()).load_state_dict(state["return_rms"])
        if "minibatch_rng" in state:
            np.random.default_rng().bit_generator.state = state["minibatch_rng"]
        for counter in ("version", "updates", "samples_consumed", "skipped_updates", "skipped_steps"):
            if int(state.get(counter, 0)) < 0:  # skipped_steps: absent from checkpoints of earlier versions
                return f"its {counter} is {state[counter]}, below 0"
    except Exception as error:  # torch and numpy raise many kinds on malformed contents; none of it is loadable
        return f"its contents cannot be loaded ({type(error).__name__}: {error})"
    return None


def learner_main(options: LearnerOptions, stats_conn: Connection, stop: Any, active: Any, beats: Any = None,
                 parent_pid: int | None = None, freeze: Any = None) -> None:  # fmt: skip
    """Entry point of the learner process.

    ``stop`` (a :class:`~morphelites.parallel.supervisor.SharedFlag`, which holds no lock) ends
    the loop after a final checkpoint; ``freeze`` (one too; the run's final re-evaluation sets it) makes the learner train on every whole batch the buffer still
    holds, checkpoint, report ``frozen`` and then leave the weights as they are, so that every
    elite is re-evaluated with one and the same final policy. ``active`` (a shared int) is the
    number of busy workers, which sync mode waits for; ``beats`` (a shared array of one stamp)
    receives this process's heartbeat, which also exits the process once ``parent_pid`` (the
    supervisor's process) is no longer its parent. Events for the supervisor's log go through ``stats_conn``:
    ``restored``, ``checkpoint`` / ``checkpoint_failed``, ``skipped_update``, ``frozen``, and the
    statistics (``update``, ``idle``, ``stopped``).
    """
    ignore_stop_signals()  # the supervisor stops it (``stop``), after its final checkpoint
    die_with_parent()
    set_process_title("shared_ppo learner")
    learner = SharedPPOTrainer(options)  # imports torch, may restore a checkpoint: covered by the startup grace
    learner.updater.optimizer  # made now, with the first weights already published (see PPOUpdater.optimizer)
    if beats is not None:
        heartbeat.install(beats, 0, parent_pid=parent_pid)
    if options.resume:
        stats_conn.send(learner.restored_event())
    last_stats = 0.0

    def checkpoint(final: bool = False) -> None:
        stats_conn.send(learner.checkpoint_event(final))

    frozen = False
    try:
        while not stop.is_set():
            heartbeat.beat()
            if not frozen:
                learner.drain()
            if not frozen and learner.decide_update(lambda: active.value):
                record = learner.update()
                if "skipped" in record:
                    stats_conn.send({"event": "skipped_update", "reason": record["skipped"], "update": learner.updates,
                                     "skipped_updates": learner.skipped_updates})  # fmt: skip
                if learner.updates % options.checkpoint_every_updates == 0:
                    checkpoint()
                stats_conn.send({"event": "update", **{k: v for k, v in record.items() if k != "skipped"}, **learner.stats()})
                last_stats = time.monotonic()
            elif not frozen and freeze is not None and freeze.is_set() and learner.buffer.ready_transitions() == 0:
                # Less than a batch pending and nothing more in the buffer: this is the final policy.
                learner.frozen_at = time.monotonic()
                checkpoint()
                stats_conn.send(learner.frozen_event())
                frozen = True
            else:
                time.sleep(0.002)
                if time.monotonic() - last_stats > 1.0:
                    stats_conn.send({"event": "idle", **learner.stats()})
                    last_stats = time.monotonic()
        checkpoint(final=True)
        stats_conn.send({"event": "stopped", **learner.stats()})
    except (BrokenPipeError, EOFError):
        pass
    finally:
        learner.close()
    exit_without_teardown()  # the checkpoint is on disk and the last statistics sent
