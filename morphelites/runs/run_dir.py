"""The run directory: its fixed file names, and the checks made before anything starts."""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import re
import shutil
import socket
import tempfile
import warnings
from pathlib import Path
from typing import Any

from morphelites.runs.files import atomic_write_json

__all__ = ["RunDirectory", "RunDirectoryError", "RunHold", "MIN_FREE_BYTES", "LOCK_NAME", "default_output_dir",
           "check_working_directory"]


def default_output_dir(shared: bool) -> str:
    """The run directory of ``morphelites train`` (and the trainer) when none is given, by mode."""
    return "map_elites_shared_ppo_results" if shared else "map_elites_results"


#: Refuse to start with less free space than this in the run directory's filesystem.
MIN_FREE_BYTES = 50 * 1024 * 1024
#: The file a running process locks (flock) so that no second process runs the same run.
LOCK_NAME = ".morphelites.lock"


class RunDirectoryError(ValueError):
    """The run directory cannot be used; the message says why and what to do."""


def check_working_directory() -> None:
    """Raise RunDirectoryError if the current directory no longer exists (removed from another
    shell): a relative path is read from it, and worker processes start from it (multiprocessing's
    spawn asks for it); a run with an absolute ``--output`` had written its files and then failed
    with a bare traceback (review)."""
    try:
        os.getcwd()
    except FileNotFoundError:
        raise RunDirectoryError("The current directory no longer exists (removed since this shell entered it); a run "
                                "reads relative paths from it and starts its worker processes from it. cd to an "
                                "existing directory and run the command again.") from None  # fmt: skip


