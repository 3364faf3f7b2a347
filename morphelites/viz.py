"""Pictures: archive heatmaps (pyribs) as PNG bytes, rollout animations as GIF bytes; runs/ and
the callers decide where they go."""

from __future__ import annotations

import io
from typing import Sequence

import numpy as np

# The object-oriented Figure (no pyplot) renders to files without touching the user's backend.
from matplotlib.figure import Figure

from morphelites.ribs_without_torch import import_ribs

import_ribs()
from ribs.visualize import grid_archive_heatmap  # noqa: E402  (after import_ribs: no torch in this process)

__all__ = ["heatmap_png", "animation_gif"]


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


def animation_gif(episodes: Sequence[Sequence[np.ndarray]], frame_s: float, captions: Sequence[str] = (),
                  hold_s: float = 0.6) -> bytes:
    """A looping GIF (Pillow) that plays ``episodes`` one after the other.

    Args:
        episodes: per episode, its frames in order, each (height, width, 3) uint8 RGB, all one size.
        frame_s: seconds each frame is shown (GIF stores hundredths; viewers slow frames shorter
            than 0.02 s down to 0.1 s, so shorter values are refused).
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
    for index, frames in enumerate(episodes):
        for k, frame in enumerate(frames):
            image = Image.fromarray(np.asarray(frame, dtype=np.uint8))  # (h, w, 3) uint8 is RGB
            if captions:
                draw = ImageDraw.Draw(image)
                draw.text((6, 4), captions[index], fill=(255, 255, 255), stroke_width=2, stroke_fill=(0, 0, 0))
            images.append(image)
            last = k == len(frames) - 1
            durations_ms.append(round(1000 * (frame_s + (hold_s if last else 0.0))))
    buffer = io.BytesIO()
    images[0].save(buffer, format="GIF", save_all=True, append_images=images[1:], duration=durations_ms, loop=0,
                   optimize=False, disposal=1)  # fmt: skip
    return buffer.getvalue()
