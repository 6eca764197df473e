"""Fine-tuning data sets under random and mutated input: nothing but a one-line UserError naming the
file escapes the readers, whatever the bytes or the field types."""

from __future__ import annotations

import json

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.test_format_datasets import OPENAI, jsonl
from training.data.formats import load_sources
from training.data.sources import SourceFile
from training.errors import UserError

SHAREGPT_RECORD = {"system": "s", "conversations": [{"from": "human", "value": "hi"}, {"from": "gpt", "value": "yo"}]}
ALPACA_RECORD = {"instruction": "a", "input": "b", "output": "c", "history": [["d", "e"]]}
TRL_RECORD = {"prompt": [{"role": "user", "content": "q"}], "completion": [{"role": "assistant", "content": "a"}]}
# Two records each: a wrong type in the second record passes the first-record shape check.
VALID_FILES = [
    ("train.jsonl", OPENAI.encode()),
    ("sharegpt.json", json.dumps([SHAREGPT_RECORD, SHAREGPT_RECORD]).encode()),
    ("alpaca.json", json.dumps([ALPACA_RECORD, ALPACA_RECORD]).encode()),
    ("pairs.csv", b'prompt,response\n"a, b","c\nd"\nx,y\n'),
    ("trl.jsonl", jsonl(TRL_RECORD, TRL_RECORD).encode()),
    ("text.jsonl", jsonl({"text": "hello"}, {"text": "again"}).encode()),
    ("notes.txt", "Plain prose.\nSecond line é ✓\n".encode()),
    ("app.py", b"def main():\n    return 1\n"),
]


FIELD_NAMES = [
    "role",
    "content",
    "from",
    "value",
    "text",
    "type",
    "messages",
    "conversations",
    "instruction",
    "input",
    "output",
    "history",
    "system",
    "prompt",
    "completion",
    "response",
    "tool_calls",
]
JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=4) | st.sampled_from(["user", "gpt"]),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.sampled_from(FIELD_NAMES), inner, max_size=3),
    max_leaves=6,
)


def json_slots(value, slots):
    """Every (container, key) in a parsed JSON value, so one can be replaced."""
    keys = range(len(value)) if isinstance(value, list) else list(value) if isinstance(value, dict) else []
    for key in keys:
        slots.append((value, key))
        json_slots(value[key], slots)
    return slots


@st.composite
def byte_mutations(draw, data: bytes) -> bytes:
    data = bytearray(data)
    for _ in range(draw(st.integers(1, 3))):
        at = draw(st.integers(0, len(data)))
        action = draw(st.sampled_from(["cut", "insert", "delete", "flip"]))
        if action == "cut":
            del data[at:]
        elif action == "insert":
            data[at:at] = draw(
                st.sampled_from([b"{", b"]", b'"', b",", b"\n", b"\x00", b"\xff", b"null", b"[]", b"1e999", b"\\u"])
            )
        elif action == "delete":
            del data[at : at + draw(st.integers(1, 20))]
        elif data:
            data[min(at, len(data) - 1)] = draw(st.integers(0, 255))
    return bytes(data)


@st.composite
def value_mutations(draw, data: bytes) -> bytes:
    """Valid JSON with one field swapped for a value of another type: a null content, a number role..."""
    lines = data.decode().splitlines()
    records = (
        [json.loads(line) for line in lines] if len(lines) > 1 or not data.startswith(b"[") else [json.loads(data)]
    )
    for _ in range(draw(st.integers(1, 2))):
        container, key = draw(st.sampled_from(json_slots(records, [])))
        if draw(st.booleans()) and isinstance(container, dict):
            del container[key]
        else:
            container[key] = draw(JSON_VALUES)
    if data.startswith(b"["):
        return json.dumps(records[0]).encode()
    return "".join(json.dumps(record) + "\n" for record in records).encode()


@st.composite
def mutated_files(draw) -> SourceFile:
    name, data = draw(st.sampled_from(VALID_FILES))
    name = draw(st.sampled_from([name, "data.jsonl", "data.json", "data.csv", "README", "x.txt"]))
    if draw(st.booleans()):
        return SourceFile(name, draw(st.binary(max_size=300)))
    return SourceFile(name, draw(byte_mutations(data)))


@st.composite
def files_with_wrong_types(draw) -> SourceFile:
    name, data = draw(st.sampled_from([(n, d) for n, d in VALID_FILES if n.endswith((".json", ".jsonl"))]))
    return SourceFile(name, draw(value_mutations(data)))


def assert_only_user_errors(source: SourceFile) -> None:
    try:
        load_sources([source])
    except UserError as exc:
        message = str(exc)
        assert "\n" not in message
        assert message.startswith(source.name) or message.startswith("text_chunk_tokens")


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(mutated_files())
def test_only_user_errors_escape_for_random_and_mutated_files(source):
    assert_only_user_errors(source)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(files_with_wrong_types())
def test_only_user_errors_escape_when_fields_have_the_wrong_type(source):
    assert_only_user_errors(source)
