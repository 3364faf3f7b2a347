"""benchmarks/ceiling_bound.py and long_analysis.ceiling_within: the most QD-score any controller
could have had with the bodies a run evaluated, and a stored run's random start drawn again."""

import json
import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))

from ceiling_bound import (  # noqa: E402
    SEEDING_SCHEMES,
    body_ceiling,
    ceiling_qd_scores,
    confirmed_random_start,
    random_start_genomes,
)
from long_analysis import ceiling_any_run, ceiling_within  # noqa: E402
from morphelites.config import Settings  # noqa: E402
from morphelites.morphology import BodySpace, Morphology  # noqa: E402

SETTINGS = Settings()
SPACE = BodySpace(SETTINGS.body_space)


def _genome(num_links: int, link_length: float) -> np.ndarray:
    return SPACE.encode(Morphology(num_links, [link_length] * num_links))


def test_the_bound_keeps_the_best_ceiling_of_each_cell_and_sums_the_cells():
    # 3 x 0.20 m and 3 x 0.21 m share a cell (total length 0.60 and 0.63 m, bins of 0.12 m from
    # 0.30 m); 4 x 0.25 m is in another
    genomes = [_genome(3, 0.20), _genome(3, 0.21), _genome(4, 0.25), _genome(3, 0.20)]
    scores = ceiling_qd_scores(SETTINGS, genomes, [0.5, 0.7, 0.3, 0.6])
    assert scores == pytest.approx([0.5, 0.7, 1.0, 1.0]), "a lower ceiling in a filled cell adds nothing"


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory) -> Path:
    """A finished tiny serial run of seed 7: 3 evaluations, all of the random start."""
    from morphelites.evolution.trainer import MAPElitesEvolutionTrainer

    out = tmp_path_factory.mktemp("ceiling") / "run"
    base = {"evolution": {"eval_episodes": 2}, "ppo": {"num_envs": 2, "num_steps": 16}, "env": {"max_episode_steps": 20}}
    MAPElitesEvolutionTrainer(base, num_initial_random=3, training_steps_per_individual=32, enable_multiprocess=False,
                              use_shared_ppo=False, output_dir=str(out), evaluations=3, seed=7, quiet=True).run()  # fmt: skip
    return out


def _results(run: Path) -> list[dict]:
    return [json.loads(line) for line in (run / "results.jsonl").read_text().splitlines()]


def test_the_random_start_drawn_again_is_the_one_a_run_evaluates(tiny_run):
    """The separate-streams scheme must draw what the trainer draws: the random start of a real
    run, read back from its results.jsonl."""
    settings = Settings.from_dict(json.loads((tiny_run / "config.json").read_text())["settings"])
    lines = sorted(_results(tiny_run), key=lambda line: line["id"])
    evaluated = np.array([line["genome"] for line in lines])
    drawn = random_start_genomes(settings, 7, SEEDING_SCHEMES[0])
    np.testing.assert_array_equal(drawn, evaluated)
    assert not np.allclose(random_start_genomes(settings, 7, SEEDING_SCHEMES[1]), evaluated)
    assert not np.allclose(random_start_genomes(settings, 8, SEEDING_SCHEMES[0]), evaluated)
    ceilings = [line["fitness_ceiling"] for line in lines]
    assert [body_ceiling(settings, SPACE.decode(g)) for g in drawn] == pytest.approx(ceilings, abs=1e-12)


def test_a_benchmark_curve_records_the_bound_after_each_evaluation(tiny_run):
    from shared_vs_independent import qd_ceilings

    settings = Settings.from_dict(json.loads((tiny_run / "config.json").read_text())["settings"])
    lines = _results(tiny_run)  # in the order the results arrived, as metrics.csv's rows
    bounds = qd_ceilings(tiny_run, lines)
    assert bounds == ceiling_qd_scores(settings, [line["genome"] for line in lines], [line["fitness_ceiling"] for line in lines])
    assert len(bounds) == 3 and bounds == sorted(bounds) and bounds[0] == pytest.approx(lines[0]["fitness_ceiling"])
    summary = json.loads((tiny_run / "summary.json").read_text())
    assert bounds[-1] >= summary["qd_score"], "no controller beats the bound: not this one either"
    assert qd_ceilings(tiny_run, [*lines[:2], {**lines[2], "fitness_ceiling": None}]) == [], "a line without it: no bound"


