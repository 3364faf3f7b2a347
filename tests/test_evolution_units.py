"""The evolution pieces without processes: measures, archive insertion, variation, results reading."""

import json

import numpy as np
import pytest

from morphelites.config import EvolutionConfig
from morphelites.evolution import BodyArchive, Variation, compute_measures, measure_specs
from morphelites.morphology import BodySpace, Morphology
from morphelites.runs import RunDirectory
from morphelites.runs.recorder import EvolutionRecorder

SPACE = BodySpace()


def _archive() -> BodyArchive:
    return BodyArchive(SPACE, measure_specs(SPACE, ("num_links", "total_length"), 10))


def test_measure_specs_and_values():
    specs = measure_specs(SPACE, ("num_links", "total_length", "taper"), 10)
    assert [(s.name, s.bins) for s in specs] == [("num_links", 4), ("total_length", 10), ("taper", 10)]
    assert (specs[0].low, specs[0].high) == (2.5, 6.5)
    assert (specs[1].low, specs[1].high) == pytest.approx((0.3, 1.5))
    body = Morphology(4, [0.2, 0.1, 0.1, 0.1])
    np.testing.assert_allclose(compute_measures(body, specs), [4, 0.5, (0.2 - 0.1) / 0.3])
    # Seen in review: taper spanned [-1, 1], but links of 0.10-0.25 m give at most ±0.4286, so 4
    # of its 10 bins could never be filled and coverage could not pass 60%.
    low, high = SPACE.length_bounds
    assert (specs[2].low, specs[2].high) == pytest.approx((-(high - low) / (high + low), (high - low) / (high + low)))
    extremes = [Morphology(3, [low, 0.2, high]), Morphology(3, [high, 0.2, low])]
    assert [compute_measures(b, specs)[2] for b in extremes] == pytest.approx([specs[2].low, specs[2].high])
    archive = BodyArchive(SPACE, specs[1:])
    rng = np.random.default_rng(0)
    for individual_id, genome in enumerate(SPACE.random_genomes(rng, 2000)):
        archive.add(individual_id, None, genome, 0.5, compute_measures(SPACE.decode(genome), archive.specs), {})
    assert {int(e["cell"]) % 10 for e in archive.elites()} == set(range(10)), "every taper bin can be filled"


def test_archive_keeps_the_better_elite_per_cell():
    archive = _archive()
    body = Morphology(4, [0.2, 0.2, 0.2, 0.2])
    genome = SPACE.encode(body)
    measures = compute_measures(body, archive.specs)
    assert archive.add(0, None, genome, 0.5, measures, {"success_rate": 0.4}) == "new"
    assert archive.add(1, 0, genome, 0.3, measures, {"success_rate": 0.2}) == "not added"
    assert archive.add(2, 0, genome, 0.7, measures, {"success_rate": 0.6}) == "improved"
    (elite,) = archive.elites()
    assert elite["individual_id"] == 2 and elite["parent_id"] == 0 and elite["fitness"] == 0.7
    assert elite["success_rate"] == 0.6 and elite["num_links"] == 4 and elite["link_lengths"] == [0.2] * 4
    other = Morphology(3, [0.1, 0.1, 0.1])
    assert archive.add(3, None, SPACE.encode(other), 0.1, compute_measures(other, archive.specs), {}) == "new"
    stats = archive.stats()
    assert stats["qd_score"] == pytest.approx(0.8) and stats["coverage"] == pytest.approx(2 / 40)
    assert stats["best_fitness"] == 0.7 and stats["mean_elite_fitness"] == pytest.approx(0.4)
    assert type(stats["elites"]) is int and stats["elites"] == 2


