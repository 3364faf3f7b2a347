"""``morphelites animate``: a GIF of a run's policy acting on one body.

Reads a run directory of ``morphelites train`` in shared mode (the policy of its newest learner
checkpoint: as the run ended, or as it is now if the run is still going) or of ``morphelites ppo``
on bodies (``policy.pt``), takes a body (the best elite, an individual by id, or any body of the
run's body space), evaluates the policy on it exactly as the run evaluated bodies (same goals,
seeds and number of episodes, :func:`morphelites.rollout.evaluate`) while MuJoCo renders the first
few episodes, and writes those as a GIF that plays in real time. An independent-mode run keeps no
policy (each body's PPO is dropped after its evaluation), so there is nothing to animate.

    request = prepare_animation("runs/exp1")               # every check, nothing simulated yet
    result = render_animation(request)                     # -> AnimationResult(path, evaluation)
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from morphelites.config import ConfigError, Settings
from morphelites.morphology import MAX_RENDER_SIZE, PHYSICS_TIMESTEP, BodySpace, Morphology
from morphelites.rollout import EvalResult, evaluate
from morphelites.runs import RunDirectory, atomic_write_bytes

__all__ = ["AnimationError", "AnimationRequest", "AnimationResult", "prepare_animation", "render_animation",
           "DEFAULT_EPISODES", "MAX_FRAME_SIZE"]  # fmt: skip

#: Evaluation episodes drawn unless asked otherwise.
DEFAULT_EPISODES = 3
#: Largest frame side in pixels: the offscreen buffer every model is compiled with (morphology.py).
MAX_FRAME_SIZE = MAX_RENDER_SIZE
#: Shortest time a GIF frame is shown; steps are skipped to keep frames at least this long, so the
#: animation plays in real time (GIF viewers slow frames under 0.02 s down to 0.1 s).
_MIN_FRAME_S = 0.04
#: Seconds the last frame of each episode stays in the GIF, so that its ending can be seen.
END_HOLD_S = 0.6
#: Most memory (MB) the frames of one animation may take while its GIF is built: every frame is
#: held as a numpy array, a Pillow RGB image and its palette copy, ~8 bytes per pixel.
MAX_ANIMATION_MB = 2048
_BYTES_PER_PIXEL_HELD = 8


class AnimationError(ValueError):
    """The run, body or output cannot be animated; the message says why and what to do."""


@dataclass(frozen=True)
class AnimationRequest:
    """A checked animation job: which policy, which body, which episodes, and where the GIF goes.

    ``eval_episodes`` and ``eval_seed`` are the run's own evaluation settings; the first
    ``episodes_shown`` of those episodes are drawn. ``recorded`` is the run's results.jsonl line
    for the individual (None for a body given by hand or a ``ppo`` run).
    """

    run_path: Path
    command: str
    settings: Settings
    body: Morphology
    label: str
    recorded: dict[str, Any] | None
    policy_state: dict[str, Any]
    policy_source: Path
    policy_version: int | None
    eval_episodes: int
    eval_seed: int
    episodes_shown: int
    output: Path
    frame_size: int


@dataclass(frozen=True)
class AnimationResult:
    """The GIF written, how many frames and seconds it holds (the pause after each episode
    included), and the policy's evaluation on the body."""

    path: Path
    frames: int
    seconds: float
    evaluation: EvalResult