def _elite(genome: np.ndarray, ceiling: float) -> dict:
    body = SPACE.decode(genome)
    return {"num_links": body.num_links, "total_length": round(body.total_length, 6), "ceiling": ceiling}


def test_a_stored_runs_random_start_is_used_only_under_the_scheme_its_elites_confirm():
    for scheme in SEEDING_SCHEMES:
        genomes = random_start_genomes(SETTINGS, 3, scheme)
        ceiling = body_ceiling(SETTINGS, SPACE.decode(genomes[2]))
        found = confirmed_random_start(SETTINGS, 3, [_elite(genomes[2], ceiling), _elite(_genome(6, 0.25), 0.9)])
        assert found is not None and found[0] == scheme
        np.testing.assert_array_equal(found[1], genomes)
        assert found[2][2] == pytest.approx(ceiling)
        # a recorded ceiling that disagrees (another scene, other goals) confirms nothing
        assert confirmed_random_start(SETTINGS, 3, [_elite(genomes[2], ceiling + 0.01)]) is None
    assert confirmed_random_start(SETTINGS, 3, [_elite(_genome(6, 0.25), 0.9)]) is None, "no body of either start"


def _shared_run(seed: int, evaluations: int) -> dict:
    return {"seed": seed, "curve": [{"evaluations": k + 1, "qd_score": 0.1 * (k + 1)} for k in range(evaluations)]}


def test_the_bound_within_the_allowance_covers_every_body_that_may_have_finished():
    seed, workers = 5, 2
    genomes = random_start_genomes(SETTINGS, seed, SEEDING_SCHEMES[0])
    ceilings = [body_ceiling(SETTINGS, SPACE.decode(g)) for g in genomes]
    shared = {**_shared_run(seed, 10), "elites_with_ceiling": [_elite(genomes[0], ceilings[0])]}
    bound = ceiling_within({}, shared, "open", workers, evaluations=3)
    # after 3 results with 2 workers, the 3 finished are among the first 4 issued
    assert bound["bodies"] == 4 and bound["qd_ceiling"] == pytest.approx(ceiling_qd_scores(SETTINGS, genomes[:4], ceilings[:4])[-1])
    assert "random start drawn again" in bound["source"]
    assert ceiling_within({}, shared, "open", workers, evaluations=SETTINGS.evolution.num_initial_random) is None, \
        "past the random start the bodies depend on the results"  # fmt: skip
    shared["curve"][2]["qd_ceiling"] = 1.25  # recorded by the run: exact, preferred
    assert ceiling_within({}, shared, "open", workers, evaluations=3) == {"qd_ceiling": 1.25, "source": "the run's curve", "bodies": 3}
    assert ceiling_within({}, shared, "open", workers, evaluations=0) is None


def test_the_bound_for_any_run_of_the_seed_counts_every_evaluation_the_training_steps_allow():
    """Found in review: the bound read from a run's curve covers that run's bodies only, and a better
    controller (shorter evaluation episodes) could have finished more of them in the allowance."""
    seed, workers = 5, 2
    genomes = random_start_genomes(SETTINGS, seed, SEEDING_SCHEMES[0])
    ceilings = [body_ceiling(SETTINGS, SPACE.decode(g)) for g in genomes]
    shared = {**_shared_run(seed, 10), "training_steps_per_individual": 1000,
              "elites_with_ceiling": [_elite(genomes[0], ceilings[0])]}  # fmt: skip
    shared["curve"][1]["qd_ceiling"] = 0.5  # this run finished 2 in the allowance; any run, at most 4
    bound = ceiling_any_run({}, shared, "open", workers, env_steps=4_999)
    assert bound["most_evaluations"] == 4 and bound["bodies"] == 5
    assert bound["qd_ceiling"] == pytest.approx(ceiling_qd_scores(SETTINGS, genomes[:5], ceilings[:5])[-1])
    assert ceiling_any_run({}, shared, "open", workers, env_steps=999) is None, "no evaluation can finish"
    assert ceiling_any_run({}, shared, "open", workers, env_steps=1000 * SETTINGS.evolution.num_initial_random) is None, \
        "past the random start the bodies depend on the results"  # fmt: skip
