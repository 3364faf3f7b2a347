"""Scalar metrics: one CSV row per record (``metrics.csv``) and, optionally, TensorBoard scalars."""

from __future__ import annotations

import csv
import io
import math
import time
from pathlib import Path
from typing import Any, Iterator, Sequence

import numpy as np

from morphelites.runs.files import append_line, truncate_file

__all__ = ["MetricsWriter", "read_metric_rows", "iter_metric_rows", "last_metric_row"]


class MetricsWriter:
    """Append records with a fixed set of ``columns`` to a CSV file (header written once).

    Missing values are left empty; keys outside ``columns`` are ignored in the CSV but still sent
    to TensorBoard. Each row is flushed and fsynced, so a crash loses at most the row being written.

    Args:
        path: the CSV file (appended to if it exists, e.g. on resume).
        columns: CSV columns, in order; a file that exists keeps the columns of its header, and
            values of other columns go to TensorBoard only.
        tensorboard_dir: where to write TensorBoard events, or None for no TensorBoard.
        step_key: the record key used as the TensorBoard step.
    """

    def __init__(
        self, path: Path, columns: Sequence[str], tensorboard_dir: Path | None = None, step_key: str = "env_steps"
    ) -> None:
        self.path = Path(path)
        self.columns = list(columns)
        self.step_key = step_key
        _cut_torn_last_row(self.path)
        if not self.path.exists() or self.path.stat().st_size == 0:
            append_line(self.path, ",".join(self.columns))
        else:  # rows go on under the file's header (a run started by a version with other columns)
            with open(self.path, newline="") as handle:
                self.columns = next(csv.reader(handle), None) or self.columns
        self._tb: Any = None
        self._tb_dir = tensorboard_dir  # the events file is opened by the first record, so a writer that
        # writes nothing (a --resume with nothing left to do) leaves no empty one behind
        # Imported now, not at the first record: a Ctrl-C that lands inside a first import leaves a
        # half-initialised module behind (see viz.load_drawing_modules).
        self._tb_types = tensorboard_modules() if tensorboard_dir is not None else None

    def write(self, record: dict[str, Any]) -> None:
        buffer = io.StringIO()
        csv.writer(buffer, lineterminator="\n").writerow([_cell(record.get(c)) for c in self.columns])  # one line ending, as the header
        append_line(self.path, buffer.getvalue())
        if self._tb is None and self._tb_dir is not None and self._tb_types is not None:
            Path(self._tb_dir).mkdir(parents=True, exist_ok=True)
            self._tb = self._tb_types[0](str(self._tb_dir))
        if self._tb is not None and self._tb_types is not None:
            _, Event, Summary = self._tb_types
            values = [
                Summary.Value(tag=key, simple_value=float(value))
                for key, value in record.items()
                if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
            ]
            step = int(record.get(self.step_key, 0) or 0)
            self._tb.add_event(Event(wall_time=time.time(), step=step, summary=Summary(value=values)))
            self._tb.flush()

    def close(self) -> None:
        """Close TensorBoard; safe to call twice."""
        if self._tb is not None:
            self._tb.close()
            self._tb = None
        self._tb_dir = None


def tensorboard_modules() -> tuple[Any, Any, Any]:
    """TensorBoard's own event writer and protos (EventFileWriter, Event, Summary): no torch
    import in processes that do not train."""
    from tensorboard.compat.proto.event_pb2 import Event
    from tensorboard.compat.proto.summary_pb2 import Summary
    from tensorboard.summary.writer.event_file_writer import EventFileWriter

    return EventFileWriter, Event, Summary


def read_metric_rows(path: Path, most: int | None = None) -> list[dict[str, str]]:
    """The whole rows of a metrics CSV as written, cells as strings; [] if the file does not exist.
    With ``most``, a file of more rows gives that many, evenly spaced, the first and the last
    among them (the rows ``viz.thinned`` keeps), and only those are made into dicts.

    A last row without its newline (torn by a crash mid-write) is left out, as its writer cuts it
    (:func:`_cut_torn_last_row`) when the run goes on: a number cut short must not be counted.
    Blank lines are passed over, as ``csv.DictReader`` does; a row of too few or too many cells
    is made into a dict as it does too."""
    text = _whole_rows(path)
    rows = sum(1 for row in _data_rows(text))
    if most is None or rows <= most:
        return list(_dicts(text))
    kept = set(np.linspace(0, rows - 1, most).round().astype(int).tolist())
    return [row for i, row in enumerate(_dicts(text)) if i in kept]


def iter_metric_rows(path: Path) -> Iterator[dict[str, str]]:
    """The rows of :func:`read_metric_rows`, one at a time (none kept: a long run has 100,000s)."""
    return _dicts(_whole_rows(path))


def last_metric_row(path: Path) -> dict[str, str] | None:
    """The last whole row of a metrics CSV (as :func:`read_metric_rows` would give it), or None:
    read from the header and that line alone (blank lines after it passed over)."""
    text = _whole_rows(path).rstrip("\r\n")
    header_end = text.find("\n") + 1
    if header_end == 0:  # a header alone, or nothing
        return None
    last = text[text.rfind("\n") + 1:]
    return next(csv.DictReader(io.StringIO(text[:header_end] + last + "\n", newline="")), None)


def _dicts(text: str) -> Iterator[dict[str, Any]]:
    """The non-blank rows of a metrics CSV's text as dicts (as ``csv.DictReader`` makes them)."""
    header = next(csv.reader(io.StringIO(text, newline="")), None)
    return (_row_dict(header, row) for row in _data_rows(text)) if header is not None else iter(())


def _data_rows(text: str) -> Iterator[list[str]]:
    """The non-blank rows after the header of a metrics CSV's text, as lists of cells."""
    rows = csv.reader(io.StringIO(text, newline=""))
    next(rows, None)
    return (row for row in rows if row)


def _row_dict(header: list[str], row: list[str]) -> dict[str, Any]:
    """A row as ``csv.DictReader`` makes it: missing cells None, extra cells a list under None."""
    values: dict[Any, Any] = dict(zip(header, row))
    if len(row) < len(header):
        values.update((key, None) for key in header[len(row):])
    elif len(row) > len(header):
        values[None] = row[len(header):]
    return values


def _whole_rows(path: Path) -> str:
    """A metrics CSV's text up to its last line end ("" if the file does not exist)."""
    if not Path(path).exists():
        return ""
    data = Path(path).read_bytes()
    return data[: data.rfind(b"\n") + 1].decode("utf-8")


def _cut_torn_last_row(path: Path) -> None:
    """Remove a last row without its newline (a crash mid-write), so that the next row appended
    on resume starts a line of its own instead of merging with it."""
    if not path.exists():
        return
    data = path.read_bytes()
    if data and not data.endswith(b"\n"):
        truncate_file(path, data.rfind(b"\n") + 1)


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        if not math.isfinite(value):
            return ""
        if value.is_integer() and abs(value) < 2**53:
            # Counters (samples, transitions) arrive as floats; a --resume continues them from
            # this file, so they are written exactly, not to 6 significant digits.
            return str(int(value))
        return f"{value:.6g}"
    return str(value)
