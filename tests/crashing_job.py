"""Worker jobs that kill their process: on every task, as a broken install would, or on one
body, as a body that crashes the simulator would (tests/test_train.py). Imported by worker
processes by its module name (they inherit this directory on sys.path)."""

import os


def run_task(*args: object) -> None:
    os._exit(3)


def _dies_on_individual(doomed: int):
    """The independent mode's job, except that individual ``doomed``'s body "crashes the simulator"."""

    def job(individual, settings):
        from morphelites.independent import train_and_evaluate

        if individual.id == doomed:
            os._exit(3)
        return train_and_evaluate(individual, settings)

    return job


dies_on_individual_0 = _dies_on_individual(0)  # the very first body a run draws
dies_on_individual_3 = _dies_on_individual(3)


def dies_on_odd_tasks(number: int) -> int:
    """Kills its process on an odd ``number`` and returns an even one: deaths with successes between."""
    if number % 2:
        os._exit(3)
    return number


def dies_unless_zero(number: int) -> int:
    """Returns 0 after a moment; kills its process on any other number at once."""
    import time

    if number:
        os._exit(3)
    time.sleep(0.5)
    return number


def hangs(number: int) -> None:
    """Sleeps without a heartbeat, as a hung process would, until it is killed."""
    import time

    time.sleep(600)