class RunDirectory:
    """Paths of a run's files (names are part of the user contract, see DESIGN.md).

    Args:
        path: the directory; a leading ``~`` or ``~user`` is expanded (a Python ``output_dir="~/runs/a"``
            had made a folder named ``~`` in the working directory).
    """

    def __init__(self, path: Path | str) -> None:
        # os.path's, not Path's: ``~word`` of no such user stays as it is (Path.expanduser raised; review)
        self.path = Path(os.path.expanduser(os.fspath(path)))

    config = property(lambda self: self.path / "config.json")
    training_log = property(lambda self: self.path / "training.log")
    results = property(lambda self: self.path / "results.jsonl")
    archive_csv = property(lambda self: self.path / "archive.csv")
    archive_reevaluated = property(lambda self: self.path / "archive_reevaluated.csv")
    heatmap = property(lambda self: self.path / "heatmap.png")
    curves = property(lambda self: self.path / "curves.png")
    metrics = property(lambda self: self.path / "metrics.csv")
    reevaluations = property(lambda self: self.path / "reevaluations.csv")
    summary = property(lambda self: self.path / "summary.json")
    checkpoints = property(lambda self: self.path / "checkpoints")
    lock_file = property(lambda self: self.path / LOCK_NAME)  # held by the process running the run
    tensorboard = property(lambda self: self.path / "tensorboard")
    animations = property(lambda self: self.path / "animations")  # written by `morphelites animate`

    def check(self, resume: bool = False, resumable: bool = True, held: bool = False) -> "RunDirectory":
        """Make sure the directory can be used, writing nothing.

        Raises RunDirectoryError if the path is a file, is not writable, its disk is nearly full, it
        is non-empty and ``resume`` is off, ``resume`` is on and there is no run in it, or another
        process holds it (not asked when ``held``: this process holds it, see :meth:`prepare_held`).
        ``resumable`` says whether the command has ``--resume`` (its errors then suggest it).
        """
        try:
            return self._check(resume, resumable, held)
        except OSError as error:  # the path cannot be looked at: a folder on it not searchable, a name too long
            raise self._unusable(error) from None

    def _unusable(self, error: OSError) -> RunDirectoryError:
        return RunDirectoryError(f"Cannot use output directory {self.path}: {error.strerror or error}. Check the "
                                 f"path (a folder on it you may not enter?), or choose another --output.")  # fmt: skip

    def holds_run(self) -> bool:
        """Whether the directory holds a run (its config.json); RunDirectoryError if the path cannot
        be looked at."""
        try:
            return self.config.is_file()
        except OSError as error:
            raise self._unusable(error) from None

    def _check(self, resume: bool, resumable: bool, held: bool) -> "RunDirectory":
        path = self.path
        try:
            str(path).encode("utf-8")
        except UnicodeEncodeError:
            # bytes that are not UTF-8 (a Latin-1 name) reach Python as surrogates, which TensorBoard's
            # writer and Matplotlib's titles refuse: the run failed after writing config.json (review)
            shown = os.fsencode(path).decode("utf-8", "backslashreplace")
            raise RunDirectoryError(f"Output path {shown} holds bytes that are not UTF-8 text, which TensorBoard and "
                                    f"Matplotlib cannot write under. Choose another --output (or rename that folder) "
                                    f"with a UTF-8 name.") from None  # fmt: skip
        if path.exists() and not path.is_dir():
            raise RunDirectoryError(f"Output path {path} is a file, not a directory. Choose another --output.")
        holder = None if held else self.in_use_by()
        if holder is not None:
            raise self._in_use(holder, resumable)
        contents = _contents(path) if path.is_dir() else []
        holds_run = self.config.is_file()
        if resume and not holds_run:
            raise RunDirectoryError(
                f"Cannot resume: {path} holds no run (no config.json). Check --output, or drop --resume to start a new run "
                f"(in Python: output_dir, resume=False)."
            )
        other = self.recorded_command()
        if holds_run and other not in (None, "train"):  # only train runs resume
            raise RunDirectoryError(
                f"{path} holds a `morphelites {other}` run (config.json says so), which "
                f"{'cannot be resumed' if resume else 'is never overwritten'}. Choose another --output."
            )
        if contents and not resume:
            if not holds_run:
                # named: a job script's `> RUN_DIR/stdout.log` makes a file there before the run starts (review)
                shown = ", ".join(contents[:3]) + (f" and {len(contents) - 3} more" if len(contents) > 3 else "")
                raise RunDirectoryError(
                    f"Output directory {path} already holds files ({shown}) but no morphelites run (no config.json); "
                    f"it is never overwritten. Choose another --output, or move those files out (keep a job's own "
                    f"logs outside the run directory)."
                )
            fix = ("Use --resume to continue that run, or --output to choose another directory (in Python: resume=True, or "
                   "another output_dir)." if resumable else "Choose another --output.")  # fmt: skip
            raise RunDirectoryError(f"Output directory {path} already holds files of a run; it is never overwritten. {fix}")
        existing = path
        while not existing.exists():
            if existing.is_symlink():  # a dangling link (a purged scratch area): mkdir would say "File exists"
                raise RunDirectoryError(
                    f"Output directory {path} cannot be made: {existing} is a symbolic link to "
                    f"{os.readlink(existing)}, which does not exist. Create that directory, remove the link, or "
                    f"choose another --output."
                )
            existing = existing.parent
        if not existing.is_dir():
            raise RunDirectoryError(
                f"Output directory {path} cannot be made: {existing} is a file, not a directory. Choose another --output."
            )
        if not os.access(existing, os.W_OK | os.X_OK):
            raise RunDirectoryError(
                f"Cannot write to {existing} (needed for output directory {path}). Fix its permissions or choose "
                f"another --output."
            )
        # Files a run appends to (the others are replaced whole, which takes the directory's
        # permission only), and the folders it writes into
        appended = (self.training_log, self.results, self.metrics, self.reevaluations, self.lock_file)
        unwritable = [file.name for file in appended if file.exists() and not os.access(file, os.W_OK)]
        folders = (self.checkpoints, self.path / "tensorboard")  # a checkpoint that cannot be written is only logged
        unwritable += [f"{folder.name}/" for folder in folders if folder.is_dir() and not os.access(folder, os.W_OK | os.X_OK)]
        if unwritable:
            raise RunDirectoryError(
                f"Cannot write {', '.join(unwritable)} in {path} (read-only, or another user's). Give this user write "
                f"permission on them (chmod u+w, or chown), or resume as the user who made the run."
            )
        free = shutil.disk_usage(existing).free
        if free < MIN_FREE_BYTES:
            raise RunDirectoryError(
                f"Only {free / 2**20:.1f} MB free on the disk of {path}; a run needs at least "
                f"{MIN_FREE_BYTES / 2**20:.0f} MB. Free some space or choose another --output."
            )
        return self

    def in_use_by(self) -> str | None:
        """``pid N on HOST`` of the process that holds this run (see :meth:`hold`), or None."""
        try:
            with open(self.lock_file, "rb") as handle:
                try:
                    fcntl.flock(handle, fcntl.LOCK_SH | fcntl.LOCK_NB)
                except BlockingIOError:
                    return handle.read().decode("utf-8", "replace").strip() or "pid unknown"
                except OSError:  # a filesystem without locks: nothing to tell
                    return None
                fcntl.flock(handle, fcntl.LOCK_UN)
        except OSError:  # no lock file: never held
            return None
        return None

    def _in_use(self, holder: str, resumable: bool = True) -> RunDirectoryError:
        """The refusal of a run that ``holder`` runs; ``resumable``: whether the command refused can
        resume one (``morphelites ppo`` cannot: it is told to choose another ``--output``)."""
        # a run in another thread of this process (Python): not "another process" with this one's pid (review)
        who = ("another run in this process" if holder == f"pid {os.getpid()} on {socket.gethostname()}"
               else f"another morphelites process ({holder})")  # fmt: skip
        if not resumable:
            return RunDirectoryError(
                f"{self.path} is in use: {who} is running it, and a directory that holds a run is never overwritten. "
                f"Choose another --output.")  # fmt: skip
        return RunDirectoryError(
            f"{self.path} is in use: {who} is running it. Two runs on one run directory "
            f"would record evaluations twice; wait for that one to end (or stop it), then resume. If its host is "
            f"down (a crashed node can leave its lock held on a network filesystem), no process runs it: delete "
            f"{self.lock_file} and resume."
        )

    def hold(self, resumable: bool = True) -> "RunHold":
        """Lock the run for this process until :meth:`RunHold.release` (or its exit, however it
        ends: the kernel drops the lock of a dead process). RunDirectoryError if another process
        holds it. On a filesystem without locks (flock fails) nothing is held, and a warning says so."""
        try:
            handle = open(self.lock_file, "a+b")
        except OSError as error:  # made unwritable since the check
            raise self._unusable(error) from None
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.close()
            raise self._in_use(self.in_use_by() or "pid unknown", resumable) from None
        except OSError as error:
            handle.close()
            warnings.warn(f"{self.path}: the filesystem does not support locks ({error}); nothing stops a second "
                          f"process from running this run at the same time.", stacklevel=2)  # fmt: skip
            return RunHold(None)
        handle.truncate(0)
        handle.write(f"pid {os.getpid()} on {socket.gethostname()}".encode())
        handle.flush()
        return RunHold(handle)

    def recorded_command(self) -> str | None:
        """The ``command`` config.json records (``train``, ``ppo``); None if it says none or cannot be read."""
        try:
            command = json.loads(self.config.read_text(encoding="utf-8")).get("command")
        except (OSError, ValueError, AttributeError):  # missing, unreadable, not JSON, not an object
            return None
        return command if isinstance(command, str) else None

    def prepare(self, resume: bool = False, resumable: bool = True) -> "RunDirectory":
        """:meth:`check`, then create the directory and ``checkpoints/``."""
        self.check(resume, resumable)
        try:
            self.path.mkdir(parents=True, exist_ok=True)
            self.checkpoints.mkdir(exist_ok=True)
            with tempfile.TemporaryFile(dir=self.path):
                pass
        except OSError as error:
            raise RunDirectoryError(
                f"Cannot write to output directory {self.path}: {error.strerror or error}. Fix its permissions or "
                f"choose another --output."
            ) from None
        return self

    def prepare_held(self, resume: bool = False, resumable: bool = True) -> "RunHold":
        """:meth:`prepare`, :meth:`hold`, then :meth:`check` again under the lock; returns the hold
        (the caller releases it). The second check is what makes the lock worth having: two runs
        started onto one new directory at once (a job array) both pass the first, and the one that
        gets the lock second may get it only after the first has written, or even finished, its run
        there. RunDirectoryError as :meth:`check` and :meth:`hold` raise it, with nothing held."""
        self.prepare(resume, resumable)
        hold = self.hold(resumable)
        try:
            self.check(resume, resumable, held=True)
        except BaseException:
            hold.release()
            raise
        return hold

    def remove_write_leftovers(self) -> list[str]:
        """Delete the temp files that a kill mid-write (SIGKILL, a power cut: ``atomic_write_bytes``
        had no chance to clean up) left of the files a run writes whole, and return their names.
        Call it with the run held (:meth:`prepare_held`): no other process writes them then."""
        removed = []
        for entry in self.path.iterdir():
            if _WRITE_LEFTOVER.match(entry.name) and entry.is_file():
                entry.unlink(missing_ok=True)
                removed.append(entry.name)
        return sorted(removed)

    def remove_unstarted_run(self) -> None:
        """Remove what a start that failed before anything ran may have made (config.json,
        training.log, metrics.csv, tensorboard/), so that the same command can run again: only for
        a directory that held no run before (a new run's, or a ``morphelites ppo`` one's)."""
        for file in (self.config, self.training_log, self.metrics):
            with contextlib.suppress(OSError):
                file.unlink(missing_ok=True)
        shutil.rmtree(self.tensorboard, ignore_errors=True)

    def write_config(self, config: dict[str, Any]) -> None:
        atomic_write_json(self.config, config)

    def write_summary(self, summary: dict[str, Any]) -> None:
        atomic_write_json(self.summary, summary)

    def read_summary(self) -> dict[str, Any] | None:
        """summary.json as written at the end of the run's last session; None if there is none
        (the run never ended) or it cannot be read."""
        try:
            summary = json.loads(self.summary.read_text())
        except (OSError, ValueError):
            return None
        return summary if isinstance(summary, dict) else None

    def __fspath__(self) -> str:
        return os.fspath(self.path)


