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

from components.chat_tab import build_chat_tab  # noqa: E402
from training.chat.serving import DECODING_ENV, ChatLimits, parse_decoding  # noqa: E402
from training.errors import UserError  # noqa: E402

THEME = gr.themes.Soft()


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="talklike: a chatbot that texts like you")
    # A Space sets GRADIO_SERVER_NAME=0.0.0.0; binding 127.0.0.1 there would leave the Space unreachable.
    host = os.environ.get("TALKLIKE_HOST") or os.environ.get("GRADIO_SERVER_NAME") or "127.0.0.1"
    parser.add_argument("--host", default=host, help="address to listen on (0.0.0.0 for a LAN or a Space)")
    parser.add_argument("--port", type=int, default=int(os.environ.get("TALKLIKE_PORT") or os.environ.get("GRADIO_SERVER_PORT") or "7860"))
    parser.add_argument("--share", action="store_true", help="create a public Gradio share link")
    parser.add_argument("--auth", default=os.environ.get("TALKLIKE_AUTH"), metavar="USER:PASS", help="require a login (or set TALKLIKE_AUTH)")
    parser.add_argument("--data-dir", default=None, help="where uploads, data sets, runs and exports go (or TALKLIKE_DATA_DIR)")
    parser.add_argument("--owner", default=os.environ.get("TALKLIKE_OWNER"), metavar="HF_USERNAME",
                        help="on a Space with hf_oauth: only this Hugging Face user may use Data/Train/Export")
    parser.add_argument("--chat-only", metavar="RUN_OR_MODEL", default=os.environ.get("TALKLIKE_CHAT_ONLY"),
                        help="serve only the chat with this run/model: the page to share with friends")
    parser.add_argument("--decoding", default=os.environ.get(DECODING_ENV), metavar="PRESET_OR_JSON",
                        help=f"the chat's starting decoding: Greedy, Balanced, Creative or a JSON object of settings (or {DECODING_ENV})")
    parser.add_argument("--api-key", default=os.environ.get("TALKLIKE_API_KEY"), metavar="KEY",
                        help="serve an OpenAI-compatible API at /v1 to holders of this key (or TALKLIKE_API_KEY); off unless set")
    ChatLimits.add_arguments(parser)
    return parser.parse_args(argv)


def build_app(owner: str | None = None) -> gr.Blocks:
    """The studio. With `owner`, Data/Train/Export answer only that signed-in Hugging Face user."""
    # Imported here: a chat-only Space ships only the chat's code (training/export/space.py).
    from components.chat_tab import refresh_sources
    from components.common import owner_only
    from components.data_tab import build_data_tab
    from components.export_tab import build_export_tab
    from components.export_tab import refresh_runs as refresh_export_runs
    from components.train_tab import attach_on_load, build_train_tab

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
        with gr.Tab("4 · Export") as export_page:
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
        for event in (demo.load, export_page.select):
            event(owner_only(owner, denied=gr.update)(refresh_export_runs), outputs=export_run, api_name=False)
    return demo


def build_chat_app(source: str, limits: ChatLimits | None = None, decoding=None) -> gr.Blocks:
    """Only the chat, with the model fixed server-side: no data, training or export event exists,
    so none can be called through Gradio's API either."""
    with gr.Blocks(title="talklike chat") as demo:
        gr.Markdown("# talklike\nA chatbot fine-tuned to text like its owner. Replies are generated, not real messages.")
        build_chat_tab(fixed_source=source, limits=limits or ChatLimits(), decoding_defaults=decoding)
    return demo


def api_models(chat_only: str | None, source: str | None = None):
    """What the OpenAI endpoint offers ({id: source}): the chat-only model under the name the owner
    gave it (a repo id, a run name), or in the studio every finished run by name."""
    if chat_only:
        from training.chat.remote import model_id

        offered = {model_id(chat_only): source or chat_only}
        return lambda: offered

    def finished_runs() -> dict[str, str]:
        from training.train.runs import list_runs

        return {run["name"]: run["path"] for run in list_runs() if run["has_final"]}

    return finished_runs


def _auth(value: str | None):
    if not value:
        return None
    user, sep, password = value.partition(":")
    if not sep or not user or not password:
        raise SystemExit("--auth: expected USER:PASS")
    return (user, password)


def start(argv: list[str] | None = None) -> tuple[gr.Blocks, str]:
    """Parse flags, build the page (and the OpenAI routes with --api-key), launch without blocking."""
    args = parse_args(argv)
    if args.data_dir:
        os.environ["TALKLIKE_DATA_DIR"] = args.data_dir
    try:
        limits, decoding = ChatLimits.from_args(args), parse_decoding(args.decoding)
        if args.chat_only:
            from training.chat.remote import local_copy

            # The model is fetched once at start (a Space's model repo), so every reply reads local files.
            source = local_copy(args.chat_only)
            demo = build_chat_app(source, limits, decoding)
        else:
            demo = build_app(args.owner)
        routes = []
        if args.api_key:
            from training.chat.openai_api import openai_router

            models = api_models(args.chat_only, source if args.chat_only else None)
            routes = openai_router(models, args.api_key, limits, decoding).routes
    except UserError as error:
        raise SystemExit(f"error: {error}") from None
    if args.chat_only:
        # Gradio counts an event as queued until it starts, so the line holds the running ones too.
        demo.queue(default_concurrency_limit=limits.concurrency, max_size=limits.concurrency + limits.queue_size)
    else:
        demo.queue(default_concurrency_limit=4)
    # The API routes go first in Gradio's own FastAPI app (outside its login: they check their own key).
    # SSR off: its Node proxy would stand in front of the Python server, and of these routes.
    _, url, _ = demo.launch(server_name=args.host, server_port=args.port, share=args.share, auth=_auth(args.auth),
                            theme=THEME, app_kwargs={"routes": routes}, ssr_mode=False, prevent_thread_lock=True)  # fmt: skip
    return demo, url


def main(argv: list[str] | None = None) -> None:
    demo, _ = start(argv)
    demo.block_thread()


if __name__ == "__main__":
    main()
