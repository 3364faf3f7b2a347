"""results.jsonl records that resuming reads: a line changed from outside is named, not replayed."""

import json
from pathlib import Path

import pytest

from morphelites.runs.recorder import DamagedResults, check_results, parse_results

GOOD = {
    "id": 0, "parent_id": None, "genome": [0.5] * 7, "body": {"num_links": 3, "link_lengths": [0.2, 0.2, 0.2]},
    "fitness": 0.1, "success_rate": 0.0, "mean_return": -50.0, "final_distance": 0.4, "path_efficiency": 0.2,
    "collisions": 0.0, "policy_version": 1, "fitness_ceiling": 0.8, "training_steps": 1500, "eval_env_steps": 400,
}  # fmt: skip


def _lines(*records: dict) -> bytes:
    return "".join(json.dumps(record) + "\n" for record in records).encode()


def test_whole_records_are_read_back_and_a_torn_last_line_is_left_out():
    second = {**GOOD, "id": 1, "parent_id": 0, "fitness_ceiling": None}
    raw = _lines(GOOD, second) + b'{"id": 2, "gen'
    records, good_bytes = parse_results(raw, Path("results.jsonl"), genome_dim=7)
    assert records == [GOOD, second] and good_bytes == len(_lines(GOOD, second))


def test_a_whole_last_record_without_its_line_end_is_kept_and_the_line_end_added(tmp_path):
    """Found in review: a last record that lacked only its newline (a file rewritten from outside
    with "\\n".join, say, while following DamagedResults' advice) was cut off as torn on resume: its
    evaluation was lost and its id issued again. A torn one that cannot be read, or that reads
    as an incomplete record, is still cut."""
    from morphelites.runs import RunDirectory
    from morphelites.runs.recorder import EvolutionRecorder

    second = {**GOOD, "id": 1, "parent_id": 0}
    whole = _lines(GOOD, second)
    records, good_bytes = parse_results(whole[:-1], Path("results.jsonl"), genome_dim=7)
    assert records == [GOOD, second] and good_bytes == len(whole) - 1
    cut = {k: v for k, v in second.items() if k != "eval_env_steps"}
    records, good_bytes = parse_results(_lines(GOOD) + json.dumps(cut).encode(), Path("results.jsonl"), genome_dim=7)
    assert records == [GOOD] and good_bytes == len(_lines(GOOD)), "a record that lacks a field is torn, not whole"
    run = RunDirectory(tmp_path / "run").prepare()
    run.results.write_bytes(whole[:-1])
    recorder = EvolutionRecorder(run, quiet=True)
    try:
        assert [line["id"] for line in recorder.read_results()] == [0, 1]
    finally:
        recorder.close()
    assert run.results.read_bytes() == whole, "the line end added: the next record starts a line of its own"


@pytest.mark.parametrize(
    "changes, words",
    [
        # Seen in review: an id of "1" or 1.5 was replayed, and the next new individual took id 1 too.
        ({"id": "1"}, "its id is '1', not a whole number >= 0"),
        ({"id": 1.5}, "its id is 1.5, not a whole number >= 0"),
        ({"id": -3}, "its id is -3"),
        ({"id": True}, "its id is True"),
        # Seen in review: these crashed the resume with a traceback that named no line.
        ({"parent_id": "x"}, "its parent_id is 'x', not a whole number >= 0 or null"),
        ({"genome": [0.5] * 6 + [float("nan")]}, "its genome is not a list of finite numbers"),
        ({"genome": "0.5;0.5"}, "its genome is not a list of finite numbers"),
        ({"fitness_ceiling": "high"}, "its fitness_ceiling is not a number"),
        # Seen in review: accepted silently.
        ({"genome": [0.5] * 3}, "its genome has 3 genes, but this run's body space has genomes of 7"),
        ({"fitness": 5.0}, "its fitness is 5.0, not a number in [0, 1]"),
        ({"fitness": float("nan")}, "its fitness is nan"),
        ({"training_steps": -1}, "its training_steps is not a whole number >= 0"),
        ({"eval_env_steps": 400.0}, "its eval_env_steps is not a whole number >= 0"),
        ({"success_rate": "0"}, "its success_rate is not a number"),
    ],
)
def test_a_record_with_a_field_of_the_wrong_kind_or_range_is_named(changes, words):
    raw = _lines({**GOOD, **changes}, {**GOOD, "id": 1})
    with pytest.raises(DamagedResults) as caught:
        parse_results(raw, Path("run/results.jsonl"), genome_dim=7)
    message = str(caught.value)
    assert "results.jsonl is damaged at line 1 of 2" in message and words in message, message
    assert "the 1 line(s) after it would be lost" in message and "Repair line 1" in message


def test_without_a_genome_length_any_length_of_finite_genes_is_read():
    records, _ = parse_results(_lines({**GOOD, "genome": [0.5] * 3}), Path("results.jsonl"))
    assert records[0]["genome"] == [0.5] * 3


def test_a_damaged_line_is_named_by_its_number_among_all_the_lines_splitlines_cuts():
    """Lines are cut one at a time (review, session 44: a list of them took as much memory as the
    file again), as bytes.splitlines cuts them: a lone \\r ends a line too, and the count of the
    lines after the damaged one covers the whole file."""
    good = [_lines({**GOOD, "id": i}) for i in range(5)]
    raw = good[0] + b"{not json\n" + b"".join(good[1:4])
    with pytest.raises(DamagedResults, match=r"damaged at line 2 of 5: .*the 3 line\(s\) after it would be lost"):
        parse_results(raw, Path("results.jsonl"), genome_dim=7)
    lone_cr = good[0] + good[1][:-1] + b"\r" + good[2]  # a \r where a line end was: ends line 2 there, no \n
    with pytest.raises(DamagedResults, match=r"damaged at line 2 of 3: it has no line end"):
        parse_results(lone_cr, Path("results.jsonl"), genome_dim=7)
    wrong_field = b"".join(good[:2]) + _lines({**GOOD, "id": 2, "fitness": 5.0})  # the last line, whole
    with pytest.raises(DamagedResults, match=r"damaged at line 3 of 3: its fitness is 5.0"):
        parse_results(wrong_field, Path("results.jsonl"), genome_dim=7)
    assert check_results(b"".join(good) + good[4][:20], Path("results.jsonl"), 7) == len(b"".join(good)), "torn: left out"
