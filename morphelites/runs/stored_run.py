"""The run a directory holds (its config.json), and what a resume of it may change.

A resume continues the stored run: the same mode and the same settings, except the budgets, the
number of workers and the stall watchdog's ``training.ipc_timeout`` (it changes no result). Both
the command line and ``MAPElitesEvolutionTrainer(resume=True)`` go through ``check_resume`` before
any process starts, so neither can switch a run's mode or settings silently.
"""

from __future__ import annotations

import json
from typing import Any

from morphelites.config import ConfigError, Settings
from morphelites.runs.run_dir import RunDirectory, RunDirectoryError, default_output_dir

__all__ = ["RESUMABLE_CHANGES", "stored_run", "check_resume", "over_stored_settings", "python_resume_settings",
           "stored_run_id", "sessions_started"]

#: Settings a resumed run may change; any other difference from the stored config is refused.
RESUMABLE_CHANGES = frozenset({("evolution", "evaluations"), ("evolution", "max_env_steps"), ("evolution", "max_wall_s"),
                               ("evolution", "max_workers"), ("evolution", "enable_multiprocess"),
                               ("training", "ipc_timeout")})  # fmt: skip
#: Derived from the body space when a run starts (they are asserted, not chosen).
_DERIVED = frozenset({("model", "observation_dim"), ("model", "action_dim")})


def stored_run(run_dir: RunDirectory) -> dict[str, Any]:
    """The run recorded in ``run_dir/config.json``: a dict with ``mode`` and ``settings`` (at least).

    Raises ConfigError, saying what is wrong and how to go on, if that file cannot be read, is not
    JSON, has no ``settings`` object, names an unknown mode or holds settings that are refused.
    """
    path = run_dir.config
    problem = ""
    try:
        stored = json.loads(path.read_text(encoding="utf-8"))
    except OSError as error:
        problem = f"it cannot be read ({error.strerror or error})"
    except ValueError as error:  # bad JSON or not UTF-8
        problem = f"it is not valid JSON ({error})"
    else:
        if not isinstance(stored, dict) or not isinstance(stored.get("settings"), dict):
            problem = 'it has no "settings" object'
        elif stored.get("mode", "shared") not in ("shared", "independent"):
            problem = f'its "mode" is {stored.get("mode")!r}, not "shared" or "independent"'
        else:
            try:
                Settings.from_dict(stored["settings"])
            except ConfigError as error:
                problem = f"its settings are refused: {error}"
    if problem:
        problem = problem if problem.endswith((".", "?")) else problem + "."
        raise ConfigError(f"Cannot resume: {path} is damaged or was not written by morphelites: {problem} Repair or "
                          f"restore that file, or start a new run with another --output.")  # fmt: skip
    return stored


def over_stored_settings(config: Any, stored_settings: dict[str, Any]) -> Any:
    """A ``--config`` (or a Python resume's ``base_args``) given to a resume, laid over the stored
    run's settings: what the file sets, it changes (and :func:`check_resume` refuses all but
    ``RESUMABLE_CHANGES``); what it leaves out stays as stored.

    Why: a file naming only ``training.ipc_timeout`` (README's troubleshooting) was refused for any
    run started with non-default settings, its missing keys having taken their defaults; and a job
    script's file that names no budget must not undo one raised since (``--resume --evaluations
    400``), nor lift a wall-time limit or turn a serial run into a parallel one. A file that sets
    ``max_workers`` asks for worker processes, as ``--workers`` does, so a serial run's stored
    ``enable_multiprocess`` does not hold then. A run's whole config.json (a ``settings`` object),
    or anything but a JSON object, is returned as it is, for Settings.from_dict to explain."""
    if not isinstance(config, dict) or "settings" in config:
        return config
    merged: dict[str, Any] = {section: dict(values) if isinstance(values, dict) else values
                              for section, values in stored_settings.items()}  # fmt: skip
    for section, values in config.items():
        if isinstance(values, dict) and isinstance(merged.get(section), dict):
            merged[section].update(values)
        else:  # a section the stored run lacks, or not an object: Settings.from_dict says what is wrong
            merged[section] = dict(values) if isinstance(values, dict) else values
    evolution = config.get("evolution")
    if isinstance(evolution, dict) and evolution.get("max_workers") is not None and "enable_multiprocess" not in evolution:
        merged["evolution"].pop("enable_multiprocess", None)
    for section, key in _DERIVED:
        # Derived from the body space: kept from the stored run, they would refuse a file that changes
        # the body space with a message about them instead of check_resume's naming the change (review).
        given = config.get(section)
        if isinstance(merged.get(section), dict) and not (isinstance(given, dict) and key in given):
            merged[section].pop(key, None)
    return merged