def prepare_animation(run: str | Path, individual: int | None = None, body: Morphology | None = None, episodes: int | None = None,
                      output: str | Path | None = None, frame_size: int = 320) -> AnimationRequest:  # fmt: skip
    """Check everything about an animation of ``run`` before anything is simulated.

    Args:
        run: a run directory of ``morphelites train`` (shared mode) or ``morphelites ppo`` (bodies).
        individual: id of an evaluated individual of a ``train`` run (results.jsonl).
        body: any body of the run's body space instead. With neither, a ``train`` run shows its
            best elite (the evaluated individual of the highest fitness in results.jsonl) and a ``ppo``
            run its first training body.
        episodes: how many of the run's evaluation episodes to draw, from the first (default
            :data:`DEFAULT_EPISODES`, or all of them if the run evaluates fewer).
        output: the GIF's path (default ``<run>/animations/<individual-ID or body-LENGTHS>.gif``).
        frame_size: width and height of a frame in pixels (16 to :data:`MAX_FRAME_SIZE`).

    Raises:
        AnimationError: naming what is wrong and how to fix it.
    """
    run_dir = RunDirectory(run)
    config = _read_config(run_dir)
    command = config.get("command")
    if command == "train" and config.get("mode") == "independent":
        raise AnimationError(f"{run_dir.path} is an independent-mode run: each body's PPO policy is dropped after its "
                             f"evaluation, so no policy is left to animate. Animate a shared-mode run (morphelites train "
                             f"--mode shared) or a morphelites ppo run.")  # fmt: skip
    if command == "ppo" and config.get("env_id"):
        raise AnimationError(f"{run_dir.path} trained on the Gymnasium task {config['env_id']!r}; animate draws the "
                             f"arms of morphelites. Use that task's own render_mode (e.g. gymnasium.wrappers.RecordVideo).")  # fmt: skip
    if command not in ("train", "ppo"):
        raise AnimationError(f"{run_dir.config} says command {command!r}; animate reads runs of 'morphelites train' "
                             f"and 'morphelites ppo'.")  # fmt: skip
    try:
        settings = Settings.from_dict(config.get("settings"))
        # animate starts no workers: a cluster run's worker count must not refuse it on a laptop
        settings = dataclasses.replace(settings, evolution=dataclasses.replace(settings.evolution, max_workers=None))
        settings = settings.validate(command)
    except (ConfigError, TypeError, ValueError) as error:
        raise AnimationError(f"{run_dir.config} holds settings this version cannot use: {error}") from None
    if individual is not None and body is not None:
        raise AnimationError("Give an individual's id or a body, not both.")
    if not 16 <= frame_size <= MAX_FRAME_SIZE:
        raise AnimationError(f"--size (frame_size) {frame_size}: a frame's width and height must be 16 to {MAX_FRAME_SIZE} "
                             f"pixels (MuJoCo's offscreen buffer); give e.g. --size 320.")  # fmt: skip
    if command == "train":
        eval_episodes, eval_seed = settings.evolution.eval_episodes, settings.evolution.eval_seed
    else:
        try:
            eval_episodes, eval_seed = int(config.get("eval_episodes", 0)), int(config.get("eval_seed", 0))
        except (TypeError, ValueError):
            raise AnimationError(f"{run_dir.config}'s eval_episodes ({config.get('eval_episodes')!r}) and eval_seed "
                                 f"({config.get('eval_seed')!r}) must be whole numbers, as `morphelites ppo` writes "
                                 f"them; restore the file.") from None  # fmt: skip
    episodes = min(DEFAULT_EPISODES, eval_episodes) if episodes is None else episodes
    if not 1 <= episodes <= eval_episodes:
        raise AnimationError(f"--episodes (episodes) {episodes}: the run evaluates each body on {eval_episodes} episodes; "
                             f"choose 1 to {eval_episodes} of them to draw.")  # fmt: skip
    stride = _frame_stride(settings)
    frames = episodes * (math.ceil(settings.env.max_episode_steps / stride) + 1)
    needed_mb = frames * frame_size**2 * _BYTES_PER_PIXEL_HELD / 2**20
    if needed_mb > MAX_ANIMATION_MB:
        raise AnimationError(f"{episodes} episodes at {frame_size} px may take up to {frames:,} frames and ~{needed_mb:,.0f} "
                             f"MB of memory while the GIF is built (at most {MAX_ANIMATION_MB:,} MB); draw fewer episodes "
                             f"(--episodes) or smaller frames (--size).")  # fmt: skip
    chosen, label, recorded = _choose_body(run_dir, config, settings, individual, body)
    policy_state, source, version = _read_policy(run_dir, command)
    target = Path(os.path.expanduser(output)) if output is not None else run_dir.animations / f"{label.replace(' ', '-')}.gif"
    _check_output(target)
    return AnimationRequest(run_dir.path, command, settings, chosen, label, recorded, policy_state, source, version,
                            eval_episodes, eval_seed, episodes, target, frame_size)  # fmt: skip


def _frame_stride(settings: Settings) -> int:
    """Env steps per GIF frame: enough that a frame lasts at least ``_MIN_FRAME_S``."""
    return max(1, math.ceil(_MIN_FRAME_S / (PHYSICS_TIMESTEP * settings.env.frame_skip) - 1e-9))


