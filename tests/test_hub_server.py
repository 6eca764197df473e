"""The test Hub (tests/hub_server.py) answers huggingface_hub the way the real Hub does, so the push
tests exercise the real client code paths: auth, visibility, conflicts, downloads and errors."""

from __future__ import annotations

import httpx
import pytest
from huggingface_hub import HfApi, constants, hf_hub_download
from huggingface_hub.errors import (
    HfHubHTTPError,
    RemoteEntryNotFoundError,
    RepositoryNotFoundError,
    RevisionNotFoundError,
)

from tests.hub_server import HubServer, git_blob_sha

ALICE, BOB = "hf_aliceToken000000000000", "hf_bobToken00000000000000"


@pytest.fixture
def hub(monkeypatch):
    with HubServer(users={ALICE: "alice", BOB: "bob"}) as server:
        monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)  # conftest turns offline mode on
        monkeypatch.delenv("HF_TOKEN", raising=False)
        monkeypatch.setattr(constants, "HF_TOKEN_PATH", "/nonexistent/token")
        yield server


def api(hub: HubServer, token: str | bool | None = None) -> HfApi:
    return HfApi(endpoint=hub.url, token=token if token is not None else False)


def test_create_needs_auth_records_visibility_and_conflicts(hub):
    with pytest.raises(HfHubHTTPError) as caught:
        api(hub).create_repo("alice/sam")
    assert caught.value.response.status_code == 401
    url = api(hub, ALICE).create_repo("sam", private=True)
    assert url == f"{hub.url}/alice/sam" and url.repo_id == "alice/sam"
    assert hub.state.repo("alice/sam").private
    with pytest.raises(HfHubHTTPError) as caught:
        api(hub, ALICE).create_repo("alice/sam")
    assert caught.value.response.status_code == 409
    assert api(hub, ALICE).create_repo("alice/sam", exist_ok=True) == url
    assert [request.json().get("visibility") for request in hub.requests("POST", "/api/repos/create")] == [
        None,
        "private",
        None,
        None,
    ]
    with pytest.raises(HfHubHTTPError) as caught:
        api(hub, ALICE).create_repo("bob/sam")
    assert caught.value.response.status_code == 403


def test_upload_list_download_and_delete_round_trip(hub, tmp_path):
    client = api(hub, ALICE)
    client.create_repo("alice/files", private=False)
    (tmp_path / "up" / "sub").mkdir(parents=True)
    (tmp_path / "up" / "README.md").write_text("---\nlicense: mit\n---\n# hi\n")
    (tmp_path / "up" / "sub" / "weights.bin").write_bytes(bytes(range(256)) * 40)
    commit = client.upload_folder(folder_path=tmp_path / "up", repo_id="alice/files")
    assert commit.oid == hub.state.repo("alice/files").sha
    assert sorted(client.list_repo_files("alice/files")) == [".gitattributes", "README.md", "sub/weights.bin"]
    top = {entry.path for entry in client.list_repo_tree("alice/files")}
    assert top == {".gitattributes", "README.md", "sub"}
    path = hf_hub_download(
        "alice/files", "sub/weights.bin", endpoint=hub.url, cache_dir=tmp_path / "cache", token=False
    )
    assert open(path, "rb").read() == bytes(range(256)) * 40
    assert hub.requests("POST", "/api/validate-yaml")  # a README commit is validated, as on the Hub

    commits = len(hub.state.repo("alice/files").commits)
    client.upload_folder(folder_path=tmp_path / "up", repo_id="alice/files")  # unchanged: preupload oids match
    assert len(hub.state.repo("alice/files").commits) == commits
    client.delete_file("sub/weights.bin", repo_id="alice/files")
    assert client.list_repo_files("alice/files") == [".gitattributes", "README.md"]


def test_private_repos_look_missing_to_others_and_errors_carry_hub_codes(hub, tmp_path):
    repo = hub.state.add_repo("alice/secret", owner="alice", private=True)
    repo.commit("add", {"config.json": b"{}"}, [])
    assert api(hub, ALICE).repo_info("alice/secret").sha == repo.sha
    for token in (False, BOB):
        with pytest.raises(RepositoryNotFoundError):
            hf_hub_download("alice/secret", "config.json", endpoint=hub.url, cache_dir=tmp_path, token=token)
    with pytest.raises(RemoteEntryNotFoundError):
        hf_hub_download("alice/secret", "adapter_config.json", endpoint=hub.url, cache_dir=tmp_path, token=ALICE)
    missing = httpx.head(
        f"{hub.url}/alice/secret/resolve/main/adapter_config.json", headers={"authorization": f"Bearer {ALICE}"}
    )
    assert missing.status_code == 404 and missing.headers["X-Error-Code"] == "EntryNotFound"
    assert missing.headers["X-Repo-Commit"] == repo.sha
    found = httpx.head(
        f"{hub.url}/alice/secret/resolve/{repo.sha}/config.json", headers={"authorization": f"Bearer {ALICE}"}
    )
    assert found.headers["ETag"] == f'"{git_blob_sha(b"{}")}"' and found.headers["Content-Length"] == "2"
    with pytest.raises(RevisionNotFoundError):
        api(hub, ALICE).repo_info("alice/secret", revision="no-such-branch")
    assert hub.state.unhandled == []
