"""A protocol-faithful fake of the OpenAI API (and Azure OpenAI's deployment URLs).

Follows the API reference: Bearer auth (``api-key`` on Azure, which also
needs ``api-version``), chat completions with ``n``, tools and streaming
(``stream_options.include_usage`` adds a final chunk with empty ``choices``
and every other chunk carries ``"usage": null``), legacy completions,
embeddings, models, and errors in OpenAI's ``{"error": {...}}`` shape.
"""

from __future__ import annotations

import time
from typing import Any

import orjson
from aiohttp import web

from tests.fakes.harness import Recorded, Recorder, send_sse, sse

EXPECTED_KEY = "sk-test-upstream-key"
CHUNKING = web.AppKey("chunking", int | None)


def _error(
    status: int, message: str, type_: str, param: str | None = None, code: str | None = None
) -> web.Response:
    body = {"error": {"message": message, "type": type_, "param": param, "code": code}}
    return web.Response(status=status, body=orjson.dumps(body), content_type="application/json")


def _last_user_text(messages: list[dict[str, Any]]) -> str:
    for m in reversed(messages):
        if m.get("role") == "user":
            c = m.get("content")
            if isinstance(c, str):
                return c
            return "".join(p.get("text", "") for p in c or [] if p.get("type") == "text")
    return ""


def _usage(prompt: int, completion: int) -> dict[str, Any]:
    return {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
        "prompt_tokens_details": {"cached_tokens": 2, "audio_tokens": 0},
        "completion_tokens_details": {"reasoning_tokens": 1, "audio_tokens": 0},
    }


def _check_auth(request: web.Request, azure: bool) -> web.Response | None:
    if azure:
        if request.headers.get("api-key") != EXPECTED_KEY:
            return _error(
                401,
                "Access denied due to invalid subscription key.",
                "invalid_request_error",
                code="401",
            )
        if "api-version" not in request.query:
            return _error(404, "Resource not found", "invalid_request_error", code="404")
        return None
    auth = request.headers.get("Authorization", "")
    if auth != f"Bearer {EXPECTED_KEY}":
        return _error(
            401,
            "Incorrect API key provided: sk-abc***xyz.",
            "invalid_request_error",
            code="invalid_api_key",
        )
    return None


def _answer_text(body: dict[str, Any]) -> str:
    fmt = (body.get("response_format") or {}).get("type")
    if fmt in ("json_object", "json_schema"):
        return '{"answer": "ok"}'
    messages = body.get("messages") or []
    results = []
    for m in reversed(messages):
        if m.get("role") != "tool":
            break
        results.insert(0, str(m.get("content")))
    if results:
        return "Tool results: " + "; ".join(results)
    return "Hello from fake openai: " + _last_user_text(messages)


CITIES = ("Paris", "東京", "Zürich")


def _tool_calls(body: dict[str, Any], choice_index: int) -> list[dict[str, Any]]:
    """The calls the fake makes: the tools the last user text names (several in parallel
    unless ``parallel_tool_calls`` is false), else the first tool for "weather" or
    ``required``; the named tool when ``tool_choice`` names one; none after tool results."""
    tools = [t["function"]["name"] for t in body.get("tools") or []]
    choice = body.get("tool_choice")
    messages = body.get("messages") or []
    text = _last_user_text(messages)
    if not tools or choice == "none":
        return []
    if isinstance(choice, dict):
        names = [str(choice["function"]["name"])]
    elif messages[-1].get("role") == "tool" and choice != "required":
        return []
    else:
        names = [t for t in tools if t in text]
        if not names and (choice == "required" or "weather" in text):
            names = tools[:1]
    if body.get("parallel_tool_calls") is False:
        names = names[:1]
    return [
        {
            "id": f"call_{choice_index}abc" + (str(k) if k else ""),
            "type": "function",
            "function": {
                "name": name,
                "arguments": f'{{"city": "{CITIES[k % 3]}", "unit": "°C"}}',
            },
        }
        for k, name in enumerate(names)
    ]