def check_resume(run_dir: RunDirectory, mode: str, settings: Settings) -> list[str]:
    """Raise ConfigError unless a run in ``mode`` ("shared" or "independent") with ``settings``
    continues the run stored in ``run_dir`` unchanged, but for ``RESUMABLE_CHANGES``; return those
    that differ, as "section.key: stored X, now Y".

    The error names every setting that differs (stored and new value) and how to go on. A
    results.jsonl damaged from outside raises DamagedResults (a ValueError) naming the line.
    """
    from morphelites.morphology import BodySpace
    from morphelites.runs.recorder import check_results

    stored = stored_run(run_dir)
    stored_mode = stored.get("mode", "shared")
    if stored_mode != mode:
        raise ConfigError(
            f"Cannot resume: {run_dir.path} holds a run in {stored_mode} mode, and this one is in {mode} mode. Resume "
            f"it in {stored_mode} mode (use_shared_ppo={stored_mode == 'shared'}; on the command line drop --mode), "
            f"or start a new run in another output directory."
        )
    # Compared as config.json stores them: settings built in Python may hold a list where the
    # stored ones, read back, hold a tuple (evolution.measures), and that is no change.
    old, new = (json.loads(json.dumps(s.to_dict())) for s in (Settings.from_dict(stored["settings"]), settings))
    differing = [(section, key) for section in old for key in old[section] if old[section][key] != new[section].get(key)]
    changed = [f"{section}.{key}: stored {old[section][key]!r}, now {new[section].get(key)!r}"
               for section, key in differing if (section, key) not in RESUMABLE_CHANGES | _DERIVED]  # fmt: skip
    if changed:
        raise ConfigError(
            f"Resuming would continue {run_dir.path} with a different configuration: {'; '.join(changed)}. Only the "
            f"budgets (evaluations, max_env_steps, max_wall_s: --evaluations, --max-env-steps, --max-wall-time), "
            f"the workers (max_workers, enable_multiprocess: --workers, --serial) and training.ipc_timeout may change "
            f"on resume. Leave the others out (of --config and the options, or of base_args in Python): what a "
            f"resume leaves out stays as stored. Or start a new run in another output directory."
        )
    # After the settings: with another body space every line's genome has another length, and
    # that is a changed setting, not a damaged file.
    if run_dir.results.is_file():
        check_results(run_dir.results.read_bytes(), run_dir.results, BodySpace(settings.body_space).genome_dim)
    return [f"{section}.{key}: stored {old[section][key]!r}, now {new[section].get(key)!r}"
            for section, key in differing if (section, key) in RESUMABLE_CHANGES]  # fmt: skip


def python_resume_settings(base_args: dict[str, Any] | None, output_dir: str | None,
                           use_shared_ppo: bool | None) -> dict[str, Any] | None:
    """``base_args`` of a resume from Python, as the CLI takes a ``--config`` to ``--resume``: each
    setting it leaves out is the stored run's, not the default (a dict without ``evaluations`` had
    ended a run stopped at 300 of 400 at once, and one without ``max_wall_s`` lifted its limit:
    found in review); None takes the stored settings whole. Left as given where no run can be read
    there: the checks that follow say why."""
    if output_dir is not None and not str(output_dir).strip():
        return base_args  # refused as it is made
    if output_dir is None:
        evolution = (base_args or {}).get("evolution") if isinstance(base_args, dict) else None
        shared = use_shared_ppo if use_shared_ppo is not None else (
            evolution.get("use_shared_ppo", True) if isinstance(evolution, dict) else True)  # fmt: skip
        output_dir = default_output_dir(shared)
    try:
        run_dir = RunDirectory(output_dir)
        if not run_dir.holds_run():
            return base_args
        stored = stored_run(run_dir)
    except (RunDirectoryError, ConfigError, OSError, ValueError):
        return base_args
    return stored["settings"] if base_args is None else over_stored_settings(base_args, stored["settings"])


def stored_run_id(stored: dict[str, Any]) -> str | None:
    """The run id a stored config.json (``stored_run``) keeps (see shm.new_run_id), or None for a
    run from before it did."""
    run_id = stored.get("run_id")
    return run_id if isinstance(run_id, str) and len(run_id) == 10 and all(c in "0123456789abcdef" for c in run_id) else None


def sessions_started(stored: dict[str, Any]) -> int:
    """How many sessions of a stored run (``stored_run``) have started: config.json's ``sessions``
    (a run from before it was counted has had at least one)."""
    sessions = stored.get("sessions", 1)
    return sessions if isinstance(sessions, int) and not isinstance(sessions, bool) and sessions >= 1 else 1
