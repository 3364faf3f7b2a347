"""The README's benchmark tables are the committed results: the block between the BENCHMARKS
markers is exactly what ``benchmarks/readme_tables.py`` renders from ``benchmarks/results``."""

import importlib.util
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _readme_tables():
    spec = importlib.util.spec_from_file_location("readme_tables", ROOT / "benchmarks" / "readme_tables.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_readme_benchmark_block_is_rendered_from_the_committed_results():
    tables = _readme_tables()
    readme = (ROOT / "README.md").read_text()
    assert readme.count(tables.START) == 1 and readme.count(tables.END) == 1
    block = readme.split(tables.START, 1)[1].split(tables.END, 1)[0]
    assert block.strip() == tables.render().strip(), (
        "README.md's benchmark tables differ from benchmarks/results/*.json: run `python benchmarks/readme_tables.py`"
    )
    assert "| shared |" in block and "Memory against workers" in block, "the block holds the benchmark tables"


MEASURED = {"machine": {"date": "2026-12-07 10:00 UTC", "commit": "abc1234"}}
ON = "2026-12-07, commit abc1234"


def _comparison(scene: str, steps_ratio: float, wall_ratio: float, memory: float, reached: bool = True,
                seed: int = 0) -> dict:  # fmt: skip
    comparison = {"scene": scene, "training_steps_per_individual": 50_000, "seed": seed, "memory_ratio_pss": memory,
                  "shared_reached_independent_final": reached, "speed_probe_ratio": 1.0}  # fmt: skip
    if reached:
        return {**comparison, "env_steps_ratio": steps_ratio, "wall_time_ratio": wall_ratio}
    return {**comparison, "env_steps_ratio_below": steps_ratio, "wall_time_ratio_below": wall_ratio}


def test_the_targets_summary_judges_each_target_against_its_threshold_seed_by_seed(monkeypatch):
    tables = _readme_tables()
    monkeypatch.setattr(tables, "_load", lambda name: None)  # no ceiling, reachable or memory files
    long = {**MEASURED, "budgets": [1_500, 50_000], "workers": 2, "seeds": [0, 1], "scenes": ["open"], "evaluations": 64,
            "comparisons": [_comparison("open", 12.0, 3.0, 0.30), _comparison("open", 9.0, 11.0, 0.34, seed=1),
                            {**_comparison("open", 50.0, 50.0, 0.9), "training_steps_per_individual": 1_500}],
            "runs": [{"mode": "shared", "scene": "open", "training_steps_per_individual": 50_000, "mean_elite_fitness": f,
                      "elites": 8} for f in (0.95, 0.91)]}  # fmt: skip
    rows = {line.split(" | ")[0].lstrip("| "): line for line in tables._issue4_targets(long) if line.startswith("| ≥")
            or line.startswith("| shared") or line.startswith("| peak")}  # fmt: skip
    steps = rows["≥ 10× fewer env steps to reach independent's final QD-score"]
    assert steps.endswith(f"| 10.5× (9.0–12.0) | on 1 of 2 seeds | {ON} |"), "the 1,500-step pair is not counted"
    assert rows["≥ 10× less wall time to reach independent's final QD-score"].endswith(f"| on 1 of 2 seeds | {ON} |")
    assert rows["shared mean elite fitness ≥ 0.9"].endswith(f"| 0.95 (ceiling –), 0.91 (ceiling –) | yes | {ON} |")
    assert rows["peak PSS shared ≤ ⅓ of independent, 2 workers"].endswith(f"| 0.32 (0.30–0.34) | on 1 of 2 seeds | {ON} |")
    unreached = {**long, "comparisons": [_comparison("open", 20.0, 20.0, 0.3, reached=False)]}
    line = next(line for line in tables._issue4_targets(unreached) if "fewer env steps" in line)
    assert line.endswith(f"| seed 0: not reached (below 20.0×) | no; undecided on seed 0 (shared stopped before reaching "
                         f"the score) | {ON} |"), "a ratio to a QD-score never reached does not count as met"
    assert tables._met([]) == "–", "nothing measured is not a target met"


def test_a_wall_time_ratio_measured_while_the_machine_speed_changed_is_not_counted_as_met():
    """Found in review: a pair marked "not comparable" in its table still counted in the targets."""
    tables = _readme_tables()
    comparisons = [{**_comparison("open", 12.0, 11.0, 0.3), "speed_probe_ratio": 1.15},
                   {**_comparison("open", 12.0, 12.0, 0.3, seed=1), "speed_probe_ratio": 0.98}]  # fmt: skip
    line = tables._ratio_target("wall_time_ratio", "less wall time", "open", comparisons, ON)
    # and out of the figure it shows (session 40's review: it was in the mean and range)
    assert line.endswith(f"| 12.0× on seed 1 (left out, not comparable: seed 0 11.0× (machine speed changed)) "
                         f"| yes (comparable seeds only) | {ON} |"), line
    steps = tables._ratio_target("env_steps_ratio", "fewer env steps", "open", comparisons, ON)
    assert steps.endswith(f"| 12.0× (12.0–12.0) | yes | {ON} |"), "env steps do not depend on the machine's speed"
    before_probes = {k: v for k, v in _comparison("open", 12.0, 11.0, 0.3).items() if k != "speed_probe_ratio"}
    unprobed = tables._ratio_target("wall_time_ratio", "less wall time", "open", [before_probes], ON)
    assert "(machine speed not probed) | yes |" in unprobed


def test_a_machine_10_percent_faster_for_either_run_of_a_pair_counts_as_a_speed_change():
    """Found in review: the flag took |shared/independent - 1| >= 0.1, so independent's run on a
    machine 10.06% faster (ratio 0.9086) was not flagged while shared's 10% faster one was."""
    tables = _readme_tables()
    flagged = {ratio: tables._speeds_differ({"speed_probe_ratio": ratio}) for ratio in (0.9086, 1 / 1.1, 1.1, 1.0, 0.92, 1.09)}
    assert flagged == {0.9086: True, 1 / 1.1: True, 1.1: True, 1.0: False, 0.92: False, 1.09: False}
    assert not tables._speeds_differ({}), "pairs measured before the probes are not flagged (they are marked apart)"
    comparisons = [{**_comparison("open", 12.0, 11.0, 0.3), "speed_probe_ratio": 0.88},
                   {**_comparison("open", 12.0, 12.0, 0.3, seed=1), "speed_probe_ratio": 1.2}]  # fmt: skip
    line = tables._ratio_target("wall_time_ratio", "less wall time", "open", comparisons, ON)
    assert ("| – (left out, not comparable: seed 0 11.0× (machine speed changed); seed 1 12.0× (machine speed "
            "changed)) | – |") in line, "nothing comparable: no verdict (review, session 40)"


def test_a_table_wall_ratio_is_left_out_where_either_run_had_a_machine_10_percent_faster():
    """Found in review: the table's check took |independent/shared - 1| >= 0.1, one-sided as the
    targets' flag once was (a ratio of 0.905 passed)."""
    tables = _readme_tables()
    comparison = {"wall_time_ratio": 3.0}
    for speeds, shown in (((1.0, 0.905), "– (other machine speed)"), ((0.905, 1.0), "– (other machine speed)"),
                          ((1.0, 1.09), "3.0×"), ((1.0, 0.92), "3.0×")):  # fmt: skip
        shared = {"env_only_steps_per_s": 10_000 * speeds[0], "native_threads_limited": True}
        independent = {"env_only_steps_per_s": 10_000 * speeds[1], "native_threads_limited": True}
        assert tables._wall_ratio(comparison, shared, independent) == shown, speeds
    # session 40's review: one rule for every table: a pair whose probes moved, or whose runs come
    # from two sessions, is left out too (a learner-settings table showed 1.7× with probes 1.115)
    same = {"env_only_steps_per_s": 10_000, "native_threads_limited": True, **MEASURED}
    later = {**same, "machine": {"date": "2026-12-07 12:24 UTC", "commit": "def5678"}}
    assert tables._wall_ratio(comparison, same, same) == "3.0×"
    assert tables._wall_ratio(comparison, same, later) == "– (other session)"
    assert tables._wall_ratio({**comparison, "speed_probe_ratio": 1.115}, same, same) == "– (machine speed changed)"
    assert tables._wall_ratio({**comparison, "speed_probe_ratio": 1.0, "speed_probe_drift": 1.38}, same, same) == "– (machine speed changed)"


def test_a_file_without_a_pair_of_runs_yet_gives_a_row_that_says_so():
    """Seen in review (session 37): a run_length file holding only a first run (a new file, or one
    started again) made the README's regeneration fail dividing by zero."""
    tables = _readme_tables()
    line = tables._ratio_target("env_steps_ratio", "fewer env steps", "open", [], ON)
    assert line == f"| ≥ 10× fewer env steps to reach independent's final QD-score | open | no pair of runs yet | – | {ON} |"
    assert tables._spread([]) == "–"


def test_the_bound_of_a_ratio_never_reached_is_rounded_up_so_that_it_stays_a_bound():
    tables = _readme_tables()
    assert [tables._round_up(x) for x in (5.34, 5.399, 3.392, 5.3, 10.0, 9.96)] == ["5.4", "5.4", "3.4", "5.3", "10.0", "10.0"]


def test_memory_against_workers_judges_the_peaks_not_the_rounded_ratio(monkeypatch):
    """Found in review: the stored ratio is rounded to 3 digits, so 0.3334 read as 0.333 and met."""
    tables = _readme_tables()

    def row(workers: int, shared: float, independent: float) -> dict:
        return {"workers": workers, "shared": {"peak_pss_mb": shared}, "independent": {"peak_pss_mb": independent},
                "memory_ratio_pss": round(shared / independent, 3)}  # fmt: skip

    memory = {**MEASURED, "scene": "open", "training_steps_per_individual": 1_500,
              "rows": [row(8, 333.4, 1000.0), row(16, 320.0, 1000.0)]}  # fmt: skip
    monkeypatch.setattr(tables, "_load", lambda name: memory if name == "memory_scaling" else None)
    long = {**MEASURED, "budgets": [50_000], "workers": 2, "seeds": [0], "scenes": ["open"], "evaluations": 64,
            "comparisons": [_comparison("open", 5.0, 3.0, 0.8)], "runs": []}  # fmt: skip
    [line] = [line for line in tables._issue4_targets(long) if "by workers" in line]
    assert "| 0.33 at 8, 0.32 at 16 | from 16 workers |" in line, line
    memory["rows"] = [row(4, 792.7, 1377.8)]  # stored 0.575, which prints 0.57
    [line] = [line for line in tables._issue4_targets(long) if "by workers" in line]
    assert "| 0.58 at 4 |" in line, line


def test_the_targets_summary_says_when_and_on_what_code_each_row_was_measured():
    tables = _readme_tables()
    assert tables._measured(MEASURED) == ON
    assert tables._measured({"machine": {"date": "2026-11-29 21:07 UTC"}}) == \
        "2026-11-29, before the learner change, before the env fix"
    assert tables._measured({"machine": {"date": "2026-11-30 06:00 UTC"}}) == "2026-11-30, before the env fix"
    assert tables._measured({"machine": {"date": "2026-12-06 08:08 UTC", "commit": "46ef3a5"}}) == "2026-12-06, commit 46ef3a5"


def test_the_targets_summary_adds_the_longer_run_when_there_is_one(monkeypatch):
    tables = _readme_tables()
    longer = {**MEASURED, "scene": "open", "evaluations": 256, "seeds": [0, 1],
              "comparisons": [_comparison("open", 11.0, 4.0, 0.3), _comparison("open", 3.0, 2.0, 0.3, reached=False, seed=1)],
              "rows": [{"mode": "shared", "scene": "open", "mean_elite_fitness": 0.92, "elites": 8}, {"mode": "independent"}]}  # fmt: skip
    monkeypatch.setattr(tables, "_load", lambda name: longer if name == "run_length_50000" else None)
    long = {**MEASURED, "budgets": [50_000], "workers": 2, "seeds": [0], "scenes": ["open"], "evaluations": 64,
            "comparisons": [_comparison("open", 3.0, 2.0, 0.8)], "runs": []}  # fmt: skip
    rows = [line for line in tables._issue4_targets(long) if "longer run" in line]
    assert len(rows) == 3
    assert ("| open, 256 evaluations (longer run, seeds 0, 1) | seed 0: 11.0×; seed 1: not reached (below 3.0×) | "
            "on 1 of 2 seeds |") in rows[0], "unreached counts as missed"
    assert rows[1].endswith(f"| seed 0: 4.0×; seed 1: not reached (below 2.0×) | no | {ON} |")
    assert rows[2].endswith(f"| 0.92 (ceiling –) | yes | {ON} |")


def test_the_targets_summary_compares_the_shared_runs_with_each_baseline_of_the_baseline_updates_study(monkeypatch):
    tables = _readme_tables()

    def shared(seed: int, steps: dict) -> dict:
        return {"mode": "shared", "setting": "4 epochs", "seed": seed,
                "against": {name: _comparison("open", ratio, ratio / 2, 0.8, seed=seed) for name, ratio in steps.items()}}

    def independent(seed: int, setting: str, session: dict = MEASURED) -> dict:
        return {"mode": "independent", "setting": setting, "seed": seed, "env_only_steps_per_s": 10_000,
                "native_threads_limited": True, **session}

    other_session = {"machine": {"date": "2026-12-07 12:24 UTC", "commit": "def5678"}}
    study = {**MEASURED, "scene": "open", "evaluations": 64, "rows": [
        independent(0, "independent (reference)"), independent(1, "independent (reference)"),
        independent(0, "independent, 4 envs"), independent(1, "independent, 4 envs", other_session),
        {**shared(0, {"independent (reference)": 3.0, "independent, 4 envs": 2.4}), "env_only_steps_per_s": 10_000,
         "native_threads_limited": True, **MEASURED},
        {**shared(1, {"independent (reference)": 3.2, "independent, 4 envs": 2.6}), "env_only_steps_per_s": 10_000,
         "native_threads_limited": True, **MEASURED}]}  # fmt: skip
    monkeypatch.setattr(tables, "_load", lambda name: study if name == "learner_settings_baseline_updates_50000" else None)
    long = {**MEASURED, "budgets": [50_000], "workers": 2, "seeds": [0], "scenes": ["open"], "evaluations": 64,
            "comparisons": [_comparison("open", 3.0, 2.0, 0.8)], "runs": []}  # fmt: skip
    rows = [line for line in tables._issue4_targets(long) if "baseline_updates" in line]
    assert len(rows) == 4, rows
    assert ("| ≥ 10× fewer env steps to reach independent's final QD-score | open, against independent, 4 envs (learner "
            "settings, study `baseline_updates`, 64 evaluations, seeds 0, 1) | 2.5× (2.4–2.6) | no |") in rows[1]
    assert "less wall time" in rows[2] and "| 1.6× (1.5–1.6) | no |" in rows[2]
    # seed 1's 4-env baseline ran in another session: its wall time does not compare (session 40's review)
    assert "less wall time" in rows[3]
    assert "| 1.2× on seed 0 (left out, not comparable: seed 1 1.3× (other session)) | no (comparable seeds only) |" \
        in rows[3], rows[3]
    # the study on the obstacles scene (its own file) adds its rows after the open scene's
    files = {"learner_settings_baseline_updates_50000": study,
             "learner_settings_obstacles_baseline_updates_50000": {**study, "scene": "obstacles"}}
    monkeypatch.setattr(tables, "_load", files.get)
    rows = [line for line in tables._issue4_targets(long) if "baseline_updates" in line]
    assert len(rows) == 8 and all("| open, against" in r for r in rows[:4]) and all("| obstacles, against" in r for r in rows[4:])


def test_a_run_of_another_length_adds_its_ratio_rows_and_says_where_shared_stopped(monkeypatch, tmp_path):
    tables = _readme_tables()
    longer = {**MEASURED, "scene": "open", "evaluations": 256, "seeds": [0],
              "comparisons": [_comparison("open", 5.0, 2.0, 0.3)], "rows": [{"mode": "shared", "scene": "open", "mean_elite_fitness": 0.7, "elites": 8}]}  # fmt: skip
    extended = {**MEASURED, "scene": "open", "evaluations": 512, "shared_evaluations": 96, "seeds": [2],
                "comparisons": [_comparison("open", 8.4, 3.8, 0.3, seed=2)], "rows": [{"mode": "shared", "scene": "open", "mean_elite_fitness": 0.7, "elites": 8}]}  # fmt: skip
    (tmp_path / "run_length_50000_512.json").write_text("{}")  # found by its name; _load gives the contents
    monkeypatch.setattr(tables, "RESULTS", tmp_path)
    monkeypatch.setattr(tables, "_load", {"run_length_50000": longer, "run_length_50000_512": extended}.get)
    long = {**MEASURED, "budgets": [50_000], "workers": 2, "seeds": [0], "scenes": ["open"], "evaluations": 64,
            "comparisons": [_comparison("open", 3.0, 2.0, 0.8)], "runs": []}  # fmt: skip
    rows = [line for line in tables._issue4_targets(long) if "longer run" in line]
    assert [row.split(" | ")[1] for row in rows] == [
        "open, 256 evaluations (longer run, seed 0)", "open, 256 evaluations (longer run, seed 0)",
        "open, 512 evaluations (longer run, seed 2; shared stopped after 96)",
        "open, 512 evaluations (longer run, seed 2; shared stopped after 96)",
        "open, workspace goals, 256 evaluations (longer run)",
    ], "a shared run stopped early has no final fitness to judge"
    assert rows[2].endswith(f"| 8.4× | no | {ON} |") and rows[3].endswith(f"| 3.8× | no | {ON} |")


def test_where_a_seed_never_reached_the_score_every_seed_is_listed_with_the_most_its_ratio_could_be():
    tables = _readme_tables()
    comparisons = [_comparison("open", 5.4, 2.5, 0.3, reached=False, seed=0), _comparison("open", 13.6, 6.7, 0.3, seed=1),
                   _comparison("open", 8.4, 3.8, 0.3, seed=2)]  # fmt: skip
    steps = tables._ratio_target("env_steps_ratio", "fewer env steps", "open", comparisons, ON)
    assert steps.endswith(f"| seed 0: not reached (below 5.4×); seed 1: 13.6×; seed 2: 8.4× | on 1 of 3 seeds | {ON} |"), \
        "no mean over the seeds that reached it alone"
    wall = tables._ratio_target("wall_time_ratio", "less wall time", "open", comparisons, ON)
    assert wall.endswith(f"| seed 0: not reached (below 2.5×); seed 1: 6.7×; seed 2: 3.8× | no | {ON} |")
    stopped_early = [_comparison("open", 14.2, 2.5, 0.3, reached=False, seed=0), _comparison("open", 13.6, 6.7, 0.3, seed=1)]
    steps = tables._ratio_target("env_steps_ratio", "fewer env steps", "open", stopped_early, ON)
    assert steps.endswith("| on 1 of 2 seeds; undecided on seed 0 (shared stopped before reaching the score) "
                          f"| {ON} |"), "a bound above the target does not say the target was missed"


def test_the_reproducible_runs_table_says_where_two_runs_of_one_seed_part():
    tables = _readme_tables()
    run = {"qd_score": 3.0, "wall_s": 20.0, "held_back_s": 0.25}
    machine = {"cpu": "AMD EPYC", "cores": 2, "memory_gb": 23.5, "python": "3.11.7", **MEASURED["machine"]}
    data = {"machine": machine, "workers": 2, "evaluations": 64, "training_steps_per_individual": 1500, "pairs": [
        {"seed": 0, "parent_lag": 0, "runs": [run, {**run, "qd_score": 3.5}], "same_individuals": False,
         "first_differing_id": 12, "differing_individuals": 30, "same_archive_csv": False},
        {"seed": 0, "parent_lag": 2, "runs": [run, run], "same_individuals": True, "first_differing_id": None,
         "differing_individuals": 0, "same_archive_csv": True}]}  # fmt: skip
    rows = [line for line in tables._reproducible(data) if line.startswith("| 0 |")]
    assert rows == ["| 0 | 0 (default) | 3.00 / 3.50 | 20 s / 20 s | – | no: 30 of 64 differ, the first id 12 | no |",
                    "| 0 | 2 | 3.00 / 3.00 | 20 s / 20 s | 0.2 s / 0.2 s | yes | yes |"]  # fmt: skip


def test_a_file_whose_rows_come_from_two_sessions_names_both():
    """Found in review: run_length and learner_settings rows kept from an earlier session were dated
    and committed by the file's last session. Rows now record their own; older rows take the file's."""
    tables = _readme_tables()
    machine = {"cpu": "AMD EPYC", "cores": 2, "memory_gb": 23.5, "python": "3.11.7"}
    first = {**machine, "date": "2026-12-07 01:00 UTC", "commit": "aaa1111"}
    second = {**machine, "date": "2026-12-08 01:00 UTC", "commit": "bbb2222"}
    data = {"machine": second, "rows": [{"seed": 0, "machine": first}, {"seed": 0, "machine": first}, {"seed": 1, "machine": second}]}
    assert tables._measured_rows(data) == "2026-12-07, commit aaa1111 and 2026-12-08, commit bbb2222"
    assert "2026-12-07 01:00 UTC, commit aaa1111" in tables._machine_rows(data) and "commit bbb2222" in tables._machine_rows(data)
    older = {"machine": second, "rows": [{"seed": 0}, {"seed": 1}]}  # written before rows recorded their session
    assert tables._measured_rows(older) == tables._measured(older) == "2026-12-08, commit bbb2222"


def test_a_learner_settings_table_pairs_shared_runs_with_the_baseline_at_its_own_ppo_settings():
    """An independent run that differs from a shared one only in what per-body PPO alone reads
    (num_envs, num_steps, anneal_lr) is the baseline at another setting: its pairing is shown; one
    that differs in a setting both modes read (another width) is not."""
    tables = _readme_tables()
    comparison = {"independent_final_qd_score": 5.0, "shared_reached_independent_final": True,
                  "shared_env_steps_to_reach": 1_000_000, "env_steps_ratio": 2.5, "wall_time_ratio": 2.0,
                  "speed_probe_ratio": 1.0}  # fmt: skip
    common = {"seed": 0, "update_epochs": 4, "qd_score": 5.0, "elites": 10, "mean_elite_fitness": 0.5,
              "mean_fitness_last_quarter": 0.4, "wall_s": 100.0, "env_steps_per_s": 1.0, "env_only_steps_per_s": 1.0,
              "native_threads_limited": True}  # fmt: skip
    rows = [{**common, "mode": "independent", "setting": "independent, 4 envs", "sections": {"ppo": {"num_envs": 4}}},
            {**common, "mode": "independent", "setting": "independent, hidden 128", "sections": {"model": {"hidden_dim": 128}}},
            {**common, "mode": "shared", "setting": "4 epochs", "sections": {"ppo": {"update_epochs": 4}},
             "against": {"independent, 4 envs": comparison, "independent, hidden 128": comparison}}]  # fmt: skip
    machine = {"cpu": "AMD EPYC", "cores": 2, "memory_gb": 23.5, "python": "3.11.7", **MEASURED["machine"]}
    data = {"machine": machine, "scene": "open", "workers": 2, "evaluations": 64, "steps_per_individual": 50_000, "wall_s": 1.0,
            "study": "baseline_updates", "rows": rows}  # fmt: skip
    pairings = [line for line in tables._learner_settings(data) if line.startswith("| 0 | shared")]
    assert len(pairings) == 1 and "| independent, ppo.num_envs=4 |" in pairings[0], pairings


def test_a_benchmark_run_on_part_of_a_node_is_labelled_with_the_cores_it_could_use(monkeypatch):
    """Review: results were labelled with os.cpu_count(), the whole node's cores, also where the
    benchmark ran under taskset or a job's allocation."""
    from morphelites.config import usable_cores

    monkeypatch.syspath_prepend(str(ROOT / "benchmarks"))
    from common import _describe_machine

    tables = _readme_tables()

    _machine = tables._machine
    described = _describe_machine()
    assert described["cores"] == usable_cores()
    machine = {"cpu": "AMD EPYC", "cores": 2, "memory_gb": 23.5, "python": "3.11.7", "date": "2026-12-07 20:00 UTC"}
    assert "AMD EPYC, 2 cores, 23.5 GB" in _machine({"machine": machine})
    assert "AMD EPYC, 2 of 64 cores, 23.5 GB" in _machine({"machine": {**machine, "node_cores": 64}})


def test_a_benchmark_run_under_a_memory_limit_is_labelled_with_that_limit(monkeypatch):
    """Review: memory_gb was the node's total also where a container's or a job's cgroup limit
    allowed the benchmark less."""
    from morphelites import cgroup_limits

    monkeypatch.syspath_prepend(str(ROOT / "benchmarks"))
    import common

    node_gb = round(__import__("psutil").virtual_memory().total / 2**30, 1)
    monkeypatch.setattr(cgroup_limits, "cgroup_memory_limit", lambda: 4 * 2**30)
    described = common._describe_machine()
    assert (described["memory_gb"], described["node_memory_gb"]) == (4.0, node_gb)
    monkeypatch.setattr(cgroup_limits, "cgroup_memory_limit", lambda: None)
    described = common._describe_machine()
    assert described["memory_gb"] == node_gb and "node_memory_gb" not in described
    machine = {"cpu": "AMD EPYC", "cores": 2, "memory_gb": 4.0, "node_memory_gb": 23.5, "python": "3.11.7",
               "date": "2026-12-07 20:00 UTC"}  # fmt: skip
    assert "AMD EPYC, 2 cores, 4.0 of 23.5 GB" in _readme_tables()._machine({"machine": machine})


def test_the_thread_fix_note_gives_the_slowdown_its_table_measured_not_a_figure_from_elsewhere():
    """Found in review: the learner-settings table's ``*`` said "up to 8×", which no results file
    holds. The note now gives what the file itself measured: a run before the thread fix against
    its twin after it (same seed, mode and settings, the default epochs named or not), where the
    machine ran at about the same speed; nothing where the file has no such twin."""
    tables = _readme_tables()
    row = {"seed": 0, "mode": "independent", "update_epochs": 4, "env_only_steps_per_s": 72_000.0}
    after = {**row, "setting": "independent (reference)", "sections": {}, "wall_s": 100.0, "native_threads_limited": True}
    before = {**row, "setting": "independent, 4 epochs", "sections": {"ppo": {"update_epochs": 4}}, "wall_s": 610.0}
    other_seed = {**before, "seed": 1, "wall_s": 999.0}
    slower_machine = [{**after, "seed": 2}, {**before, "seed": 2, "env_only_steps_per_s": 36_000.0, "wall_s": 2000.0}]
    other_setting = {**before, "sections": {"ppo": {"update_epochs": 4, "num_envs": 4}}, "wall_s": 50.0}
    rows = [after, before, other_seed, *slower_machine, other_setting]
    assert tables._thread_handicaps(rows) == {"independent": [6.1]}
    assert "(independent runs took 6.1× as long as the same settings' runs after the fix)" in tables._star_note(rows)
    assert "took" not in tables._star_note([before]) and "do not compare" in tables._star_note([before])
    assert tables._star_note([after]) == ""


def test_learning_runs_that_timed_their_evaluations_with_the_training_are_labelled_without_a_share():
    """Found in review: the label gave "about 3–7%" as the evaluations' share, which the results
    file does not record."""
    tables = _readme_tables()
    machine = {"cpu": "AMD EPYC", "cores": 2, "memory_gb": 23.5, "python": "3.11.7", **MEASURED["machine"]}
    run = {"kind": "single", "seed": 0, "env_steps": 300_000, "final_success_rate": 1.0, "target": 0.9,
           "steps_to_target": 100_000, "wall_s_training": 90.0}  # fmt: skip
    header = tables._learning({"machine": machine, "parallel_runs": 2, "wall_s": 100.0, "runs": [run]})[0]
    assert header.endswith("; the training wall times include the curve's periodic evaluations)")
    assert "%" not in header
    own = tables._learning({"machine": machine, "parallel_runs": 2, "wall_s": 100.0,
                            "runs": [{**run, "training_wall_excludes_evaluations": True}]})[0]  # fmt: skip
    assert "periodic evaluations" not in own
