"""The JSONL writer writes json.dumps(row, ensure_ascii=False) per line, and the collector pause nests."""

from __future__ import annotations

import gc
import io
import json
import math

import pytest

from training.data.collector import collector_paused
from training.data.jsonl import write_rows

ROWS = [
    {
        "prompt": [
            {"role": "system", "content": "You are Sam."},
            {"role": "user", "content": 'é "quoted" \\ \n\t\u2028 🙂'},
        ],
        "completion": [{"role": "assistant", "content": "ok\u0000\u001f"}],
    },
    {"text": "File: a.py\nprint('hi')"},
    {"messages": [{"role": "user", "content": "x", "name": "Maya"}], "n": 3, "f": 0.1, "big": 10**30, "none": None},
    {"z": math.inf, "a": -math.inf, "nan": math.nan, 5: "int key", True: "bool key"},
    [1, 2, {"nested": [[], {}]}],
    "a bare string",
]


def test_each_line_is_json_dumps_of_its_row():
    handle = io.StringIO()
    write_rows(handle, ROWS)
    assert handle.getvalue() == "".join(json.dumps(row, ensure_ascii=False) + "\n" for row in ROWS)


def test_rows_past_one_batch_keep_their_order():
    rows = [{"i": i} for i in range(2345)]
    handle = io.StringIO()
    write_rows(handle, iter(rows))
    assert [json.loads(line)["i"] for line in handle.getvalue().splitlines()] == list(range(2345))


@pytest.mark.parametrize("row", [{"a": object()}, {(1, 2): "tuple key"}])
def test_unencodable_rows_fail_as_json_dumps_does(row):
    with pytest.raises(TypeError) as expected:
        json.dumps(row, ensure_ascii=False)
    with pytest.raises(TypeError) as raised:
        write_rows(io.StringIO(), [row])
    assert str(raised.value) == str(expected.value)


def test_a_circular_row_is_refused():
    row = {}
    row["self"] = row
    with pytest.raises(ValueError, match="Circular reference"):
        write_rows(io.StringIO(), [row])


def test_the_collector_resumes_after_the_outermost_pause_even_on_errors():
    assert gc.isenabled()
    with pytest.raises(RuntimeError):
        with collector_paused():
            with collector_paused():
                assert not gc.isenabled()
            assert not gc.isenabled()  # the inner end does not resume it
            raise RuntimeError
    assert gc.isenabled()


def test_a_collector_paused_by_someone_else_stays_paused():
    gc.disable()
    try:
        with collector_paused():
            pass
        assert not gc.isenabled()
    finally:
        gc.enable()
