"""Everything an evolution run writes, behind one object (the trainer itself writes no file).

Files (names are the user contract): ``config.json``, ``training.log``, ``results.jsonl`` (one
line per evaluated individual, appended and fsynced), ``archive.csv``, ``heatmap.png``,
``curves.png``, ``metrics.csv`` (+ ``tensorboard/``), ``summary.json``, ``checkpoints/evolution-*.pkl``; in shared
mode also ``reevaluations.csv`` (+ ``tensorboard/reevaluations/``) and ``*_reevaluated`` archive files.
"""

from __future__ import annotations

import csv
import io
import json
import logging
import math
import os
import re
from pathlib import Path
from typing import Any, Iterator, Sequence

from morphelites.runs import files
from morphelites.runs.checkpoints import (CheckpointCheck, CheckpointError, checkpoint_counter, list_checkpoints,
                                         newest_usable, save_checkpoint)
from morphelites.runs.files import append_line, atomic_write_bytes, atomic_write_text, to_jsonable, truncate_file
from morphelites.runs.metrics import MetricsWriter, iter_metric_rows, last_metric_row, read_metric_rows
from morphelites.runs.run_dir import RunDirectory
from morphelites.runs.training_log import open_training_log

__all__ = ["EvolutionRecorder", "EVOLUTION_METRICS", "SHARED_METRICS", "REEVALUATION_COLUMNS", "CHECKPOINT_NAME", "DamagedResults",
           "parse_results", "check_results", "iter_results", "RESULT_FIGURES", "RESULT_COUNTS", "LATER_RESULT_FIGURES"]

CHECKPOINT_NAME = "evolution"
EVOLUTION_METRICS = (
    "evaluations", "env_steps", "training_env_steps", "wall_s", "qd_score", "coverage", "best_fitness",
    "mean_elite_fitness", "elites", "env_steps_per_s", "evaluations_per_min", "in_flight", "worker_restarts",
    "worker_stalls", "rss_mb", "rss_main_mb", "rss_worker_max_mb", "peak_memory_mb",
)  # fmt: skip
#: Extra metrics.csv columns in shared mode (from the learner's statistics).
SHARED_METRICS = (
    "policy_version", "policy_updates", "samples_consumed", "mean_policy_lag", "max_policy_lag", "learner_utilisation",
    "buffer_transitions", "buffer_capacity", "buffer_mb", "transitions_written", "transitions_consumed",
    "segments_dropped_lag", "producer_waits", "skipped_updates", "learner_restarts", "learner_stalls", "rss_learner_mb",
)  # fmt: skip

#: Columns of reevaluations.csv, one row per re-evaluation round of the elites (shared mode):
#: ``evaluations`` completed when it started, ``*_as_found`` for the archive then, ``*_reevaluated``
#: for the same bodies scored by the current policy, ``env_steps`` the run's total after the round.
REEVALUATION_COLUMNS = (
    "evaluations", "final", "wall_s", "env_steps", "reevaluation_env_steps", "policy_version_min",
    "policy_version_max", "elites", "qd_score_as_found", "mean_elite_fitness_as_found", "qd_score_reevaluated",
    "mean_elite_fitness_reevaluated", "best_fitness_reevaluated", "coverage_reevaluated",
)  # fmt: skip


#: Evaluation figures every results.jsonl line records (numbers), which resuming reads back.
RESULT_FIGURES = ("fitness", "success_rate", "mean_return", "final_distance", "path_efficiency", "collisions",
                  "policy_version")
#: Env steps every line records (whole numbers), which resuming counts again.
RESULT_COUNTS = ("training_steps", "eval_env_steps")
#: Evaluation figures recorded since a later version: a number or null, absent from older lines.
LATER_RESULT_FIGURES = ("fitness_ceiling",)


def _suffixed(path: Path, suffix: str) -> Path:
    """``path`` with ``suffix`` before its extension: archive.csv -> archive_reevaluated.csv."""
    return path.with_name(f"{path.stem}{suffix}{path.suffix}")


