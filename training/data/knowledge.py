"""Knowledge files -> conversational rows, the three kinds seed 003 made from a wiki and a codebase.

  (2) per document section, an instruction answered by the document itself:
      "Walk me through Fastly & Caching." -> the section's text
  (3) per code file, "What does the package.json file look like in the manage-frontend repo?" ->
      "As of December 2023, the package.json file looks like so:\n<the file>"
  (1) per document, a few question/answer pairs written by a generator (training/data/generator.py)

Long sections and files are cut at line ends to the token budget, as raw text is (formats/text.py),
and each part's question says which part it is. Every row is {"messages": [...], "source": file,
"kind": "section" | "code" | "qa"}: `train` splits messages into one prompt/completion row per
answer, so the loss falls on the answers only. A share of the generated pairs (not the template
rows, which repeat the documents word for word) is held out, as seed 003 held out 10% of its Q&A.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

from training.cancel import check_cancelled
from training.data.formats.text import chunk_lines, estimate_tokens
from training.data.jsonl import write_rows
from training.data.persona import atomic_files, output_path, validation_path
from training.data.sources import SourceFile, read_inputs
from training.errors import UserError

DOCUMENT_SUFFIXES = {".md", ".markdown", ".mdx", ".txt", ".text", ".rst", ".org", ".adoc", ""}
DATA_SET_SUFFIXES = {".jsonl", ".ndjson"}  # training data, not knowledge: left for `prepare`
CODE_LANGUAGES = {  # the fence label of a code answer, so chat renders it as code
    ".py": "python",
    ".js": "javascript",
    ".ts": "typescript",
    ".tsx": "tsx",
    ".jsx": "jsx",
    ".json": "json",
    ".sh": "bash",
    ".yaml": "yaml",
    ".yml": "yaml",
    ".toml": "toml",
    ".go": "go",
    ".rs": "rust",
    ".java": "java",
    ".rb": "ruby",
    ".c": "c",
    ".h": "c",
    ".cpp": "cpp",
    ".sql": "sql",
    ".scala": "scala",
    ".kt": "kotlin",
}
_HEADING = re.compile(r"^(#{1,6})\s+(.+?)\s*#*\s*$")
_FENCE = re.compile(r"^\s*(```|~~~)")
MAX_AS_OF_CHARS = 40
DEFAULT_VAL_FRACTION = 0.1  # seed 003


@dataclass
class KnowledgeFile:
    """One file handed in: `path` is how the repo names it (the folder it came in stripped), `repo` that folder."""

    path: str
    repo: str | None
    text: str
    is_code: bool

    @property
    def shown(self) -> str:
        return f"{self.repo}/{self.path}" if self.repo else self.path


@dataclass
class Section:
    heading: str | None  # None for the text before a document's first subheading
    body: str


@dataclass
class Knowledge:
    train: list[dict]
    validation: list[dict]
    counts: dict = field(default_factory=dict)


def read_knowledge(paths: Iterable[str], skipped: list[str] | None = None) -> list[KnowledgeFile]:
    """Documents and code files from files, folders and zips (media and binaries skipped, as `prepare` does)."""
    files = []
    paths = list(paths)
    for source in read_inputs(paths, skipped, wanted="documents or code files"):
        check_cancelled()
        if source.suffix in DATA_SET_SUFFIXES or source.looks_binary():
            if skipped is not None:
                skipped.append(source.name)
            continue
        text = source.text()
        if text.strip():
            files.append(_knowledge_file(source, text))
    if not files:
        raise UserError(
            f"{', '.join(map(str, paths))}: no text documents or code files found; expected "
            "markdown/text documents or source files"
        )
    return files


def _knowledge_file(source: SourceFile, text: str) -> KnowledgeFile:
    """A file inside a folder or zip the user gave is named from there: that folder is its repo."""
    repo, path = (source.name.split("/", 1) + [""])[:2] if source.in_container else (None, source.name)
    repo = repo.removesuffix(".zip") if repo else None
    return KnowledgeFile(
        path=path or source.name,
        repo=repo,
        text=text.replace("\r\n", "\n"),
        is_code=source.suffix not in DOCUMENT_SUFFIXES,
    )


# ---- documents: titles and sections from headings --------------------------------------------------


def title_of(file: KnowledgeFile) -> str:
    """The first level-1 heading, else the file name without its suffix, words spaced ("setup-guide" -> "setup guide")."""
    for heading, level in _headings(file.text):
        if level == 1:
            return heading
    return re.sub(r"[-_]+", " ", PurePosixPath(file.path).stem).strip() or file.path


def sections_of(text: str) -> list[Section]:
    """The text cut at every markdown heading (outside code fences); the title's own heading starts no section."""
    sections, heading, lines, fenced, seen_title = [], None, [], False, False
    for line in text.splitlines(keepends=True):
        if _FENCE.match(line):
            fenced = not fenced
        match = None if fenced else _HEADING.match(line.rstrip("\n"))
        if match and len(match.group(1)) == 1 and not seen_title and not "".join(lines).strip():
            seen_title = True  # the document's title: its text is the introduction
            continue
        if match:
            sections.append(Section(heading, "".join(lines)))
            heading, lines = match.group(2), []
        else:
            lines.append(line)
    sections.append(Section(heading, "".join(lines)))
    return [Section(s.heading, s.body.strip("\n")) for s in sections if s.body.strip()]


