"""Owner mode (a shared Space): the owner trains and publishes; visitors chat with what was
published and reach nothing else: no other run, no path, no Hub id, no server token, no name of
an unpublished run in the page or any answer. Started only where the owner can be verified."""

from __future__ import annotations

import base64
import hashlib
import json
import shutil

import pytest

import app
from tests.export_runs import adapter_run
from tests.ui_client import launch, served
from tests.visitors import Visitor
from training.chat.serving import ChatLimits
from training.train import runs

SOURCE = "Chat with: a finished run, a model folder, a Hub id, or offline-small"
NOT_LISTED = "Pick one of the runs listed under 'Chat with'."


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    return adapter_run(tmp_path_factory)


@pytest.fixture
def studio_runs(trained, isolated_data_dir):
    """The owner's data folder: one published run, one private run, a data set."""
    root = runs.runs_root()
    for name in ("public-run", "secret-run"):
        shutil.copytree(trained.path, root / name)
    runs.set_published(runs.Run(root / "public-run"), True)
    (isolated_data_dir / "datasets").mkdir(exist_ok=True)
    (isolated_data_dir / "datasets" / "private-chats.jsonl").write_text("{}\n")
    return root


@pytest.fixture
def owner_page(studio_runs):
    demo = app.build_app(owner="alice", limits=ChatLimits(max_new_tokens=8))
    url = launch(demo)
    yield url
    demo.close()


def test_owner_mode_refuses_to_start_without_a_real_sign_in(monkeypatch, isolated_data_dir):
    for variable in (
        "SYSTEM",
        "SPACE_ID",
        "OAUTH_CLIENT_ID",
        "OAUTH_CLIENT_SECRET",
        "OAUTH_SCOPES",
        "OPENID_PROVIDER_URL",
    ):
        monkeypatch.delenv(variable, raising=False)
    with pytest.raises(SystemExit, match="owner mode needs a real sign-in, and this is not a Hugging Face Space"):
        app.prepare(app.parse_args(["--owner", "alice"]))
    # SPACE_ID alone is how Gradio's mock login got switched on: any visitor became the token's user.
    monkeypatch.setenv("SPACE_ID", "alice/talklike")
    with pytest.raises(SystemExit, match="this is not a Hugging Face Space"):
        app.prepare(app.parse_args(["--owner", "alice"]))
    monkeypatch.setenv("SYSTEM", "spaces")
    with pytest.raises(
        SystemExit, match="OAUTH_CLIENT_ID, OAUTH_CLIENT_SECRET, OAUTH_SCOPES, OPENID_PROVIDER_URL not set"
    ):
        app.prepare(app.parse_args(["--owner", "alice"]))
    with pytest.raises(SystemExit, match="not one of the --auth users \\(bob\\)"):
        app.prepare(app.parse_args(["--owner", "alice", "--auth", "bob:pw"]))


def test_on_a_space_without_the_oauth_extra_it_says_what_to_install(monkeypatch):
    monkeypatch.setenv("SPACE_ID", "alice/talklike")
    monkeypatch.setitem(__import__("sys").modules, "authlib", None)  # as if gradio[oauth] were not installed
    with pytest.raises(SystemExit, match=r"needs Gradio's OAuth extra: pip install 'gradio\[oauth\]==6.31.0'"):
        app.prepare(app.parse_args(["--owner", "alice"]))


def test_visitors_see_and_reach_only_the_published_runs(owner_page, trained):
    visitor = Visitor(owner_page, address="127.0.0.40")
    try:
        page = json.dumps(visitor.config())
        assert "secret-run" not in page and "public-run" not in page and str(runs.runs_root().parent) not in page
        for attempt in (
            "secret-run",
            str(trained.path),
            str(runs.runs_root() / "secret-run"),
            "someone/private-persona",
            "offline-tiny",
            "../secret-run",
            "",
        ):
            refused = visitor.call("/chat", {SOURCE: attempt, "Message": "hey"})
            assert not refused.success and refused.error == NOT_LISTED, (attempt, refused.error)
        reply = visitor.call("/chat", {SOURCE: "public-run", "Message": "hey", "Max new tokens": 1024})
        assert reply.success, reply.error
        # The visitors' reply cap holds whatever the slider says: the same greedy reply as with 8 tokens.
        from training.chat import decoding, generate

        model = generate.load_chat_model(str(runs.runs_root() / "public-run"))
        expected = generate.reply(model, [], "hey", decoding.preset("Greedy", max_new_tokens=8))
        shown = "\n".join(
            m["content"][0]["text"] if isinstance(m["content"], list) else m["content"]
            for m in reply.data[1]
            if m["role"] == "assistant"
        )
        assert shown == "\n".join(generate.split_bubbles(expected, model.separator))
    finally:
        visitor.close()