class DamagedResults(ValueError):
    """results.jsonl holds a damaged line: one that is not the last, or a whole line that is not a
    whole record."""


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _is_count(value: Any) -> bool:
    """A whole number >= 0 (JSON bools are Python ints, and are not counts)."""
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def _record_problem(record: dict[str, Any], genome_dim: int | None = None) -> str | None:
    """What keeps a results.jsonl record from being resumed from, or None: a field that the run
    always writes and resuming reads is missing, of the wrong kind or out of its range (ids and
    step counts whole numbers >= 0, fitness in [0, 1], a genome of ``genome_dim`` finite genes)."""
    from morphelites.individual import Individual

    missing = [key for key in ("id", "genome", "body", *RESULT_COUNTS, *RESULT_FIGURES) if key not in record]
    if missing:
        return f"it has no {', '.join(missing)}"
    wrong = [key for key in RESULT_COUNTS if not _is_count(record[key])]
    if wrong:
        return f"its {', '.join(wrong)} {'is not a whole number' if len(wrong) == 1 else 'are not whole numbers'} >= 0"
    wrong = [key for key in RESULT_FIGURES if not _is_number(record[key])]
    wrong += [key for key in LATER_RESULT_FIGURES if record.get(key) is not None and not _is_number(record[key])]
    if wrong:
        return f"its {', '.join(wrong)} {'is not a number' if len(wrong) == 1 else 'are not numbers'}"
    if not (math.isfinite(record["fitness"]) and 0.0 <= record["fitness"] <= 1.0):
        return f"its fitness is {record['fitness']}, not a number in [0, 1]"
    if not _is_count(record["id"]):
        return f"its id is {record['id']!r}, not a whole number >= 0"
    if record.get("parent_id") is not None and not _is_count(record["parent_id"]):
        return f"its parent_id is {record['parent_id']!r}, not a whole number >= 0 or null"
    genome = record["genome"]
    if not isinstance(genome, list) or not all(_is_number(g) and math.isfinite(g) for g in genome):
        return "its genome is not a list of finite numbers"
    if genome_dim is not None and len(genome) != genome_dim:
        return f"its genome has {len(genome)} genes, but this run's body space has genomes of {genome_dim}"
    try:
        Individual.from_dict(record)
    except (TypeError, ValueError, KeyError) as error:
        return f"its individual cannot be read ({type(error).__name__}: {error})"
    return None


def parse_results(raw: bytes, path: Path, genome_dim: int | None = None) -> tuple[list[dict[str, Any]], int]:
    """The records of results.jsonl's bytes ``raw``, and how many bytes they take (``genome_dim``:
    the genome length of the run's body space, checked when given); see :func:`iter_results`."""
    lines: list[dict[str, Any]] = []
    good_bytes = 0
    for record, size in iter_results(raw, path, genome_dim):
        lines.append(record)
        good_bytes += size
    return lines, good_bytes


def check_results(raw: bytes, path: Path, genome_dim: int | None = None) -> int:
    """How many bytes of results.jsonl's ``raw`` hold whole records, checking every one as
    :func:`iter_results` does and keeping none (a long run's records take GBs as dicts)."""
    return sum(size for _, size in iter_results(raw, path, genome_dim))


#: A line as ``bytes.splitlines(keepends=True)`` cuts them: up to and with \r\n, \r or \n, or a last
#: line without any.
_LINE = re.compile(rb"[^\r\n]*(?:\r\n|\r|\n)|[^\r\n]+")


def iter_results(raw: bytes, path: Path, genome_dim: int | None = None) -> Iterator[tuple[dict[str, Any], int]]:
    """Each record of results.jsonl's bytes ``raw``, with how many bytes its line takes
    (``genome_dim``: the genome length of the run's body space, checked when given).

    A line is written whole and fsynced, so a crash can only tear the last one: a last line that
    is not a whole record is left out (the caller cuts it off). A last line that lacks only its
    line end (a file rewritten from outside without the final newline, or a crash just before it)
    is a whole record and is kept: the caller adds the line end. A damaged line with lines after
    it, or any whole line that lacks a field the run writes, was changed from outside (an edit, a
    copy, a disk error): DamagedResults names it, as cutting there would throw away every record
    after it.
    """
    chunks = _LINE.finditer(raw)  # one line at a time: a list of them took as much memory as the file again
    following = next(chunks, None)
    number = 0
    while following is not None:
        chunk, following = following.group(), next(chunks, None)
        number += 1
        last = following is None
        try:
            if not chunk.endswith(b"\n") and not last:  # a lone \r: splitlines ends a line there too
                raise ValueError("it has no line end")
            record = json.loads(chunk)
            if not isinstance(record, dict):
                raise ValueError(f"it holds a JSON {type(record).__name__}, not an object")
        except ValueError as error:  # JSONDecodeError and UnicodeDecodeError are ValueErrors
            if last:
                break
            raise _damaged(path, number, number + 1 + sum(1 for _ in chunks), str(error)) from None
        problem = _record_problem(record, genome_dim)
        if problem is not None:
            if last and not chunk.endswith(b"\n"):  # torn where it happened to parse
                break
            raise _damaged(path, number, number + (0 if last else 1 + sum(1 for _ in chunks)), problem)
        yield record, len(chunk)


