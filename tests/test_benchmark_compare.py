"""How the benchmarks read "the env steps and wall time shared needed to reach independent's final
QD-score" (#4's ratio targets) from two runs' curves."""

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))

from long_analysis import analyse_pair, evaluations_within  # noqa: E402
from common import merge_rerun  # noqa: E402
from run_length import ratios_at  # noqa: E402
from readme_tables import _env_only_rates, _measured_pairs, _speed  # noqa: E402
from shared_vs_independent import compare, kept_parts, modes_in_order, with_part_machines  # noqa: E402


def _run(qd_scores: list[float], steps_per_evaluation: int, seconds_per_evaluation: float, budget: int = 1_000) -> dict:
    curve = [{"evaluations": k + 1, "env_steps": (k + 1) * steps_per_evaluation, "wall_s": (k + 1) * seconds_per_evaluation,
              "qd_score": qd} for k, qd in enumerate(qd_scores)]  # fmt: skip
    return {"qd_score": qd_scores[-1], "env_steps": curve[-1]["env_steps"] + 7, "wall_s": curve[-1]["wall_s"] + 5.0,
            "curve": curve, "training_steps_per_individual": budget, "peak_pss_mb": 100.0}  # fmt: skip


def test_independent_is_charged_up_to_its_first_evaluation_at_its_final_score_not_its_whole_run():
    independent = _run([1.0, 2.0, 3.0, 3.0, 3.0], steps_per_evaluation=1_000, seconds_per_evaluation=10.0)
    shared = _run([2.0, 3.5, 4.0], steps_per_evaluation=1_000, seconds_per_evaluation=2.0)
    result = compare(independent, shared, workers=1)
    assert result["independent_env_steps_to_reach"] == 3_000 and result["independent_wall_s_to_reach"] == 30.0
    assert result["shared_env_steps_to_reach"] == 2_000 and result["shared_wall_s_to_reach"] == 4.0
    assert result["env_steps_ratio"] == 1.5 and result["wall_time_ratio"] == 7.5


def test_the_final_score_is_read_from_the_curve_whose_figures_are_rounded_not_from_the_summary():
    independent = _run([1.0, 2.0, 2.0], steps_per_evaluation=1_000, seconds_per_evaluation=10.0)
    independent["qd_score"] = 2.0000004  # summary.json's figure; metrics.csv rounds to 6 significant digits
    shared = _run([2.0], steps_per_evaluation=500, seconds_per_evaluation=1.0)
    result = compare(independent, shared, workers=1)
    assert result["independent_env_steps_to_reach"] == 2_000, "not its whole run for want of an exact match"
    assert result["shared_reached_independent_final"] and result["env_steps_ratio"] == 4.0


def test_shared_is_charged_the_training_of_the_individuals_in_flight_on_the_other_workers():
    independent = _run([1.0, 3.0], steps_per_evaluation=10_000, seconds_per_evaluation=10.0)
    shared = _run([3.0], steps_per_evaluation=2_000, seconds_per_evaluation=5.0, budget=1_500)
    result = compare(independent, shared, workers=3)
    assert result["shared_in_flight_allowance"] == 2 * 1_500
    assert result["shared_env_steps_to_reach"] == 2_000 + 3_000
    assert result["env_steps_ratio"] == pytest.approx(20_000 / 5_000)
    assert result["wall_time_ratio"] == 4.0, "wall time needs no allowance"


def test_shared_is_charged_exactly_the_experience_in_flight_where_its_curve_recorded_it():
    independent = _run([1.0, 3.0], steps_per_evaluation=10_000, seconds_per_evaluation=10.0)
    shared = _run([2.0, 3.0], steps_per_evaluation=2_000, seconds_per_evaluation=5.0, budget=1_500)
    for k, point in enumerate(shared["curve"]):  # each evaluation: 1,800 training steps; 700 more written by then
        point.update(training_env_steps=(k + 1) * 1_800, transitions_written=(k + 1) * 1_800 + 700)
    result = compare(independent, shared, workers=3)
    assert result["shared_in_flight_allowance"] == 700 and result["shared_in_flight_allowance_exact"]
    assert result["shared_env_steps_to_reach"] == 4_000 + 700
    assert result["env_steps_ratio"] == pytest.approx(20_000 / 4_700)
    del shared["curve"][1]["transitions_written"]  # a curve recorded before: the upper bound
    result = compare(independent, shared, workers=3)
    assert result["shared_in_flight_allowance"] == 2 * 1_500 and not result["shared_in_flight_allowance_exact"]


