"""Mixing data sets at weights: the drawn proportions, the seed, every row seen, and the run's record."""

from __future__ import annotations

import json
import math
from collections import Counter

import pytest
import yaml

from training.errors import UserError
from training.train.config import RunConfig
from training.train.dataset import load_rows
from training.train.mixing import Source, interleave, parse_entry


def text_rows(label: str, count: int) -> list[dict]:
    return [{"text": f"{label} row number {n}"} for n in range(count)]


def test_weights_give_the_expected_shares_every_row_comes_and_the_seed_decides_the_order():
    chats, knowledge = (
        Source("chats.jsonl", 1.0, text_rows("chat", 600)),
        Source("k.jsonl", 0.5, text_rows("knowledge", 100)),
    )
    drawn = interleave([chats, knowledge], seed=42)
    counts = Counter(k for _, k in drawn)
    # Weights 1 and 0.5 -> probabilities 2/3 and 1/3. The draw goes on until all 600 chat rows came,
    # about 600 / (2/3) = 900 draws; a knowledge share over N draws has a standard deviation of
    # sqrt(1/3 * 2/3 / N) = 0.016 at N = 900, so 0.06 is over 3.5 of them.
    share = counts[1] / len(drawn)
    assert abs(share - 1 / 3) < 0.06, (share, len(drawn))
    assert 800 < len(drawn) < 1000  # 900 +- 3.5 sd of the draws needed (sd ~ 25)
    assert {row["text"] for row, _ in drawn} == {row["text"] for row in chats.train + knowledge.train}
    assert drawn == interleave([chats, knowledge], seed=42)
    assert drawn != interleave([chats, knowledge], seed=7)


def test_one_data_set_is_used_as_it_is():
    rows = text_rows("only", 5)
    assert interleave([Source("a.jsonl", 1.0, rows)], seed=0) == [(row, 0) for row in rows]


@pytest.mark.parametrize("entry", ["k.jsonl=0", "k.jsonl=-1", "k.jsonl=lots", "=0.5", "k.jsonl=nan"])
def test_a_bad_mix_entry_names_itself_and_what_was_expected(entry):
    with pytest.raises(UserError, match=rf"^mix: {entry!r}; expected PATH=WEIGHT with a weight above 0"):
        RunConfig(train_file="a.jsonl", mix=[entry]).validate()


def test_a_bare_path_has_weight_one_and_paths_may_hold_equals_signs():
    assert parse_entry("notes.jsonl").weight == 1.0
    assert (parse_entry("runs/a=b/k.jsonl=0.25").path, parse_entry("runs/a=b/k.jsonl=0.25").weight) == (
        "runs/a=b/k.jsonl",
        0.25,
    )


def test_the_mix_round_trips_through_config_yaml_with_absolute_paths(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    config = RunConfig(train_file="chats.jsonl", mix=["data/k.jsonl=0.5"]).with_absolute_paths()
    assert config.mix == [f"{tmp_path}/data/k.jsonl=0.5"]
    config.save(tmp_path / "config.yaml")
    assert yaml.safe_load((tmp_path / "config.yaml").read_text())["mix"] == config.mix
    assert RunConfig.from_yaml(tmp_path / "config.yaml").mix == config.mix


def test_a_weight_that_would_make_an_endless_epoch_is_refused():
    big = Source("big.jsonl", 1e-6, text_rows("big", 10))
    with pytest.raises(UserError, match="mix: a weight this small for a set this large would draw"):
        interleave([Source("a.jsonl", 1.0, text_rows("a", 10)), big], seed=0)


def test_load_rows_mixes_every_set_and_describes_the_mix(tmp_path):
    def write(name, rows):
        (tmp_path / name).write_text("".join(json.dumps(row) + "\n" for row in rows))
        return str(tmp_path / name)

    chats = write("chats.jsonl", text_rows("chat", 40))
    knowledge = write("knowledge.jsonl", text_rows("knowledge", 10))
    write("knowledge.val.jsonl", text_rows("held-out knowledge", 2))
    rows = load_rows(RunConfig(train_file=chats, mix=[f"{knowledge}=0.25"], seed=3))
    sources = rows.mix["sources"]
    assert [(s["rows"], s["validation_rows"], s["share"]) for s in sources] == [(40, 0, 0.8), (10, 2, 0.2)]
    assert sum(s["drawn"] for s in sources) == rows.mix["examples"] == len(rows.train)
    assert Counter(row["text"].split()[0] for row in rows.train) == {
        "chat": sources[0]["drawn"],
        "knowledge": sources[1]["drawn"],
    }
    assert [row["text"] for row in rows.validation] == [
        "held-out knowledge row number 0",
        "held-out knowledge row number 1",
    ]
    assert math.isclose(sources[1]["weight"], 0.25)


def test_the_persona_report_reads_only_the_persons_own_held_out_chats(tmp_path):
    from training.report.heldout import held_out_rows

    def write(name, rows):
        (tmp_path / name).write_text("".join(json.dumps(row) + "\n" for row in rows))
        return str(tmp_path / name)

    def chat(question, answer):
        return {
            "prompt": [{"role": "user", "content": question}],
            "completion": [{"role": "assistant", "content": answer}],
        }

    chats = write("chats.jsonl", [chat(f"coming {n}?", f"yes {n}") for n in range(6)])
    held = write("chats.val.jsonl", [chat("dinner?", "sure")])
    knowledge = write("knowledge.jsonl", [chat("What does the gym open?", "At 7.")])
    write("knowledge.val.jsonl", [chat("When is standup?", "At 10.")])
    config = RunConfig(train_file=chats, validation_file=held, mix=[f"{knowledge}=0.5"])
    rows = held_out_rows(config)
    assert [row["completion"][0]["content"] for row in rows.rows] == ["sure"]
    assert len(rows.train) == 6  # the classifier learns the person from their own replies only


def test_the_estimate_counts_an_epoch_of_the_mix(tmp_path):
    """48 chat rows at weight 1 and 10 knowledge rows at 0.5: shares 2/3 and 1/3, so an epoch (every row
    once) draws max(48 / (2/3), 10 / (1/3)) = max(72, 30) = 72 rows; at weight 0.1 the knowledge set
    decides: max(48 / (10/11), 10 / (1/11)) = max(52.8, 110) = 110."""
    from training.train.estimate import estimate_for_data
    from training.train.mixing import epoch_draws

    chats, knowledge = tmp_path / "chats.jsonl", tmp_path / "knowledge.jsonl"
    chats.write_text("".join(json.dumps(row) + "\n" for row in text_rows("chat", 48)))
    knowledge.write_text("".join(json.dumps(row) + "\n" for row in text_rows("knowledge", 10)))
    assert epoch_draws([48, 10], [1.0, 0.5]) == pytest.approx(72)
    assert epoch_draws([48, 10], [1.0, 0.1]) == pytest.approx(110)
    common = dict(model="offline-tiny", train_file=str(chats), batch_size=8, epochs=1, max_steps=0)
    alone = estimate_for_data(RunConfig(**common))
    mixed = estimate_for_data(RunConfig(**common, mix=[f"{knowledge}=0.5"]))
    assert (alone.total_steps, mixed.total_steps) == (math.ceil(48 / 8), math.ceil(72 / 8))
    # The draw itself is random (it stops when the last set runs out): 72 is its expected length.
    drawn = len(load_rows(RunConfig(**common, mix=[f"{knowledge}=0.5"]), check_leaks=False).train)
    assert 72 * 0.85 < drawn < 72 * 1.15
