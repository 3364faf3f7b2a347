"""training.log's lines for what the shared-mode learner (or its supervisor) reports: restores,
deaths, stalls, skipped updates, the freeze for the final re-evaluation and failed checkpoints.

The reports are the dicts a shared backend's ``take_events`` returns (``SharedPPOSystem``'s or
``SerialSharedBackend``'s; ``"event"`` names the kind);
each becomes zero or more ``(logging level, text)`` lines.
"""

from __future__ import annotations

import logging
from typing import Any

from morphelites.parallel.pool import MAX_START_TRIES

__all__ = ["learner_event_lines"]


def learner_event_lines(message: dict[str, Any]) -> list[tuple[int, str]]:
    """The ``(level, text)`` lines of training.log for one learner report; none for a kind it
    does not know."""
    kind = message.get("event")
    if kind == "restored":
        return _restored_lines(message)
    if kind == "learner_died":
        return [(logging.ERROR, f"The learner process died (exit code {message['exit_code']}); restarting it from its "
                                f"newest checkpoint (death {message['in_row']} in a row of at most {message['allowed']} "
                                f"allowed by training.max_learner_restarts).")]  # fmt: skip
    if kind == "learner_start_failed":
        return [(logging.ERROR, f"The replacement learner could not be started ({message['error']}; try "
                                f"{message.get('tries', 1)} of {MAX_START_TRIES}); it is tried again shortly.")]  # fmt: skip
    if kind == "learner_stalled":
        return [(logging.ERROR, f"The learner stalled: no heartbeat for {message['seconds']:.0f} s (training.ipc_timeout "
                                f"is {message['ipc_timeout']:.0f} s); killed it.")]  # fmt: skip
    if kind == "skipped_update":
        return [(logging.WARNING, f"Learner update {message['update']} skipped: {message['reason']} "
                                  f"({message['skipped_updates']} skipped so far). The published policy is unchanged "
                                  f"and finite.")]  # fmt: skip
    if kind == "frozen":
        untrained = message.get("untrained_transitions", 0)
        return [(logging.INFO, f"Learner stopped training for the final re-evaluation at policy version "
                               f"{message['version']} ({message['updates']} updates)"
                               + (f"; {untrained} transitions, less than a batch, were left untrained" if untrained else "")
                               + ".")]  # fmt: skip
    if kind == "checkpoint_failed" and message.get("final"):  # the run is over: no advice about a learner dying
        return [(logging.ERROR, f"The learner's final checkpoint (update {message['updates']}) could not be written "
                                f"({message['error']}); the previous learner checkpoint is intact, and --resume "
                                f"continues from it without the updates made since.")]  # fmt: skip
    if kind == "checkpoint_failed":
        return [(logging.ERROR, f"Learner checkpoint at update {message['updates']} could not be written "
                                f"({message['error']}); the previous learner checkpoint is intact. Free disk space: if "
                                f"the learner dies now, updates since then are lost.")]  # fmt: skip
    return []


def _restored_lines(message: dict[str, Any]) -> list[tuple[int, str]]:
    """A (re)started learner's report of the checkpoint it restored, or that it had none."""
    lines = [(logging.WARNING, f"Learner checkpoint skipped: {reason}") for reason in message.get("skipped", [])]
    lines += [(logging.WARNING, f"Learner checkpoint restored: {note}") for note in message.get("notes", [])]
    lost = message.get("lost_updates", 0)
    published = message.get("published_version", message["version"])
    if message.get("checkpoint"):
        lines.append((logging.INFO, f"Learner restored from {message['checkpoint']} (policy version {message['version']}, "
                                    f"{message.get('updates', 0)} updates)."
                                    + (f" Lost: {lost} update(s) made after that checkpoint." if lost else "")
                                    + (f" Its weights are published as version {published}, past the versions other "
                                       f"weights were published as (by a learner it replaces, or before the run stopped)."
                                       if published != message["version"] else "")))  # fmt: skip
    else:
        lines.append((logging.WARNING, "Learner started from a fresh policy (no usable learner checkpoint)"
                                       + (f"; lost: {lost} update(s)" if lost else "") + "."))  # fmt: skip
    return lines
