"""Checkpoints: ``checkpoints/<name>-<counter>.pkl`` written atomically, the newest few kept.

Plain pickle (torch tensors pickle too), so processes that do not use torch need not import it.
Checkpoints are the run's own files; do not load ones from untrusted sources.

Every checkpoint is a dict with a ``format`` field, ``morphelites-<kind>-<version>`` (e.g.
``morphelites-evolution-1``). :func:`load_checkpoint` turns every way a file can be wrong
(unreadable, truncated, empty, random bytes, not a dict, another kind or version of checkpoint,
missing fields its kind always has, written for another body space or policy shape) into a
:class:`CheckpointError` whose message names the file, says what is wrong and what to do; callers
that resume skip such files and fall back to the newest one that is intact and fits.
"""

from __future__ import annotations

import pickle
import re
from pathlib import Path
from typing import Any, Callable, Optional, Sequence

from morphelites.runs.files import atomic_write_bytes

__all__ = ["save_checkpoint", "list_checkpoints", "checkpoint_counter", "load_checkpoint", "newest_usable", "matching", "all_of",
           "CheckpointError", "CheckpointCheck"]

#: A check on a loaded checkpoint's contents: returns what is wrong with it, or None if it fits.
CheckpointCheck = Callable[[dict[str, Any]], Optional[str]]

_FORMAT = re.compile(r"^morphelites-(?P<kind>[a-z_]+)-(?P<version>\d+)$")


class CheckpointError(ValueError):
    """A checkpoint file is unreadable, foreign or does not fit the run; the message names the file."""


def save_checkpoint(directory: Path, name: str, counter: int, state: dict[str, Any], keep: int = 3) -> Path:
    """Write ``state`` as ``<name>-<counter:08d>.pkl``; prune to the ``keep`` newest, this one
    always among them (files with higher counters, e.g. a corrupt checkpoint that a resume skipped,
    must not get the one just written deleted).

    The previous checkpoints stay intact if the write fails. Temp files of ``name`` checkpoints
    that an earlier writer left behind (killed mid-write: SIGKILL skips the cleanup of
    :func:`atomic_write_bytes`) are deleted first; each is a whole checkpoint's size. Only one
    process writes a given ``name`` at a time, so none of them is still being written.
    """
    for leftover in Path(directory).glob(f".{name}-*.pkl.*.tmp"):
        leftover.unlink(missing_ok=True)
    path = Path(directory) / f"{name}-{counter:08d}.pkl"
    atomic_write_bytes(path, pickle.dumps(state, protocol=pickle.HIGHEST_PROTOCOL))
    if keep > 0:
        others = [other for other in list_checkpoints(directory, name) if other != path]
        for old in others[: max(0, len(others) - (keep - 1))]:
            old.unlink(missing_ok=True)
    return path


def list_checkpoints(directory: Path, name: str) -> list[Path]:
    """Checkpoints of ``name`` in ``directory``, oldest first."""
    pattern = re.compile(rf"^{re.escape(name)}-(\d+)\.pkl$")
    found = [(int(m.group(1)), p) for p in Path(directory).glob(f"{name}-*.pkl") if (m := pattern.match(p.name))]
    return [p for _, p in sorted(found)]


def checkpoint_counter(path: Path) -> int:
    """The counter in a checkpoint's name (``evolution-00000042.pkl`` -> 42), as
    :func:`list_checkpoints` orders them."""
    return int(Path(path).stem.rsplit("-", 1)[1])


def load_checkpoint(
    path: Path, expected_format: str | None = None, check: CheckpointCheck | None = None, required: Sequence[str] = (),
) -> dict[str, Any]:
    """Read and validate a checkpoint.

    Args:
        path: the checkpoint file.
        expected_format: the ``format`` it must have (e.g. ``"morphelites-evolution-1"``); None
            accepts any morphelites checkpoint.
        check: a further test of the contents (see :func:`matching`): returns what is wrong, or None.
        required: top-level fields the caller reads; a checkpoint lacking any of them (edited by
            hand, or written by another tool under our format name) is refused before it is used.

    Raises:
        CheckpointError: naming the file, what is wrong with it and what to do about it.
    """
    path = Path(path)
    remedy = f"Move it out of {path.parent} (or delete it); --resume then falls back to the newest intact checkpoint."
    try:
        size = path.stat().st_size
        with open(path, "rb") as handle:
            state = pickle.load(handle)
    except OSError as error:
        raise CheckpointError(f"Checkpoint {path} cannot be read ({type(error).__name__}: {error}). Check the file "
                              f"and its permissions. {remedy}") from None  # fmt: skip
    except Exception as error:  # random bytes make pickle raise almost anything; none of it is a checkpoint
        what = "is empty (0 bytes)" if size == 0 else f"is unreadable ({type(error).__name__}: {error})"
        raise CheckpointError(f"Checkpoint {path} {what}: it is truncated (a crash or a full disk while it was "
                              f"written or copied) or not a checkpoint at all. {remedy}") from None  # fmt: skip
    if not isinstance(state, dict) or "format" not in state:
        held = "a dict without a 'format' field" if isinstance(state, dict) else f"a {type(state).__name__}, not a dict"
        raise CheckpointError(f"Checkpoint {path} is not a morphelites checkpoint (it holds {held}). {remedy}")
    found = state["format"]
    if expected_format is not None and found != expected_format:
        want, got = _FORMAT.match(expected_format), _FORMAT.match(found) if isinstance(found, str) else None
        if got is None or want is None:
            what = f"is not a morphelites checkpoint (format {found!r}; expected {expected_format!r})"
        elif got["kind"] != want["kind"]:
            what = (f"is {_a(got['kind'])} checkpoint (format {found!r}), not {_a(want['kind'])} checkpoint "
                    f"({expected_format!r}); it was copied or renamed into the wrong place")  # fmt: skip
        else:
            what = (f"was written by another version of morphelites (format {found!r}; this version reads "
                    f"{expected_format!r})")  # fmt: skip
            remedy = f"Resume with the morphelites version that wrote it, or: {remedy[0].lower()}{remedy[1:]}"
        raise CheckpointError(f"Checkpoint {path} {what}. {remedy}")
    missing = [name for name in required if name not in state]
    if missing:
        fields = ", ".join(repr(name) for name in missing)
        raise CheckpointError(f"Checkpoint {path} is incomplete: it has no {fields} field{'s' if len(missing) > 1 else ''}, "
                              f"which every {found!r} checkpoint holds; it was edited, or written by something other "
                              f"than morphelites. {remedy}")  # fmt: skip
    if check is not None:
        try:
            problem = check(state)
        except (KeyError, TypeError, ValueError, AttributeError, IndexError) as error:
            problem = f"its contents are malformed ({type(error).__name__}: {error})"
        if problem:
            raise CheckpointError(f"Checkpoint {path} does not fit this run: {problem}. It belongs to another run "
                                  f"(or another configuration), or was edited. {remedy}")  # fmt: skip
    return state


