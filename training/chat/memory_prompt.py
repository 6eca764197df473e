"""Memory at chat time: which data set's memory a run uses, and how recalled exchanges enter the prompt.

    memory = open_chat_memory(RUN, MemorySettings(k=2, exclude_people=("Maya Chen",)))
    build_prompt(model, history, "free thursday?", memory=memory)   # generate.py

The facts and the recalled exchanges go at the end of the system prompt, compactly, on one line:

    You are Sam. Reply the way Sam texts.

    Facts about you: barista in Portland; rides a bike. Things you said before: [them: are you free thursday? / you: no class thursday afternoon] [them: ...]

One line, because a block of one memory per line made replies come in more bubbles (a bubble is a
line for most personas): on the Chit-Chat speaker's held-out conversations, 1.85 bubbles a reply
without memory (the person: 1.78) became 2.33-2.73 with a line per memory and 1.98 with one line,
which also kept reply length and style as they were without memory (docs/benchmarks.md, "Memory").

build_prompt keeps the newest message first, then the memories (the least relevant go first when
space runs out, then the facts), then as much of the history as still fits.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from training.chat.facts import check_facts, facts_path, read_facts
from training.chat.memory import MAX_K, SHOWN_CHARS, MemoryIndex, Recalled, memory_path, open_memory
from training.errors import UserError

DEFAULT_K = 2  # 4 made the Chit-Chat persona's replies longer, in more bubbles (docs/benchmarks.md, Memory)


@dataclass(frozen=True)
class MemorySettings:
    k: int = DEFAULT_K  # past exchanges recalled per message
    exclude_threads: tuple[str, ...] = ()  # thread titles or ids never recalled
    exclude_people: tuple[str, ...] = ()  # nothing from a thread these people are in
    facts: tuple[str, ...] | None = None  # None: the data set's facts file (X.facts.txt)

    def validate(self) -> MemorySettings:
        if isinstance(self.k, bool) or not isinstance(self.k, int) or not 0 <= self.k <= MAX_K:
            raise UserError(f"memory k: {self.k!r}; expected a whole number from 0 to {MAX_K}")
        return self


@dataclass(frozen=True)
class Remembered:
    """What one prompt was given: the facts, and the recalled exchanges, best first."""

    facts: tuple[str, ...] = ()
    recalled: tuple[Recalled, ...] = ()

    def shrinking(self) -> Iterator[Remembered]:
        """This, then with fewer exchanges (the least relevant dropped first), then without facts."""
        for count in range(len(self.recalled), -1, -1):
            yield Remembered(self.facts, self.recalled[:count])
        if self.facts:
            yield Remembered()

    def __bool__(self) -> bool:
        return bool(self.facts or self.recalled)


@dataclass
class ChatMemory:
    """A data set's memory with the settings to recall with: what chat is given when Memory is on."""

    index: MemoryIndex | None  # None: facts only (the data set has no index)
    settings: MemorySettings
    facts: tuple[str, ...] = field(default=())
    data_file: str = ""

    def remember(self, message: str) -> Remembered:
        recalled = (
            ()
            if self.index is None
            else tuple(
                self.index.recall(message, self.settings.k, self.settings.exclude_threads, self.settings.exclude_people)
            )
        )
        return Remembered(self.facts, recalled)


def open_chat_memory(
    source: str | os.PathLike, settings: MemorySettings | None = None, facts_file: str | os.PathLike | None = None
) -> ChatMemory:
    """The memory for chatting with `source`: a run (its training data's memory) or a data set X.jsonl."""
    settings = (settings or MemorySettings()).validate()
    data_file = memory_data_file(source)
    facts = settings.facts if settings.facts is not None else read_facts(facts_file or facts_path(data_file))
    facts = tuple(check_facts(facts))  # before the index loads: a bad fact fails fast
    return ChatMemory(open_memory(data_file), settings, facts, str(data_file))


def training_rows_memory(
    rows: list[dict], settings: MemorySettings, facts: list[str] | tuple[str, ...] = ()
) -> ChatMemory:
    """A memory of exactly these training rows, held in memory: what an evaluation recalls from, so
    no held-out conversation (a validation split of the same file included) is ever recalled."""
    from training.chat.memory import exchanges_from_rows, index_in_memory

    exchanges = exchanges_from_rows(rows)
    if not exchanges:
        raise UserError("memory: the training data has no prompt/reply rows to remember")
    return ChatMemory(index_in_memory(exchanges), settings.validate(), tuple(check_facts(facts)))


def memory_data_file(source: str | os.PathLike) -> Path:
    """The data set whose memory a run or data file uses: a run's training data, or X.jsonl itself."""
    path = Path(source)
    if path.suffix == ".jsonl":
        return path
    from training.train.run_record import read_run

    try:
        record = read_run(path)
    except UserError:
        if (path / "config.yaml").is_file() or (path.parent / "config.yaml").is_file():
            raise  # a run whose own files are wrong: its error says which
        raise UserError(
            f"memory: {path.name} is not a run or a data set (X.jsonl); memory comes from the data a run trained on"
        ) from None
    if not record.config.train_file:
        raise UserError(f"memory: {record.name} names no training data, so it has no memory")
    data_file = Path(record.config.train_file)
    if not memory_path(data_file).is_dir():
        raise UserError(
            f"memory: {data_file.name} has no memory index beside it; build it with "
            f"`python -m training memory build {data_file}`"
        )
    return data_file


def memory_system_prompt(system_prompt: str, remembered: Remembered) -> str:
    """The system prompt with the facts and memories after it (unchanged when there are none)."""
    if not remembered:
        return system_prompt
    parts = []
    if remembered.facts:
        parts.append(f"Facts about you: {'; '.join(_compact(fact) for fact in remembered.facts)}.")
    if remembered.recalled:
        said = " ".join(
            f"[them: {_compact(r.exchange.them)} / you: {_compact(r.exchange.you)}]" for r in remembered.recalled
        )
        parts.append(f"Things you said before: {said}")
    block = " ".join(parts)
    return f"{system_prompt}\n\n{block}" if system_prompt else block


def with_memory(messages: list[dict[str, str]], remembered: Remembered) -> list[dict[str, str]]:
    """The prompt's messages with the memory in the system message (one is added when there is none)."""
    if messages and messages[0]["role"] == "system":
        system, rest = messages[0]["content"], messages[1:]
    else:
        system, rest = "", messages
    content = memory_system_prompt(system, remembered)
    return ([{"role": "system", "content": content}] if content else []) + rest


def _compact(text: str) -> str:
    """One line, at most SHOWN_CHARS characters: a memory is a reminder, not a transcript."""
    line = " / ".join(part.strip() for part in text.splitlines() if part.strip())
    return line if len(line) <= SHOWN_CHARS else line[: SHOWN_CHARS - 1] + "…"


def describe(remembered: Remembered) -> str:
    """The memories used, as plain text lines (the CLI's --show-memory, the UI's list)."""
    lines = [f"fact: {fact}" for fact in remembered.facts]
    for r in remembered.recalled:
        where = f" ({r.exchange.title})" if r.exchange.title else ""
        lines.append(f"[{r.score:.2f}]{where} them: {_compact(r.exchange.them)} / you: {_compact(r.exchange.you)}")
    return "\n".join(lines) if lines else "(no memories matched this message)"
