"""Configuration: defaults, parsing, and fix-it messages for bad values."""

import pytest

from morphelites.config import (
    BodySpaceConfig,
    ConfigError,
    EnvConfig,
    ModelConfig,
    PPOConfig,
    Settings,
    TrainingConfig,
)


def test_defaults_validate_and_round_trip_through_dicts():
    settings = Settings().validate()
    assert Settings.from_dict(settings.to_dict()) == settings
    assert settings.model.hidden_dim == 256
    assert settings.env.max_episode_steps == 200
    assert settings.body_space.max_reach == pytest.approx(1.5)


@pytest.mark.parametrize(
    "data, words",
    [
        ({"ppo": {"learning_rat": 0.1}}, "Did you mean 'learning_rate'"),
        ({"ppi": {}}, "Did you mean 'ppo'"),
        ({"ppo": {"num_envs": "four"}}, "ppo.num_envs must be a whole number (int)"),
        ({"ppo": {"gamma": True}}, "ppo.gamma must be a number (float)"),
        ({"env": {"scene": "obstacle"}}, "Did you mean 'obstacles'"),
        ({"env": {"max_episode_steps": 0}}, "outside the allowed range [1, 100000]"),
        ({"env": {"success_radius_fraction": 0.2}}, "env.success_radius_fraction is 0.2"),
        ({"body_space": {"min_links": 5, "max_links": 4}}, "set min_links <= max_links"),
        ({"body_space": {"max_links": 40}}, "body_space.max_links is 40"),
        ({"body_space": {"min_link_length": 0.3, "max_link_length": 0.2}}, "swap them"),
        # Seen in review: bounds finer than the micrometre a body is built to made some genomes
        # decode to a link just outside them, which the env then refused.
        ({"body_space": {"min_link_length": 0.1000004}}, "bodies are built to the micrometre (6 decimals)"),
        ({"body_space": {"max_link_length": 0.2499996}}, "give it to 6 decimals, e.g. 0.25"),
        ({"model": {"hidden_dim": 0}}, "model.hidden_dim is 0"),
        ({"ppo": {"num_minibatches": 10_000}}, "lower num_minibatches"),
        ({"ppo": {"num_envs": 1, "num_steps": 15}, "evolution": {"use_shared_ppo": False}},
         "leaves fewer than 2 transitions per minibatch of the batch size"),
        # Seen in review: a shared update's minibatches of one transition skipped advantage normalisation quietly.
        ({"training": {"min_batch_size": 8, "buffer_size": 100}}, "raise min_batch_size to at least 16"),
        ({"ppo": {"learning_rate": float("nan")}}, "finite number"),
        # Found in review: a zero-width axis put every body in one bin (pyribs divided by zero).
        ({"body_space": {"min_link_length": 0.2, "max_link_length": 0.2}, "evolution": {"measures": ["num_links", "taper"]}},
         "every body of this body space has the same taper"),
        ({"body_space": {"min_links": 1, "max_links": 1}, "evolution": {"measures": ["total_length", "taper"]}},
         "the same taper"),
        ({"body_space": {"min_links": 4, "max_links": 4, "min_link_length": 0.2, "max_link_length": 0.2}},
         "the same total_length"),
        ([1, 2], "JSON object of sections"),
    ],
)
def test_bad_configs_raise_clear_errors(data, words):
    with pytest.raises(ConfigError) as info:
        Settings.from_dict(data).validate()
    assert words in str(info.value)


def test_model_dimensions_are_derived_and_a_disagreeing_value_is_an_error():
    assert ModelConfig().resolved(48, 6).observation_dim == 48
    with pytest.raises(ConfigError, match="observation_dim is 14, but the body space gives 48"):
        ModelConfig(observation_dim=14).resolved(48, 6)
    with pytest.raises(ConfigError, match="action_dim is 3"):
        ModelConfig(action_dim=3).resolved(48, 6)


def test_sections_validate_alone():
    assert BodySpaceConfig(max_links=8).validate().max_reach == pytest.approx(2.0)
    assert EnvConfig(scene="obstacles").validate().scene == "obstacles"
    assert PPOConfig().batch_size == 16 * 128