def test_status_if_added_says_what_add_then_does():
    """The trainer writes an individual's results.jsonl line (status included) before the archive
    takes it, so the predicted status must be the one pyribs' add returns: ties included."""
    archive = _archive()
    rng = np.random.default_rng(3)
    bodies = [Morphology(n, [0.1 + 0.02 * i] * n) for n in (3, 4, 5) for i in range(3)]
    statuses = set()
    for individual_id in range(120):
        body = bodies[rng.integers(len(bodies))]
        fitness = float(rng.choice([0.2, 0.5, 0.5, 0.8, rng.random()]))  # repeated values make ties
        measures = compute_measures(body, archive.specs)
        expected = archive.status_if_added(fitness, measures)
        assert archive.add(individual_id, None, SPACE.encode(body), fitness, measures, {}) == expected
        statuses.add(expected)
    assert statuses == {"new", "improved", "not added"}


def test_archive_keeps_each_elites_fitness_ceiling_and_their_mean():
    archive = _archive()
    assert np.isnan(archive.mean_elite_fitness_ceiling()), "empty archive"
    short, long = Morphology(3, [0.1, 0.1, 0.1]), Morphology(6, [0.2] * 6)
    for i, (body, ceiling) in enumerate([(short, 0.4), (long, 1.0)]):
        archive.add(i, None, SPACE.encode(body), 0.3, compute_measures(body, archive.specs), {"fitness_ceiling": ceiling})
    assert [e["fitness_ceiling"] for e in archive.elites()] == [0.4, 1.0]
    assert archive.mean_elite_fitness_ceiling() == pytest.approx(0.7)
    # a result recorded before evaluations carried a ceiling (None on replay): unknown, not 0
    other = Morphology(4, [0.2] * 4)
    archive.add(2, None, SPACE.encode(other), 0.3, compute_measures(other, archive.specs), {"fitness_ceiling": None})
    assert np.isnan(archive.mean_elite_fitness_ceiling())


@pytest.mark.parametrize("emitter", ["iso_line", "gaussian"])
def test_variation_starts_random_then_mutates_archive_elites(emitter):
    archive = _archive()
    variation = Variation(EvolutionConfig(num_initial_random=3, emitter=emitter), archive, SPACE.genome_dim, seed=0)
    first = [variation.next() for _ in range(3)]
    assert all(o.parent_id is None for o in first)
    for i, o in enumerate(first):
        body = SPACE.decode(o.genome)
        archive.add(10 + i, None, o.genome, 0.1 * i, compute_measures(body, archive.specs), {})
    children = [variation.next() for _ in range(20)]
    elite_ids = {e["individual_id"] for e in archive.elites()}
    assert all(c.parent_id in elite_ids for c in children)
    assert all(np.all((c.genome >= 0) & (c.genome <= 1)) for c in children)
    parent_genomes = {e["individual_id"]: np.array(e["genome"]) for e in archive.elites()}
    distances = [np.linalg.norm(c.genome - parent_genomes[c.parent_id]) for c in children]
    assert 0 < np.median(distances) < 1.0, "children are near, not equal to, their parents"


def test_variation_state_round_trip_reproduces_the_stream():
    archive = _archive()
    a = Variation(EvolutionConfig(num_initial_random=100), archive, SPACE.genome_dim, seed=5)
    a.next()
    state = a.state_dict()
    expected = [a.next().genome for _ in range(3)]
    b = Variation(EvolutionConfig(num_initial_random=100), archive, SPACE.genome_dim, seed=99)
    b.load_state_dict(state)
    for genome in expected:
        np.testing.assert_array_equal(b.next().genome, genome)


