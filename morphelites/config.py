"""Typed configuration: the one place where defaults live.

Every section is a dataclass with a docstring per field (CleanRL style). Sections are built
from plain dicts (a JSON config file, CLI overrides) by :func:`section_from_dict`, which rejects
unknown keys with a did-you-mean and wrong types with a message that names the key, the value and
what is expected. ``validate()`` checks ranges and consistency and raises :class:`ConfigError`
with a message that says how to fix the problem. Nothing here starts a process or writes a file
(:func:`usable_cores` reads the cgroup's CPU quota).
"""

from __future__ import annotations

import dataclasses
import difflib
import math
import numbers
import os
import types
import typing
from dataclasses import dataclass
from typing import Any, Literal, TypeVar

__all__ = [
    "ConfigError",
    "BodySpaceConfig",
    "EnvConfig",
    "ModelConfig",
    "PPOConfig",
    "SCENES",
    "GOAL_SAMPLINGS",
    "section_from_dict",
    "section_to_dict",
    "Settings",
    "EvolutionConfig",
    "TrainingConfig",
    "MEASURES",
    "MAX_SEED",
    "EMITTERS",
    "load_config_file",
    "usable_cores",
]

#: Link lengths (metres) are rounded to this many decimals (1 µm) when a body is made.
LENGTH_DECIMALS = 6
#: Fewest transitions a PPO minibatch may hold: advantages are normalised over a minibatch.
MIN_MINIBATCH = 2
#: The most envs ``ppo.num_envs`` may ask for (``morphelites ppo --mixed N`` trains one body per env).
MAX_NUM_ENVS = 4096

SCENES = ("open", "obstacles")
GOAL_SAMPLINGS = ("workspace", "reachable")
#: What the shared learner's PPO ratio can be clipped against (``training.clip_against``).
CLIP_AGAINST = ("behaviour", "proximal")


class ConfigError(ValueError):
    """A configuration value is wrong; the message says which and how to fix it."""


@dataclass(frozen=True)
class BodySpaceConfig:
    """The space of planar serial arms that bodies are drawn from."""

    min_links: int = 3
    """Fewest links (= hinge joints) a body may have."""
    max_links: int = 6
    """Most links a body may have; observations and actions are padded to this many joints."""
    min_link_length: float = 0.1
    """Shortest allowed link, metres."""
    max_link_length: float = 0.25
    """Longest allowed link, metres."""

    #: Hard ceiling on ``max_links``: beyond this a planar chain is a rope, not an arm.
    LINKS_CEILING: typing.ClassVar[int] = 12

    @property
    def max_reach(self) -> float:
        """Reach of the longest arm of the space, metres: ``max_links * max_link_length``."""
        return self.max_links * self.max_link_length

    def validate(self) -> "BodySpaceConfig":
        """Raise ConfigError if the space is empty or nonsensical; return self."""
        _check_int_range("body_space.min_links", self.min_links, 1, self.LINKS_CEILING)
        _check_int_range("body_space.max_links", self.max_links, 1, self.LINKS_CEILING)
        if self.min_links > self.max_links:
            raise ConfigError(
                f"body_space.min_links ({self.min_links}) is larger than body_space.max_links "
                f"({self.max_links}); set min_links <= max_links."
            )
        for name in ("min_link_length", "max_link_length"):
            value = _check_float_range(f"body_space.{name}", getattr(self, name), 1e-3, 10.0)
            if round(value, LENGTH_DECIMALS) != value:
                raise ConfigError(
                    f"body_space.{name} is {value} m, but bodies are built to the micrometre ({LENGTH_DECIMALS} "
                    f"decimals), so some genomes would decode to a link just outside it; give it to {LENGTH_DECIMALS} "
                    f"decimals, e.g. {round(value, LENGTH_DECIMALS)}."
                )  # fmt: skip
        if self.min_link_length > self.max_link_length:
            raise ConfigError(
                f"body_space.min_link_length ({self.min_link_length}) is larger than "
                f"body_space.max_link_length ({self.max_link_length}); swap them."
            )
        return self


@dataclass(frozen=True)
class EnvConfig:
    """The reaching task every body is scored on."""

    scene: str = "open"
    """Scene name: ``open`` (empty plane) or ``obstacles`` (walls the arm must work around)."""
    max_episode_steps: int = 200
    """Policy steps before an episode is truncated."""
    success_radius_fraction: float = 0.05
    """Success radius as a fraction of the longest arm's reach (``BodySpaceConfig.max_reach``)."""
    goal_sampling: str = "workspace"
    """``workspace``: goals from one disc shared by all bodies (radius = max reach of the space),
    so a short arm cannot reach everything. ``reachable``: goals at fingertip positions of random
    poses of the body itself (within its own reach by construction)."""
    frame_skip: int = 4
    """Physics steps per policy step (physics timestep 0.005 s, so 0.02 s per policy step)."""
    control_cost: float = 0.01
    """Weight of the squared-torque penalty in the reward."""
    collision_penalty: float = 0.05
    """Reward penalty per policy step in which the arm touches a wall."""

    def validate(self) -> "EnvConfig":
        """Raise ConfigError on an unknown scene or out-of-range value; return self."""
        _check_choice("env.scene", self.scene, SCENES)
        _check_choice("env.goal_sampling", self.goal_sampling, GOAL_SAMPLINGS)
        _check_int_range("env.max_episode_steps", self.max_episode_steps, 1, 100_000)
        _check_float_range("env.success_radius_fraction", self.success_radius_fraction, 1e-4, 0.05)
        _check_int_range("env.frame_skip", self.frame_skip, 1, 100)
        _check_float_range("env.control_cost", self.control_cost, 0.0, 100.0)
        _check_float_range("env.collision_penalty", self.collision_penalty, 0.0, 100.0)
        return self


