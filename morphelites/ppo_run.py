"""``morphelites ppo``: train one policy on one or more bodies, or on a Gymnasium Box task.

Wires the pieces (envs, ActorCritic, :func:`train_policy`, evaluation) to a run directory:
``config.json``, ``training.log``, ``metrics.csv``, ``tensorboard/``, ``curves.png`` (learning
curves), ``policy.pt``, ``checkpoints/policy-*.pkl`` and ``summary.json`` (final evaluation figures).
"""

from __future__ import annotations

import contextlib
import dataclasses
import io
import logging
import math
import os
import signal
import threading
import time
from dataclasses import dataclass
from typing import Any, Callable, Iterator, Sequence

import gymnasium as gym
import numpy as np
import torch

from morphelites import early_interrupt
from morphelites.config import MAX_NUM_ENVS, ConfigError, Settings
from morphelites.envs.reach import ReachEnv
from morphelites.morphology import BodySpace, Morphology
from morphelites.parallel.pool import stop_signal_name, stop_signals_to_handle
from morphelites.policy import ActorCritic, reach_policy_spec
from morphelites.policy_numpy import PolicySpec, input_clip
from morphelites.preload import load_optimiser_modules, load_simulation_modules
from morphelites.rollout import ActingPolicy, EvalResult, evaluate, run_episodes_in_batches
from morphelites.runs import MetricsWriter, RunDirectory, atomic_write_bytes, open_training_log, read_metric_rows
from morphelites.runs.checkpoints import save_checkpoint
from morphelites.runs.metrics import tensorboard_modules
from morphelites.runs.run_dir import RunDirectoryError, RunHold
from morphelites.torch_state import caller_torch_state_kept
from morphelites.train_ppo import train_policy

__all__ = ["PPORunRequest", "check_gym_env", "make_gym_env", "evaluate_gym_policy", "run_ppo", "mixed_bodies", "METRIC_COLUMNS"]

METRIC_COLUMNS = (
    "env_steps", "update", "wall_s", "steps_per_s", "episode_return", "success_rate", "episode_length",
    "policy_loss", "value_loss", "entropy", "approx_kl", "clip_fraction", "explained_variance", "grad_norm",
    "learning_rate", "skipped_steps",
)  # fmt: skip

#: Save a policy checkpoint every this many updates.
CHECKPOINT_EVERY_UPDATES = 25
#: The config sections a ppo run reads (and config.json records): on our bodies, and on a Gymnasium task (``--env``).
_REACH_TASK_SECTIONS = ("body_space", "env", "model", "ppo")
_GYM_TASK_SECTIONS = ("model", "ppo")


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


def check_bodies_fit(bodies: Sequence[Morphology], num_envs: int) -> None:
    """Raise ConfigError unless every one of ``bodies`` gets an env of its own to train in (env i
    simulates body i mod len(bodies) for the whole run: with more bodies than envs, some would be
    evaluated without ever having been trained on)."""
    check_body_count(len(bodies), num_envs)


def check_body_count(count: int, num_envs: int) -> None:
    """:func:`check_bodies_fit` for ``count`` bodies, before any is made (``--mixed N``)."""
    if count < 1:
        raise ConfigError("No body to train on: give --body (or --mixed N), or --env for a Gymnasium task.")
    if count > num_envs:
        fix = (f"Give --num-envs {count} or more, or fewer bodies" if count <= MAX_NUM_ENVS
               else f"Give at most {MAX_NUM_ENVS} bodies (ppo.num_envs goes up to {MAX_NUM_ENVS})")  # fmt: skip
        raise ConfigError(f"{count} bodies but {num_envs} envs (ppo.num_envs): each env trains on one body, so "
                          f"{count - num_envs} of them would never be trained on. {fix}.")  # fmt: skip


def check_gym_env(env_id: str) -> tuple[int, int]:
    """Raise ConfigError unless ``env_id`` names a Gymnasium task with flat Box observations and
    actions; return their sizes (observation_dim, action_dim)."""
    try:
        env = gym.make(env_id)
    except gym.error.Error as error:
        raise ConfigError(f"--env {env_id!r}: {str(error).rstrip('.')}. Use a registered Gymnasium ID such as Reacher-v5.") from None
    except ImportError as error:
        raise ConfigError(f"--env {env_id!r} needs a package that is not installed: {error}.") from None
    except Exception as error:  # e.g. ":Reacher-v5" (ValueError: empty module name), or a task whose constructor fails
        raise ConfigError(f"--env {env_id!r} could not be made ({type(error).__name__}: {str(error).rstrip('.')}). Use a "
                          f"registered Gymnasium ID such as Reacher-v5.") from None  # fmt: skip
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
    seeds = [first_seed + i for i in range(episodes)]
    return [r.episode_return for r in run_episodes_in_batches(policy, lambda: make_gym_env(env_id), seeds)]


