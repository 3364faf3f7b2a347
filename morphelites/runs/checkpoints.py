"""Checkpoints: ``checkpoints/<name>-<counter>.pkl`` written atomically, the newest few kept.

Plain pickle (torch tensors pickle too), so processes that do not use torch need not import it.
Checkpoints are the run's own files; do not load ones from untrusted sources.
"""

from __future__ import annotations

import pickle
import re
from pathlib import Path
from typing import Any

from morphelites.runs.files import atomic_write_bytes

__all__ = ["save_checkpoint", "list_checkpoints", "load_checkpoint", "CheckpointError"]


class CheckpointError(ValueError):
    """A checkpoint file is unreadable or not one of ours; the message names the file."""


def save_checkpoint(directory: Path, name: str, counter: int, state: dict[str, Any], keep: int = 3) -> Path:
    """Write ``state`` as ``<name>-<counter:08d>.pkl``; prune to the ``keep`` newest.

    The previous checkpoints stay intact if the write fails.
    """
    path = Path(directory) / f"{name}-{counter:08d}.pkl"
    atomic_write_bytes(path, pickle.dumps(state, protocol=pickle.HIGHEST_PROTOCOL))
    for old in list_checkpoints(directory, name)[:-keep] if keep > 0 else []:
        old.unlink(missing_ok=True)
    return path


def list_checkpoints(directory: Path, name: str) -> list[Path]:
    """Checkpoints of ``name`` in ``directory``, oldest first."""
    pattern = re.compile(rf"^{re.escape(name)}-(\d+)\.pkl$")
    found = [(int(m.group(1)), p) for p in Path(directory).glob(f"{name}-*.pkl") if (m := pattern.match(p.name))]
    return [p for _, p in sorted(found)]


def load_checkpoint(path: Path) -> dict[str, Any]:
    """Read a checkpoint; raises CheckpointError naming the file if it is truncated or foreign."""
    try:
        with open(path, "rb") as handle:
            state = pickle.load(handle)
    except (EOFError, pickle.UnpicklingError, OSError, ValueError, AttributeError, ImportError, IndexError) as error:
        raise CheckpointError(f"Checkpoint {path} is unreadable ({error}); it may be truncated or not a checkpoint.") from None
    if not isinstance(state, dict) or "format" not in state:
        raise CheckpointError(f"Checkpoint {path} is not a morphelites checkpoint (no 'format' field).")
    return state
