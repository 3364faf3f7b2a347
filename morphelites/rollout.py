"""Acting in environments: collect training segments, and evaluate a policy on a body.

Policies here are anything with the :class:`ActingPolicy` methods (the numpy actor-critic is one),
so this module never imports torch and serves worker processes as well as the serial trainer.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, Callable, Protocol, Sequence

import gymnasium as gym
import numpy as np

from morphelites.config import BodySpaceConfig, EnvConfig
from morphelites.morphology import Morphology
from morphelites.normalization import RewardScaler
from morphelites.parallel.heartbeat import beat

__all__ = [
    "ActingPolicy",
    "StepObserver",
    "Segment",
    "EpisodeRecord",
    "SegmentCollector",
    "EvalResult",
    "fitness_from_episodes",
    "evaluation_goals",
    "evaluate",
    "run_episodes",
]


class ActingPolicy(Protocol):
    """What :func:`evaluate`, :func:`run_episodes` and :class:`SegmentCollector` act with, e.g.
    :class:`~morphelites.policy_numpy.NumpyActorCritic`. ``obs`` is (B, obs_dim): the raw
    observations of the B envs stepped together; A is the action length."""

    def act(self, obs: np.ndarray, deterministic: bool = True, rng: np.random.Generator | None = None) -> np.ndarray:
        """Actions (B, A): the mean action if ``deterministic``, else sampled with ``rng``."""
        ...

    def step(self, obs: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Sampled actions (B, A), their log-probs (B,) and the critic's values (B,), for training."""
        ...

    def value(self, obs: np.ndarray) -> np.ndarray:
        """The critic's state values (B,)."""
        ...


#: Called by :func:`run_episodes` with (episode index, its env, whether the episode just ended) once
#: after the reset and after every step of that episode, e.g. to render frames. It must not step or
#: reset the env.
StepObserver = Callable[[int, Any, bool], None]


@dataclass
class Segment:
    """T steps of N environments, time-major.

    obs (T, N, obs_dim), actions (T, N, act_dim), logprobs/values/rewards/dones (T, N),
    ``bootstrap`` (T, N): the acting critic's V(final observation) where a step ended an episode
    by the time limit (0 elsewhere; ``gamma * bootstrap`` joins the reward, so a truncation is not
    taken for a terminal state); ``truncated`` (T, N): 1 at those steps, 0 elsewhere;
    ``final_obs`` (T, N, obs_dim): the final observation of those steps (0 elsewhere), from which
    a learner whose critic has moved on since the segment was acted recomputes the bootstrap;
    ``last_obs`` (N, obs_dim): the observation after the last step. Rewards are scaled if the
    collector has a reward scaler, raw otherwise.
    """

    obs: np.ndarray
    actions: np.ndarray
    logprobs: np.ndarray
    values: np.ndarray
    rewards: np.ndarray
    dones: np.ndarray
    bootstrap: np.ndarray
    truncated: np.ndarray
    final_obs: np.ndarray
    last_obs: np.ndarray

    @property
    def num_transitions(self) -> int:
        return int(self.rewards.size)


@dataclass
class EpisodeRecord:
    """One finished episode: undiscounted raw return, length, and the env's final info."""

    episode_return: float
    length: int
    info: dict[str, Any] = field(default_factory=dict)


