"""The house rules of issue 12 for the library and the UI (training/, components/): no file over
400 lines but data, and no function over 60 lines unless its signature says why (`# long: REASON`
on the def line, or where the formatter moved it: any line before the body).

A long file or function is where the next change goes wrong: split it by idea, or say why not.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
HOUSE = ("training", "components")
MAX_FILE_LINES = 400
MAX_FUNCTION_LINES = 60
# Python files that hold data rather than code, exempt from the file length (path -> what they hold).
DATA_FILES: dict[str, str] = {}
REASON = re.compile(r"#\s*long:\s*\S")


def house_files() -> list[Path]:
    return sorted(path for folder in HOUSE for path in (ROOT / folder).rglob("*.py"))


def long_functions(source: str) -> list[tuple[str, int, int]]:
    """(name, first line, length) of every function over the limit whose signature gives no reason."""
    lines = source.splitlines()
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            length = node.end_lineno - node.lineno + 1
            signature = "\n".join(lines[node.lineno - 1 : node.body[0].lineno - 1])
            if length > MAX_FUNCTION_LINES and not REASON.search(signature):
                found.append((node.name, node.lineno, length))
    return found


def test_the_house_has_files_to_check():
    # A moved folder must not turn the rules below into checks of nothing.
    names = {path.relative_to(ROOT).as_posix() for path in house_files()}
    assert {"training/train/config.py", "components/chat_tab.py"} <= names


@pytest.mark.parametrize("folder", HOUSE)
def test_no_file_over_400_lines_but_data(folder):
    too_long = [
        f"{path.relative_to(ROOT)}: {count} lines"
        for path in house_files()
        if path.relative_to(ROOT).parts[0] == folder
        and (count := len(path.read_text(encoding="utf-8").splitlines())) > MAX_FILE_LINES
        and path.relative_to(ROOT).as_posix() not in DATA_FILES
    ]
    assert not too_long, f"split by idea (or list as data in DATA_FILES): {too_long}"


@pytest.mark.parametrize("folder", HOUSE)
def test_no_function_over_60_lines_without_a_reason(folder):
    too_long = [
        f"{path.relative_to(ROOT)}:{line} {name}: {length} lines"
        for path in house_files()
        if path.relative_to(ROOT).parts[0] == folder
        for name, line, length in long_functions(path.read_text(encoding="utf-8"))
    ]
    assert not too_long, f"split, or say why in its signature with '# long: REASON': {too_long}"


def test_the_function_rule_counts_nested_functions_and_reads_the_reason():
    body = "".join(f"    x{i} = {i}\n" for i in range(MAX_FUNCTION_LINES))
    long_one = f"def outer():\n    def inner():\n        pass\n{body}"
    assert long_functions(long_one) == [("outer", 1, MAX_FUNCTION_LINES + 3)]
    assert long_functions(long_one.replace("def outer():", "def outer():  # long: one layout")) == []
    assert long_functions(long_one.replace("def outer():", "def outer():  # long:")) != []  # a reason, not a tag
    wrapped = long_one.replace("def outer():", "def outer(\n    a,\n):  # long: one layout")
    assert long_functions(wrapped) == []  # ruff format moves a long def line's comment to its last line
    short = f"def short():\n{''.join(f'    x{i} = {i}' + chr(10) for i in range(MAX_FUNCTION_LINES - 1))}"
    assert long_functions(short) == []
