"""talklike: turn your chat history into a chatbot that texts like you.

`python app.py` parses flags, assembles the tabs and launches; everything else lives in
components/ (views) and training/ (the library).
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import gc
import os

# Must precede importing gradio/huggingface_hub: they read these at import time. The user can
# still opt in by setting them.
os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
# Gradio summarises every event it served (a pandas groupby over up to 10,000 of them) after each
# event, for a monitoring page this app never enables: with the Train tab polling, that was a
# tenth of the studio's CPU. Summarise once in a million events, over at most 1,000.
os.environ.setdefault("GRADIO_ANALYTICS_CACHE_FREQUENCY", "1000000")
os.environ.setdefault("GRADIO_ANALYTICS_MAX_EVENTS", "1000")

import gradio as gr  # noqa: E402
from starlette.middleware import Middleware  # noqa: E402

from components.chat_tab import build_chat_tab  # noqa: E402
from components.common import Owner, as_owner, owner_only  # noqa: E402
from components.memory_panel import MemoryPolicy  # noqa: E402
from components.server import (  # noqa: E402
    BodyLimit,
    LoginRateLimit,
    UploadGate,
    oauth_username,
    owner_access,
)
from training.chat.serving import (  # noqa: E402
    DECODING_ENV,
    AddressSlots,
    ChatLimits,
    parse_decoding,
)
from training.data.sources import MAX_FILE_BYTES  # noqa: E402
from training.errors import UserError  # noqa: E402
from training.report.blind import VOTERS_PER_ADDRESS, BallotBox  # noqa: E402

THEME = gr.themes.Soft()
# Largest request body besides uploads. A visitor's biggest legitimate one is a 2,000-character
# message with 40 turns of history (~0.3 MB); the owner's own long chats in a local studio may grow.
VISITOR_REQUEST_BYTES = 1024**2
STUDIO_REQUEST_BYTES = 16 * 1024**2
# While it has nothing to do, Gradio's queue looks for new events every 1 ms and for progress to
# send every 10 ms: 7% of a core on an idle studio here, a browser tab open or not
# (bench/bench_studio.py). Its values on Windows, 50 and 100 ms, cost 1-2%; an event then waits at
# most 50 ms more to start.
QUEUE_IDLE_POLL_S, PROGRESS_IDLE_POLL_S = 0.05, 0.1


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="talklike: a chatbot that texts like you")
    # A Space sets GRADIO_SERVER_NAME=0.0.0.0; binding 127.0.0.1 there would leave the Space unreachable.
    host = os.environ.get("TALKLIKE_HOST") or os.environ.get("GRADIO_SERVER_NAME") or "127.0.0.1"
    parser.add_argument("--host", default=host, help="address to listen on (0.0.0.0 for a LAN or a Space)")
    parser.add_argument(
        "--port",
        type=int,
        default=int(os.environ.get("TALKLIKE_PORT") or os.environ.get("GRADIO_SERVER_PORT") or "7860"),
    )
    parser.add_argument("--share", action="store_true", help="create a public Gradio share link")
    parser.add_argument(
        "--auth",
        action="append",
        default=[a for a in [os.environ.get("TALKLIKE_AUTH")] if a],
        metavar="USER:PASS",
        help="require a login (or set TALKLIKE_AUTH); repeat for several users",
    )
    parser.add_argument(
        "--data-dir", default=None, help="where uploads, data sets, runs and exports go (or TALKLIKE_DATA_DIR)"
    )
    parser.add_argument(
        "--owner",
        default=os.environ.get("TALKLIKE_OWNER"),
        metavar="USERNAME",
        help="only this user may use Data/Train/Export (signed in with Hugging Face on a Space, or an --auth user); "
        "everyone else chats with the runs the owner publishes",
    )
    parser.add_argument(
        "--chat-only",
        metavar="RUN_OR_MODEL",
        default=os.environ.get("TALKLIKE_CHAT_ONLY"),
        help="serve only the chat with this run/model (a Hub id is fetched once at start): the page to share with friends",
    )
    parser.add_argument(
        "--decoding",
        default=os.environ.get(DECODING_ENV),
        metavar="PRESET_OR_JSON",
        help=f"the chat's starting decoding: Greedy, Balanced, Creative or a JSON object of settings (or {DECODING_ENV})",
    )
    parser.add_argument(
        "--api-key",
        default=os.environ.get("TALKLIKE_API_KEY"),
        metavar="KEY",
        help="serve an OpenAI-compatible API at /v1 to holders of this key (better: set TALKLIKE_API_KEY, "
        "which no process list shows); off unless set. It offers what visitors can chat with, under their limits",
    )
    parser.add_argument(
        "--memory",
        action="store_true",
        default=os.environ.get("TALKLIKE_MEMORY") == "1",
        help="visitors (chat-only page, published runs): chat with memory, your past replies and facts "
        "in the prompt (or TALKLIKE_MEMORY=1); off unless given",
    )
    parser.add_argument(
        "--show-memory",
        action="store_true",
        help="with --memory: visitors also see the memories used under each reply (they quote your chats)",
    )
    parser.add_argument(
        "--blind-test",
        metavar="RUN",
        default=os.environ.get("TALKLIKE_BLIND_TEST"),
        help="add the blind test page for this run (prepare it first: python -m training blind-test RUN "
        "--allow-showing-my-texts); or TALKLIKE_BLIND_TEST",
    )
    parser.add_argument(
        "--blind-voters-per-address",
        type=int,
        default=VOTERS_PER_ADDRESS,
        metavar="N",
        help=f"blind test: people counted per network address ({VOTERS_PER_ADDRESS})",
    )
    ChatLimits.add_arguments(parser)
    return parser.parse_args(argv)


def build_app(
    owner: Owner | str | None = None,
    limits: ChatLimits | None = None,
    slots: AddressSlots | None = None,
    memory_policy: MemoryPolicy | None = None,
    ballot: BallotBox | None = None,
) -> gr.Blocks:
    """The studio. With `owner`, Data/Train/Report/Export answer only the owner; everyone else chats with
    the runs the owner published, under `limits` (`slots`: the per-address count shared with /v1), and
    votes in the blind test of `ballot` when there is one."""
    # Imported here: a chat-only Space ships only the chat's code (training/export/space.py).
    from components.data_tab import build_data_tab
    from components.export_tab import build_export_tab
    from components.export_tab import refresh_runs as refresh_export_runs
    from components.report_tab import build_report_tab
    from components.report_tab import refresh_runs as refresh_report_runs
    from components.train_tab import attach_on_load, build_train_tab

    owner, limits = as_owner(owner), limits or ChatLimits()
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
            chat = build_chat_tab(limits=limits, owner=owner, slots=slots, memory_policy=memory_policy)
        if ballot is not None:
            with gr.Tab("Which one is real?"):
                _blind_test(demo, ballot)
        with gr.Tab("4 · Report") as report_page:
            report_run = build_report_tab(owner)
        with gr.Tab("5 · Export") as export_page:
            export_run = build_export_tab(owner)
        # The Data tab's saved examples become the Train tab's training data.
        data.dataset_path.change(
            owner_only(owner, denied=gr.update)(
                lambda path: gr.update(choices=[path], value=path) if path else gr.update()
            ),
            inputs=data.dataset_path,
            outputs=train.train_file,
            api_name=False,
        )
        attach_on_load(demo, train, owner)
        # Also on opening the tab: a run that finished after the page loaded must be listed there.
        for event in (demo.load, chat_page.select):
            event(chat.refresh, outputs=chat.refreshed, api_name=False)
        for event in (demo.load, report_page.select):
            event(owner_only(owner, denied=gr.update)(refresh_report_runs), outputs=report_run, api_name=False)
        for event in (demo.load, export_page.select):
            event(owner_only(owner, denied=gr.update)(refresh_export_runs), outputs=export_run, api_name=False)
    return demo


def build_chat_app(
    source: str,
    limits: ChatLimits | None = None,
    decoding=None,
    slots: AddressSlots | None = None,
    memory_policy: MemoryPolicy | None = None,
    ballot: BallotBox | None = None,
) -> gr.Blocks:
    """Only the chat, with the model fixed server-side: no data, training or export event exists,
    so none can be called through Gradio's API either."""
    with gr.Blocks(title="talklike chat") as demo:
        gr.Markdown(
            "# talklike\nA chatbot fine-tuned to text like its owner. Replies are generated, not real messages."
        )
        with gr.Tab("Chat") if ballot is not None else contextlib.nullcontext():
            build_chat_tab(
                fixed_source=source,
                limits=limits or ChatLimits(),
                decoding_defaults=decoding,
                slots=slots,
                memory_policy=memory_policy,
            )
        if ballot is not None:
            with gr.Tab("Which one is real?"):
                _blind_test(demo, ballot)
    return demo