def run_ppo(request: PPORunRequest, should_stop: Callable[[], bool] | None = None) -> dict[str, Any]:
    """Train and evaluate as ``request`` says; returns the summary written to summary.json.

    From the run directory's creation on, a stop signal ends the run with a summary.json: a first
    one during the set-up skips training, never the default SIGTERM death (see :class:`_StopSignals`)."""
    # as the CLI: config.json records the epochs used, and a body outside the space is refused
    # a Gymnasium task reads neither the env nor the body_space section, and has no scene
    settings = request.settings.with_default_epochs(evolution=False).validate("ppo", reach_task=request.env_id is None)
    if request.env_id is None:
        settings.check_scene_fits()
        check_bodies_fit(request.bodies, settings.ppo.num_envs)
        space = BodySpace(settings.body_space)
        for body in request.bodies:
            space.check(body)
    # Before the handlers: a second Ctrl-C must not land in their first imports (morphelites.preload)
    load_simulation_modules()
    load_optimiser_modules()
    tensorboard_modules()
    _serialise({})  # torch.save's own first imports (policy.pt is serialised from the first update on)
    stop = _StopSignals(notice=None if request.quiet else
                        "{name}: stopping after the update under way ({name} again: at once).")  # fmt: skip
    with stop, caller_torch_state_kept():
        try:
            setup = _set_up(request, settings, stop)
        except _StoppedInSetUp as stopped:
            return stopped.summary
        try:
            if stop.received:
                summary = _stopped_before_training(request, setup, stop)
            else:
                summary = _train_and_finish(request, setup, stop, should_stop)
        except OSError as error:  # the disk filled up or went away under the run
            return _failed_to_write(request, setup, stop, error)
        except Exception as error:  # a bug, or a task's env that raised: still summary.json, then the caller sees it
            _failed_unexpectedly(request, setup, stop, error)
            raise
        finally:
            setup.hold.release()
    setup.log.info("Run directory: %s", setup.run.path)
    return summary


def _failed_unexpectedly(request: PPORunRequest, setup: "_PPORun", stop: "_StopSignals", error: Exception) -> None:
    """Training or the final evaluation raised: write the traceback to training.log and a summary
    with status ``failed``, keeping what was written before (metrics.csv, checkpoints/)."""
    stop.mode = "hold"
    message = (f"Unexpected error: {type(error).__name__}: {error} (traceback in training.log). What was written "
               f"before is kept: metrics.csv has how far training got; checkpoints/ the policy every "
               f"{CHECKPOINT_EVERY_UPDATES} updates.")  # fmt: skip
    setup.log.exception("Unexpected error; the run stops.")
    _end_with_failure(setup, {"mode": "ppo", "status": "failed", "target": setup.target, "seed": request.seed,
                              "error": message}, Exception)  # fmt: skip


class _StoppedInSetUp(Exception):
    """A second stop signal came while the run directory was being set up: the directory has
    a summary.json with the stop, ``summary``."""

    def __init__(self, summary: dict[str, Any]) -> None:
        super().__init__(summary.get("status"))
        self.summary = summary


def _failed_to_write(request: PPORunRequest, setup: _PPORun, stop: "_StopSignals", error: OSError) -> dict[str, Any]:
    """The run could not write to its directory: stop, keep what was written (config.json,
    metrics.csv rows, checkpoints), and return (and try to write) a summary with status
    ``failed`` and the error. metrics.csv's last row has how far training got."""
    stop.mode = "hold"
    message = (f"Could not write to the run directory {setup.run.path} ({error.strerror or error}); the run stopped. "
               f"What was written before is kept (metrics.csv has how far training got; checkpoints/ the policy "
               f"every {CHECKPOINT_EVERY_UPDATES} updates). Free disk space, or choose another --output, and run again.")
    summary = {"mode": "ppo", "status": "failed", "target": setup.target, "seed": request.seed, "error": message}
    _end_with_failure(setup, summary, OSError)
    setup.log.error("%s", message)
    return summary