def test_update_epochs_default_depends_on_the_command(tmp_path):
    from morphelites.evolution.trainer import MAPElitesEvolutionTrainer
    from morphelites.ppo import PPOUpdater
    from morphelites.policy import ActorCritic
    from morphelites.policy_numpy import reach_policy_spec

    assert PPOConfig().update_epochs is None
    assert Settings().with_default_epochs(evolution=True).ppo.update_epochs == 4, "morphelites train, both modes"
    assert Settings().with_default_epochs(evolution=False).ppo.update_epochs == 10, "single-policy PPO (CleanRL's value)"
    explicit = Settings.from_dict({"ppo": {"update_epochs": 7}})
    assert explicit.with_default_epochs(evolution=True).ppo.update_epochs == 7
    assert explicit.with_default_epochs(evolution=False).ppo.update_epochs == 7
    for shared in (True, False):
        trainer = MAPElitesEvolutionTrainer(use_shared_ppo=shared, output_dir=str(tmp_path / f"run-{shared}"), quiet=True)
        assert trainer.settings.ppo.update_epochs == 4
    assert PPOUpdater(ActorCritic(reach_policy_spec(3, hidden_dim=8)), PPOConfig()).config.update_epochs == 10
    with pytest.raises(ConfigError, match="ppo.update_epochs"):
        Settings.from_dict({"ppo": {"update_epochs": 0}}).validate()


def test_a_small_min_batch_size_is_refused_only_where_a_shared_learner_uses_it():
    independent = {"training": {"min_batch_size": 8, "buffer_size": 100}, "evolution": {"use_shared_ppo": False}}
    assert Settings.from_dict(independent).validate().training.min_batch_size == 8
    with pytest.raises(ConfigError, match="ppo.num_minibatches = 8"):
        Settings.from_dict({**independent, "evolution": {"use_shared_ppo": True}}).validate()


def test_each_batch_check_applies_only_where_its_batches_are_trained_on():
    """Found in review: `morphelites ppo` refused a valid config for a shared learner's batch it
    never uses, and shared `train` one for num_envs * num_steps, which only the rollouts of
    `ppo` and independent mode collect."""
    many_minibatches = {"ppo": {"num_minibatches": 600}}  # 2048-transition rollouts, 1000-transition shared batches
    assert Settings.from_dict(many_minibatches).validate("ppo").ppo.num_minibatches == 600
    with pytest.raises(ConfigError, match="training.min_batch_size"):
        Settings.from_dict(many_minibatches).validate("train")
    short_rollouts = {"ppo": {"num_envs": 1, "num_steps": 8}}
    assert Settings.from_dict(short_rollouts).validate("train").ppo.num_steps == 8, "shared mode does not use them"
    with pytest.raises(ConfigError, match="num_envs\\*num_steps = 8"):
        Settings.from_dict(short_rollouts).validate("ppo")
    with pytest.raises(ConfigError, match="num_envs\\*num_steps = 8"):
        Settings.from_dict({**short_rollouts, "evolution": {"use_shared_ppo": False}}).validate("train")


@pytest.mark.parametrize("section, field, value", [
    ("evolution", "use_shared_ppo", "false"), ("evolution", "enable_multiprocess", 0), ("training", "sync", 1),
    ("ppo", "num_envs", 4.0), ("evolution", "seed", True), ("env", "scene", 3),
])  # fmt: skip
def test_values_set_in_python_are_type_checked_like_a_config_files(section, field, value):
    """Found in review: the trainer's keyword arguments and dataclasses.replace skipped the type
    checks of a config file: use_shared_ppo="false" ran shared mode, and an int stored in
    config.json where a bool belongs made the run impossible to resume."""
    import dataclasses

    settings = Settings()
    settings = dataclasses.replace(settings, **{section: dataclasses.replace(getattr(settings, section), **{field: value})})
    with pytest.raises(ConfigError, match=f"{section}.{field} must be"):
        settings.validate()


def test_a_config_nested_thousands_deep_is_refused_as_bad_json(tmp_path):
    """Seen in review: a traceback (RecursionError) instead of the bad-JSON message."""
    from morphelites.config import load_config_file

    path = tmp_path / "deep.json"
    path.write_text('{"ppo": ' + "[" * 5000 + "]" * 5000 + "}")
    with pytest.raises(ConfigError, match="deep.json is not valid JSON"):
        load_config_file(str(path))