def _blind_test(demo: gr.Blocks, ballot: BallotBox) -> None:
    from components.blind_test import build_blind_test_tab

    tab = build_blind_test_tab(ballot)
    demo.load(tab.show_next, inputs=tab.views[0], outputs=tab.views, api_name=False)


def api_models(chat_only: str | None, source: str | None, owner: Owner | None):
    """What the OpenAI endpoint offers ({id: source}, read on every request): exactly what a
    visitor of the page can chat with. The chat-only model under the name the owner gave it (a
    repo id, a run name); in owner mode the runs the owner published, by name; in a local studio
    every finished run by name. Never a path or a Hub id a client chooses."""
    from training.train.runs import list_runs, published_runs

    if chat_only:
        from training.chat.remote import model_id

        offered = {model_id(chat_only): source or chat_only}
        return lambda: offered
    if owner:
        return lambda: {name: str(path) for name, path in published_runs().items()}
    return lambda: {run["name"]: run["path"] for run in list_runs() if run["has_final"]}


def _auth(values: list[str]) -> list[tuple[str, str]]:
    pairs = []
    for value in values:
        user, sep, password = value.partition(":")
        if not sep or not user or not password:
            raise SystemExit("--auth: expected USER:PASS")
        pairs.append((user, password))
    return pairs