def _end_with_failure(setup: _PPORun, summary: dict[str, Any], tolerated: type[Exception]) -> None:
    """Close the metrics writer and the envs and write ``summary``, each step tried whatever the
    others do (a failure of the kind ``tolerated`` is passed over: the run is failing already)."""
    for step in (setup.metrics.close, *(env.close for env in setup.envs), lambda: setup.run.write_summary(summary)):
        with contextlib.suppress(tolerated):
            step()


@dataclass
class _PPORun:
    """A ``morphelites ppo`` run set up: its directory (config.json written), log, envs, model and
    metrics writer; ``total`` env steps it will train (the budget rounded up to a whole step of
    every env), ``target`` what it trains on, in words."""

    settings: Settings
    run: RunDirectory
    hold: RunHold
    log: logging.Logger
    envs: list[Any]
    model: ActorCritic
    metrics: MetricsWriter
    target: str
    total: int


def _set_up(request: PPORunRequest, settings: Settings, stop: "_StopSignals") -> _PPORun:
    """Create the run directory, lock it (released by the caller), write config.json, make the
    envs, the model and the metrics writer. A second stop signal meanwhile (the first only marks
    the run as stopped) raises :class:`_StoppedInSetUp` once summary.json records it."""
    run = RunDirectory(request.output)
    hold = run.prepare_held(resume=False, resumable=False)
    try:
        return _set_up_held(request, settings, run, hold)
    except KeyboardInterrupt:
        stop.mode = "hold"
        summary = _not_started_summary(request, stop, target=None)
        logging.getLogger("morphelites.ppo").warning(
            "A second stop signal (%s) while the run was set up: nothing was trained or evaluated; summary.json "
            "records the stop.", stop_signal_name(stop.last_signum))  # fmt: skip
        with contextlib.suppress(OSError):
            run.write_summary(summary)
        hold.release()
        raise _StoppedInSetUp(summary) from None
    except _SetUpWriteRefused as refused:  # a quota the start check's free-space test cannot see, say
        error = refused.error
        _undo_set_up(run)
        hold.release()
        raise RunDirectoryError(
            f"Cannot write to the run directory {run.path} ({type(error).__name__}: {error}). Free some space (a "
            f"disk quota counts too) or fix its permissions, or give another --output; nothing was trained, and "
            f"the files the set-up had made are removed, so the same command can be run again.") from None  # fmt: skip
    except BaseException:  # nothing was trained: what the set-up made goes, so the same command can run again
        _undo_set_up(run)
        hold.release()
        raise


class _SetUpWriteRefused(Exception):
    """One of the set-up's writes into the run directory raised ``error`` (an OSError of anything
    else the set-up does, such as making a Gymnasium env, is not the directory's)."""

    def __init__(self, error: OSError) -> None:
        super().__init__(str(error))
        self.error = error


@contextlib.contextmanager
def _writing_the_run_directory() -> Iterator[None]:
    try:
        yield
    except OSError as error:
        raise _SetUpWriteRefused(error) from error


def _undo_set_up(run: RunDirectory) -> None:
    """Remove what :func:`_set_up_held` may have made before it failed, whatever failed (the
    directory held no run before: ``morphelites ppo`` never writes into one, and nothing was
    trained), so that its check does not refuse the same ``--output`` next time as a directory
    that holds files but no run, or a ppo run."""
    log = logging.getLogger("morphelites.ppo")
    for handler in list(log.handlers):  # the open training.log
        handler.close()
        log.removeHandler(handler)
    run.remove_unstarted_run()


