"""What the server enforces around the tabs: who the owner is, logins, uploads.

app.py decides the mode (studio, chat-only, owner) and launches; this module holds the checks
that do not belong to one tab: refusing an owner mode nobody could be verified in, a rate limit on
the --auth login form, and the gate in front of Gradio's upload route.
"""

from __future__ import annotations

import json
import os
import threading
import time
from collections import deque
from collections.abc import Callable

from components.common import Owner
from training.chat.serving import network_address

# What a Space with `hf_oauth: true` in its README sets; without all of them there is no real sign-in.
OAUTH_VARIABLES = ("OAUTH_CLIENT_ID", "OAUTH_CLIENT_SECRET", "OAUTH_SCOPES", "OPENID_PROVIDER_URL")
OAUTH_EXTRA = "pip install 'gradio[oauth]==6.31.0'  (requirements.txt lists it, so a Space installs it)"


def owner_access(name: str, auth_users: list[str], environ=os.environ) -> Owner:
    """How the server will know the owner, or SystemExit saying what is missing.

    Owner mode is only as safe as the sign-in behind it. Outside a real Space, Gradio's
    Hugging Face login is a mock that signs every visitor in as whoever owns the server's token,
    and its session cookie is signed with a public constant: anyone could forge the owner. So:
    the app's own --auth login when given (the owner must be one of its users), else real
    Hugging Face OAuth on a Space, else refuse to start.
    """
    if auth_users:
        if name not in auth_users:
            raise SystemExit(
                f"--owner {name}: not one of the --auth users ({', '.join(auth_users)}); the owner could never log in"
            )
        return Owner(name, via="auth")
    on_a_space = environ.get("SYSTEM") == "spaces" and bool(environ.get("SPACE_ID"))
    if on_a_space or environ.get("SPACE_ID"):
        try:
            import authlib  # noqa: F401 - Gradio's OAuth routes need both
            import itsdangerous  # noqa: F401
        except ImportError:
            raise SystemExit(f"--owner on a Space needs Gradio's OAuth extra: {OAUTH_EXTRA}") from None
    missing = [variable for variable in OAUTH_VARIABLES if not environ.get(variable)]
    if not on_a_space or missing:
        what = (
            "this is not a Hugging Face Space (a Space sets SYSTEM=spaces and SPACE_ID)"
            if not on_a_space
            else f"{', '.join(missing)} not set (add `hf_oauth: true` to the Space's README)"
        )
        raise SystemExit(
            f"--owner {name}: owner mode needs a real sign-in, and {what}. On a Space, turn on Hugging Face "
            "OAuth; anywhere else, use the app's own login: --auth USER:PASS with the owner as USER."
        )
    return Owner(name, via="oauth")


def oauth_username(scope) -> str | None:
    """The Hugging Face user signed in on this request (Gradio's session), if the sign-in is current."""
    info = (scope.get("session") or {}).get("oauth_info") if "session" in scope else None
    if not isinstance(info, dict):
        return None
    expires_at = info.get("expires_at")
    if expires_at is not None and expires_at < time.time():
        return None
    return (info.get("userinfo") or {}).get("preferred_username")


class UploadGate:
    """ASGI middleware in front of Gradio's upload route: `allowed(scope)` decides who may upload.

    Gradio's /gradio_api/upload takes files from anyone who can open the page, for any event,
    before any handler runs. A chat-only page has nothing to upload; in owner mode only the owner
    imports data.
    """

    def __init__(self, app, allowed: Callable[[dict], bool]):
        self.app, self.allowed = app, allowed

    async def __call__(self, scope, receive, send):
        if scope["type"] == "http" and scope["method"] == "POST" and scope["path"].rstrip("/").endswith("/upload"):
            if not self.allowed(scope):
                await _json_response(send, 403, "Uploads are not open to visitors of this page.")
                return
        await self.app(scope, receive, send)


class BodyLimit:
    """ASGI middleware: refuse a request body over `max_bytes` (HTTP 413) before anything parses it.

    Gradio parses an event's whole JSON body (a chat message, the history the browser sends back)
    before any handler can look at its size, and holds it while the request waits in the queue.
    Uploads have their own limit (Gradio's max_file_size) and pass through.
    """

    def __init__(self, app, max_bytes: int):
        self.app, self.max_bytes = app, max_bytes

    async def __call__(self, scope, receive, send):
        if (
            scope["type"] != "http"
            or scope["method"] not in ("POST", "PUT", "PATCH")
            or scope["path"].rstrip("/").endswith("/upload")
        ):
            await self.app(scope, receive, send)
            return
        declared = _headers(scope).get("content-length", "")
        if declared.isdigit() and int(declared) > self.max_bytes:
            await _json_response(send, 413, f"Request too large: at most {self.max_bytes // 1024:,} KB here.")
            return
        received = 0

        async def counting():  # a body sent without a length is cut off where it passes the limit
            nonlocal received
            message = await receive()
            received += len(message.get("body", b""))
            return {"type": "http.disconnect"} if received > self.max_bytes else message

        await self.app(scope, counting, send)


class LoginRateLimit:
    """ASGI middleware: after `failures` wrong passwords from one address within `window_s`
    seconds, every login from that address is refused (HTTP 429) until the window has passed.

    Gradio checks --auth passwords as fast as they arrive. Keyed on the network address (see
    training.chat.serving.network_address), so one guesser cannot lock out anyone else.
    """

    def __init__(self, app, failures: int = 5, window_s: float = 60.0):
        self.app, self.failures, self.window_s = app, failures, window_s
        self._failed: dict[str, deque[float]] = {}
        self._lock = threading.Lock()

    async def __call__(self, scope, receive, send):
        if not (scope["type"] == "http" and scope["method"] == "POST" and scope["path"].rstrip("/").endswith("/login")):
            await self.app(scope, receive, send)
            return
        address = network_address(_headers(scope), (scope.get("client") or (None,))[0])
        wait = self._locked_for(address)
        if wait:
            await _json_response(send, 429, f"Too many failed logins; try again in {wait:.0f} s.")
            return
        status = {}

        async def noting_status(message):
            if message["type"] == "http.response.start":
                status["code"] = message["status"]
            await send(message)

        await self.app(scope, receive, noting_status)
        if status.get("code") != 200:
            with self._lock:
                self._failed.setdefault(address, deque()).append(time.monotonic())

    def _locked_for(self, address: str) -> float:
        """Seconds until this address may try again (0 = now)."""
        now = time.monotonic()
        with self._lock:
            recent = self._failed.get(address, deque())
            while recent and now - recent[0] > self.window_s:
                recent.popleft()
            if not recent:
                self._failed.pop(address, None)
                return 0.0
            return self.window_s - (now - recent[0]) if len(recent) >= self.failures else 0.0


def _headers(scope) -> dict[str, str]:
    return {key.decode("latin-1").lower(): value.decode("latin-1") for key, value in scope.get("headers", [])}


async def _json_response(send, status: int, detail: str) -> None:
    body = json.dumps({"detail": detail}).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())],
        }
    )
    await send({"type": "http.response.body", "body": body})
