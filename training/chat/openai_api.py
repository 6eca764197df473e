"""An OpenAI-compatible endpoint for the persona bot: `/v1/models` and `/v1/chat/completions`.

So existing clients and chat bridges (Telegram, Discord, Slack relays that speak the OpenAI API)
can text the bot without talklike writing a bot framework. The routes are plain FastAPI routes
that app.py puts on Gradio's own server; they answer only a bearer key (`--api-key`), and every
request goes through the same ChatLimits as the chat page, and counts against the same per-address
bound (AddressSlots shared with the page). Responses follow OpenAI's shapes,
streaming as server-sent events (`data: {chunk}` ... `data: [DONE]`) as the `openai` client reads them.

The persona's system prompt is the bot's: system (and developer) messages from a client are
ignored, so a bridge's generic "You are a helpful assistant" cannot replace who the bot is.
"""

from __future__ import annotations

import dataclasses
import hmac
import json
import queue
import threading
import time
import uuid
from collections.abc import Callable
from typing import Any

import anyio
from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, StreamingResponse
from starlette.concurrency import run_in_threadpool

from training.chat import generate
from training.chat.decoding import DecodingSettings
from training.chat.serving import (
    AddressSlots,
    Admission,
    ChatLimits,
    FailedAttempts,
    network_address,
)
from training.errors import UserError

_END = object()
MAX_STOP_STRINGS = 4  # as OpenAI


class ApiError(Exception):
    """An OpenAI-shaped error: {"error": {"message", "type", "param", "code"}} with an HTTP status."""

    def __init__(self, status: int, message: str, code: str | None = None, param: str | None = None):
        super().__init__(message)
        self.status, self.message, self.code, self.param = status, message, code, param

    def response(self) -> JSONResponse:
        kind = {401: "authentication_error", 404: "invalid_request_error", 429: "rate_limit_error"}.get(
            self.status, "invalid_request_error" if self.status < 500 else "server_error"
        )
        headers = {"Retry-After": "2"} if self.status == 429 else None
        body = {"error": {"message": self.message, "type": kind, "param": self.param, "code": self.code}}
        return JSONResponse(body, status_code=self.status, headers=headers)


@dataclasses.dataclass
class _Request:
    model_id: str
    source: str
    history: list[dict[str, str]]
    message: str
    settings: DecodingSettings
    stream: bool
    include_usage: bool
    stop: list[str]
    memory: Any = None  # memory_prompt.ChatMemory: past exchanges recalled into the prompt, when the owner enabled it


def openai_router(  # long: three routes sharing one key check, limits and models
    models: Callable[[], dict[str, str]],
    api_key: str,
    limits: ChatLimits,
    defaults: DecodingSettings,
    slots: AddressSlots | None = None,
    memory_for: Callable[[str], Any] | None = None,
) -> APIRouter:
    """The routes, answering `models()` ({model id: run folder, model folder or Hub id}) to holders of `api_key`.

    `slots`: the per-address count of replies in progress, shared with the chat page when given.
    `memory_for(source)`: the memory a reply from that source uses (None: none), as the chat page's visitors get."""
    if not api_key.strip():
        raise UserError("api key: empty; set --api-key or TALKLIKE_API_KEY to a long random string")
    router = APIRouter()
    admission, failures = Admission(limits), FailedAttempts()
    slots = slots or AddressSlots(limits.per_address)
    # UTF-8 and JSON overhead on the longest message plus the history read (clients may send more
    # history than is read; app.py's BodyLimit bounds every request anyway).
    body_limit = 64_000 + 4 * limits.message_chars * (limits.history_messages + 1)

    def authorize(request: Request) -> str:
        """The caller's network address, once its key is right."""
        client = network_address(request.headers, request.client.host if request.client else None)
        if failures.blocked(client):
            raise ApiError(429, "too many failed attempts with a wrong API key; wait a minute", "rate_limit_exceeded")
        given = request.headers.get("authorization", "")
        scheme, _, key = given.partition(" ")
        if scheme.lower() != "bearer" or not hmac.compare_digest(key.strip().encode(), api_key.encode()):
            failures.failed(client)
            raise ApiError(401, "wrong or missing API key (send Authorization: Bearer KEY)", "invalid_api_key")
        return client

    @router.get("/v1/models")
    def list_models(request: Request):
        try:
            authorize(request)
        except ApiError as error:
            return error.response()
        return {"object": "list", "data": [_model_card(model_id) for model_id in models()]}

    @router.get("/v1/models/{model_id:path}")
    def get_model(model_id: str, request: Request):
        try:
            authorize(request)
            if model_id not in models():
                raise ApiError(
                    404,
                    f"model {model_id!r} does not exist here; GET /v1/models lists them",
                    "model_not_found",
                    "model",
                )
        except ApiError as error:
            return error.response()
        return _model_card(model_id)

    @router.post("/v1/chat/completions")
    async def chat_completions(request: Request):
        try:
            address = authorize(request)
            if not slots.try_enter(address):
                raise ApiError(429, "one message at a time from one address: wait for the reply", "busy")
            if not admission.try_enter():
                slots.leave(address)
                raise ApiError(429, "the bot is busy with other messages; try again in a few seconds", "busy")
        except ApiError as error:
            return error.response()

        def leave() -> None:
            admission.leave()
            slots.leave(address)

        entered = True
        try:
            body = await _read_json(request, body_limit)
            call = _parse(body, models(), limits, defaults)
            model = await run_in_threadpool(generate.load_chat_model, call.source)
            if memory_for is not None:
                call = dataclasses.replace(call, memory=await run_in_threadpool(memory_for, call.source))
            await run_in_threadpool(_check_prompt_fits, model, call)  # a 400 now, not an error mid-stream
            if call.stream:
                entered = False  # the stream releases its slot when it ends
                return StreamingResponse(
                    _events(model, call, leave),
                    media_type="text/event-stream",
                    headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
                )
            return await run_in_threadpool(_complete, model, call)
        except ApiError as error:
            return error.response()
        except UserError as error:
            return ApiError(400, str(error)).response()
        finally:
            if entered:
                leave()

    return router


