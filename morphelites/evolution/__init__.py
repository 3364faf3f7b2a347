"""MAP-Elites over bodies: archive (pyribs), measures, variation, and the evolution trainer.

Nothing in this package imports torch: training happens in worker processes or behind the
evaluation backends it is handed.
"""

from morphelites.evolution.archive import STATUS_NAMES, BodyArchive
from morphelites.evolution.measures import MeasureSpec, compute_measures, measure_specs
from morphelites.evolution.variation import Offspring, Variation

__all__ = ["BodyArchive", "STATUS_NAMES", "MeasureSpec", "measure_specs", "compute_measures", "Variation", "Offspring"]
