"""Measures: the archive's axes, each a function of a body with a range and a bin count."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np

from morphelites.morphology import BodySpace, Morphology

__all__ = ["MeasureSpec", "measure_specs", "compute_measures"]


@dataclass(frozen=True)
class MeasureSpec:
    """One archive axis: ``name``, value range [low, high] and number of bins."""

    name: str
    low: float
    high: float
    bins: int


def _taper(body: Morphology) -> float:
    first, last = body.link_lengths[0], body.link_lengths[-1]
    return (first - last) / (first + last)


_FUNCTIONS: dict[str, Callable[[Morphology], float]] = {
    "num_links": lambda body: float(body.num_links),
    "total_length": lambda body: body.total_length,
    "taper": _taper,
}


def measure_specs(space: BodySpace, names: tuple[str, ...], continuous_bins: int) -> list[MeasureSpec]:
    """Specs for ``names`` over ``space``: one bin per joint count; ``continuous_bins`` otherwise.

    ``total_length`` spans [min_links * min_link_length, max_links * max_link_length] metres;
    ``taper`` spans ±(max_link_length - min_link_length) / (max_link_length + min_link_length),
    the values bodies of the space take (with [-1, 1], 40% of its bins could never be filled);
    ``num_links`` bins are centred on the whole counts.
    """
    low_len, high_len = space.length_bounds
    specs = []
    for name in names:
        if name == "num_links":
            specs.append(MeasureSpec(name, space.min_links - 0.5, space.max_links + 0.5, space.num_link_choices))
        elif name == "total_length":
            specs.append(MeasureSpec(name, space.min_links * low_len, space.max_links * high_len, continuous_bins))
        elif name == "taper":
            widest = (high_len - low_len) / (high_len + low_len)
            specs.append(MeasureSpec(name, -widest, widest, continuous_bins))
        else:
            raise ValueError(f"unknown measure {name!r}; choose from {', '.join(_FUNCTIONS)}")
    return specs


def compute_measures(body: Morphology, specs: list[MeasureSpec]) -> np.ndarray:
    """Measure values of ``body``, shape (len(specs),), float64."""
    return np.array([_FUNCTIONS[s.name](body) for s in specs], dtype=np.float64)
