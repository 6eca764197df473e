"""A small Hugging Face Hub look-alike on 127.0.0.1, standard library only, for end-to-end tests.

It answers what huggingface_hub 1.33 and transformers 5.17 ask of a Hub while pushing and loading
(see /work/shared/reference/hub-api.md): create_repo, validate-yaml, preupload ("regular" for every
file, so neither LFS nor Xet is involved), NDJSON commits, tree and repo info, HEAD/GET resolve.
Files live in memory. Every request is recorded (method, path, headers, body) so a test can assert
on what the client sent, and routes it does not know are collected in `unhandled` rather than
guessed at. Hand-written because no package offers a local Hub server.

    with HubServer(users={"secret-token": "alice"}) as hub:
        os.environ["HF_ENDPOINT"] = hub.url
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, unquote, urlsplit

REPO_TYPES = {"models": "model", "datasets": "dataset", "spaces": "space"}
_API_REPO = re.compile(
    r"^/api/(models|datasets|spaces)/([^/]+)/([^/]+)(?:/(preupload|commit|tree|revision)/([^/]+)(/.*)?)?$"
)
_SPACE_SETTING = re.compile(r"^/api/spaces/([^/]+)/([^/]+)/(variables|secrets|hardware)$")
_RESOLVE = re.compile(r"^/(?:(datasets|spaces)/)?([^/]+)/([^/]+)/resolve/([^/]+)/(.+)$")
INVALID_CREDENTIALS = "Invalid credentials in Authorization header"  # the real Hub's wording


@dataclass
class RecordedRequest:
    method: str
    path: str  # without the query string
    query: dict[str, list[str]]
    headers: dict[str, str]  # names lower-cased (HTTP header names are case-insensitive)
    body: bytes

    def json(self):
        return json.loads(self.body)


@dataclass
class Repo:
    repo_type: str  # model | dataset | space
    repo_id: str
    owner: str
    private: bool
    files: dict[str, bytes] = field(default_factory=dict)
    commits: list[str] = field(default_factory=list)
    variables: dict[str, str] = field(default_factory=dict)  # a Space's settings variables
    secrets: dict[str, str] = field(default_factory=dict)  # a Space's secrets (the Hub never shows them back)
    sdk: str | None = None  # a Space's SDK, given at creation
    hardware: str | None = None  # a Space's requested hardware

    @property
    def sha(self) -> str:
        return self.commits[-1]

    def commit(self, summary: str, added: dict[str, bytes], deleted: list[str]) -> str:
        for path in deleted:
            for existing in [p for p in self.files if p == path or p.startswith(path.rstrip("/") + "/")]:
                del self.files[existing]
        self.files.update(added)
        digest = hashlib.sha1((self.commits[-1] if self.commits else "").encode() + summary.encode())
        for path in sorted(self.files):
            digest.update(path.encode() + b"\0" + git_blob_sha(self.files[path]).encode())
        self.commits.append(digest.hexdigest())
        return self.sha


def git_blob_sha(content: bytes) -> str:
    """The git object id of a file, which the client compares to skip unchanged uploads."""
    return hashlib.sha1(b"blob %d\0" % len(content) + content).hexdigest()


class HubState:
    """Users, repos and the request log, shared by the handler threads under one lock."""

    def __init__(self, users: dict[str, str] | None = None, read_only_tokens: set[str] | None = None):
        self.users = dict(users or {})  # token -> user name
        self.read_only_tokens = set(read_only_tokens or ())
        self.repos: dict[tuple[str, str], Repo] = {}
        self.requests: list[RecordedRequest] = []
        self.unhandled: list[str] = []
        self.lock = threading.RLock()

    def add_repo(self, repo_id: str, owner: str, private: bool = False, repo_type: str = "model") -> Repo:
        with self.lock:
            repo = Repo(repo_type, repo_id, owner, private)
            repo.commit(
                "initial commit", {".gitattributes": b"*.safetensors filter=lfs diff=lfs merge=lfs -text\n"}, []
            )
            self.repos[(repo_type, repo_id)] = repo
            return repo

    def repo(self, repo_id: str, repo_type: str = "model") -> Repo | None:
        return self.repos.get((repo_type, repo_id))


class HubError(Exception):
    def __init__(self, status: int, message: str, code: str | None = None, headers: dict[str, str] | None = None):
        super().__init__(message)
        self.status, self.message, self.code, self.headers = status, message, code, headers or {}


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as httpx expects; every reply carries Content-Length
    server: _Server

    def log_message(self, format, *args):  # noqa: A002 - the base class's name
        pass  # quiet: tests read the request log instead

    def do_GET(self):
        self._dispatch()

    def do_HEAD(self):
        self._dispatch()

    def do_POST(self):
        self._dispatch()

    def do_PUT(self):
        self._dispatch()

    def do_DELETE(self):
        self._dispatch()

    def _dispatch(self) -> None:
        url = urlsplit(self.path)
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        headers = {name.lower(): value for name, value in self.headers.items()}
        request = RecordedRequest(self.command, unquote(url.path), parse_qs(url.query), headers, body)
        state = self.server.state
        with state.lock:
            state.requests.append(request)
        try:
            status, headers, payload = _route(state, request)
        except HubError as error:
            status, payload = error.status, json.dumps({"error": error.message}).encode()
            headers = {"Content-Type": "application/json", "X-Error-Message": error.message, **error.headers}
            if error.code:
                headers["X-Error-Code"] = error.code
        self.send_response(status)
        for name, value in headers.items():
            self.send_header(name, value)
        if "Content-Length" not in headers:
            self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(payload)


def _json(value, status: int = 200, **headers: str):
    return status, {"Content-Type": "application/json", **headers}, json.dumps(value).encode()


def _route(state: HubState, request: RecordedRequest):
    path, method = request.path, request.method
    if path == "/api/repos/create" and method == "POST":
        return _create_repo(state, request)
    if path == "/api/validate-yaml" and method == "POST":
        return _json({"errors": [], "warnings": []})
    if path == "/api/whoami-v2" and method == "GET":
        user = _user(state, request, required=True)
        role = "read" if _token(request) in state.read_only_tokens else "write"
        return _json({"type": "user", "name": user, "auth": {"accessToken": {"role": role}}})
    if (match := _SPACE_SETTING.match(path)) and method == "POST":
        return _space_setting(state, request, *match.groups())
    if match := _API_REPO.match(path):
        kind, namespace, name, action, revision, rest = match.groups()
        repo = _readable_repo(state, request, REPO_TYPES[kind], f"{namespace}/{name}")
        return _repo_api(state, request, repo, action, revision, (rest or "").strip("/"))
    if (match := _RESOLVE.match(path)) and method in ("GET", "HEAD"):
        kind, namespace, name, revision, file_path = match.groups()
        repo = _readable_repo(state, request, REPO_TYPES[kind or "models"], f"{namespace}/{name}")
        return _resolve(repo, revision, file_path)
    with state.lock:
        state.unhandled.append(f"{method} {path}")
    raise HubError(404, f"no such route: {method} {path}")


def _space_setting(state: HubState, request: RecordedRequest, namespace: str, name: str, setting: str):
    _writer(state, request, namespace)
    repo = _readable_repo(state, request, "space", f"{namespace}/{name}")
    body = request.json()
    with state.lock:
        if setting == "hardware":
            repo.hardware = body["flavor"]
            return _json(_space_runtime(repo))
        if setting == "secrets":
            repo.secrets[body["key"]] = body["value"]
            return _json({})
        repo.variables[body["key"]] = body["value"]
    # The Hub answers every variable with its value and when it changed.
    return _json(
        {key: {"value": value, "updatedAt": "2026-01-01T00:00:00.000Z"} for key, value in repo.variables.items()}
    )


def _space_runtime(repo: Repo) -> dict:
    return {
        "stage": "BUILDING",
        "hardware": {"current": None, "requested": repo.hardware},
        "storage": None,
        "gcTimeout": None,
        "replicas": {"current": 1, "requested": 1},
        "devMode": False,
    }


def _token(request: RecordedRequest) -> str | None:
    header = request.headers.get("authorization", "")
    return header[len("Bearer ") :] if header.startswith("Bearer ") else None


def _user(state: HubState, request: RecordedRequest, required: bool) -> str | None:
    token = _token(request)
    if token is None:
        if required:
            raise HubError(401, "You must be authenticated to access this resource")
        return None
    if token not in state.users:
        raise HubError(401, INVALID_CREDENTIALS)
    return state.users[token]


def _writer(state: HubState, request: RecordedRequest, namespace: str) -> str:
    user = _user(state, request, required=True)
    if _token(request) in state.read_only_tokens:
        raise HubError(403, "You don't have the rights to write with this token (read-only)")
    if user != namespace:
        raise HubError(
            403, f"You don't have the rights to create or write to repositories under the namespace {namespace!r}"
        )
    return user


def _create_repo(state: HubState, request: RecordedRequest):
    data = request.json()
    repo_type = data.get("type") or "model"
    user = _user(state, request, required=True)
    namespace = data.get("organization") or user
    _writer(state, request, namespace)
    repo_id = f"{namespace}/{data['name']}"
    prefix = "" if repo_type == "model" else f"{repo_type}s/"
    url = f"http://{request.headers.get('host')}/{prefix}{repo_id}"
    with state.lock:
        if state.repo(repo_id, repo_type) is not None:
            return _json({"error": "You already created this model repo", "url": url}, status=409)
        # huggingface_hub 1.33 sends visibility; older clients sent a private flag.
        private = data.get("visibility") == "private" or bool(data.get("private"))
        if repo_type == "space" and data.get("sdk") not in ("gradio", "docker", "static"):
            raise HubError(400, f"Invalid sdk: {data.get('sdk')!r}")
        repo = state.add_repo(repo_id, user, private=private, repo_type=repo_type)
        if repo_type == "space":
            repo.sdk, repo.hardware = data["sdk"], data.get("hardware")
            repo.variables.update({item["key"]: item["value"] for item in data.get("variables") or []})
            repo.secrets.update({item["key"]: item["value"] for item in data.get("secrets") or []})
    return _json({"url": url, "name": repo_id, "id": repo_id})


def _readable_repo(state: HubState, request: RecordedRequest, repo_type: str, repo_id: str) -> Repo:
    user = _user(state, request, required=False)
    repo = state.repo(repo_id, repo_type)
    if repo is None or (repo.private and user != repo.owner):
        # Like the Hub: a private repo is indistinguishable from a missing one (401 when anonymous).
        raise HubError(401 if user is None else 404, "Repository not found", "RepoNotFound")
    return repo


def _check_revision(repo: Repo, revision: str) -> None:
    if revision not in ("main", *repo.commits):
        raise HubError(404, f"Invalid rev id: {revision}", "RevisionNotFound")


def _repo_api(state: HubState, request: RecordedRequest, repo: Repo, action, revision, rest: str):
    if action is None or action == "revision":
        _check_revision(repo, revision or "main")
        return _json(_repo_info(repo))
    _check_revision(repo, revision)
    if action == "tree" and request.method == "GET":
        return _json(_tree(repo, rest, "recursive" in request.query and request.query["recursive"][0] == "true"))
    if request.method != "POST":
        raise HubError(405, f"{request.method} not allowed on {action}")
    _writer(state, request, repo.repo_id.split("/")[0])
    if action == "preupload":
        files = request.json()["files"]
        answer = [
            {
                "path": f["path"],
                "uploadMode": "regular",
                "shouldIgnore": False,
                "oid": git_blob_sha(repo.files[f["path"]]) if f["path"] in repo.files else None,
            }
            for f in files
        ]
        return _json({"files": answer, "commitOid": repo.sha})
    return _commit(state, request, repo)


def _commit(state: HubState, request: RecordedRequest, repo: Repo):
    header, added, deleted = {}, {}, []
    for line in request.body.decode().splitlines():
        if not line.strip():
            continue
        item = json.loads(line)
        key, value = item["key"], item["value"]
        if key == "header":
            header = value
        elif key == "file":
            added[value["path"]] = base64.b64decode(value["content"])
        elif key in ("deletedFile", "deletedFolder"):
            deleted.append(value["path"])
        else:  # lfsFile never comes: preupload answers "regular" for everything
            raise HubError(400, f"unsupported commit operation {key!r}")
    with state.lock:
        sha = repo.commit(header.get("summary", ""), added, deleted)
    host = request.headers.get("host")
    return _json({"commitOid": sha, "commitUrl": f"http://{host}/{repo.repo_id}/commit/{sha}", "success": True})


def _repo_info(repo: Repo) -> dict:
    return {
        "id": repo.repo_id,
        "modelId": repo.repo_id,
        "author": repo.owner,
        "sha": repo.sha,
        "private": repo.private,
        "disabled": False,
        "gated": False,
        "tags": [],
        "downloads": 0,
        "likes": 0,
        "siblings": [{"rfilename": path} for path in sorted(repo.files)],
        "lastModified": "2026-01-01T00:00:00.000Z",
        "createdAt": "2026-01-01T00:00:00.000Z",
    }


def _tree(repo: Repo, under: str, recursive: bool) -> list[dict]:
    prefix = f"{under}/" if under else ""
    entries, folders = [], set()
    for path in sorted(repo.files):
        if not path.startswith(prefix):
            continue
        parts = path[len(prefix) :].split("/")
        for depth in range(1, len(parts)):
            folders.add(prefix + "/".join(parts[:depth]))
        if recursive or len(parts) == 1:
            content = repo.files[path]
            entries.append({"type": "file", "path": path, "size": len(content), "oid": git_blob_sha(content)})
    shown = [f for f in sorted(folders) if recursive or "/" not in f[len(prefix) :]]
    return [{"type": "directory", "path": f, "oid": hashlib.sha1(f.encode()).hexdigest()} for f in shown] + entries


def _resolve(repo: Repo, revision: str, file_path: str):
    _check_revision(repo, revision)
    if file_path not in repo.files:
        # transformers probes optional files (adapter_config.json) and needs the commit even on a miss.
        raise HubError(404, f"{file_path} does not exist on {revision}", "EntryNotFound", {"X-Repo-Commit": repo.sha})
    content = repo.files[file_path]
    headers = {
        "X-Repo-Commit": repo.sha,
        "ETag": f'"{git_blob_sha(content)}"',
        "Content-Length": str(len(content)),
        "Content-Type": "application/octet-stream",
    }
    return 200, headers, content


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    state: HubState


class HubServer:
    """Starts on a free port of 127.0.0.1 in a background thread; `url` is what HF_ENDPOINT takes."""

    def __init__(self, users: dict[str, str] | None = None, read_only_tokens: set[str] | None = None):
        self.state = HubState(users, read_only_tokens)
        self._server = _Server(("127.0.0.1", 0), _Handler)
        self._server.state = self.state
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def start(self) -> HubServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def __enter__(self) -> HubServer:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    def requests(self, method: str | None = None, contains: str = "") -> list[RecordedRequest]:
        with self.state.lock:
            return [r for r in self.state.requests if (method is None or r.method == method) and contains in r.path]


def point_huggingface_hub_at(server: HubServer, monkeypatch, tmp_path) -> None:
    """Make this process's huggingface_hub talk to `server`, with no token but the ones a test passes.

    conftest sets HF_HUB_OFFLINE=1 before huggingface_hub is imported, and it reads its settings
    once at import, so the module constants are patched rather than the environment.
    """
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(constants, "HF_HUB_DISABLE_XET", True)
    monkeypatch.setattr(constants, "ENDPOINT", server.url)
    monkeypatch.setattr(constants, "HF_TOKEN_PATH", str(tmp_path / "hf-home" / "token"))  # never this machine's token
    monkeypatch.delenv("HF_TOKEN", raising=False)
    monkeypatch.delenv("HUGGING_FACE_HUB_TOKEN", raising=False)