@dataclass(frozen=True)
class ModelConfig:
    """Actor-critic sizes. Dimensions follow from the body space; give them only to assert them."""

    observation_dim: int | None = None
    """Length of the (padded) observation; derived from the body space when None."""
    action_dim: int | None = None
    """Length of the (padded) action; derived from the body space when None."""
    hidden_dim: int = 256
    """Width of each of the two hidden layers of actor and critic."""
    init_log_std: float = -0.5
    """Initial log standard deviation of the Gaussian policy."""

    def validate(self) -> "ModelConfig":
        """Raise ConfigError on a bad size; return self."""
        _check_int_range("model.hidden_dim", self.hidden_dim, 1, 65_536)
        _check_float_range("model.init_log_std", self.init_log_std, -10.0, 2.0)
        for name in ("observation_dim", "action_dim"):
            value = getattr(self, name)
            if value is not None:
                _check_int_range(f"model.{name}", value, 1, 1_000_000)
        return self

    def resolved(self, observation_dim: int, action_dim: int, task: str | None = None) -> "ModelConfig":
        """Fill in the derived dimensions; a user-given value that disagrees is an error.

        ``task`` names the Gymnasium task they come from; None: our bodies' padded layout."""
        for name, derived in (("observation_dim", observation_dim), ("action_dim", action_dim)):
            given = getattr(self, name)
            if given is not None and given != derived:
                if task is not None:
                    raise ConfigError(
                        f"model.{name} is {given}, but the task {task} gives {derived}. Remove model.{name} from the "
                        f"config (it is derived; a config.json of another run records that run's)."
                    )
                raise ConfigError(
                    f"model.{name} is {given}, but the body space gives {derived} (observations and "
                    f"actions are padded to body_space.max_links). Remove model.{name} from the "
                    f"config, or change body_space.max_links."
                )
        return dataclasses.replace(self, observation_dim=observation_dim, action_dim=action_dim)


#: PPO passes over each batch when ``ppo.update_epochs`` is not given (see PPOConfig.update_epochs):
#: in an evolution run (both modes), and in single-policy training.
EVOLUTION_UPDATE_EPOCHS = 4
SINGLE_POLICY_UPDATE_EPOCHS = 10


@dataclass(frozen=True)
class PPOConfig:
    """PPO hyper-parameters (CleanRL ``ppo_continuous_action`` defaults where they fit)."""

    learning_rate: float = 3e-4
    """Adam step size at the start of training."""
    anneal_lr: bool = True
    """Decay the learning rate linearly to 0 over a PPO training run: a ``morphelites ppo`` run, and
    each body's training in independent mode. The shared learner of ``morphelites train`` keeps
    ``learning_rate`` constant whatever this says: its run has no fixed end (a resume may raise
    the budget), and nothing in it depends on the run's planned length."""
    gamma: float = 0.99
    """Discount factor."""
    gae_lambda: float = 0.95
    """GAE lambda."""
    num_envs: int = 16
    """Environments stepped together (one batched policy forward serves all): in ``morphelites ppo``
    and independent mode's per-body PPO. Shared mode's workers step 4 copies of their body each
    (``parallel.supervisor.ENVS_PER_WORKER``) and do not read this."""
    num_steps: int = 128
    """Steps per environment per rollout; batch size = num_envs * num_steps. Shared mode does not
    read it: its segments are ``training.update_interval`` steps, its batches ``training.min_batch_size``."""
    num_minibatches: int = 8
    """Minibatches per epoch."""
    update_epochs: int | None = None
    """Passes over each batch. None (default): 4 in ``morphelites train`` (the shared learner, and
    independent mode's per-body PPO), 10 in ``morphelites ppo`` and for a PPOUpdater used directly
    (CleanRL's value, with which the README's learning targets were met). At 50,000 env steps per
    body, 4 ended evolution runs at a QD-score at least as high as 10 in both modes (two seeds),
    and more than halved the shared learner's time (benchmarks/learner_settings.py). config.json
    records the number used."""
    clip_coef: float = 0.2
    """PPO ratio clip."""
    clip_vloss: bool = True
    """Clip the value loss like the policy ratio."""
    ent_coef: float = 0.0
    """Entropy bonus weight."""
    vf_coef: float = 0.5
    """Value loss weight."""
    max_grad_norm: float = 0.5
    """Global gradient-norm clip."""
    target_kl: float | None = None
    """Stop the epoch loop early when a minibatch's approximate KL between the current policy and
    the one the update started from exceeds this (None: never). Measured from the update's start,
    not from the behaviour policy, so lagged shared-mode data does not end every update at once.
    The estimate, mean((r - 1) - log r), is unbiased only for actions drawn from the policy the
    update started from; on the shared learner's lagged data it is biased."""
    norm_adv: bool = True
    """Normalise advantages per minibatch."""
    normalize_obs: bool = True
    """Keep running mean/std of observations and feed the network standardised inputs, clipped
    to ±10 (both policy twins). Off: raw observations go in as they are, not clipped."""
    normalize_reward: bool = True
    """Scale rewards by the running std of the discounted return."""
    torch_threads: int = 1
    """Torch intra-op threads in this process (1 keeps processes from fighting over cores)."""

    def with_default_epochs(self, evolution: bool) -> "PPOConfig":
        """This config with ``update_epochs`` filled in where it is None: the default of an
        evolution run (``evolution=True``) or of single-policy training."""
        if self.update_epochs is not None:
            return self
        default = EVOLUTION_UPDATE_EPOCHS if evolution else SINGLE_POLICY_UPDATE_EPOCHS
        return dataclasses.replace(self, update_epochs=default)

    @property
    def batch_size(self) -> int:
        """Transitions per update: ``num_envs * num_steps``."""
        return self.num_envs * self.num_steps

    def validate(self) -> "PPOConfig":
        """Raise ConfigError on an out-of-range value; return self."""
        _check_float_range("ppo.learning_rate", self.learning_rate, 1e-8, 1.0)
        _check_float_range("ppo.gamma", self.gamma, 0.0, 1.0)
        _check_float_range("ppo.gae_lambda", self.gae_lambda, 0.0, 1.0)
        _check_int_range("ppo.num_envs", self.num_envs, 1, MAX_NUM_ENVS)
        _check_int_range("ppo.num_steps", self.num_steps, 1, 100_000)
        _check_int_range("ppo.num_minibatches", self.num_minibatches, 1, 100_000)
        if self.update_epochs is not None:
            _check_int_range("ppo.update_epochs", self.update_epochs, 1, 1000)
        _check_float_range("ppo.clip_coef", self.clip_coef, 0.0, 10.0)
        _check_float_range("ppo.ent_coef", self.ent_coef, 0.0, 10.0)
        _check_float_range("ppo.vf_coef", self.vf_coef, 0.0, 100.0)
        _check_float_range("ppo.max_grad_norm", self.max_grad_norm, 1e-6, 1e6)
        if self.target_kl is not None:
            _check_float_range("ppo.target_kl", self.target_kl, 1e-8, 10.0)
        _check_int_range("ppo.torch_threads", self.torch_threads, 1, 1024)
        return self

    def check_rollout_batch(self) -> None:
        """Refuse a rollout batch (num_envs * num_steps) too small for num_minibatches minibatches
        of MIN_MINIBATCH transitions. Only for training that collects such batches (``morphelites
        ppo``, independent mode): the shared learner's batches are ``training.min_batch_size``."""
        if MIN_MINIBATCH * self.num_minibatches > self.batch_size:
            raise ConfigError(
                f"ppo.num_minibatches ({self.num_minibatches}) leaves fewer than {MIN_MINIBATCH} transitions per "
                f"minibatch of the batch size num_envs*num_steps = {self.batch_size} (advantages are normalised over a "
                f"minibatch); lower num_minibatches or raise num_steps."
            )  # fmt: skip