def test_no_event_a_visitor_can_call_names_a_private_run_or_a_server_path(owner_page, studio_runs):
    """Every event of the page, the unnamed ones (api_name=False) included, called as the browser
    would with the page's own inputs: nothing a visitor gets back mentions what is not published."""
    visitor = Visitor(owner_page, address="127.0.0.41")
    secrets = ["secret-run", "private-chats", str(studio_runs.parent)]
    try:
        called = 0
        for index, dependency in enumerate(visitor.config()["dependencies"]):
            if not dependency.get("backend_fn"):
                continue
            reply = visitor.run(dependency.get("id", index), visitor.defaults(dependency), dependency["targets"][0][0])
            called += 1
            leaked = [secret for secret in secrets if secret in reply.raw]
            assert not leaked, f"event {dependency.get('api_name')} told a visitor about {leaked}"
        assert called > 30
        listing = visitor.run(*_load_event(visitor)).data
        assert ["public-run", "public-run"] in listing[0]["choices"]
    finally:
        visitor.close()


def _load_event(visitor: Visitor):
    """The page-load event that fills the chat's run list."""
    components = {c["id"]: c for c in visitor.config()["components"]}
    for index, dependency in enumerate(visitor.config()["dependencies"]):
        outputs = [components[o].get("props", {}).get("label") for o in dependency["outputs"]]
        if dependency["targets"] and dependency["targets"][0][1] == "load" and SOURCE in outputs:
            return dependency.get("id", index), [], dependency["targets"][0][0]
    raise AssertionError("no page-load event lists the chat's runs")


def test_with_auth_the_owner_publishes_and_friends_chat_only_with_that(studio_runs, isolated_data_dir):
    args = ("--owner", "alice", "--auth", "alice:owner-pass", "--auth", "bob:friend-pass", "--max-new-tokens", 8)
    with served(*args, data_dir=isolated_data_dir) as url:
        runs.set_published(runs.Run(studio_runs / "public-run"), False)
        owner, friend = Visitor(url, "127.0.0.42"), Visitor(url, "127.0.0.43")
        try:
            assert (
                owner.http.post(f"{url}/login", data={"username": "alice", "password": "owner-pass"}).status_code == 200
            )
            assert (
                friend.http.post(f"{url}/login", data={"username": "bob", "password": "friend-pass"}).status_code == 200
            )
            refused = friend.call("/publish_runs", data=[["secret-run"]])
            assert not refused.success and "Only alice can train or export here: log in as them" in refused.error
            assert not runs.published_runs()
            assert owner.call("/publish_runs", data=[["secret-run"]]).success
            assert list(runs.published_runs()) == ["secret-run"]
            assert friend.call("/chat", {SOURCE: "secret-run", "Message": "hey"}).success
            assert friend.call("/chat", {SOURCE: "public-run", "Message": "hey"}).error == NOT_LISTED
            started = friend.call("/start_run", {})
            assert not started.success and "Only alice" in started.error
            # The owner keeps the studio's picker: any folder, published or not.
            assert owner.call("/chat", {SOURCE: str(studio_runs / "public-run"), "Message": "hey"}).success
        finally:
            owner.close()
            friend.close()


@pytest.fixture
def space(monkeypatch, studio_runs):
    """The environment of a Space with `hf_oauth: true`; Gradio reads its OAuth settings at import."""
    import gradio.oauth

    settings = {
        "OAUTH_CLIENT_ID": "client-id",
        "OAUTH_CLIENT_SECRET": "a-secret-only-the-space-knows",
        "OAUTH_SCOPES": "openid profile",
        "OPENID_PROVIDER_URL": "http://127.0.0.1:9",
    }
    for name, value in {
        **settings,
        "SYSTEM": "spaces",
        "SPACE_ID": "alice/talklike",
        "SPACE_HOST": "127.0.0.1",
    }.items():
        monkeypatch.setenv(name, value)
    for name, value in settings.items():
        monkeypatch.setattr(gradio.oauth, name, value)
    import gradio.http_server

    # On a Space, Gradio's server also starts a code reloader that needs the `spaces` package only
    # a real Space has; the sign-in (gradio.oauth) still sees a Space.
    monkeypatch.setattr(gradio.http_server, "get_space", lambda: None)
    return settings


