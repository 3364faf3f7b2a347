"""A re-evaluation round: every elite of the archive evaluated again with the current shared policy.

In shared mode an elite's fitness was measured with the policy of its time; early elites were
scored by a weak policy. A round snapshots the elites, hands them to idle workers as evaluation
tasks (no training), and builds a second archive from what the current policy does with the same
bodies. The trainer runs one at the end of a run and, with ``training.reevaluate_every = K``,
one after every K evaluations; each round becomes a row of ``reevaluations.csv``.
"""

from __future__ import annotations

import math
from typing import Any, Callable, Sequence

from morphelites.evolution.archive import BodyArchive
from morphelites.evolution.measures import MeasureSpec, compute_measures
from morphelites.individual import Individual, IndividualResult
from morphelites.morphology import BodySpace

__all__ = ["ReevaluationRound", "EvaluationFailed"]


class EvaluationFailed(RuntimeError):
    """An evaluation raised in its worker: an individual's twice, or an elite's re-evaluation.
    The run stops as failed (summary.json's ``error`` holds the message)."""


class ReevaluationRound:
    """The elites of ``archive`` at construction, to be evaluated again one task at a time.

    Args:
        archive: the archive as found; its elites are copied now, so later insertions do not
            change the round.
        space: decodes an elite's genome into its body.
        at_evaluation: the number of completed evaluations when the round started.
        max_deaths: deaths (a stall counts too) of the workers re-evaluating one elite after
            which :meth:`handle` raises :class:`EvaluationFailed` naming its body: issued again
            without end, a body that crashes the simulator kept a worker dying for the rest of the
            run, and the final round could never complete (found in review). Only once a task of
            the round has finished, or ``workers_ran()`` says one of the session did: before, the
            workers may be what cannot run, which the pool's crash loop names.
    """

    def __init__(self, archive: BodyArchive, space: BodySpace, at_evaluation: int, max_deaths: int = 3,
                 workers_ran: Callable[[], bool] = lambda: True) -> None:
        elites = archive.elites()
        self.at_evaluation = at_evaluation
        self.as_found = archive.stats()
        self.individuals = {
            int(e["individual_id"]): Individual(int(e["individual_id"]), tuple(e["genome"]), space.decode(e["genome"]), e["parent_id"])
            for e in elites
        }  # fmt: skip
        self._todo = list(self.individuals)
        self.in_flight: set[int] = set()
        self.results: dict[int, IndividualResult] = {}
        self.cancelled = False
        self.required_version: int | None = None  # require_version
        self.discarded = 0  # results of another policy version than required, evaluated again
        self.steps_taken = 0  # env steps of every result that came back, discarded ones included
        self.max_deaths = max_deaths
        self.workers_ran = workers_ran
        self.deaths: dict[int, int] = {}  # elite id -> deaths of the workers re-evaluating it

    # ------------------------------------------------------------------ tasks
    def next_task(self) -> Individual | None:
        """The next elite to hand to an idle worker (marked in flight), or None if none is waiting."""
        if self.cancelled or not self._todo:
            return None
        individual_id = self._todo.pop(0)
        self.in_flight.add(individual_id)
        return self.individuals[individual_id]

    def require_version(self, version: int) -> None:
        """Keep only results evaluated with policy ``version`` (the final round's frozen policy):
        results of another version already kept go back in the queue, and later ones are queued
        again as they arrive. So a round scores every elite with one policy also when the learner
        was restarted part-way through it and its successor froze at another version."""
        self.required_version = version
        stale = [i for i, result in self.results.items() if int(result.evaluation["policy_version"]) != version]
        for individual_id in stale:
            del self.results[individual_id]
            self._todo.append(individual_id)
        self.discarded += len(stale)

    def owns(self, task_id: Any) -> bool:
        """Whether a pool event with this task id belongs to this round."""
        return task_id in self.in_flight

    def handle(self, event: Any) -> None:
        """Take a pool event of one of this round's tasks.

        ``done`` stores the result (or, evaluated with another policy version than
        :meth:`require_version` asks for, queues the elite again), ``died`` queues the elite again
        (its worker was replaced; a worker that died idle, task id None, changes nothing), or
        raises :class:`EvaluationFailed` at its ``max_deaths``-th death,
        ``stalled`` waits for the ``died`` that follows, ``error`` raises :class:`EvaluationFailed`
        with the worker's traceback, and so does a ``done`` with a non-finite fitness.
        """
        if event.kind == "stalled" or event.task_id not in self.individuals:  # not one of its tasks (an idle worker's)
            return
        self.in_flight.discard(event.task_id)
        if event.kind == "done":
            self.steps_taken += int(event.value.eval_env_steps)
            version = int(event.value.evaluation["policy_version"])
            if self.required_version is not None and version != self.required_version:
                self.discarded += 1
                if not self.cancelled:
                    self._todo.append(event.task_id)
                return
            fitness = event.value.evaluation["fitness"]
            if not math.isfinite(fitness):  # pyribs would refuse it when the round's archive is built
                raise EvaluationFailed(f"Re-evaluating elite {event.task_id} returned a non-finite fitness ({fitness!r}): "
                                       "the simulation probably went unstable, or the shared policy's weights did.")  # fmt: skip
            self.results[event.task_id] = event.value
        elif event.kind == "died" and not self.cancelled:
            deaths = self.deaths[event.task_id] = self.deaths.get(event.task_id, 0) + 1
            if deaths >= self.max_deaths and (self.steps_taken > 0 or self.workers_ran()):
                raise EvaluationFailed(
                    f"The worker re-evaluating elite {event.task_id} died {deaths} times (last exit code {event.value}; a "
                    f"stall counts too): its body ({self.individuals[event.task_id].body}) probably crashes the "
                    f"simulator or needs too much memory. Fix the cause, then resume; the archive as found is complete.")  # fmt: skip
            self._todo.insert(0, event.task_id)
        elif event.kind == "error":
            raise EvaluationFailed(f"Re-evaluating elite {event.task_id} failed:\n{event.value}")

    def cancel(self) -> None:
        """Issue nothing more; tasks in flight still report to :meth:`handle` and are then dropped."""
        self.cancelled = True
        self._todo.clear()

    @property
    def complete(self) -> bool:
        """Every elite has its new result (never true for a cancelled round)."""
        return not self.cancelled and len(self.results) == len(self.individuals)

    @property
    def busy(self) -> bool:
        """Some of this round's tasks are still with workers."""
        return bool(self.in_flight)

    # ------------------------------------------------------------------ outcome
    def archive(self, space: BodySpace, specs: Sequence[MeasureSpec], seed: int) -> BodyArchive:
        """The same bodies inserted with their new evaluations (a complete round only)."""
        again = BodyArchive(space, specs, seed=seed)
        for individual_id, result in sorted(self.results.items()):
            individual = self.individuals[individual_id]
            again.add(individual.id, individual.parent_id, individual.genome_array(), result.evaluation["fitness"],
                      compute_measures(individual.body, specs), result.evaluation)  # fmt: skip
        return again

    def record(self, again: BodyArchive) -> dict[str, Any]:
        """This round's fields of reevaluations.csv (runs.recorder.REEVALUATION_COLUMNS).

        ``final``, ``wall_s`` and ``env_steps`` are the run's, so the caller adds them.
        """
        stats = again.stats()
        versions = [int(r.evaluation["policy_version"]) for r in self.results.values()]
        return {
            "evaluations": self.at_evaluation, "reevaluation_env_steps": self.steps_taken,
            "policy_version_min": min(versions, default=0), "policy_version_max": max(versions, default=0),
            "elites": len(self.individuals), "qd_score_as_found": self.as_found["qd_score"],
            "mean_elite_fitness_as_found": self.as_found["mean_elite_fitness"],
            "qd_score_reevaluated": stats["qd_score"], "mean_elite_fitness_reevaluated": stats["mean_elite_fitness"],
            "best_fitness_reevaluated": stats["best_fitness"], "coverage_reevaluated": stats["coverage"],
        }  # fmt: skip
