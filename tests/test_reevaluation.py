"""ReevaluationRound: which elites it issues, and what it does with each kind of pool event."""

import numpy as np
import pytest

from morphelites.config import BodySpaceConfig
from morphelites.evolution.archive import BodyArchive
from morphelites.evolution.measures import compute_measures, measure_specs
from morphelites.evolution.reevaluation import EvaluationFailed, ReevaluationRound
from morphelites.individual import IndividualResult
from morphelites.morphology import BodySpace
from morphelites.parallel.pool import PoolEvent


def _archive_with_three_elites() -> tuple[BodySpace, list, BodyArchive]:
    space = BodySpace(BodySpaceConfig())
    specs = measure_specs(space, ("num_links", "total_length"), 8)
    archive = BodyArchive(space, specs, seed=0)
    for i, genome in enumerate(([0.0] * 7, [0.5] * 7, [1.0] * 7)):
        body = space.decode(np.array(genome))
        archive.add(i, None, np.array(genome), 0.1 * (i + 1), compute_measures(body, specs), _evaluation(0.1 * (i + 1), 0))
    assert len(archive) == 3
    return space, specs, archive


def _evaluation(fitness: float, version: int) -> dict:
    return {"fitness": fitness, "success_rate": fitness, "mean_return": 0.0, "final_distance": 0.1,
            "path_efficiency": 1.0, "collisions": 0.0, "policy_version": version}  # fmt: skip


def _done(task_id: int, fitness: float, version: int) -> PoolEvent:
    return PoolEvent("done", 0, task_id, IndividualResult(task_id, _evaluation(fitness, version), 0, 40, 0.0, 0.1))


def test_a_round_issues_each_elite_once_reissues_a_lost_one_and_builds_the_new_archive():
    space, specs, archive = _archive_with_three_elites()
    round_ = ReevaluationRound(archive, space, at_evaluation=3)
    archive.add(9, 0, np.full(7, 0.25), 0.9, compute_measures(space.decode(np.full(7, 0.25)), specs), _evaluation(0.9, 1))
    first, second, third = round_.next_task(), round_.next_task(), round_.next_task()
    assert round_.next_task() is None and {first.id, second.id, third.id} == {0, 1, 2}, "later insertions are not in it"
    round_.handle(PoolEvent("stalled", 1, second.id, 130.0))
    round_.handle(PoolEvent("died", 1, second.id, -9))
    round_.handle(PoolEvent("died", 2, None, -9))  # a worker that died idle
    assert round_.next_task().id == second.id, "an elite whose worker died is issued again"
    assert round_.next_task() is None, "nothing is queued for a worker that died idle"
    for individual, fitness in ((first, 0.5), (second, 0.6), (third, 0.7)):
        assert round_.owns(individual.id) and not round_.complete
        round_.handle(_done(individual.id, fitness, version=7))
    assert round_.complete and not round_.busy
    again = round_.archive(space, specs, seed=0)
    record = round_.record(again)
    assert record["qd_score_reevaluated"] == pytest.approx(again.stats()["qd_score"])
    assert record["mean_elite_fitness_reevaluated"] == pytest.approx(0.6)
    assert record["mean_elite_fitness_as_found"] == pytest.approx(0.2)
    assert (record["policy_version_min"], record["policy_version_max"], record["elites"]) == (7, 7, 3)
    assert record["reevaluation_env_steps"] == 120 and record["evaluations"] == 3


def test_a_round_that_requires_one_policy_version_scores_every_elite_with_it_also_when_it_changes():
    # The final round's learner froze at version 7, died part-way through the round, and its
    # successor froze at 9: elites already scored with 7 are evaluated again with 9.
    space, specs, archive = _archive_with_three_elites()
    round_ = ReevaluationRound(archive, space, at_evaluation=3)
    round_.require_version(7)
    first, second, third = round_.next_task(), round_.next_task(), round_.next_task()
    round_.handle(_done(first.id, 0.5, version=7))
    round_.handle(_done(second.id, 0.6, version=8))  # acted with the successor's weights before it froze
    assert second.id not in round_.results and round_.next_task().id == second.id, "issued again"
    round_.require_version(9)
    assert round_.results == {} and round_.next_task().id == first.id, "the result of version 7 is evaluated again"
    assert round_.discarded == 2
    for individual, fitness in ((third, 0.7), (second, 0.6), (first, 0.5)):
        assert not round_.complete
        round_.handle(_done(individual.id, fitness, version=9))
    assert round_.complete
    record = round_.record(round_.archive(space, specs, seed=0))
    assert (record["policy_version_min"], record["policy_version_max"]) == (9, 9)
    assert record["reevaluation_env_steps"] == 5 * 40, "the episodes of the two discarded results were taken too"


def test_a_cancelled_round_issues_nothing_and_never_completes_and_an_error_names_the_elite():
    space, _, archive = _archive_with_three_elites()
    round_ = ReevaluationRound(archive, space, at_evaluation=3)
    task = round_.next_task()
    round_.cancel()
    assert round_.next_task() is None and round_.busy
    round_.handle(PoolEvent("died", 0, task.id, -9))
    assert not round_.busy and not round_.complete and round_.next_task() is None

    round_ = ReevaluationRound(archive, space, at_evaluation=3)
    task = round_.next_task()
    with pytest.raises(RuntimeError, match=f"Re-evaluating elite {task.id} failed:\nTraceback"):
        round_.handle(PoolEvent("error", 0, task.id, "Traceback (most recent call last): ..."))


def test_a_non_finite_fitness_in_a_round_fails_it_naming_the_elite_before_the_archive_sees_it():
    """pyribs refused the NaN only when the round's archive was built, an error the trainer had no
    branch for."""
    space, _, archive = _archive_with_three_elites()
    round_ = ReevaluationRound(archive, space, at_evaluation=3)
    task = round_.next_task()
    with pytest.raises(EvaluationFailed, match=f"elite {task.id} returned a non-finite fitness"):
        round_.handle(_done(task.id, float("nan"), version=2))
    assert task.id not in round_.results
