"""A visitor of the app as the server sees one: raw HTTP from a chosen loopback address.

gradio_client cannot choose the address it connects from, and per-visitor limits are keyed on
that address; every 127.x.y.z address reaches a server listening on 127.0.0.1 (Linux routes the
whole 127/8 block to loopback), so each Visitor can be a different person on one machine. Events
are called the way the browser calls them, through Gradio's queue, by api_name or by index (the
page's unnamed events too), with the page's own default inputs for whatever is not given.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from pathlib import Path

import httpx


@dataclass
class Reply:
    success: bool
    data: list | None  # the outputs, when successful
    error: str  # the message shown to the visitor otherwise
    raw: str  # every byte of the event stream, to search for what must not be there


class Visitor:
    def __init__(self, url: str, address: str = "127.0.0.1", session_hash: str | None = None, timeout: float = 120):
        self.url = url.rstrip("/")
        self.address = address
        self.session_hash = session_hash or uuid.uuid4().hex[:11]
        self.http = httpx.Client(transport=httpx.HTTPTransport(local_address=address), timeout=timeout)
        self._config: dict | None = None

    def close(self) -> None:
        self.http.close()

    def get(self, path: str) -> httpx.Response:
        return self.http.get(f"{self.url}{path}")

    def config(self) -> dict:
        if self._config is None:
            response = self.get("/config")
            response.raise_for_status()
            self._config = response.json()
        return self._config

    def upload(self, path) -> dict:
        """Send a file the way a file widget does; the FileData an event takes as input."""
        with open(path, "rb") as handle:
            response = self.http.post(f"{self.url}/gradio_api/upload", files={"files": (Path(path).name, handle)})
        response.raise_for_status()
        return {"path": response.json()[0], "orig_name": Path(path).name, "meta": {"_type": "gradio.FileData"}}

    def dependency(self, api_name: str) -> tuple[int, dict]:
        for index, dependency in enumerate(self.config()["dependencies"]):
            if dependency.get("api_name") == api_name.lstrip("/"):
                return dependency.get("id", index), dependency
        raise KeyError(f"no event named {api_name}")

    def defaults(self, dependency: dict) -> list:
        """The values the page's own widgets hold for this event's inputs."""
        components = {component["id"]: component for component in self.config()["components"]}
        return [components[input_id].get("props", {}).get("value") for input_id in dependency["inputs"]]

    def labels(self, dependency: dict) -> list[str | None]:
        components = {component["id"]: component for component in self.config()["components"]}
        return [components[input_id].get("props", {}).get("label") for input_id in dependency["inputs"]]

    def call(self, api_name: str, by_label: dict | None = None, data: list | None = None) -> Reply:
        """Run an event by name; inputs by widget label, the rest as the page has them."""
        fn_index, dependency = self.dependency(api_name)
        values = data if data is not None else self.defaults(dependency)
        if by_label:
            labels = self.labels(dependency)
            unknown = set(by_label) - set(labels)
            assert not unknown, f"{api_name} has no inputs labelled {unknown}; it has {labels}"
            values = [by_label.get(label, value) for label, value in zip(labels, values)]
        return self.run(fn_index, values, dependency.get("targets", [[None]])[0][0])

    def run(self, fn_index: int, data: list, trigger_id: int | None = None) -> Reply:
        joined = self.http.post(
            f"{self.url}/gradio_api/queue/join",
            json={
                "data": data,
                "fn_index": fn_index,
                "trigger_id": trigger_id,
                "session_hash": self.session_hash,
                "event_data": None,
            },
        )
        if joined.status_code != 200:
            return Reply(False, None, _detail(joined), joined.text)
        event_id = joined.json()["event_id"]
        raw = []
        with self.http.stream(
            "GET", f"{self.url}/gradio_api/queue/data", params={"session_hash": self.session_hash}
        ) as stream:
            for line in stream.iter_lines():
                raw.append(line)
                if not line.startswith("data:"):
                    continue
                message = json.loads(line[5:])
                if message.get("event_id") != event_id or message.get("msg") != "process_completed":
                    continue
                output = message.get("output") or {}
                text = "\n".join(raw)
                if message.get("success"):
                    return Reply(True, output.get("data"), "", text)
                return Reply(False, None, str(output.get("error") or "Error"), text)
        return Reply(False, None, "the event stream ended without a result", "\n".join(raw))


def _detail(response: httpx.Response) -> str:
    try:
        return str(response.json().get("detail"))
    except ValueError:
        return response.text
