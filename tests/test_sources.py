"""Reading inputs: folders and zips, with the protections a hostile or broken upload needs."""

import os
import zipfile

import pytest

from training.data import sources
from training.data.sources import read_inputs
from training.errors import UserError


def make_zip(path, members: dict[str, bytes], compression=zipfile.ZIP_DEFLATED):
    with zipfile.ZipFile(path, "w", compression) as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return path


def test_zip_members_are_named_by_archive_path_and_media_is_skipped(tmp_path):
    archive = make_zip(
        tmp_path / "export.zip",
        {
            "messages/inbox/a_1/message_1.json": b"{}",
            "messages/inbox/a_1/photos/p.jpg": b"\xff\xd8binary",
            "__MACOSX/._x": b"junk",
        },
    )
    skipped = []
    files = read_inputs([archive], skipped)
    assert [f.name for f in files] == ["export.zip/messages/inbox/a_1/message_1.json"]
    assert "export.zip/messages/inbox/a_1/photos/p.jpg" in skipped


def test_zip_with_parent_paths_is_refused(tmp_path):
    archive = make_zip(tmp_path / "evil.zip", {"../../etc/passwd.txt": b"x"})
    with pytest.raises(UserError, match="evil.zip.*outside the archive"):
        read_inputs([archive])
    assert not (tmp_path.parent.parent / "etc" / "passwd.txt").exists()


def test_zip_bomb_is_refused_before_inflating(tmp_path):
    archive = make_zip(tmp_path / "bomb.zip", {"chat.txt": b"0" * (20 * 1024 * 1024)})
    with pytest.raises(UserError, match="bomb.zip/chat.txt.*zip bomb"):
        read_inputs([archive])


def never_inflate(monkeypatch):
    """Make reading any zip member fail the test: the checks must come before extraction."""

    def refuse(*args, **kwargs):
        raise AssertionError("a member was inflated before the archive was checked")

    monkeypatch.setattr(zipfile.ZipFile, "open", refuse)


def test_many_small_bomb_members_are_refused_from_the_directory_alone(tmp_path, monkeypatch):
    # The attack that passed a per-member check: 100 members of 1 MiB each (each under any
    # per-member size floor), ~1 KB compressed apiece, 100 MiB in all.
    members = {f"chats/chat_{n}.txt": b"0" * (1024 * 1024) for n in range(100)}
    archive = make_zip(tmp_path / "many.zip", members)
    assert archive.stat().st_size < 200_000
    never_inflate(monkeypatch)
    with pytest.raises(UserError, match=r"many.zip: its 100 files expand \d+x when unpacked \(100 MB\).*zip bomb"):
        read_inputs([archive])


def test_a_zip_bigger_than_the_total_limit_is_refused_before_inflating(tmp_path, monkeypatch):
    monkeypatch.setattr(sources, "MAX_TOTAL_BYTES", 3000)
    text = bytes(range(32, 127)) * 20  # 1,900 bytes that barely compress
    archive = make_zip(tmp_path / "two.zip", {"a.txt": text, "b.txt": text})
    never_inflate(monkeypatch)
    with pytest.raises(UserError, match="two.zip/b.txt: the input is over the 0 MB limit in total"):
        read_inputs([archive])


def test_an_ordinary_compressible_export_still_reads(tmp_path):
    # A real chat export compresses ~10x: far from the ratio limit, whatever its size.
    lines = [
        f"[{n % 28 + 1:02d}/01/2024, 10:{n % 60:02d}:00] Maya: message number {n} about {n * 7919 % 1000}\n"
        for n in range(60_000)
    ]
    data = "".join(lines).encode()
    archive = make_zip(tmp_path / "whatsapp.zip", {"_chat.txt": data})
    assert len(data) > 2 * sources.RATIO_CHECKED_FROM_BYTES
    (source,) = read_inputs([archive])
    assert source.data == data


def test_files_over_the_size_limit_are_refused(tmp_path, monkeypatch):
    monkeypatch.setattr(sources, "MAX_FILE_BYTES", 1000)
    big = tmp_path / "big.txt"
    big.write_text("a" * 2000)
    with pytest.raises(UserError, match="big.txt.*over the 0 MB limit"):
        read_inputs([big])