def test_a_score_shared_never_reached_gives_no_ratio_but_the_most_it_could_be():
    independent = _run([1.0, 5.0], steps_per_evaluation=10_000, seconds_per_evaluation=10.0)
    shared = _run([1.0, 2.0, 4.0], steps_per_evaluation=1_000, seconds_per_evaluation=2.0, budget=500)
    result = compare(independent, shared, workers=2)
    assert not result["shared_reached_independent_final"] and "env_steps_ratio" not in result
    assert result["env_steps_ratio_below"] == pytest.approx(20_000 / (3_000 + 500))
    assert result["wall_time_ratio_below"] == pytest.approx(20.0 / 6.0)


def test_ratios_at_a_cut_read_independent_up_to_its_first_evaluation_at_the_score_it_had_then():
    independent = _run([1.0, 2.0, 2.0, 2.0, 3.0], steps_per_evaluation=1_000, seconds_per_evaluation=10.0)
    shared = _run([1.0, 2.5, 3.0], steps_per_evaluation=500, seconds_per_evaluation=1.0, budget=100)
    point = ratios_at(independent, shared, evaluations=4, workers=2)
    assert point["independent_qd_score"] == 2.0 and point["independent_env_steps"] == 2_000
    assert point["independent_wall_s"] == 20.0
    assert point["shared_env_steps_to_reach"] == 1_000 + 100 and point["env_steps_ratio"] == pytest.approx(2_000 / 1_100)
    assert "env_steps_ratio_below" not in point
    # a score shared never reached: no ratio, but the most it could be, which the plot draws
    # (session 40's review: the plot's lines just stopped, as if nothing came after)
    stopped_lower = _run([1.0, 2.5], steps_per_evaluation=500, seconds_per_evaluation=1.0, budget=100)
    point = ratios_at(independent, stopped_lower, evaluations=5, workers=2)
    assert point["env_steps_ratio"] is None and point["wall_time_ratio"] is None
    assert point["env_steps_ratio_below"] == pytest.approx(5_000 / (1_000 + 100))
    assert point["wall_time_ratio_below"] == pytest.approx(50.0 / 2.0)


def test_a_comparison_says_how_fast_the_machine_was_for_each_run_and_flags_a_difference():
    """Seen: a shared run made on a visibly slower machine gave a 1.0x wall-time ratio that nothing
    marked. Runs made before the probe say so instead of a figure."""
    independent = _run([1.0, 3.0], steps_per_evaluation=10_000, seconds_per_evaluation=10.0)
    shared = _run([3.0], steps_per_evaluation=2_000, seconds_per_evaluation=5.0)
    assert "speed_probe_ratio" not in compare(independent, shared, workers=1)
    assert _speed(compare(independent, shared, workers=1)) == "not probed"
    independent["speed_probe_steps_per_s"], shared["speed_probe_steps_per_s"] = 5_000.0, 4_800.0
    result = compare(independent, shared, workers=1)
    assert result["speed_probe_ratio"] == pytest.approx(0.96) and _speed(result) == "0.96"
    shared["speed_probe_steps_per_s"] = 4_000.0
    assert _speed(compare(independent, shared, workers=1)) == "0.80 (differs: wall time ratio not comparable)"


def test_a_machine_whose_speed_changed_within_the_runs_is_flagged_though_their_means_agree():
    """Seen in review (session 37): independent's probes 20,457 then 11,874 steps/s and shared's
    10,549 then 20,840 average to a ratio of 0.97, and the pair's wall times counted as comparable."""
    from readme_tables import _speeds_differ

    independent = _run([1.0, 3.0], steps_per_evaluation=10_000, seconds_per_evaluation=10.0)
    shared = _run([3.0], steps_per_evaluation=2_000, seconds_per_evaluation=5.0)
    for run, probes in ((independent, [20_457.0, 11_874.0]), (shared, [10_549.0, 20_840.0])):
        run["speed_probes_steps_per_s"], run["speed_probe_steps_per_s"] = probes, sum(probes) / 2
    result = compare(independent, shared, workers=1)
    assert result["speed_probe_ratio"] == pytest.approx(0.971, abs=1e-3)
    assert result["speed_probe_drift"] == pytest.approx(20_840 / 10_549)
    assert _speeds_differ(result) and _speed(result) == "0.97 (changed 1.98× within a run: wall time ratio not comparable)"
    for run, probes in ((independent, [20_000.0, 19_000.0]), (shared, [19_500.0, 20_500.0])):
        run["speed_probes_steps_per_s"], run["speed_probe_steps_per_s"] = probes, sum(probes) / 2
    steady = compare(independent, shared, workers=1)
    assert not _speeds_differ(steady) and _speed(steady) == "1.03"