def _memory_policy(args: argparse.Namespace, source: str | None) -> MemoryPolicy:
    """Memory for visitors only when asked; on the chat-only page its index must exist before the page opens."""
    if args.show_memory and not args.memory:
        raise SystemExit("--show-memory: only with --memory")
    if args.memory and source:
        from training.chat.memory_prompt import open_chat_memory

        try:
            open_chat_memory(source)
        except UserError as error:
            raise SystemExit(f"--memory: {error}") from None
    return MemoryPolicy(for_visitors=args.memory, shown_to_visitors=args.show_memory)


def _ballot(args: argparse.Namespace) -> BallotBox | None:
    """The blind test's ballot box, when asked for: its items must be prepared, with the owner's consent."""
    if not args.blind_test:
        return None
    if args.blind_voters_per_address < 1:
        raise SystemExit("--blind-voters-per-address: expected a whole number >= 1")
    from training.train.run_record import read_run

    try:
        return BallotBox(read_run(args.blind_test).path, voters_per_address=args.blind_voters_per_address)
    except UserError as error:
        raise SystemExit(f"--blind-test: {error}") from None


def prepare(args: argparse.Namespace) -> tuple[gr.Blocks, dict]:
    """The page for the chosen mode and the launch settings that go with it (see docs/security.md)."""
    try:
        limits, decoding = ChatLimits.from_args(args), parse_decoding(args.decoding)
        source = None
        if args.chat_only:
            from training.chat.remote import local_copy

            # The model is fetched once at start (a Space's model repo), so every reply reads local files.
            source = local_copy(args.chat_only)
    except UserError as error:
        raise SystemExit(f"error: {error}") from None
    memory_policy = _memory_policy(args, source)
    ballot = _ballot(args)
    auth = _auth(args.auth)
    owner = owner_access(args.owner, [user for user, _ in auth]) if args.owner and not args.chat_only else None
    shared = bool(args.chat_only or owner)
    slots = AddressSlots(limits.per_address)  # one count per address over the page and /v1
    middleware = [Middleware(BodyLimit, max_bytes=VISITOR_REQUEST_BYTES if shared else STUDIO_REQUEST_BYTES)]
    middleware += [Middleware(LoginRateLimit)] if auth else []
    if args.chat_only:
        demo = build_chat_app(source, limits, decoding, slots, memory_policy, ballot)
        middleware.append(Middleware(UploadGate, allowed=lambda scope: False))  # nothing on the page takes a file
    else:
        demo = build_app(owner, limits, slots, memory_policy, ballot)
        if owner and owner.via == "oauth":
            middleware.append(Middleware(UploadGate, allowed=lambda scope: oauth_username(scope) == owner.name))
        elif not owner and not auth and os.environ.get("SPACE_ID"):
            print(
                "talklike: warning: this studio on a Space has no --owner or --auth: anyone who can open it can train, "
                "export and push with the Space's token",
                flush=True,
            )
    routes = []
    if args.api_key:
        from training.chat.openai_api import openai_router

        try:
            memory_for = None
            if memory_policy.for_visitors:  # what the page's visitors get, through /v1 too
                from components.memory_panel import visitor_memory

                memory_for = functools.partial(visitor_memory, memory_policy)
            routes = openai_router(
                api_models(args.chat_only, source, owner), args.api_key, limits, decoding, slots, memory_for
            ).routes
        except UserError as error:
            raise SystemExit(f"error: {error}") from None
    # Gradio counts an event as queued until it starts, so the line holds the running ones too.
    quiet_queue(
        demo.queue(default_concurrency_limit=4, max_size=limits.concurrency + limits.queue_size if shared else None)
    )
    options = dict(
        server_name=args.host,
        server_port=args.port,
        share=args.share,
        auth=auth or None,
        theme=THEME,
        # Gradio 6 would keep every event's inputs and outputs (private chat text, examples) in
        # the browser's localStorage and show them on /gradio_api/runs; nothing here needs it.
        run_history=False,
        max_file_size=MAX_FILE_BYTES,
        # The API routes sit in Gradio's own FastAPI app, behind the same middleware, outside its
        # login (they check their own key). SSR off: its Node proxy would stand in front of them.
        app_kwargs={"middleware": middleware, "routes": routes},
        ssr_mode=False,
    )
    return demo, options