def test_folders_skip_binaries_hidden_files_and_links(tmp_path):
    root = tmp_path / "export"
    (root / ".git").mkdir(parents=True)
    (root / ".git" / "config").write_text("x")
    (root / "chat.txt").write_text("hello")
    (root / "blob.dat").write_bytes(b"\x00\x01\x02")
    os.symlink("/etc/hostname", root / "link.txt")
    skipped = []
    files = read_inputs([root], skipped)
    assert [f.name for f in files] == ["export/chat.txt"]
    assert set(skipped) == {"export/blob.dat", "export/link.txt"}


def test_missing_and_empty_inputs_say_so(tmp_path):
    with pytest.raises(UserError, match="nope.json: no such file"):
        read_inputs([tmp_path / "nope.json"])
    (tmp_path / "empty").mkdir()
    with pytest.raises(UserError, match="no chat export or data set files found"):
        read_inputs([tmp_path / "empty"])


def test_a_corrupt_zip_is_a_clear_error(tmp_path):
    archive = make_zip(tmp_path / "cut.zip", {"chat.txt": b"hello " * 5000})
    data = archive.read_bytes()
    archive.write_bytes(data[: len(data) // 2])
    with pytest.raises(UserError, match="cut.zip"):
        read_inputs([archive])


def test_json_errors_name_the_file_and_say_truncated(tmp_path):
    source = sources.SourceFile("message_1.json", b'{"participants": [{"name": "A"}], "messages": [')
    with pytest.raises(UserError, match="message_1.json: the JSON ends early.*truncated"):
        source.json()
    source = sources.SourceFile("x.json", b'{"a": 1,, "b": 2}')
    with pytest.raises(UserError, match="x.json: not valid JSON at line 1"):
        source.json()
    with pytest.raises(UserError, match="y.txt: not UTF-8"):
        sources.SourceFile("y.txt", b"ok \xff\xfe bad").text()


def test_json_cut_inside_a_string_or_nested_absurdly_is_a_clear_error():
    cut = sources.SourceFile("message_1.json", b'{"messages": [{"content": "hey how are y')
    with pytest.raises(UserError, match="message_1.json: the JSON ends early.*truncated"):
        cut.json()
    deep = sources.SourceFile("deep.json", b"[" * 100_000)
    with pytest.raises(UserError, match="deep.json"):
        deep.json()


def test_a_whole_export_skips_files_that_are_not_chats_but_reports_broken_ones(tmp_path):
    from training.data.formats import load

    thread = {
        "participants": [{"name": "Sam"}, {"name": "Maya"}],
        "messages": [
            {"sender_name": "Sam", "timestamp_ms": 2000, "content": "ya"},
            {"sender_name": "Maya", "timestamp_ms": 1000, "content": "u up"},
        ],
        "title": "Maya",
    }
    import json

    members = {
        "your_facebook_activity/messages/inbox/maya_1/message_1.json": json.dumps(thread).encode(),
        "personal_information/profile_information/profile_information.json": b'{"profile_v2": {"name": {}}}',
        "ads_information/advertisers.json": b'{"ig_custom_audiences_all_types": []}',
    }
    result = load([make_zip(tmp_path / "facebook.zip", members)])
    assert [c.title for c in result.conversations] == ["Maya"]
    assert "facebook.zip/ads_information/advertisers.json" in result.skipped_files
    assert any("2 files are not chats" in w for w in result.warnings)

    members["ads_information/advertisers.json"] = b'{"ig_custom_audiences_all_types": [{"a": '
    with pytest.raises(UserError, match="advertisers.json.*truncated"):
        load([make_zip(tmp_path / "broken.zip", members)])


def test_a_single_unknown_or_non_utf8_or_empty_file_is_an_error(tmp_path):
    from training.data.formats import load

    unknown = tmp_path / "advertisers.json"
    unknown.write_text('{"ig_custom_audiences_all_types": []}')
    with pytest.raises(UserError, match="advertisers.json: JSON in a shape talklike does not know"):
        load([unknown])
    latin = tmp_path / "notes.txt"
    latin.write_bytes("caf\xe9 ol\xe9".encode("latin-1"))
    with pytest.raises(UserError, match="notes.txt: not UTF-8"):
        load([latin])
    empty = tmp_path / "empty.txt"
    empty.write_text("  \n")
    with pytest.raises(UserError, match="empty.txt: the file is empty"):
        load([empty])