def test_run_length_compares_a_seed_only_once_both_its_runs_come_from_one_session():
    """Seen in review (session 37): a rerun cut off after a seed's first mode paired its new run
    with the older session's run of the other mode, on other code and machine speed, unflagged."""
    from run_length import comparisons_of

    def row(mode: str, seed: int, date: str) -> dict:
        run = _run([1.0, 3.0], 10_000, 10.0) if mode == "independent" else _run([3.0], 2_000, 5.0)
        return {**run, "mode": mode, "seed": seed, "machine": {"date": date, "commit": "abc1234"}}

    rows = [row("independent", 0, "2026-12-07 06:00 UTC"), row("shared", 0, "2026-12-06 20:24 UTC"),
            row("independent", 1, "2026-12-06 20:24 UTC"), row("shared", 1, "2026-12-06 20:24 UTC")]  # fmt: skip
    assert [c["seed"] for c in comparisons_of(rows, workers=1)] == [1]
    unrecorded = [{k: v for k, v in r.items() if k != "machine"} for r in rows]  # rows from before rows recorded it
    assert [c["seed"] for c in comparisons_of(unrecorded, workers=1)] == [0, 1]


def test_the_mode_that_runs_first_alternates_with_the_seed():
    assert modes_in_order(0) == ("independent", "shared") and modes_in_order(1) == ("shared", "independent")
    assert {modes_in_order(seed)[0] for seed in range(4)} == {"independent", "shared"}


def test_the_ten_times_allowance_counts_the_shared_evaluations_whose_steps_and_experience_in_flight_fit():
    independent = _run([1.0, 2.0, 4.0, 4.0], steps_per_evaluation=10_000, seconds_per_evaluation=10.0)
    shared = _run([0.5, 1.5, 2.5, 4.5], steps_per_evaluation=1_000, seconds_per_evaluation=5.0)
    for k, point in enumerate(shared["curve"]):  # each evaluation: 800 training steps; 500 more written by then
        point.update(training_env_steps=(k + 1) * 800, transitions_written=(k + 1) * 800 + 500)
    assert evaluations_within(shared, workers=2, env_steps=2_499) == 1  # 1,000 + 500, then 2,000 + 500
    assert evaluations_within(shared, workers=2, env_steps=2_500) == 2
    assert evaluations_within(shared, workers=2, env_steps=1_499) == 0
    independent["seed"] = 0
    independent["env_steps_per_s"], shared["env_steps_per_s"] = 2_000.0, 1_000.0
    result = analyse_pair(independent, shared, compare(independent, shared, workers=2), workers=2)
    assert result["tenth"] == 3_000 and result["shared_evaluations_within_tenth"] == 2
    assert result["shared_qd_then"] == 1.5 and result["independent_qd_then"] == 2.0
    assert result["mean_fitness_needed"] == 2.0, "independent's final 4.0 over 2 elites"
    assert result["collection_rate_ratio"] == 0.5


