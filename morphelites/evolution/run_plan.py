"""What an evolution run's settings imply before it starts: how many env steps each body trains,
how many shared-mode workers can act at once, and the warnings training.log gives about settings
that do not do what they seem to (pure functions of the settings; the trainer logs them)."""

from __future__ import annotations

import dataclasses
import math

from morphelites.config import PPOConfig, Settings, TrainingConfig
from morphelites.parallel.supervisor import ENVS_PER_WORKER, max_ready_transitions, segment_transitions

__all__ = ["training_steps_each", "workers_acting_at_once", "settings_warnings", "shared_only_changes", "independent_only_changes"]

#: A body's training may pass its budget by this share before the run warns (whole segments or
#: env steps: the defaults give 1,500 exactly in shared mode and 1,504 in independent mode).
TRAINING_OVERSHOOT_WARNING = 0.05


def training_steps_each(settings: Settings, mode: str) -> int:
    """Env steps each individual's training takes: ``evolution.training_steps_per_individual``
    rounded up to whole segments in shared mode (``training.update_interval`` over
    ``ENVS_PER_WORKER`` envs, rounded up to whole steps of each) and to whole steps of all
    ``ppo.num_envs`` envs in independent mode (see train_ppo.rollout_plan)."""
    segment = segment_transitions(settings) if mode == "shared" else settings.ppo.num_envs
    return math.ceil(settings.evolution.training_steps_per_individual / segment) * segment


def workers_acting_at_once(settings: Settings, workers: int) -> int:
    """How many of ``workers`` shared-mode workers can act at once: all of them in sync mode (no
    room limit), else as many as the buffer lets in: a worker takes a slot while fewer than the
    room of :func:`max_ready_transitions` are claimed, so that room over a segment, rounded up."""
    training = settings.training
    if training.sync:
        return workers
    room = max_ready_transitions(training.min_batch_size, training.max_policy_lag)
    return min(workers, -(-room // segment_transitions(settings)))


def shared_only_changes(training: TrainingConfig) -> list[str]:
    """``training.KEY=value`` for each setting of ``training`` that differs from its default and
    that only shared mode uses (every one but ``ipc_timeout``, which watches any worker)."""
    defaults = TrainingConfig()
    return [f"training.{field.name}={getattr(training, field.name)!r}" for field in dataclasses.fields(training)
            if field.name != "ipc_timeout" and getattr(training, field.name) != getattr(defaults, field.name)]  # fmt: skip


def independent_only_changes(ppo: PPOConfig) -> list[str]:
    """``ppo.KEY=value`` for ``num_envs`` and ``num_steps`` where they differ from their defaults:
    shared mode's workers and learner read neither (``ENVS_PER_WORKER``, ``training.update_interval``)."""
    defaults = PPOConfig()
    return [f"ppo.{name}={getattr(ppo, name)!r}" for name in ("num_envs", "num_steps")
            if getattr(ppo, name) != getattr(defaults, name)]  # fmt: skip


def settings_warnings(settings: Settings, mode: str, workers: int) -> list[str]:
    """training.log's warnings, as a run of ``mode`` ("shared" or "independent") with ``workers``
    worker processes starts, about settings that will not do what they seem to: a body's training
    well past its budget, workers the buffer keeps idle, settings the mode ignores, and a
    ``parent_lag`` that idles workers. Empty when there is nothing to say."""
    evo, training = settings.evolution, settings.training
    warnings = []
    each = training_steps_each(settings, mode)
    if each > evo.training_steps_per_individual * (1 + TRAINING_OVERSHOOT_WARNING):
        if mode == "shared":
            why = (f"a shared worker writes whole segments of {segment_transitions(settings)} transitions "
                   f"(training.update_interval over {ENVS_PER_WORKER} envs)", "training.update_interval")
        else:
            why = f"independent PPO steps all {settings.ppo.num_envs} envs at once", "ppo.num_envs"
        warnings.append(f"Each body will train {each} env steps, {100 * (each / evo.training_steps_per_individual - 1):.0f}% "
                        f"more than evolution.training_steps_per_individual ({evo.training_steps_per_individual}): "
                        f"{why[0]}. Make the budget a multiple of that, or lower {why[1]}, to train each body on the "
                        f"budget set.")  # fmt: skip
    acting = workers_acting_at_once(settings, workers) if mode == "shared" else workers
    if acting < workers:
        warnings.append(f"At most {acting} of the {workers} workers act at once: experience waiting for the learner or "
                        f"being written is held to (max_policy_lag - 1) x min_batch_size = "
                        f"{max_ready_transitions(training.min_batch_size, training.max_policy_lag)} transitions, "
                        f"{acting} segments of {segment_transitions(settings)}, since more would reach the learner past "
                        f"max_policy_lag and be dropped. To keep every worker busy raise training.min_batch_size or "
                        f"training.max_policy_lag, or lower training.update_interval, or use fewer workers.")  # fmt: skip
    unused = shared_only_changes(training) if mode == "independent" else []
    if unused:
        warnings.append(f"Independent mode does not use {', '.join(unused)}: only the shared learner does. Ignoring "
                        f"{'them' if len(unused) > 1 else 'it'}.")  # fmt: skip
    unused = independent_only_changes(settings.ppo) if mode == "shared" else []
    if unused:
        warnings.append(f"Shared mode does not use {', '.join(unused)}: each worker steps {ENVS_PER_WORKER} copies of "
                        f"its body, in segments of training.update_interval steps, and the learner's batches are "
                        f"training.min_batch_size. Ignoring {'them' if len(unused) > 1 else 'it'}.")  # fmt: skip
    if 0 < evo.parent_lag < workers - 1:
        warnings.append(f"evolution.parent_lag is {evo.parent_lag} with {workers} workers: after the random start at "
                        f"most {evo.parent_lag + 1} individuals are evaluated at once, and {workers - evo.parent_lag - 1} "
                        f"worker(s) idle. Set parent_lag to the number of workers.")  # fmt: skip
    return warnings
