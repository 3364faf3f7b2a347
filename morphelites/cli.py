"""Command line: argv -> validated config -> run. The only reader of argv.

Every input problem (bad option, bad config file, bad body, unusable output directory) is reported
as ``morphelites: error: ...`` with exit code 2 before any environment, process or file is made.
"""

from __future__ import annotations

import argparse
import dataclasses
import difflib
import gc
import json
import os
import re
import shlex
import sys
from typing import Any, Literal, Sequence

from morphelites import early_interrupt
from morphelites.config import (MAX_ENV_STEPS, MAX_EVAL_EPISODES, MAX_SEED, ConfigError, EnvConfig, EvolutionConfig,
                                ModelConfig, PPOConfig, Settings, load_config_file)
from morphelites.morphology import BodySpace, Morphology

__all__ = ["main", "console_main", "build_parser"]

EXIT_BAD_INPUT = 2
EXIT_INTERRUPTED = 130
#: Exit codes of ``morphelites ppo`` by the status in its summary.json (as ``morphelites train``'s EXIT_CODES).
_PPO_EXIT_CODES = {"completed": 0, "failed": 1, "interrupted": EXIT_INTERRUPTED, "terminated": 143}


#: What to do about argparse's own complaints (matched by the start of its message).
_ARGPARSE_FIXES = (
    ("invalid int value", "give a whole number, e.g. 4"),
    ("invalid float value", "give a number, e.g. 0.5"),
    ("expected one argument", "give the option a value (one that starts with '-' goes after '=', e.g. --output=-run1)"),
    ("arguments are required: command", "give a subcommand: train, ppo or animate"),
    ("invalid choice", "use one of the choices listed"),
    ("not allowed with argument", "give only one of the two"),
    ("the following arguments are required", "give them"),
)


class _Parser(argparse.ArgumentParser):
    """An ``ArgumentParser`` whose errors say how to fix them, and which knows its subcommands' parsers."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        # No abbreviations: `train --steps N` was taken as --steps-per-individual N (ppo's --steps
        # is a total), and a later option with the same start would change what a script means.
        kwargs.setdefault("allow_abbrev", False)
        super().__init__(*args, **kwargs)
        #: subcommand name -> its parser (filled by build_parser; used for did-you-mean hints)
        self.commands: dict[str, _Parser] = {}

    def long_options(self) -> list[str]:
        """Every ``--option`` this parser takes, mutually exclusive ones included, read off its usage line."""
        return sorted(set(re.findall(r"(?<![\w-])--[A-Za-z][\w-]*", self.format_usage())))

    def error(self, message: str) -> None:  # argparse prints usage; keep it, add how to fix it, exit 2
        """Print usage and ``morphelites: error: MESSAGE`` with a fix hint; exit with code 2."""
        fix = next((f for words, f in _ARGPARSE_FIXES if words in message), None)
        text = f"{message}; {fix}" if fix else message
        text = text if text.endswith((".", "?")) else text + "."
        self.print_usage(sys.stderr)
        self.exit(EXIT_BAD_INPUT, f"morphelites: error: {text} See '{self.prog} --help' for every option.\n")


def _parse(parser: _Parser, argv: Sequence[str] | None) -> argparse.Namespace:
    """``parser.parse_args(argv)``, but an unknown option gets a did-you-mean from its subcommand's options."""
    given = list(sys.argv[1:] if argv is None else argv)
    first = given[0].split("=", 1)[0] if given else ""
    command = next((word for word in given if word in parser.commands), None)
    # An option with a value before the subcommand: argparse would take the value for the
    # subcommand's name ("invalid choice: '2'") before the hint below is reached.
    if first.startswith("--") and first not in (*parser.long_options(), "--help"):
        if command is None:
            parser.error(f"{first} comes after a subcommand: morphelites train|ppo|animate {first} ...")
        parser.commands[command].error(f"unrecognized arguments: {first}.{_unknown_option_hint(parser, command, first)}")
    args, extras = parser.parse_known_args(given)
    if extras:
        unknown = next((e.split("=", 1)[0] for e in extras if e.startswith("-")), None)
        parser.commands[args.command].error(f"unrecognized arguments: {' '.join(extras)}."
                                            f"{_unknown_option_hint(parser, args.command, unknown)}")
    return args