#: Shortest ``training.ipc_timeout`` (s). An idle worker beats once a second, and a first task's
#: imports and set-up go about 2 s without a beat on 2 cores: at 1 s (the earlier minimum), 8
#: workers on a loaded machine were all killed as stalled until the run stopped (found in review).
MIN_IPC_TIMEOUT_S = 5.0


@dataclass(frozen=True)
class TrainingConfig:
    """Shared-mode experience flow (the ``training_config`` of MAPElitesEvolutionTrainer)."""

    buffer_size: int = 20_000
    """Transitions the shared experience buffer holds across all workers: this many, rounded down
    to whole segments per worker, or two segments per worker where that is more."""
    min_batch_size: int = 1_000
    """The learner updates once at least this many transitions are waiting. In sync mode each update
    takes whole segments from every busy worker: at least this many when all are busy (see ``sync``)."""
    update_interval: int = 100
    """Workers refresh their copy of the policy every this many env steps (if it changed); it is
    also the length of an experience segment (T steps x K envs)."""
    max_policy_lag: int = 4
    """Segments acted by a policy more than this many versions old are dropped (and counted). 0 only
    with ``sync``, which uses 0 whatever this says (:meth:`check_new_values`)."""
    sync: bool = False
    """Sync mode: every update uses only data of the current policy version (lag 0). Each worker
    writes ceil(``min_batch_size`` / (workers x ``update_interval``)) segments (at least one) with
    one version, then waits for the next; an update takes those of every busy worker."""
    reevaluate_elites: bool = True
    """At the end of a shared run, evaluate every elite again with the final policy."""
    reevaluate_every: int = 0
    """Shared mode: also evaluate every elite again with the current policy after every this many
    evaluations (0: never during the run). Each round costs ``eval_episodes`` episodes per elite,
    taken by idle workers before new individuals; every round (and the final one) is a row of
    reevaluations.csv."""
    value_targets: str = "current_critic"
    """Targets of the learner's update: ``current_critic`` (GAE with values recomputed by the
    critic being trained), ``behaviour`` (GAE with the values the acting policy's critic gave), or
    ``vtrace`` (V-trace targets and advantages, current critic, importance-corrected for the policy
    lag); compared in benchmarks/learner_targets.py. V-trace's advantages carry the truncated
    importance weight rho_t of IMPALA, and the PPO ratio multiplies them again, as in Sample
    Factory's learner with ``with_vtrace``; unlike there, the weights are those of the policy at
    the start of the update, computed once per batch rather than again for every minibatch."""
    join_segments: bool = False
    """Shared mode: the learner joins consecutive segments of one worker's env stream that are in
    the same batch before computing advantages and value targets, so that these run across
    segment ends (T = ``update_interval`` / 4 steps) instead of being bootstrapped at each one; see
    morphelites/parallel/streams.py. Compared in benchmarks/learner_settings.py (study
    ``join_segments``): at 10,000 env steps per body it reached the independent QD-score sooner on
    5 of 5 seeds; at 50,000 on 2 of 3, with a lower final policy on all 3, so it stays off."""
    clip_against: str = "behaviour"
    """Shared mode: what the learner's PPO ratio is clipped against. ``behaviour`` (standard PPO):
    the policy that acted, so on lagged data the clip bounds the distance from that policy rather
    than how far one update moves the current one. ``proximal`` (Decoupled PPO, Hilton et al.
    2021): the policy the update starts from, with each transition weighted by the ratio of that
    policy to the acting one (capped at 2). Compared in benchmarks/learner_settings.py (study
    ``clip_against``): ahead at 10,000 env steps per body, a worse policy at 50,000."""
    ipc_timeout: float = 120.0
    """Seconds without a heartbeat after which the learner or a worker counts as stalled; it is
    then killed and handled like a process that died (both modes). At least 5 s for a new run
    (:data:`MIN_IPC_TIMEOUT_S`; :meth:`check_new_values`)."""
    max_learner_restarts: int = 3
    """Shared mode: a dead (or stalled) learner is restarted from its newest checkpoint, at most
    this many times in a row (no checkpoint written in between); the next death stops the run
    (0: the first death does)."""
    learner_checkpoint_every: int = 20
    """Shared mode: the learner checkpoints every this many updates (at most this many are lost
    when it dies)."""

    def check_new_values(self, shared: bool, stored: "TrainingConfig | None" = None) -> None:
        """Refuse what later versions found cannot work, unless ``stored`` (a resumed run's settings)
        holds the same: such a run was started by an earlier version and goes on as it did (and a
        resume may not change these keys, but for ipc_timeout, so refusing it would leave no way on).

        ``training.ipc_timeout`` below :data:`MIN_IPC_TIMEOUT_S`; in shared mode (``shared``),
        ``training.max_policy_lag`` 0 without ``training.sync``: asynchronous workers act while the
        learner updates, so every segment an update overtakes is one version old, and a third to a
        half of all experience was dropped (found in review).
        """
        if self.ipc_timeout < MIN_IPC_TIMEOUT_S and not (stored is not None and stored.ipc_timeout == self.ipc_timeout):
            raise ConfigError(
                f"training.ipc_timeout is {self.ipc_timeout:g} s; give at least {MIN_IPC_TIMEOUT_S:g} s. An idle worker "
                f"beats once a second, and a first task's imports go about 2 s without a beat, so a shorter timeout "
                f"kills healthy workers as stalled."
            )  # fmt: skip
        lag_zero_async = self.max_policy_lag == 0 and not self.sync
        if shared and lag_zero_async and not (stored is not None and stored.max_policy_lag == 0 and not stored.sync):
            raise ConfigError(
                "training.max_policy_lag is 0 without training.sync, so every segment acted while the learner "
                "updates would be dropped. For updates on data of the current policy only, set training.sync to "
                "true; otherwise allow a lag of at least 1 (the default is 4)."
            )

    def validate(self) -> "TrainingConfig":
        """Raise ConfigError on a bad size or an inconsistent pair; return self. Rules that runs
        stored by earlier versions may break are in :meth:`check_new_values`."""
        _check_int_range("training.buffer_size", self.buffer_size, 1, 10**9)
        _check_int_range("training.min_batch_size", self.min_batch_size, 1, 10**9)
        _check_int_range("training.update_interval", self.update_interval, 1, 10**9)
        _check_int_range("training.max_policy_lag", self.max_policy_lag, 0, 10**6,
                         advice="give 1 to 1000000 (the default is 4), or 0 with training.sync true")  # check_new_values
        _check_int_range("training.reevaluate_every", self.reevaluate_every, 0, 10**9)
        _check_choice("training.value_targets", self.value_targets, ("current_critic", "behaviour", "vtrace"))
        _check_choice("training.clip_against", self.clip_against, CLIP_AGAINST)
        _check_float_range("training.ipc_timeout", self.ipc_timeout, 1.0, 86_400.0,  # MIN_IPC_TIMEOUT_S: check_new_values
                           advice=f"give {MIN_IPC_TIMEOUT_S:g} to 86400 s (the default is 120; below {MIN_IPC_TIMEOUT_S:g} "
                                  f"s only runs stored with it by earlier versions go on)")  # fmt: skip
        _check_int_range("training.max_learner_restarts", self.max_learner_restarts, 0, 1000)
        _check_int_range("training.learner_checkpoint_every", self.learner_checkpoint_every, 1, 10**9)
        if self.min_batch_size > self.buffer_size:
            raise ConfigError(
                f"training.min_batch_size ({self.min_batch_size}) is larger than training.buffer_size "
                f"({self.buffer_size}), so the learner would wait forever; raise buffer_size or lower min_batch_size."
            )
        return self