class SegmentCollector:
    """Steps a list of environments together and cuts their experience into segments.

    Environments are reset automatically when an episode ends; the collector keeps the current
    observation between calls, so consecutive segments continue the same episodes.

    Args:
        envs: environments with identical observation and action spaces.
        seed: seeds the environments' first resets (env i gets ``seed + i``).
        reward_scaler: optional running-return scaler applied to training rewards.
    """

    def __init__(self, envs: Sequence[gym.Env], seed: int, reward_scaler: RewardScaler | None = None) -> None:
        if not envs:
            raise ValueError("SegmentCollector needs at least one environment")
        self.envs = list(envs)
        self.reward_scaler = reward_scaler
        self.obs = np.stack([env.reset(seed=seed + i)[0] for i, env in enumerate(self.envs)]).astype(np.float32)
        self._returns = np.zeros(len(self.envs))
        self._lengths = np.zeros(len(self.envs), dtype=np.int64)
        self.finished: list[EpisodeRecord] = []

    @property
    def num_envs(self) -> int:
        return len(self.envs)

    def collect(self, policy: ActingPolicy, num_steps: int, rng: np.random.Generator) -> Segment:
        """Act for ``num_steps`` steps in every env; finished episodes go to :attr:`finished`."""
        N = self.num_envs
        obs_buf = np.zeros((num_steps, N, self.obs.shape[1]), dtype=np.float32)
        act_dim = int(np.prod(self.envs[0].action_space.shape))
        act_buf = np.zeros((num_steps, N, act_dim), dtype=np.float32)
        logp_buf = np.zeros((num_steps, N), dtype=np.float32)
        val_buf = np.zeros((num_steps, N), dtype=np.float32)
        rew_buf = np.zeros((num_steps, N), dtype=np.float32)
        done_buf = np.zeros((num_steps, N), dtype=np.float32)
        boot_buf = np.zeros((num_steps, N), dtype=np.float32)
        truncated_buf = np.zeros((num_steps, N), dtype=np.float32)
        final_obs_buf = np.zeros_like(obs_buf)
        for t in range(num_steps):
            beat()
            actions, logprobs, values = policy.step(self.obs, rng)
            obs_buf[t], act_buf[t], logp_buf[t], val_buf[t] = self.obs, actions, logprobs, values
            next_obs = np.empty_like(self.obs)
            rewards = np.zeros(N)
            dones = np.zeros(N, dtype=bool)
            truncated_final: dict[int, np.ndarray] = {}
            for i, env in enumerate(self.envs):
                o, r, terminated, truncated, info = env.step(actions[i])
                rewards[i] = r
                self._returns[i] += r
                self._lengths[i] += 1
                if terminated or truncated:
                    dones[i] = True
                    if truncated and not terminated:
                        truncated_final[i] = np.asarray(o, dtype=np.float32)
                    self.finished.append(EpisodeRecord(float(self._returns[i]), int(self._lengths[i]), info))
                    self._returns[i], self._lengths[i] = 0.0, 0
                    o, _ = env.reset()
                next_obs[i] = o
            if truncated_final:
                index = list(truncated_final)
                final_obs_buf[t, index] = np.stack([truncated_final[i] for i in index])
                truncated_buf[t, index] = 1.0
                boot_buf[t, index] = policy.value(final_obs_buf[t, index])
            rew_buf[t] = self.reward_scaler(rewards, dones) if self.reward_scaler else rewards
            done_buf[t] = dones
            self.obs = next_obs
        return Segment(obs_buf, act_buf, logp_buf, val_buf, rew_buf, done_buf, boot_buf, truncated_buf, final_obs_buf, self.obs.copy())

    def pop_finished(self) -> list[EpisodeRecord]:
        """Episodes finished since the last call."""
        done, self.finished = self.finished, []
        return done

    def close(self) -> None:
        for env in self.envs:
            env.close()


# --------------------------------------------------------------------------- evaluation


@dataclass(frozen=True)
class EvalResult:
    """How well a policy controls a body on the fixed evaluation goals.

    fitness: in [0, 1], see :func:`fitness_from_episodes`. success_rate: fraction of goals reached.
    mean_return: mean undiscounted episode return. final_distance: mean fingertip-goal distance at
    episode end, metres. path_efficiency: mean of (distance closed / fingertip path length), in
    [0, 1]. collisions: mean policy steps per episode in contact with a wall. episodes and
    env_steps: evaluation effort. policy_version: version of the policy evaluated (-1 unknown).
    fitness_ceiling: the most fitness any policy could get on this body and these goals, in
    [0, 1] (see :func:`score_ceilings`; None where an EvalResult is built by hand): with goals
    from the shared workspace a short arm's fitness is capped well below 1.
    """

    fitness: float
    success_rate: float
    mean_return: float
    final_distance: float
    path_efficiency: float
    collisions: float
    episodes: int
    env_steps: int
    policy_version: int = -1
    fitness_ceiling: float | None = None

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


#: Partial credit for an unreached goal is this times the fraction of the distance closed.
PARTIAL_CREDIT = 0.5


