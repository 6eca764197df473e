"""The blind test: friends see a real held-out conversation and two replies to it, the person's own
and the tuned model's, in an order chosen for them, and pick the one they think is real.

    prepare_items(run, count=20, consent=True)  ->  RUN/blind_test/items.json
    BallotBox(run).vote(voter, address, item_id, picked="bot")  ->  RUN/blind_test/votes.jsonl
    BallotBox(run).tally()  ->  the fool rate (how often the bot was picked as real) with a 95% interval

The items quote the owner's own chats, so they exist only when the owner agreed (`consent`), and
only held-out conversations are used: the model never trained on them, and the bot's replies are
generated once, here, so a visitor's vote costs no generation. Each vote is keyed on a voter id the
server issued (not the session id the client chooses) and one vote per voter and item is kept;
since a client can open new sessions at will, the voters one network address may bring are capped,
and so is the whole ballot. Addresses are kept in memory only: the votes file never holds one.
"""

from __future__ import annotations

import json
import os
import random
import secrets
import threading
import time
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

from training.errors import UserError

FOLDER = "blind_test"
CONTEXT_TURNS = 6  # the conversation shown above the two replies: its last turns, enough to follow it
VOTERS_PER_ADDRESS = 3  # a household or an office shares one address; more sessions from it are one person
MAX_VOTERS = 5000  # bounds the votes file whatever the number of addresses a ballot stuffer has
CONSENT_FLAG = "--allow-showing-my-texts"


@dataclass(frozen=True)
class Item:
    id: str
    context: list[dict]  # the last turns before the reply: role "user" = someone else, "assistant" = the person
    real: str
    bot: str


def prepare_items(
    run_dir: str | os.PathLike,
    count: int = 20,
    seed: int = 0,
    consent: bool = False,
    decoding=None,
    device: str | None = None,
    memory=None,
) -> Path:
    """Generate the bot's replies to `count` held-out conversations and save them with the real ones.

    `memory` (memory_prompt.MemorySettings): the bot replies with memory, recalled from the rows the
    run trained on only (as the report's tuned+memory), so a held-out conversation never answers itself."""
    from training.chat.batch import generate_batch
    from training.chat.generate import load_chat_model
    from training.report.build import default_decoding, training_memory
    from training.report.heldout import held_out_rows
    from training.train.run_record import read_run

    run = read_run(run_dir)
    if not consent:
        raise UserError(
            f"{run.name}: the blind test shows your real held-out messages to whoever opens the page; "
            f"pass {CONSENT_FLAG} (in the app: tick the box) to agree"
        )
    if run.model is None:
        raise UserError(
            f"{run.name}: no trained model in final/ yet; prepare the blind test once training has finished"
        )
    if count < 1:
        raise UserError(f"items: {count}; expected a whole number >= 1")
    held = held_out_rows(run.config, limit=count, seed=seed)
    rows = held.rows
    model = load_chat_model(run.path, device)
    settings = (decoding or default_decoding(seed)).validate()
    recalled = training_memory(run, held.train, memory) if memory is not None else None
    requests = [(row["prompt"][:-1], row["prompt"][-1]["content"]) for row in rows]
    bot = generate_batch(model, requests, settings, memory=recalled)
    items = _ballot_items(rows, bot)
    if not items:
        raise UserError(
            f"{run.name}: the model's replies were all empty or identical to the real ones; nothing to vote on"
        )
    folder = Path(run.path) / FOLDER
    folder.mkdir(exist_ok=True)
    record = {
        "version": 1,
        "run": run.name,
        "created": time.strftime("%Y-%m-%dT%H:%M:%S"),
        "consent": True,
        "separator": model.separator,
        "decoding": settings.__dict__,
        "memory_k": None if memory is None else memory.k,
        "items": items,
    }
    return _write_atomically(folder / "items.json", json.dumps(record, ensure_ascii=False, indent=1))


def _ballot_items(rows: list[dict], bot: list[str]) -> list[dict]:
    """One item per held-out row whose bot reply differs from the real one: context, real, bot."""
    from training.report.heldout import reply_text

    items = []
    for number, (row, reply) in enumerate(zip(rows, bot), start=1):
        real = reply_text(row)
        if reply.strip() and reply.strip() != real.strip():  # an empty or identical reply gives nothing to choose
            turns = [m for m in row["prompt"] if m["role"] != "system"][-CONTEXT_TURNS:]
            items.append({"id": f"item-{number}", "context": turns, "real": real, "bot": reply.strip()})
    return items


def load_items(run_dir: str | os.PathLike) -> tuple[list[Item], str]:
    """The prepared items and the bubble separator of the run's replies; UserError if there are none."""
    path = Path(run_dir) / FOLDER / "items.json"
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise UserError(
            f"{Path(run_dir).name}: no blind test prepared; run python -m training blind-test "
            f"{Path(run_dir).name} --items 20 {CONSENT_FLAG}"
        ) from None
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise UserError(f"{path}: not a blind test file (expected the JSON `training blind-test` writes)") from None
    if not record.get("consent"):
        raise UserError(f"{path}: the owner has not agreed to show these texts ({CONSENT_FLAG})")
    return [Item(i["id"], i["context"], i["real"], i["bot"]) for i in record["items"]], record.get("separator", "")