def _contents(path: Path) -> list[str]:
    """The names of the files and folders in the directory ``path``, sorted; an empty
    ``checkpoints/``, the lock file and the temp file of an unfinished write (``_WRITE_LEFTOVER``)
    left out: that is all a run stopped before it wrote config.json leaves (killed mid-write,
    ``atomic_write_bytes`` has no chance to remove its temp file)."""
    return sorted(
        entry.name for entry in path.iterdir()
        if entry.name != LOCK_NAME
        and not _WRITE_LEFTOVER.match(entry.name)
        and (entry.name != "checkpoints" or not entry.is_dir() or any(entry.iterdir()))
    )  # fmt: skip


#: The files of a run's directory written whole (``atomic_write_*``), and the temp files
#: (``.<name>.<mkstemp's random part>.tmp``) that a write of one killed midway leaves.
_WHOLE_FILES = ("config.json", "summary.json", "archive.csv", "archive_reevaluated.csv", "heatmap.png",
                "heatmap_reevaluated.png", "curves.png")  # fmt: skip
_WRITE_LEFTOVER = re.compile(rf"^\.(?:{'|'.join(map(re.escape, _WHOLE_FILES))})\.[A-Za-z0-9_]+\.tmp$")


class RunHold:
    """This process's lock on a run directory (None: the filesystem has no locks)."""

    def __init__(self, handle: Any) -> None:
        self._handle = handle

    @property
    def locked(self) -> bool:
        """Whether this process holds the run's lock (false where the filesystem has none)."""
        return self._handle is not None

    def release(self) -> None:
        """Let go of the run; safe to call twice."""
        if self._handle is not None:
            self._handle.close()  # closing the file drops its flock
            self._handle = None