def fitness_from_episodes(successes: np.ndarray, final_distances: np.ndarray, initial_distances: np.ndarray) -> float:
    """THE fitness of a body: mean over evaluation goals of a per-goal score in [0, 1].

    Args:
        successes: (episodes,) whether each episode reached its goal.
        final_distances: (episodes,) fingertip-goal distance at each episode's end, metres.
        initial_distances: (episodes,) the same at each episode's start, metres.

    A reached goal scores 1. An unreached one scores ``PARTIAL_CREDIT * clip(1 - final/initial,
    0, 1)`` (at most 0.5): credit for the distance closed, so search still has a gradient among
    bodies that reach nothing, while 1.0 means every evaluation goal was reached.
    """
    successes = np.asarray(successes, dtype=bool)
    closed = np.clip(1.0 - np.asarray(final_distances) / np.maximum(np.asarray(initial_distances), 1e-9), 0.0, 1.0)
    scores = np.where(successes, 1.0, PARTIAL_CREDIT * closed)
    return float(scores.mean())


def score_ceilings(goals: np.ndarray, initial_distances: np.ndarray, reach: float, success_radius: float) -> np.ndarray:
    """Upper bounds (N,) of the per-goal scores of :func:`fitness_from_episodes`, from geometry.

    Args:
        goals: (N, 2) goal positions, metres, the arm's base at the origin.
        initial_distances: (N,) fingertip-goal distance at the start of each episode, metres.
        reach: the arm's total length, metres (its reach when straight).
        success_radius: metres.

    A goal within ``reach + success_radius`` of the base may be reached: bound 1 (joint limits or
    walls may still prevent it). The fingertip gets no closer than ``|goal| - reach`` to any other
    goal, so its score is at most ``PARTIAL_CREDIT * clip(1 - (|goal| - reach) / initial, 0, 1)``;
    a straight arm pointed at the goal attains that in the open scene.
    """
    shortfall = np.linalg.norm(np.asarray(goals, dtype=np.float64), axis=1) - reach
    closed = np.clip(1.0 - np.maximum(shortfall, 0.0) / np.maximum(np.asarray(initial_distances), 1e-9), 0.0, 1.0)
    return np.where(shortfall <= success_radius, 1.0, PARTIAL_CREDIT * closed)


def evaluation_goals(env: Any, episodes: int, seed: int) -> np.ndarray:
    """The fixed evaluation goals (episodes, 2) for ``env`` (a ReachEnv) under ``seed``.

    In ``workspace`` goal sampling they are the same for every body of the space (same seed, same
    draws), so fitness compares bodies on the same goals.
    """
    rng = np.random.default_rng(seed)
    return np.stack([env.sample_goal(rng) for _ in range(episodes)])


def run_episodes(
    policy: ActingPolicy,
    envs: Sequence[gym.Env],
    reset_seeds: Sequence[int],
    reset_options: Sequence[dict[str, Any] | None] | None = None,
    max_steps: int = 100_000,
    on_step: StepObserver | None = None,
) -> list[EpisodeRecord]:
    """One deterministic episode in each env, stepped together (one policy forward per step).

    ``on_step``, if given, sees each env after its reset and after each of its steps (see
    :data:`StepObserver`); it does not change what the policy does.
    """
    options = reset_options or [None] * len(envs)
    obs = [env.reset(seed=int(s), options=o)[0] for env, s, o in zip(envs, reset_seeds, options)]
    if on_step is not None:
        for i, env in enumerate(envs):
            on_step(i, env, False)
    records: list[EpisodeRecord | None] = [None] * len(envs)
    infos: list[dict[str, Any]] = [{} for _ in envs]  # each env's latest step info
    returns = np.zeros(len(envs))
    live = list(range(len(envs)))
    for step in range(1, max_steps + 1):
        beat()
        actions = policy.act(np.stack([obs[i] for i in live]), deterministic=True)
        still_live = []
        for k, i in enumerate(live):
            obs[i], reward, terminated, truncated, info = envs[i].step(actions[k])
            infos[i] = info
            returns[i] += reward
            if on_step is not None:
                on_step(i, envs[i], bool(terminated or truncated))
            if terminated or truncated:
                records[i] = EpisodeRecord(float(returns[i]), step, info)
            else:
                still_live.append(i)
        live = still_live
        if not live:
            break
    for i in live:  # cut by max_steps (an env without a time limit of its own): its last step's info
        records[i] = EpisodeRecord(float(returns[i]), max_steps, infos[i])
    return [r for r in records if r is not None]


