"""talklike: turn your chat history into a chatbot that texts like you.

`python app.py` parses flags, assembles the tabs and launches; everything else lives in
components/ (views) and training/ (the library).
"""

from __future__ import annotations

import argparse
import os

# Must precede importing gradio/huggingface_hub: they read these at import time. The user can
# still opt in by setting them.
os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")

import gradio as gr  # noqa: E402
from starlette.middleware import Middleware  # noqa: E402

from components.chat_tab import build_chat_tab  # noqa: E402
from components.common import Owner, as_owner, owner_only  # noqa: E402
from components.data_tab import build_data_tab  # noqa: E402
from components.export_tab import build_export_tab  # noqa: E402
from components.export_tab import refresh_runs as refresh_export_runs  # noqa: E402
from components.report_tab import build_report_tab  # noqa: E402
from components.report_tab import refresh_runs as refresh_report_runs  # noqa: E402
from components.limits import ChatLimits  # noqa: E402
from components.server import (  # noqa: E402
    BodyLimit,
    LoginRateLimit,
    UploadGate,
    oauth_username,
    owner_access,
)
from components.train_tab import attach_on_load, build_train_tab  # noqa: E402
from training.data.sources import MAX_FILE_BYTES  # noqa: E402

THEME = gr.themes.Soft()
DEFAULT_LIMITS = ChatLimits()
# Largest request body besides uploads. A visitor's biggest legitimate one is a 2,000-character
# message with 40 turns of history (~0.3 MB); the owner's own long chats in a local studio may grow.
VISITOR_REQUEST_BYTES = 1024**2
STUDIO_REQUEST_BYTES = 16 * 1024**2


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="talklike: a chatbot that texts like you")
    parser.add_argument("--host", default=os.environ.get("TALKLIKE_HOST", "127.0.0.1"), help="address to listen on (0.0.0.0 for a LAN or a Space)")
    parser.add_argument("--port", type=int, default=int(os.environ.get("TALKLIKE_PORT", "7860")))
    parser.add_argument("--share", action="store_true", help="create a public Gradio share link")
    parser.add_argument("--auth", action="append", default=[a for a in [os.environ.get("TALKLIKE_AUTH")] if a], metavar="USER:PASS",
                        help="require a login (or set TALKLIKE_AUTH); repeat for several users")
    parser.add_argument("--data-dir", default=None, help="where uploads, data sets, runs and exports go (or TALKLIKE_DATA_DIR)")
    parser.add_argument("--owner", default=os.environ.get("TALKLIKE_OWNER"), metavar="USERNAME",
                        help="only this user may use Data/Train/Export (signed in with Hugging Face on a Space, or an --auth user); "
                             "everyone else chats with the runs the owner publishes")
    parser.add_argument("--chat-only", metavar="RUN_OR_MODEL", default=os.environ.get("TALKLIKE_CHAT_ONLY"),
                        help="serve only the chat with this run/model: the page to share with friends")
    parser.add_argument("--max-new-tokens", type=int, default=DEFAULT_LIMITS.max_new_tokens, help="visitors: longest reply they can ask for")
    parser.add_argument("--concurrency", type=int, default=DEFAULT_LIMITS.concurrency, help="chat: replies generated at the same time, everyone together")
    parser.add_argument("--per-address", type=int, default=DEFAULT_LIMITS.per_address, help="chat: replies in progress per network address")
    parser.add_argument("--queue-size", type=int, default=DEFAULT_LIMITS.queue_size, help="shared pages (chat-only, owner mode): requests that may wait; more are refused")
    return parser.parse_args(argv)


