"""What a stored evolution run's files say it had reached, for ``--resume`` (``resume=True``).

results.jsonl is the record of what was evaluated; the evolution checkpoint adds what it cannot
say (variation RNG, id counter, individuals in flight); metrics.csv, reevaluations.csv and
summary.json hold the run's running totals (env steps, wall time, learner and worker counters,
peak memory), each of which may be ahead of the others after a hard stop. The trainer replays
results.jsonl into its archive; the functions here read and check the rest (config.json's own
fields are read by ``runs.stored_run``).
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

from morphelites.config import Settings
from morphelites.individual import Individual
from morphelites.parallel.learner import COUNTER_COLUMNS
from morphelites.parallel.supervisor import SESSION_COUNTERS
from morphelites.runs.recorder import EvolutionRecorder
from morphelites.runs.run_dir import RunDirectory

__all__ = ["CHECKPOINT_FORMAT", "CHECKPOINT_FIELDS", "RecordedTotals", "read_recorded_totals", "unreported_steps",
           "drawn_after", "unloadable", "nothing_to_do_line", "as_figure"]  # fmt: skip

CHECKPOINT_FORMAT = "morphelites-evolution-1"
#: Fields of an evolution checkpoint that resuming reads (``settings`` is checked for the body space).
CHECKPOINT_FIELDS = ("completed", "next_id", "pending", "variation", "wall_s", "settings")


@dataclasses.dataclass
class RecordedTotals:
    """The running totals a stored run's files hold, each the largest its files record (see
    :func:`read_recorded_totals`); the run's counts go on from these.

    Attributes:
        maxima: the largest value of each counted column of metrics.csv that has one.
        previous_summary: summary.json as the last session wrote it ({} after a hard stop before one).
        learner_counters: the learner's counters by ``COUNTER_COLUMNS`` name (updates, samples
            consumed), and ``max_lag_seen``: the largest policy lag a row recorded.
        policy_version: the newest policy version any of the run's files names.
        session_counters: the backends' ``SESSION_COUNTERS`` reached before this session.
        reevaluation_env_steps: env steps of the re-evaluation rounds reevaluations.csv records.
        reevaluation_rows_env_steps: the largest run total of env steps a reevaluations.csv row holds.
        wall_s: the run's wall time, in s: the largest that metrics.csv, reevaluations.csv and
            summary.json record (a checkpoint may hold more).
        peak_memory_mb: the largest peak memory of the whole process tree, in MB.
        held_back_s: summary.json's ``held_back_s`` (s; a checkpoint may hold more).
    """

    maxima: dict[str, float]
    previous_summary: dict[str, Any]
    learner_counters: dict[str, int]
    policy_version: int
    session_counters: dict[str, float]
    reevaluation_env_steps: int
    reevaluation_rows_env_steps: int
    wall_s: float
    peak_memory_mb: float
    held_back_s: float

    def learner_figures_start(self) -> dict[str, float]:
        """The learner's and backend's counters as training.log's first rates of a resumed session
        start from them (not from 0), by metrics.csv column."""
        return {**{column: float(self.learner_counters[name]) for name, column in COUNTER_COLUMNS.items()
                   if name in self.learner_counters}, **self.session_counters}  # fmt: skip


def read_recorded_totals(recorder: EvolutionRecorder, run_dir: RunDirectory, results_policy_version: int) -> RecordedTotals:
    """Read the running totals of a stored run from its files; ``results_policy_version``: the
    newest policy version a results.jsonl record names (0 if none does).

    metrics.csv takes a row with every evaluation; summary.json, after a graceful stop, also counts
    what came after the last row (the learner's updates, a body in flight, the final
    re-evaluation); reevaluations.csv has a row for each finished round. A learner restores its own
    checkpoint, which can be older than the last row, so its counters go on from the largest.
    """
    previous_summary = run_dir.read_summary() or {}  # absent after a hard stop
    maxima = recorder.metrics_maxima([*COUNTER_COLUMNS.values(), *SESSION_COUNTERS, "wall_s", "evaluations", "env_steps",
                                      "training_env_steps", "peak_memory_mb", "policy_version", "max_policy_lag"])  # fmt: skip
    # summary.json's too: a session stopped before its learner reported had written counts below
    # the last session's into summary.json, and the first shared_ppo line's rates held them (review)
    learner_counters = {name: int(max(maxima.get(column, 0.0), as_figure(previous_summary.get(column))))
                        for name, column in COUNTER_COLUMNS.items() if column in maxima or column in previous_summary}  # fmt: skip
    if "max_policy_lag" in maxima:  # a lag seen after the learner's last checkpoint (a hard stop) still counts
        learner_counters["max_lag_seen"] = int(maxima["max_policy_lag"])
    # so that a learner restored from an older checkpoint numbers its weights past these
    policy_version = int(max(maxima.get("policy_version", 0.0), recorder.reevaluation_rows_max("policy_version_max"),
                             results_policy_version))  # fmt: skip
    session_counters = {column: max(maxima.get(column, 0.0), as_figure(previous_summary.get(column)))
                        for column in SESSION_COUNTERS if column in maxima or column in previous_summary}  # fmt: skip
    # the time after the last evaluation (a final re-evaluation, the shutdown) is in reevaluations.csv
    # and summary.json (absent, or an earlier session's, after a hard stop)
    wall_s = max(maxima.get("wall_s", 0.0), recorder.reevaluation_rows_max("wall_s"), as_figure(previous_summary.get("wall_s")))
    return RecordedTotals(
        maxima=maxima, previous_summary=previous_summary, learner_counters=learner_counters, policy_version=policy_version,
        session_counters=session_counters, reevaluation_env_steps=recorder.reevaluation_env_steps(),
        reevaluation_rows_env_steps=int(recorder.reevaluation_rows_max("env_steps")), wall_s=wall_s,
        # summary.json too, for runs whose metrics.csv has no memory columns (written before they were added)
        peak_memory_mb=max(maxima.get("peak_memory_mb", 0.0), as_figure(previous_summary.get("peak_memory_mb"))),
        held_back_s=as_figure(previous_summary.get("held_back_s")),
    )  # fmt: skip


def unreported_steps(totals: RecordedTotals, recorded_training: list[int], recorded_steps: list[int]) -> tuple[int, int]:
    """Env steps of a shared-mode run that its recorded totals hold and neither results.jsonl nor a
    reevaluations.csv row does, as ``(training, re-evaluation)``. Training: what workers that died,
    or were stopped with the run, had handed on to the learner. Re-evaluation: the tasks of
    rounds that never finished (cancelled by the end of the run, or stopped by Ctrl-C).

    Args:
        totals: the run's recorded totals.
        recorded_training, recorded_steps: at index n, the training env steps / all env steps of
            the first n distinct individuals of results.jsonl (index 0 holds 0).

    The totals of the last metrics.csv row and of summary.json are set against the results
    recorded when they were written, the first ``evaluations`` lines of results.jsonl: a hard stop
    between a result's line and its metrics.csv row leaves results.jsonl one evaluation ahead. A
    reevaluations.csv row's ``evaluations`` is where its round began, not how many results were in
    when it ended, so its total is set against all of them (a final round's row comes after every
    result). The latest total holds the most, as both kinds only grow.
    """

    def beyond_results(recorded: list[int], evaluations: float, total: float) -> int:
        return int(total) - recorded[min(int(evaluations), len(recorded) - 1)]

    summary, maxima = totals.previous_summary, totals.maxima
    summary_evaluations = as_figure(summary.get("evaluations"))
    training = [beyond_results(recorded_training, summary_evaluations, as_figure(summary.get("training_env_steps")))
                if "training_env_steps" in summary else 0]  # fmt: skip
    steps = [beyond_results(recorded_steps, summary_evaluations, as_figure(summary.get("env_steps")))
             if "env_steps" in summary else 0]  # fmt: skip
    if "training_env_steps" in maxima:
        training.append(beyond_results(recorded_training, maxima.get("evaluations", 0.0), maxima["training_env_steps"]))
    if "env_steps" in maxima:
        steps.append(beyond_results(recorded_steps, maxima.get("evaluations", 0.0), maxima["env_steps"]))
    steps.append(totals.reevaluation_rows_env_steps - recorded_steps[-1])
    unreported_training = max(0, *training)
    return unreported_training, max(0, max(steps) - unreported_training - totals.reevaluation_env_steps)


def drawn_after(state: dict[str, Any], recorded_ids: list[int]) -> int:
    """How many individuals in results.jsonl the checkpoint's variation stream had not drawn yet.

    Args:
        state: an evolution checkpoint.
        recorded_ids: the ids in results.jsonl, each once, in the order they were first recorded.

    results.jsonl takes a line before the checkpoint of that evaluation is written, so the first
    ``state["completed"]`` ids were evaluated when the checkpoint was; of the later ones, those the
    checkpoint holds as pending were drawn before it too. The rest were drawn after it. Comparing
    ``next_id`` instead missed individuals that took the free id of one lost at an earlier hard stop.
    """
    pending = {int(entry["id"]) for entry in state["pending"]}
    return sum(1 for id_ in recorded_ids[int(state["completed"]):] if id_ not in pending)


def unloadable(state: dict[str, Any]) -> str | None:
    """What stops an evolution checkpoint of the right format and body space from being resumed
    from, or None: its fields are read into scratch objects first, so that malformed contents
    (an edited file) make resuming pass it over instead of failing halfway through."""
    import numpy as np

    try:
        int(state["completed"]), int(state["next_id"]), float(state["wall_s"])
        for entry in state["pending"]:
            Individual.from_dict(entry)
        variation = state["variation"]
        np.random.default_rng().bit_generator.state = variation["rng"]
        if "parent_sampling" in state:  # absent from checkpoints of earlier versions
            np.random.default_rng().bit_generator.state = state["parent_sampling"]
        float(state.get("held_back_s", 0.0))
        int(variation["proposed"])
        if not callable(getattr(variation["operator"], "ask", None)):
            return f"its variation operator is a {type(variation['operator']).__name__}, not a pyribs operator"
    except Exception as error:  # malformed contents raise all kinds of errors; none of it can be resumed from
        return f"its contents cannot be loaded ({type(error).__name__}: {error})"
    return None


def nothing_to_do_line(settings: Settings, completed: int, env_steps: int, wall_s: float) -> str:
    """training.log's line for a resume of a run that already did what ``settings``' budgets ask
    (``completed`` evaluations, ``env_steps``, ``wall_s`` seconds): which budget it reached and
    how to continue. From this session's budgets, not the stored summary's: a budget raised but
    not past what the run has spent was otherwise reported at its old figure, with advice to
    raise it (review)."""
    evo = settings.evolution
    if completed >= evo.evaluations:
        why, how = "requested evaluations done", f"raise --evaluations (it is {evo.evaluations})"
    elif evo.max_env_steps is not None and env_steps >= evo.max_env_steps:
        why = f"its {env_steps:,} env steps reach --max-env-steps {evo.max_env_steps:,}"
        how = f"give --max-env-steps above {env_steps:,}"
    else:
        why = f"its {wall_s:,.0f} s reach --max-wall-time {evo.max_wall_s:g}"
        how = f"give --max-wall-time above {math.ceil(wall_s)}"
    return (f"Nothing to do: this run already completed {completed} evaluations ({why}). To continue it, {how}. "
            f"Redrawing heatmap.png and curves.png.")


def as_figure(value: Any) -> float:
    """A figure read from summary.json or a checkpoint as a float; 0.0 if it is missing or not a number."""
    return float(value) if isinstance(value, (int, float)) else 0.0