#: Evaluation episodes stepped side by side at most (:func:`evaluate`): a batch is one policy
#: forward per step, and 64 envs take ~50 MB. (A network's float32 maths can differ in the low
#: bits with the batch's size, so a smaller figure would change recorded results: all used <= 20.)
EPISODES_AT_ONCE = 64


def run_episodes_in_batches(
    policy: ActingPolicy,
    make_env: Callable[[], Any],
    reset_seeds: Sequence[int],
    reset_options: Sequence[dict[str, Any] | None] | None = None,
    on_step: StepObserver | None = None,
) -> list[EpisodeRecord]:
    """:func:`run_episodes`, one episode per reset seed, in fresh envs from ``make_env`` built
    :data:`EPISODES_AT_ONCE` at a time and closed after their batch, so that memory stays bounded
    however many episodes there are. ``on_step``'s index counts episodes from 0 across batches."""
    options = list(reset_options) if reset_options is not None else [None] * len(reset_seeds)
    records: list[EpisodeRecord] = []
    for first in range(0, len(reset_seeds), EPISODES_AT_ONCE):
        seeds = reset_seeds[first : first + EPISODES_AT_ONCE]
        envs = []
        try:
            for _ in seeds:
                beat()  # thousands of episodes take a while to build
                envs.append(make_env())
            watch = None if on_step is None else (lambda i, env, done, first=first: on_step(first + i, env, done))
            records += run_episodes(policy, envs, seeds, options[first : first + len(seeds)], on_step=watch)
        finally:
            for env in envs:
                env.close()
    return records


def evaluate(
    policy: ActingPolicy,
    morphology: Morphology,
    episodes: int = 20,
    seed: int = 0,
    scene: str | None = None,
    body_space: BodySpaceConfig | None = None,
    env_config: EnvConfig | None = None,
    policy_version: int = -1,
    make_env: Callable[..., Any] | None = None,
    on_step: StepObserver | None = None,
) -> EvalResult:
    """Evaluate ``policy`` (deterministic actions) on ``morphology`` over ``episodes`` fixed goals.

    The same policy, body and seed give the same EvalResult. Episodes run side by side, up to
    :data:`EPISODES_AT_ONCE` at a time, so one policy forward serves them all while memory stays
    bounded (each env holds its own MuJoCo model and data, ~0.7 MB). ``make_env`` replaces
    ReachEnv (same arguments); ``on_step`` watches the episodes as they run
    (:func:`run_episodes_in_batches`), e.g. to render them.
    """
    from morphelites.envs.reach import ReachEnv

    for name, value, low in (("episodes", episodes, 1), ("seed", seed, 0)):
        if not isinstance(value, (int, np.integer)) or isinstance(value, bool) or value < low:
            raise ValueError(f"{name} must be a whole number >= {low}, got {value!r}")
    factory = make_env or ReachEnv

    def new_env() -> Any:
        return factory(morphology, scene=scene, body_space=body_space, env_config=env_config)

    probe = new_env()  # the goals and the success radius are the env's, not its state's
    goals, success_radius = evaluation_goals(probe, episodes, seed), probe.success_radius
    probe.close()
    records = run_episodes_in_batches(policy, new_env, [seed + i for i in range(episodes)],
                                      [{"goal": g} for g in goals], on_step=on_step)  # fmt: skip
    infos = [r.info for r in records]
    successes = np.array([i["success"] for i in infos])
    final = np.array([i["distance"] for i in infos])
    initial = np.array([i["initial_distance"] for i in infos])
    paths = np.array([i["path_length"] for i in infos])
    efficiency = np.where(paths > 1e-9, np.clip((initial - final) / np.maximum(paths, 1e-9), 0.0, 1.0), 0.0)
    return EvalResult(
        fitness=fitness_from_episodes(successes, final, initial),
        success_rate=float(successes.mean()),
        mean_return=float(np.mean([r.episode_return for r in records])),
        final_distance=float(final.mean()),
        path_efficiency=float(efficiency.mean()),
        collisions=float(np.mean([i["collisions"] for i in infos])),
        episodes=episodes,
        env_steps=int(sum(r.length for r in records)),
        policy_version=policy_version,
        fitness_ceiling=float(score_ceilings(goals, initial, morphology.total_length, success_radius).mean()),
    )
