"""Running the app in-process and calling its events the way the browser does, by widget label."""

from __future__ import annotations

import socket

from gradio_client import Client


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def launch(demo):
    demo.queue()
    _, url, _ = demo.launch(prevent_thread_lock=True, server_port=free_port(), quiet=True)
    return url


def call(client: Client, api_name: str, **by_label):
    """Call an event with arguments named by the labels a user sees; the rest keep their defaults."""
    endpoint = client.view_api(return_format="dict", print_info=False)["named_endpoints"][api_name]
    labels = [p["label"] for p in endpoint["parameters"]]
    unknown = set(by_label) - set(labels)
    assert not unknown, f"{api_name} has no inputs labelled {unknown}; it has {labels}"
    args = [by_label.get(p["label"], p["parameter_default"]) for p in endpoint["parameters"]]
    return client.predict(*args, api_name=api_name)