MEASURES = ("num_links", "total_length", "taper")
#: Most cells an archive may have.
MAX_ARCHIVE_CELLS = 1_000_000
#: Seeds must lie in [0, MAX_SEED]: numpy refuses negative seeds, and every library takes 32 bits.
MAX_SEED = 2**32 - 1
#: The most env steps a budget may name (evolution.max_env_steps, `morphelites ppo --steps`).
MAX_ENV_STEPS = 10**13
#: The most evaluation episodes per body (evolution.eval_episodes, `morphelites ppo --eval-episodes`).
MAX_EVAL_EPISODES = 100_000
#: More worker processes than this many per core are refused (they only add memory and switching).
MAX_WORKERS_PER_CORE = 4
EMITTERS = ("iso_line", "gaussian")


@dataclass(frozen=True)
class EvolutionConfig:
    """The MAP-Elites loop: archive, variation, budgets, evaluation, bookkeeping."""

    num_initial_random: int = 8
    """Individuals drawn uniformly from the genome cube before variation starts."""
    training_steps_per_individual: int = 1500
    """Env steps of PPO training each individual gets before it is evaluated, rounded up to whole
    segments in shared mode (``training.update_interval``, itself rounded up to whole steps of the
    worker's 4 envs) and to whole steps of ``ppo.num_envs`` envs in independent mode; the run warns
    where that adds more than 5%. ``results.jsonl`` records each individual's own count."""
    evaluations: int = 64
    """Stop after this many evaluated individuals."""
    max_env_steps: int | None = None
    """Also stop issuing individuals once this many env steps (training + evaluation) were
    simulated (None: no limit). The individuals in flight then (up to one per worker) finish,
    and in shared mode the final re-evaluation of the elites follows, so a run ends above it by
    up to that much; training.log says by how much."""
    max_wall_s: float | None = None
    """Also stop issuing individuals after this many seconds of wall time (None: no limit); what
    is in flight and the final re-evaluation come on top, as for ``max_env_steps``."""
    measures: tuple[str, ...] = ("num_links", "total_length")
    """Archive axes, one or two of them (each once), from ``num_links`` (one bin per joint count), ``total_length`` (m) and
    ``taper`` ((first - last link length) / (first + last); its axis spans the values bodies of
    the space take, ±(max_link_length - min_link_length) / (max_link_length + min_link_length))."""
    continuous_bins: int = 10
    """Bins of each continuous measure (total_length, taper)."""
    emitter: str = "iso_line"
    """Variation operator from pyribs: ``iso_line`` (Iso+LineDD) or ``gaussian``."""
    sigma: float = 0.1
    """Gaussian mutation std in genome units (``gaussian``), or the iso std (``iso_line``)."""
    line_sigma: float = 0.2
    """Std of the step along the line between two elites (``iso_line`` only)."""
    eval_episodes: int = 20
    """Evaluation goals per individual (fixed, seeded, the same for every individual)."""
    eval_seed: int = 12345
    """Seed of the evaluation goals."""
    max_workers: int | None = None
    """Worker processes (None: 75% of the cores, at least 1)."""
    enable_multiprocess: bool = True
    """Evaluate in worker processes; False runs everything in this process (debugging)."""
    use_shared_ppo: bool = True
    """Shared mode (one policy trained by all workers) instead of one fresh PPO per individual."""
    seed: int = 0
    """Seeds variation and training (everything but the evaluation episodes is derived from it);
    the evaluation's goals and start poses come from ``eval_seed``, the same whatever this seed."""
    checkpoint_every: int = 10
    """Write a checkpoint every this many evaluations (and at the end and on Ctrl-C)."""
    checkpoints_kept: int = 3
    """How many checkpoints to keep: of the evolution, and in shared mode of the learner too
    (``learner-*.pkl``), the newest ones (an older one is what a resume falls back on when the
    newest is damaged)."""
    heatmap_every: int = 10
    """Redraw heatmap.png every this many evaluations."""
    parent_lag: int = 0
    """0: a result enters the archive when it arrives, and a new individual's parents come from
    whatever has arrived (no worker waits; with several workers the run depends on timing).
    N >= 1: results enter the archive in id order, and individual k's parents are drawn from the
    archive of individuals 0 .. k-N-1 exactly, so that a seed gives the same run whatever the
    timing and the number of workers (independent mode; shared mode's policy still depends on
    timing). A worker then waits while an individual more than N ids older is still evaluated, and
    at most N + 1 individuals are evaluated at once after the random start: N = the number of
    workers keeps the waits short."""

    def validate(self) -> "EvolutionConfig":
        """Raise ConfigError on a bad budget, measure or operator; return self."""
        _check_int_range("evolution.num_initial_random", self.num_initial_random, 1, 10_000_000)
        _check_int_range("evolution.training_steps_per_individual", self.training_steps_per_individual, 1, 10**10)
        _check_int_range("evolution.evaluations", self.evaluations, 1, 10**9)
        if self.max_env_steps is not None:
            _check_int_range("evolution.max_env_steps", self.max_env_steps, 1, MAX_ENV_STEPS)
        if self.max_wall_s is not None:
            _check_float_range("evolution.max_wall_s", self.max_wall_s, 1e-3, 1e9)
        if not self.measures:
            raise ConfigError("evolution.measures is empty; give one or two of " + ", ".join(MEASURES) + ".")
        for name in self.measures:
            _check_choice("evolution.measures entry", name, MEASURES)
        if len(set(self.measures)) != len(self.measures):
            raise ConfigError(f"evolution.measures lists a measure twice: {list(self.measures)}; list each measure once.")
        if len(self.measures) > 2:  # pyribs draws heatmaps of 1-D and 2-D archives only
            raise ConfigError(f"evolution.measures lists {len(self.measures)} measures: {list(self.measures)}; give one "
                              f"or two of " + ", ".join(MEASURES) + ".")  # fmt: skip
        _check_int_range("evolution.continuous_bins", self.continuous_bins, 1, 10_000)
        _check_choice("evolution.emitter", self.emitter, EMITTERS)
        _check_float_range("evolution.sigma", self.sigma, 1e-6, 10.0)
        _check_float_range("evolution.line_sigma", self.line_sigma, 0.0, 10.0)
        _check_int_range("evolution.eval_episodes", self.eval_episodes, 1, MAX_EVAL_EPISODES)
        _check_int_range("evolution.seed", self.seed, 0, MAX_SEED)
        _check_int_range("evolution.eval_seed", self.eval_seed, 0, MAX_SEED)
        if self.max_workers is not None:
            _check_int_range("evolution.max_workers", self.max_workers, 1, 1024)
            cores = usable_cores()
            # --serial starts no workers: a cluster's config stays usable for debugging on a laptop
            if self.enable_multiprocess and self.max_workers > MAX_WORKERS_PER_CORE * cores:
                raise ConfigError(
                    f"evolution.max_workers (--workers) is {self.max_workers}, but this process may use {cores} cores: more "
                    f"than {MAX_WORKERS_PER_CORE} workers per core ({MAX_WORKERS_PER_CORE * cores} here) only adds memory "
                    f"and switching. Use --workers {max(1, cores * 3 // 4)} (the default) or at most {MAX_WORKERS_PER_CORE * cores}."
                )
        _check_int_range("evolution.checkpoint_every", self.checkpoint_every, 1, 10**9)
        _check_int_range("evolution.checkpoints_kept", self.checkpoints_kept, 1, 1000)
        _check_int_range("evolution.heatmap_every", self.heatmap_every, 1, 10**9)
        _check_int_range("evolution.parent_lag", self.parent_lag, 0, 1024)
        return self

    @property
    def workers(self) -> int:
        """Worker processes to start: ``max_workers`` or 75% of :func:`usable_cores`, at least 1."""
        return self.max_workers or max(1, usable_cores() * 3 // 4)


def usable_cores() -> int:
    """The cores this process may run on: its CPU affinity where the OS has one (a cluster job's
    allocation, ``taskset``), else all of the machine's, and no more than its cgroup's CPU quota
    allows (a container's ``--cpus``, a Kubernetes limit: :mod:`morphelites.cgroup_limits`).
    ``os.cpu_count()`` counts the whole node."""
    from morphelites import cgroup_limits

    cores = max(1, len(os.sched_getaffinity(0))) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    quota = cgroup_limits.cgroup_cpu_limit()
    return cores if quota is None else min(cores, quota)


class _RepeatedKey(ValueError):
    """A JSON object of a config file names a key twice (``key``; ``keys``: the object's keys)."""

    def __init__(self, key: str, keys: str) -> None:
        super().__init__(key)
        self.key, self.keys = key, keys


def _refuse_repeated_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """``json.load``'s ``object_pairs_hook``: the object as a dict, unless a key comes twice
    (``{"ppo": {...}, "ppo": {...}}`` silently dropped the first block)."""
    data: dict[str, Any] = {}
    for key, value in pairs:
        if key in data:
            raise _RepeatedKey(key, ", ".join(dict.fromkeys(k for k, _ in pairs)))
        data[key] = value
    return data


# --------------------------------------------------------------------------- parsing helpers

Section = TypeVar("Section")


def section_from_dict(cls: type[Section], data: dict[str, Any] | None, where: str) -> Section:
    """Build dataclass ``cls`` from ``data``, checking keys and types.

    ``where`` names the section in messages (e.g. ``"ppo"``). Unknown keys get a did-you-mean;
    a value of the wrong type names the key, the value and the expected type.
    """
    if data is None:
        return cls()
    if not isinstance(data, dict):
        raise ConfigError(f"Config section {where} must be a JSON object of option names to values (e.g. "
                          f"{{\"{where}\": {{...}}}}), got {data!r}.")  # fmt: skip
    fields = {f.name: f for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    hints = typing.get_type_hints(cls)
    kwargs: dict[str, Any] = {}
    for key, value in data.items():
        if key not in fields:
            close = difflib.get_close_matches(str(key), list(fields), n=1)
            hint = f" Did you mean '{close[0]}'?" if close else ""
            raise ConfigError(
                f"Unknown option '{where}.{key}'.{hint} Known options of {where}: "
                f"{', '.join(sorted(fields))}."
            )
        kwargs[key] = _coerce(f"{where}.{key}", value, hints[key])
    return cls(**kwargs)


def section_to_dict(section: Any) -> dict[str, Any]:
    """Plain-dict view of a config section, for config.json."""
    return dataclasses.asdict(section)


def _coerce(name: str, value: Any, hint: Any) -> Any:
    """Check ``value`` against type ``hint``; ints are accepted where floats are expected."""
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        options = typing.get_args(hint)
        if value is None and type(None) in options:
            return None
        inner = [o for o in options if o is not type(None)]
        return _coerce(name, value, inner[0])
    if origin is Literal:
        return _check_choice(name, value, typing.get_args(hint))
    if origin is tuple:
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{name} must be a list, got {value!r}; write it as a JSON list in square brackets, "
                              f"e.g. [\"num_links\", \"total_length\"].")  # fmt: skip
        item = typing.get_args(hint)[0]
        return tuple(_coerce(f"{name}[{i}]", v, item) for i, v in enumerate(value))
    if hint is bool:
        if isinstance(value, bool):
            return value
        if getattr(getattr(value, "dtype", None), "kind", None) == "b":  # numpy's bool, e.g. from a sweep grid
            return bool(value)
    elif hint is int:
        if isinstance(value, numbers.Integral) and not isinstance(value, bool):  # numpy's ints too
            return int(value)
    elif hint is float:
        if isinstance(value, numbers.Real) and not isinstance(value, bool):  # numpy's numbers too
            try:
                return float(value)
            except OverflowError:  # an integer beyond float's range
                raise ConfigError(f"{name} is an integer of {len(str(abs(value)))} digits, beyond the range of a float; "
                                  f"give a sensible value.") from None  # fmt: skip
    elif hint is str:
        if isinstance(value, str):
            return value
    else:
        return value
    raise ConfigError(
        f"{name} must be {_TYPE_WORDS.get(hint, hint.__name__)}, got {value!r} ({type(value).__name__}); "
        f"{_TYPE_FIX.get(hint, 'change it in the config')}."
    )


def _check_types(section: Any, where: str) -> None:
    """The checks of :func:`section_from_dict` on a section built in Python (``dataclasses.replace``,
    keyword arguments), where nothing checked them: e.g. ``use_shared_ppo="false"`` is truthy,
    and an int where a bool belongs would be stored in config.json, which ``--resume`` refuses."""
    hints = typing.get_type_hints(type(section))
    for field in dataclasses.fields(section):
        value = getattr(section, field.name)
        plain = _coerce(f"{where}.{field.name}", value, hints[field.name])
        if type(value).__module__ == "numpy":  # kept as the plain number, which config.json can hold
            object.__setattr__(section, field.name, plain)


_TYPE_WORDS = {int: "a whole number (int)", float: "a number (float)", bool: "true or false (bool)", str: "a string"}
_TYPE_FIX = {int: "write it without quotes or decimals, e.g. 4", float: "write it as a JSON number, e.g. 0.5",
             bool: "write true or false without quotes", str: "write it in double quotes"}  # fmt: skip


def _check_int_range(name: str, value: Any, low: int, high: int, advice: str = "set it to a value in that range") -> int:
    """``value`` if it is a whole number in [low, high]; else ConfigError ending with ``advice``
    (where a later rule narrows the range for new runs, the advice names the narrower one)."""
    if not isinstance(value, int) or isinstance(value, bool):
        raise ConfigError(f"{name} must be a whole number in [{low}, {high}], got {value!r}; set it to one.")
    if not low <= value <= high:
        raise ConfigError(f"{name} is {value}, outside the allowed range [{low}, {high}]; {advice}.")
    return value


def _check_float_range(name: str, value: Any, low: float, high: float,
                       advice: str = "set it to a value in that range") -> float:
    """``value`` as a float if it is a finite number in [low, high]; else ConfigError ending with ``advice``."""
    if not isinstance(value, (int, float)) or isinstance(value, bool) or not math.isfinite(value):
        raise ConfigError(f"{name} must be a finite number in [{low}, {high}], got {value!r}; set it to one.")
    if not low <= value <= high:
        raise ConfigError(f"{name} is {value}, outside the allowed range [{low}, {high}]; {advice}.")
    return float(value)


def _check_choice(name: str, value: Any, choices: tuple[Any, ...]) -> Any:
    if value not in choices:
        close = difflib.get_close_matches(str(value), [str(c) for c in choices], n=1)
        hint = f" Did you mean '{close[0]}'?" if close else " Use one of these."
        raise ConfigError(
            f"{name} is {value!r}, which is not one of {', '.join(map(repr, choices))}.{hint}"
        )
    return value



@dataclass(frozen=True)
class Settings:
    """All configuration sections of a run; what ``--config FILE`` holds and config.json records."""

    body_space: BodySpaceConfig = BodySpaceConfig()
    env: EnvConfig = EnvConfig()
    model: ModelConfig = ModelConfig()
    ppo: PPOConfig = PPOConfig()
    evolution: EvolutionConfig = EvolutionConfig()
    training: TrainingConfig = TrainingConfig()

    def validate(self, command: Literal["train", "ppo"] = "train", reach_task: bool = True) -> "Settings":
        """Validate every section for ``command`` (``morphelites train`` or ``ppo``: the batch
        checks follow what it trains on); raises ConfigError with a fix-it message.

        Sections the command does not read are checked for their types only: ``evolution`` and
        ``training`` for ``ppo``, and ``env`` and ``body_space`` when ``reach_task`` is False
        (``ppo --env``, a Gymnasium task instead of our reaching task)."""
        if command not in ("train", "ppo"):
            raise ValueError(f"command is {command!r}; use 'train' or 'ppo'")
        if not reach_task and command != "ppo":
            raise ValueError("reach_task=False is for command 'ppo' (a Gymnasium task); 'train' evolves our bodies")
        for section in dataclasses.fields(self):
            _check_types(getattr(self, section.name), section.name)
        if reach_task:
            self.body_space.validate()
            self.env.validate()
        self.model.validate()
        self.ppo.validate()
        if command == "train":  # ppo reads neither the evolution nor the training section, nor an archive
            self.evolution.validate()
            self.training.validate()
            self._check_archive_size()
            self._check_measures_vary()
        if command == "ppo" or not self.evolution.use_shared_ppo:
            self.ppo.check_rollout_batch()
        else:
            self._check_shared_minibatches()
        return self

    def check_scene_fits(self) -> "Settings":
        """For a new run: refuse a scene whose walls the body space's straight start pose touches
        (:func:`morphelites.envs.scenes.check_fits`); return self. Not part of :meth:`validate`: a
        run stored before this check resumes and animates as before (review)."""
        from morphelites.envs.scenes import check_fits

        try:
            check_fits(self.env.scene, self.body_space.max_reach)
        except ValueError as error:
            raise ConfigError(str(error)) from None
        return self

    def _check_shared_minibatches(self) -> None:
        """Refuse a shared learner's batch (at least training.min_batch_size) too small for
        ppo.num_minibatches minibatches of MIN_MINIBATCH transitions."""
        ppo, training = self.ppo, self.training
        if MIN_MINIBATCH * ppo.num_minibatches > training.min_batch_size:
            raise ConfigError(
                f"training.min_batch_size ({training.min_batch_size}) leaves fewer than {MIN_MINIBATCH} transitions per "
                f"minibatch of a shared update with ppo.num_minibatches = {ppo.num_minibatches} (advantages are "
                f"normalised over a minibatch); raise min_batch_size to at least "
                f"{MIN_MINIBATCH * ppo.num_minibatches} or lower num_minibatches."
            )  # fmt: skip

    def _check_measures_vary(self) -> None:
        """Refuse a continuous measure that every body of the space shares one value of: its axis
        would have zero width, every body would fall in one bin, and coverage could never pass
        1/bins."""
        space = self.body_space
        same_lengths = space.min_link_length == space.max_link_length
        constant = {"taper": same_lengths or space.max_links == 1,
                    "total_length": same_lengths and space.min_links == space.max_links}  # fmt: skip
        for name in self.evolution.measures:
            if constant.get(name, False):
                raise ConfigError(
                    f"evolution.measures has {name!r}, but every body of this body space has the same {name} "
                    f"(links {space.min_links}-{space.max_links}, {space.min_link_length}-{space.max_link_length} m), "
                    f"so the archive axis would hold one value. Widen body_space, or choose other measures "
                    f"(of {', '.join(MEASURES)})."
                )  # fmt: skip

    def _check_archive_size(self) -> None:
        """Refuse an archive of more than MAX_ARCHIVE_CELLS cells (it would take gigabytes)."""
        evo, space = self.evolution, self.body_space
        sizes = [space.max_links - space.min_links + 1 if m == "num_links" else evo.continuous_bins for m in evo.measures]
        cells = math.prod(sizes)
        if cells > MAX_ARCHIVE_CELLS:
            raise ConfigError(
                f"The archive would have {cells:,} cells ({' x '.join(map(str, sizes))} over {', '.join(evo.measures)}); "
                f"at most {MAX_ARCHIVE_CELLS:,} are allowed (each holds an elite's genome and figures). Lower "
                f"evolution.continuous_bins, or use fewer measures."
            )

    @classmethod
    def from_dict(cls, data: dict[str, Any] | None) -> "Settings":
        """Build from ``{"body_space": {...}, "ppo": {...}, ...}``; unknown sections are errors."""
        if data is None:
            data = {}
        if not isinstance(data, dict):
            raise ConfigError(f"A config must be a JSON object of sections (e.g. {{\"ppo\": {{\"learning_rate\": 0.0003}}}}), "
                              f"got a {type(data).__name__}.")  # fmt: skip
        sections = {f.name: f.type for f in dataclasses.fields(cls)}
        hints = typing.get_type_hints(cls)
        if "settings" in data and isinstance(data["settings"], dict) and not set(data) & set(sections):
            raise ConfigError("This is a run's config.json (its sections are under \"settings\"); a config holds the "
                              "sections themselves. Save that object as a file of its own, e.g. `jq .settings "
                              "RUN/config.json > exp.json`, and give that.")  # fmt: skip
        for key in data:
            if key not in sections:
                close = difflib.get_close_matches(str(key), list(sections), n=1)
                hint = f" Did you mean '{close[0]}'?" if close else ""
                raise ConfigError(f"Unknown config section '{key}'.{hint} Known sections: {', '.join(sections)}.")
        for name in sections:
            if name in data and data[name] is None:
                raise ConfigError(f"Config section {name} is null. Leave it out (or write {{}}) for its defaults, or give "
                                  f"its options as an object, e.g. {{\"{name}\": {{...}}}}.")  # fmt: skip
        return cls(**{name: section_from_dict(hints[name], data.get(name), name) for name in sections})

    def to_dict(self) -> dict[str, Any]:
        return {f.name: section_to_dict(getattr(self, f.name)) for f in dataclasses.fields(self)}

    def with_default_epochs(self, evolution: bool) -> "Settings":
        """These settings with ``ppo.update_epochs`` filled in where it is None (see
        PPOConfig.update_epochs), so that config.json records what a run used."""
        return dataclasses.replace(self, ppo=self.ppo.with_default_epochs(evolution=evolution))


def load_config_file(path: str) -> dict[str, Any]:
    """Read a JSON config file; raises ConfigError naming the file on a missing file or bad JSON."""
    import json

    try:
        with open(path, encoding="utf-8-sig") as handle:  # -sig: a byte-order mark some editors write is no error
            data = json.load(handle, object_pairs_hook=_refuse_repeated_keys)
    except _RepeatedKey as repeated:
        raise ConfigError(f"Config file {path} names '{repeated.key}' twice in one object ({repeated.keys}). JSON keeps only "
                          f"the last one, so the settings of the first would be lost without a word; merge the two into "
                          f"one.") from None  # fmt: skip
    except FileNotFoundError:
        raise ConfigError(f"Config file {path} does not exist; check the --config path.") from None
    except IsADirectoryError:
        raise ConfigError(f"Config file {path} is a directory, not a file; give --config the path of a JSON file.") from None
    except (json.JSONDecodeError, RecursionError) as error:  # RecursionError: nested thousands deep
        raise ConfigError(f"Config file {path} is not valid JSON: {error}. Fix it (keys and strings in double quotes, no "
                          f"trailing commas).") from None  # fmt: skip
    except UnicodeDecodeError as error:
        raise ConfigError(f"Config file {path} is not UTF-8 text (byte {error.object[error.start]:#04x} at position "
                          f"{error.start}); save it as UTF-8 JSON, or check the --config path.") from None  # fmt: skip
    except ValueError as error:  # an integer of more digits than Python converts (4,300)
        raise ConfigError(f"Config file {path} holds a number Python will not read: {error}. No setting takes a number "
                          f"that large; fix it.") from None  # fmt: skip
    except OSError as error:
        raise ConfigError(f"Cannot read config file {path}: {error.strerror or error}. Check the --config path and the "
                          f"file's permissions.") from None  # fmt: skip
    if not isinstance(data, dict):  # e.g. null from a jq filter that matched nothing: not "use the defaults"
        raise ConfigError(f"Config file {path} holds {type(data).__name__ if data is not None else 'null'}, not a JSON "
                          f"object of sections, e.g. {{\"evolution\": {{...}}, \"ppo\": {{...}}}}; check the file (jq .settings "
                          f"RUN/config.json gives one).")  # fmt: skip
    return data