def test_a_partial_rerun_keeps_every_row_it_has_not_replaced_yet_and_only_the_kept_rows_time():
    """Found in review: rerunning a seed carried the whole earlier total over, its replaced runs
    included; and run_length / learner_settings dropped the rerun seeds' rows before running, so a
    rerun cut off lost rows it never got to (shared_vs_independent was fixed for that earlier)."""
    previous = {"wall_s": 1000.0, "rows": [{"seed": 0, "mode": "independent", "wall_s": 300.0},
                                           {"seed": 0, "mode": "shared", "wall_s": 100.0},
                                           {"seed": 1, "mode": "independent", "wall_s": 500.0}]}  # fmt: skip
    key = lambda r: (r["seed"], r["mode"])  # noqa: E731
    rows, wall = merge_rerun(previous, [], key, elapsed_s=5.0)
    assert rows == previous["rows"] and wall == 1005.0, "nothing finished yet: everything kept"
    rerun = {"seed": 0, "mode": "independent", "wall_s": 250.0}
    rows, wall = merge_rerun(previous, [rerun], key, elapsed_s=260.0)
    assert [(r["seed"], r["mode"], r["wall_s"]) for r in rows] == [(0, "shared", 100.0), (1, "independent", 500.0),
                                                                    (0, "independent", 250.0)]  # fmt: skip
    assert wall == 1000.0 - 300.0 + 260.0, "the replaced run's time goes, the earlier overhead (100 s) stays"
    everything = [{**r, "wall_s": 1.0} for r in previous["rows"]]
    assert merge_rerun(previous, everything, key, elapsed_s=10.0)[1] == 10.0, "nothing earlier kept: this session's time"
    assert merge_rerun({}, [rerun], key, elapsed_s=3.0) == ([rerun], 3.0)
    # rows from before rows recorded their session keep the file's machine, not the new session's
    dated = {**previous, "machine": {"date": "2026-12-06 10:00 UTC"}}
    rows, _ = merge_rerun(dated, [{**rerun, "machine": {"date": "2026-12-08 10:00 UTC"}}], key, elapsed_s=1.0)
    assert [r["machine"]["date"][:10] for r in rows] == ["2026-12-06", "2026-12-06", "2026-12-08"]


def test_a_partial_rerun_keeps_the_earlier_parts_of_the_pairs_it_does_not_replace():
    """Found in review: rerunning one pair dropped its session's whole part (and with it the time
    and env-only rate of the runs kept from that session)."""
    runs = [{"scene": "open", "training_steps_per_individual": b, "seed": 0, "wall_s": w}
            for b, w in ((1500, 10.0), (1500, 12.0), (50000, 300.0), (50000, 500.0))]  # fmt: skip
    parts = [{"pairs": [["open", 1500, 0], ["open", 50000, 0]], "wall_s": 850.0, "env_only_steps_per_s": 48000.0}]
    [kept] = kept_parts(parts, runs, {("open", 1500, 0)})
    assert kept == {"pairs": [["open", 50000, 0]], "wall_s": 828.0, "env_only_steps_per_s": 48000.0}
    assert kept_parts(parts, runs, {("open", 1500, 0), ("open", 50000, 0)}) == [], "a part rerun whole is dropped"
    assert kept_parts(parts, runs, {("obstacles", 1500, 0)}) == parts


def test_a_file_measured_in_sessions_dates_each_scene_and_budget_by_its_own_session():
    """A partial rerun replaces some pairs; the targets table must not date the pairs it kept by the
    rerun's commit (the file's machine is the last session's)."""
    old = {"date": "2026-12-06 11:43 UTC", "commit": "ae99176"}
    new = {"date": "2026-12-07 02:15 UTC", "commit": "f738c1a"}
    data = with_part_machines({
        "machine": old, "workers": 2, "env_only_steps_per_s": 48_000.0,
        "parts": [{"pairs": [["open", 50_000, 0], ["obstacles", 50_000, 0]], "wall_s": 1.0, "env_only_steps_per_s": 48_000.0}],
    })  # fmt: skip
    assert data["parts"][0]["machine"] == old, "a part written before parts said: the file's machine"
    data["parts"] = kept_parts(data["parts"], [], {("open", 50_000, 0)})
    data["parts"].append({"pairs": [["open", 50_000, 0]], "wall_s": 2.0, "env_only_steps_per_s": 40_000.0, "machine": new})
    data["machine"] = new
    assert _measured_pairs(data, "open", 50_000) == "2026-12-07, commit f738c1a"
    assert _measured_pairs(data, "obstacles", 50_000) == "2026-12-06, commit ae99176"
    rates = _env_only_rates(data)
    assert "obstacles at 50,000: 2026-12-06 11:43 UTC, commit ae99176, 48,000 steps/s" in rates
    assert "open at 50,000: 2026-12-07 02:15 UTC, commit f738c1a, 40,000 steps/s" in rates