@pytest.mark.parametrize(("text", "words"), [
    ("null", "holds null, not a JSON object of sections"),  # a jq filter that matched nothing: not "the defaults"
    ("[1, 2]", "holds list, not a JSON object of sections"),
    ('{"ppo": {"learning_rate": 1' + "0" * 5000 + "}}", "holds a number Python will not read"),
])  # fmt: skip
def test_a_config_file_that_is_not_an_object_of_sections_or_holds_an_unreadable_number_is_refused(tmp_path, text, words):
    """Review (session 38): null was read as "every default" and started a run; 5,000 digits gave
    Python's advice to call sys.set_int_max_str_digits() without naming the file."""
    from morphelites.config import load_config_file

    path = tmp_path / "exp.json"
    path.write_text(text)
    with pytest.raises(ConfigError, match=f"exp.json {words}"):
        load_config_file(str(path))


def test_a_config_file_with_a_byte_order_mark_is_read_and_a_float_beyond_range_is_refused(tmp_path):
    from morphelites.config import load_config_file

    path = tmp_path / "exp.json"
    path.write_text('\ufeff{"ppo": {"learning_rate": 1' + "0" * 400 + "}}", encoding="utf-8")  # as some editors save it
    data = load_config_file(str(path))
    with pytest.raises(ConfigError, match="ppo.learning_rate is an integer of 401 digits, beyond the range of a float"):
        Settings.from_dict(data)


def test_the_default_workers_and_their_limit_follow_the_cores_this_process_may_use(monkeypatch):
    """Found in review: os.cpu_count() counts the whole node, so a 4-core cluster job on a 64-core
    node got 48 workers by default, and 200 passed the per-core limit."""
    import os

    from morphelites.config import EvolutionConfig

    from morphelites import cgroup_limits

    monkeypatch.setattr(os, "cpu_count", lambda: 64)
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0, 1, 2, 3}, raising=False)
    monkeypatch.setattr(cgroup_limits, "cgroup_cpu_limit", lambda: None)  # whatever the machine running the tests has
    assert EvolutionConfig().workers == 3
    assert EvolutionConfig(max_workers=16).validate().workers == 16
    with pytest.raises(ConfigError, match="this process may use 4 cores"):
        EvolutionConfig(max_workers=17).validate()
    # Review (session 38): a container's CPU quota leaves the affinity at the whole node.
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: set(range(64)), raising=False)
    monkeypatch.setattr(cgroup_limits, "cgroup_cpu_limit", lambda: 2)
    assert EvolutionConfig().workers == 1
    with pytest.raises(ConfigError, match="this process may use 2 cores"):
        EvolutionConfig(max_workers=9).validate()


def test_a_config_file_that_names_a_section_or_option_twice_or_a_section_null_is_refused(tmp_path):
    """Review (session 40): JSON keeps the last of two equal keys, so a second "ppo" block dropped
    every setting of the first without a word, and config.json recorded the defaults as if meant;
    a null section read as "the defaults"."""
    from morphelites.config import load_config_file

    path = tmp_path / "exp.json"
    path.write_text('{"ppo": {"learning_rate": 0.0001}, "evolution": {"seed": 3}, "ppo": {"update_epochs": 2}}')
    with pytest.raises(ConfigError, match=r"exp.json names 'ppo' twice in one object \(ppo, evolution\)"):
        load_config_file(str(path))
    path.write_text('{"ppo": {"learning_rate": 0.0001, "learning_rate": 0.001}}')
    with pytest.raises(ConfigError, match="names 'learning_rate' twice"):
        load_config_file(str(path))
    path.write_text('{"ppo": {"learning_rate": 0.0001}, "evolution": {"seed": 3}}')
    assert load_config_file(str(path)) == {"ppo": {"learning_rate": 0.0001}, "evolution": {"seed": 3}}
    with pytest.raises(ConfigError, match="Config section ppo is null. Leave it out"):
        Settings.from_dict({"ppo": None})


def test_numpy_numbers_from_a_sweep_are_taken_as_the_plain_numbers_config_json_holds():
    """Review (session 40): np.int64(1000) for an int was refused with advice to write it
    "without quotes or decimals"; values from np.arange or a grid are numpy numbers."""
    import dataclasses
    import json

    import numpy as np

    settings = Settings.from_dict({"training": {"min_batch_size": np.int64(1000), "sync": np.bool_(False)},
                                   "ppo": {"learning_rate": np.float32(0.5)}}).validate()  # fmt: skip
    assert settings.training.min_batch_size == 1000 and type(settings.training.min_batch_size) is int
    assert type(settings.training.sync) is bool and type(settings.ppo.learning_rate) is float
    replaced = dataclasses.replace(settings, evolution=dataclasses.replace(settings.evolution, seed=np.uint32(7)))
    assert replaced.validate().evolution.seed == 7 and type(replaced.evolution.seed) is int
    json.dumps(replaced.to_dict())  # config.json can hold every value
    with pytest.raises(ConfigError, match="training.min_batch_size must be"):
        Settings.from_dict({"training": {"min_batch_size": np.float64(1000.0)}})