class BallotBox:
    """The votes of one run's blind test, counted by the server."""

    def __init__(
        self, run_dir: str | os.PathLike, voters_per_address: int = VOTERS_PER_ADDRESS, max_voters: int = MAX_VOTERS
    ) -> None:
        self.items, self.separator = load_items(run_dir)
        self._by_id = {item.id: item for item in self.items}
        self.path = Path(run_dir) / FOLDER / "votes.jsonl"
        self.voters_per_address, self.max_voters = voters_per_address, max_voters
        self._lock = threading.Lock()
        self._votes: list[dict] = _read_votes(self.path)
        self._voted: dict[str, set[str]] = defaultdict(set)
        for vote in self._votes:
            self._voted[vote["voter"]].add(vote["item"])
        self._voters_at: dict[str, set[str]] = defaultdict(set)  # address -> voters, this process only

    @staticmethod
    def new_voter() -> str:
        return secrets.token_hex(8)

    def next_item(self, voter: str) -> Item | None:
        """The first item this voter has not voted on, in an order of its own (None: all done)."""
        order = sorted(self.items, key=lambda item: random.Random(f"{voter}:{item.id}").random())
        with self._lock:
            done = self._voted.get(voter, set())
            return next((item for item in order if item.id not in done), None)

    def voted_on(self, voter: str) -> int:
        with self._lock:
            return len(self._voted.get(voter, ()))

    @staticmethod
    def real_first(voter: str, item: Item) -> bool:
        """Whether this voter sees the real reply as A: fixed per voter and item, half of them each way."""
        return random.Random(f"order:{voter}:{item.id}").random() < 0.5

    def vote(self, voter: str, address: str, item_id: str, picked: str) -> bool:
        """Count `voter`'s pick ("real" or "bot") on an item; True when they picked the real reply."""
        if picked not in ("real", "bot"):
            raise UserError(f"vote: {picked!r}; expected 'real' or 'bot'")
        if item_id not in self._by_id:
            raise UserError("That conversation is not part of this blind test.")
        with self._lock:
            if item_id in self._voted.get(voter, set()):
                raise UserError("You already voted on this one.")
            known = voter in self._voted
            if not known and voter not in self._voters_at[address]:
                if len(self._voters_at[address]) >= self.voters_per_address:
                    raise UserError(
                        f"Votes from one network are capped at {self.voters_per_address} people; thanks for playing!"
                    )
                if len(self._voted) >= self.max_voters:
                    raise UserError("This blind test is full: it has all the votes it can take.")
            vote = {"item": item_id, "voter": voter, "picked": picked, "time": round(time.time())}
            with self.path.open("a", encoding="utf-8") as handle:  # one write per line: never a half line
                handle.write(json.dumps(vote) + "\n")
            self._votes.append(vote)
            self._voted[voter].add(item_id)
            self._voters_at[address].add(voter)
        return picked == "real"

    def tally(self) -> dict:
        with self._lock:
            return tally(self._votes)


def tally(votes: list[dict]) -> dict:
    """Votes, voters, how many picked the bot as real, and that rate with its 95% Wilson interval."""
    from scipy.stats import binomtest

    fooled, count = sum(v["picked"] == "bot" for v in votes), len(votes)
    result = {
        "votes": count,
        "voters": len({v["voter"] for v in votes}),
        "fooled": fooled,
        "items": len({v["item"] for v in votes}),
        "fool_rate": None,
        "interval": None,
    }
    if count:
        interval = binomtest(fooled, count).proportion_ci(confidence_level=0.95, method="wilson")
        result.update(fool_rate=fooled / count, interval=[interval.low, interval.high])
    return result


def tally_markdown(result: dict) -> str:
    if not result["votes"]:
        return "**Blind test**: no votes yet."
    low, high = result["interval"]
    return (
        f"**Blind test**: friends picked the bot's reply as the real one in **{result['fool_rate']:.0%}** of "
        f"{result['votes']} votes ({result['fooled']} fooled; 95% interval {low:.0%}-{high:.0%}) from "
        f"{result['voters']} voters on {result['items']} conversations. 50% means they could not tell the "
        "bot from you; the interval treats every vote as independent."
    )


def votes_of(run_dir: str | os.PathLike) -> dict:
    """The tally of a run's votes so far (no votes, or no blind test: zero votes)."""
    return tally(_read_votes(Path(run_dir) / FOLDER / "votes.jsonl"))


def _read_votes(path: Path) -> list[dict]:
    votes = []
    if path.exists():
        for line in path.read_text(encoding="utf-8").splitlines():
            try:
                vote = json.loads(line)
            except json.JSONDecodeError:
                continue  # a line cut by a crash mid-write: that vote was never counted
            if isinstance(vote, dict) and {"item", "voter", "picked"} <= vote.keys():
                votes.append(vote)
    return votes


def _write_atomically(path: Path, text: str) -> Path:
    temporary = path.with_suffix(".tmp")
    temporary.write_text(text, encoding="utf-8")
    temporary.replace(path)
    return path
