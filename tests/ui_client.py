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
    return client.predict(*arguments(client, api_name, **by_label), api_name=api_name)


def submit(client: Client, api_name: str, **by_label):
    """Like call, without waiting: the job, to read its result later or see it cancelled."""
    return client.submit(*arguments(client, api_name, **by_label), api_name=api_name)


def arguments(client: Client, api_name: str, **by_label) -> list:
    endpoints = client.view_api(all_endpoints=True, return_format="dict", print_info=False)["named_endpoints"]
    labels = [p["label"] for p in endpoints[api_name]["parameters"]]
    unknown = set(by_label) - set(labels)
    assert not unknown, f"{api_name} has no inputs labelled {unknown}; it has {labels}"
    return [by_label.get(p["label"], p["parameter_default"]) for p in endpoints[api_name]["parameters"]]