def _damaged(path: Path, number: int, total: int, problem: str) -> DamagedResults:
    after = total - number
    return DamagedResults(
        f"{path} is damaged at line {number} of {total}: {problem.rstrip('.')}. A crash can only cut the last line "
        f"short, so the file was changed from outside (an edit, a copy, a disk error)"
        f"{f'; the {after} line(s) after it would be lost' if after else ''}. Repair line {number} (or restore the "
        f"file), or delete that line (its evaluation is then lost, and the run evaluates another individual in its "
        f"place); then resume."
    )


class EvolutionRecorder:
    """Writes the files of an evolution run in ``run``.

    Args:
        run: a prepared RunDirectory.
        quiet: no log lines on the terminal (training.log still gets them).
        metric_columns: columns of metrics.csv.
    """

    def __init__(self, run: RunDirectory, quiet: bool = False, metric_columns: Sequence[str] = EVOLUTION_METRICS) -> None:
        self.run = run
        self.log: logging.Logger = open_training_log(run.training_log, quiet=quiet, name="morphelites.evolution", own=True)
        self._metrics = MetricsWriter(run.metrics, metric_columns, tensorboard_dir=run.tensorboard, step_key="evaluations")
        self._reevaluations: MetricsWriter | None = None  # opened by the first round: independent runs have none

    # ------------------------------------------------------------------ per evaluation
    def result(self, line: dict[str, Any]) -> None:
        """Append one evaluated individual to results.jsonl."""
        append_line(self.run.results, json.dumps(to_jsonable(line), separators=(",", ":")))

    def metrics(self, record: dict[str, Any]) -> None:
        self._metrics.write(record)

    def reevaluation(self, record: dict[str, Any]) -> None:
        """Append one re-evaluation round (columns: ``REEVALUATION_COLUMNS``) to reevaluations.csv."""
        if self._reevaluations is None:
            self._reevaluations = MetricsWriter(self.run.reevaluations, REEVALUATION_COLUMNS,
                                                tensorboard_dir=self.run.tensorboard / "reevaluations", step_key="evaluations")  # fmt: skip
        self._reevaluations.write(record)

    def reevaluation_env_steps(self) -> int:
        """Env steps of all re-evaluation rounds recorded in reevaluations.csv (0 if there is none)."""
        total = 0
        for row in read_metric_rows(self.run.reevaluations):
            try:
                total += int(float(row.get("reevaluation_env_steps") or 0))
            except ValueError:  # a row torn by a crash mid-write
                pass
        return total

    def reevaluation_rows_max(self, column: str) -> float:
        """The largest value of ``column`` over the rows of reevaluations.csv (0 if there is none)."""
        largest = 0.0
        for row in read_metric_rows(self.run.reevaluations):
            try:
                largest = max(largest, float(row.get(column) or 0))
            except ValueError:  # a row torn by a crash mid-write
                pass
        return largest

    def set_aside_final_reevaluation_files(self) -> list[str]:
        """Rename archive_reevaluated.csv and heatmap_reevaluated.png, the files of an earlier
        session's final re-evaluation, to ``*_reevaluated_at_<N>`` (N: the evaluations its archive
        held, from the csv's ``reevaluated_at`` column; ``earlier`` for files written before that
        column), with ``_2``, ``_3``... if taken. A resumed run changes the archive, and a file
        under the plain name must describe the archive as it is now. Returns the new names."""
        archive_csv, heatmap = (_suffixed(path, "_reevaluated") for path in (self.run.archive_csv, self.run.heatmap))
        # The csv, which carries the label, is renamed last: a crash between the two renames leaves
        # it under its plain name, and the next session sets it aside under the same label.
        stale = [path for path in (heatmap, archive_csv) if path.is_file()]
        if not stale:
            return []
        label = "earlier"
        try:
            with open(archive_csv, newline="") as handle:
                first = next(csv.DictReader(handle), {})
            if str(first.get("reevaluated_at", "")).isdigit():
                label = f"at_{first['reevaluated_at']}"
        except (OSError, UnicodeDecodeError, csv.Error):
            pass  # no csv, or an unreadable one: the files are still set aside, as "earlier"

        def targets(tag: str) -> list[Path]:
            return [_suffixed(path, f"_{tag}") for path in stale]

        tag, copy = label, 1
        while any(target.exists() for target in targets(tag)):
            copy += 1
            tag = f"{label}_{copy}"
        for path, target in zip(stale, targets(tag)):
            os.replace(path, target)
        files.fsync_directory(self.run.path)  # the new names survive a power cut
        return sorted(target.name for target in targets(tag))

    def set_aside_checkpoints_above(self, completed: int) -> list[str]:
        """Rename the evolution checkpoints that count more than ``completed`` evaluations (made
        before results.jsonl lost lines) to ``*.superseded``: a resume takes the checkpoint of the
        highest count, and would otherwise go back to them, past this session's own. Returns the
        names set aside; one that cannot be renamed is logged and left."""
        above = [path for path in list_checkpoints(self.run.checkpoints, CHECKPOINT_NAME) if checkpoint_counter(path) > completed]
        for path in above:
            try:
                path.replace(path.with_name(path.name + ".superseded"))
            except OSError as error:
                self.log.warning("Could not set aside %s (%s).", path.name, error)
        return [path.name for path in above]

    def final_reevaluation_recorded(self, evaluations: int) -> bool:
        """Whether reevaluations.csv holds a completed final round made after ``evaluations`` evaluations."""
        return any(row.get("final") == "1" and row.get("evaluations") == str(evaluations) and row.get("coverage_reevaluated")
                   for row in read_metric_rows(self.run.reevaluations))  # fmt: skip

    def metrics_maxima(self, columns: Sequence[str]) -> dict[str, float]:
        """The largest value of each of ``columns`` in metrics.csv over its rows, for the columns that
        have one (a resumed run continues counters from these); empty cells are passed over."""
        maxima: dict[str, float] = {}
        for row in iter_metric_rows(self.run.metrics):
            for column in columns:
                try:
                    value = float(row.get(column) or "nan")
                except ValueError:
                    continue
                if math.isfinite(value) and value > maxima.get(column, -math.inf):
                    maxima[column] = value
        return maxima

    def last_metrics_value(self, column: str) -> float | None:
        """``column`` of the last whole row of metrics.csv, or None (no file, no row, an empty cell)."""
        row = last_metric_row(self.run.metrics)
        try:
            value = float(row.get(column) or "nan") if row is not None else math.nan
        except ValueError:
            return None
        return value if math.isfinite(value) else None

    def archive(self, elites: list[dict[str, Any]], measure_names: Sequence[str], suffix: str = "",
                reevaluated_at: int | None = None) -> None:
        """Rewrite archive<suffix>.csv: one row per elite (lists joined with ';'); a re-evaluated
        archive's rows also say after how many evaluations it was re-evaluated (``reevaluated_at``)."""
        # num_links is a body field and may be a measure too: one column, the whole joint count
        body_fields = [name for name in ("num_links",) if name not in measure_names]
        columns = ["cell", "individual_id", "parent_id", "fitness", *measure_names, *body_fields, "link_lengths",
                   "success_rate", "mean_return", "final_distance", "path_efficiency", "collisions",
                   "fitness_ceiling", "policy_version", "genome"]  # fmt: skip
        if reevaluated_at is not None:
            columns.append("reevaluated_at")
        buffer = io.StringIO()
        writer = csv.writer(buffer)
        writer.writerow(columns)
        for elite in elites:
            row = {**elite, **elite["measures"], "num_links": elite["num_links"], "reevaluated_at": reevaluated_at}
            row["link_lengths"] = ";".join(f"{x:.6f}" for x in elite["link_lengths"])
            # every digit: genes cut to 6 decimals decoded to a body 1 µm off in ~17% of rows
            row["genome"] = ";".join(repr(float(x)) for x in elite["genome"])
            writer.writerow([row.get(c, "") for c in columns])
        atomic_write_text(_suffixed(self.run.archive_csv, suffix), buffer.getvalue())

    def metric_rows(self, most: int | None = None) -> tuple[list[dict[str, str]], list[dict[str, str]]]:
        """The rows of metrics.csv (at most ``most`` of them, evenly spaced: :func:`read_metric_rows`)
        and of reevaluations.csv as written, cells as strings (a list is empty where its file does
        not exist); with --resume, they span the whole run."""
        return read_metric_rows(self.run.metrics, most), read_metric_rows(self.run.reevaluations)

    def curves(self, png: bytes) -> None:
        """Rewrite curves.png (the run's progress)."""
        atomic_write_bytes(self.run.curves, png)

    def heatmap(self, png: bytes, suffix: str = "") -> None:
        atomic_write_bytes(_suffixed(self.run.heatmap, suffix), png)

    # ------------------------------------------------------------------ run level
    def summary(self, summary: dict[str, Any]) -> None:
        self.run.write_summary(summary)

    def checkpoint(self, counter: int, state: dict[str, Any], keep: int) -> Path | None:
        """Write a checkpoint; on failure (disk full, ...) log it, keep the previous ones, return None."""
        try:
            return save_checkpoint(self.run.checkpoints, CHECKPOINT_NAME, counter, state, keep=keep)
        except OSError as error:
            self.log.error("Checkpoint %d could not be written (%s); the previous checkpoint is intact.", counter, error)
            return None

    def latest_checkpoint(
        self, expected_format: str | None = None, check: CheckpointCheck | None = None, required: Sequence[str] = (),
    ) -> tuple[Path, dict[str, Any]] | None:
        """Newest checkpoint that is intact, holds the ``required`` fields and fits, or None.

        Every checkpoint skipped on the way (unreadable, another format or version, missing a
        required field, failing ``check``; see :func:`load_checkpoint`) is logged as a warning
        naming the file and why; if none is usable, a warning says so (the caller then resumes
        from results.jsonl alone).
        """
        skipped: list[CheckpointError] = []

        def skip(error: CheckpointError, older: int) -> None:
            skipped.append(error)
            self.log.warning("Skipping a checkpoint: %s %s", error,
                             f"Falling back to an older checkpoint ({older} left)." if older else "No older checkpoint is left.")  # fmt: skip

        found = newest_usable(self.run.checkpoints, CHECKPOINT_NAME, expected_format, check, on_skip=skip, required=required)
        if found is not None and skipped:
            self.log.warning("Using %s, the newest usable checkpoint (%d newer one(s) skipped).", found[0].name, len(skipped))
        elif found is None and skipped:
            self.log.warning("None of the %d evolution checkpoint(s) in %s is usable; resuming from results.jsonl alone "
                             "(individuals that were in flight are not reissued).", len(skipped), self.run.checkpoints)  # fmt: skip
        return found

    def read_results(self, genome_dim: int | None = None) -> list[dict[str, Any]]:
        """All records of results.jsonl, as :meth:`results` yields them."""
        return list(self.results(genome_dim))

    def results(self, genome_dim: int | None = None) -> Iterator[dict[str, Any]]:
        """Each record of results.jsonl in turn, none kept (a resume replays 100,000s); once the
        last is taken, a torn last line (crash mid-write) is cut off the file, and a whole last
        record without its line end gets one.

        Raises DamagedResults for a damaged line with others after it, or with a genome that is
        not ``genome_dim`` long (when given): the file is then left as it is."""
        path = self.run.results
        if not path.exists():
            return
        raw = path.read_bytes()
        good_bytes, last_id = 0, None
        for record, size in iter_results(raw, path, genome_dim):
            good_bytes += size
            last_id = record.get("id")
            yield record
        if good_bytes < len(raw):
            self.log.warning("results.jsonl ended in a partial line (%d bytes); removed it.", len(raw) - good_bytes)
            truncate_file(path, good_bytes)
        elif raw and not raw.endswith(b"\n"):  # a whole last record without its line end: kept
            self.log.warning("results.jsonl's last record (individual %s) had no line end; it is kept, and the line "
                             "end added.", last_id)  # fmt: skip
            append_line(path, "")

    def close(self) -> None:
        """Flush and close; safe to call twice."""
        self._metrics.close()
        if self._reevaluations is not None:
            self._reevaluations.close()
        for handler in list(self.log.handlers):
            handler.close()
            self.log.removeHandler(handler)