def build_app(owner: Owner | str | None = None, limits: ChatLimits = DEFAULT_LIMITS) -> gr.Blocks:
    """The studio. With `owner`, Data/Train/Report/Export answer only the owner; everyone else chats with
    the runs the owner published, under `limits`."""
    owner = as_owner(owner)
    with gr.Blocks(title="talklike") as demo:
        gr.Markdown("# talklike\nTurn your chat history into a chatbot that texts like you.")
        if owner:
            with gr.Row():
                gr.Markdown(f"Training and export are for **{owner.name}** only; everyone can chat.")
                if owner.via == "oauth" and os.environ.get("SPACE_ID"):  # Hugging Face sign-in on a Space
                    gr.LoginButton()
        with gr.Tab("1 · Data"):
            data = build_data_tab(owner)
        with gr.Tab("2 · Train"):
            train = build_train_tab(owner)
        with gr.Tab("3 · Chat") as chat_page:
            chat = build_chat_tab(limits=limits, owner=owner)
        with gr.Tab("4 · Report") as report_page:
            report_run = build_report_tab(owner)
        with gr.Tab("5 · Export") as export_page:
            export_run = build_export_tab(owner)
        # The Data tab's saved examples become the Train tab's training data.
        data.dataset_path.change(
            owner_only(owner, denied=gr.update)(lambda path: gr.update(choices=[path], value=path) if path else gr.update()),
            inputs=data.dataset_path, outputs=train.train_file, api_name=False,
        )  # fmt: skip
        attach_on_load(demo, train, owner)
        # Also on opening the tab: a run that finished after the page loaded must be listed there.
        for event in (demo.load, chat_page.select):
            event(chat.refresh, outputs=chat.refreshed, api_name=False)
        for event in (demo.load, report_page.select):
            event(owner_only(owner, denied=gr.update)(refresh_report_runs), outputs=report_run, api_name=False)
        for event in (demo.load, export_page.select):
            event(owner_only(owner, denied=gr.update)(refresh_export_runs), outputs=export_run, api_name=False)
    return demo


def build_chat_app(source: str, limits: ChatLimits = DEFAULT_LIMITS) -> gr.Blocks:
    """Only the chat, with the model fixed server-side: no data, training or export event exists,
    so none can be called through Gradio's API either."""
    with gr.Blocks(title="talklike chat") as demo:
        gr.Markdown("# talklike\nA chatbot fine-tuned to text like its owner. Replies are generated, not real messages.")
        build_chat_tab(fixed_source=source, limits=limits)
    return demo


def _auth(values: list[str]) -> list[tuple[str, str]]:
    pairs = []
    for value in values:
        user, sep, password = value.partition(":")
        if not sep or not user or not password:
            raise SystemExit("--auth: expected USER:PASS")
        pairs.append((user, password))
    return pairs


def prepare(args: argparse.Namespace) -> tuple[gr.Blocks, dict]:
    """The page for the chosen mode and the launch settings that go with it (see docs/security.md)."""
    limits = ChatLimits(args.max_new_tokens, args.concurrency, args.per_address, args.queue_size).check()
    auth = _auth(args.auth)
    owner = owner_access(args.owner, [user for user, _ in auth]) if args.owner and not args.chat_only else None
    shared = bool(args.chat_only or owner)
    middleware = [Middleware(BodyLimit, max_bytes=VISITOR_REQUEST_BYTES if shared else STUDIO_REQUEST_BYTES)]
    middleware += [Middleware(LoginRateLimit)] if auth else []
    if args.chat_only:
        demo = build_chat_app(args.chat_only, limits)
        middleware.append(Middleware(UploadGate, allowed=lambda scope: False))  # nothing on the page takes a file
    else:
        demo = build_app(owner, limits)
        if owner and owner.via == "oauth":
            middleware.append(Middleware(UploadGate, allowed=lambda scope: oauth_username(scope) == owner.name))
        elif not owner and not auth and os.environ.get("SPACE_ID"):
            print("talklike: warning: this studio on a Space has no --owner or --auth: anyone who can open it can train, "
                  "export and push with the Space's token", flush=True)  # fmt: skip
    demo.queue(default_concurrency_limit=4, max_size=limits.queue_size if shared else None)
    options = dict(
        server_name=args.host, server_port=args.port, share=args.share, auth=auth or None, theme=THEME,
        # Gradio 6 would keep every event's inputs and outputs (private chat text, examples) in
        # the browser's localStorage and show them on /gradio_api/runs; nothing here needs it.
        run_history=False, max_file_size=MAX_FILE_BYTES, app_kwargs={"middleware": middleware},
    )  # fmt: skip
    return demo, options


def main(argv: list[str] | None = None, block: bool = True) -> gr.Blocks:
    args = parse_args(argv)
    if args.data_dir:
        os.environ["TALKLIKE_DATA_DIR"] = args.data_dir
    demo, options = prepare(args)
    demo.launch(**options, prevent_thread_lock=not block, quiet=not block)
    return demo


if __name__ == "__main__":
    main()
