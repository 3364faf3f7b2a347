"""The most QD-score any controller could have: an archive in which every evaluated body scores
its fitness ceiling (``morphelites.ceiling``, geometry alone; no evaluated policy exceeds it,
``tests/test_ceiling.py``).

A QD-score is a sum over cells of the elite's fitness, and an elite's fitness is at most its
body's ceiling; so after a run has evaluated some bodies, its QD-score is at most the QD-score of
the same bodies each scored at its ceiling (the best ceiling per cell). This bounds what a better
policy could do *with the bodies evolution proposed*, and the bodies of the random start
(``evolution.num_initial_random``, drawn before any result) do not depend on the policy at all.

Used by ``shared_vs_independent.py`` (each curve point's ``qd_ceiling``) and ``long_analysis.py``
(the bound within #4's 10× allowance, for stored runs whose curves lack it: their random start
is drawn again from the seed).
"""

from __future__ import annotations

from typing import Any, Iterable, Sequence

import numpy as np

from morphelites.ceiling import fitness_ceiling
from morphelites.config import Settings
from morphelites.evolution.archive import BodyArchive
from morphelites.evolution.measures import compute_measures, measure_specs
from morphelites.evolution.variation import Variation
from morphelites.morphology import BodySpace, Morphology

#: How a run's random start was drawn: from a stream of its own (``morphelites.seeding``, since
#: commit 5cd59a1), or, before that commit, from ``numpy.random.default_rng(seed)``.
SEEDING_SCHEMES = ("separate streams", "before 5cd59a1")


def ceiling_qd_scores(settings: Settings, genomes: Iterable[Sequence[float]], ceilings: Iterable[float]) -> list[float]:
    """QD-score after each body (in order) of an archive in which every body scores ``ceilings``
    (its fitness ceiling, one per genome): the most QD-score any controller could have after those
    bodies. The archive is the run's own (``BodyArchive`` over ``settings``' measures), so cells and
    ties follow the same rules."""
    space = BodySpace(settings.body_space)
    evo = settings.evolution
    specs = measure_specs(space, evo.measures, evo.continuous_bins)
    archive = BodyArchive(space, specs)
    scores = []
    for index, (genome, ceiling) in enumerate(zip(genomes, ceilings, strict=True)):
        genome = np.asarray(genome, dtype=np.float64)
        body = space.decode(genome)
        archive.add(index, None, genome, float(ceiling), compute_measures(body, specs), {"fitness_ceiling": ceiling})
        scores.append(archive.stats()["qd_score"])
    return scores


def random_start_genomes(settings: Settings, seed: int, scheme: str) -> np.ndarray:
    """The genomes (num_initial_random, genome_dim) of the random start of a run with ``seed``,
    drawn as the trainer draws them under ``scheme`` (one of :data:`SEEDING_SCHEMES`)."""
    space = BodySpace(settings.body_space)
    evo = settings.evolution
    count = evo.num_initial_random
    if scheme == SEEDING_SCHEMES[0]:  # the random start never reads the archive: an empty one will do
        archive = BodyArchive(space, measure_specs(space, evo.measures, evo.continuous_bins))
        variation = Variation(evo, archive, space.genome_dim, seed=seed)
        return np.stack([variation.next().genome for _ in range(count)])
    if scheme == SEEDING_SCHEMES[1]:
        rng = np.random.default_rng(seed)
        return np.stack([rng.uniform(0.0, 1.0, space.genome_dim) for _ in range(count)])
    raise ValueError(f"unknown seeding scheme {scheme!r}; choose from {', '.join(SEEDING_SCHEMES)}")


def body_ceiling(settings: Settings, body: Morphology) -> float:
    """The fitness ceiling of ``body`` on the run's evaluation goals (``settings``' scene)."""
    evo = settings.evolution
    return fitness_ceiling(body, evo.eval_episodes, evo.eval_seed, settings.env.scene, settings.body_space, settings.env)


def confirmed_random_start(settings: Settings, seed: int, elites: Iterable[dict[str, Any]]) -> tuple[str, np.ndarray, list[float]] | None:
    """The random start of a stored run, drawn again, with its bodies' ceilings: ``(scheme,
    genomes, ceilings)`` under the one seeding scheme whose bodies the run's own record confirms,
    else None.

    ``elites`` are the final elites of the runs with this seed (``elites_with_ceiling`` rows:
    num_links, total_length in m to 6 decimals, ceiling). A scheme is confirmed when at least one of
    its bodies is among them, and every one that is has the ceiling the run recorded (which also
    confirms the scene and evaluation goals of ``settings``); a body's total length to the micrometre
    is not matched by chance."""
    recorded = {(int(e["num_links"]), round(float(e["total_length"]), 6)): float(e["ceiling"]) for e in elites}
    space = BodySpace(settings.body_space)
    confirmed = []
    for scheme in SEEDING_SCHEMES:
        genomes = random_start_genomes(settings, seed, scheme)
        bodies = [space.decode(g) for g in genomes]
        ceilings = [body_ceiling(settings, body) for body in bodies]
        matches = [(recorded[key], c) for body, c in zip(bodies, ceilings)
                   if (key := (body.num_links, round(body.total_length, 6))) in recorded]  # fmt: skip
        if matches and all(abs(stored - mine) < 1e-6 for stored, mine in matches):
            confirmed.append((scheme, genomes, ceilings))
    return confirmed[0] if len(confirmed) == 1 else None
