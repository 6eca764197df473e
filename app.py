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

from components.chat_tab import build_chat_tab, refresh_sources  # noqa: E402
from components.common import owner_only  # noqa: E402
from components.data_tab import build_data_tab  # noqa: E402
from components.export_tab import build_export_tab  # noqa: E402
from components.export_tab import refresh_runs as refresh_export_runs  # noqa: E402
from components.report_tab import build_report_tab  # noqa: E402
from components.report_tab import refresh_runs as refresh_report_runs  # noqa: E402
from components.train_tab import attach_on_load, build_train_tab  # noqa: E402

THEME = gr.themes.Soft()


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="talklike: a chatbot that texts like you")
    parser.add_argument("--host", default=os.environ.get("TALKLIKE_HOST", "127.0.0.1"), help="address to listen on (0.0.0.0 for a LAN or a Space)")
    parser.add_argument("--port", type=int, default=int(os.environ.get("TALKLIKE_PORT", "7860")))
    parser.add_argument("--share", action="store_true", help="create a public Gradio share link")
    parser.add_argument("--auth", default=os.environ.get("TALKLIKE_AUTH"), metavar="USER:PASS", help="require a login (or set TALKLIKE_AUTH)")
    parser.add_argument("--data-dir", default=None, help="where uploads, data sets, runs and exports go (or TALKLIKE_DATA_DIR)")
    parser.add_argument("--owner", default=os.environ.get("TALKLIKE_OWNER"), metavar="HF_USERNAME",
                        help="on a Space with hf_oauth: only this Hugging Face user may use Data/Train/Export")
    parser.add_argument("--chat-only", metavar="RUN_OR_MODEL", default=os.environ.get("TALKLIKE_CHAT_ONLY"),
                        help="serve only the chat with this run/model: the page to share with friends")
    parser.add_argument("--max-new-tokens", type=int, default=256, help="chat-only: longest reply a visitor can ask for")
    parser.add_argument("--concurrency", type=int, default=2, help="chat-only: replies generated at the same time")
    return parser.parse_args(argv)


def build_app(owner: str | None = None) -> gr.Blocks:
    """The studio. With `owner`, Data/Train/Report/Export answer only that signed-in Hugging Face user."""
    with gr.Blocks(title="talklike") as demo:
        gr.Markdown("# talklike\nTurn your chat history into a chatbot that texts like you.")
        if owner:
            with gr.Row():
                gr.Markdown(f"Training and export are for **{owner}** only; everyone can chat.")
                if os.environ.get("SPACE_ID"):  # Hugging Face sign-in exists on Spaces with hf_oauth: true
                    gr.LoginButton()
        with gr.Tab("1 · Data"):
            data = build_data_tab(owner)
        with gr.Tab("2 · Train"):
            train = build_train_tab(owner)
        with gr.Tab("3 · Chat") as chat_page:
            chat = build_chat_tab()
        with gr.Tab("4 · Report") as report_page:
            report_run = build_report_tab(owner)
        with gr.Tab("5 · Export") as export_page:
            export_run = build_export_tab(owner)
        # The Data tab's saved examples become the Train tab's training data.
        data.dataset_path.change(
            lambda path: gr.update(choices=[path], value=path) if path else gr.update(),
            inputs=data.dataset_path, outputs=train.train_file, api_name=False,
        )
        attach_on_load(demo, train, owner)
        # Also on opening the tab: a run that finished after the page loaded must be listed there.
        for event in (demo.load, chat_page.select):
            event(refresh_sources, outputs=chat.source, api_name=False)
        for event in (demo.load, report_page.select):
            event(owner_only(owner, denied=gr.update)(refresh_report_runs), outputs=report_run, api_name=False)
        for event in (demo.load, export_page.select):
            event(owner_only(owner, denied=gr.update)(refresh_export_runs), outputs=export_run, api_name=False)
    return demo


def build_chat_app(source: str, max_new_tokens: int = 256, concurrency: int = 2) -> gr.Blocks:
    """Only the chat, with the model fixed server-side: no data, training or export event exists,
    so none can be called through Gradio's API either."""
    with gr.Blocks(title="talklike chat") as demo:
        gr.Markdown("# talklike\nA chatbot fine-tuned to text like its owner. Replies are generated, not real messages.")
        build_chat_tab(fixed_source=source, max_new_tokens_cap=max_new_tokens, concurrency_limit=concurrency)
    return demo


def _auth(value: str | None):
    if not value:
        return None
    user, sep, password = value.partition(":")
    if not sep or not user or not password:
        raise SystemExit("--auth: expected USER:PASS")
    return (user, password)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    if args.data_dir:
        os.environ["TALKLIKE_DATA_DIR"] = args.data_dir
    if args.chat_only:
        demo = build_chat_app(args.chat_only, args.max_new_tokens, args.concurrency)
    else:
        demo = build_app(args.owner)
    demo.queue(default_concurrency_limit=4)
    demo.launch(server_name=args.host, server_port=args.port, share=args.share, auth=_auth(args.auth), theme=THEME)


if __name__ == "__main__":
    main()
