"""Run directories: the only place that builds paths and writes files."""

from morphelites.runs.files import append_line, atomic_write_bytes, atomic_write_json, atomic_write_text
from morphelites.runs.metrics import MetricsWriter, read_metric_rows
from morphelites.runs.run_dir import RunDirectory, RunDirectoryError
from morphelites.runs.training_log import open_training_log

__all__ = [
    "RunDirectory",
    "RunDirectoryError",
    "MetricsWriter",
    "open_training_log",
    "atomic_write_bytes",
    "atomic_write_json",
    "atomic_write_text",
    "append_line",
    "read_metric_rows",
]
