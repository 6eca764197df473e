"""The blind test: friends pick which of two replies is really the person's. Items are prepared
from held-out conversations only and only with the owner's consent; the server counts one vote per
voter it issued and item, caps the voters one address can bring, and tells the owner the fool rate."""

from __future__ import annotations

import json
import re
from concurrent.futures import ThreadPoolExecutor

import pytest

from tests.export_runs import adapter_run
from tests.report_runs import on_sam_data, sam_examples
from tests.test_report_cli import run_cli
from tests.ui_client import served
from tests.visitors import Visitor
from training.errors import UserError
from training.report.blind import FOLDER, BallotBox, tally, tally_markdown
from training.train.config import RunConfig


def items_folder(tmp_path, count: int = 4):
    """A run folder holding a prepared blind test of `count` hand-written items."""
    items = [
        {
            "id": f"item-{n}",
            "context": [{"role": "user", "content": f"question {n}?"}],
            "real": f"real answer {n}",
            "bot": f"bot answer {n}",
        }
        for n in range(1, count + 1)
    ]
    folder = tmp_path / "run" / FOLDER
    folder.mkdir(parents=True)
    (folder / "items.json").write_text(json.dumps({"version": 1, "consent": True, "separator": "", "items": items}))
    return tmp_path / "run"


def votes_file(run):
    return [json.loads(line) for line in (run / FOLDER / "votes.jsonl").read_text().splitlines()]


def test_one_vote_per_voter_and_item_kept_across_a_restart(tmp_path):
    run = items_folder(tmp_path)
    ballot = BallotBox(run)
    voter = ballot.new_voter()
    assert ballot.vote(voter, "10.0.0.1", "item-1", "real") is True
    assert ballot.vote(voter, "10.0.0.1", "item-2", "bot") is False
    with pytest.raises(UserError, match="already voted"):
        ballot.vote(voter, "10.0.0.1", "item-1", "bot")
    with pytest.raises(UserError, match="not part of this blind test"):
        ballot.vote(voter, "10.0.0.1", "item-99", "bot")
    with pytest.raises(UserError, match="expected 'real' or 'bot'"):
        ballot.vote(voter, "10.0.0.1", "item-3", "A")
    restarted = BallotBox(run)  # the server restarted: the votes file is read back
    with pytest.raises(UserError, match="already voted"):
        restarted.vote(voter, "10.0.0.9", "item-2", "real")
    assert restarted.next_item(voter).id in {"item-3", "item-4"}
    assert [(v["voter"], v["item"], v["picked"]) for v in votes_file(run)] == [
        (voter, "item-1", "real"),
        (voter, "item-2", "bot"),
    ]
    assert "10.0.0.1" not in (run / FOLDER / "votes.jsonl").read_text()  # addresses stay in memory


def test_an_address_brings_at_most_its_voters_and_the_ballot_has_a_ceiling(tmp_path):
    ballot = BallotBox(items_folder(tmp_path), voters_per_address=3, max_voters=5)
    voters = [ballot.new_voter() for _ in range(6)]
    for voter in voters[:3]:
        ballot.vote(voter, "10.0.0.1", "item-1", "bot")
    with pytest.raises(UserError, match="capped at 3 people"):
        ballot.vote(voters[3], "10.0.0.1", "item-1", "bot")
    ballot.vote(voters[0], "10.0.0.1", "item-2", "real")  # a counted voter goes on voting
    ballot.vote(voters[3], "10.0.0.2", "item-1", "real")  # from elsewhere: another person
    ballot.vote(voters[4], "10.0.0.3", "item-1", "real")
    with pytest.raises(UserError, match="full"):
        ballot.vote(voters[5], "10.0.0.4", "item-1", "real")
    assert tally(votes_file(ballot.path.parent.parent))["voters"] == 5


def test_each_voter_sees_every_item_once_in_an_order_of_their_own(tmp_path):
    ballot = BallotBox(items_folder(tmp_path, count=6))
    orders, real_first = [], []
    for n in range(20):
        voter, seen = f"voter-{n}", []
        while (item := ballot.next_item(voter)) is not None:
            seen.append(item.id)
            real_first.append(BallotBox.real_first(voter, item))
            ballot.vote(voter, f"10.0.1.{n}", item.id, "real")
        assert sorted(seen) == sorted(i.id for i in ballot.items)
        orders.append(tuple(seen))
    assert len(set(orders)) > 10  # not one order for everyone
    assert 0.3 < sum(real_first) / len(real_first) < 0.7  # the real reply is A about half the time