def _unanswered(messages: list[dict[str, Any]]) -> str | None:
    """OpenAI's check that each assistant tool call is answered by the tool messages after it."""
    for i, m in enumerate(messages):
        ids = {c.get("id") for c in m.get("tool_calls") or []}
        answered = set()
        for later in messages[i + 1 :]:
            if later.get("role") != "tool":
                break
            answered.add(later.get("tool_call_id"))
        if ids - answered:
            return (
                "An assistant message with 'tool_calls' must be followed by tool messages "
                "responding to each 'tool_call_id'. The following tool_call_ids did not have "
                f"response messages: {', '.join(sorted(map(str, ids - answered)))}"
            )
    return None


async def _chat(
    request: web.Request, rec: Recorded, recorder: Recorder, azure: bool
) -> web.StreamResponse:
    denied = _check_auth(request, azure)
    if denied:
        return denied
    body = rec.json
    if not isinstance(body, dict):
        return _error(
            400, "We could not parse the JSON body of your request.", "invalid_request_error"
        )
    model = request.match_info.get("deployment") or body.get("model")
    if not model:
        return _error(400, "you must provide a model parameter", "invalid_request_error", "model")
    if not body.get("messages"):
        return _error(400, "'messages' is a required property", "invalid_request_error", "messages")
    unanswered = _unanswered(body["messages"])
    if unanswered:
        return _error(400, unanswered, "invalid_request_error", "messages")
    n = int(body.get("n") or 1)
    calls = [_tool_calls(body, i) for i in range(n)]
    text = _answer_text(body)
    created = int(time.time())
    if body.get("stream"):
        return await _chat_stream(request, body, str(model), calls, text, created)
    choices = []
    for i, tool_calls in enumerate(calls):
        message: dict[str, Any] = {
            "role": "assistant",
            "content": None if tool_calls else text,
            "refusal": None,
            "annotations": [],
        }
        if tool_calls:
            message["tool_calls"] = tool_calls
        choices.append(
            {
                "index": i,
                "message": message,
                "logprobs": None,
                "finish_reason": "tool_calls" if tool_calls else "stop",
            }
        )
    return web.json_response(
        {
            "id": "chatcmpl-fake123",
            "object": "chat.completion",
            "created": created,
            "model": model,
            "choices": choices,
            "usage": _usage(11, 7 * n),
            "service_tier": "default",
            "system_fingerprint": "fp_fake",
        }
    )


async def _chat_stream(
    request: web.Request,
    body: dict[str, Any],
    model: str,
    calls: list[list[dict[str, Any]]],
    text: str,
    created: int,
) -> web.StreamResponse:
    include_usage = bool((body.get("stream_options") or {}).get("include_usage"))
    base = {
        "id": "chatcmpl-fake123",
        "object": "chat.completion.chunk",
        "created": created,
        "model": model,
        "system_fingerprint": "fp_fake",
    }
    if include_usage:
        base["usage"] = None
    events: list[bytes] = []
    for i in range(len(calls)):
        events.append(
            sse(
                {
                    **base,
                    "choices": [
                        {
                            "index": i,
                            "delta": {"role": "assistant", "content": "", "refusal": None},
                            "logprobs": None,
                            "finish_reason": None,
                        }
                    ],
                }
            )
        )
        for k, call in enumerate(calls[i]):
            fn = call["function"]
            head = {"index": k, "id": call["id"], "type": "function"}
            events.append(
                _delta(base, i, {"tool_calls": [{**head, "function": {**fn, "arguments": ""}}]})
            )
            args = fn["arguments"]
            for j in range(0, len(args), 4):  # cut mid-key and mid-value, as OpenAI does
                fragment = {"index": k, "function": {"arguments": args[j : j + 4]}}
                events.append(_delta(base, i, {"tool_calls": [fragment]}))
        if not calls[i]:
            for j, word in enumerate(text.split(" ")):
                piece = word if j == 0 else " " + word
                events.append(
                    sse(
                        {
                            **base,
                            "choices": [
                                {
                                    "index": i,
                                    "delta": {"content": piece},
                                    "logprobs": None,
                                    "finish_reason": None,
                                }
                            ],
                        }
                    )
                )
        events.append(
            sse(
                {
                    **base,
                    "choices": [
                        {
                            "index": i,
                            "delta": {},
                            "logprobs": None,
                            "finish_reason": "tool_calls" if calls[i] else "stop",
                        }
                    ],
                }
            )
        )
    if include_usage:
        events.append(sse({**base, "choices": [], "usage": _usage(11, 7 * len(calls))}))
    events.append(b"data: [DONE]\n\n")
    chunking = int(request.headers.get("x-fake-chunking", "0")) or request.app[CHUNKING]
    return await send_sse(request, events, chunking=chunking)