def _headings(text: str) -> Iterable[tuple[str, int]]:
    fenced = False
    for line in text.splitlines():
        if _FENCE.match(line):
            fenced = not fenced
        elif not fenced and (match := _HEADING.match(line)):
            yield match.group(2), len(match.group(1))


def section_rows(file: KnowledgeFile, budget: int, count: Callable[[str], int] = estimate_tokens) -> list[dict]:
    """Kind (2): "Walk me through <title>." for the introduction, "Walk me through <heading> (<title>)." per section."""
    title = title_of(file)
    rows = []
    for section in sections_of(file.text):
        topic = title if section.heading is None else f"{section.heading} ({title})"
        parts = list(chunk_lines(section.body, budget, count))
        for number, part in enumerate(parts, start=1):
            which = f" (part {number} of {len(parts)})" if len(parts) > 1 else ""
            rows.append(_row(f"Walk me through {topic}.{which}", part.strip("\n"), file, "section"))
    return rows


# ---- code: "What does PATH look like in the repo?" -----------------------------------------------


def code_rows(
    file: KnowledgeFile, as_of: str | None, budget: int, count: Callable[[str], int] = estimate_tokens
) -> list[dict]:
    """Kind (3): the file as it was on `as_of`, in parts of at most `budget` tokens."""
    where = f"the {file.repo} repo" if file.repo else "the repo"
    fence = CODE_LANGUAGES.get(PurePosixPath(file.path).suffix.lower(), "")
    parts = list(chunk_lines(file.text, budget, count))
    rows = []
    for number, part in enumerate(parts, start=1):
        which = f" (part {number} of {len(parts)})" if len(parts) > 1 else ""
        piece = f"part {number} of {len(parts)} of the {file.path} file" if len(parts) > 1 else f"the {file.path} file"
        opening = f"As of {as_of}, {piece}" if as_of else piece[0].upper() + piece[1:]
        answer = f"{opening} looks like so:\n```{fence}\n{part.rstrip(chr(10))}\n```"
        rows.append(_row(f"What does the {file.path} file look like in {where}?{which}", answer, file, "code"))
    return rows


def template_rows(
    files: list[KnowledgeFile],
    as_of: str | None = None,
    chunk_tokens: int = 1024,
    count: Callable[[str], int] = estimate_tokens,
) -> list[dict]:
    """Kinds (2) and (3) for every file, in the order given."""
    as_of = check_as_of(as_of)
    budget = chunk_tokens - 40  # room for the question and the "As of ..." line inside max_length
    if budget < 16:
        raise UserError(f"chunk_tokens: {chunk_tokens} leaves no room for a file's text; expected at least 56")
    rows = []
    for file in files:
        check_cancelled()
        rows += code_rows(file, as_of, budget, count) if file.is_code else section_rows(file, budget, count)
    return rows


def check_as_of(as_of: str | None) -> str | None:
    text = (as_of or "").strip()
    if not text:
        return None
    if len(text) > MAX_AS_OF_CHARS or "\n" in text:
        raise UserError(f"as_of: {text[:60]!r}; expected a short date like 'December 2023' or 2023-12-01")
    return text


def qa_row(question: str, answer: str, file: KnowledgeFile) -> dict:
    return _row(question, answer, file, "qa")


def _row(question: str, answer: str, file: KnowledgeFile, kind: str) -> dict:
    messages = [{"role": "user", "content": question}, {"role": "assistant", "content": answer}]
    return {"messages": messages, "source": file.shown, "kind": kind}


# ---- held-out split and saving --------------------------------------------------------------------


def split_pairs(pairs: list[dict], fraction: float = DEFAULT_VAL_FRACTION) -> tuple[list[dict], list[dict]]:
    """(train, validation): `fraction` of the Q&A rows by a hash of their question, so a rerun holds out the same ones."""
    ranked = sorted(pairs, key=lambda row: hashlib.sha256(row["messages"][0]["content"].encode()).hexdigest())
    held = round(len(ranked) * fraction)
    if fraction > 0 and held == 0 and len(ranked) >= 2:
        held = 1
    chosen = {id(row) for row in ranked[:held]}
    return [row for row in pairs if id(row) not in chosen], [row for row in pairs if id(row) in chosen]


def build(templates: list[dict], pairs: list[dict], val_fraction: float = DEFAULT_VAL_FRACTION) -> Knowledge:
    train_pairs, validation = split_pairs(pairs, val_fraction)
    kinds: dict[str, int] = {}
    for row in templates + pairs:
        kinds[row["kind"]] = kinds.get(row["kind"], 0) + 1
    counts = {
        "rows": len(templates) + len(pairs),
        **kinds,
        "train": len(templates) + len(train_pairs),
        "validation": len(validation),
    }
    return Knowledge(train=templates + train_pairs, validation=validation, counts=counts)


def save(knowledge: Knowledge, out: str | Path) -> tuple[Path, Path | None]:
    """Training rows at `out`, held-out Q&A at X.val.jsonl (only when there are some); both or neither."""
    train_path = output_path(out)
    if not knowledge.validation:
        with atomic_files([train_path]) as (train,):
            write_rows(train, knowledge.train)
        validation_path(train_path).unlink(missing_ok=True)  # an older build's held-out rows no longer match
        return train_path, None
    val_path = validation_path(train_path)
    with atomic_files([train_path, val_path]) as (train, validation):
        write_rows(train, knowledge.train)
        write_rows(validation, knowledge.validation)
    return train_path, val_path