def newest_usable(
    directory: Path, name: str, expected_format: str | None = None, check: CheckpointCheck | None = None,
    on_skip: Callable[[CheckpointError, int], None] | None = None, required: Sequence[str] = (),
) -> tuple[Path, dict[str, Any]] | None:
    """The newest checkpoint of ``name`` in ``directory`` that loads, has ``expected_format``, holds
    the ``required`` fields and passes ``check`` (see :func:`load_checkpoint`), as ``(path, state)``;
    None if there is none.

    ``on_skip(error, older_left)`` is called for every checkpoint passed over on the way.
    """
    paths = list(reversed(list_checkpoints(directory, name)))
    for index, path in enumerate(paths):
        try:
            return path, load_checkpoint(path, expected_format, check, required)
        except CheckpointError as error:
            if on_skip is not None:
                on_skip(error, len(paths) - index - 1)
    return None


def matching(what: str, expected: Any, *keys: str, ignore: Sequence[str] = ()) -> CheckpointCheck:
    """A ``check`` for :func:`load_checkpoint`: ``state[keys[0]][keys[1]]...`` must equal ``expected``.

    Tuples and lists compare alike. On a difference the check returns, e.g., ``"its body space
    differs from this run's (max_links: checkpoint 4, this run 6)"``.

    Args:
        what: what the compared value is, for the message ("body space", "policy shape").
        expected: the run's value.
        keys: where the value lies in the checkpoint.
        ignore: keys of a dict value left out of the comparison on both sides.
    """
    where = ".".join(keys)

    def without_ignored(value: Any) -> Any:
        return {k: v for k, v in value.items() if k not in ignore} if isinstance(value, dict) else value

    def check(state: dict[str, Any]) -> str | None:
        found: Any = state
        for key in keys:
            if not isinstance(found, dict) or key not in found:
                return f"it has no {where}, so its {what} cannot be checked"
            found = found[key]
        differences = _differences(_plain(without_ignored(found)), _plain(without_ignored(expected)))
        return f"its {what} differs from this run's ({'; '.join(differences)})" if differences else None

    return check


def all_of(*checks: CheckpointCheck) -> CheckpointCheck:
    """A ``check`` that runs ``checks`` in order and returns the first problem found, or None."""

    def check(state: dict[str, Any]) -> str | None:
        return next((problem for c in checks if (problem := c(state))), None)

    return check


def _a(word: str) -> str:
    """``word`` with its indefinite article: "an evolution", "a learner"."""
    return f"{'an' if word[:1] in 'aeiou' else 'a'} {word}"


def _plain(value: Any) -> Any:
    """``value`` with tuples as lists, recursively (pickled and JSON-loaded values compare alike)."""
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


def _differences(found: Any, expected: Any) -> list[str]:
    """Readable differences between a checkpoint's value and the run's (per key for dicts)."""

    def short(value: Any) -> str:
        if isinstance(value, list) and len(value) > 8:
            return f"{len(value)} values"
        text = repr(value)
        return text if len(text) <= 60 else text[:57] + "..."

    if isinstance(found, dict) and isinstance(expected, dict):
        return [f"{key}: checkpoint {short(found.get(key, '<missing>'))}, this run {short(expected.get(key, '<missing>'))}"
                for key in sorted(set(found) | set(expected), key=str) if found.get(key, _MISSING) != expected.get(key, _MISSING)]  # fmt: skip
    return [] if found == expected else [f"checkpoint {short(found)}, this run {short(expected)}"]


_MISSING = object()
