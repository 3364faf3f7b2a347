"""Pictures: archive heatmaps (pyribs) and a run's progress curves as PNG bytes, rollout
animations as GIF bytes; runs/ and the callers decide where they go."""

from __future__ import annotations

import io
import math
from typing import Any, Mapping, Sequence

import numpy as np

# The object-oriented Figure (no pyplot) renders to files without touching the user's backend.
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from morphelites.ribs_without_torch import import_ribs

__all__ = ["heatmap_png", "progress_curves_png", "progress_curves_figure", "ppo_curves_png", "ppo_curves_figure",
           "animation_gif", "load_drawing_modules", "thinned", "MAX_CURVE_POINTS"]  # fmt: skip

#: Most rows a curve draws: a longer run's are thinned to this many evenly spaced ones (:func:`thinned`).
MAX_CURVE_POINTS = 2_000


def load_drawing_modules() -> None:
    """Import now what the first heatmap and the first PNG import on use: pyribs' visualize
    (with shapely, seaborn and numba), matplotlib's Agg canvas and Pillow's image plugins.

    Why: an evolution run calls this before it installs its Ctrl-C handler. A second Ctrl-C
    raises KeyboardInterrupt wherever the main process is, and one that lands inside a first
    import leaves a half-initialised module in ``sys.modules``; the final heatmap then failed
    with "partially initialized module 'shapely' has no attribute 'lib'" and the run exited 1
    without its summary.json.
    """
    import_ribs()
    import ribs.visualize  # noqa: F401
    from matplotlib.backends import backend_agg  # noqa: F401
    from PIL import Image

    Image.init()


def heatmap_png(archive: "object", title_prefix: str = "") -> bytes:
    """PNG of a BodyArchive's elite fitness over its measures (pyribs ``grid_archive_heatmap``).

    A 2-D archive is drawn as a grid (first measure on x); a 1-D archive as a strip.
    """
    import_ribs()  # here, not at module level: drawing curves needs no pyribs
    from ribs.visualize import grid_archive_heatmap

    specs = archive.specs  # type: ignore[attr-defined]
    fig = Figure(figsize=(7, 4.5))
    ax = fig.subplots()
    grid = archive.archive  # type: ignore[attr-defined]
    elites = None
    if len(specs) == 1 and len(grid) == 1:
        # pyribs 0.12 squeezes a 1-D archive's only cell index to a scalar and then fails to put the
        # elite's one-element objective array in it ("setting an array element with a sequence"):
        # the same elite twice draws the same strip.
        elites = grid.data(return_type="pandas").iloc[[0, 0]]
    grid_archive_heatmap(grid, ax=ax, df=elites, vmin=0.0, vmax=1.0, cmap="viridis", cbar_kwargs={"label": "fitness"})
    ax.set_xlabel(_label(specs[0].name))
    if len(specs) > 1:
        ax.set_ylabel(_label(specs[1].name))
    stats = archive.stats()  # type: ignore[attr-defined]
    ax.set_title(f"{title_prefix}{int(stats['elites'])} elites, QD-score {stats['qd_score']:.2f}, coverage {stats['coverage']:.0%}")
    fig.tight_layout()
    return _png(fig, dpi=100)


def progress_curves_png(metrics: Sequence[Mapping[str, object]], reevaluations: Sequence[Mapping[str, object]] = (),
                        title: str = "") -> bytes:
    """PNG (1170 x 648 px) of :func:`progress_curves_figure`."""
    return _png(progress_curves_figure(metrics, reevaluations, title), dpi=90)