def render_animation(request: AnimationRequest) -> AnimationResult:
    """Evaluate the request's policy on its body as the run did, rendering the first episodes, and
    write them as a GIF (atomically; the parent directory is made if needed)."""
    from morphelites.envs.reach import ReachEnv
    from morphelites.policy import ActorCritic
    from morphelites.viz import animation_gif

    actor = ActorCritic.from_policy_state(request.policy_state).numpy_twin()
    settings, shown = request.settings, request.episodes_shown
    step_s = PHYSICS_TIMESTEP * settings.env.frame_skip
    stride = _frame_stride(settings)
    frames: list[list[np.ndarray]] = [[] for _ in range(shown)]
    steps = [0] * shown

    def keep_frames(episode: int, env: Any, done: bool) -> None:
        if episode >= shown:
            return
        if steps[episode] % stride == 0 or done:
            frames[episode].append(env.render())
        steps[episode] += 1

    def make_env(*args: Any, **kwargs: Any) -> ReachEnv:
        return ReachEnv(*args, **kwargs, render_mode="rgb_array", render_size=(request.frame_size, request.frame_size))

    evaluation = evaluate(actor, request.body, request.eval_episodes, request.eval_seed, body_space=settings.body_space,
                          env_config=settings.env, policy_version=-1 if request.policy_version is None else request.policy_version,
                          make_env=make_env, on_step=keep_frames)  # fmt: skip
    captions = [f"{request.label}, episode {i + 1}/{request.eval_episodes}" for i in range(shown)]
    gif = animation_gif(frames, frame_s=stride * step_s, captions=captions, hold_s=END_HOLD_S)
    request.output.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(request.output, gif)
    count = sum(len(f) for f in frames)
    return AnimationResult(request.output, count, count * stride * step_s + shown * END_HOLD_S, evaluation)


def describe(request: AnimationRequest, result: AnimationResult) -> str:
    """What was drawn, with which policy, and how it scored, for the terminal."""
    body = request.body
    policy = (f"policy version {request.policy_version} ({request.policy_source.name})" if request.policy_version is not None
              else f"policy {request.policy_source.name}")  # fmt: skip
    e = result.evaluation
    lines = [
        f"Wrote {result.path}: {request.label} ({body.num_links} joints, {body.total_length:.2f} m), "
        f"{request.episodes_shown} of its {request.eval_episodes} evaluation episodes, {result.seconds:.1f} s, {policy}.",
        f"With this policy: fitness {e.fitness:.3f}, success {e.success_rate:.2f}, final distance {e.final_distance:.3f} m "
        f"(ceiling {e.fitness_ceiling:.3f}).",
    ]
    if request.recorded is not None:
        version = request.recorded.get("policy_version")
        when = f" with policy version {version}" if version is not None and version >= 0 else ""
        lines.append(f"As recorded in the run{when}: fitness {request.recorded['fitness']:.3f}, "
                     f"success {request.recorded['success_rate']:.2f}.")  # fmt: skip
    return "\n".join(lines)


def _read_config(run_dir: RunDirectory) -> dict[str, Any]:
    if not run_dir.path.is_dir():
        raise AnimationError(f"{run_dir.path} is not a directory; give the run directory (the --output of the run).")
    try:
        config = json.loads(run_dir.config.read_text())
    except FileNotFoundError:
        raise AnimationError(f"{run_dir.path} holds no run (no config.json); give the --output directory of a "
                             f"morphelites train or ppo run.") from None  # fmt: skip
    except (OSError, ValueError) as error:
        raise AnimationError(f"{run_dir.config} cannot be read ({type(error).__name__}: {error}).") from None
    if not isinstance(config, dict):
        raise AnimationError(f"{run_dir.config} does not hold a run's configuration (a JSON object).")
    return config


def _choose_body(run_dir: RunDirectory, config: dict[str, Any], settings: Settings, individual: int | None,
                 body: Morphology | None) -> tuple[Morphology, str, dict[str, Any] | None]:  # fmt: skip
    """The body to draw, a label for it (also the default file name), and its results.jsonl line."""
    space = BodySpace(settings.body_space)
    if body is not None:
        try:
            space.check(body, widenable=False)  # the run's body space is fixed: only the body can change
        except (TypeError, ValueError) as error:
            raise AnimationError(f"That body does not fit the run's body space: {error}") from None
        return body, _body_label(body), None
    if config["command"] == "ppo":
        if individual is not None:
            raise AnimationError("A ppo run has no individuals; choose a body with --body instead.")
        bodies = config.get("bodies") or []
        if not bodies:
            raise AnimationError(f"{run_dir.config} lists no training bodies; choose one with --body.")
        first = Morphology.from_dict(bodies[0])
        return first, _body_label(first), None
    results = _results(run_dir)
    if individual is None:
        individual = _best_elite(run_dir, results)
    line = results.get(individual)
    if line is None:
        known = f"ids {min(results)} to {max(results)}" if results else "no evaluated individual yet"
        raise AnimationError(f"Individual {individual} is not in {run_dir.results} ({known}).")
    return Morphology.from_dict(line["body"]), f"individual {individual}", line


