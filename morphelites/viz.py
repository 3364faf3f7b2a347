"""Pictures: archive heatmaps (pyribs), rendered to PNG bytes; runs/ decides where they go."""

from __future__ import annotations

import io

# The object-oriented Figure (no pyplot) renders to files without touching the user's backend.
from matplotlib.figure import Figure

from morphelites.ribs_without_torch import import_ribs

import_ribs()
from ribs.visualize import grid_archive_heatmap  # noqa: E402  (after import_ribs: no torch in this process)

__all__ = ["heatmap_png"]


def heatmap_png(archive: "object", title_prefix: str = "") -> bytes:
    """PNG of a BodyArchive's elite fitness over its measures (pyribs ``grid_archive_heatmap``).

    A 2-D archive is drawn as a grid (first measure on x); a 1-D archive as a strip.
    """
    specs = archive.specs  # type: ignore[attr-defined]
    fig = Figure(figsize=(7, 4.5))
    ax = fig.subplots()
    grid_archive_heatmap(archive.archive, ax=ax, vmin=0.0, vmax=1.0, cmap="viridis",  # type: ignore[attr-defined]
                         cbar_kwargs={"label": "fitness"})  # fmt: skip
    ax.set_xlabel(_label(specs[0].name))
    if len(specs) > 1:
        ax.set_ylabel(_label(specs[1].name))
    stats = archive.stats()  # type: ignore[attr-defined]
    ax.set_title(f"{title_prefix}{int(stats['elites'])} elites, QD-score {stats['qd_score']:.2f}, coverage {stats['coverage']:.0%}")
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=100)
    return buffer.getvalue()


def _label(name: str) -> str:
    return {"num_links": "joint count", "total_length": "total length (m)", "taper": "taper"}.get(name, name)
