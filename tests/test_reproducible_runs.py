"""A seed fixes a run: an individual's evaluation, and with evolution.parent_lag the whole run, whatever the
timing and the number of workers."""

import csv
import json
from pathlib import Path

import pytest

from conftest import read_results, start_train, write_json
from morphelites.cli import main

TINY = {
    "evolution": {"eval_episodes": 3, "heatmap_every": 2, "checkpoint_every": 2, "num_initial_random": 3},
    "ppo": {"num_envs": 4, "num_steps": 32},
    "env": {"max_episode_steps": 40},
}
EVALUATIONS = 10


def _options(parent_lag: int = 2) -> list[str]:
    return ["--mode", "independent", "--steps-per-individual", "128", "--parent-lag", str(parent_lag), "--quiet"]


def _individuals(out: Path) -> list[tuple]:
    """What a run evaluated, in id order: (id, parent id, genome, fitness) per individual."""
    return sorted((r["id"], r["parent_id"], tuple(r["genome"]), r["fitness"]) for r in read_results(out))


def test_an_individual_is_evaluated_the_same_as_a_process_first_individual_or_a_later_one():
    """A worker's first individual used to start from other initial weights than the same
    individual issued later: the orthogonal init ran with the process's default thread count,
    and training set ppo.torch_threads only after it."""
    import torch

    from morphelites.config import Settings
    from morphelites.independent import train_and_evaluate
    from morphelites.individual import Individual
    from morphelites.morphology import BodySpace

    settings = Settings.from_dict({**TINY, "evolution": {**TINY["evolution"], "training_steps_per_individual": 128}})
    genome = (0.3,) * BodySpace(settings.body_space).genome_dim
    individual = Individual(7, genome, BodySpace(settings.body_space).decode(genome))
    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(2)  # a fresh process on a 2-core machine; ppo.torch_threads is 1
        first = train_and_evaluate(individual, settings)
        later = train_and_evaluate(individual, settings)
    finally:
        torch.set_num_threads(threads)
    assert first.evaluation == later.evaluation


@pytest.fixture(scope="module")
def config(tmp_path_factory) -> Path:
    return write_json(tmp_path_factory.mktemp("config") / "tiny.json", TINY)


@pytest.fixture(scope="module")
def serial_run(tmp_path_factory, config) -> Path:
    """A serial run (one evaluation at a time, in id order) with parent_lag 2: the reference."""
    out = tmp_path_factory.mktemp("serial") / "run"
    assert main(["train", *_options(), "--serial", "--config", str(config), "--output", str(out),
                 "--evaluations", str(EVALUATIONS)]) == 0  # fmt: skip
    return out


def test_two_workers_evaluate_the_same_individuals_and_report_the_same_archive_as_a_serial_run(
    tmp_path, config, serial_run
):
    """Without parent_lag, individual k of a 2-worker run draws its parents from whatever results
    have arrived, so the run differs from a serial one from the first offspring on."""
    out = tmp_path / "workers"
    proc = start_train(*_options(), "--workers", "2", "--config", str(config), "--output", str(out),
                       "--evaluations", str(EVALUATIONS))  # fmt: skip
    _, err = proc.communicate(timeout=240)
    assert proc.returncode == 0, err
    reference = _individuals(serial_run)
    assert [row[0] for row in reference] == list(range(EVALUATIONS))
    assert sum(row[1] is not None for row in reference) >= EVALUATIONS - 3, "offspring of drawn parents, not only random ones"
    assert {r["worker"] for r in read_results(out)} == {0, 1}
    assert _individuals(out) == reference
    assert (out / "archive.csv").read_text() == (serial_run / "archive.csv").read_text()
    assert "worker(s) idle" not in (out / "training.log").read_text()


def test_a_run_continued_with_resume_evaluates_what_the_uninterrupted_run_does(tmp_path, config, serial_run):
    """The resumed run rebuilds its parent archive from results.jsonl by the same rule (results
    of ids below k - parent_lag, in id order), not with every result it replayed."""
    import pickle

    from morphelites.runs.checkpoints import list_checkpoints

    out = tmp_path / "resumed"
    assert main(["train", *_options(), "--serial", "--config", str(config), "--output", str(out), "--evaluations", "7"]) == 0
    # As after a hard stop (no summary.json of that session): the wait measured so far comes from
    # the checkpoint. (A serial run never waits; the figure is planted.)
    newest = list_checkpoints(out / "checkpoints", "evolution")[-1]
    state = pickle.loads(newest.read_bytes())
    assert state["completed"] == 7 and state["held_back_s"] == 0.0
    newest.write_bytes(pickle.dumps({**state, "held_back_s": 4.2}))
    (out / "summary.json").unlink()
    assert main(["train", "--resume", "--quiet", "--output", str(out), "--evaluations", str(EVALUATIONS)]) == 0
    assert _individuals(out) == _individuals(serial_run)
    assert (out / "archive.csv").read_text() == (serial_run / "archive.csv").read_text()
    assert json.loads((out / "summary.json").read_text())["held_back_s"] == 4.2


