"""``morphelites ppo``: train one policy on one or more bodies, or on a Gymnasium Box task.

Wires the pieces (envs, ActorCritic, :func:`train_policy`, evaluation) to a run directory:
``config.json``, ``training.log``, ``metrics.csv``, ``tensorboard/``, ``curves.png`` (learning
curves), ``policy.pt``, ``checkpoints/policy-*.pt`` and ``summary.json`` (final evaluation figures).
"""

from __future__ import annotations

import dataclasses
import io
import os
import signal
import threading
import time
from dataclasses import dataclass
from typing import Any, Callable

import gymnasium as gym
import numpy as np
import torch

from morphelites.config import ConfigError, Settings
from morphelites.envs.reach import ReachEnv
from morphelites.morphology import BodySpace, Morphology
from morphelites.policy import ActorCritic, reach_policy_spec
from morphelites.policy_numpy import PolicySpec
from morphelites.rollout import ActingPolicy, EvalResult, evaluate, run_episodes
from morphelites.runs import MetricsWriter, RunDirectory, atomic_write_bytes, open_training_log, read_metric_rows
from morphelites.runs.checkpoints import save_checkpoint
from morphelites.train_ppo import train_policy

__all__ = ["PPORunRequest", "check_gym_env", "make_gym_env", "evaluate_gym_policy", "run_ppo", "mixed_bodies", "METRIC_COLUMNS"]

METRIC_COLUMNS = (
    "env_steps", "update", "wall_s", "steps_per_s", "episode_return", "success_rate", "episode_length",
    "policy_loss", "value_loss", "entropy", "approx_kl", "clip_fraction", "explained_variance", "grad_norm",
    "learning_rate", "skipped_steps",
)  # fmt: skip

#: Save a policy checkpoint every this many updates.
CHECKPOINT_EVERY_UPDATES = 25


@dataclass
class PPORunRequest:
    """A validated ``morphelites ppo`` request: either ``bodies`` or ``env_id`` is set."""

    settings: Settings
    output: str
    total_steps: int
    seed: int = 0
    bodies: tuple[Morphology, ...] = ()
    env_id: str | None = None
    eval_episodes: int = 50
    eval_seed: int = 10_000
    quiet: bool = False


def mixed_bodies(space: BodySpace, count: int, seed: int) -> tuple[Morphology, ...]:
    """``count`` random bodies whose joint counts cycle through the space's range."""
    rng = np.random.default_rng(seed)
    counts = [space.min_links + i % space.num_link_choices for i in range(count)]
    return tuple(space.random_body(rng, num_links=n) for n in counts)


def check_gym_env(env_id: str) -> tuple[int, int]:
    """Raise ConfigError unless ``env_id`` names a Gymnasium task with flat Box observations and
    actions; return their sizes (observation_dim, action_dim)."""
    try:
        env = gym.make(env_id)
    except gym.error.Error as error:
        raise ConfigError(f"--env {env_id!r}: {str(error).rstrip('.')}. Use a registered Gymnasium ID such as Reacher-v5.") from None
    except ImportError as error:
        raise ConfigError(f"--env {env_id!r} needs a package that is not installed: {error}.") from None
    try:
        for name, space in (("observation", env.observation_space), ("action", env.action_space)):
            if not isinstance(space, gym.spaces.Box) or len(space.shape) != 1:
                raise ConfigError(f"--env {env_id!r} has a {type(space).__name__} {name} space; only flat Box spaces are supported.")
        return int(env.observation_space.shape[0]), int(env.action_space.shape[0])
    finally:
        env.close()


def make_gym_env(env_id: str) -> gym.Env:
    """The Gymnasium task as PPO trains on it and is evaluated on it: actions clipped to the
    action space (the Gaussian policy's samples and means are unbounded; a task's control cost
    would otherwise charge for torque it never applied)."""
    return gym.wrappers.ClipAction(gym.make(env_id))


def evaluate_gym_policy(policy: ActingPolicy, env_id: str, episodes: int, first_seed: int) -> list[float]:
    """Returns of ``episodes`` deterministic episodes of ``policy`` on the Gymnasium task, env i
    reset with seed ``first_seed + i``, actions clipped as in training (:func:`make_gym_env`)."""
    envs = [make_gym_env(env_id) for _ in range(episodes)]
    try:
        return [r.episode_return for r in run_episodes(policy, envs, [first_seed + i for i in range(episodes)])]
    finally:
        for env in envs:
            env.close()