def _unknown_option_hint(parser: _Parser, command: str, unknown: str | None) -> str:
    """How to fix an option ``command`` does not take where it was given: it belongs after the
    subcommand, it is another subcommand's, it was abbreviated, or the closest option's name."""
    known = parser.commands[command].long_options()
    longer = [option for option in known if unknown and option.startswith(unknown) and option != unknown]
    if unknown in known:  # a subcommand's own option, given before the subcommand
        return f" {unknown} belongs after the subcommand: morphelites {command} {unknown} ..."
    owners = _other_owners(parser, command, unknown)
    if longer:  # train --steps: ppo's total, or --steps-per-individual abbreviated
        return f"{_owners_hint(owners, command) if owners else ''} Options are not abbreviated: did you mean {' or '.join(longer)}?"
    if owners:
        return _owners_hint(owners, command)
    close = difflib.get_close_matches(unknown, known, n=1) if unknown else []
    return f" Did you mean {close[0]}?" if close else " Remove it, or put it after the right subcommand."


def _other_owners(parser: _Parser, command: str, option: str | None) -> list[str]:
    """The subcommands other than ``command`` that take ``option``."""
    return [name for name, sub in parser.commands.items() if name != command and option in sub.long_options()]


def _owners_hint(owners: list[str], command: str) -> str:
    """" It is an option of `morphelites X` (and `morphelites Y`), not of `morphelites COMMAND`." """
    return f" It is an option of {' and '.join(f'`morphelites {name}`' for name in owners)}, not of `morphelites {command}`."


def _validated(settings: Settings, given: dict[str, tuple[str, Any]], command: Literal["train", "ppo"],
               reach_task: bool = True) -> Settings:
    """``settings.validate(command, reach_task)``; a message about a value given by a command-line
    option starts with that option.

    ``given`` maps a dotted setting (``evolution.max_workers``) to the option and value that set it.
    """
    try:
        return settings.validate(command, reach_task)
    except ConfigError as error:
        message = str(error)
        for key, (option, value) in given.items():
            if message.startswith((f"{key} is ", f"{key} must ")) and option not in message:
                raise ConfigError(f"{option} {shlex.quote(str(value))}: {message}") from None
        raise


def _user_path(text: str) -> str:
    """A path option with a leading ``~`` or ``~user`` expanded, as the shell does for ``--output ~/x``
    but not for ``--output=~/x`` (review: that made a folder named ``~`` in the current directory
    while the log showed the home directory's path)."""
    return os.path.expanduser(text)


def _check_output(output: str | None) -> None:
    """Refuse an empty ``--output`` (it would silently mean the default or the current directory)."""
    if output is not None and not output.strip():
        raise ConfigError("--output is empty; give the path of a directory for the run, e.g. --output runs/first.")


def _check_config_path(config: str | None) -> None:
    """Refuse an empty ``--config`` (a job script's unset variable would silently mean the defaults)."""
    if config is not None and not config.strip():
        raise ConfigError("--config is empty; give the path of a JSON config file, or leave --config out for the defaults.")


def _check_seed(value: int) -> None:
    """Refuse a ``--seed`` outside [0, MAX_SEED] (numpy refuses negative seeds)."""
    if not 0 <= value <= MAX_SEED:
        raise ConfigError(f"--seed is {value}, outside the allowed range [0, {MAX_SEED}]; give a whole number in that "
                          f"range, e.g. --seed 0.")  # fmt: skip


