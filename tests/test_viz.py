"""viz: a run's curves (evolution progress, PPO learning), drawn from metrics rows as metrics.csv holds them."""

import io

import numpy as np
import pytest
from PIL import Image

from morphelites.viz import ppo_curves_figure, ppo_curves_png, progress_curves_figure, progress_curves_png


def _rows(shared: bool) -> list[dict[str, str]]:
    """metrics.csv rows as csv.DictReader gives them (strings; one cell left empty)."""
    rows = []
    for k in range(1, 6):
        row = {"evaluations": str(k), "env_steps": str(1000 * k), "wall_s": str(100.0 * k), "qd_score": str(0.5 * k),
               "coverage": str(0.04 * k), "best_fitness": str(0.1 * k), "mean_elite_fitness": str(0.05 * k),
               "elites": str(k), "env_steps_per_s": str(10.0)}  # fmt: skip
        if shared:
            row |= {"policy_version": str(3 * k), "mean_policy_lag": "1.5", "max_policy_lag": "3", "learner_utilisation": "0.9"}
        rows.append(row)
    rows[2]["qd_score"] = ""  # a cell a crash left empty: left out, not drawn as zero
    return rows


def _ydata(ax, label: str) -> np.ndarray:
    return next(np.asarray(line.get_ydata(), dtype=float) for line in ax.get_lines() if line.get_label() == label)


def test_independent_curves_plot_the_rows_without_an_empty_cell_and_no_learner_panel():
    fig = progress_curves_figure(_rows(shared=False), title="run: independent")
    axes = fig.axes
    qd_line = axes[0].get_lines()[0]
    np.testing.assert_allclose(qd_line.get_xdata(), [1000, 2000, 4000, 5000])
    np.testing.assert_allclose(qd_line.get_ydata(), [0.5, 1.0, 2.0, 2.5])
    assert axes[1].get_xlabel() == "wall time (min)", "500 s of run: minutes"
    np.testing.assert_allclose(axes[1].get_lines()[0].get_xdata(), np.array([1, 2, 4, 5]) * 100 / 60)
    np.testing.assert_allclose(_ydata(axes[2], "mean elite"), [0.05, 0.1, 0.15, 0.2, 0.25])
    np.testing.assert_allclose(axes[3].get_lines()[0].get_ydata(), [4, 8, 12, 16, 20])
    assert axes[3].get_title() == "Coverage (5 elites)"
    assert not axes[5].axison, "no learner in independent mode"
    assert fig._suptitle.get_text() == "run: independent"


def test_shared_curves_show_reevaluations_as_markers_and_the_learner_panel():
    again = [{"evaluations": "5", "env_steps": "5600", "wall_s": "520", "qd_score_reevaluated": "3.1",
              "mean_elite_fitness_reevaluated": "0.62"}]  # fmt: skip
    axes = progress_curves_figure(_rows(shared=True), again).axes
    np.testing.assert_allclose(_ydata(axes[0], "re-evaluated"), [3.1])
    np.testing.assert_allclose(next(l for l in axes[0].get_lines() if l.get_label() == "re-evaluated").get_xdata(), [5600])
    np.testing.assert_allclose(_ydata(axes[2], "mean elite, re-evaluated"), [0.62])
    assert axes[5].axison
    np.testing.assert_allclose(_ydata(axes[5], "max lag"), [3] * 5)
    np.testing.assert_allclose(_ydata(axes[6], "learner busy"), [90] * 5)  # the twin axis, in %


def test_png_has_the_documented_size_and_empty_metrics_are_refused():
    image = Image.open(io.BytesIO(progress_curves_png(_rows(shared=True))))
    assert image.format == "PNG" and image.size == (1170, 648)
    with pytest.raises(ValueError, match="at least one metrics row"):
        progress_curves_png([])


def test_ppo_curves_plot_return_and_success_against_env_steps():
    rows = [{"env_steps": str(512 * k), "episode_return": "" if k == 1 else str(float(k)), "success_rate": str(k / 10),
             "policy_loss": "-0.01", "value_loss": "0.5", "approx_kl": "0.01", "clip_fraction": "0.1"}
            for k in range(1, 5)]  # fmt: skip
    fig = ppo_curves_figure(rows, title="ppo")
    returns = fig.axes[0].get_lines()[0]
    np.testing.assert_allclose(returns.get_xdata(), [1024, 1536, 2048], err_msg="no episode had ended after the first update")
    np.testing.assert_allclose(returns.get_ydata(), [2.0, 3.0, 4.0])
    np.testing.assert_allclose(_ydata(fig.axes[3], "success rate"), [0.1, 0.2, 0.3, 0.4])  # the twin axis
    np.testing.assert_allclose(_ydata(fig.axes[1], "value loss"), [0.5] * 4)
    gym_rows = [{k: v for k, v in row.items() if k != "success_rate"} for row in rows]
    assert len(ppo_curves_figure(gym_rows).axes) == 3, "a Gymnasium task has no success rate: no twin axis"
    assert Image.open(io.BytesIO(ppo_curves_png(rows))).size == (1170, 324)


def test_a_title_with_dollar_signs_is_drawn_as_written():
    """Review: a run directory named like ``jobs/$SLURM_JOB_ID_$SEED`` (a job script's single quotes)
    went into the curves' title, which Matplotlib parsed as a formula: no curves.png, ever."""
    title = "$SLURM_JOB_ID_$SEED: shared mode, 2 of 2 evaluations"
    assert progress_curves_figure(_rows(shared=True), title=title)._suptitle.get_text() == title
    assert Image.open(io.BytesIO(progress_curves_png(_rows(shared=True), title=title))).format == "PNG"
    rows = [{"env_steps": "512", "episode_return": "1.0", "policy_loss": "0", "value_loss": "0", "approx_kl": "0",
             "clip_fraction": "0"}]  # fmt: skip
    assert Image.open(io.BytesIO(ppo_curves_png(rows, title=title))).format == "PNG"


def test_a_long_run_is_drawn_from_evenly_spaced_rows_its_first_and_last_among_them():
    """Review (session 44): curves.png drew every row; at 200,000 evaluations a drawing took seconds
    of the main process. It draws MAX_CURVE_POINTS rows at most, the last (the run's end) always."""
    from morphelites.viz import MAX_CURVE_POINTS, thinned

    rows = [{"evaluations": str(k), "env_steps": str(100 * k), "wall_s": str(k), "qd_score": str(k / 10),
             "coverage": "0.5", "best_fitness": "0.9", "mean_elite_fitness": "0.5", "elites": "7"}
            for k in range(1, 10 * MAX_CURVE_POINTS + 2)]  # fmt: skip
    qd_line = progress_curves_figure(rows).axes[0].get_lines()[0]
    x = np.asarray(qd_line.get_xdata())
    assert len(x) == MAX_CURVE_POINTS and x[0] == 100 and x[-1] == 100 * len(rows)
    assert np.ptp(np.diff(x)) <= 100, "evenly spaced, to a row"
    assert thinned(rows[:5], MAX_CURVE_POINTS) == rows[:5], "a short run is drawn whole"
    steps = ppo_curves_figure([{"env_steps": str(k), "episode_return": "1"} for k in range(3 * MAX_CURVE_POINTS)])
    assert len(steps.axes[0].get_lines()[0].get_xdata()) == MAX_CURVE_POINTS
