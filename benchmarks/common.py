"""Helpers shared by the benchmark scripts: their command line (the output directory, checked
numbers), the machine description, and JSON output."""

from __future__ import annotations

import argparse
import datetime as _dt
import functools
import json
import math
import os
import platform
import subprocess
import tempfile
from pathlib import Path
from typing import Any, Callable, Hashable, Sequence

from morphelites.config import MAX_SEED

#: The published results (README's tables are rendered from them): ``--out``'s default, so that
#: rerunning a script as it is regenerates its committed files.
RESULTS = Path(__file__).resolve().parent / "results"
REPO = Path(__file__).resolve().parent.parent


def int_in_range(low: int, high: int | None = None, why: str = "") -> Callable[[str], int]:
    """An argparse ``type``: a whole number in [low, high] (no upper bound for None). Anything else
    is refused as argparse refuses a bad option (exit 2, ``argument --NAME: ...``), with the range
    to give and ``why`` (e.g. " (the first segment only starts the clock)")."""
    span = f"of at least {low}" if high is None else f"from {low} to {high}"

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a whole number; give one {span}{why}") from None
        if value < low or (high is not None and value > high):
            raise argparse.ArgumentTypeError(f"{value} is out of range; give a whole number {span}{why}")
        return value

    return parse


#: Counts, budgets, workers, repeats and threads: 1 or more.
positive_int = int_in_range(1)
#: Seeds: numpy refuses negative ones, and every library takes 32 bits (``morphelites.config.MAX_SEED``).
seed_int = int_in_range(0, MAX_SEED)