def test_archive_csv_genomes_decode_to_the_bodies_in_their_rows(tmp_path):
    """Seen in review: genes written to 6 decimals decoded to a body 1 µm off in ~17% of rows."""
    import csv

    archive = BodyArchive(SPACE, measure_specs(SPACE, ("num_links", "total_length"), 50))
    rng = np.random.default_rng(3)
    for individual_id, genome in enumerate(SPACE.random_genomes(rng, 200)):
        body = SPACE.decode(genome)
        archive.add(individual_id, None, genome, 0.5, compute_measures(body, archive.specs), {})
    recorder = EvolutionRecorder(RunDirectory(tmp_path / "run").prepare(), quiet=True)
    recorder.archive(archive.elites(), [spec.name for spec in archive.specs])
    recorder.close()
    with open(tmp_path / "run" / "archive.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) > 20
    for row in rows:
        body = SPACE.decode([float(gene) for gene in row["genome"].split(";")])
        assert ";".join(f"{x:.6f}" for x in body.link_lengths) == row["link_lengths"], row["individual_id"]


@pytest.mark.faults  # a Reliability row (README): `make test-faults` runs it too
def test_torn_last_line_of_results_is_cut_off(tmp_path):
    run = RunDirectory(tmp_path / "run").prepare()
    record = {"genome": [0.5] * 7, "body": {"num_links": 3, "link_lengths": [0.2, 0.2, 0.2]}, "fitness": 0.1,
              "success_rate": 0.0, "mean_return": -50.0, "final_distance": 0.4, "path_efficiency": 0.2, "collisions": 0.0,
              "policy_version": 1, "training_steps": 1500, "eval_env_steps": 400}  # fmt: skip
    whole = "".join(json.dumps({"id": i, **record}) + "\n" for i in (0, 1))
    run.results.write_text(whole + '{"id": 2, "fitn')
    recorder = EvolutionRecorder(run, quiet=True)
    assert [line["id"] for line in recorder.read_results()] == [0, 1]
    assert run.results.read_text() == whole
    recorder.close()
    recorder.close()


def test_base_args_evolution_section_holds_where_the_keywords_stay_at_their_defaults(tmp_path):
    import inspect

    from morphelites.evolution.trainer import MAPElitesEvolutionTrainer

    section = {"training_steps_per_individual": 50000, "num_initial_random": 2, "max_workers": 1,
               "use_shared_ppo": False, "enable_multiprocess": False, "evaluations": 7}  # fmt: skip
    trainer = MAPElitesEvolutionTrainer(base_args={"evolution": section}, output_dir=str(tmp_path / "a"))
    evo = trainer.settings.evolution
    assert {k: getattr(evo, k) for k in section} == section and trainer.mode == "independent"
    given = MAPElitesEvolutionTrainer(base_args={"evolution": section}, training_steps_per_individual=300,
                                      output_dir=str(tmp_path / "b"))  # fmt: skip
    assert given.settings.evolution.training_steps_per_individual == 300, "a keyword given another value wins"
    assert given.settings.evolution.num_initial_random == 2
    # Seen: a keyword given its default value (1500 steps, shared mode) was dropped without a word,
    # and base_args' 50000 steps and independent mode ran instead.
    at_defaults = MAPElitesEvolutionTrainer({"evolution": section}, training_steps_per_individual=1500, use_shared_ppo=True,
                                            enable_multiprocess=True, output_dir=str(tmp_path / "c"))  # fmt: skip
    evo = at_defaults.settings.evolution
    assert (evo.training_steps_per_individual, evo.use_shared_ppo, evo.enable_multiprocess) == (1500, True, True)
    assert at_defaults.mode == "shared" and evo.num_initial_random == 2, "what is not given stays base_args'"
    # without base_args the keyword defaults and the config defaults must give the same run
    defaults = inspect.signature(MAPElitesEvolutionTrainer.__init__).parameters
    for name in ("num_initial_random", "training_steps_per_individual", "enable_multiprocess", "max_workers", "use_shared_ppo"):
        assert defaults[name].default == getattr(EvolutionConfig(), name), name


def test_final_reevaluation_files_are_set_aside_under_the_evaluations_they_describe(tmp_path):
    run = RunDirectory(tmp_path / "run").prepare()
    recorder = EvolutionRecorder(run, quiet=True)
    assert recorder.set_aside_final_reevaluation_files() == [], "nothing to set aside"
    archive = _archive()
    body = Morphology(3, [0.2, 0.2, 0.2])
    archive.add(0, None, SPACE.encode(body), 0.5, compute_measures(body, archive.specs), {})
    recorder.archive(archive.elites(), ["num_links", "total_length"], suffix="_reevaluated", reevaluated_at=12)
    (run.path / "heatmap_reevaluated.png").write_bytes(b"png at 12")
    assert recorder.set_aside_final_reevaluation_files() == ["archive_reevaluated_at_12.csv", "heatmap_reevaluated_at_12.png"]
    assert (run.path / "heatmap_reevaluated_at_12.png").read_bytes() == b"png at 12"
    # a name already taken is not overwritten; files of runs before the reevaluated_at column say "earlier"
    recorder.archive(archive.elites(), ["num_links", "total_length"], suffix="_reevaluated", reevaluated_at=12)
    (run.path / "heatmap_reevaluated.png").write_bytes(b"png at 12 again")
    assert recorder.set_aside_final_reevaluation_files() == ["archive_reevaluated_at_12_2.csv", "heatmap_reevaluated_at_12_2.png"]
    assert (run.path / "heatmap_reevaluated_at_12.png").read_bytes() == b"png at 12"
    recorder.archive(archive.elites(), ["num_links", "total_length"], suffix="_reevaluated")
    (run.path / "heatmap_reevaluated.png").write_bytes(b"png")
    assert recorder.set_aside_final_reevaluation_files() == ["archive_reevaluated_earlier.csv", "heatmap_reevaluated_earlier.png"]
    assert not list(run.path.glob("*_reevaluated.*"))
    recorder.close()


def test_a_crash_between_the_two_renames_keeps_both_files_under_one_label(tmp_path, monkeypatch):
    """Found in review: the two renames are not one step. If the csv (which carries the label) went
    first and the process died before the heatmap, the next session set the heatmap aside as
    "earlier". The csv goes last now, so what is left still says which evaluations it describes."""
    from morphelites.runs import recorder as recorder_module

    run = RunDirectory(tmp_path / "run").prepare()
    recorder = EvolutionRecorder(run, quiet=True)
    archive = _archive()
    body = Morphology(3, [0.2, 0.2, 0.2])
    archive.add(0, None, SPACE.encode(body), 0.5, compute_measures(body, archive.specs), {})
    recorder.archive(archive.elites(), ["num_links", "total_length"], suffix="_reevaluated", reevaluated_at=7)
    (run.path / "heatmap_reevaluated.png").write_bytes(b"png at 7")
    replace, calls = recorder_module.os.replace, []

    def crash_on_the_second(source, target):
        calls.append(source)
        if len(calls) == 2:
            raise KeyboardInterrupt  # the process dies between the two renames
        replace(source, target)

    monkeypatch.setattr(recorder_module.os, "replace", crash_on_the_second)
    with pytest.raises(KeyboardInterrupt):
        recorder.set_aside_final_reevaluation_files()
    monkeypatch.setattr(recorder_module.os, "replace", replace)
    assert recorder.set_aside_final_reevaluation_files() == ["archive_reevaluated_at_7.csv"]
    assert sorted(p.name for p in run.path.glob("*_reevaluated_*")) == ["archive_reevaluated_at_7.csv", "heatmap_reevaluated_at_7.png"]
    recorder.close()


def test_the_final_progress_line_is_written_whenever_the_last_one_showed_fewer_evaluations():
    """A run whose last three results came within 0.5 s of a progress line showing 2/5 ended its
    training.log on that 2/5 (seen under load in test_train's two-worker run)."""
    from morphelites.evolution.trainer import _SUMMARY_EVERY_S, _summary_due

    assert _summary_due(100.0, None, 0, 0, final=False), "the first lines at once"
    assert not _summary_due(100.0 + _SUMMARY_EVERY_S - 0.1, 100.0, 2, 3, final=False)
    assert _summary_due(100.0 + _SUMMARY_EVERY_S, 100.0, 2, 3, final=False)
    assert _summary_due(100.1, 100.0, 2, 5, final=True), "the last line showed 2 of the 5 evaluations"
    assert not _summary_due(100.1, 100.0, 5, 5, final=True), "the last line, 0.1 s old, already showed all 5"
    assert _summary_due(100.6, 100.0, 5, 5, final=True)


@pytest.mark.parametrize("elites", [1, 2])
def test_a_one_measure_archive_is_drawn_also_with_a_single_elite(elites):
    """Seen in review: pyribs 0.12 fails to draw a 1-D archive that holds exactly one elite, so a
    run with one measure (or a one-cell grid) ended without heatmap.png."""
    from morphelites.viz import heatmap_png

    archive = BodyArchive(SPACE, measure_specs(SPACE, ("total_length",), 10))
    for individual_id, body in enumerate([Morphology(3, [0.1] * 3), Morphology(5, [0.25] * 5)][:elites]):
        archive.add(individual_id, None, SPACE.encode(body), 0.5, compute_measures(body, archive.specs), {})
    assert archive.stats()["elites"] == elites
    assert heatmap_png(archive)[:4] == b"\x89PNG"


def test_each_learner_report_has_its_training_log_line_at_its_level():
    """learner_event_lines: a report of trouble is an error, a checkpoint passed over a warning,
    a restore or a freeze information; the learner's routine reports (a checkpoint written, an
    update) are not logged line by line."""
    import logging

    from morphelites.evolution.learner_events import learner_event_lines

    restored = {"event": "restored", "checkpoint": "learner-3.pkl", "version": 5, "updates": 3, "lost_updates": 2,
                "published_version": 7, "skipped": ["learner-4.pkl is corrupt"]}
    assert learner_event_lines(restored) == [
        (logging.WARNING, "Learner checkpoint skipped: learner-4.pkl is corrupt"),
        (logging.INFO, "Learner restored from learner-3.pkl (policy version 5, 3 updates). Lost: 2 update(s) made after "
                       "that checkpoint. Its weights are published as version 7, past the versions other weights were "
                       "published as (by a learner it replaces, or before the run stopped)."),
    ]
    assert learner_event_lines({"event": "restored", "checkpoint": None, "version": 0}) == [
        (logging.WARNING, "Learner started from a fresh policy (no usable learner checkpoint).")]
    assert learner_event_lines({"event": "frozen", "version": 9, "updates": 8, "untrained_transitions": 300}) == [
        (logging.INFO, "Learner stopped training for the final re-evaluation at policy version 9 (8 updates); 300 "
                       "transitions, less than a batch, were left untrained.")]
    levels = {kind: [level for level, _ in learner_event_lines({"event": kind, **fields})] for kind, fields in {
        "learner_died": {"exit_code": -9, "in_row": 1, "allowed": 3},
        "learner_start_failed": {"error": "OSError"},
        "learner_stalled": {"seconds": 61.0, "ipc_timeout": 60.0},
        "skipped_update": {"update": 12, "reason": "non-finite loss", "skipped_updates": 1},
        "checkpoint_failed": {"updates": 4, "error": "disk full", "final": False},
        "checkpoint": {"file": "learner-4.pkl", "updates": 4},
        "update": {},
    }.items()}  # fmt: skip
    assert levels == {"learner_died": [logging.ERROR], "learner_start_failed": [logging.ERROR],
                      "learner_stalled": [logging.ERROR], "skipped_update": [logging.WARNING],
                      "checkpoint_failed": [logging.ERROR], "checkpoint": [], "update": []}  # fmt: skip
    final = learner_event_lines({"event": "checkpoint_failed", "updates": 4, "error": "disk full", "final": True})
    assert "final checkpoint" in final[0][1] and "Free disk space" not in final[0][1], "no advice for a learner that is gone"