def progress_curves_figure(metrics: Sequence[Mapping[str, object]], reevaluations: Sequence[Mapping[str, object]] = (),
                           title: str = "") -> Figure:
    """An evolution run's progress, from its metrics.csv rows (one per evaluation): six panels.

    Panels: QD-score against env steps and against wall time, best and mean elite fitness and
    coverage against evaluations, the collection rate, and in shared mode (rows with
    ``policy_version``) the policy lag and the learner's utilisation. Re-evaluation rounds
    (reevaluations.csv rows) are drawn as markers: the same elites scored by the policy of then.

    Args:
        metrics: rows with at least ``evaluations``, ``env_steps``, ``wall_s`` (s), ``qd_score``,
            ``coverage`` (0..1), ``best_fitness``, ``mean_elite_fitness``, as numbers or as the
            strings csv.DictReader gives; a point with a missing or empty value is left out.
        reevaluations: rows with ``evaluations``, ``env_steps``, ``wall_s``,
            ``qd_score_reevaluated`` and ``mean_elite_fitness_reevaluated``.
        title: the figure's title (e.g. the run directory and its mode).

    A long run's rows are thinned to :data:`MAX_CURVE_POINTS` evenly spaced ones (the last always
    among them): a 1170 px wide panel shows no more, and drawing 200,000 rows took seconds of the
    main process each time (review).
    """
    if not metrics:
        raise ValueError("progress_curves_figure needs at least one metrics row (metrics.csv has none yet)")
    metrics = thinned(metrics, MAX_CURVE_POINTS)
    evaluations, env_steps, wall_s = (_column(metrics, k) for k in ("evaluations", "env_steps", "wall_s"))
    longest = np.nanmax(wall_s, initial=0.0)
    wall_unit, per_unit = ("h", 3600.0) if longest > 3 * 3600 else ("min", 60.0) if longest > 180 else ("s", 1.0)
    wall = wall_s / per_unit
    again = {k: _column(reevaluations, k) for k in ("evaluations", "env_steps", "wall_s", "qd_score_reevaluated",
                                                     "mean_elite_fitness_reevaluated")}  # fmt: skip
    again_wall = again["wall_s"] / per_unit
    shared = any(np.isfinite(_column(metrics, "policy_version")))

    fig = Figure(figsize=(13, 7.2))
    axes = fig.subplots(2, 3).ravel()
    qd = _column(metrics, "qd_score")
    for ax, x, x_again, xlabel in ((axes[0], env_steps, again["env_steps"], "env steps"),
                                   (axes[1], wall, again_wall, f"wall time ({wall_unit})")):  # fmt: skip
        _plot(ax, x, qd, label="as found")
        if reevaluations:
            _plot(ax, x_again, again["qd_score_reevaluated"], "o", label="re-evaluated")
            ax.legend(fontsize=8)
        ax.set(xlabel=xlabel, ylabel="QD-score", title=f"QD-score against {xlabel.split(' (')[0]}")
    _plot(axes[2], evaluations, _column(metrics, "best_fitness"), label="best")
    _plot(axes[2], evaluations, _column(metrics, "mean_elite_fitness"), label="mean elite")
    if reevaluations:
        _plot(axes[2], again["evaluations"], again["mean_elite_fitness_reevaluated"], "o", label="mean elite, re-evaluated")
    axes[2].set(xlabel="evaluations", ylabel="fitness", title="Fitness", ylim=(0.0, 1.02))
    axes[2].legend(fontsize=8)
    _plot(axes[3], evaluations, 100 * _column(metrics, "coverage"))
    elites = _last(_column(metrics, "elites"))
    axes[3].set(xlabel="evaluations", ylabel="coverage (%)", ylim=(0.0, None), title=f"Coverage ({elites:.0f} elites)")
    _plot(axes[4], wall, _column(metrics, "env_steps_per_s"))
    axes[4].set(xlabel=f"wall time ({wall_unit})", ylabel="env steps/s", title="Env steps per second, since the start")
    if shared:
        _plot(axes[5], evaluations, _column(metrics, "mean_policy_lag"), label="mean lag")
        _plot(axes[5], evaluations, _column(metrics, "max_policy_lag"), label="max lag")
        axes[5].set(xlabel="evaluations", ylabel="policy versions", title="Policy lag and learner utilisation")
        busy = axes[5].twinx()
        _plot(busy, evaluations, 100 * _column(metrics, "learner_utilisation"), color="tab:green", label="learner busy")
        busy.set(ylabel="learner busy (%)", ylim=(0, 105))
        handles = axes[5].get_legend_handles_labels()
        more = busy.get_legend_handles_labels()
        axes[5].legend(handles[0] + more[0], handles[1] + more[1], fontsize=8)
    else:
        axes[5].set_axis_off()
    for ax in axes[: 6 if shared else 5]:
        ax.grid(alpha=0.3)
    if title:
        fig.suptitle(title, parse_math=False)  # a run directory named like jobs/$ID_$SEED is no formula (review)
    fig.tight_layout()
    return fig


