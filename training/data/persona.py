"""Conversations -> prompt/completion examples that teach a model to reply the way "me" texts.

A turn is a run of consecutive messages by one sender; a session ends after a silence longer
than `gap_minutes`. Every turn of mine that answers someone else becomes one example whose
prompt is the preceding turns of that session (theirs as "user", my earlier ones as
"assistant") and whose completion is my turn: TRL's conversational prompt-completion shape, so
the loss falls only on my words.
"""

from __future__ import annotations

import contextlib
import dataclasses
import difflib
import hashlib
import operator
import os
import tempfile
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from itertools import compress, count, repeat
from pathlib import Path
from typing import NamedTuple

from training.cancel import check_cancelled
from training.conversation import Conversation, ImportResult, Message
from training.data.collector import collector_paused
from training.data.jsonl import write_rows
from training.data.manifest import FORMAT_VERSION, encode, manifest_path
from training.data.scrub import scrub
from training.data.shaping import ShapingOptions
from training.errors import UserError
from training.prompting import (
    context_window,
    message_turns,
    system_messages,
    turn_messages,
)

_SENDER, _TIMESTAMP = operator.attrgetter("sender"), operator.attrgetter("timestamp")


class RowSource(NamedTuple):
    """Where a row came from: its thread and the other people in it (memory excludes by these)."""

    thread: str  # the conversation's id
    title: str
    people: tuple[str, ...]  # everyone but me who wrote in the thread


@dataclass
class PreparedData:
    train: list[dict]
    validation: list[dict]
    summary: dict
    manifest: dict = field(default_factory=dict)  # what made these rows (training/data/manifest.py)
    train_sources: list[RowSource] = field(default_factory=list)  # one per train row, in order

    @property
    def rows(self) -> list[dict]:
        return self.train + self.validation


def participants(result: ImportResult) -> list[tuple[str, int]]:
    """Everyone who wrote a kept message, most active first."""
    counts: Counter = Counter()
    for conversation in result.conversations:
        counts.update(map(_SENDER, conversation.messages))
    return counts.most_common()


def check_me(result: ImportResult, me: str, people: list[tuple[str, int]] | None = None) -> None:
    people = participants(result) if people is None else people
    names = [name for name, _ in people]
    if me in names:
        return
    close = difflib.get_close_matches(me, names, n=3)
    hint = f"did you mean {', '.join(repr(n) for n in close)}? " if close else ""
    listed = ", ".join(f"{name} ({count})" for name, count in people[:8])
    raise UserError(f"--me {me!r}: nobody by that name wrote a message; {hint}participants: {listed}")


def prepare(result: ImportResult, options: ShapingOptions) -> PreparedData:
    options.validate()
    with collector_paused():
        people = participants(result)
        if result.conversations:
            check_me(result, options.me, people)
        dropped: Counter = Counter(result.dropped)
        pii: Counter = Counter()
        examples, sessions = _examples(result, options, dropped, pii)
        if not examples:
            raise UserError(
                f"no training examples: {options.me!r} never replies to anyone after the filters; "
                "check the participant, the date range and the thread filters"
            )
        held_out = held_out_keys([key for key, _ in examples], options.val_fraction)
        train = [row for key, row in examples if key not in held_out]
        validation = [row for key, row in examples if key in held_out]
        sources = _row_sources(result, options.me, [key for key, _ in examples if key not in held_out])
        summary = _summary(result, options, people, dropped, pii, sessions, train, validation)
    return PreparedData(
        train=train,
        validation=validation,
        summary=summary,
        manifest=build_manifest(options, summary),
        train_sources=sources,
    )


def _row_sources(result: ImportResult, me: str, keys: list[str]) -> list[RowSource]:
    """The thread of each row, from its split key ("<conversation id>#<session>" or a document's id)."""
    threads = {
        c.id: RowSource(c.id, c.title, tuple(sorted({m.sender for m in c.messages} - {me})))
        for c in result.conversations
    }
    return [threads.get(key.rpartition("#")[0]) or RowSource(key, key, ()) for key in keys]


def _examples(
    result: ImportResult, options: ShapingOptions, dropped: Counter, pii: Counter
) -> tuple[list[tuple[str, dict]], int]:
    """(split key, row) for every example, and how many sessions they came from."""
    examples: list[tuple[str, dict]] = []
    seen: set[tuple[str, str]] = set()
    sessions = 0
    for conversation in result.conversations:
        check_cancelled()
        messages = _kept_messages(conversation, options, dropped)
        if options.scrub_pii:
            messages = [Message(m.sender, scrub(m.text, pii), m.timestamp) for m in messages]
        for index, session in enumerate(split_sessions(messages, options.gap_minutes * 60)):
            sessions += 1
            key = f"{conversation.id}#{index}"
            for row in _session_examples(conversation, session, options, dropped):
                if options.dedup and _is_duplicate(row, seen):
                    dropped["duplicate example"] += 1
                    continue
                examples.append((key, row))
    for document in result.documents:
        text = scrub(document.text, pii) if options.scrub_pii else document.text
        examples.append((document.id.split("#")[0], {"text": text}))
    return examples, sessions