def test_the_fool_rate_and_its_wilson_interval_match_the_hand_computed_ones():
    votes = [{"item": f"i{n % 4}", "voter": f"v{n % 5}", "picked": "bot" if n < 3 else "real"} for n in range(10)]
    result = tally(votes)
    # p = 3/10, z = 1.96: centre (0.3 + z²/20) / (1 + z²/10) = 0.35551, half width
    # z·sqrt(0.3·0.7/10 + z²/400) / (1 + z²/10) = 0.24772: [0.10779, 0.60322].
    assert (result["votes"], result["fooled"], result["voters"], result["items"]) == (10, 3, 5, 4)
    assert result["fool_rate"] == pytest.approx(0.3)
    assert result["interval"] == pytest.approx([0.10779, 0.60322], abs=1e-4)
    assert "30%" in tally_markdown(result) and "11%-60%" in tally_markdown(result)
    assert tally([])["fool_rate"] is None and "no votes yet" in tally_markdown(tally([]))


@pytest.fixture(scope="module")
def sam_run(tmp_path_factory):
    return on_sam_data(adapter_run(tmp_path_factory), tmp_path_factory, sam_examples(tmp_path_factory), "blind-run")


def test_the_cli_prepares_items_from_held_out_conversations_only_with_consent(sam_run):
    refused = run_cli("blind-test", sam_run, "--items", "5")
    assert refused.returncode == 2 and "--allow-showing-my-texts" in refused.stderr
    assert not (sam_run / FOLDER / "items.json").exists()
    done = run_cli("blind-test", sam_run, "--items", "5", "--allow-showing-my-texts")
    assert done.returncode == 0, done.stderr
    record = json.loads((sam_run / FOLDER / "items.json").read_text())
    config = RunConfig.from_yaml(sam_run / "config.yaml")
    replies = lambda path: {json.loads(line)["completion"][0]["content"] for line in open(path)}  # noqa: E731
    held_out, trained = replies(config.validation_file), replies(config.train_file)
    assert 1 <= len(record["items"]) <= 5 and record["consent"] is True
    for item in record["items"]:
        assert item["real"] in held_out and item["real"] not in trained
        assert item["bot"] and item["bot"] != item["real"]
        assert all(turn["role"] in ("user", "assistant") for turn in item["context"])  # no system prompt shown
    shown = run_cli("blind-test", sam_run, "--results")
    assert shown.returncode == 0 and "no votes yet" in shown.stdout


def test_the_bot_can_answer_the_blind_test_with_memory_of_training_rows_only(sam_run, monkeypatch):
    """--memory: the replies recall past exchanges, and never from the held-out conversations shown."""
    from training.chat import batch
    from training.chat.memory_prompt import MemorySettings
    from training.report.blind import prepare_items

    seen = []
    generate_batch = batch.generate_batch

    def recording(model, requests, settings=None, *args, memory=None, **kwargs):
        seen.append(memory)
        return generate_batch(model, requests, settings, *args, memory=memory, **kwargs)

    monkeypatch.setattr(batch, "generate_batch", recording)
    path = prepare_items(sam_run, count=4, consent=True, memory=MemorySettings(k=2))
    [memory] = seen
    record = json.loads(path.read_text())
    assert record["memory_k"] == 2 and memory.settings.k == 2
    remembered = {(e.them, e.you) for e in memory.index.exchanges}
    assert len(remembered) > 100  # the sample's training rows
    for item in record["items"]:
        assert (item["context"][-1]["content"], item["real"]) not in remembered


def play(url: str, address: str, session_hash: str | None = None) -> list:
    """One visitor voting "A" on every conversation until none is left; each reply."""
    visitor = Visitor(url, address=address, session_hash=session_hash)
    try:
        first = visitor.call("/blind_next")
        assert first.success, first.error
        replies = []
        for _ in range(10):
            replies.append(visitor.call("/blind_vote", {"Which reply is the real one?": "A"}))
            if not replies[-1].success or "voted on all" in json.dumps(replies[-1].data):
                break
        return replies
    finally:
        visitor.close()