def ppo_curves_png(metrics: Sequence[Mapping[str, object]], title: str = "") -> bytes:
    """PNG (1170 x 324 px) of :func:`ppo_curves_figure`."""
    return _png(ppo_curves_figure(metrics, title), dpi=90)


def ppo_curves_figure(metrics: Sequence[Mapping[str, object]], title: str = "") -> Figure:
    """A ``morphelites ppo`` run's learning curves, from its metrics.csv rows (one per update),
    all against env steps: episode return (and success rate, on our bodies), the losses, and
    the update's approximate KL and clip fraction.

    Args:
        metrics: rows with ``env_steps``, ``episode_return``, ``policy_loss``, ``value_loss``,
            ``approx_kl``, ``clip_fraction`` and optionally ``success_rate``, as numbers or
            strings; a point with a missing or empty value (no episode ended in that update) is
            left out.
        title: the figure's title.
    """
    if not metrics:
        raise ValueError("ppo_curves_figure needs at least one metrics row (metrics.csv has none yet)")
    metrics = thinned(metrics, MAX_CURVE_POINTS)  # as progress_curves_figure
    column = lambda key: _column(metrics, key)  # noqa: E731
    steps = column("env_steps")
    fig = Figure(figsize=(13, 3.6))
    axes = fig.subplots(1, 3)
    _plot(axes[0], steps, column("episode_return"), label="episode return")
    axes[0].set(xlabel="env steps", ylabel="mean episode return", title="Return")
    success = column("success_rate")
    if np.isfinite(success).any():
        rate = axes[0].twinx()
        _plot(rate, steps, success, color="tab:orange", label="success rate")
        rate.set(ylabel="success rate", ylim=(0.0, 1.02))
        lines = [ax.get_legend_handles_labels() for ax in (axes[0], rate)]
        axes[0].legend(lines[0][0] + lines[1][0], lines[0][1] + lines[1][1], fontsize=8)
    for key in ("policy_loss", "value_loss"):
        _plot(axes[1], steps, column(key), label=key.replace("_", " "))
    axes[1].set(xlabel="env steps", ylabel="loss", title="Losses (mean over the update)")
    axes[1].legend(fontsize=8)
    for key in ("approx_kl", "clip_fraction"):
        _plot(axes[2], steps, column(key), label=key.replace("_", " "))
    axes[2].set(xlabel="env steps", title="Update size")
    axes[2].legend(fontsize=8)
    for ax in axes:
        ax.grid(alpha=0.3)
    if title:
        fig.suptitle(title, parse_math=False)  # a run directory named like jobs/$ID_$SEED is no formula (review)
    fig.tight_layout()
    return fig


def thinned(rows: Sequence[Mapping[str, object]], most: int) -> Sequence[Mapping[str, object]]:
    """``rows`` as they are if there are at most ``most`` (>= 2), else ``most`` of them evenly
    spaced, the first and the last included."""
    if len(rows) <= most:
        return rows
    return [rows[i] for i in np.linspace(0, len(rows) - 1, most).round().astype(int)]