def _set_up_held(request: PPORunRequest, settings: Settings, run: RunDirectory, hold: RunHold) -> _PPORun:
    """:func:`_set_up` once the run directory is held."""
    with _writing_the_run_directory():
        log = open_training_log(run.training_log, quiet=request.quiet, name="morphelites.ppo")
    torch.set_num_threads(settings.ppo.torch_threads)
    envs: list[Any]
    if request.env_id is not None:
        envs = [make_gym_env(request.env_id) for _ in range(settings.ppo.num_envs)]
        obs_dim, act_dim = envs[0].observation_space.shape[0], envs[0].action_space.shape[0]
        spec = PolicySpec(obs_dim, act_dim, settings.model.hidden_dim, init_log_std=settings.model.init_log_std,
                          input_clip=input_clip(settings.ppo.normalize_obs))  # fmt: skip
        settings = dataclasses.replace(settings, model=settings.model.resolved(obs_dim, act_dim, task=request.env_id))
        target = request.env_id
    else:
        spec = reach_policy_spec(settings.body_space.max_links, settings.model.hidden_dim, settings.model.init_log_std,
                                 settings.ppo.normalize_obs)  # fmt: skip
        settings = dataclasses.replace(settings, model=settings.model.resolved(spec.obs_dim, spec.action_dim))
        bodies = request.bodies
        envs = [
            ReachEnv(bodies[i % len(bodies)], body_space=settings.body_space, env_config=settings.env)
            for i in range(settings.ppo.num_envs)
        ]
        target = f"{len(bodies)} bod{'y' if len(bodies) == 1 else 'ies'} with {sorted({b.num_links for b in bodies})} joints"
    with _writing_the_run_directory():
        run.write_config({
            "command": "ppo",
            # the sections this run read: the evolution section's eval_episodes and eval_seed, say,
            # would contradict the run's own below (review)
            "settings": {name: section for name, section in settings.to_dict().items()
                         if name in (_GYM_TASK_SECTIONS if request.env_id is not None else _REACH_TASK_SECTIONS)},
            "total_steps": request.total_steps,
            "seed": request.seed,
            "env_id": request.env_id,
            "bodies": [b.to_dict() for b in request.bodies],
            "eval_episodes": request.eval_episodes,
            "eval_seed": request.eval_seed,
        })
    torch.manual_seed(request.seed)  # the initial weights: --seed makes the whole run repeat
    model = ActorCritic(spec)
    with _writing_the_run_directory():
        metrics = MetricsWriter(run.metrics, METRIC_COLUMNS, tensorboard_dir=run.tensorboard)
    # train_policy rounds the budget up to a whole step of every env
    total = math.ceil(request.total_steps / len(envs)) * len(envs)
    return _PPORun(settings, run, hold, log, envs, model, metrics, target, total)


def _not_started_summary(request: PPORunRequest, stop: "_StopSignals", target: str | None) -> dict[str, Any]:
    """summary.json of a run stopped before training: the status, nothing trained (``target``
    is left out where the set-up did not get to it)."""
    summary = {"mode": "ppo", "status": stop.status, "target": target, "env_steps": 0, "updates": 0, "wall_s": 0.0,
               "seed": request.seed, "evaluation": "not started"}  # fmt: skip
    return {k: v for k, v in summary.items() if v is not None}


def _stopped_before_training(request: PPORunRequest, setup: _PPORun, stop: "_StopSignals") -> dict[str, Any]:
    """A stop signal came during the set-up: summary.json with the status and nothing trained."""
    stop.mode = "hold"
    setup.log.warning("%s before training started: nothing was trained or evaluated; summary.json records the stop.",
                      stop.name)  # fmt: skip
    summary = _not_started_summary(request, stop, setup.target)
    setup.run.write_summary(summary)
    for env in setup.envs:
        env.close()
    setup.metrics.close()
    return summary


