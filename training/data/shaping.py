"""ShapingOptions: how `prepare` turns conversations into examples, each option described once.

Each field's metadata (label, help, bounds, CLI spellings) is what the Data tab, `prepare`'s flags
and the README show for it (training/settings.py). The options are saved beside the examples in the
persona manifest (training/data/manifest.py), so chat repeats the prompt training saw.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from training.conversation import MAX_MESSAGE_CHARS
from training.errors import UserError
from training.prompting import PromptStyle
from training.settings import FRACTION, bound_problems, setting

DEFAULT_SYSTEM_PROMPT = "You are {me}. Reply the way {me} texts."


def parse_day(value: str | None, field_name: str) -> float | None:
    """'2024-05-31' (or a full ISO time) -> epoch seconds, UTC; blank -> None."""
    if value is None or not str(value).strip():
        return None
    try:
        parsed = datetime.fromisoformat(str(value).strip())
    except ValueError:
        raise UserError(f"{field_name}: {value!r} is not a date like 2024-05-31") from None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.timestamp()


def day_setting(label: str, flag: str, help: str) -> Any:
    """A date bound: typed as YYYY-MM-DD (CLI and UI), held as epoch seconds (UTC); empty = no bound."""
    return setting(None, label=label, flags=(flag,), parse=parse_day, help=help)


@dataclass
class ShapingOptions:
    me: str = setting(label="Which participant are you?", help="your name as it appears in the export")
    separator: str = setting(
        "\n", label="Join my consecutive messages with", help="joins the messages of one turn; seed 000 used '|'"
    )
    gap_minutes: float = setting(
        60.0,
        label="New conversation after a silence of (minutes)",
        above=0,
        help="silence that starts a new conversation",
    )
    context_turns: int = setting(
        6, label="Earlier turns in each prompt", help="earlier turns kept in each prompt", min=1
    )
    system_prompt: str = setting(
        DEFAULT_SYSTEM_PROMPT,
        label="System prompt ({me} = your name; empty for none)",
        help="persona system prompt; {me} is replaced by your name; empty = none",
    )
    name_prefix_in_groups: bool = setting(
        True,
        label="Prefix group-chat turns with names",
        flags=("--name-prefix",),
        help="'Maya: ...' in group chats, so the model knows who said what",
    )
    include_threads: list[str] = setting(
        label="Only these threads",
        factory=list,
        flags=("--include-thread",),
        help="thread ids or titles to keep; empty = all",
    )
    exclude_threads: list[str] = setting(
        label="Leave out these threads",
        factory=list,
        flags=("--exclude-thread",),
        help="thread ids or titles to leave out",
    )
    include_groups: bool = setting(
        True, label="Include group chats", flags=("--groups",), help="keep group chats; off leaves them out"
    )
    start: float | None = day_setting(
        "From date (YYYY-MM-DD)", "--since", "keep messages from this date (UTC, inclusive); empty = from the start"
    )
    end: float | None = day_setting(
        "Before date (YYYY-MM-DD)", "--until", "keep messages before this date (UTC); empty = to the end"
    )
    min_chars: int = setting(1, label="Shortest reply (chars)", help="shortest reply of yours to keep", min=0)
    max_chars: int = setting(4000, label="Longest reply (chars)", help="longest reply of yours to keep", min=1)
    dedup: bool = setting(True, label="Drop duplicate examples", help="drop repeated prompt/reply pairs")
    scrub_pii: bool = setting(
        False,
        label="Scrub emails, phones, URLs, card numbers, IPs",
        help="replace emails, phone numbers, URLs, card numbers, IBANs and IPs with placeholders",
    )
    val_fraction: float = setting(
        0.1,
        label="Held out for validation",
        help="share of conversations held out for validation (seed 003 held out 10%)",
        **FRACTION,
    )

    def validate(self) -> None:
        problems = bound_problems(self)
        if problems:
            raise UserError("; ".join(problems))
        if self.max_chars > MAX_MESSAGE_CHARS:
            raise UserError(
                f"max_chars: {self.max_chars:,} is above the {MAX_MESSAGE_CHARS:,} characters "
                "a reply can have here; longer ones are pasted text, not chat"
            )
        if self.min_chars > self.max_chars:
            raise UserError(f"min_chars: {self.min_chars} is above max_chars {self.max_chars}")
        if self.start is not None and self.end is not None and self.start >= self.end:
            raise UserError("start: the start date must be before the end date")

    @property
    def rendered_system_prompt(self) -> str:
        return (self.system_prompt or "").replace("{me}", self.me)

    def prompt_style(self) -> PromptStyle:
        """The settings chat must repeat to build the prompts these options build for training."""
        return PromptStyle(
            separator=self.separator,
            system_prompt=self.rendered_system_prompt,
            context_turns=self.context_turns,
            name_prefix_in_groups=self.name_prefix_in_groups,
        )