def _plot(ax: Axes, x: np.ndarray, y: np.ndarray, *style: str, **kwargs: Any) -> None:
    """``ax.plot`` of the points where both x and y are finite: a row without a value (no episode
    ended in that update, a cell a crash left empty) is passed over, not drawn as zero."""
    keep = np.isfinite(x) & np.isfinite(y)
    ax.plot(x[keep], y[keep], *style, **kwargs)


def _png(fig: Figure, dpi: int) -> bytes:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=dpi)
    return buffer.getvalue()


def _column(rows: Sequence[Mapping[str, object]], key: str) -> np.ndarray:
    """One column of metrics rows as floats, NaN where a row has no value."""
    return np.array([_number(row.get(key)) for row in rows], dtype=float)


def _number(value: object) -> float:
    """A metrics cell as a float: NaN for None, empty or unparsable cells."""
    try:
        return float(value) if value not in (None, "") else math.nan  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return math.nan


def _last(values: np.ndarray) -> float:
    """The last finite value (0 if there is none)."""
    finite = values[np.isfinite(values)]
    return float(finite[-1]) if finite.size else 0.0


def _label(name: str) -> str:
    return {"num_links": "joint count", "total_length": "total length (m)", "taper": "taper"}.get(name, name)


def animation_gif(episodes: Sequence[Sequence[np.ndarray]], frame_s: float, captions: Sequence[str] = (),
                  hold_s: float = 0.6) -> bytes:
    """A looping GIF (Pillow) that plays ``episodes`` one after the other.

    Args:
        episodes: per episode, its frames in order, each (height, width, 3) uint8 RGB, all one size.
        frame_s: seconds each frame is shown (GIF stores hundredths, so frames alternate between
            the hundredths either side and the whole plays in real time; viewers slow frames
            shorter than 0.02 s down to 0.1 s, so shorter values are refused).
        captions: per episode, a line of text drawn in its frames' top-left corner (none if empty).
        hold_s: extra seconds the last frame of each episode stays, so an ending can be seen.
    """
    from PIL import Image, ImageDraw

    if not episodes or not all(len(frames) for frames in episodes):
        raise ValueError("animation_gif needs at least one episode, and at least one frame in each")
    if frame_s < 0.02:
        raise ValueError(f"frame_s must be at least 0.02 s (GIF viewers slow shorter frames down), got {frame_s}")
    if captions and len(captions) != len(episodes):
        raise ValueError(f"{len(captions)} captions for {len(episodes)} episodes; give one per episode or none")
    shapes = {frame.shape for frames in episodes for frame in frames}
    if len(shapes) != 1 or len(next(iter(shapes))) != 3 or next(iter(shapes))[2] != 3:
        raise ValueError(f"frames must all be (height, width, 3) RGB of one size; got shapes {sorted(shapes)}")
    images, durations_ms = [], []
    # GIF stores whole hundredths of a second. Each frame ends at its true time rounded to the
    # nearest hundredth, so a 45 ms frame alternates 40 and 50 ms and the whole plays in real time
    # (rounding each frame alone would play it 11% fast).
    elapsed_s, shown_cs = 0.0, 0
    for index, frames in enumerate(episodes):
        for k, frame in enumerate(frames):
            image = Image.fromarray(np.asarray(frame, dtype=np.uint8))  # (h, w, 3) uint8 is RGB
            if captions:
                draw = ImageDraw.Draw(image)
                draw.text((6, 4), captions[index], fill=(255, 255, 255), stroke_width=2, stroke_fill=(0, 0, 0))
            images.append(image)
            last = k == len(frames) - 1
            elapsed_s += frame_s + (hold_s if last else 0.0)
            end_cs = round(100 * elapsed_s)
            durations_ms.append(10 * (end_cs - shown_cs))
            shown_cs = end_cs
    buffer = io.BytesIO()
    images[0].save(buffer, format="GIF", save_all=True, append_images=images[1:], duration=durations_ms, loop=0,
                   optimize=False, disposal=1)  # fmt: skip
    return buffer.getvalue()