def build_parser() -> _Parser:
    parser = _Parser(prog="morphelites", description="MAP-Elites over robot bodies scored by a shared PPO policy.")
    commands = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    ppo = commands.add_parser("ppo", help="train one policy on bodies of ours, or on a Gymnasium Box task (--env)")
    ppo.add_argument("--output", default="ppo_results", type=_user_path, help="run directory (default: ppo_results)")
    ppo.add_argument("--body", action="append", default=[], metavar="LENGTHS",
                     help="a body as comma-separated link lengths in metres (e.g. 0.2,0.2,0.15) or as JSON "
                          '{"link_lengths": [...]}; repeat for several bodies (one policy for all)')
    ppo.add_argument("--mixed", type=int, metavar="N", help="train on N random bodies whose joint counts cycle over the space")
    ppo.add_argument("--env", dest="env_id", metavar="ID", help="a Gymnasium task with Box spaces, e.g. Reacher-v5")
    ppo.add_argument("--steps", type=int, default=300_000, help="total env steps of training (default 300000)")
    ppo.add_argument("--seed", type=int, default=0, help="seed of training and of --mixed's bodies (default 0)")
    ppo.add_argument("--scene", help=f"scene of the reaching task: open or obstacles (default {EnvConfig().scene}, or the "
                                     f"--config file's env.scene)")
    ppo.add_argument("--goals", choices=["workspace", "reachable"],
                     help="goal sampling: one workspace for all bodies (default) or within each body's reach")
    ppo.add_argument("--num-envs", type=int, help=f"environments stepped together (default {PPOConfig().num_envs}, or the "
                                                  f"--config file's ppo.num_envs)")
    ppo.add_argument("--hidden-dim", type=int, help=f"hidden layer width (default {ModelConfig().hidden_dim}, or the "
                                                    f"--config file's model.hidden_dim)")
    ppo.add_argument("--eval-episodes", type=int, default=50,
                     help="episodes of the final evaluation, per body or of the task (default 50)")
    ppo.add_argument("--config", metavar="FILE", type=_user_path, help="JSON config file with sections body_space, env, model, ppo")
    ppo.add_argument("--quiet", action="store_true", help="no progress output on the terminal")

    train = commands.add_parser("train", help="MAP-Elites over bodies, each scored by the policy PPO finds for it")
    evolution, from_file = EvolutionConfig(), ", or the --config file's, or a resumed run's"
    modes = train.add_mutually_exclusive_group()
    modes.add_argument("--mode", choices=["shared", "independent"], help="shared (default, unless a --config's "
                       "evolution.use_shared_ppo is false): one policy trained by all workers; independent: a fresh "
                       "PPO per individual")
    modes.add_argument("--train-shared", dest="mode", action="store_const", const="shared", help="same as --mode shared")
    modes.add_argument("--train", dest="mode", action="store_const", const="independent", help="same as --mode independent")
    train.add_argument("--output", type=_user_path, help="run directory (default map_elites_shared_ppo_results or map_elites_results)")
    resuming = train.add_mutually_exclusive_group()
    resuming.add_argument("--resume", action="store_true", help="continue the run in --output where it stopped")
    resuming.add_argument("--resume-if-exists", action="store_true",
                          help="continue the run in --output if it holds one, else start it there (for job scripts "
                               "that a cluster may requeue)")
    processes = train.add_mutually_exclusive_group()
    processes.add_argument("--workers", type=int,
                           help="worker processes (default: 75%% of the cores this process may use); with --resume, a "
                                "--serial run goes on with workers")
    processes.add_argument("--serial", action="store_true", help="evaluate in this process, no workers (debugging)")
    train.add_argument("--initial-random", type=int,
                       help=f"random individuals before variation (default {evolution.num_initial_random}{from_file})")
    train.add_argument("--steps-per-individual", type=int,
                       help=f"env steps of training per individual, rounded up to whole segments in shared mode and "
                            f"to whole steps of all ppo.num_envs envs in independent mode (default "
                            f"{evolution.training_steps_per_individual}{from_file})")
    train.add_argument("--evaluations", type=int, help=f"evaluated individuals to stop at (default {evolution.evaluations}"
                                                       f"{from_file})")
    train.add_argument("--max-env-steps", type=int,
                       help="stop issuing new individuals once this many env steps (training and evaluation) were taken; "
                            f"those in flight (and in shared mode the final re-evaluation) come on top (default: no limit{from_file})")
    train.add_argument("--max-wall-time", type=float, metavar="SECONDS",
                       help=f"stop issuing new individuals after this many seconds; those in flight (and in shared "
                            f"mode the final re-evaluation) come on top (default: no limit{from_file})")
    train.add_argument("--seed", type=int, help=f"seed of variation and training (default {evolution.seed}{from_file})")
    train.add_argument("--parent-lag", type=int, metavar="N",
                       help="draw individual k's parents from the results of individuals 0..k-N-1, taken in id order: a "
                            "seed then gives the same run whatever the timing (independent mode); N = --workers keeps "
                            "waits short (default 0: parents from whatever has arrived)")
    train.add_argument("--scene", help="open or obstacles")
    train.add_argument("--config", metavar="FILE", type=_user_path, help="JSON config file (sections as in config.json's settings)")
    train.add_argument("--quiet", action="store_true", help="no progress output on the terminal")

    animate = commands.add_parser("animate", help="a GIF of a run's policy acting on a body (shared-mode train runs "
                                  "and ppo runs on bodies)")  # fmt: skip
    animate.add_argument("run", metavar="RUN_DIR", type=_user_path, help="the run directory (the --output of morphelites train or ppo)")
    which = animate.add_mutually_exclusive_group()
    which.add_argument("--individual", type=int, metavar="ID",
                       help="an evaluated individual of a train run (default: the best elite; a ppo run: its first body)")
    which.add_argument("--body", metavar="LENGTHS", help="any body of the run's body space, as link lengths in metres, "
                       "e.g. 0.2,0.2,0.15")  # fmt: skip
    animate.add_argument("--episodes", type=int,
                         help="how many of the run's evaluation episodes to draw, from the first (default 3)")
    animate.add_argument("--output", metavar="FILE", type=_user_path, help="the GIF (default RUN_DIR/animations/individual-ID.gif or "
                         "body-LENGTHS.gif)")  # fmt: skip
    animate.add_argument("--size", type=int, default=320, help="frame width and height in pixels, 16 to 640 (default 320)")
    parser.commands.update(ppo=ppo, train=train, animate=animate)
    return parser


