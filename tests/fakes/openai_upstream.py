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
    return "Hello from fake openai: " + _last_user_text(body.get("messages") or [])


def _wants_tool(body: dict[str, Any]) -> str | None:
    tools = body.get("tools") or []
    if not tools or body.get("tool_choice") == "none":
        return None
    choice = body.get("tool_choice")
    if isinstance(choice, dict):
        return str(choice["function"]["name"])
    if choice == "required" or "weather" in _last_user_text(body.get("messages") or []):
        return str(tools[0]["function"]["name"])
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
    n = int(body.get("n") or 1)
    tool = _wants_tool(body)
    text = _answer_text(body)
    created = int(time.time())
    if body.get("stream"):
        return await _chat_stream(request, body, str(model), n, tool, text, created)
    choices = []
    for i in range(n):
        message: dict[str, Any] = {
            "role": "assistant",
            "content": None if tool else text,
            "refusal": None,
            "annotations": [],
        }
        if tool:
            message["tool_calls"] = [
                {
                    "id": f"call_{i}abc",
                    "type": "function",
                    "function": {"name": tool, "arguments": '{"city": "Paris", "unit": "°C"}'},
                }
            ]
        choices.append(
            {
                "index": i,
                "message": message,
                "logprobs": None,
                "finish_reason": "tool_calls" if tool else "stop",
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
    n: int,
    tool: str | None,
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
    for i in range(n):
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
        if tool:
            args = '{"city": "Paris", "unit": "°C"}'
            events.append(
                sse(
                    {
                        **base,
                        "choices": [
                            {
                                "index": i,
                                "delta": {
                                    "tool_calls": [
                                        {
                                            "index": 0,
                                            "id": f"call_{i}abc",
                                            "type": "function",
                                            "function": {"name": tool, "arguments": ""},
                                        }
                                    ]
                                },
                                "logprobs": None,
                                "finish_reason": None,
                            }
                        ],
                    }
                )
            )
            for j in range(0, len(args), 4):
                events.append(
                    sse(
                        {
                            **base,
                            "choices": [
                                {
                                    "index": i,
                                    "delta": {
                                        "tool_calls": [
                                            {"index": 0, "function": {"arguments": args[j : j + 4]}}
                                        ]
                                    },
                                    "logprobs": None,
                                    "finish_reason": None,
                                }
                            ],
                        }
                    )
                )
        else:
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
                            "finish_reason": "tool_calls" if tool else "stop",
                        }
                    ],
                }
            )
        )
    if include_usage:
        events.append(sse({**base, "choices": [], "usage": _usage(11, 7 * n)}))
    events.append(b"data: [DONE]\n\n")
    chunking = int(request.headers.get("x-fake-chunking", "0")) or None
    return await send_sse(request, events, chunking=chunking)


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


def create_fake_openai(recorder: Recorder) -> web.Application:
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
    app.router.add_post("/v1/chat/completions", dispatch)
    app.router.add_post("/v1/completions", dispatch)
    app.router.add_post("/v1/embeddings", dispatch)
    app.router.add_post("/openai/deployments/{deployment}/chat/completions", dispatch)
    app.router.add_get("/v1/models", models)
    return app
