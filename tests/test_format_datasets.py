"""Fine-tuning data sets (OpenAI, ShareGPT, Alpaca, prompt/completion, text) read into Conversations."""

from __future__ import annotations

import json

import pytest

from training.conversation import Drop
from training.data.formats import dataset_files, detect, load, load_sources
from training.data.sources import SourceFile
from training.errors import UserError


def jsonl(*records: dict) -> str:
    return "".join(json.dumps(record) + "\n" for record in records)


def read(name: str, text: str):
    return load_sources([SourceFile(name, text.encode())])


def turns(conversation) -> list[tuple[str, str]]:
    return [(m.sender, m.text) for m in conversation.messages]


def error_of(name: str, text: str) -> str:
    with pytest.raises(UserError) as caught:
        read(name, text)
    return str(caught.value)


OPENAI = jsonl(
    {
        "messages": [
            {"role": "system", "content": "You are Sam, terse and friendly."},
            {"role": "user", "content": "are you coming tonight?"},
            {"role": "assistant", "content": "yep, 8ish", "weight": 0},
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "look at this"},
                    {"type": "image_url", "image_url": {"url": "https://x/cat.png"}},
                ],
            },
            {"role": "assistant", "content": "haha cute"},
        ]
    },
    {
        "messages": [
            {"role": "user", "content": "weather?"},
            {"role": "assistant", "content": None, "tool_calls": [{"id": "1", "type": "function"}]},
            {"role": "tool", "content": '{"temp": 12}'},
            {"role": "user", "content": [{"type": "image_url", "image_url": {"url": "https://x/sky.png"}}]},
            {"role": "assistant", "content": "   "},
            {"role": "assistant", "content": "12 degrees, bring a jacket"},
        ]
    },
)


def test_openai_messages_jsonl_becomes_one_conversation_per_line():
    result = read("chats/train.jsonl", OPENAI)

    assert result.formats == {"OpenAI messages JSONL": 1}
    first, second = result.conversations
    assert first.id == first.title == "chats/train.jsonl#1"
    assert second.id == "chats/train.jsonl#2"
    assert first.system == "You are Sam, terse and friendly."
    # weight 0 turns stay as context; a multimodal message keeps its text part
    assert turns(first) == [
        ("user", "are you coming tonight?"),
        ("assistant", "yep, 8ish"),
        ("user", "look at this"),
        ("assistant", "haha cute"),
    ]
    assert turns(second) == [("user", "weather?"), ("assistant", "12 degrees, bring a jacket")]
    assert all(m.timestamp is None for m in first.messages + second.messages)
    assert first.source_format == "OpenAI messages JSONL"
    assert result.dropped == {Drop.SYSTEM: 2, Drop.MEDIA: 1, Drop.EMPTY: 1}


def test_shape_comes_from_content_not_the_file_name():
    source = SourceFile("export_backup.data", OPENAI.encode())
    assert detect(source) is dataset_files
    assert len(load_sources([source]).conversations) == 2


def test_a_first_record_longer_than_the_sniffed_head_is_still_recognised():
    long_chat = [{"from": "human" if n % 2 == 0 else "gpt", "value": f"message {n} " + "x" * 200} for n in range(400)]
    source = SourceFile("long.json", json.dumps([{"conversations": long_chat}]).encode())
    assert len(source.data) > 65536
    assert detect(source) is dataset_files
    assert len(load_sources([source]).conversations[0].messages) == 400


def test_prose_that_starts_like_a_header_stays_text():
    source = SourceFile("faq.txt", b"Question, answer, and more: a short guide\nIt starts here.\n")
    assert not dataset_files.sniff(source)
    assert read("faq.txt", source.data.decode()).formats == {"Plain text / code": 1}


def test_sharegpt_roles_are_mapped_and_tool_turns_dropped():
    records = [
        {
            "id": "a1",
            "system": "Be brief.",
            "conversations": [
                {"from": "system", "value": "Speak like a pirate."},
                {"from": "human", "value": "hi"},
                {"from": "gpt", "value": "ahoy"},
                {"from": "function_call", "value": '{"name": "map"}'},
                {"from": "observation", "value": '{"island": 1}'},
                {"from": "human", "value": "where to?"},
                {"from": "chatgpt", "value": "the island"},
            ],
        },
        {
            "conversations": [
                {"from": "user", "value": "and you?"},
                {"from": "bing", "value": "fine"},
                {"from": "bard", "value": "great"},
            ]
        },
    ]
    result = read("sharegpt.json", json.dumps(records, indent=2))

    assert result.formats == {"ShareGPT JSON": 1}
    first, second = result.conversations
    assert first.id == "sharegpt.json#1" and second.id == "sharegpt.json#2"
    assert first.system == "Be brief.\n\nSpeak like a pirate."
    assert turns(first) == [("user", "hi"), ("assistant", "ahoy"), ("user", "where to?"), ("assistant", "the island")]
    assert turns(second) == [("user", "and you?"), ("assistant", "fine"), ("assistant", "great")]
    assert result.dropped[Drop.SYSTEM] == 2


