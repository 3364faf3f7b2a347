"""A seed fixes a run: an individual's evaluation does not depend on what its process did before."""

TINY = {
    "evolution": {"eval_episodes": 3, "heatmap_every": 2, "checkpoint_every": 2, "num_initial_random": 3},
    "ppo": {"num_envs": 4, "num_steps": 32},
    "env": {"max_episode_steps": 40},
}


def test_an_individual_is_evaluated_the_same_as_a_process_first_individual_or_a_later_one():
    """A worker's first individual used to start from other initial weights than the same
    individual issued later: the orthogonal init ran with the process's default thread count,
    and training set ppo.torch_threads only after it."""
    import torch

    from morphelites.config import Settings
    from morphelites.independent import train_and_evaluate
    from morphelites.individual import Individual
    from morphelites.morphology import BodySpace

    settings = Settings.from_dict({**TINY, "evolution": {**TINY["evolution"], "training_steps_per_individual": 128}})
    genome = (0.3,) * BodySpace(settings.body_space).genome_dim
    individual = Individual(7, genome, BodySpace(settings.body_space).decode(genome))
    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(2)  # a fresh process on a 2-core machine; ppo.torch_threads is 1
        first = train_and_evaluate(individual, settings)
        later = train_and_evaluate(individual, settings)
    finally:
        torch.set_num_threads(threads)
    assert first.evaluation == later.evaluation
