"""MAPElitesEvolutionTrainer: steady-state MAP-Elites over bodies, evaluated by worker processes.

Steady state, not generations: every worker gets its next individual as soon as it returns a
result, with a parent drawn from the archive as it is at that moment, and every result is
inserted with ``archive.add`` on arrival. A generational ask/tell over a batch would make each
worker wait for the slowest body of the batch (training time differs with joint count and with
how fast episodes end); here no worker idles while evaluations remain to be done.

With several workers that makes a run depend on timing: which results have arrived decides the
parents drawn. ``evolution.parent_lag`` N >= 1 trades a little idle time for a run that a seed
fixes: parents are drawn from a second archive that takes results in id order, individual k's
from exactly those of ids 0 .. k-N-1; a worker waits when one of them is late.

Crash safety: results.jsonl is the record of what was evaluated (one fsynced line each); a
checkpoint adds what results.jsonl cannot say (variation RNG, id counter, individuals in flight).
Resuming replays results.jsonl into a fresh archive, reissues the individuals that were in
flight, and goes on to the requested total.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import inspect
import math
import shlex
import signal
import threading
import time
from typing import Any, Callable, Iterator

from morphelites import early_interrupt
from morphelites.config import ModelConfig, Settings, TrainingConfig, section_from_dict
from morphelites.envs.reach import ObservationLayout
from morphelites.evolution.archive import BodyArchive
from morphelites.evolution.measures import compute_measures, measure_specs
from morphelites.evolution.learner_events import learner_event_lines
from morphelites.evolution.reevaluation import EvaluationFailed, ReevaluationRound
from morphelites.evolution.resume import (CHECKPOINT_FIELDS, CHECKPOINT_FORMAT, as_figure, drawn_after, nothing_to_do_line,
                                          read_recorded_totals, unloadable, unreported_steps)
from morphelites.evolution.run_plan import settings_warnings
from morphelites.evolution.variation import Variation
from morphelites.individual import Individual, IndividualResult
from morphelites.morphology import BodySpace
from morphelites.parallel.learner import COUNTER_COLUMNS
from morphelites.parallel.pool import (STOP_SIGNALS, PoolEvent, WorkerCrashLoop, restore_process_title,
                                       set_process_title, stop_signal_name, stop_signals_to_handle)
from morphelites.parallel.supervisor import (SESSION_COUNTERS, EvaluationBackend, IndependentBackend, LearnerDied,
                                             SerialSharedBackend, SharedBackend, SharedPPOSystem, check_shared_memory)
from morphelites.parallel.shm import (SHM_DIR, leftover_blocks, leftover_bytes, new_run_id, remove_leftover_blocks,
                                     run_block_prefix)
from morphelites.runs.memory import ProcessTreeMemory, memory_metrics
from morphelites.runs.progress import Progress
from morphelites.runs.recorder import EVOLUTION_METRICS, LATER_RESULT_FIGURES, RESULT_FIGURES, SHARED_METRICS, EvolutionRecorder
from morphelites.runs.run_dir import RunDirectory, RunDirectoryError, check_working_directory, default_output_dir
from morphelites.runs.stored_run import check_resume, python_resume_settings, sessions_started, stored_run, stored_run_id
from morphelites.seeding import Stream, stream_seed
from morphelites.viz import MAX_CURVE_POINTS, heatmap_png, load_drawing_modules, progress_curves_png

__all__ = ["MAPElitesEvolutionTrainer", "EXIT_CODES"]

#: Exit codes by how a run ended.
EXIT_CODES = {"completed": 0, "failed": 1, "interrupted": 130, "terminated": 143}
#: Deaths (or stalls) of the worker evaluating one individual, while other evaluations finish or
#: go on without a death, that stop the run: its body likely crashes the simulator or takes too
#: much memory, and would be issued again forever. (Workers that all die, whatever they are
#: given, are the pool's crash loop instead; with nothing to tell the two apart yet, another body
#: goes first: ``_another_body_first``.)
MAX_DEATHS_PER_INDIVIDUAL = 3
#: Backend figures that count things (the rest are means, rates, shares and MB): summary.json
#: writes them as whole numbers, not as the floats the backends report.
_WHOLE_NUMBER_STATS = frozenset({*SESSION_COUNTERS, *COUNTER_COLUMNS.values(), "policy_version", "max_policy_lag",
                                 "buffer_transitions", "buffer_capacity"})  # fmt: skip


def _on_main_thread() -> bool:
    """Whether this is the main thread, the only one Python lets set signal handlers."""
    return threading.current_thread() is threading.main_thread()


class RunWriteFailed(Exception):
    """Recording an evaluation failed with ``error`` (an OSError: disk full, directory gone).

    ``recorded``: whether the individual's results.jsonl line was written before the failure (its
    archive insert then happened too); if not, neither happened and it is still to be evaluated.
    """

    def __init__(self, error: OSError, recorded: bool = False) -> None:
        super().__init__(str(error))
        self.error = error
        self.recorded = recorded


#: Seconds between the progress and shared_ppo lines of training.log.
_SUMMARY_EVERY_S = 5.0
#: curves.png is redrawn with the heatmap, but at most this often (each drawing takes ~0.5 s of the
#: main process early in a run), and always at the end of a run.
_CURVES_EVERY_S = 30.0
#: ... and at most once in this many times the last drawing took: it reads the whole metrics.csv,
#: seconds at 200,000 rows, in which the main process issues nothing (review), so the drawings
#: take at most ~2% of its time however long the run.
_CURVES_TIME_FACTOR = 50.0


def _summary_due(now: float, last_at: float | None, last_count: int, count: int, final: bool) -> bool:
    """Whether training.log's progress lines are written now (``now``, ``last_at``: monotonic s;
    ``last_count``: evaluations the last lines showed, ``count``: evaluations done).

    The first ones at once; then every ``_SUMMARY_EVERY_S`` s; and ``final``, once more when the
    last evaluation is in, unless the last lines, less than 0.5 s old, already showed every
    evaluation (a line that shows fewer must not be the run's last word on its progress, however
    recent).
    """
    if last_at is None:
        return True
    if final:
        return count != last_count or now - last_at >= 0.5
    return now - last_at >= _SUMMARY_EVERY_S


def _noting_given_arguments(init: Callable[..., None]) -> Callable[..., None]:
    """Wraps ``__init__`` so that it knows which arguments the caller gave (in ``self._given``),
    a default value included, while its signature (``help``, ``inspect``) stays the one written."""
    signature = inspect.signature(init)

    @functools.wraps(init)
    def wrapper(self: Any, *args: Any, **kwargs: Any) -> None:
        self._given = frozenset(signature.bind(self, *args, **kwargs).arguments) - {"self"}
        init(self, *args, **kwargs)

    return wrapper


class MAPElitesEvolutionTrainer:
    """MAP-Elites over robot bodies, each scored by the policy PPO finds for it.

    Args:
        base_args: starting configuration: a :class:`Settings`, or a dict of config sections
            (``{"ppo": {...}, "env": {...}}``); None for the defaults. Each of the five keywords
            below that the caller gives (its default value included) overrides ``base_args``'
            ``evolution`` section; one not given leaves that section's value.
        num_initial_random: random individuals before variation starts.
        training_steps_per_individual: env steps of training per individual.
        enable_multiprocess: evaluate in worker processes (False: all in this process).
        max_workers: worker processes; None means 75% of the cores, at least 1. Given (not None)
            without ``enable_multiprocess``, it asks for worker processes, as ``--workers`` does.
        use_shared_ppo: one policy trained by all workers (shared mode) instead of a fresh PPO
            per individual (independent mode).
        training_config: shared-mode keys ``buffer_size``, ``min_batch_size``, ``update_interval``.
        model_config: ``hidden_dim``, and ``observation_dim`` / ``action_dim`` only to assert
            them (they follow from the body space; a disagreeing value is an error).
        output_dir: run directory (default ``map_elites_results`` or
            ``map_elites_shared_ppo_results`` by mode).
        evaluations: stop after this many evaluated individuals.
        seed: run seed.
        resume: continue the run in ``output_dir``. As ``--resume --config`` does, a dict
            ``base_args`` takes the stored run's budgets and workers (``RESUMABLE_CHANGES``) where
            it leaves them out, and None takes the stored settings whole.
        quiet: no progress output on the terminal.

    A trainer runs once: to continue a run, make another with ``resume=True``.
    """

    @_noting_given_arguments
    def __init__(
        self,
        base_args: Settings | dict[str, Any] | None = None,
        num_initial_random: int = 8,
        training_steps_per_individual: int = 1500,
        enable_multiprocess: bool = True,
        max_workers: int | None = None,
        use_shared_ppo: bool = True,
        training_config: dict[str, Any] | None = None,
        model_config: dict[str, Any] | None = None,
        *,
        output_dir: str | None = None,
        evaluations: int | None = None,
        seed: int | None = None,
        resume: bool = False,
        quiet: bool = False,
    ) -> None:
        if resume and not isinstance(base_args, Settings):
            mode_given = use_shared_ppo if "use_shared_ppo" in self._given else None
            base_args = python_resume_settings(base_args, output_dir, mode_given)
        settings = base_args if isinstance(base_args, Settings) else Settings.from_dict(base_args)
        keywords = {"num_initial_random": num_initial_random, "training_steps_per_individual": training_steps_per_individual,
                    "enable_multiprocess": enable_multiprocess, "max_workers": max_workers, "use_shared_ppo": use_shared_ppo}  # fmt: skip
        evo = dataclasses.replace(
            settings.evolution,
            # a keyword not given leaves base_args' evolution section (or the config defaults, the same) as is
            **{name: value for name, value in keywords.items() if name in self._given},
            # max_workers given asks for worker processes, as --workers does (an enable_multiprocess
            # keyword given too decides): settings or a stored serial run saying false kept it serial
            **({"enable_multiprocess": True} if max_workers is not None and "max_workers" in self._given
               and "enable_multiprocess" not in self._given else {}),
            **({"evaluations": evaluations} if evaluations is not None else {}),
            **({"seed": seed} if seed is not None else {}),
        )
        training = section_from_dict(TrainingConfig, {**dataclasses.asdict(settings.training), **(training_config or {})}, "training")
        model = section_from_dict(ModelConfig, {**dataclasses.asdict(settings.model), **(model_config or {})}, "model")
        settings = dataclasses.replace(settings, evolution=evo, training=training, model=model).validate()
        layout = ObservationLayout(settings.body_space.max_links)
        settings = dataclasses.replace(settings, model=settings.model.resolved(layout.observation_dim, layout.action_dim))
        settings = settings.with_default_epochs(evolution=True)
        self.settings = settings
        self.mode = "shared" if evo.use_shared_ppo else "independent"
        default_dir = default_output_dir(evo.use_shared_ppo)
        if output_dir is not None and not str(output_dir).strip():  # "" would silently mean the default
            raise RunDirectoryError("output_dir is empty; give the path of a directory for the run, or None for the default.")
        check_working_directory()  # needed for a relative path, and to start worker processes
        # Absolute from here: a run in a thread wrote into another directory (and named it in its
        # advice) once the main thread changed directory, e.g. a notebook's %cd (review).
        self.run_dir = RunDirectory(RunDirectory(output_dir if output_dir is not None else default_dir).path.absolute())
        self.resume = resume
        self.quiet = quiet
        self.run_dir.check(resume=resume)  # refuse before any process starts
        self._resumed_changes: list[str] = []  # resume: the budgets and workers that differ from the stored run's
        stored = None
        if resume:  # the same mode and settings as the stored run, budgets and workers aside
            self._resumed_changes = check_resume(self.run_dir, self.mode, settings)
            stored = stored_run(self.run_dir)
        stored_training = Settings.from_dict(stored["settings"]).training if stored else None
        settings.training.check_new_values(shared=evo.use_shared_ppo, stored=stored_training)
        if stored is None:  # a run stored before the scene check goes on as it was
            settings.check_scene_fits()
        # The run's own id (config.json keeps it), after which its shared-memory blocks are named
        self.run_id = (stored_run_id(stored) if stored else None) or new_run_id()
        self._locked = False  # whether run() holds the run's lock (a filesystem without locks: no)
        if settings.evolution.use_shared_ppo:  # /dev/shm must hold the weights and experience buffer
            check_shared_memory(settings, settings.evolution.workers if settings.evolution.enable_multiprocess else 1,
                                reclaimable=leftover_bytes(self.block_prefix), resume=resume)  # fmt: skip

        self.space = BodySpace(settings.body_space)
        self.specs = measure_specs(self.space, evo.measures, evo.continuous_bins)
        self.archive = BodyArchive(self.space, self.specs, seed=stream_seed(evo.seed, Stream.PARENT_SAMPLING))
        # evolution.parent_lag >= 1: parents come from an archive of their own that takes results
        # in id order, each only once the individuals it must not influence are drawn (_parents_ready)
        self.parent_archive = (BodyArchive(self.space, self.specs, seed=stream_seed(evo.seed, Stream.PARENT_SAMPLING))
                               if evo.parent_lag else self.archive)  # fmt: skip
        self._awaiting_parent_archive: dict[int, tuple[Individual, dict[str, Any], Any]] = {}
        self.held_back_s = 0.0  # parent_lag: seconds in which a free worker waited for an older result
        self._held_back_since: float | None = None
        self.variation = Variation(evo, self.parent_archive, self.space.genome_dim, seed=evo.seed)
        self.completed = 0
        self.next_id = 0
        self.env_steps = 0
        self.training_env_steps = 0
        self.wall_s_before = 0.0
        self.peak_memory_floor_mb = 0.0  # resume: the peak memory of the run's earlier sessions
        self.session_counters_floor: dict[str, float] = {}  # SESSION_COUNTERS reached before a --resume
        self.pending: list[Individual] = []  # to (re)issue before new ones
        # Ids below next_id that no evaluated or pending individual holds: in flight at a hard stop
        # after the last checkpoint, so their genomes are unknown. New individuals take them first.
        self.free_ids: list[int] = []
        self.session = 0  # the run's session: 0 for its first, one more for each resume (set by run())
        self.in_flight: dict[int, Individual] = {}
        self._issues = 0  # individuals handed to workers this session
        self._issued_at: dict[int, int] = {}  # in flight: individual id -> _issues when its try was handed out
        self.failures: dict[int, int] = {}
        self.deaths: dict[int, int] = {}  # individual id -> deaths of the worker evaluating it, this session
        self._a_task_finished = False  # this session: the workers can run, so deaths are the body's doing
        self._stop_signal: int | None = None
        self._stopped_by_call = False  # stop() set _stop_signal, not a signal
        self._deferring_interrupt = False  # inside _second_ctrl_c_deferred
        self._interrupt_deferred = False  # a second Ctrl-C came inside it
        self._stopping_reason: str | None = None
        self._failure_in_poll = False  # _handle_all: an event of this poll failed the run
        # shared mode: the archive re-evaluated at the end ("archive"), the evaluations it held ("at"), its figures
        self.reevaluation: dict[str, Any] | None = None
        self.learner_counters_floor: dict[str, int] = {}  # resume: the learner's counters (and max lag) in metrics.csv
        self.recorded_policy_version = 0  # resume: the newest policy version the run's files name
        self.reevaluation_env_steps = 0  # env steps of all re-evaluation tasks (periodic and final rounds, finished or not)
        self._round: ReevaluationRound | None = None  # shared mode: a periodic re-evaluation under way
        self.failure: str | None = None  # why a failed run stopped
        self._previous_learner: dict[str, float] = {}  # learner figures at the last summary line
        self._learner_restored = False  # this session's first "restored" event was seen
        self._write_leftovers: list[str] = []  # temp files of an unfinished write, removed at the start
        self._ran = False  # run() was called: a trainer runs once
        self._state_changed = False  # run() got past its refusals: its state changed

    # ------------------------------------------------------------------ public API
    def run(self) -> dict[str, Any]:
        """Run to the end (or an interrupt); returns the summary, whose ``status`` says which.

        Raises RunDirectoryError if another process is running the same run directory, if config.json
        or the run's log cannot be written as it starts (a disk quota, say), or if since
        this trainer was made another run has started there (a new run) or the stored run no longer
        takes this one's settings (ConfigError, ``resume``).

        Called from another thread than the main one, it installs no Ctrl-C/SIGTERM handlers (Python
        sets them only there): stop it with :meth:`stop` from any thread.

        A trainer runs once; a second call raises RuntimeError (it would replay results.jsonl onto
        the archive and counts it already holds: found in review)."""
        if self._ran:
            raise RuntimeError(f"This trainer has run already: a trainer runs once. To continue the run, make a new "
                               f"MAPElitesEvolutionTrainer(..., output_dir={str(self.run_dir.path)!r}, resume=True).")  # fmt: skip
        self._ran = True  # at once: two calls from two threads must not both get in
        try:
            hold = self.run_dir.prepare_held(resume=self.resume)  # no second process may run this run meanwhile
        except BaseException:
            self._ran = False  # refused before anything changed: it may be tried again
            raise
        self._locked = hold.locked
        try:
            self._write_leftovers = self.run_dir.remove_write_leftovers()  # of an earlier session killed mid-write
            if self.resume:  # what __init__ checked may have changed since: another session may have run it
                self._resumed_changes = check_resume(self.run_dir, self.mode, self.settings)
            if self.settings.evolution.enable_multiprocess:  # the main process never imports torch
                return self._run()
            from morphelites.torch_state import caller_torch_state_kept

            with caller_torch_state_kept():  # --serial trains in this process, maybe a user's notebook
                return self._run()
        except BaseException:
            if not self._state_changed:  # refused as it started (the stored run changed, a write refused)
                self._ran = False
            raise
        finally:
            hold.release()

    def _run(self) -> dict[str, Any]:
        """:meth:`run` once the run's lock is held: open the session, start the backend, install the
        stop handlers, run, and write the final files; the handlers and the process title are given
        back whatever happens."""
        try:
            finished = self._open_session()
        except BaseException:  # a Ctrl-C or SystemExit during a long replay: training.log goes back too (review)
            if getattr(self, "recorder", None) is not None:
                self.recorder.close()
            raise
        if finished is not None:
            return self._nothing_to_do(finished)
        log, evo = self.recorder.log, self.settings.evolution
        workers = evo.workers if evo.enable_multiprocess else 1
        self._log_start(workers)
        # Before the Ctrl-C handler (a second Ctrl-C could tear a first import in half: see there), and
        # before the pool creates shared memory that a plain Ctrl-C here would leave to the resource tracker.
        load_drawing_modules()
        if not evo.enable_multiprocess:  # it trains in this process: the same for the simulator and the optimiser
            from morphelites.preload import load_optimiser_modules, load_simulation_modules

            load_simulation_modules()
            load_optimiser_modules()
        # Given back at the end: a script or notebook that runs several experiments keeps its name.
        # The run directory, absolute and resolved as `realpath` gives it, tells runs on one machine
        # apart whatever path --output was given as (README: ``pkill -INT -xf "morphelites: map_elites main ..."``).
        run_title = set_process_title(f"map_elites main {self.run_dir.path.resolve()}")
        training = self.settings.training
        self._clear_leftover_blocks()
        try:
            pool = self._make_backend(workers)
        except BaseException:  # e.g. SharedMemoryFull: /dev/shm filled since the check; nothing was started
            restore_process_title(run_title)
            self.recorder.close()
            raise
        previous: dict[int, Any] = {}
        try:  # until the handlers are in place, a Ctrl-C ends the run here: the backend's blocks go with it
            previous = self._handlers_to_replace()
            if isinstance(pool, (SharedPPOSystem, SerialSharedBackend)) and training.sync:
                handles = pool.handles
                segment = handles.layout.steps * handles.layout.envs
                log.info("Sync mode: every update takes %d segment(s) of %d transitions from each busy worker (%d "
                         "transitions with all %d busy; training.min_batch_size is %d).", handles.segments_per_version,
                         segment, handles.segments_per_version * segment * workers, workers, training.min_batch_size)  # fmt: skip
            self.memory = ProcessTreeMemory(peak_mb=self.peak_memory_floor_mb)
            self._pool = pool
            self.progress = Progress(evo.evaluations, quiet=self.quiet, start_done=self.completed,
                                     time_left_s=None if evo.max_wall_s is None else evo.max_wall_s - self.wall_s_before,
                                     env_steps_left=None if evo.max_env_steps is None else evo.max_env_steps - self.env_steps)  # fmt: skip
            self._session_env_steps_start = self.env_steps
            self._eval_wall_s, self._evaluated_this_session = 0.0, 0  # for the final round's share of the ETA
            self._start = time.monotonic()
            self._last_summary: float | None = None  # when the progress lines were last written (monotonic s)
            self._last_summary_count = 0  # the evaluations they showed
            self._last_curves = time.monotonic()  # first drawn after _CURVES_EVERY_S, or at the end
            self._curves_every_s = _CURVES_EVERY_S  # then after _CURVES_TIME_FACTOR times the last drawing, if longer
            for sig in previous:
                signal.signal(sig, self._on_signal)
            if early_interrupt.seen() and self._stop_signal is None:  # a Ctrl-C the command's start-up may have lost
                self._stop_signal = signal.SIGINT
        except BaseException:
            try:
                if previous:  # as in _close_at_once: a further Ctrl-C waits until the blocks are gone
                    signal.signal(signal.SIGINT, signal.SIG_IGN)
                pool.close(graceful=False)
            finally:
                for sig, handler in previous.items():
                    signal.signal(sig, signal.SIG_DFL if handler is None else handler)
                restore_process_title(run_title)
                self.recorder.close()
            raise
        try:
            status, unexpected = self._run_session(pool)
            # The final files take a moment; a further Ctrl-C must not tear them (or an import) in half.
            for sig in previous:
                signal.signal(sig, signal.SIG_IGN)
            summary = self._finish(status)
        finally:  # also after what _run_session lets through (SystemExit, a test's timeout): review
            for sig, handler in previous.items():
                # None: the handler was not set from Python, and the default is the nearest to it
                signal.signal(sig, signal.SIG_DFL if handler is None else handler)
            restore_process_title(run_title)
            self.recorder.close()  # done by _finish where it got that far; closing twice is safe
        if unexpected is not None:
            raise unexpected
        return summary

    def _open_session(self) -> dict[str, Any] | None:
        """Write config.json, open the recorder and, on --resume, rebuild the run from its files.
        Returns the stored summary of a run that has nothing left to do (see
        :meth:`_finished_run_summary`), else None.

        Raises RunDirectoryError if config.json or the log cannot be written (nothing started yet).
        """
        # config.json first: a directory holding anything else then holds a run. A resume writes it
        # again (only stored_run.RESUMABLE_CHANGES may differ, checked before): a raised --evaluations
        # then holds for a later plain --resume too, not only for this session.
        # "sessions" counts this one too, so that every session (one killed at once as well) has a
        # number of its own: shared mode's workers draw from streams of it (see SharedHandles.session).
        stored = stored_run(self.run_dir) if self.resume else {}
        self.session = sessions_started(stored) if self.resume else 0
        self.run_id = stored_run_id(stored) or self.run_id  # as now stored
        columns = EVOLUTION_METRICS + (SHARED_METRICS if self.mode == "shared" else ())
        try:
            self.run_dir.write_config({"command": "train", "mode": self.mode, "settings": self.settings.to_dict(),
                                       "measures": [dataclasses.asdict(s) for s in self.specs],
                                       "sessions": self.session + 1, "run_id": self.run_id})  # fmt: skip
            self.recorder = EvolutionRecorder(self.run_dir, quiet=self.quiet, metric_columns=columns)
        except BaseException as error:  # an OSError: a quota the start check cannot see, say; nothing started yet
            if not self.resume:  # what this start wrote goes, so that the same command can run again
                self.run_dir.remove_unstarted_run()
            if not isinstance(error, OSError):  # a Ctrl-C, a broken install: as it is
                raise
            raise RunDirectoryError(
                f"Cannot write to the run directory {self.run_dir.path} ({type(error).__name__}: {error}). Free some "
                f"space (a disk quota counts too) or fix its permissions, or give another --output; nothing was "
                f"started, and nothing of the run is lost.") from None  # fmt: skip
        self._state_changed = True  # from here it has: a failure no longer lets run() be tried again
        log = self.recorder.log
        if self._write_leftovers:
            log.info("Removed %s, left by a write that an earlier session did not finish.", ", ".join(self._write_leftovers))
        if self.resume:
            if self._resumed_changes:
                log.info("Resumed with settings changed from the stored run's (config.json now records them): %s.",
                         "; ".join(self._resumed_changes))  # fmt: skip
            self._restore()
            finished = self._finished_run_summary()
            if finished is not None:
                return finished
            try:
                renamed = self.recorder.set_aside_final_reevaluation_files()
            except OSError as error:
                log.warning("Could not rename the files of the last final re-evaluation (%s): until this session "
                            "re-evaluates, archive_reevaluated.csv describes the archive as it was then.", error)  # fmt: skip
            else:
                if renamed:
                    log.info("Renamed the files of the last final re-evaluation to %s: they describe the archive as "
                             "it was then; this session writes new ones when it re-evaluates.", " and ".join(renamed))  # fmt: skip
        return None

    def _log_start(self, workers: int) -> None:
        """training.log's first lines about this session's plan: the run's size, and what its
        settings will do that they may not seem to (``run_plan.settings_warnings``)."""
        evo, log = self.settings.evolution, self.recorder.log
        log.info("MAP-Elites (%s mode): %d evaluations, %d env steps of training each, %d worker(s), output %s",
                 self.mode, evo.evaluations, evo.training_steps_per_individual, workers, self.run_dir.path)  # fmt: skip
        for warning in settings_warnings(self.settings, self.mode, workers):
            log.warning("%s", warning)
        if evo.parent_lag and evo.use_shared_ppo and evo.enable_multiprocess:
            log.info("evolution.parent_lag fixes the order of evolution, but in shared mode with workers the policy "
                     "each worker acts with still depends on timing, so this run will not repeat exactly (--serial "
                     "does).")  # fmt: skip

    def _clear_leftover_blocks(self) -> None:
        """Remove (or, with no lock, name) the shared-memory blocks of this run that an earlier
        session killed with its whole process group left in /dev/shm."""
        log = self.recorder.log
        if self.mode != "shared":
            return
        if self._locked:  # no session of this run is alive to use them
            removed = remove_leftover_blocks(self.block_prefix)
            if removed:
                log.warning("Removed %d shared-memory block(s) (%.1f MB: %s) from %s, left by an earlier session of "
                            "this run that was killed with its whole process group.", len(removed),
                            sum(size for _, size in removed) / 2**20, ", ".join(name for name, _ in removed), SHM_DIR)  # fmt: skip
        elif (leftovers := leftover_blocks(self.block_prefix)):  # no lock: one may be live
            log.warning("%d shared-memory block(s) of this run (%.1f MB) are in %s, left by an earlier session killed "
                        "with its whole process group, or used by one running now: this filesystem takes no lock, so "
                        "they are not removed. Once no session of this run runs, delete them (rm %s/%s_*); if %s "
                        "fills up, this session cannot start.", len(leftovers), leftover_bytes(self.block_prefix) / 2**20,
                        SHM_DIR, SHM_DIR, self.block_prefix, SHM_DIR)  # fmt: skip

    def _handlers_to_replace(self) -> dict[int, Any]:
        """The caller's handlers of the stop signals this run handles, by signal (given back at the
        end); logs those left ignored. Empty off the main thread."""
        log = self.recorder.log
        # SIGHUP (a closed terminal) and SIGUSR1/2 (a scheduler's warning) are handled as SIGTERM (STOP_SIGNALS). Python lets
        # only the main thread set handlers: a run started in another thread (a GUI, a dashboard)
        # leaves them to the caller.
        # A signal ignored as the run starts (nohup's SIGHUP) stays ignored: stop_signals_to_handle.
        previous = {s: signal.getsignal(s) for s in stop_signals_to_handle()} if _on_main_thread() else {}
        if ignored := [signal.Signals(s).name for s in STOP_SIGNALS if s not in previous] if _on_main_thread() else []:
            # said, or a `kill -INT` that does nothing looks like a hung run (review)
            handled = ("SIGTERM" if signal.SIGTERM in previous else " or ".join(stop_signal_name(s) for s in previous))
            log.info("%s ignored as this run started (as nohup and a script's background job do), and left so: %s.",
                     ", ".join(ignored), f"{handled} stops it" if handled else "it cannot be stopped with a final "
                     "checkpoint (SIGKILL stops it, and --resume continues from the last one)")  # fmt: skip
        return previous

    def _run_session(self, pool: EvaluationBackend) -> tuple[str, Exception | None]:
        """Start the backend, run the main loop (and the final re-evaluation) and stop the backend's
        processes whatever happens. Returns the run's status and the unexpected error (a bug) that
        stopped it, if any, to be raised once summary.json is written and the handlers are back.
        A BaseException other than KeyboardInterrupt (SystemExit, a test's timeout) stops the
        processes at once and goes on up, with no summary.json."""
        log, evo = self.recorder.log, self.settings.evolution
        status = "completed"
        unexpected: Exception | None = None
        try:
            pool.start()
            status = self._loop(pool)
            self._archive_in_id_order()
            if status == "completed" and evo.use_shared_ppo and self.settings.training.reevaluate_elites:
                status = self._reevaluate_elites(pool)
            # A learner or workers found dead beside the last events a poll returned, which no later
            # poll raised: the run's last results, a stop signal's, or the final round's last ones.
            pool.raise_deferred_failure()
        except KeyboardInterrupt:  # second Ctrl-C: stop at once
            status = "interrupted"
            log.warning("Second interrupt: stopping at once, without a final checkpoint.")
            self._close_at_once(pool)
        except (LearnerDied, WorkerCrashLoop, EvaluationFailed) as error:
            status = "failed"
            self.failure = str(error)
            if not isinstance(error, EvaluationFailed):  # which names the command itself
                # the backends do not know the run directory: a bare --resume would take the default one
                self.failure += f" The command: `{self._resume_command}`."
            log.error("%s", self.failure)
            self._checkpoint()
        except RunWriteFailed as failed:  # the run directory stopped taking writes (disk full, removed, ...)
            status = "failed"
            error = failed.error
            self.failure = (f"Could not write to the run directory {self.run_dir.path} ({type(error).__name__}: {error}). "
                            f"Everything written before is intact; free some space (or fix the directory) and continue "
                            f"with `{self._resume_command}`.")  # fmt: skip
            log.error("%s", self.failure)
            self._checkpoint()
        except Exception as error:  # a bug: still write summary.json and give the signal handlers back
            status, unexpected = "failed", error
            self.failure = (f"Unexpected error: {type(error).__name__}: {error} (traceback in training.log). Files "
                            f"written before are intact; `{self._resume_command}` "
                            "continues from the last checkpoint.")  # fmt: skip
            log.exception("Unexpected error; the run stops.")
        except BaseException:  # SystemExit, a test's timeout: stop the processes at once, and let it go on
            status = "failed"
            raise
        finally:
            try:
                try:
                    pool.close(graceful=status == "completed")  # waits for the processes (and the learner's checkpoint)
                except KeyboardInterrupt:  # a second Ctrl-C meanwhile: summary.json and the handlers are still due
                    status = "interrupted" if status == "completed" else status
                    log.warning("Second interrupt: stopping the processes at once.")
                    self._close_at_once(pool)
            except Exception as error:  # a bug while stopping them: summary.json and the handlers are still due
                status, unexpected = "failed", unexpected or error
                self.failure = self.failure or (f"Unexpected error while stopping the run's processes: {type(error).__name__}: "
                                                f"{error} (traceback in training.log). Files written before are intact; "
                                                f"`{self._resume_command}` continues from the last checkpoint.")  # fmt: skip
                log.exception("Unexpected error while stopping the run's processes.")
            for message in pool.take_events():  # what the learner said as it stopped (its final checkpoint failed)
                self._log_learner_event(message)
            self._count_in_flight_training(pool)
            self.progress.close()
        return status, unexpected

    def _finish(self, status: str) -> dict[str, Any]:
        """Write the final archive files and summary.json, log the run's end, close the recorder;
        returns the summary."""
        log, evo = self.recorder.log, self.settings.evolution
        self._archive_in_id_order()
        summary = self._summary(status)
        self._write_final_files(summary)
        log.info("%s: %d evaluations, QD-score %.3f, coverage %.1f%%, best fitness %.3f, %.0f s. Run directory: %s",
                 status.capitalize(), self.completed, summary["qd_score"], 100 * summary["coverage"],
                 summary["best_fitness"], summary["wall_s"], self.run_dir.path)  # fmt: skip
        self._log_budget_overshoot(summary)
        if evo.parent_lag:
            log.info("evolution.parent_lag %d: for %.1f s of the run (%.0f%%) a free worker waited for an older "
                     "individual's result before it could take a new one.", evo.parent_lag, summary["held_back_s"],
                     100 * summary["held_back_s"] / max(summary["wall_s"], 1e-9))  # fmt: skip
        if self.mode == "shared" and len(self.archive):
            log.info("To watch the final policy drive the best elite: morphelites animate %s",
                     shlex.quote(str(self.run_dir.path.resolve())))  # fmt: skip
        self.recorder.close()
        return summary

    def _make_backend(self, workers: int) -> EvaluationBackend:
        """The backend of this run's mode; it creates shared memory but starts no process yet."""
        evo, training = self.settings.evolution, self.settings.training
        if evo.use_shared_ppo and evo.enable_multiprocess:
            return SharedPPOSystem(self.settings, workers, self.run_dir.checkpoints, resume=self.resume, sync=training.sync,
                                   max_policy_lag=training.max_policy_lag, counters_floor=self.learner_counters_floor,
                                   version_floor=self.recorded_policy_version, session=self.session,
                                   block_prefix=self.block_prefix)  # fmt: skip
        if evo.use_shared_ppo:
            return SerialSharedBackend(self.settings, self.run_dir.checkpoints, resume=self.resume, sync=training.sync,
                                       max_policy_lag=training.max_policy_lag, counters_floor=self.learner_counters_floor,
                                       version_floor=self.recorded_policy_version, session=self.session,
                                       block_prefix=self.block_prefix)  # fmt: skip
        return IndependentBackend(self.settings, workers, evo.enable_multiprocess)

    # ------------------------------------------------------------------ main loop
    def _loop(self, pool: EvaluationBackend) -> str:
        evo = self.settings.evolution
        log = self.recorder.log
        while True:
            if self._stop_signal is not None:
                name = "interrupted" if self._stop_signal == signal.SIGINT else "terminated"
                log.warning("Stopping (%s): writing a checkpoint; %d individual(s) in flight will be reissued on --resume.",
                            self._stop_name(), len(self.in_flight))  # fmt: skip
                self._checkpoint()
                pool.close(graceful=False)
                return name
            self._check_budgets()
            finishing = bool(self._stopping_reason) or self.completed >= evo.evaluations
            if finishing and self._round is not None and not self._round.cancelled:
                self._round.cancel()  # the final re-evaluation (if any) supersedes it
            self._issue(pool)
            if not self.in_flight and finishing and not (self._round is not None and self._round.busy):
                self._periodic_summary(pool, final=True)
                self._checkpoint()
                return "completed"
            self._handle_all(pool.poll(0.25))
            for message in pool.take_events():
                self._log_learner_event(message)
            self._periodic_summary(pool)

    def _log_learner_event(self, message: dict[str, Any]) -> None:
        """Write what the shared-mode learner (or its supervisor) reported into training.log."""
        if message.get("event") == "restored" and self.resume and not self._learner_restored:
            # this session's first learner, restored from the run's checkpoint, which may be newer than
            # metrics.csv's last row (a hard stop between the two): those updates were made before this
            # session, not in its first line's seconds
            self._learner_restored = True
            for column, key in (("policy_updates", "updates"), ("samples_consumed", "samples_consumed")):
                self._previous_learner[column] = max(self._previous_learner.get(column, 0.0), float(message.get(key, 0)))
        for level, text in learner_event_lines(message):
            self.recorder.log.log(level, "%s", text)

    def _wanted(self) -> int:
        if self._stopping_reason:
            return 0
        return self.settings.evolution.evaluations - self.completed - len(self.in_flight)

    def _issue(self, pool: EvaluationBackend) -> None:
        held_back = False
        for worker in pool.idle:
            elite = self._round.next_task() if self._round is not None else None
            if elite is not None:  # a re-evaluation round goes first: its tasks are short
                pool.submit(worker, elite, kind="evaluate")
                continue
            if self._wanted() <= 0:
                break
            individual = self.pending.pop(0) if self.pending else self._new_individual()
            if individual is None:  # evolution.parent_lag: waiting for an older individual's result
                held_back = True
                break
            self.in_flight[individual.id] = individual
            self._issues += 1
            self._issued_at[individual.id] = self._issues
            pool.submit(worker, individual)
        self._time_held_back(held_back)

    def _time_held_back(self, held_back: bool) -> None:
        """Count ``held_back_s``: the time in which a worker is left idle only because
        ``evolution.parent_lag`` holds the next individual back (not while the run is stopping,
        nor once the worker has other work)."""
        if held_back and self._held_back_since is None:
            self._held_back_since = time.monotonic()
        elif not held_back and self._held_back_since is not None:
            self.held_back_s = self._held_back()
            self._held_back_since = None

    def _new_individual(self) -> Individual | None:
        """The next individual to evaluate, or None while ``evolution.parent_lag`` holds it back."""
        individual_id = self.free_ids[0] if self.free_ids else self.next_id
        if not self._parents_ready(individual_id):
            return None
        offspring = self.variation.next()
        body = self.space.decode(offspring.genome)
        if self.free_ids:  # an id lost at a hard stop (this resumed session's draws differ: SharedHandles.session)
            self.free_ids.pop(0)
        else:
            self.next_id += 1
        return Individual(individual_id, tuple(float(g) for g in offspring.genome), body, offspring.parent_id)

    @property
    def block_prefix(self) -> str:
        """The start of the names of this run's shared-memory blocks (see shm.run_block_prefix)."""
        return run_block_prefix(self.run_id, self.run_dir.path)

    @property
    def _resume_command(self) -> str:
        """The command that continues this run, as a shell takes it (the absolute path, quoted)."""
        return f"morphelites train --resume --output {shlex.quote(str(self.run_dir.path.resolve()))}"

    def _final_round_estimate_s(self) -> float:
        """Seconds the final re-evaluation would take with the elites found so far (shared mode;
        0 in independent mode and with ``training.reevaluate_elites`` off): a round of them per worker, each as long as this
        session's evaluations have taken on average (the same episodes on the same bodies)."""
        if self.mode != "shared" or not self.settings.training.reevaluate_elites or not self._evaluated_this_session:
            return 0.0
        evo = self.settings.evolution
        workers = evo.workers if evo.enable_multiprocess else 1
        return math.ceil(len(self.archive) / max(workers, 1)) * self._eval_wall_s / self._evaluated_this_session

    def _held_back(self) -> float:
        """``held_back_s`` with the wait under way, if any (s)."""
        since = self._held_back_since
        return self.held_back_s + (time.monotonic() - since if since is not None else 0.0)

    def _parents_ready(self, individual_id: int) -> bool:
        """Whether individual ``individual_id`` may be drawn now; with ``evolution.parent_lag`` N >= 1
        this first brings the parent archive to exactly the results of ids 0 .. individual_id-N-1.

        Those results enter it in id order, so that its contents and the order of its cells (which
        the parent draws follow) do not depend on the order in which results arrived. If one of
        those ids is still being evaluated, the answer is False and nothing changes. A random
        genome (the random start) reads no archive, so it is never held back.
        """
        lag = self.settings.evolution.parent_lag
        if not lag or self.variation.next_is_random:
            return True
        cutoff = individual_id - lag
        if any(i < cutoff for i in self.in_flight) or any(i.id < cutoff for i in self.pending):
            return False
        for i in sorted(i for i in self._awaiting_parent_archive if i < cutoff):
            self._add_to_parent_archive(i)
        return True

    def _add_to_parent_archive(self, individual_id: int) -> None:
        individual, evaluation, measures = self._awaiting_parent_archive.pop(individual_id)
        self.parent_archive.add(individual.id, individual.parent_id, individual.genome_array(), evaluation["fitness"],
                                measures, evaluation)  # fmt: skip

    def _archive_in_id_order(self) -> None:
        """With ``evolution.parent_lag`` >= 1, make the parent archive, given every result in id
        order, the run's archive: the archive a run reports then does not depend on the order in
        which results arrived either (a cell's tie goes to the older individual). Called where
        the run's archive is final, and idempotent."""
        if self.parent_archive is self.archive:
            return
        for i in sorted(self._awaiting_parent_archive):
            self._add_to_parent_archive(i)
        self.archive = self.parent_archive

    def _handle_all(self, events: list[PoolEvent]) -> None:
        """:meth:`_handle` every event; an evaluation that failed for good, or a record the run
        directory refused, is raised (the first of them) only after the others were handled, so that
        results received with it are recorded where the directory still takes them, and their steps
        are counted, not dropped with the poll (their workers are idle, so no stop counts them)."""
        failed: EvaluationFailed | RunWriteFailed | None = None
        try:
            for event in events:
                try:
                    self._handle(event)
                except (EvaluationFailed, RunWriteFailed) as error:
                    if failed is not None:  # the run stops on the first; this one must not go unsaid
                        self.recorder.log.error("Also, in the same poll: %s", error)
                    failed = failed or error
                    self._failure_in_poll = True  # no re-evaluation round starts: the run is about to stop
        finally:
            self._failure_in_poll = False
        if failed is not None:
            raise failed

    def _handle(self, event: Any) -> None:
        log = self.recorder.log
        if self._round is not None and self._round.owns(event.task_id):
            self._handle_round_event(self._round, event)
            if self._round.complete:
                self._finish_round(self._round, final=False)
            if self._round.complete or (self._round.cancelled and not self._round.busy):
                self._round = None
            return
        if event.kind == "done" and not math.isfinite(event.value.evaluation["fitness"]):
            # pyribs refuses a non-finite objective, and results.jsonl would replay the refusal on every
            # --resume: handled as an evaluation that raised (tried once more, then the run fails).
            # In shared mode its training counts, as an evaluation's that raised: the learner trained
            # on it. (Its evaluation steps do not, as those of one that raised: no figure records them.)
            unusable: IndividualResult = event.value
            event = PoolEvent("error", event.worker, event.task_id,
                              f"The evaluation returned a non-finite fitness ({unusable.evaluation['fitness']!r}): "
                              "the simulation probably went unstable on this body.",
                              env_steps=unusable.training_env_steps if self.mode == "shared" else 0)  # fmt: skip
        if event.kind == "done":
            self._a_task_finished = True
            individual = self.in_flight.pop(event.task_id)
            self._issued_at.pop(event.task_id, None)  # kept only while in flight: a long run has millions
            result: IndividualResult = event.value
            result.worker = event.worker
            try:
                self._insert(individual, result, replay=False)
            except RunWriteFailed as failed:
                if not failed.recorded:
                    self.pending.insert(0, individual.issued_again())  # the checkpoint reissues it on --resume
                    if self.mode == "shared":  # the learner trained on it, as on an individual in flight at a stop
                        self.env_steps += result.training_env_steps
                        self.training_env_steps += result.training_env_steps
                raise
        elif event.kind == "stalled":
            log.error("Worker %d stalled: no heartbeat for %.0f s (training.ipc_timeout is %.0f s)%s; killed it.",
                      event.worker, event.value, self.settings.training.ipc_timeout,
                      f" while on individual {event.task_id}" if event.task_id is not None else "")  # fmt: skip
        elif event.kind == "died":
            individual = self.in_flight.pop(event.task_id, None) if event.task_id is not None else None
            tried_from = self._issued_at.pop(event.task_id, 0) if event.task_id is not None else 0
            # its training steps were taken (and, in shared mode, trained on) even if no result says so
            self.env_steps += event.env_steps
            self.training_env_steps += event.env_steps
            log.warning("%s%s%s", f"Worker {event.worker} died (exit code {event.value}); replacing it." if event.value
                        is not None else f"Worker {event.worker}, killed as stalled, lives on in the kernel "
                        f"(uninterruptible sleep: a hung mount, swapping); its place is replaced once it is gone.",
                        f" Individual {individual.id} is issued again." if individual else "",
                        f" Its {event.env_steps} env steps of training so far are counted." if event.env_steps else "")  # fmt: skip
            if individual is not None:
                individual = individual.issued_again()
                self.pending.insert(0, individual)  # tried again now, or by --resume (the checkpoint keeps it)
                self.deaths[individual.id] = self.deaths.get(individual.id, 0) + 1
                # The body's doing, not the workers': others finish, or have run without a death since
                # before this try began (one issued since may simply not have died yet: found in review)
                workers_run = self._a_task_finished or any(i not in self.deaths and self._issued_at.get(i, 0) < tried_from
                                                           for i in self.in_flight)  # fmt: skip
                if self.deaths[individual.id] >= MAX_DEATHS_PER_INDIVIDUAL and workers_run:
                    raise EvaluationFailed(
                        f"The worker evaluating individual {individual.id} died {self.deaths[individual.id]} times (last "
                        f"exit code {event.value}; a stall counts too), while other evaluations run: its body "
                        f"({individual.body}) probably crashes the simulator or needs too much memory. Fix the cause, then "
                        f"continue with `{self._resume_command}`, which issues it again.")  # fmt: skip
                if self.deaths[individual.id] >= MAX_DEATHS_PER_INDIVIDUAL:
                    self._another_body_first(individual)
        elif event.kind == "error":
            individual = self.in_flight.pop(event.task_id)
            self._issued_at.pop(event.task_id, None)
            self.failures[individual.id] = self.failures.get(individual.id, 0) + 1
            self.env_steps += event.env_steps  # training handed on to the shared learner before it failed
            self.training_env_steps += event.env_steps
            log.error("Evaluating individual %d failed:\n%s", individual.id, event.value)
            self.pending.insert(0, individual.issued_again())  # tried again now, or by --resume (the checkpoint keeps it)
            if self.failures[individual.id] >= 2:
                raise EvaluationFailed(
                    f"Evaluating individual {individual.id} failed twice (the tracebacks are in training.log). Fix the "
                    f"cause, then continue with `{self._resume_command}`, which "
                    "issues it again.")  # fmt: skip

    def _another_body_first(self, suspect: Individual) -> None:
        """Issue another individual before ``suspect`` (first in :attr:`pending`), whose worker died
        ``MAX_DEATHS_PER_INDIVIDUAL`` times with nothing to tell its body from the workers: no
        evaluation finished this session, and every other one in flight has died too (one worker,
        say). If the other one finishes, the suspect's next death stops the run naming its body; if
        every body's worker dies, the pool's crash loop stops it as workers that cannot run. Without
        this, one worker and a body that crashes the simulator ended in that crash loop."""
        others = [i for i in self.pending if i.id != suspect.id]
        room = self.settings.evolution.evaluations - self.completed - len(self.in_flight) - len(self.pending)
        if not others and room > 0 and not self._stopping_reason:
            other = self._new_individual()  # None: evolution.parent_lag holds every new one back until a result
            if other is not None:
                others = [other]
                self.pending.append(other)
        if not others:  # the last evaluation left, say: no other body can go first
            raise EvaluationFailed(
                f"The worker evaluating individual {suspect.id} died {self.deaths[suspect.id]} times before any "
                f"evaluation finished in this session, and no other individual is left to try first: either its body "
                f"({suspect.body}) crashes the simulator or needs too much memory, or the workers cannot run at all "
                f"(the console output above shows why they die: an import error, memory, a broken install). Fix the "
                f"cause, then continue with `{self._resume_command}`.")  # fmt: skip
        self.pending.remove(suspect)
        self.pending.insert(self.pending.index(others[0]) + 1, suspect)
        self.recorder.log.warning("Individual %d's worker died %d times before any evaluation finished in this session: "
                                  "individual %d goes first, to tell a body that crashes the simulator from workers "
                                  "that cannot run at all.", suspect.id, self.deaths[suspect.id], others[0].id)  # fmt: skip

    def _handle_round_event(self, round_: ReevaluationRound, event: Any) -> None:
        """Log a worker fault during a re-evaluation task, then let the round take the event.

        A finished task's env steps count at once, also if its round is later cancelled or stopped.
        A worker that died or stalled while idle (no task) only gets a log line."""
        if event.task_id is None:
            self.recorder.log.warning("Worker %d %s while idle; %s it.", event.worker,
                                      f"died (exit code {event.value})" if event.kind == "died" else "stalled",
                                      "restarted" if event.kind == "died" else "killed")  # fmt: skip
            return
        if event.kind == "stalled":
            self.recorder.log.error("Worker %d stalled: no heartbeat for %.0f s while re-evaluating elite %d; killed it.",
                                    event.worker, event.value, event.task_id)  # fmt: skip
        elif event.kind == "died":
            self.recorder.log.warning("Worker %d %s while re-evaluating elite %d; the elite is evaluated again.",
                                      event.worker, f"died (exit code {event.value}); replacing it," if event.value is not None
                                      else "lives on after its kill (uninterruptible sleep)", event.task_id)  # fmt: skip
        if event.kind == "done":  # counted first: the round may raise on it (a non-finite fitness)
            self.env_steps += int(event.value.eval_env_steps)
            self.reevaluation_env_steps += int(event.value.eval_env_steps)
        round_.handle(event)

    def _handle_round_events(self, round_: ReevaluationRound, events: list[PoolEvent]) -> None:
        """:meth:`_handle_round_event` every event of a poll of the final round; the first
        EvaluationFailed is raised once all were handled, so that the steps of the results that came
        with it are counted, not dropped with the poll (found in review)."""
        failed: EvaluationFailed | None = None
        for event in events:
            try:
                self._handle_round_event(round_, event)
            except EvaluationFailed as error:
                if failed is not None:
                    self.recorder.log.error("Also, in the same poll: %s", error)
                failed = failed or error
        if failed is not None:
            raise failed

    def _maybe_start_round(self) -> None:
        """Start a re-evaluation round after every ``training.reevaluate_every`` evaluations (shared mode)."""
        every = self.settings.training.reevaluate_every
        if self.mode != "shared" or not every or self.completed % every or self.completed >= self.settings.evolution.evaluations:
            return
        if self._stopping_reason or self._spent_budget(self._wall_s()) or self._failure_in_poll:
            return  # the loop would cancel it (or the run fail) before it began
        if self._round is not None:
            self.recorder.log.warning("Re-evaluation round at %d evaluations skipped: the round started at %d is still "
                                      "running (training.reevaluate_every = %d is shorter than a round).",
                                      self.completed, self._round.at_evaluation, every)  # fmt: skip
            return
        self._round = ReevaluationRound(self.archive, self.space, self.completed, MAX_DEATHS_PER_INDIVIDUAL,
                                        workers_ran=lambda: self._a_task_finished)
        self.recorder.log.info("Re-evaluating the %d elites with the current policy (round at %d evaluations).",
                               len(self._round.individuals), self.completed)  # fmt: skip

    def _finish_round(self, round_: ReevaluationRound, final: bool) -> BodyArchive:
        """Build the re-evaluated archive of a complete round, record and log it (its env steps
        were counted as its tasks finished)."""
        again = round_.archive(self.space, self.specs, seed=self.settings.evolution.seed)
        record = {**round_.record(again), "final": int(final), "wall_s": round(self._wall_s(), 2), "env_steps": self.env_steps}
        try:
            self.recorder.reevaluation(record)
        except OSError as error:
            raise RunWriteFailed(error) from error
        self.recorder.log.info(
            "Re-evaluated %d elites with policy v%d-v%d: QD-score %.3f (as found %.3f), mean elite fitness %.3f (as found %.3f).",
            record["elites"], record["policy_version_min"], record["policy_version_max"], record["qd_score_reevaluated"],
            record["qd_score_as_found"], _nan0(record["mean_elite_fitness_reevaluated"]), _nan0(record["mean_elite_fitness_as_found"]),
        )  # fmt: skip
        return again

    def _insert(self, individual: Individual, result: IndividualResult, replay: bool) -> None:
        """Insert one evaluated individual into the archive; unless replaying, record it.

        Raises RunWriteFailed (not when replaying) if the run directory does not take the record;
        if results.jsonl did not take its line, the archive and the counts are as they were.
        """
        measures = compute_measures(individual.body, self.specs)
        evaluation = result.evaluation
        with self._second_ctrl_c_deferred():  # the archive, results.jsonl and metrics.csv take it together
            if not replay:  # results.jsonl first: the archive never holds an individual that it lacks
                expected = self.archive.status_if_added(evaluation["fitness"], measures)
                try:
                    self.recorder.result(self._result_line(individual, result, measures, expected))
                except OSError as error:
                    raise RunWriteFailed(error, recorded=False) from error
            status = self.archive.add(individual.id, individual.parent_id, individual.genome_array(), evaluation["fitness"],
                                      measures, evaluation)  # fmt: skip
            if self.parent_archive is not self.archive:
                self._awaiting_parent_archive[individual.id] = (individual, evaluation, measures)
            if not replay and status != expected:  # a bug: results.jsonl now says another status
                self.recorder.log.warning("Individual %d: the archive said %r, results.jsonl records %r.", individual.id,
                                          status, expected)  # fmt: skip
            self.completed += 1
            self.env_steps += result.training_env_steps + result.eval_env_steps
            self.training_env_steps += result.training_env_steps
            self.next_id = max(self.next_id, individual.id + 1)
            if replay:
                return
            try:
                stats = self._log_and_measure(individual, result, status)
            except OSError as error:
                raise RunWriteFailed(error, recorded=True) from error
        self._eval_wall_s += result.eval_wall_s
        self._evaluated_this_session += 1
        self.progress.update(self.completed, stats["qd_score"], stats["coverage"], _nan0(stats["best_fitness"]),
                             env_steps=self.env_steps - self._session_env_steps_start,
                             after_s=self._final_round_estimate_s())  # fmt: skip
        evo = self.settings.evolution
        try:
            if self.completed % evo.heatmap_every == 0:
                try:
                    self._write_archive_files()
                except OSError:
                    raise
                except Exception as error:  # a picture (the tables came first): no cause to stop the run
                    self.recorder.log.exception("A picture of the archive could not be drawn (%s: %s); archive.csv is "
                                                "written and the run goes on.", type(error).__name__, error)  # fmt: skip
            if self.completed % evo.checkpoint_every == 0:
                self._checkpoint()
        except OSError as error:
            raise RunWriteFailed(error, recorded=True) from error
        self._maybe_start_round()

    def _result_line(self, individual: Individual, result: IndividualResult, measures: Any, status: str) -> dict[str, Any]:
        """The individual's results.jsonl line.

        Args:
            measures: the body's measures, shape (number of measures,).
            status: what the archive does with it ("new", "improved" or "not added").
        """
        evaluation = result.evaluation
        return {
            **individual.to_dict(),
            "measures": {s.name: float(v) for s, v in zip(self.specs, measures)},
            **{k: evaluation[k] for k in RESULT_FIGURES},
            **{k: evaluation.get(k) for k in LATER_RESULT_FIGURES},
            "training_steps": result.training_env_steps,
            "eval_env_steps": result.eval_env_steps,
            "training_wall_s": round(result.training_wall_s, 3),
            "eval_wall_s": round(result.eval_wall_s, 3),
            "worker": result.worker,
            "status": status,
            "timestamp": time.time(),
        }  # fmt: skip

    def _log_and_measure(self, individual: Individual, result: IndividualResult, status: str) -> dict[str, float]:
        """Log an inserted individual and add its metrics.csv row; returns the archive's stats
        after the insert (``BodyArchive.stats``)."""
        evaluation = result.evaluation
        stats = self.archive.stats()
        body = individual.body
        self.recorder.log.info(
            "eval %d/%d  id %d%s  %d joints %.2f m  fitness %.3f success %.2f -> %s  | QD %.2f coverage %.0f%%  (worker %d, %.1f s)",
            self.completed, self.settings.evolution.evaluations, individual.id,
            f" (parent {individual.parent_id})" if individual.parent_id is not None else " (random)",
            body.num_links, body.total_length, evaluation["fitness"], evaluation["success_rate"], status,
            stats["qd_score"], 100 * stats["coverage"], result.worker, result.training_wall_s + result.eval_wall_s,
        )  # fmt: skip
        memory = memory_metrics(self.memory.sample(self._pool.pids()), self.memory.peak_mb)
        self.recorder.metrics({**self._metrics_record(stats), **self._pool_stats(), **memory})
        return stats

    @contextlib.contextmanager
    def _second_ctrl_c_deferred(self) -> Iterator[None]:
        """A second Ctrl-C that comes inside this block takes effect at its end, so that what the
        block writes is written whole (and no first import inside it is torn in half)."""
        self._deferring_interrupt = True
        try:
            yield
        finally:
            self._deferring_interrupt = False
        if self._interrupt_deferred:
            raise KeyboardInterrupt

    # ------------------------------------------------------------------ budgets, signals
    def _spent_budget(self, wall_s: float) -> str | None:
        """Why the env-step or wall-time budget stops the run after ``wall_s`` seconds, or None."""
        evo = self.settings.evolution
        if evo.max_env_steps is not None and self.env_steps >= evo.max_env_steps:
            return f"env-step budget of {evo.max_env_steps} reached"
        if evo.max_wall_s is not None and wall_s >= evo.max_wall_s:
            return f"wall-time limit of {evo.max_wall_s:g} s reached"
        return None

    def _check_budgets(self) -> None:
        if self._stopping_reason:
            return
        self._stopping_reason = self._spent_budget(self._wall_s())
        if self._stopping_reason:
            self.recorder.log.info("Stopping: %s; waiting for %d individual(s) in flight.", self._stopping_reason, len(self.in_flight))

    def stop(self) -> None:
        """Ask the running run to stop as a first Ctrl-C does: within seconds, with a final
        checkpoint, and ``interrupted`` in summary.json (``--resume`` continues it). For a run
        started in another thread than the main one, which Ctrl-C does not reach. Safe to call from
        any thread, and more than once (called before ``run()``, the run stops as soon as it starts)."""
        if self._stop_signal is None:
            self._stopped_by_call = True
            self._stop_signal = signal.SIGINT

    def _stop_name(self) -> str:
        """What stopped the run, for training.log."""
        return "stop() called" if self._stopped_by_call else stop_signal_name(self._stop_signal)

    def _on_signal(self, signum: int, frame: Any) -> None:
        if self._stop_signal is not None and signum == signal.SIGINT:
            if self._deferring_interrupt:
                self._interrupt_deferred = True
                return
            raise KeyboardInterrupt
        self._stop_signal = signum

    def _log_budget_overshoot(self, summary: dict[str, Any]) -> None:
        """Say by how much the run ended past ``max_env_steps`` / ``max_wall_s``: a budget stops the
        issuing of individuals, and those in flight and the final re-evaluation come on top."""
        evo = self.settings.evolution
        for name, limit, used, unit in (("max_env_steps", evo.max_env_steps, summary["env_steps"], "env steps"),
                                        ("max_wall_s", evo.max_wall_s, summary["wall_s"], "s")):  # fmt: skip
            if limit is not None and used > limit:
                self.recorder.log.info("The run ended %s %s past evolution.%s (%s): it stops the issuing of individuals; "
                                       "those in flight finished%s on top.", f"{used - limit:,.0f}", unit, name,
                                       f"{limit:,.0f}", ", and the final re-evaluation came" if self.reevaluation else "")  # fmt: skip

    def _count_in_flight_training(self, pool: EvaluationBackend) -> None:
        """Count the env steps of training that the individuals in flight when the run stopped had
        handed on to the shared learner: taken and trained on, though no result will report them
        (--resume trains those individuals again, and counts those steps again)."""
        steps = pool.in_flight_training_steps
        if steps:
            self.env_steps += steps
            self.training_env_steps += steps
            self.recorder.log.info("The %d individual(s) in flight had taken %d env steps of training, which the "
                                   "learner trains on; they are counted.", len(self.in_flight), steps)  # fmt: skip

    @staticmethod
    def _close_at_once(pool: EvaluationBackend) -> None:
        """Stop the backend's processes after a second Ctrl-C. A further one is ignored until they
        are gone (seconds; ~10 at most, for a hung learner): escaping here would leave processes
        and shared memory behind, and no summary.json."""
        if _on_main_thread():
            signal.signal(signal.SIGINT, signal.SIG_IGN)  # run() gives the caller's handler back at its end
        pool.close(graceful=False)

    def _wall_s(self) -> float:
        return self.wall_s_before + (time.monotonic() - self._start)

    # ------------------------------------------------------------------ outputs
    def _metrics_record(self, stats: dict[str, float]) -> dict[str, Any]:
        wall = self._wall_s()
        return {"evaluations": self.completed, "env_steps": self.env_steps, "training_env_steps": self.training_env_steps,
                "wall_s": round(wall, 2), **stats, "env_steps_per_s": self.env_steps / max(wall, 1e-9),
                "evaluations_per_min": 60 * self.completed / max(wall, 1e-9), "in_flight": len(self.in_flight)}  # fmt: skip

    def _periodic_summary(self, pool: EvaluationBackend,
                          final: bool = False) -> None:
        """The progress and shared_ppo lines of training.log, every ``_SUMMARY_EVERY_S`` s; ``final``
        writes them once more when the last evaluation is in, so that the stretch since the last
        line (all of a short run) is reported too."""
        now = time.monotonic()
        if not _summary_due(now, self._last_summary, self._last_summary_count, self.completed, final):
            return
        dt = now - (self._last_summary if self._last_summary is not None else self._start)
        self._last_summary, self._last_summary_count = now, self.completed
        rss = self.memory.sample(pool.pids())
        wall = self._wall_s()
        memory_text = ", ".join(f"{k} {v:.0f}" for k, v in rss["per_process_mb"].items())
        log = self.recorder.log
        log.info("progress: %d/%d evaluations, %.1f evaluations/min, %.0f env steps/s, %d in flight, RSS %.0f MB (%s)",
                 self.completed, self.settings.evolution.evaluations, 60 * self.completed / max(wall, 1e-9),
                 self.env_steps / max(wall, 1e-9), len(self.in_flight), rss["total_mb"], memory_text)  # fmt: skip
        stats = self._pool_stats()
        if "policy_updates" in stats:
            previous = self._previous_learner
            rate = lambda key: (stats.get(key, 0.0) - previous.get(key, 0.0)) / max(dt, 1e-9)  # noqa: E731
            # Rates over the stretch since the last line; the rest as they stand now (utilisation: of
            # this session; lag, drops and waits: of the run so far), each group said so in the line.
            log.info(
                "shared_ppo: last %.1f s: experience %.0f steps/s, learner %.1f updates/min, %.0f samples/s | now: buffer "
                "%.0f/%.0f transitions (%.1f MB), policy v%d | so far: learner busy %.0f%%, lag mean %.2f max %d, "
                "dropped %d segments, producer waits %d",
                dt, rate("transitions_written"), 60 * rate("policy_updates"), rate("samples_consumed"),
                stats.get("buffer_transitions", 0.0), stats.get("buffer_capacity", 0.0), stats.get("buffer_mb", 0.0),
                stats.get("policy_version", 0), 100 * stats.get("learner_utilisation", 0.0), stats.get("mean_policy_lag", 0.0),
                stats.get("max_policy_lag", 0), stats.get("segments_dropped_lag", 0), stats.get("producer_waits", 0),
            )  # fmt: skip
            if stats.get("producer_waits", 0.0) > previous.get("producer_waits", 0.0):
                log.warning("Workers waited for the learner: %d time(s) in the last %.0f s a worker waited before acting "
                            "its next segment, because as much experience as the learner takes in max_policy_lag - 1 "
                            "updates was already waiting or being written (more would be too old to train on when its "
                            "turn came) or its part of the buffer was full. The learner is slower than the workers; "
                            "the run goes on at its pace. See README, Troubleshooting.",
                            stats["producer_waits"] - previous.get("producer_waits", 0.0), dt)  # fmt: skip
            self._previous_learner = stats

    def _reevaluate_elites(self, pool: SharedBackend) -> str:
        """Evaluate every elite again with the final shared policy; build and record that archive.
        Returns the run's status: ``completed``, or ``interrupted`` / ``terminated`` if a Ctrl-C
        or SIGTERM stopped it (``--resume`` then does the re-evaluation).

        Fitness found early in a run came from a weaker policy, so the archive as found
        understates what the final policy can do with those bodies.
        """
        log = self.recorder.log
        round_ = ReevaluationRound(self.archive, self.space, self.completed, MAX_DEATHS_PER_INDIVIDUAL,
                                   workers_ran=lambda: self._a_task_finished)
        # The learner first trains on the whole batches still waiting, then keeps its weights: left
        # to go on, it would update during the round and score the elites with several versions.
        pool.freeze_learner()
        if not self._wait_until_frozen(pool, round_):
            return self._reevaluation_stopped()
        version = pool.frozen_version
        round_.require_version(version)
        log.info("Re-evaluating %d elites with the final policy (version %d).", len(round_.individuals), version)
        while not round_.complete:
            if self._stop_signal is not None:
                return self._reevaluation_stopped()
            if pool.frozen_version != version:  # the learner died; its successor freezes again, maybe at another version
                if not self._wait_until_frozen(pool, round_):
                    return self._reevaluation_stopped()
                done = len(round_.results)
                version = pool.frozen_version
                round_.require_version(version)
                log.warning("The learner was restarted during the final re-evaluation and froze again at version %d; "
                            "%d of the %d elites already re-evaluated are evaluated again with it, so that one policy "
                            "scores them all.", version, done - len(round_.results), done)  # fmt: skip
            for worker in pool.idle:
                elite = round_.next_task()
                if elite is None:
                    break
                pool.submit(worker, elite, kind="evaluate")
            self._handle_round_events(round_, pool.poll(0.25))
            for message in pool.take_events():
                self._log_learner_event(message)
        again = self._finish_round(round_, final=True)
        self.reevaluation = {"archive": again, "at": round_.at_evaluation,
                             **{f"{k}_reevaluated": v for k, v in again.stats().items()}}  # fmt: skip
        return "completed"

    def _wait_until_frozen(self, pool: SharedBackend, round_: ReevaluationRound) -> bool:
        """Wait until the learner reports that it froze (:meth:`SharedPPOSystem.freeze_learner`),
        passing on the round's pool events meanwhile; False if a Ctrl-C or SIGTERM came first."""
        while True:
            for message in pool.take_events():
                self._log_learner_event(message)
            if pool.frozen_version is not None:
                return True
            if self._stop_signal is not None:
                return False
            self._handle_round_events(round_, pool.poll(0.05))

    def _reevaluation_stopped(self) -> str:
        """The status of a run whose final re-evaluation a Ctrl-C or SIGTERM stopped."""
        self.recorder.log.warning("Re-evaluation stopped (%s); the archive as found is complete, and --resume "
                                  "re-evaluates the elites.", self._stop_name())  # fmt: skip
        return "interrupted" if self._stop_signal == signal.SIGINT else "terminated"

    def _write_archive_files(self, final: bool = False) -> None:
        """archive.csv and archive_reevaluated.csv, then heatmap.png, curves.png (every
        ``_CURVES_EVERY_S`` or ``_CURVES_TIME_FACTOR`` times its last drawing, and when ``final``)
        and heatmap_reevaluated.png.

        The tables come first, and every picture is tried: the re-evaluated fitness of each elite
        exists nowhere else once this process ends, so a picture that cannot be drawn must not
        cost it. The first picture's failure is raised once all were tried.
        """
        names = [s.name for s in self.specs]
        self.recorder.archive(self.archive.elites(), names)
        again = self.reevaluation["archive"] if self.reevaluation else None
        if again is not None:
            self.recorder.archive(again.elites(), names, suffix="_reevaluated", reevaluated_at=self.reevaluation["at"])
        pictures: list[Callable[[], None]] = []
        if len(self.archive):
            pictures.append(lambda: self.recorder.heatmap(heatmap_png(self.archive)))
        if final or time.monotonic() - self._last_curves >= self._curves_every_s:
            pictures.append(self._write_curves)
        if again is not None:
            pictures.append(lambda: self.recorder.heatmap(heatmap_png(again, title_prefix="re-evaluated with the final policy: "),
                                                          suffix="_reevaluated"))  # fmt: skip
        failure: Exception | None = None
        for draw in pictures:
            try:
                draw()
            except Exception as error:
                failure = failure or error
        if failure is not None:
            raise failure

    def _write_final_files(self, summary: dict[str, Any]) -> None:
        """Write archive.csv, the heatmaps and curves.png, then summary.json.

        A failure is logged and does not stop the rest: a picture that cannot be drawn must not
        cost the summary. results.jsonl and the checkpoints hold the run, and --resume rebuilds
        every one of these files.
        """
        log = self.recorder.log
        try:
            self._write_archive_files(final=True)
        except Exception as error:
            # An OSError is the disk's fault; anything else is a bug, so its traceback goes in the log.
            log.error("Could not write the final archive files (%s: %s); results.jsonl and the checkpoints hold the "
                      "run, and --resume rebuilds them.", type(error).__name__, error,
                      exc_info=not isinstance(error, OSError))  # fmt: skip
        try:
            self.recorder.summary(summary)
        except OSError as error:
            log.error("Could not write summary.json (%s); results.jsonl and the checkpoints hold the run, and --resume "
                      "rebuilds it.", error)  # fmt: skip

    def _write_curves(self) -> None:
        """Redraw curves.png from metrics.csv and reevaluations.csv (after --resume: the whole run),
        and set the least time until the next drawing from how long this one took."""
        self._last_curves = start = time.monotonic()
        try:
            metrics, reevaluations = self.recorder.metric_rows(most=MAX_CURVE_POINTS)  # all a curve draws
            if metrics:
                evo = self.settings.evolution
                title = f"{self.run_dir.path.name}: {self.mode} mode, {self.completed} of {evo.evaluations} evaluations"
                self.recorder.curves(progress_curves_png(metrics, reevaluations, title=title))
        finally:
            self._curves_every_s = max(_CURVES_EVERY_S, _CURVES_TIME_FACTOR * (time.monotonic() - start))

    def _summary(self, status: str) -> dict[str, Any]:
        stats = self.archive.stats()
        evo = self.settings.evolution
        return {
            "mode": self.mode, "status": status, "evaluations": self.completed, "requested_evaluations": evo.evaluations,
            "env_steps": self.env_steps, "training_env_steps": self.training_env_steps, "wall_s": round(self._wall_s(), 2),
            "qd_score": stats["qd_score"], "coverage": stats["coverage"], "best_fitness": stats["best_fitness"],
            "mean_elite_fitness": stats["mean_elite_fitness"], "elites": int(stats["elites"]), "cells": self.archive.num_cells,
            "mean_elite_fitness_ceiling": self.archive.mean_elite_fitness_ceiling(),
            "training_steps_per_individual": evo.training_steps_per_individual,
            "workers": evo.workers if evo.enable_multiprocess else 1, "peak_memory_mb": round(self.memory.peak_mb, 1),
            "stopped_because": self._stopping_reason or ("requested evaluations done" if status == "completed" else status),
            **(self._learner_figures_before_any_report() if self.mode == "shared" else {}),
            **self._pool_stats(),
            **{k: v for k, v in (self.reevaluation or {}).items() if k not in ("archive", "at")},
            **({"reevaluation_env_steps": self.reevaluation_env_steps} if self.mode == "shared" else {}),
            **({"held_back_s": round(self._held_back(), 1)} if evo.parent_lag else {}),
            **({"error": self.failure} if self.failure else {}),
        }  # fmt: skip

    def _learner_figures_before_any_report(self) -> dict[str, int | None]:
        """The learner's figures that summary.json always holds in shared mode (DESIGN.md), for a
        session whose learner never reported (stopped while it started): the counts the run's
        earlier sessions reached, and null for the policy lag; its reports replace them."""
        floor = self.learner_counters_floor
        return {"policy_updates": floor.get("updates", 0), "samples_consumed": floor.get("samples_consumed", 0),
                "policy_version": self.recorded_policy_version, "mean_policy_lag": None,
                "max_policy_lag": floor.get("max_lag_seen")}  # fmt: skip

    def _pool_stats(self) -> dict[str, float | int]:
        """The backend's figures, its restart and stall counts continuing those of the run's earlier
        sessions (the backend counts only its own); counts as whole numbers, the rest as they are."""
        stats = self._pool.stats()
        stats = {**stats, **{column: stats[column] + floor for column, floor in self.session_counters_floor.items()
                             if column in stats}}  # fmt: skip
        return {name: int(value) if name in _WHOLE_NUMBER_STATS else value for name, value in stats.items()}

    # ------------------------------------------------------------------ checkpoint / resume
    def _checkpoint(self) -> None:
        state = {
            "format": CHECKPOINT_FORMAT,
            "completed": self.completed,
            "next_id": self.next_id,
            # those in flight are issued again on --resume: the learner may have their first try's segments
            "pending": [i.to_dict() for i in self.pending + [i.issued_again() for i in self.in_flight.values()]],
            "variation": self.variation.state_dict(),
            "parent_sampling": self.parent_archive.sampling_state(),
            "wall_s": self._wall_s(),
            "held_back_s": self._held_back(),
            "settings": self.settings.to_dict(),
        }
        self.recorder.checkpoint(self.completed, state, keep=self.settings.evolution.checkpoints_kept)

    def _restore(self) -> None:
        """Rebuild the run from results.jsonl and the newest intact checkpoint of this format and body space.

        Checkpoints that are corrupt, foreign, of another body space or with malformed contents are
        skipped with a warning naming the file; if none is usable the run resumes from results.jsonl
        alone. The run's counts go on from the totals its files recorded (``read_recorded_totals``).
        """
        from morphelites.runs.checkpoints import all_of, matching

        log = self.recorder.log
        same_body_space = matching("body space", self.settings.to_dict()["body_space"], "settings", "body_space")
        latest = self.recorder.latest_checkpoint(CHECKPOINT_FORMAT, all_of(same_body_space, unloadable),
                                                 required=CHECKPOINT_FIELDS)  # fmt: skip
        seen: dict[int, None] = {}  # the ids in results.jsonl, in the order they were first recorded
        # env steps of the first n of them (index n): training, and training + evaluation
        recorded_training, recorded_steps = [0], [0]
        newest_version = 0  # the newest policy version a record names
        for line in self.recorder.results(self.space.genome_dim):  # one at a time: a long run has 100,000s
            if isinstance(line.get("policy_version"), int):
                newest_version = max(newest_version, line["policy_version"])
            if line["id"] in seen:
                continue
            seen[line["id"]] = None
            recorded_training.append(recorded_training[-1] + int(line["training_steps"]))
            recorded_steps.append(recorded_steps[-1] + int(line["training_steps"]) + int(line["eval_env_steps"]))
            individual = Individual.from_dict(line)
            evaluation = {**{k: line[k] for k in RESULT_FIGURES}, **{k: line.get(k) for k in LATER_RESULT_FIGURES}}
            self._insert(individual, IndividualResult(individual.id, evaluation, line["training_steps"], line["eval_env_steps"], 0, 0), replay=True)
        totals = read_recorded_totals(self.recorder, self.run_dir, newest_version)
        self.reevaluation_env_steps = totals.reevaluation_env_steps
        self.learner_counters_floor = totals.learner_counters
        self.recorded_policy_version = totals.policy_version
        self.session_counters_floor = totals.session_counters
        self._previous_learner = totals.learner_figures_start()  # the first rates go on from there, not from 0
        self.env_steps += self.reevaluation_env_steps  # env_steps counts every step taken, re-evaluations included
        # Whole lines missing (deleted as DamagedResults advises, or the file restored from an older
        # copy): the checkpoint or metrics.csv's last row (written with every evaluation, so past the
        # checkpoint after a hard stop) counted more evaluations than results.jsonl holds. The last
        # row, not the largest: after a resume that filled the lost ids again the rows go on from
        # the count results.jsonl held, and the loss is not counted twice.
        last_row = int(self.recorder.last_metrics_value("evaluations") or 0)
        checkpointed = int(latest[1]["completed"]) if latest is not None else 0
        counted, source = ((checkpointed, latest[0].name) if latest is not None and checkpointed >= last_row
                           else (last_row, "metrics.csv"))  # fmt: skip
        if counted > self.completed:
            log.warning("results.jsonl holds %d evaluations, but %s counted %d: %d recorded evaluation(s) are missing "
                        "from it (lines deleted, or the file restored from an older copy). They are lost from the "
                        "archive, and new individuals take their ids; metrics.csv keeps its rows of them.",
                        self.completed, source, counted, counted - self.completed)  # fmt: skip
        if checkpointed > self.completed and (aside := self.recorder.set_aside_checkpoints_above(self.completed)):
            log.info("Set aside %s as *.superseded: they count evaluations results.jsonl no longer holds, and later "
                     "resumes take this session's checkpoints.", ", ".join(aside))  # fmt: skip
        if latest is not None:
            path, state = latest
            self.pending = [Individual.from_dict(d) for d in state["pending"] if int(d["id"]) not in seen]
            self.wall_s_before = float(state["wall_s"])
            drawn_since = drawn_after(state, list(seen))
            if drawn_since:
                # The run went on after this checkpoint (a hard stop: SIGKILL, a second Ctrl-C, a
                # crash). Its variation stream would draw those individuals' genomes again.
                self._fresh_variation(proposed=self.completed + len(self.pending))
                log.info("Resumed from %s, which is %d individual(s) behind results.jsonl: %d evaluations in "
                         "results.jsonl, %d individual(s) to reissue, new variation stream.", path.name, drawn_since,
                         self.completed, len(self.pending))  # fmt: skip
            else:
                self.variation.load_state_dict(state["variation"])
                if "parent_sampling" in state:  # absent from checkpoints of earlier versions
                    self.parent_archive.load_sampling_state(state["parent_sampling"])
                log.info("Resumed from %s: %d evaluations in results.jsonl, %d individual(s) to reissue.", path.name,
                         self.completed, len(self.pending))  # fmt: skip
            self.next_id = max(self.next_id, int(state["next_id"]))
        else:
            self._fresh_variation(proposed=self.completed)
            log.info("Resumed without a checkpoint: %d evaluations replayed from results.jsonl.", self.completed)
        if self.mode == "shared":
            training, reevaluation = unreported_steps(totals, recorded_training, recorded_steps)
            self.env_steps += training + reevaluation
            self.training_env_steps += training
            self.reevaluation_env_steps += reevaluation
        # metrics.csv is written with every evaluation, the checkpoint only every checkpoint_every
        self.wall_s_before = max(self.wall_s_before, totals.wall_s)
        self.peak_memory_floor_mb = totals.peak_memory_mb
        # After a hard stop summary.json is an earlier session's, or absent; the checkpoint then has
        # the newer figure (the waits since it are lost, as in a checkpoint's other figures).
        self.held_back_s = max(totals.held_back_s, as_figure(latest[1].get("held_back_s")) if latest is not None else 0.0)
        self.free_ids = sorted(set(range(self.next_id)) - set(seen) - {individual.id for individual in self.pending})
        if self.free_ids:
            log.info("%d id(s) below the last one drawn are in neither results.jsonl nor the checkpoint (individuals "
                     "in flight when the run stopped, or missing lines); new individuals take them (%s).",
                     len(self.free_ids), ", ".join(map(str, self.free_ids)))  # fmt: skip

    def _fresh_variation(self, proposed: int) -> None:
        """A variation stream of its own for a resume that has no up-to-date checkpoint, so that the
        random start and the offspring do not redraw genomes already evaluated; ``proposed``
        individuals count as proposed already (those evaluated and those to reissue: the random
        start goes on only as far as ``num_initial_random`` evaluations)."""
        evo = self.settings.evolution
        seed = stream_seed(evo.seed, Stream.RESUMED_VARIATION, self.completed)
        self.variation = Variation(evo, self.parent_archive, self.space.genome_dim, seed=seed)
        self.variation.proposed = proposed
        self.parent_archive.reseed_sampling(stream_seed(seed, Stream.PARENT_SAMPLING))

    def _finished_run_summary(self) -> dict[str, Any] | None:
        """On --resume: the summary of a run that already completed everything these budgets ask
        for (its evaluations, and in shared mode the final re-evaluation of its elites); None when
        there is something left to do. Resuming such a run again used to repeat the final
        re-evaluation: the same figures, its env steps counted twice, a job script's restart later."""
        summary = self.run_dir.read_summary()
        if summary is None or summary.get("status") != "completed" or summary.get("evaluations") != self.completed:
            return None
        spent = self.completed >= self.settings.evolution.evaluations or self._spent_budget(self.wall_s_before) is not None
        # archive_reevaluated.csv too: lost when the run could not write it, and only a new round makes it again
        reevaluated = not (self.mode == "shared" and self.settings.training.reevaluate_elites) \
            or (self.recorder.final_reevaluation_recorded(self.completed) and self.run_dir.archive_reevaluated.is_file())
        return summary if spent and reevaluated else None

    def _nothing_to_do(self, summary: dict[str, Any]) -> dict[str, Any]:
        """End a --resume of a finished run at once: no process is started, summary.json is left as
        it is; heatmap.png and curves.png are redrawn (runs older than curves.png gain it)."""
        self.recorder.log.info("%s", nothing_to_do_line(self.settings, self.completed, self.env_steps, self.wall_s_before))
        try:
            self._archive_in_id_order()
            self._write_archive_files(final=True)
        except Exception as error:
            # As in _write_final_files: a picture that cannot be drawn must not fail the command; only
            # a bug (not the disk) gets its traceback in the log.
            self.recorder.log.error("Could not redraw the figures (%s: %s); the run's files are as they were.",
                                    type(error).__name__, error, exc_info=not isinstance(error, OSError))  # fmt: skip
        finally:
            self.recorder.close()
        return summary


def _nan0(value: float) -> float:
    return 0.0 if math.isnan(value) else value