#: Config sections that only ``morphelites train`` reads.
_TRAIN_ONLY_SECTIONS = ("evolution", "training")
#: Config sections that set up the reaching task, which ``morphelites ppo --env`` replaces.
_REACH_TASK_SECTIONS = ("env", "body_space")


def _settings(args: argparse.Namespace) -> Settings:
    """The settings of ``morphelites ppo``: ``--config`` with its options applied, validated.

    A config's ``evolution`` and ``training`` sections are checked for their types only: ``ppo``
    does not use them, and a note on stderr says so, since one file often serves both commands
    (with ``--env``, the same for the ``env`` and ``body_space`` sections).
    """
    _check_config_path(args.config)
    data: dict[str, Any] = load_config_file(args.config) if args.config is not None else {}
    settings = Settings.from_dict(data)
    unused = [name for name in _TRAIN_ONLY_SECTIONS if isinstance(data, dict) and data.get(name)]
    if unused:
        print(f"morphelites: note: {args.config}: `morphelites ppo` does not use the {' and '.join(unused)} "
              f"section{'s' if len(unused) > 1 else ''} (only `morphelites train` does); ignoring "
              f"{'them' if len(unused) > 1 else 'it'}.", file=sys.stderr)  # fmt: skip
    unused = [name for name in _REACH_TASK_SECTIONS if getattr(args, "env_id", None) and data.get(name)]
    if unused:
        print(f"morphelites: note: {args.config}: `morphelites ppo --env` does not use the {' and '.join(unused)} "
              f"section{'s' if len(unused) > 1 else ''} (they set up the reaching task of our bodies); ignoring "
              f"{'them' if len(unused) > 1 else 'it'}.", file=sys.stderr)  # fmt: skip
    given: dict[str, tuple[str, Any]] = {}
    env = settings.env
    if getattr(args, "scene", None) is not None:
        env = dataclasses.replace(env, scene=args.scene)
        given["env.scene"] = ("--scene", args.scene)
    if getattr(args, "goals", None) is not None:
        env = dataclasses.replace(env, goal_sampling=args.goals)
    ppo = settings.ppo
    if getattr(args, "num_envs", None) is not None:
        ppo = dataclasses.replace(ppo, num_envs=args.num_envs)
        given["ppo.num_envs"] = ("--num-envs", args.num_envs)
    model = settings.model
    if getattr(args, "hidden_dim", None) is not None:
        model = dataclasses.replace(model, hidden_dim=args.hidden_dim)
        given["model.hidden_dim"] = ("--hidden-dim", args.hidden_dim)
    reach_task = not getattr(args, "env_id", None)
    settings = _validated(dataclasses.replace(settings, env=env, ppo=ppo, model=model), given, "ppo", reach_task)
    # a ppo run on our bodies is always new: the scene's walls must fit its body space (run_ppo checks again);
    # a Gymnasium task (--env) uses neither
    return settings.check_scene_fits() if reach_task else settings


