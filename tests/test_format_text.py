"""Plain text and code files: the fallback reader, chunked under a token budget."""

from __future__ import annotations

import json

import pytest

from training.conversation import Drop
from training.data.formats import ImportOptions, detect, load, load_sources, text
from training.data.sources import SourceFile
from training.errors import UserError

PNG = b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x00\x01\x00\x00\x00\x01\x08\x02\x00\x00\x00"
APP_PY = "".join(f"def handler_{n}(request):\n    return respond(request, status={n})\n\n" for n in range(40))


def words(chunk: str) -> int:
    """A tokenizer stand-in: one token per whitespace-separated word."""
    return len(chunk.split())


def bodies(documents, name: str) -> list[str]:
    header = f"File: {name}\n"
    assert all(d.text.startswith(header) for d in documents)
    return [d.text[len(header) :] for d in documents]


def test_chunks_stay_within_the_token_budget_and_cut_at_line_ends():
    options = ImportOptions(text_chunk_tokens=30, count_tokens=words)
    result = load_sources([SourceFile("repo/app.py", APP_PY.encode())], options)

    documents = result.documents
    assert len(documents) > 5
    assert [d.id for d in documents] == [f"repo/app.py#{i}" for i in range(len(documents))]
    assert all(words(d.text) <= 30 for d in documents)
    pieces = bodies(documents, "repo/app.py")
    assert all(piece.endswith("\n") for piece in pieces)
    assert "".join(pieces) == APP_PY  # nothing lost or repeated
    assert result.formats == {"Plain text / code": 1}
    assert {d.source_format for d in documents} == {"text"}


def test_default_estimate_is_four_characters_per_token():
    prose = "".join(f"Line {n} of my notes, about {n * 7} things.\n" for n in range(200))
    documents = load_sources([SourceFile("notes.txt", prose.encode())], ImportOptions(text_chunk_tokens=100)).documents

    assert all(len(d.text) <= 400 for d in documents)
    pieces = bodies(documents, "notes.txt")
    assert "".join(pieces) == prose
    # cuts fall at line ends, and chunks are filled: no two neighbours would have fitted together
    assert all(piece.endswith("\n") for piece in pieces)
    assert all(len(a) + len(b) + len("File: notes.txt\n") > 400 for a, b in zip(pieces, pieces[1:]))


def test_a_line_longer_than_the_budget_is_cut_inside_the_line():
    minified = "var a=1;" * 300 + "\nshort line\n"
    pieces = list(text.chunk_lines(minified, 50, text.estimate_tokens))

    assert "".join(pieces) == minified
    assert all(text.estimate_tokens(piece) <= 50 for piece in pieces)
    assert pieces[0] == minified[:200]


def test_whitespace_only_chunks_are_left_out():
    assert list(text.chunk_lines("a\n" + "\n" * 50 + "b\n", 3, words)) == ["a\n" + "\n" * 50 + "b\n"]
    assert list(text.chunk_lines("   \n\n", 3, words)) == []


def test_a_budget_smaller_than_the_header_is_refused():
    with pytest.raises(UserError, match=r"^text_chunk_tokens: 2 tokens leave no room"):
        load_sources([SourceFile("a.txt", b"hello\n")], ImportOptions(text_chunk_tokens=2, count_tokens=words))


def test_prose_txt_is_text():
    source = SourceFile("diary.txt", b"Dear diary,\ntoday I fixed the kettle. Again.\n")
    assert detect(source) is text
    (document,) = load_sources([source]).documents
    assert document.text == "File: diary.txt\nDear diary,\ntoday I fixed the kettle. Again.\n"


def test_code_folder_reads_code_and_skips_json_config_and_the_image(tmp_path):
    repo = tmp_path / "repo"
    (repo / "src" / "pkg").mkdir(parents=True)
    (repo / "src" / "app.py").write_text(APP_PY)
    (repo / "src" / "pkg" / "__init__.py").write_text("")
    (repo / "README.md").write_text("# Repo\nHow to run it.\n")
    (repo / "Makefile").write_text("test:\n\tpytest -q\n")
    (repo / "package.json").write_text(
        json.dumps({"name": "repo", "version": "1.0.0", "scripts": {"test": "jest"}}, indent=2)
    )
    (repo / "logo.png").write_bytes(PNG)

    result = load([repo], ImportOptions(text_chunk_tokens=200))

    files = {d.id.split("#")[0] for d in result.documents}
    assert files == {"repo/src/app.py", "repo/README.md", "repo/Makefile"}
    assert result.conversations == []
    assert result.formats == {"Plain text / code": 3}
    assert result.dropped == {Drop.EMPTY: 1}  # the empty __init__.py
    # JSON is data, not prose: skipped inside a folder, and said so
    assert sorted(result.skipped_files) == ["repo/logo.png", "repo/package.json"]
    assert any("package.json" in warning for warning in result.warnings)


@pytest.mark.parametrize(
    ("name", "data"),
    [
        ("data.jsonl", b'{"event": "click"}\n'),
        ("table.csv", b"name,score\nann,3\n"),
        ("chat.json", b'{"participants": [{"name": "A"}], "oops": true}'),
        ("sft.json", b'[{"instruction": "hi", "reply": "no output key"}]'),
        ("legacy.json", b'{"prompt": "hi", "answer_text": "x"}'),
        ("image.txt", PNG),
        ("latin1.txt", "caf\xe9 au lait\n".encode("latin-1")),
    ],
)
def test_files_that_look_like_broken_exports_are_not_claimed(name, data):
    source = SourceFile(name, data)
    assert not text.sniff(source)
    with pytest.raises(UserError, match=f"^{name}: "):
        load_sources([source])


def test_invalid_utf8_past_the_sniffed_head_is_a_clear_error():
    data = b"# notes\n" + b"x" * 70_000 + b"\n\xff\xfe\n"
    with pytest.raises(UserError, match=r"^big\.md: not UTF-8 text \(bad byte at offset 70009\)"):
        load_sources([SourceFile("big.md", data)])


def test_a_lone_empty_file_is_an_error_not_an_empty_result():
    with pytest.raises(UserError, match=r"^empty\.txt: "):
        load_sources([SourceFile("empty.txt", b"  \n")])
