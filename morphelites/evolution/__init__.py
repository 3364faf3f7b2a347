"""MAP-Elites over bodies: archive (pyribs), measures, variation, and the evolution trainer.

Nothing in this package imports torch: training happens in worker processes or behind the
evaluation backends it is handed.
"""

from morphelites.evolution.archive import STATUS_NAMES, BodyArchive
from morphelites.evolution.measures import MeasureSpec, compute_measures, measure_specs
from morphelites.evolution.variation import Offspring, Variation

__all__ = ["BodyArchive", "STATUS_NAMES", "MeasureSpec", "measure_specs", "compute_measures", "Variation", "Offspring",
           "MAPElitesEvolutionTrainer", "EXIT_CODES"]


def __getattr__(name: str) -> object:
    """``MAPElitesEvolutionTrainer`` and ``EXIT_CODES`` from the trainer module, imported when first
    asked for: it starts processes and draws pictures, which the pieces above need not load."""
    if name in ("MAPElitesEvolutionTrainer", "EXIT_CODES"):
        from morphelites.evolution import trainer

        return getattr(trainer, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