def parse_body(text: str) -> Morphology:
    """A body from ``0.2,0.2,0.15`` or ``{"link_lengths": [...]}``; ValueError if malformed."""
    text = text.strip()
    if text.startswith("{"):
        try:
            data = json.loads(text)
        except (json.JSONDecodeError, RecursionError) as error:  # RecursionError: nested thousands deep
            raise ValueError(f"--body {text[:60]!r} is not valid JSON: {error}. Write it as '{{\"link_lengths\": [0.2, "
                             f"0.2, 0.15]}}', quoted as a whole for the shell.") from None  # fmt: skip
        return Morphology.from_dict(data)
    entries = [x.strip() for x in text.split(",")]
    if "" in entries:
        raise ValueError(f"--body {text!r} has an empty entry; give comma-separated link lengths in metres, one per "
                         f"link, e.g. 0.2,0.2,0.15.")  # fmt: skip
    try:
        lengths = [float(x) for x in entries]
    except ValueError:
        raise ValueError(f"--body {text!r}: give comma-separated link lengths in metres, e.g. 0.2,0.2,0.15.") from None
    return Morphology(len(lengths), lengths)


def _ppo_request(args: argparse.Namespace) -> Any:
    from morphelites.ppo_run import PPORunRequest, check_bodies_fit, check_body_count, check_gym_env, mixed_bodies

    _check_output(args.output)
    settings = _settings(args).with_default_epochs(evolution=False)
    _check_positive("--steps", args.steps, most=MAX_ENV_STEPS, why="the most env steps a run takes")
    _check_positive("--eval-episodes", args.eval_episodes, most=MAX_EVAL_EPISODES,
                    why="the most episodes a final evaluation runs")  # fmt: skip
    _check_seed(args.seed)
    if args.env_id is not None:
        if not args.env_id.strip():
            raise ConfigError("--env is empty; give a registered Gymnasium ID such as Reacher-v5.")
        if args.body or args.mixed is not None:
            raise ConfigError("--env trains on a Gymnasium task; it cannot be combined with --body or --mixed.")
        if args.scene is not None or args.goals is not None:
            raise ConfigError("--scene and --goals set up the reaching task of our bodies; --env trains on a Gymnasium "
                              "task instead. Drop them.")  # fmt: skip
        obs_dim, act_dim = check_gym_env(args.env_id)
        settings.model.resolved(obs_dim, act_dim, task=args.env_id)
        return PPORunRequest(settings=settings, output=args.output, total_steps=args.steps, seed=args.seed, bodies=(),
                             env_id=args.env_id, eval_episodes=args.eval_episodes, quiet=args.quiet)  # fmt: skip
    space = BodySpace(settings.body_space)
    bodies: tuple[Morphology, ...]
    if args.mixed is not None:
        if args.body:
            raise ConfigError("Give either --body or --mixed, not both.")
        _check_positive("--mixed", args.mixed)
        check_body_count(args.mixed, settings.ppo.num_envs)  # before drawing that many bodies
        bodies = mixed_bodies(space, args.mixed, args.seed)
    else:
        if args.body:
            bodies = tuple(space.check(parse_body(t)) for t in args.body)
        else:  # the default body: the fewest links the space allows, each of its middle length
            cfg = settings.body_space
            bodies = (Morphology(space.min_links, [(cfg.min_link_length + cfg.max_link_length) / 2] * space.min_links),)
    check_bodies_fit(bodies, settings.ppo.num_envs)
    from morphelites.policy_numpy import reach_policy_spec

    spec = reach_policy_spec(settings.body_space.max_links, settings.model.hidden_dim)
    settings.model.resolved(spec.obs_dim, spec.action_dim)
    return PPORunRequest(settings=settings, output=args.output, total_steps=args.steps, seed=args.seed, bodies=bodies,
                         env_id=args.env_id, eval_episodes=args.eval_episodes, quiet=args.quiet)  # fmt: skip


def _config_mode(config: Any) -> str | None:
    """The mode a --config's ``evolution.use_shared_ppo`` asks for, or None where it says nothing
    (the option --mode, when given, still decides)."""
    evolution = config.get("evolution") if isinstance(config, dict) else None
    wanted = evolution.get("use_shared_ppo") if isinstance(evolution, dict) else None
    return None if not isinstance(wanted, bool) else ("shared" if wanted else "independent")