def _model_card(model_id: str) -> dict[str, Any]:
    return {"id": model_id, "object": "model", "created": 0, "owned_by": "talklike"}


async def _read_json(request: Request, limit: int) -> dict[str, Any]:
    """The request body as a JSON object, refusing bodies over `limit` bytes before reading them whole."""
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > limit:
        raise ApiError(413, f"request body over {limit} bytes; send shorter messages or less history", "too_large")
    data = bytearray()
    async for chunk in request.stream():
        data.extend(chunk)
        if len(data) > limit:
            raise ApiError(413, f"request body over {limit} bytes; send shorter messages or less history", "too_large")
    try:
        body = json.loads(data)
    except (ValueError, RecursionError):
        raise ApiError(400, "request body: not valid JSON") from None
    if not isinstance(body, dict):
        raise ApiError(400, "request body: expected a JSON object")
    return body


def _parse(body: dict[str, Any], models: dict[str, str], limits: ChatLimits, defaults) -> _Request:
    model_id = body.get("model")
    if not isinstance(model_id, str) or model_id not in models:
        raise ApiError(
            404, f"model {model_id!r} does not exist here; GET /v1/models lists them", "model_not_found", "model"
        )
    if body.get("n", 1) not in (1, None):
        raise ApiError(400, "n: only one choice per request", param="n")
    turns = _messages(body.get("messages"))
    if not turns or turns[-1]["role"] != "user":
        raise ApiError(400, "messages: the last message must be from the user", param="messages")
    *history, last = turns
    try:
        limits.check_message(last["content"])
    except UserError as error:
        raise ApiError(400, str(error), param="messages") from None
    history = limits.trim_history(history)
    stop = body.get("stop") or []
    stop = [stop] if isinstance(stop, str) else stop
    if not isinstance(stop, list) or len(stop) > MAX_STOP_STRINGS or not all(isinstance(s, str) and s for s in stop):
        raise ApiError(400, f"stop: a string or up to {MAX_STOP_STRINGS} non-empty strings", param="stop")
    options = body.get("stream_options") or {}
    return _Request(
        model_id,
        models[model_id],
        history,
        last["content"],
        _settings(body, limits, defaults),
        stream=body.get("stream") is True,
        include_usage=isinstance(options, dict) and options.get("include_usage") is True,
        stop=stop,
    )


def _messages(messages: Any) -> list[dict[str, str]]:
    """user/assistant turns as text; system/developer messages dropped (the persona's prompt rules)."""
    if not isinstance(messages, list) or not messages:
        raise ApiError(400, "messages: expected a non-empty list of {role, content}", param="messages")
    turns = []
    for index, message in enumerate(messages):
        role = message.get("role") if isinstance(message, dict) else None
        if role in ("system", "developer"):
            continue
        if role not in ("user", "assistant"):
            raise ApiError(
                400, f"messages[{index}].role: {role!r}; expected system, user or assistant", param="messages"
            )
        turns.append({"role": role, "content": _text(message.get("content"), index)})
    return turns


def _text(content: Any, index: int) -> str:
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if isinstance(content, list) and all(
        isinstance(p, dict) and p.get("type") == "text" and isinstance(p.get("text"), str) for p in content
    ):
        return "".join(part["text"] for part in content)
    raise ApiError(
        400,
        f"messages[{index}].content: expected text (a string or text parts); this bot reads only text",
        param="messages",
    )