def positive_float(text: str) -> float:
    """An argparse ``type``: a finite number above 0 (e.g. seconds); anything else is refused with
    what to give."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number; give a finite number above 0") from None
    if not math.isfinite(value) or value <= 0:
        raise argparse.ArgumentTypeError(f"{value:g} is out of range; give a finite number above 0")
    return value


def add_output_option(parser: argparse.ArgumentParser) -> None:
    """``--out DIR``, the one output option of every script that writes results."""
    parser.add_argument("--out", type=Path, default=RESULTS, metavar="DIR",
                        help="directory to write the results into (JSON, and PNG where the script plots), and "
                             "from which a script that adds to its file reads the earlier one; created if missing "
                             "(default: benchmarks/results, the published figures: give another for a check run)")


def parse_args(parser: argparse.ArgumentParser, argv: Sequence[str] | None = None) -> argparse.Namespace:
    """``parser``'s arguments, with ``--out`` checked before any work: a directory that cannot be
    written ends the script now (exit 2, as a bad option does), not after hours of runs."""
    args = parser.parse_args(argv)
    try:
        check_writable(args.out)
    except OSError as error:
        parser.error(f"argument --out: cannot write into {args.out} ({error.strerror or error}); "
                     "give a directory you can write to")  # fmt: skip
    return args


def check_writable(directory: Path) -> None:
    """Create ``directory`` if missing, then write and remove a probe file in it; OSError if either fails."""
    directory.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile(dir=directory, prefix=".write-probe-"):
        pass  # removed on close


def code_version() -> str | None:
    """The git commit of the code measured (short hash), with ``+changes`` when the package or
    the benchmarks differ from it; None outside a git checkout."""
    try:
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True, text=True,
                                check=True).stdout.strip()  # fmt: skip
        changed = subprocess.run(["git", "status", "--porcelain", "--", "morphelites", "benchmarks/*.py"], cwd=REPO,
                                 capture_output=True, text=True, check=True).stdout.strip()  # fmt: skip
    except (OSError, subprocess.CalledProcessError):
        return None
    return commit + ("+changes" if changed else "")


@functools.lru_cache(maxsize=None)
def _machine_at_start() -> tuple[tuple[str, Any], ...]:
    return tuple(_describe_machine().items())


def machine() -> dict[str, Any]:
    """What the figures were measured on, and when and on what code: taken at this process's first
    call (a benchmark's start), so that commits made while it runs do not relabel its results."""
    return dict(_machine_at_start())


def _describe_machine() -> dict[str, Any]:
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as handle:
            for line in handle:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    import psutil

    from morphelites.cgroup_limits import cgroup_memory_limit
    from morphelites.config import usable_cores

    # The cores the benchmark may use (its affinity, a container's quota), as the runs count them:
    # a benchmark under taskset or a job's allocation was labelled with the whole node's (review).
    usable, node = usable_cores(), os.cpu_count()
    # The same for memory: a container's or a job's limit, not the node's (review).
    node_memory = psutil.virtual_memory().total
    memory_gb, node_memory_gb = (round(min(node_memory, cgroup_memory_limit() or node_memory) / 2**30, 1),
                                 round(node_memory / 2**30, 1))  # fmt: skip
    return {
        "cpu": cpu,
        "cores": usable,
        **({"node_cores": node} if node != usable else {}),
        "memory_gb": memory_gb,
        **({"node_memory_gb": node_memory_gb} if node_memory_gb != memory_gb else {}),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "date": _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "commit": code_version(),
    }


def write_json(name: str, data: dict[str, Any], out: Path = RESULTS) -> Path:
    """Write ``<out>/<name>.json`` (with the machine description added) and return its path.
    ``out`` is the script's ``--out``; the default, the published results, is for
    normaliser_padding.py, which has no ``--out`` and writes only when told to (``--record``)."""
    from morphelites.runs.files import atomic_write_json

    out.mkdir(parents=True, exist_ok=True)
    path = out / f"{name}.json"
    atomic_write_json(path, {"machine": machine(), **data})
    print(f"wrote {path}")
    return path


def read_results(path: Path) -> dict[str, Any]:
    """The results file at ``path`` (``{}`` where there is none)."""
    return json.loads(path.read_text()) if path.exists() else {}


def comparable_or_empty(previous: dict[str, Any], same: dict[str, Any], path: Path) -> dict[str, Any]:
    """``previous`` (the results file at ``path``) as a rerun adds its rows to it, or ``{}`` where
    its ``same`` fields (e.g. ``{"workers": 2}``) differ from the rerun's: their rows would not
    compare, so the rerun starts the file again, and says so."""
    differing = {key: previous.get(key) for key, value in same.items() if previous.get(key) != value}
    if previous and differing:
        print(f"{path} holds runs with other {', '.join(f'{k} ({v})' for k, v in differing.items())}: this run starts "
              "the file again", flush=True)  # fmt: skip
        return {}
    return previous


def merge_rerun(previous: dict[str, Any], new_rows: list[dict[str, Any]], key: Callable[[dict[str, Any]], Hashable],
                elapsed_s: float) -> tuple[list[dict[str, Any]], float]:
    """The rows of a results file after a partial rerun, and its script time (s).

    ``previous`` is the file as it was (its ``rows`` and ``wall_s``), ``new_rows`` the runs this
    session has finished, ``key`` what makes two rows the same run (e.g. seed and mode). An earlier
    row goes only once its rerun has finished, so a rerun that is cut off keeps every row it did
    not get to. The time is the earlier total less the replaced rows' wall times (the earlier
    sessions' probes and plotting stay counted; 0 once nothing earlier is kept), plus
    ``elapsed_s`` of this session. A kept row without a ``machine`` of its own takes the file's,
    which was its session's or a later one's.
    """
    replaced = {key(row) for row in new_rows}
    earlier = previous.get("rows", [])
    # rows of files written before rows recorded their session: the file's machine is theirs (the
    # file is about to be written with this session's)
    kept = [{"machine": previous["machine"], **row} if "machine" in previous else row
            for row in earlier if key(row) not in replaced]  # fmt: skip
    gone = sum(row.get("wall_s", 0.0) for row in earlier if key(row) in replaced)
    earlier_s = max(0.0, previous.get("wall_s", 0.0) - gone) if kept else 0.0
    return kept + new_rows, earlier_s + elapsed_s