def quiet_queue(demo: gr.Blocks) -> gr.Blocks:
    """Slow the queue's idle polling (see QUEUE_IDLE_POLL_S); tests/test_monitor.py notices if Gradio renames these."""
    demo._queue.sleep_when_free = QUEUE_IDLE_POLL_S
    demo._queue.progress_update_sleep_when_free = PROGRESS_IDLE_POLL_S
    return demo


def start(argv: list[str] | None = None, quiet: bool = True) -> tuple[gr.Blocks, str]:
    """Parse flags, build the page for the mode, launch without blocking; the page and its URL."""
    args = parse_args(argv)
    if args.data_dir:
        os.environ["TALKLIKE_DATA_DIR"] = args.data_dir
    demo, options = prepare(args)
    _, url, _ = demo.launch(**options, prevent_thread_lock=True, quiet=quiet)
    return demo, url


def main(argv: list[str] | None = None, block: bool = True) -> gr.Blocks:
    demo, _ = start(argv, quiet=not block)
    if block:
        # Everything imported and built so far lives as long as the server: moved out of the
        # collector's reach, a full collection (which the Train tab's polling triggers now and then)
        # no longer walks the ~345,000 objects of gradio, pandas and the app: 0.2 s of CPU each time.
        gc.freeze()
        demo.block_thread()
    return demo


if __name__ == "__main__":
    main()