def _train_trainer(args: argparse.Namespace) -> Any:
    from morphelites.runs import RunDirectory
    from morphelites.runs.run_dir import default_output_dir
    from morphelites.runs.stored_run import over_stored_settings, stored_run

    _check_output(args.output)
    _check_config_path(args.config)
    config = load_config_file(args.config) if args.config is not None else None
    mode = args.mode or _config_mode(config) or "shared"
    output = args.output if args.output is not None else default_output_dir(mode == "shared")
    stored: dict[str, Any] | None = None
    resume = args.resume or (args.resume_if_exists and RunDirectory(output).holds_run())
    if resume:
        other = default_output_dir(mode != "shared")
        if args.output is None and args.mode is None and not RunDirectory(output).holds_run() \
                and RunDirectory(other).holds_run():  # fmt: skip
            # Seen in review: --resume of an independent run started from a config file went to the shared
            # default and said to drop --resume, which would have started a new shared run.
            raise ConfigError(f"Cannot resume: {output} (the default for a {mode} run) holds no run, but {other} does. "
                              f"Give --output {other} (or --mode {'independent' if mode == 'shared' else 'shared'}).")
        RunDirectory(output).check(resume=True)
        stored = stored_run(RunDirectory(output))
        if args.mode is not None and stored.get("mode", "shared") != mode:
            raise ConfigError(f"{output} holds a run in {stored.get('mode', 'shared')} mode; drop --mode (or --train / --train-shared), "
                              f"or use a new --output.")  # fmt: skip
        if args.mode is None and _config_mode(config) not in (None, stored.get("mode", "shared")):
            raise ConfigError(f"{output} holds a run in {stored.get('mode', 'shared')} mode, but {args.config} sets "
                              f"evolution.use_shared_ppo to {_config_mode(config) == 'shared'}; drop that key from the "
                              f"config, or use a new --output.")  # fmt: skip
        mode = stored.get("mode", mode)
    if config is not None and stored is not None:  # what the file leaves out stays as the stored run has it
        data: dict[str, Any] = over_stored_settings(config, stored["settings"])
    else:
        data = config if config is not None else (stored["settings"] if stored else {})
    settings = Settings.from_dict(data)
    evo_changes = {
        "num_initial_random": args.initial_random, "training_steps_per_individual": args.steps_per_individual,
        "evaluations": args.evaluations, "max_env_steps": args.max_env_steps, "max_wall_s": args.max_wall_time,
        "max_workers": args.workers, "seed": args.seed, "parent_lag": args.parent_lag, "use_shared_ppo": mode == "shared",
        # --workers asks for worker processes, also of a run whose config (or stored run) is serial
        "enable_multiprocess": False if args.serial else (True if args.workers is not None else None),
    }  # fmt: skip
    evo = dataclasses.replace(settings.evolution, **{k: v for k, v in evo_changes.items() if v is not None})
    env = dataclasses.replace(settings.env, scene=args.scene) if args.scene is not None else settings.env
    options = {"num_initial_random": "--initial-random", "training_steps_per_individual": "--steps-per-individual",
               "evaluations": "--evaluations", "max_env_steps": "--max-env-steps", "max_wall_s": "--max-wall-time",
               "max_workers": "--workers", "seed": "--seed", "parent_lag": "--parent-lag"}  # fmt: skip
    given = {f"evolution.{k}": (o, evo_changes[k]) for k, o in options.items() if evo_changes[k] is not None}
    if args.scene is not None:
        given["env.scene"] = ("--scene", args.scene)
    settings = _validated(dataclasses.replace(settings, evolution=evo, env=env), given, "train").with_default_epochs(evolution=True)
    evo = settings.evolution
    # Only now: the trainer loads pyribs (with scipy, scikit-learn, numba: ~2 s), which the
    # checks above do not need, so that a bad option is reported at once.
    from morphelites.evolution.trainer import MAPElitesEvolutionTrainer

    return MAPElitesEvolutionTrainer(
        settings, num_initial_random=evo.num_initial_random, training_steps_per_individual=evo.training_steps_per_individual,
        enable_multiprocess=evo.enable_multiprocess, max_workers=evo.max_workers, use_shared_ppo=evo.use_shared_ppo,
        output_dir=output, resume=resume, quiet=args.quiet,
    )  # fmt: skip


