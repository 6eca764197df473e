"""Running the app in-process and calling its events the way the browser does, by widget label."""

from __future__ import annotations

import contextlib
import socket
from collections.abc import Iterator

import httpx
from gradio_client import Client


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def launch(demo, attempts: int = 3):
    demo.queue()
    for attempt in range(1, attempts + 1):
        try:
            _, url, _ = demo.launch(prevent_thread_lock=True, server_port=free_port(), quiet=True)
            return url
        except ValueError as error:
            # Gradio's start-up check gives the first page 3 s; on a busy 2-core runner building the
            # studio's page can take longer, and Gradio then says "localhost is not accessible".
            if "localhost is not accessible" not in str(error) or attempt == attempts:
                raise
            demo.close()


def call(client: Client, api_name: str, **by_label):
    """Call an event with arguments named by the labels a user sees; the rest keep their defaults."""
    return client.predict(*arguments(client, api_name, **by_label), api_name=api_name)


def submit(client: Client, api_name: str, **by_label):
    """Like call, without waiting: the job, to read its result later or see it cancelled."""
    return client.submit(*arguments(client, api_name, **by_label), api_name=api_name)


def arguments(client: Client, api_name: str, **by_label) -> list:
    # Asked of the server itself: gradio_client's view_api leaves out "undocumented" endpoints
    # (the push, which is kept out of the browser's run history), though they can be called.
    info = httpx.get(f"{client.src.rstrip('/')}/gradio_api/info", params={"all_endpoints": "true"})
    endpoints = info.raise_for_status().json()["named_endpoints"]
    labels = [p["label"] for p in endpoints[api_name]["parameters"]]
    unknown = set(by_label) - set(labels)
    assert not unknown, f"{api_name} has no inputs labelled {unknown}; it has {labels}"
    return [by_label.get(p["label"], p["parameter_default"]) for p in endpoints[api_name]["parameters"]]


@contextlib.contextmanager
def served(*argv: str, data_dir) -> Iterator[str]:
    """`python app.py ARGS` in this process (its flags, limits and launch settings), at a free port."""
    import app

    demo = app.main([*map(str, argv), "--port", str(free_port()), "--data-dir", str(data_dir)], block=False)
    try:
        yield demo.local_url.rstrip("/")
    finally:
        demo.close()