def _kept_messages(conversation: Conversation, options: ShapingOptions, dropped: Counter) -> list[Message]:
    if not _thread_selected(conversation, options):
        dropped["excluded thread"] += len(conversation.messages)
        return []
    if conversation.is_group and not options.include_groups:
        dropped["group chat excluded"] += len(conversation.messages)
        return []
    if options.start is None and options.end is None:
        return conversation.messages
    start = float("-inf") if options.start is None else options.start
    end = float("inf") if options.end is None else options.end
    kept = [m for m in conversation.messages if m.timestamp is None or start <= m.timestamp < end]
    dropped["outside date range"] += len(conversation.messages) - len(kept)
    return kept


def _thread_selected(conversation: Conversation, options: ShapingOptions) -> bool:
    names = {conversation.id, conversation.title}
    if options.include_threads and not names & set(options.include_threads):
        return False
    return not names & set(options.exclude_threads)


def split_sessions(messages: list[Message], gap_seconds: float) -> Iterator[list[Message]]:
    """Cut where the silence between two messages is longer than the gap."""
    stamps = list(map(_TIMESTAMP, messages))
    if None in stamps:
        yield from _split_sessions_without_clock(messages, gap_seconds)
        return
    # Every message has a time: the cuts come from the list of gaps in one pass in C (the
    # loop below costs ~1 s on a million messages).
    silences = map(operator.sub, stamps[1:], stamps[:-1])
    start = 0
    for cut in compress(count(1), map(operator.gt, silences, repeat(gap_seconds))):
        yield messages[start:cut]
        start = cut
    if messages:
        yield messages[start:]


def _split_sessions_without_clock(messages: list[Message], gap_seconds: float) -> Iterator[list[Message]]:
    """split_sessions where some messages have no time: they never start a session."""
    current: list[Message] = []
    last: float | None = None
    for message in messages:
        stamp = message.timestamp
        if current and stamp is not None and last is not None and stamp - last > gap_seconds:
            yield current
            current = []
        current.append(message)
        if stamp is not None:
            last = stamp
    if current:
        yield current


def _session_examples(
    conversation: Conversation, session: list[Message], options: ShapingOptions, dropped: Counter
) -> Iterator[dict]:
    # The session's messages are built once and shared by every example's prompt (a 1M-message
    # export makes ~10^5 prompts); chat builds its prompts with the same functions (prompting.py).
    turns = message_turns(session, options.me, options.separator)
    # Measured before turn_messages keeps only the end of a long turn (prompting.MAX_MESSAGE_CHARS):
    # a reply too long to be an example may still be context. Each of my turns is one assistant block.
    too_long = iter([len(turn.text) > options.max_chars for turn in turns if turn.mine])
    blocks = turn_messages(turns, name_prefix=conversation.is_group and options.name_prefix_in_groups)
    system = system_messages(conversation.system or options.rendered_system_prompt)
    for index, block in enumerate(blocks):
        if block["role"] != "assistant":
            continue
        reply_too_long = next(too_long)
        if index == 0:
            dropped["my turn opens the conversation"] += 1
            continue
        reply = block["content"]
        if len(reply) < options.min_chars:
            dropped["reply too short"] += 1
            continue
        if reply_too_long:
            dropped["reply too long"] += 1
            continue
        prompt = system + context_window(blocks, index, options.context_turns)
        # The reply is {"role": "assistant", "content": reply} already, the same dict later prompts
        # hold as context: shared, not copied (~50 MB less on a million-message export).
        yield {"prompt": prompt, "completion": [block]}


def _is_duplicate(row: dict, seen: set[tuple[str, str]]) -> bool:
    key = (row["prompt"][-1]["content"], row["completion"][0]["content"])
    if key in seen:
        return True
    seen.add(key)
    return False


def split_by_conversation(examples: list[tuple[str, dict]], val_fraction: float) -> tuple[list[dict], list[dict]]:
    """Deterministic split where a conversation is wholly in train or wholly in validation.

    Conversations are ranked by a hash of their id, so the split is stable across runs and
    machines and does not depend on input order.
    """
    held_out = held_out_keys([key for key, _ in examples], val_fraction)
    train = [row for key, row in examples if key not in held_out]
    validation = [row for key, row in examples if key in held_out]
    return train, validation