def test_a_parent_lag_that_leaves_workers_idle_is_logged_and_the_wait_measured(tmp_path, config):
    out = tmp_path / "run"
    proc = start_train(*_options(parent_lag=1), "--workers", "3", "--config", str(config), "--output", str(out), "--evaluations", "8")
    _, err = proc.communicate(timeout=240)
    assert proc.returncode == 0, err
    log = (out / "training.log").read_text()
    assert "evolution.parent_lag is 1 with 3 workers: after the random start at most 2 individuals are evaluated " \
           "at once, and 1 worker(s) idle" in log  # fmt: skip
    held_back = json.loads((out / "summary.json").read_text())["held_back_s"]
    assert held_back > 0, "the third worker waited"
    assert f"evolution.parent_lag 1: for {held_back:.1f} s of the run" in log


def test_the_reported_archive_gives_a_tied_cell_to_the_older_individual_whatever_arrived_first(tmp_path):
    """Equal fitness happens (every goal reached: 1.0); pyribs keeps whichever came first."""
    from morphelites.evolution.trainer import MAPElitesEvolutionTrainer
    from morphelites.individual import Individual, IndividualResult

    settings = {**TINY, "evolution": {**TINY["evolution"], "parent_lag": 2}}
    trainer = MAPElitesEvolutionTrainer(settings, use_shared_ppo=False, output_dir=str(tmp_path / "run"), quiet=True)
    genome = (0.5,) * trainer.space.genome_dim
    older, newer = (Individual(i, genome, trainer.space.decode(genome)) for i in (0, 1))
    for individual in (newer, older):  # the newer one's result arrives first
        evaluation = {"fitness": 1.0, "success_rate": 1.0, "mean_return": 0.0, "final_distance": 0.0,
                      "path_efficiency": 1.0, "collisions": 0.0, "policy_version": -1}  # fmt: skip
        trainer._insert(individual, IndividualResult(individual.id, evaluation, 0, 0, 0.0, 0.0), replay=True)
    assert [e["individual_id"] for e in trainer.archive.elites()] == [1], "as results arrived"
    trainer._archive_in_id_order()
    assert [e["individual_id"] for e in trainer.archive.elites()] == [0]


def test_an_individual_waits_while_one_more_than_parent_lag_ids_older_is_still_evaluated(tmp_path):
    """Individual 5 with parent_lag 2 draws from the results of 0, 1 and 2 exactly: not before 2
    is back, and without 3, which another worker finished sooner."""
    import numpy as np

    from morphelites.evolution.archive import BodyArchive
    from morphelites.evolution.measures import compute_measures
    from morphelites.evolution.trainer import MAPElitesEvolutionTrainer
    from morphelites.individual import Individual, IndividualResult

    settings = {**TINY, "evolution": {**TINY["evolution"], "parent_lag": 2}}
    trainer = MAPElitesEvolutionTrainer(settings, use_shared_ppo=False, output_dir=str(tmp_path / "run"), quiet=True)
    genomes = trainer.space.random_genomes(np.random.default_rng(0), 5)
    individuals = [Individual(i, tuple(map(float, g)), trainer.space.decode(g)) for i, g in enumerate(genomes)]
    evaluation = {"fitness": 0.5, "success_rate": 0.0, "mean_return": 0.0, "final_distance": 0.1,
                  "path_efficiency": 0.0, "collisions": 0.0, "policy_version": -1}  # fmt: skip

    def arrives(individual: Individual) -> None:
        del trainer.in_flight[individual.id]
        trainer._insert(individual, IndividualResult(individual.id, evaluation, 0, 0, 0.0, 0.0), replay=True)

    trainer.variation.proposed = trainer.next_id = 5  # past the random start: individual 5 reads the archive
    trainer.in_flight = dict(enumerate(individuals))
    for i in (0, 1, 3):
        arrives(individuals[i])
    assert not trainer._parents_ready(5) and len(trainer.parent_archive) == 0
    arrives(individuals[2])
    assert trainer._parents_ready(5), "4 is still evaluated, but it is not more than parent_lag ids older"
    expected = BodyArchive(trainer.space, trainer.specs)
    for individual in individuals[:3]:
        expected.add(individual.id, None, individual.genome_array(), 0.5, compute_measures(individual.body, trainer.specs), evaluation)
    cells = lambda archive: [(e["cell"], e["individual_id"]) for e in archive.elites()]  # noqa: E731
    assert cells(trainer.parent_archive) == cells(expected)
    assert set(trainer._awaiting_parent_archive) == {3}