def _delta(base: dict[str, Any], index: int, delta: dict[str, Any]) -> bytes:
    choice = {"index": index, "delta": delta, "logprobs": None, "finish_reason": None}
    return sse({**base, "choices": [choice]})


async def _completions(
    request: web.Request, rec: Recorded, recorder: Recorder
) -> web.StreamResponse:
    denied = _check_auth(request, False)
    if denied:
        return denied
    body = rec.json
    prompt = body.get("prompt")
    if prompt is None:
        return _error(400, "'prompt' is a required property", "invalid_request_error", "prompt")
    text = " continued by fake openai"
    created = int(time.time())
    if body.get("stream"):
        base = {
            "id": "cmpl-fake",
            "object": "text_completion",
            "created": created,
            "model": body["model"],
        }
        events = [
            sse(
                {
                    **base,
                    "choices": [{"index": 0, "text": w, "logprobs": None, "finish_reason": None}],
                }
            )
            for w in text.split(" ")
            if w
        ]
        events.append(
            sse(
                {
                    **base,
                    "choices": [
                        {"index": 0, "text": "", "logprobs": None, "finish_reason": "length"}
                    ],
                }
            )
        )
        if (body.get("stream_options") or {}).get("include_usage"):
            events.append(sse({**base, "choices": [], "usage": _usage(3, 4)}))
        events.append(b"data: [DONE]\n\n")
        return await send_sse(request, events)
    return web.json_response(
        {
            "id": "cmpl-fake",
            "object": "text_completion",
            "created": created,
            "model": body["model"],
            "choices": [{"index": 0, "text": text, "logprobs": None, "finish_reason": "length"}],
            "usage": _usage(3, 4),
        }
    )


async def _embeddings(
    request: web.Request, rec: Recorded, recorder: Recorder
) -> web.StreamResponse:
    denied = _check_auth(request, False)
    if denied:
        return denied
    body = rec.json
    inputs = body.get("input")
    items = [inputs] if isinstance(inputs, str) else list(inputs or [])
    dims = int(body.get("dimensions") or 4)
    data = [
        {
            "object": "embedding",
            "index": i,
            "embedding": [float(len(t) % 7 + k) / 10 for k in range(dims)],
        }
        for i, t in enumerate(items)
    ]
    return web.json_response(
        {
            "object": "list",
            "data": data,
            "model": body["model"],
            "usage": {"prompt_tokens": 5, "total_tokens": 5},
        }
    )


def create_fake_openai(recorder: Recorder, *, chunking: int | None = None) -> web.Application:
    """The fake as an aiohttp app; ``chunking`` splits streamed bytes into pieces of that
    size (an ``x-fake-chunking`` request header overrides it)."""

    async def dispatch(request: web.Request) -> web.StreamResponse:
        rec = await recorder.record(request)
        scripted = recorder.next_scripted()
        if scripted is not None:
            return await scripted(request, rec)
        path = request.path
        if path.endswith("/chat/completions"):
            return await _chat(
                request, rec, recorder, azure=path.startswith("/openai/deployments/")
            )
        if path.endswith("/completions"):
            return await _completions(request, rec, recorder)
        if path.endswith("/embeddings"):
            return await _embeddings(request, rec, recorder)
        return _error(404, f"Unknown path {path}", "invalid_request_error")

    async def models(request: web.Request) -> web.Response:
        return web.json_response({"object": "list", "data": []})

    app = web.Application()
    app[CHUNKING] = chunking
    app.router.add_post("/v1/chat/completions", dispatch)
    app.router.add_post("/v1/completions", dispatch)
    app.router.add_post("/v1/embeddings", dispatch)
    app.router.add_post("/openai/deployments/{deployment}/chat/completions", dispatch)
    app.router.add_get("/v1/models", models)
    return app