def held_out_keys(keys: list[str], val_fraction: float) -> set[str]:
    """The conversations split_by_conversation holds out: the first by hash of their key."""
    ranked = sorted(set(keys), key=lambda k: hashlib.sha256(k.encode()).hexdigest())
    count = round(len(ranked) * val_fraction)
    if val_fraction > 0 and count == 0 and len(ranked) >= 2:
        count = 1
    return set(ranked[:count])


def _summary(result, options, people, dropped, pii, sessions, train, validation) -> dict:
    summary = {
        "formats": dict(result.formats),
        "participants": [{"name": n, "messages": c} for n, c in people],
        "me": options.me,
        "threads": len(result.conversations),
        "conversations": sessions,
        "documents": len(result.documents),
        "messages": result.message_count,
        "examples": len(train) + len(validation),
        "train": len(train),
        "validation": len(validation),
        "dropped": dict(sorted(dropped.items(), key=lambda item: -item[1])),
        "warnings": list(result.warnings),
    }
    if options.scrub_pii:
        summary["pii_replaced"] = dict(pii)
    return summary


def build_manifest(options: ShapingOptions, summary: dict) -> dict:
    """What made the rows, for save() to write beside them (training/data/manifest.py describes the file)."""
    counted = (
        "threads",
        "conversations",
        "documents",
        "messages",
        "examples",
        "train",
        "validation",
        "dropped",
        "pii_replaced",
    )
    return {
        "format_version": FORMAT_VERSION,
        "prompt": options.prompt_style().to_dict(),
        "shaping": dataclasses.asdict(options),
        "sources": {"formats": summary["formats"]},
        "counts": {key: summary[key] for key in counted if key in summary},
    }


def validation_path(out: str | os.PathLike) -> Path:
    """Where the held-out examples go next to the training file: X.jsonl -> X.val.jsonl."""
    path = Path(out)
    stem = path.name[: -len(".jsonl")] if path.name.endswith(".jsonl") else path.name
    return path.with_name(f"{stem}.val.jsonl")


def write_jsonl(rows: Iterable[dict], out: str | os.PathLike) -> Path:
    """Write atomically: readers never see a half-written file, a failure leaves no file."""
    path = output_path(out)
    with atomic_files([path]) as (handle,):
        write_rows(handle, rows)
    return path


def save(prepared: PreparedData, out: str | os.PathLike) -> tuple[Path, Path]:
    """The training rows at `out`, the validation rows at X.val.jsonl, the manifest at X.persona.json.

    All three appear together or not at all, so a manifest always describes the rows beside it.
    """
    train_path = output_path(out)
    val_path, manifest = validation_path(train_path), manifest_path(train_path)
    with atomic_files([train_path, val_path, manifest]) as (train, validation, described):
        write_rows(train, prepared.train)
        write_rows(validation, prepared.validation)
        described.write(encode(prepared.manifest))
    return train_path, val_path


def output_path(out: str | os.PathLike) -> Path:
    path = Path(out)
    if path.is_dir():
        raise UserError(f"{path}: is a folder; expected a .jsonl file path for the output")
    path.parent.mkdir(parents=True, exist_ok=True)
    return path


@contextlib.contextmanager
def atomic_files(paths: list[Path]) -> Iterator[list]:
    """A temporary file beside each path, renamed into place once all are written; on failure none is left."""
    temps: list[Path] = []
    try:
        with contextlib.ExitStack() as stack:
            handles = []
            for path in paths:
                handle = stack.enter_context(
                    tempfile.NamedTemporaryFile(
                        "w", encoding="utf-8", dir=path.parent, prefix=f".{path.name}.", delete=False
                    )
                )
                temps.append(Path(handle.name))
                handles.append(handle)
            yield handles
        for temp, path in zip(temps, paths, strict=True):
            os.replace(temp, path)
    except BaseException:
        for temp in temps:
            temp.unlink(missing_ok=True)
        raise


def to_dataset(rows: list[dict]):
    """The rows as an in-memory datasets.Dataset (what TRL's SFTTrainer takes)."""
    import datasets  # imported late: it costs a second and the CLI's detect/participants never need it

    return datasets.Dataset.from_list(rows)


def guess_me(result: ImportResult) -> str | None:
    """A first guess at who exported the chats, for the UI to preselect (the user confirms).

    The exporting person is in every thread of their own export, so pick the sender present
    in the most conversations; data sets use the "assistant" role.
    """
    people = dict(participants(result))
    if not people:
        return None
    if "assistant" in people:
        return "assistant"
    presence: Counter = Counter()
    for conversation in result.conversations:
        presence.update({m.sender for m in conversation.messages})
    return max(people, key=lambda name: (presence[name], people[name]))