class _IdleWorkers:
    """The two calls ``_issue`` makes of a pool: its idle workers, and a submission (recorded)."""

    def __init__(self, workers: int) -> None:
        self.idle = list(range(workers))
        self.submitted: list[int] = []

    def submit(self, worker: int, individual, kind: str = "train") -> None:
        self.idle.remove(worker)
        self.submitted.append(individual.id)


@pytest.mark.parametrize("then", ["the run stops", "the worker gets a reissued individual"])
def test_held_back_time_stops_counting_when_the_idle_worker_is_no_longer_held_back(tmp_path, then):
    """A worker that parent_lag holds back counts as held back until it gets work or the run stops
    taking new individuals; it used to count on to the end of the run (through the last evaluations
    and the final re-evaluation) once a stop began while it waited."""
    import time

    import numpy as np

    from morphelites.evolution.trainer import MAPElitesEvolutionTrainer
    from morphelites.individual import Individual

    settings = {**TINY, "evolution": {**TINY["evolution"], "parent_lag": 1}}
    trainer = MAPElitesEvolutionTrainer(settings, use_shared_ppo=False, output_dir=str(tmp_path / "run"), evaluations=20,
                                        quiet=True)  # fmt: skip
    (genome,) = trainer.space.random_genomes(np.random.default_rng(0), 1)
    trainer.variation.proposed = trainer.next_id = 5  # past the random start
    trainer.in_flight = {3: Individual(3, tuple(map(float, genome)), trainer.space.decode(genome))}
    pool = _IdleWorkers(1)
    trainer._issue(pool)
    assert not pool.submitted and trainer._held_back_since is not None, "id 5 waits for id 3 (parent_lag 1)"
    time.sleep(0.05)
    if then == "the run stops":
        trainer._stopping_reason = "max wall time reached"
    else:
        trainer.pending = [Individual(2, tuple(map(float, genome)), trainer.space.decode(genome))]
    trainer._issue(pool)
    counted = trainer._held_back()
    assert counted >= 0.05 and trainer._held_back_since is None
    time.sleep(0.05)
    assert trainer._held_back() == counted, "nothing counted after that"
    assert pool.submitted == ([] if then == "the run stops" else [2])


def test_a_shared_run_with_workers_and_re_evaluation_rounds_takes_parent_lag_and_says_it_will_not_repeat(tmp_path):
    """The gate sits where new individuals are issued; a round's re-evaluation tasks go first as before."""
    config = write_json(tmp_path / "shared.json", {
        **TINY, "training": {"buffer_size": 2000, "min_batch_size": 400, "update_interval": 100, "reevaluate_every": 3}})  # fmt: skip
    out = tmp_path / "run"
    proc = start_train("--mode", "shared", "--workers", "2", "--parent-lag", "2", "--steps-per-individual", "300",
                       "--evaluations", "7", "--config", str(config), "--output", str(out), "--quiet")  # fmt: skip
    _, err = proc.communicate(timeout=240)
    assert proc.returncode == 0, err
    results = read_results(out)
    assert sorted(r["id"] for r in results) == list(range(7))
    # the gate: individual i was drawn from the archive of ids 0 .. i-3 only, so its parent is one of them
    offspring = [r for r in results if r["parent_id"] is not None]
    assert offspring and all(r["parent_id"] <= r["id"] - 3 for r in offspring), [(r["id"], r["parent_id"]) for r in results]
    summary = json.loads((out / "summary.json").read_text())
    assert summary["status"] == "completed" and summary["elites"] >= 1
    rounds = list(csv.DictReader((out / "reevaluations.csv").open()))
    assert [int(r["final"]) for r in rounds][-1] == 1 and len(rounds) >= 2, "a periodic round, then the final one"
    assert "in shared mode with workers the policy each worker acts with still depends on timing" in \
        (out / "training.log").read_text()  # fmt: skip