def test_visitors_vote_at_once_and_one_address_cannot_stuff_the_ballot(tmp_path, isolated_data_dir, sam_run):
    run = items_folder(tmp_path, count=3)
    (run / "config.yaml").write_text((sam_run / "config.yaml").read_text())  # read_run needs a run folder
    with served("--chat-only", sam_run, "--blind-test", run, data_dir=isolated_data_dir) as url:
        with ThreadPoolExecutor(max_workers=6) as pool:
            friends = list(pool.map(lambda n: play(url, f"127.0.0.{50 + n}"), range(4)))
        # One address, five sessions of its choosing: three people are counted, the rest are refused.
        stuffing = [play(url, "127.0.0.60", session_hash=f"stuffer{n}") for n in range(5)]
        forger = Visitor(url, address="127.0.0.70")
        raw = forger.get("/config").text
        # The voter and the item on screen are server-side state: values a client sends for them are ignored.
        index, _ = forger.dependency("/blind_vote")
        forged = forger.run(index, ["A", "someone-elses-voter-id", {"item": "item-1", "real_first": True}])
        forger.close()
    assert not forged.success and "Nothing to vote on" in forged.error
    for replies in friends:
        assert [r.success for r in replies] == [True, True, True]
        assert "voted on all 3" in json.dumps(replies[-1].data)
    assert [replies[0].success for replies in stuffing] == [True, True, True, False, False]
    assert "capped at 3 people" in stuffing[3][0].error
    votes = votes_file(run)
    assert len(votes) == 4 * 3 + 3 * 3
    assert len({(v["voter"], v["item"]) for v in votes}) == len(votes)  # one vote per voter and item
    assert "real answer" not in raw  # the page's config holds no item: each comes from the server per visitor
    assert tally(votes)["votes"] == 21


def test_without_a_prepared_blind_test_the_app_says_how_to_make_one(tmp_path, isolated_data_dir, sam_run):
    import app

    unprepared = tmp_path / "unprepared"
    unprepared.mkdir()
    (unprepared / "config.yaml").write_text((sam_run / "config.yaml").read_text())
    with pytest.raises(SystemExit, match="--blind-test: .*no blind test prepared.*--allow-showing-my-texts"):
        app.prepare(app.parse_args(["--chat-only", str(sam_run), "--blind-test", str(unprepared)]))


def test_a_friend_votes_in_a_real_browser(tmp_path, isolated_data_dir, sam_run):
    """The page as a friend opens it: a conversation, A and B, a pick, the verdict, the next one."""
    from tests.browser import WIDTH, launch_chromium, open_tab, require_chromium, save_failure, screenshot

    require_chromium()
    from playwright.sync_api import expect, sync_playwright

    run = items_folder(tmp_path, count=2)
    (run / "config.yaml").write_text((sam_run / "config.yaml").read_text())
    with (
        served("--chat-only", sam_run, "--blind-test", run, data_dir=isolated_data_dir) as url,
        sync_playwright() as playwright,
    ):
        browser = launch_chromium(playwright)
        page = browser.new_page(viewport={"width": WIDTH, "height": 1000})
        try:
            page.goto(url)
            panel = open_tab(page, "Which one is real?")
            expect(panel.get_by_text("Conversation 1 of 2")).to_be_visible(timeout=60_000)
            shown = panel.get_by_label("Reply A").input_value() + panel.get_by_label("Reply B").input_value()
            item = next(n for n in (1, 2) if f"real answer {n}" in shown)
            assert f"bot answer {item}" in shown and f"question {item}?" in panel.inner_text()
            panel.get_by_role("radio", name="A").check()
            panel.get_by_role("button", name="Vote").click()
            expect(panel.get_by_text("Conversation 2 of 2")).to_be_visible(timeout=30_000)
            expect(panel.get_by_text(re.compile("Right: A was the real one|Fooled: A was the chatbot"))).to_be_visible()
            screenshot(page, "blind-test")
        except Exception:
            save_failure(page, "blind-test")
            raise
        finally:
            browser.close()
    [vote] = votes_file(run)
    assert vote["item"] == f"item-{item}"
