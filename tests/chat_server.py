"""A real HTTP server speaking OpenAI's chat-completions JSON, for the Q&A generator's tests.

It answers `GET /v1/models` and `POST /v1/chat/completions` with the reply whose key occurs in the
prompt (the document's title), as llama.cpp's or Ollama's server would answer with a model's text,
and keeps every request body so a test can check what the generator sent.
"""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

MODEL = "test-writer"


class ChatServer:
    def __init__(self, replies: dict[str, str], key: str | None = None):
        self.replies, self.key, self.requests = replies, key, []
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):  # quiet test output
                pass

            def do_GET(self):
                if self.path != "/v1/models":
                    return self._send(404, {"error": {"message": "not found"}})
                return self._send(200, {"object": "list", "data": [{"id": MODEL, "object": "model"}]})

            def do_POST(self):
                if server.key and self.headers.get("Authorization") != f"Bearer {server.key}":
                    return self._send(401, {"error": {"message": "bad key"}})
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                server.requests.append(body)
                prompt = body["messages"][-1]["content"]
                reply = next((text for key, text in server.replies.items() if key in prompt), "")
                if reply == "<not json>":
                    return self._send_raw(200, b"<html>gateway hiccup</html>")
                return self._send(
                    200,
                    {
                        "object": "chat.completion",
                        "model": body["model"],
                        "choices": [
                            {"index": 0, "finish_reason": "stop", "message": {"role": "assistant", "content": reply}}
                        ],
                    },
                )

            def _send(self, status: int, payload: dict):
                self._send_raw(status, json.dumps(payload).encode())

            def _send_raw(self, status: int, data: bytes):
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def __enter__(self) -> ChatServer:
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
