"""Serial PPO training of one policy on a batch of environments (the CleanRL-shaped loop).

One process: the numpy twin of the current policy acts in all environments (the same acting
path the shared-mode workers use), the torch model learns. Used by ``morphelites ppo``, by the
independent evolution mode, and by the learning benchmarks. Writes no files: progress goes to the
``on_update`` callback.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Callable, Sequence

import gymnasium as gym
import numpy as np
import torch

from morphelites.config import MIN_MINIBATCH, PPOConfig
from morphelites.normalization import RewardScaler
from morphelites.parallel.heartbeat import beat
from morphelites.policy import ActorCritic
from morphelites.ppo import Batch, PPOUpdater, compute_gae
from morphelites.rollout import EpisodeRecord, Segment, SegmentCollector
from morphelites.seeding import Stream, stream_seed

__all__ = ["TrainingResult", "train_policy", "rollout_plan", "segment_to_batch"]


@dataclass
class TrainingResult:
    """What a training run did: env steps, updates, wall time (s) and per-update records."""

    env_steps: int = 0
    updates: int = 0
    wall_s: float = 0.0
    history: list[dict[str, float]] = field(default_factory=list)


def segment_to_batch(segment: Segment, last_values: np.ndarray, gamma: float, gae_lambda: float) -> Batch:
    """GAE over a segment (T, N) and flattening to a :class:`Batch` of T*N transitions, time-major
    (row t*N + n is step t of env n).

    Args:
        segment: the rollout, its values and bootstrap from the critic that acted.
        last_values: (N,) that critic's V(``segment.last_obs``), for the step after the last.
        gamma, gae_lambda: discount and GAE lambda.

    Truncated episodes are bootstrapped: ``gamma * segment.bootstrap`` joins the reward.
    """
    rewards = segment.rewards + gamma * segment.bootstrap
    advantages, returns = compute_gae(rewards, segment.values, segment.dones, last_values, gamma, gae_lambda)
    obs_dim, act_dim = segment.obs.shape[-1], segment.actions.shape[-1]
    return Batch(
        obs=segment.obs.reshape(-1, obs_dim),
        actions=segment.actions.reshape(-1, act_dim),
        logprobs=segment.logprobs.reshape(-1),
        advantages=advantages.reshape(-1),
        returns=returns.reshape(-1),
        values=segment.values.reshape(-1),
    )


def _episode_summary(episodes: list[EpisodeRecord]) -> dict[str, float]:
    if not episodes:
        return {}
    summary = {
        "episode_return": float(np.mean([e.episode_return for e in episodes])),
        "episode_length": float(np.mean([e.length for e in episodes])),
        "episodes": float(len(episodes)),
    }
    if "success" in episodes[0].info:
        summary["success_rate"] = float(np.mean([bool(e.info.get("success")) for e in episodes]))
    return summary


def rollout_plan(total_steps: int, num_envs: int, num_steps: int, min_transitions: int) -> tuple[int, int]:
    """The rollouts of a training run of ``total_steps`` env steps (rounded up to a whole step of
    every env), as ``(full, last)``: ``full`` rollouts of ``num_steps`` steps per env, then one of
    ``last`` steps, shortened so that a budget is spent, not overshot by a batch. A shortened last
    rollout of fewer than ``min_transitions`` transitions (``num_envs`` per step; see
    :func:`least_last_rollout`) is folded into the one before: a batch that small would be cut into
    minibatches of a few transitions, whose advantages cannot be normalised. (Two numbers, not a
    list: a budget can be 10**10 steps.)
    """
    steps = max(1, math.ceil(total_steps / num_envs))
    full, last = divmod(steps, num_steps)
    if last == 0:
        full, last = full - 1, num_steps
    if full and last * num_envs < min_transitions:
        full, last = full - 1, last + num_steps
    return full, last


def least_last_rollout(num_envs: int, config: PPOConfig) -> int:
    """Transitions below which :func:`rollout_plan` folds a shortened last rollout into the one
    before: a quarter of a full batch, and at least ``MIN_MINIBATCH`` per minibatch. Why more than
    that floor: minibatches of two transitions normalise their advantages to exactly +-0.71,
    whatever they were, so an update of such minibatches follows only signs (seen in review: a
    budget of 20,496 steps ended with 80 Adam steps on a one-step rollout)."""
    return max(MIN_MINIBATCH * config.num_minibatches, num_envs * config.num_steps // 4)


def train_policy(
    model: ActorCritic,
    envs: Sequence[gym.Env],
    config: PPOConfig,
    total_steps: int,
    seed: int = 0,
    on_update: Callable[[dict[str, float]], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
) -> TrainingResult:
    """Train ``model`` with PPO on ``envs`` for ``total_steps`` env steps (rounded up to a whole
    step of every env).

    Each update: the numpy twin acts ``num_steps`` steps in every env (see :func:`rollout_plan`
    for the last one); GAE; ``update_epochs``
    epochs of minibatch PPO; the observation normaliser folds in the segment once the next update
    begins (after the update, so behaviour log-probs and the update see the same normalisation; and
    never after the last update made, however the run ends, so that the trained policy keeps the
    statistics its last update saw).

    ``on_update`` receives a record per update: env_steps, update, wall_s, steps_per_s, the PPO
    diagnostics and the mean return / success of the episodes finished during the rollout.
    """
    torch.set_num_threads(config.torch_threads)
    torch.manual_seed(seed)
    rng = np.random.default_rng(stream_seed(seed, Stream.ACTION_NOISE))
    updater = PPOUpdater(model, config, seed=stream_seed(seed, Stream.MINIBATCHES), on_minibatch=beat)  # beat: a no-op unless in a watched worker
    scaler = RewardScaler(len(envs), config.gamma) if config.normalize_reward else None
    collector = SegmentCollector(envs, seed=stream_seed(seed, Stream.ENV_RESETS), reward_scaler=scaler)
    full, last = rollout_plan(total_steps, collector.num_envs, config.num_steps, least_last_rollout(collector.num_envs, config))
    num_updates = full + 1
    result = TrainingResult()
    start = time.perf_counter()
    to_fold: np.ndarray | None = None  # the last update's observations, not yet in the normaliser
    for update in range(num_updates):
        num_steps = config.num_steps if update < full else last
        if should_stop is not None and should_stop():
            break
        # Folded only now that another update follows: the policy a run ends with (at its last
        # update, or stopped) keeps the statistics its last update trained with.
        if to_fold is not None:
            model.update_normaliser(to_fold)
            to_fold = None
        updater.set_progress(update / num_updates)
        actor = model.numpy_twin()
        segment = collector.collect(actor, num_steps, rng)
        batch = segment_to_batch(segment, actor.value(segment.last_obs), config.gamma, config.gae_lambda)
        stats = updater.update(batch)
        if config.normalize_obs:
            to_fold = batch.obs
        result.env_steps += segment.num_transitions
        result.updates += 1
        result.wall_s = time.perf_counter() - start
        record = {"env_steps": float(result.env_steps), "update": float(result.updates), "wall_s": result.wall_s,
                  "steps_per_s": result.env_steps / max(result.wall_s, 1e-9)}
        record.update(stats)
        record.update(_episode_summary(collector.pop_finished()))
        result.history.append(record)
        if on_update is not None:
            on_update(record)
    collector.close()
    return result