def _body_label(body: Morphology) -> str:
    return "body " + "_".join(f"{x:g}" for x in body.link_lengths)


def _results(run_dir: RunDirectory) -> dict[int, dict[str, Any]]:
    """results.jsonl by individual id (a torn last line, from a crash, is skipped, not cut)."""
    lines: dict[int, dict[str, Any]] = {}
    try:
        text = run_dir.results.read_text()
    except OSError:
        return lines
    for raw in text.splitlines():
        try:
            line = json.loads(raw)
        except ValueError:
            continue
        if isinstance(line, dict) and isinstance(line.get("id"), int) and isinstance(line.get("body"), dict):
            lines[line["id"]] = line
    return lines


def _best_elite(run_dir: RunDirectory, results: dict[int, dict[str, Any]]) -> int:
    """Id of the best elite: the evaluated individual of the highest fitness in results.jsonl
    (``results``, in the file's order), which its cell keeps. Not archive.csv alone, which a run
    still going rewrites only every ``evolution.heatmap_every`` evaluations; but among individuals of
    equal fitness (every goal reached: 1.0), the one archive.csv lists, as a cell keeps the first of
    equals it took, and that order (arrival, or id with ``evolution.parent_lag``) is the archive's."""
    scored = {i: float(line["fitness"]) for i, line in results.items()
              if isinstance(line.get("fitness"), (int, float)) and math.isfinite(line["fitness"])}  # fmt: skip
    if not scored:
        raise AnimationError(f"{run_dir.path} has no evaluated individual yet ({run_dir.results} holds none); wait for "
                             f"the first evaluation, or choose a body with --body.")  # fmt: skip
    best = max(scored.values())
    tied = [i for i, fitness in scored.items() if fitness == best]
    if len(tied) > 1:
        listed = _archive_ids(run_dir)
        tied = [i for i in tied if i in listed] or tied
    return tied[0]


def _archive_ids(run_dir: RunDirectory) -> set[int]:
    """The individual ids archive.csv lists (none if it is missing or unreadable)."""
    import csv

    try:
        with open(run_dir.archive_csv, newline="") as handle:
            return {int(row["individual_id"]) for row in csv.DictReader(handle) if row.get("individual_id", "").isdigit()}
    except (OSError, ValueError, KeyError):
        return set()


def _read_policy(run_dir: RunDirectory, command: str) -> tuple[dict[str, Any], Path, int | None]:
    """The policy state to act with, the file it came from, and its learner version (train runs)."""
    from morphelites.runs.checkpoints import CheckpointError

    if command == "train":
        from morphelites.parallel.learner import newest_learner_checkpoint

        try:
            path, state = newest_learner_checkpoint(run_dir.checkpoints)
        except CheckpointError as error:
            raise AnimationError(f"No policy to animate: {error}") from None
        return state["policy"], path, int(state["version"])
    path = run_dir.path / "policy.pt"
    try:
        import torch

        from morphelites.policy import ActorCritic

        state = torch.load(path, map_location="cpu", weights_only=False)  # the run's own file, as checkpoints are
        ActorCritic.from_policy_state(state["policy"])  # it loads, or it is refused here, before any simulation
        return state["policy"], path, None
    except FileNotFoundError:
        summary = run_dir.read_summary() or {}
        if summary.get("evaluation") == "not started":
            raise AnimationError(f"{run_dir.path} has no policy.pt: the ppo run was stopped ({summary.get('status')}) "
                                 f"before training started, so there is no policy to animate.") from None  # fmt: skip
        if summary.get("status") == "failed":
            raise AnimationError(f"{run_dir.path} has no policy.pt: the ppo run failed before it could write one "
                                 f"({summary.get('error', 'see its training.log')}).") from None  # fmt: skip
        raise AnimationError(f"{run_dir.path} has no policy.pt: the ppo run has not finished (it writes policy.pt at "
                             f"the end, also on Ctrl-C).") from None  # fmt: skip
    except Exception as error:  # torch.load raises many kinds on a truncated or foreign file
        raise AnimationError(f"{path} cannot be loaded ({type(error).__name__}: {error}).") from None


def _check_output(path: Path) -> None:
    if path.suffix.lower() != ".gif":
        raise AnimationError(f"The animation is a GIF: give an output path ending in .gif, not {path.name!r}.")
    if path.is_dir():
        raise AnimationError(f"{path} is a directory; give a file path ending in .gif.")
    existing = path.parent
    while not existing.exists():
        existing = existing.parent
    if not existing.is_dir() or not os.access(existing, os.W_OK | os.X_OK):
        raise AnimationError(f"Cannot write {path}: {existing} is not a writable directory. Choose another --output.")