def test_sharegpt_unknown_speaker_names_the_record_and_field():
    text = jsonl({"conversations": [{"from": "human", "value": "hi"}, {"from": "narrator", "value": "x"}]})
    message = error_of("sg.jsonl", text)
    assert message.startswith("sg.jsonl: line 1: conversations[1].from: expected one of ")
    assert message.endswith("but found 'narrator'")


def test_alpaca_joins_input_and_puts_history_first():
    records = [
        {
            "instruction": "Translate to French",
            "input": "good morning",
            "output": "bonjour",
            "system": "You are a translator.",
            "history": [["hello", "salut"], ["thanks", "merci"]],
        },
        {"instruction": "Say hi", "input": "", "output": "hi!"},
    ]
    result = read("alpaca_data.json", json.dumps(records))

    assert result.formats == {"Alpaca JSON": 1}
    with_history, plain = result.conversations
    assert with_history.system == "You are a translator."
    assert turns(with_history) == [
        ("user", "hello"),
        ("assistant", "salut"),
        ("user", "thanks"),
        ("assistant", "merci"),
        ("user", "Translate to French\ngood morning"),
        ("assistant", "bonjour"),
    ]
    assert plain.system is None
    assert turns(plain) == [("user", "Say hi"), ("assistant", "hi!")]


def test_alpaca_history_that_is_not_pairs_is_refused():
    text = jsonl({"instruction": "a", "output": "b", "history": [["only one"]]})
    assert error_of("a.jsonl", text) == (
        "a.jsonl: line 1: history[0]: expected a [user, assistant] pair of strings but found a list of 1 items"
    )


def test_prompt_completion_and_vader_speak_prompt_response_jsonl():
    result = read(
        "pc.jsonl",
        jsonl({"prompt": "2+2?", "completion": "4"}, {"prompt": "capital of France?", "completion": "Paris"}),
    )
    assert result.formats == {"prompt/completion JSONL": 1}
    assert [turns(c) for c in result.conversations] == [
        [("user", "2+2?"), ("assistant", "4")],
        [("user", "capital of France?"), ("assistant", "Paris")],
    ]

    vader = read("vader.jsonl", jsonl({"prompt": "How are you?", "response": "I find your lack of faith disturbing."}))
    assert vader.formats == {"prompt/response JSONL": 1}
    assert turns(vader.conversations[0])[1] == ("assistant", "I find your lack of faith disturbing.")


def test_conversational_prompt_completion_lists_become_earlier_messages():
    record = {
        "prompt": [
            {"role": "system", "content": "You are Ana."},
            {"role": "user", "content": "lunch?"},
            {"role": "assistant", "content": "where?"},
            {"role": "user", "content": "the usual"},
        ],
        "completion": [{"role": "assistant", "content": "see you at 12"}],
    }
    conversation = read("trl.jsonl", jsonl(record)).conversations[0]
    assert conversation.system == "You are Ana."
    assert turns(conversation) == [
        ("user", "lunch?"),
        ("assistant", "where?"),
        ("user", "the usual"),
        ("assistant", "see you at 12"),
    ]


def test_csv_with_quoted_multiline_cells():
    text = (
        "prompt,response\r\n"
        '"Write a haiku, please","Old pond\nfrog jumps in,\n""splash"""\r\n'
        "\r\n"
        "Who are you?,Your father.\r\n"
    )
    result = read("vader-speak.csv", text)

    assert result.formats == {"prompt/response CSV": 1}
    haiku, father = result.conversations
    assert turns(haiku) == [("user", "Write a haiku, please"), ("assistant", 'Old pond\nfrog jumps in,\n"splash"')]
    # ids point at the line each row starts on, after the three-line cell and the blank line
    assert (haiku.id, father.id) == ("vader-speak.csv#2", "vader-speak.csv#6")


@pytest.mark.parametrize(
    ("header", "row", "label", "expected"),
    [
        ("Instruction,Input,Output", "Add,1 and 2,3", "Alpaca CSV", [("user", "Add\n1 and 2"), ("assistant", "3")]),
        ("question\tanswer", "Why?\tBecause.", "question/answer CSV", [("user", "Why?"), ("assistant", "Because.")]),
        ("prompt;completion;system", "Hi;Hey;Be kind", "prompt/completion CSV", [("user", "Hi"), ("assistant", "Hey")]),
    ],
)
def test_csv_column_names_and_delimiters(header, row, label, expected):
    result = read("data.csv", f"{header}\n{row}\n")
    assert result.formats == {label: 1}
    assert turns(result.conversations[0]) == expected