def _settings(body: dict[str, Any], limits: ChatLimits, defaults) -> DecodingSettings:
    """The bot's decoding defaults, with what the request asks for (temperature 0 = greedy), capped."""
    settings = dataclasses.replace(defaults)
    temperature = body.get("temperature")
    if temperature is not None:
        if isinstance(temperature, bool) or not isinstance(temperature, (int, float)):
            raise ApiError(400, f"temperature: {temperature!r}; expected a number", param="temperature")
        settings.do_sample = temperature > 0
        settings.temperature = temperature if temperature > 0 else settings.temperature
    for name, target in (("top_p", "top_p"), ("seed", "seed")):
        if body.get(name) is not None:
            setattr(settings, target, body[name])
    wanted = body.get("max_completion_tokens", body.get("max_tokens"))
    if wanted is not None:
        if isinstance(wanted, bool) or not isinstance(wanted, int) or wanted < 1:
            raise ApiError(400, f"max_tokens: {wanted!r}; expected a whole number >= 1", param="max_tokens")
        settings.max_new_tokens = wanted
    else:
        settings.max_new_tokens = limits.max_new_tokens
    try:
        return limits.cap(settings.validate())
    except UserError as error:
        raise ApiError(400, str(error)) from None


def _complete(model, call: _Request) -> dict[str, Any]:
    text, stopped, counts = "", False, {}
    for text in generate.stream_reply(
        model, call.history, call.message, call.settings, usage=counts, memory=call.memory
    ):
        text, stopped = _cut(text, call.stop)
        if stopped:
            break
    usage = _usage(counts)
    return {
        "id": f"chatcmpl-{uuid.uuid4().hex}",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": call.model_id,
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": text},
                "logprobs": None,
                "finish_reason": _finish_reason(usage, call, stopped),
            }
        ],
        "usage": usage,
    }


async def _events(model, call: _Request, leave: Callable[[], None]):
    """Server-sent events: a role chunk, one chunk per new piece of text, the finish, usage, [DONE].

    A thread runs the generator and hands texts over a queue, so a client that hangs up is noticed
    at once (the wait on the queue is abandoned) and generation stops at the next token.
    """
    cancel, texts, counts = threading.Event(), queue.SimpleQueue(), {}
    producer = threading.Thread(
        target=_produce, args=(model, call, cancel, texts, counts), name="talklike-api-reply", daemon=True
    )
    chunk_id, created = f"chatcmpl-{uuid.uuid4().hex}", int(time.time())

    def event(delta: dict | None, finish: str | None = None, usage: dict | None = None) -> str:
        choices = [] if delta is None else [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}]
        chunk = {
            "id": chunk_id,
            "object": "chat.completion.chunk",
            "created": created,
            "model": call.model_id,
            "choices": choices,
            **({"usage": usage} if usage is not None else {}),
        }
        return f"data: {json.dumps(chunk, ensure_ascii=False)}\n\n"

    sent, stopped = "", False
    try:
        producer.start()
        yield event({"role": "assistant", "content": ""})
        while not stopped:
            text = await anyio.to_thread.run_sync(texts.get, abandon_on_cancel=True)
            if text is _END:
                break
            if isinstance(text, BaseException):
                raise text
            text, stopped = _cut(text, call.stop)
            if text.startswith(sent) and len(text) > len(sent):  # the shown reply only grows
                yield event({"content": text[len(sent) :]})
                sent = text
        usage = _usage(counts)
        yield event({}, _finish_reason(usage, call, stopped))
        if call.include_usage:
            yield event(None, usage=usage)
        yield "data: [DONE]\n\n"
    except UserError as error:
        yield f"data: {json.dumps({'error': {'message': str(error), 'type': 'invalid_request_error'}})}\n\n"
    finally:  # also when the client hangs up: stop generating, wait for it to end, free the slot
        cancel.set()
        if producer.is_alive():
            with anyio.CancelScope(shield=True):
                await anyio.to_thread.run_sync(producer.join)
        leave()


def _produce(model, call: _Request, cancel: threading.Event, texts: queue.SimpleQueue, counts: dict) -> None:
    try:
        for text in generate.stream_reply(
            model, call.history, call.message, call.settings, cancel=cancel, usage=counts, memory=call.memory
        ):
            texts.put(text)
    except BaseException as error:  # noqa: BLE001 - handed to the event stream, which reports it
        texts.put(error)
    finally:
        texts.put(_END)


def _cut(text: str, stops: list[str]) -> tuple[str, bool]:
    """`text` up to the first of the client's stop strings, and whether one was found."""
    found = [text.index(stop) for stop in stops if stop in text]
    return (text[: min(found)].rstrip(), True) if found else (text, False)


def _check_prompt_fits(model, call: _Request) -> None:
    generate.build_prompt(model, call.history, call.message, call.settings.max_new_tokens, call.memory)


def _usage(counts: dict[str, int]) -> dict[str, int]:
    prompt, completion = counts.get("prompt_tokens", 0), counts.get("completion_tokens", 0)
    return {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion}


def _finish_reason(usage: dict[str, int], call: _Request, stopped: bool) -> str:
    """ "length" when the reply ran into max_tokens, "stop" when it ended its turn (or met a stop string)."""
    return "length" if not stopped and usage["completion_tokens"] >= call.settings.max_new_tokens else "stop"