def _check_positive(option: str, value: int, most: int | None = None, why: str = "") -> None:
    """Refuse ``value`` below 1 or, with ``most``, above it (``why`` says where the limit comes from)."""
    if value < 1:
        raise ConfigError(f"{option} must be at least 1, got {value}; give a positive whole number.")
    if most is not None and value > most:
        raise ConfigError(f"{option} is {value:,}, more than {most:,} ({why}); give a smaller number.")


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``morphelites`` console script; returns the exit code."""
    args = _parse(build_parser(), argv)
    try:
        from morphelites.runs import RunDirectory, RunDirectoryError
        from morphelites.runs.run_dir import check_working_directory
    except KeyboardInterrupt:
        return _interrupted()
    try:  # everything that can be wrong with the input is found here, before any process starts
        check_working_directory()  # relative paths (the default --output too) are read from it
        if args.command == "train":
            trainer = _train_trainer(args)
        elif args.command == "animate":
            from morphelites.animate import prepare_animation

            body = parse_body(args.body) if args.body is not None else None
            animation = prepare_animation(args.run, args.individual, body, args.episodes, args.output, args.size)
        else:
            request = _ppo_request(args)
            RunDirectory(request.output).check(resume=False, resumable=False)
    except (ConfigError, RunDirectoryError, ValueError) as error:
        return _bad_input(str(error))
    except OSError as error:  # a path given that cannot be looked at (unsearchable folder, name too long)
        return _bad_input(f"{error}. Check the paths given (--output, --config, the run).")
    except KeyboardInterrupt:  # while the libraries load: nothing has been written or started yet
        return _interrupted()
    if early_interrupt.seen():  # a Ctrl-C that Python dropped (in a finalizer) while the libraries loaded
        return _interrupted()
    try:
        if args.command == "animate":
            from morphelites.animate import describe, render_animation

            try:
                print(describe(animation, render_animation(animation)))
            except (RuntimeError, OSError) as error:  # no OpenGL context for MuJoCo; the GIF cannot be written
                print(f"morphelites: error: {error}", file=sys.stderr)
                return 1
            return 0
        if args.command == "train":
            from morphelites.evolution.trainer import EXIT_CODES
            from morphelites.parallel.shm import SharedMemoryFull

            try:
                summary = trainer.run()
            except RunDirectoryError as error:  # another process took the run since the check above
                print(f"morphelites: error: {error}", file=sys.stderr)
                return EXIT_BAD_INPUT
            except SharedMemoryFull as error:  # /dev/shm filled since the check above; nothing was started
                print(f"morphelites: error: {error}", file=sys.stderr)
                return 1
            if "error" in summary:
                print(f"morphelites: error: {summary['error']}", file=sys.stderr)
            return EXIT_CODES[summary["status"]]
        from morphelites.ppo_run import run_ppo

        try:
            summary = run_ppo(request)
        except RunDirectoryError as error:  # another run took the directory since the check above
            print(f"morphelites: error: {error}", file=sys.stderr)
            return EXIT_BAD_INPUT
        if "error" in summary:
            print(f"morphelites: error: {summary['error']}", file=sys.stderr)
        return _PPO_EXIT_CODES[summary["status"]]
    except KeyboardInterrupt:
        print("morphelites: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED


def _interrupted() -> int:
    print("morphelites: interrupted", file=sys.stderr)
    return EXIT_INTERRUPTED


def _bad_input(message: str) -> int:
    """Report a refusal of the input, unless a Ctrl-C came first: a library may have turned it into
    this error as it loaded (morphelites.early_interrupt), and the input is not at fault."""
    if early_interrupt.seen():
        return _interrupted()
    print(f"morphelites: error: {message}", file=sys.stderr)
    return EXIT_BAD_INPUT


def console_main() -> int:
    """The ``morphelites`` command and ``python -m morphelites``: :func:`main` on ``sys.argv``.

    Then ``gc.freeze()``: the interpreter's exit would otherwise walk every object of pyribs,
    scipy, scikit-learn and matplotlib in a last garbage collection (0.5-1 s after each run, for
    memory the OS takes back anyway). Exit handlers still run and files are still flushed. Not in
    :func:`main`, which a caller's own process may go on from.
    """
    code = main()
    gc.freeze()
    return code