def test_text_jsonl_becomes_documents():
    text = jsonl({"text": "<human>: hi\n<bot>: hello there"}, {"text": "  "}, {"text": "<human>: bye\n<bot>: see ya"})
    result = read("openchatkit.jsonl", text)

    assert result.conversations == []
    assert [(d.id, d.text) for d in result.documents] == [
        ("openchatkit.jsonl#1", "<human>: hi\n<bot>: hello there"),
        ("openchatkit.jsonl#3", "<human>: bye\n<bot>: see ya"),
    ]
    assert result.formats == {"text JSONL": 1}
    assert result.dropped == {Drop.EMPTY: 1}


def test_chat_export_messages_with_a_text_field_are_not_a_text_data_set():
    slack_day = json.dumps([{"type": "message", "user": "U024BE7LH", "text": "lunch?", "ts": "1355517523.000005"}])
    assert not dataset_files.sniff(SourceFile("general/2024-01-02.json", slack_day.encode()))


def test_pretty_printed_single_record_is_read():
    text = json.dumps(
        {"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "yo"}]}, indent=2
    )
    assert turns(read("one.json", text).conversations[0]) == [("user", "hi"), ("assistant", "yo")]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            jsonl({"prompt": "a", "completion": "b"}, {"prompt": "c", "completion": "d"})
            + '{"instruction": "e", "output": "f"}\n',
            "d.jsonl: line 3: expected an object with \"prompt\" and \"completion\" like line 1 but found an object with keys 'instruction', 'output'",
        ),
        (
            jsonl({"text": "a"}) + "\n" + "this is not json\n",
            "d.jsonl: line 3: not valid JSON at column 1 (Expecting value)",
        ),
        (
            jsonl({"text": "a"}) + '{"text": "b", "meta": ',
            "d.jsonl: line 2: not valid JSON at column 23 (Expecting value); the file looks truncated",
        ),
        (
            jsonl({"messages": [{"role": "user", "content": "a"}]}, {"messages": [{"content": "b"}]}),
            'd.jsonl: line 2: messages[0]: expected an object with "role" and "content" but found an object with keys \'content\'',
        ),
        (jsonl({"prompt": "a", "completion": 5}), 'd.jsonl: line 1: "completion": expected a string but found int 5'),
        (
            jsonl({"text": "a"}) + "[1, 2]\n",
            'd.jsonl: line 2: expected an object with a "text" string like line 1 but found a list of 2 items',
        ),
        ("\n \n", "d.jsonl: the file is empty;"),
    ],
)
def test_first_bad_line_is_reported(text, expected):
    assert error_of("d.jsonl", text).startswith(expected)


def test_jsonl_of_unknown_shape_raises():
    message = error_of("events.jsonl", jsonl({"event": "click", "at": 3}))
    assert message.startswith("events.jsonl: line 1: expected one JSON object per record with messages, conversations")
    assert message.endswith("but found an object with keys 'event', 'at'")


def test_csv_without_a_known_header_raises():
    assert error_of("scores.csv", "name,score\nann,3\n") == (
        "scores.csv: line 1: expected a header row with prompt,completion / prompt,response / "
        "instruction,output / question,answer / text columns but found columns 'name', 'score'"
    )


def test_csv_row_with_an_unquoted_comma_raises():
    message = error_of("pairs.csv", "prompt,completion\nhi,hello\nhow are you,fine, thanks\n")
    assert message.startswith("pairs.csv: line 3: expected 2 columns like the header but found 3")


def test_json_array_item_is_named_by_position():
    items = [{"instruction": "a", "output": "b"}, {"instruction": "c", "output": ["d"]}]
    assert error_of("alpaca.json", json.dumps(items)).startswith(
        'alpaca.json: item 2: "output": expected a string but found a list of 1 items'
    )


def test_truncated_chat_json_reports_truncation_not_unknown_shape():
    text = '{"messages": [{"role": "user", "content": "hi"}, {"role": "assistant",\n'
    message = error_of("export.json", text)
    assert message.startswith("export.json: ")
    assert "truncated" in message


def test_folder_mixing_data_sets_and_notes(tmp_path):
    folder = tmp_path / "data"
    folder.mkdir()
    (folder / "sharegpt.json").write_text(
        json.dumps([{"conversations": [{"from": "human", "value": "hi"}, {"from": "gpt", "value": "hey"}]}])
    )
    (folder / "pairs.csv").write_text("prompt,completion\nping,pong\n")
    (folder / "notes.md").write_text("# Notes\nI say 'hey' a lot.\n")

    result = load([folder])
    assert result.formats == {"ShareGPT JSON": 1, "prompt/completion CSV": 1, "Plain text / code": 1}
    assert sorted(c.id for c in result.conversations) == ["data/pairs.csv#2", "data/sharegpt.json#1"]