def run_ppo(request: PPORunRequest, should_stop: Callable[[], bool] | None = None) -> dict[str, Any]:
    """Train and evaluate as ``request`` says; returns the summary written to summary.json."""
    settings = request.settings.validate()
    run = RunDirectory(request.output).prepare(resume=False, resumable=False)
    log = open_training_log(run.training_log, quiet=request.quiet, name="morphelites.ppo")
    torch.set_num_threads(settings.ppo.torch_threads)
    if request.env_id is not None:
        envs = [make_gym_env(request.env_id) for _ in range(settings.ppo.num_envs)]
        obs_dim, act_dim = envs[0].observation_space.shape[0], envs[0].action_space.shape[0]
        spec = PolicySpec(obs_dim, act_dim, settings.model.hidden_dim, init_log_std=settings.model.init_log_std)
        settings = dataclasses.replace(settings, model=settings.model.resolved(obs_dim, act_dim, task=request.env_id))
        target = request.env_id
    else:
        spec = reach_policy_spec(settings.body_space.max_links, settings.model.hidden_dim, settings.model.init_log_std)
        settings = dataclasses.replace(settings, model=settings.model.resolved(spec.obs_dim, spec.action_dim))
        bodies = request.bodies
        envs = [
            ReachEnv(bodies[i % len(bodies)], body_space=settings.body_space, env_config=settings.env)
            for i in range(settings.ppo.num_envs)
        ]
        target = f"{len(bodies)} bod{'y' if len(bodies) == 1 else 'ies'} with {sorted({b.num_links for b in bodies})} joints"
    run.write_config(
        {
            "command": "ppo",
            "settings": settings.to_dict(),
            "total_steps": request.total_steps,
            "seed": request.seed,
            "env_id": request.env_id,
            "bodies": [b.to_dict() for b in request.bodies],
            "eval_episodes": request.eval_episodes,
            "eval_seed": request.eval_seed,
        }
    )
    model = ActorCritic(spec)
    metrics = MetricsWriter(run.metrics, METRIC_COLUMNS, tensorboard_dir=run.tensorboard)
    log.info("PPO on %s for %d env steps, seed %d, %d envs, output %s", target, request.total_steps, request.seed, len(envs), run.path)
    last_print = [0.0]
    last_update: dict[str, float] = {"env_steps": 0, "update": 0, "wall_s": 0.0}  # of the last metrics.csv row

    def on_update(record: dict[str, float]) -> None:
        metrics.write(record)
        last_update.update(record)
        update = int(record["update"])
        if update % CHECKPOINT_EVERY_UPDATES == 0:
            save_checkpoint(run.checkpoints, "policy", int(record["env_steps"]), _policy_file(model, record))
        if time.monotonic() - last_print[0] > 5.0:
            last_print[0] = time.monotonic()
            log.info(
                "steps %d/%d  return %.2f  success %s  %.0f steps/s",
                record["env_steps"], request.total_steps, record.get("episode_return", float("nan")),
                f"{record['success_rate']:.2f}" if "success_rate" in record else "n/a", record["steps_per_s"],
            )  # fmt: skip

    ctrl_c = _CtrlC(notice=None if request.quiet else "Ctrl-C: stopping after the update under way (Ctrl-C again: at once).")
    status = "completed"
    try:
        with ctrl_c:
            result = train_policy(model, envs, settings.ppo, request.total_steps, request.seed, on_update,
                                  lambda: ctrl_c.pressed or (should_stop is not None and should_stop()))  # fmt: skip
        if ctrl_c.pressed:
            status = "interrupted"
            log.warning("Ctrl-C: stopped after update %d (%d env steps); saving and evaluating that policy.",
                        result.updates, result.env_steps)  # fmt: skip
        counts = (result.env_steps, result.updates, result.wall_s)
    except KeyboardInterrupt:  # a second Ctrl-C: no waiting for the update under way
        status = "interrupted"
        counts = (int(last_update["env_steps"]), int(last_update["update"]), float(last_update["wall_s"]))
        log.warning("Second Ctrl-C: saving the policy as it is, after %d env steps.", counts[0])
    finally:
        metrics.close()
    env_steps, updates, wall_s = counts
    atomic_write_bytes(run.path / "policy.pt", _serialise(_policy_file(model, {"env_steps": env_steps})))
    _write_curves(run, f"{run.path.name}: PPO on {target}, {env_steps} env steps")
    summary: dict[str, Any] = {"mode": "ppo", "status": status, "target": target, "env_steps": env_steps,
                               "updates": updates, "wall_s": round(wall_s, 2), "seed": request.seed}  # fmt: skip
    actor = model.numpy_twin()
    if request.env_id is not None:
        returns = evaluate_gym_policy(actor, request.env_id, request.eval_episodes, request.eval_seed)
        summary.update({"eval_mean_return": float(np.mean(returns)), "eval_std_return": float(np.std(returns)), "eval_episodes": len(returns)})
        log.info("Evaluation over %d episodes: mean return %.2f ± %.2f", len(returns), np.mean(returns), np.std(returns))
    else:
        per_body = [
            evaluate(actor, body, request.eval_episodes, request.eval_seed, body_space=settings.body_space, env_config=settings.env)
            for body in dict.fromkeys(request.bodies)
        ]
        summary.update(_body_summary(list(dict.fromkeys(request.bodies)), per_body))
        log.info("Evaluation: mean success %.3f, mean fitness %.3f over %d bodies", summary["eval_success_rate"], summary["eval_fitness"], len(per_body))
    run.write_summary(summary)
    log.info("Run directory: %s", run.path)
    return summary