def session_cookie(secret: str, username: str) -> str:
    """A Gradio (Starlette) session cookie saying `username` signed in with Hugging Face."""
    from itsdangerous import TimestampSigner

    info = {
        "oauth_info": {
            "access_token": "x",
            "expires_at": 4_000_000_000,
            "userinfo": {"preferred_username": username, "name": username, "profile": "", "picture": ""},
        }
    }
    key = hashlib.sha256((secret + "-v4").encode()).hexdigest()
    return TimestampSigner(key).sign(base64.b64encode(json.dumps(info).encode())).decode()


def test_on_a_real_space_a_forged_sign_in_gets_nothing(space, isolated_data_dir):
    with served("--owner", "alice", data_dir=isolated_data_dir) as url:
        # Signed with the constant Gradio uses when there is no client secret: what worked before.
        forged = {"session": session_cookie("", "alice")}
        genuine = {"session": session_cookie(space["OAUTH_CLIENT_SECRET"], "alice")}
        attacker, owner = Visitor(url, "127.0.0.44"), Visitor(url, "127.0.0.45")
        attacker.http.cookies.update(forged)
        owner.http.cookies.update(genuine)
        try:
            denied = attacker.call("/watch_run", {"Watching run": "secret-run"})
            assert (
                not denied.success and "Only alice can train or export here: sign in with Hugging Face" in denied.error
            )
            upload = attacker.http.post(f"{url}/gradio_api/upload", files={"files": ("chat.txt", b"hi")})
            assert upload.status_code == 403
            # The same request signed with the Space's secret is the owner's (the test could tell).
            watched = owner.call("/watch_run", {"Watching run": "secret-run"})
            assert watched.success and "secret-run" in watched.data[0]
            assert owner.http.post(f"{url}/gradio_api/upload", files={"files": ("chat.txt", b"hi")}).status_code == 200
        finally:
            attacker.close()
            owner.close()


def test_the_openai_endpoint_offers_visitors_only_the_published_runs(studio_runs, trained, isolated_data_dir):
    import httpx
    import openai

    from training.chat import decoding, generate

    key = "sk-owner-mode-key-0123456789"
    message = [{"role": "user", "content": "hey"}]
    with served(
        "--owner", "alice", "--auth", "alice:pw", "--api-key", key, "--max-new-tokens", 8, data_dir=isolated_data_dir
    ) as url:
        api = openai.OpenAI(base_url=f"{url}/v1", api_key=key, max_retries=0, timeout=120)
        assert [m.id for m in api.models.list()] == ["public-run"]
        answer = api.chat.completions.create(model="public-run", temperature=0, max_tokens=500, messages=message)
        model = generate.load_chat_model(str(studio_runs / "public-run"))
        assert answer.choices[0].message.content == generate.reply(
            model, [], "hey", decoding.preset("Greedy", max_new_tokens=8)
        )
        # An unpublished run, its folder, another run's path or a Hub id: all "not here", none loaded.
        for name in ("secret-run", str(studio_runs / "secret-run"), str(trained.path), "someone/private-persona"):
            with pytest.raises(openai.NotFoundError, match="does not exist here"):
                api.chat.completions.create(model=name, messages=message)
            assert httpx.get(f"{url}/v1/models/{name}", headers={"Authorization": f"Bearer {key}"}).status_code == 404
        # The list follows what the owner publishes, at once.
        runs.set_published(runs.Run(studio_runs / "secret-run"), True)
        assert sorted(m.id for m in api.models.list()) == ["public-run", "secret-run"]
        runs.set_published(runs.Run(studio_runs / "public-run"), False)
        assert [m.id for m in api.models.list()] == ["secret-run"]
        listing = httpx.get(f"{url}/v1/models", headers={"Authorization": f"Bearer {key}"}).text
    assert str(isolated_data_dir) not in listing and key not in listing