def test_values_found_not_to_work_are_refused_for_new_runs_and_kept_for_runs_stored_with_them():
    """Found in review: asynchronous workers with lag 0 had a third to a half of their segments
    dropped, and a 1 s stall timeout killed healthy workers. Runs stored by earlier versions with
    those values may go on (a resume may not change the lag, so refusing it left no way on)."""
    lag_zero, quick = TrainingConfig(max_policy_lag=0), TrainingConfig(ipc_timeout=1.0)
    with pytest.raises(ConfigError, match="set training.sync to true"):
        lag_zero.check_new_values(shared=True)
    lag_zero.check_new_values(shared=False)  # independent mode has no lag
    TrainingConfig(max_policy_lag=0, sync=True).check_new_values(shared=True)
    lag_zero.check_new_values(shared=True, stored=TrainingConfig(max_policy_lag=0))
    with pytest.raises(ConfigError, match="training.ipc_timeout is 1 s; give at least 5 s"):
        quick.check_new_values(shared=True)
    quick.check_new_values(shared=True, stored=TrainingConfig(ipc_timeout=1.0))
    with pytest.raises(ConfigError, match="give at least 5 s"):  # a resume that sets a new short one
        quick.check_new_values(shared=True, stored=TrainingConfig(ipc_timeout=2.0))


def test_a_value_outside_the_range_is_told_the_range_new_runs_take():
    """Review (session 44): training.ipc_timeout 0.5 was told "[1.0, 86400.0]", and 2 s, as told,
    was then refused (new runs need 5 s); max_policy_lag -1 was told [0, ...], and 0 needs sync."""
    with pytest.raises(ConfigError, match=r"ipc_timeout is 0.5, outside the allowed range \[1.0, 86400.0\]; give 5 to "
                                          r"86400 s \(the default is 120; below 5 s only runs stored"):
        TrainingConfig(ipc_timeout=0.5).validate()
    with pytest.raises(ConfigError, match=r"max_policy_lag is -1, outside the allowed range \[0, 1000000\]; give 1 to "
                                          r"1000000 \(the default is 4\), or 0 with training.sync true\."):
        TrainingConfig(max_policy_lag=-1).validate()
    with pytest.raises(ConfigError, match=r"buffer_size is 0, outside the allowed range \[1, 1000000000\]; set it to a "
                                          r"value in that range\."):
        TrainingConfig(buffer_size=0).validate()


def test_readme_documents_every_config_key_as_config_py_defines_it():
    """Review (session 44): README named 23 keys nowhere. Its configuration reference is generated
    from config.py (python -m morphelites.config_reference --write README.md) and must match it."""
    import dataclasses
    from pathlib import Path

    from morphelites.config import EnvConfig, EvolutionConfig
    from morphelites.config_reference import BEGIN, END, _SECTIONS, key_rows, reference_markdown

    readme = (Path(__file__).resolve().parent.parent / "README.md").read_text(encoding="utf-8")
    block = readme[readme.index(BEGIN):readme.index(END) + len(END)] + "\n"
    assert block == reference_markdown(), "README's reference is stale: python -m morphelites.config_reference --write README.md"
    assert {name for name, _ in _SECTIONS} == {f.name for f in dataclasses.fields(Settings)}, "every section of a file"
    rows = {key: (default, takes) for key, default, takes, _ in key_rows(EnvConfig)}
    assert rows["frame_skip"] == ("`4`", "1 to 100") and rows["scene"] == ("`\"open\"`", "`open` or `obstacles`")
    rows = {key: (default, takes) for key, default, takes, _ in key_rows(EvolutionConfig)}
    assert rows["max_wall_s"] == ("`null`", "0.001 to 1,000,000,000 or `null`")
    assert rows["measures"][1] == "a list of `num_links`, `total_length`, `taper`"
    assert all(doc for _, section in _SECTIONS for *_, doc in key_rows(section)), "every key described"