class _CtrlC:
    """Within its block, a first Ctrl-C only sets ``pressed`` (training stops after the update
    under way, with its counts intact) and prints ``notice`` at once; a second raises
    KeyboardInterrupt. Outside the main thread, where Python allows no signal handler, Ctrl-C
    keeps its usual meaning."""

    def __init__(self, notice: str | None = None) -> None:
        self.notice = notice
        self.pressed = False
        self._installed = False
        self._previous: Any = None

    def __enter__(self) -> "_CtrlC":
        if threading.current_thread() is threading.main_thread():
            self._previous = signal.signal(signal.SIGINT, self._on_sigint)
            self._installed = True
        return self

    def __exit__(self, *exc: object) -> None:
        if self._installed:
            # None: the previous handler was not set from Python, and the default is the nearest to it
            signal.signal(signal.SIGINT, signal.SIG_DFL if self._previous is None else self._previous)
            self._installed = False

    def _on_sigint(self, signum: int, frame: Any) -> None:
        if self.pressed:
            raise KeyboardInterrupt
        self.pressed = True
        if self.notice:
            # os.write, not logging or sys.stderr: the handler may run inside one of their writes,
            # and a buffered stream re-entered from a signal handler raises RuntimeError.
            os.write(2, f"\n{self.notice}\n".encode())


def _write_curves(run: RunDirectory, title: str) -> None:
    """curves.png: the learning curves from metrics.csv (none if no update finished)."""
    from morphelites.viz import ppo_curves_png  # matplotlib is only needed here

    rows = read_metric_rows(run.metrics)
    if rows:
        atomic_write_bytes(run.curves, ppo_curves_png(rows, title=title))


def _body_summary(bodies: list[Morphology], results: list[EvalResult]) -> dict[str, Any]:
    return {
        "eval_success_rate": float(np.mean([r.success_rate for r in results])),
        "eval_fitness": float(np.mean([r.fitness for r in results])),
        "eval_final_distance": float(np.mean([r.final_distance for r in results])),
        "per_body": [{"body": b.to_dict(), **r.to_dict()} for b, r in zip(bodies, results)],
    }


def _policy_file(model: ActorCritic, record: dict[str, float]) -> dict[str, Any]:
    return {"format": "morphelites-policy-1", "policy": model.policy_state(), "env_steps": int(record.get("env_steps", 0))}


def _serialise(state: dict[str, Any]) -> bytes:
    buffer = io.BytesIO()
    torch.save(state, buffer)
    return buffer.getvalue()