def _train_and_finish(request: PPORunRequest, setup: _PPORun, stop: "_StopSignals",
                      should_stop: Callable[[], bool] | None) -> dict[str, Any]:  # fmt: skip
    """Train (until the budget, ``should_stop()`` or a stop signal), then :func:`_finish`."""
    run, log, model, metrics, total = setup.run, setup.log, setup.model, setup.metrics, setup.total
    rounded = f" (--steps {request.total_steps} rounded up to a whole step of every env)" if total != request.total_steps else ""
    log.info("PPO on %s for %d env steps%s, seed %d, %d envs, output %s", setup.target, total, rounded, request.seed,
             len(setup.envs), run.path)  # fmt: skip
    last_print = [0.0]
    # The last update made (its metrics.csv row) and policy.pt after a second signal: the policy as
    # that update left it. The live model may by then hold the next rollout's observation
    # statistics, or half an update's minibatch steps.
    start: dict[str, float] = {"env_steps": 0, "update": 0, "wall_s": 0.0}
    last: list[tuple[dict[str, float], bytes]] = [(start, _serialise(_policy_file(model, start)))]

    def on_update(record: dict[str, float]) -> None:
        # the update is made, whatever a second signal does to the files below; its counts and
        # policy are replaced in one step, so that a signal never leaves them apart
        last[0] = (dict(record), _serialise(_policy_file(model, record)))
        metrics.write(record)
        update = int(record["update"])
        if update % CHECKPOINT_EVERY_UPDATES == 0:
            save_checkpoint(run.checkpoints, "policy", int(record["env_steps"]), _policy_file(model, record))
        if time.monotonic() - last_print[0] > 5.0:
            last_print[0] = time.monotonic()
            log.info(  # no return or success rate until an episode has ended
                "steps %d/%d  return %s  success %s  %.0f steps/s",
                record["env_steps"], total, f"{record['episode_return']:.2f}" if "episode_return" in record else "n/a",
                f"{record['success_rate']:.2f}" if "success_rate" in record else "n/a", record["steps_per_s"],
            )  # fmt: skip

    interrupted_policy: bytes | None = None
    try:
        result = train_policy(model, setup.envs, setup.settings.ppo, request.total_steps, request.seed, on_update,
                              lambda: stop.received or (should_stop is not None and should_stop()))  # fmt: skip
        counts = (result.env_steps, result.updates, result.wall_s)
    except KeyboardInterrupt:  # a second signal: no waiting for the update under way
        last_update, interrupted_policy = last[0]
        counts = (int(last_update["env_steps"]), int(last_update["update"]), float(last_update["wall_s"]))
    finally:
        stop.mode = "hold"  # from here a signal never tears a file in half
        signals_in_training = stop.count
        metrics.close()
    if signals_in_training > 1:
        log.warning("A second stop signal (%s): saving the policy as it is, after %d env steps, without evaluating it.",
                    stop_signal_name(stop.last_signum), counts[0])  # fmt: skip
    elif signals_in_training == 1:
        log.warning("%s: stopped after update %d (%d env steps); saving and evaluating that policy.",
                    stop.name, counts[1], counts[0])  # fmt: skip
    return _finish(request, setup.settings, run, model, setup.target, counts, stop, log, interrupted_policy)


def _finish(request: PPORunRequest, settings: Settings, run: RunDirectory, model: ActorCritic, target: str,
            counts: tuple[int, int, float], stop: "_StopSignals", log: logging.Logger,
            policy_file: bytes | None = None) -> dict[str, Any]:  # fmt: skip
    """After training (``stop`` in hold mode): policy.pt (``policy_file``, serialised, where given:
    the policy the last update left after a second signal; else ``model``), then the final
    evaluation, then summary.json and curves.png. The evaluation is skipped after a second signal,
    and a signal during it cuts it short: summary.json then has the training counts and
    ``"evaluation": "cut short"``, no figures."""
    env_steps, updates, wall_s = counts
    signals_before = stop.count
    if policy_file is None:
        policy_file = _serialise(_policy_file(model, {"env_steps": env_steps}))
    atomic_write_bytes(run.path / "policy.pt", policy_file)
    figures: dict[str, Any] | None = None
    evaluated = stop.count == signals_before <= 1  # no second signal, and none while policy.pt was written
    if evaluated:
        try:
            stop.mode = "at_once"
            log.info("Final evaluation: %d episode(s) per body or task (a signal now cuts it short).", request.eval_episodes)
            figures = _evaluate(request, settings, model, log)
            stop.mode = "hold"
        except KeyboardInterrupt:
            stop.mode = "hold"
    if figures is None and signals_before <= 1:
        log.warning("%s %s the final evaluation: %s; summary.json has the training counts and no evaluation figures "
                    "(policy.pt is saved).", stop_signal_name(stop.last_signum), "during" if evaluated else "before",
                    "stopped it" if evaluated else "skipped it")  # fmt: skip
    summary: dict[str, Any] = {"mode": "ppo", "status": stop.status, "target": target, "env_steps": env_steps,
                               "updates": updates, "wall_s": round(wall_s, 2), "seed": request.seed}  # fmt: skip
    summary.update(figures if figures is not None else {"evaluation": "cut short"})
    run.write_summary(summary)
    try:  # summary.json and policy.pt are written: a picture must not turn the run into a failure
        _write_curves(run, f"{run.path.name}: PPO on {target}, {env_steps} env steps")
    except Exception as error:
        log.error("Could not draw curves.png (%s: %s); metrics.csv has the same figures.", type(error).__name__, error)
    return summary


