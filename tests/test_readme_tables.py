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


def _comparison(scene: str, steps_ratio: float, wall_ratio: float, memory: float, reached: bool = True) -> dict:
    return {"scene": scene, "training_steps_per_individual": 50_000, "shared_reached_independent_final": reached,
            "env_steps_ratio": steps_ratio, "wall_time_ratio": wall_ratio, "memory_ratio_pss": memory}


def test_the_targets_summary_judges_each_target_against_its_threshold_seed_by_seed(monkeypatch):
    tables = _readme_tables()
    monkeypatch.setattr(tables, "_load", lambda name: None)  # no ceiling, reachable or memory files
    long = {"budgets": [1_500, 50_000], "workers": 2, "seeds": [0, 1], "scenes": ["open"], "evaluations": 64,
            "comparisons": [_comparison("open", 12.0, 3.0, 0.30), _comparison("open", 9.0, 11.0, 0.34),
                            {**_comparison("open", 50.0, 50.0, 0.9), "training_steps_per_individual": 1_500}],
            "runs": [{"mode": "shared", "scene": "open", "training_steps_per_individual": 50_000, "mean_elite_fitness": f,
                      "elites": 8} for f in (0.95, 0.91)]}  # fmt: skip
    rows = {line.split(" | ")[0].lstrip("| "): line for line in tables._issue4_targets(long) if line.startswith("| ≥")
            or line.startswith("| shared") or line.startswith("| peak")}  # fmt: skip
    steps = rows["≥ 10× fewer env steps to reach independent's final QD-score"]
    assert "10.5× (9.0–12.0)" in steps and steps.endswith("| on 1 of 2 seeds |"), "the 1,500-step pair is not counted"
    assert rows["≥ 10× less wall time to reach independent's final QD-score"].endswith("| on 1 of 2 seeds |")
    assert rows["shared mean elite fitness ≥ 0.9"].endswith("| 0.95 (ceiling –), 0.91 (ceiling –) | yes |")
    assert rows["peak PSS shared ≤ ⅓ of independent, 2 workers"].endswith("| 0.32 (0.30–0.34) | on 1 of 2 seeds |")
    unreached = {**long, "comparisons": [_comparison("open", 20.0, 20.0, 0.3, reached=False)]}
    line = next(line for line in tables._issue4_targets(unreached) if "fewer env steps" in line)
    assert line.endswith("| not reached | no |"), "a ratio to a QD-score never reached does not count"
    assert tables._met([]) == "–", "nothing measured is not a target met"


def test_the_targets_summary_adds_the_longer_run_when_there_is_one(monkeypatch):
    tables = _readme_tables()
    longer = {"scene": "open", "evaluations": 256, "seeds": [0, 1],
              "comparisons": [_comparison("open", 11.0, 4.0, 0.3), _comparison("open", 3.0, 2.0, 0.3, reached=False)],
              "rows": [{"mode": "shared", "scene": "open", "mean_elite_fitness": 0.92, "elites": 8}, {"mode": "independent"}]}  # fmt: skip
    monkeypatch.setattr(tables, "_load", lambda name: longer if name == "run_length_50000" else None)
    long = {"budgets": [50_000], "workers": 2, "seeds": [0], "scenes": ["open"], "evaluations": 64,
            "comparisons": [_comparison("open", 3.0, 2.0, 0.8)], "runs": []}  # fmt: skip
    rows = [line for line in tables._issue4_targets(long) if "longer run" in line]
    assert len(rows) == 3
    assert "| open, 256 evaluations (longer run, seeds 0, 1) | 11.0× | on 1 of 2 seeds |" in rows[0], "unreached counts as missed"
    assert rows[1].endswith("| 4.0× | no |")
    assert rows[2].endswith("| 0.92 (ceiling –) | yes |")


def test_a_run_of_another_length_adds_its_ratio_rows_and_says_where_shared_stopped(monkeypatch, tmp_path):
    tables = _readme_tables()
    longer = {"scene": "open", "evaluations": 256, "seeds": [0],
              "comparisons": [_comparison("open", 5.0, 2.0, 0.3)], "rows": [{"mode": "shared", "scene": "open", "mean_elite_fitness": 0.7, "elites": 8}]}  # fmt: skip
    extended = {"scene": "open", "evaluations": 512, "shared_evaluations": 96, "seeds": [2],
                "comparisons": [_comparison("open", 8.4, 3.8, 0.3)], "rows": [{"mode": "shared", "scene": "open", "mean_elite_fitness": 0.7, "elites": 8}]}  # fmt: skip
    (tmp_path / "run_length_50000_512.json").write_text("{}")  # found by its name; _load gives the contents
    monkeypatch.setattr(tables, "RESULTS", tmp_path)
    monkeypatch.setattr(tables, "_load", {"run_length_50000": longer, "run_length_50000_512": extended}.get)
    long = {"budgets": [50_000], "workers": 2, "seeds": [0], "scenes": ["open"], "evaluations": 64,
            "comparisons": [_comparison("open", 3.0, 2.0, 0.8)], "runs": []}  # fmt: skip
    rows = [line for line in tables._issue4_targets(long) if "longer run" in line]
    assert [row.split(" | ")[1] for row in rows] == [
        "open, 256 evaluations (longer run, seed 0)", "open, 256 evaluations (longer run, seed 0)",
        "open, 512 evaluations (longer run, seed 2; shared stopped after 96)",
        "open, 512 evaluations (longer run, seed 2; shared stopped after 96)",
        "open, workspace goals, 256 evaluations (longer run)",
    ], "a shared run stopped early has no final fitness to judge"
    assert rows[2].endswith("| 8.4× | no |") and rows[3].endswith("| 3.8× | no |")


def test_a_seed_where_shared_never_reached_the_score_is_named_with_the_most_its_ratio_could_be():
    tables = _readme_tables()
    comparisons = [{**_comparison("open", 13.6, 6.7, 0.3), "seed": 1},
                   {**_comparison("open", None, None, 0.3, reached=False), "seed": 0}]  # fmt: skip
    rows = [{"seed": 0, "mode": "independent", "env_steps": 27_000_000, "wall_s": 2_500.0},
            {"seed": 0, "mode": "shared", "env_steps": 5_000_000, "wall_s": 1_000.0}]  # fmt: skip
    steps = tables._ratio_target("env_steps_ratio", "fewer env steps", "open", comparisons, rows)
    assert steps.endswith("| 13.6×; seed 0: not reached (below 5.4×) | on 1 of 2 seeds |")
    wall = tables._ratio_target("wall_time_ratio", "less wall time", "open", comparisons, rows)
    assert wall.endswith("| 6.7×; seed 0: not reached (below 2.5×) | no |")