def _evaluate(request: PPORunRequest, settings: Settings, model: ActorCritic, log: logging.Logger) -> dict[str, Any]:
    """The final evaluation's figures for summary.json: per Gymnasium task or per body."""
    actor = model.numpy_twin()
    if request.env_id is not None:
        returns = evaluate_gym_policy(actor, request.env_id, request.eval_episodes, request.eval_seed)
        log.info("Evaluation over %d episodes: mean return %.2f ± %.2f", len(returns), np.mean(returns), np.std(returns))
        return {"eval_mean_return": float(np.mean(returns)), "eval_std_return": float(np.std(returns)), "eval_episodes": len(returns)}
    bodies = list(dict.fromkeys(request.bodies))
    per_body = [
        evaluate(actor, body, request.eval_episodes, request.eval_seed, body_space=settings.body_space, env_config=settings.env)
        for body in bodies
    ]
    figures = _body_summary(bodies, per_body)
    log.info("Evaluation: mean success %.3f, mean fitness %.3f over %d bodies", figures["eval_success_rate"], figures["eval_fitness"], len(per_body))
    return figures


class _StopSignals:
    """Ctrl-C (SIGINT), SIGTERM, SIGHUP (a closed terminal) and SIGUSR1/SIGUSR2 (a scheduler's
    warning), the last three handled as SIGTERM, within its block; the previous handlers are put
    back at its end.

    Every signal is counted, and the first one's number kept in ``signum`` (it decides the run's
    ``status``). What a signal does depends on ``mode``: ``"train"``: the first only sets ``signum``
    (training stops after the update under way, with its counts intact, or is skipped if the signal
    came during the set-up) and prints ``notice`` at
    once (``{name}`` becomes Ctrl-C or the signal's name), a second raises KeyboardInterrupt;
    ``"at_once"`` (the final evaluation): every signal raises KeyboardInterrupt; ``"hold"``: nothing
    more, so that files are written whole. Outside the main thread, where Python allows no signal
    handler, every signal keeps its usual meaning."""

    def __init__(self, notice: str | None = None) -> None:
        self.notice = notice
        self.mode = "train"
        self.signum: int | None = None  # the first signal
        self.last_signum: int | None = None
        self.count = 0
        self._previous: dict[int, Any] = {}

    @property
    def received(self) -> bool:
        """Whether a signal has come."""
        return self.signum is not None

    @property
    def name(self) -> str:
        """The first signal as a user knows it: ``Ctrl-C``, or its name (``SIGTERM``, ``SIGHUP``, ...)."""
        return stop_signal_name(self.signum)

    @property
    def status(self) -> str:
        """The run's status by the first signal: completed, interrupted (Ctrl-C) or terminated (any other)."""
        return {None: "completed", signal.SIGINT: "interrupted"}.get(self.signum, "terminated")

    def __enter__(self) -> "_StopSignals":
        if threading.current_thread() is threading.main_thread():
            for sig in stop_signals_to_handle():  # one ignored as the run starts (nohup's SIGHUP) stays so
                self._previous[sig] = signal.signal(sig, self._on_signal)
        if early_interrupt.seen() and self.signum is None:  # a Ctrl-C the command's start-up may have lost
            self.signum = self.last_signum = signal.SIGINT
            self.count = 1
        return self

    def __exit__(self, *exc: object) -> None:
        for sig, previous in self._previous.items():
            # None: the previous handler was not set from Python, and the default is the nearest to it
            signal.signal(sig, signal.SIG_DFL if previous is None else previous)
        self._previous = {}

    def _on_signal(self, signum: int, frame: Any) -> None:
        self.count += 1
        self.last_signum = signum
        first = self.signum is None
        if first:
            self.signum = signum
        if self.mode == "hold":
            return
        if self.mode == "at_once" or not first:
            raise KeyboardInterrupt
        if self.notice:
            # os.write, not logging or sys.stderr: the handler may run inside one of their writes,
            # and a buffered stream re-entered from a signal handler raises RuntimeError.
            with contextlib.suppress(OSError):  # a hung-up terminal takes no more output
                os.write(2, f"\n{self.notice.format(name=self.name)}\n".encode())


def _write_curves(run: RunDirectory, title: str) -> None:
    """curves.png: the learning curves from metrics.csv (none if no update finished)."""
    from morphelites.viz import MAX_CURVE_POINTS, ppo_curves_png  # matplotlib is only needed here

    rows = read_metric_rows(run.metrics, most=MAX_CURVE_POINTS)  # all a curve draws
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

