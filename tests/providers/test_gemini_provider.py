"""GeminiProvider against a loopback fake of the Gemini API, checking what went over the wire."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from typing import Any

import orjson
import pytest
from aiohttp import web

from modelyard.errors import (
    InvalidRequestError,
    MissingCredentialError,
    PermissionDeniedError,
    RateLimitedError,
    UpstreamUnavailableError,
)
from modelyard.providers.gemini import GeminiProvider
from modelyard.providers.transport import Transport
from modelyard.settings import Deployment
from modelyard.types import ChatChunk, ChatRequest, EmbeddingRequest
from tests.fakes.gemini_upstream import create_fake_gemini, google_error_handler, vector
from tests.fakes.harness import LoopbackServer, Recorded, Recorder, error_response, send_sse, sse

KEY = "AIzaFakeKeyForTests0123456789"
MODEL = "gemini-2.5-flash"
WEATHER_TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Current weather",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string"}},
            "required": ["city"],
            "additionalProperties": False,
        },
    },
}


@pytest.fixture
def recorder() -> Recorder:
    return Recorder()


@pytest.fixture
def server(recorder: Recorder) -> Iterator[LoopbackServer]:
    with LoopbackServer(create_fake_gemini(recorder)) as srv:
        yield srv


@pytest.fixture
def deployment(server: LoopbackServer, monkeypatch: pytest.MonkeyPatch) -> Deployment:
    monkeypatch.setenv("GEMINI_API_KEY", KEY)
    return Deployment(name="gem", provider="gemini", model=MODEL, base_url=server.url)


@pytest.fixture
async def transport() -> AsyncIterator[Transport]:
    t = Transport.create()
    try:
        yield t
    finally:
        await t.close()


@pytest.fixture
def provider(deployment: Deployment, transport: Transport) -> GeminiProvider:
    return GeminiProvider(deployment, transport)


def chat(messages: list[dict[str, Any]] | str, **kw: Any) -> ChatRequest:
    if isinstance(messages, str):
        messages = [{"role": "user", "content": messages}]
    return ChatRequest.model_validate({"model": "gem", "messages": messages, **kw})


async def collect(provider: GeminiProvider, req: ChatRequest) -> list[ChatChunk]:
    return [c async for c in provider.chat_stream(req)]


def content(chunks: list[ChatChunk], index: int = 0) -> str:
    return "".join(d.content or "" for c in chunks for d in c.choices if d.index == index)


def assert_keyed(rec: Recorded) -> None:
    assert rec.headers["x-goog-api-key"] == KEY
    assert "key" not in rec.query and KEY not in rec.path
    assert rec.headers["content-type"] == "application/json"


# ------------------------------------------------------------------ chat


async def test_chat_sends_google_shape_and_maps_the_answer(
    provider: GeminiProvider, recorder: Recorder
) -> None:
    resp = await provider.chat(
        chat(
            [{"role": "system", "content": "Be kind."}, {"role": "user", "content": "Hi there"}],
            temperature=0.2,
            max_tokens=50,
            stop=["\n\n"],
        )
    )
    assert resp.choices[0].content == "Hello from fake gemini: Hi there"
    assert resp.choices[0].finish_reason == "stop"
    assert resp.model == MODEL and resp.id.startswith("fake-resp-")
    # prompt: "Hi there" + "Be kind." = 4 words; answer: 6 words
    assert (resp.usage.input_tokens, resp.usage.output_tokens) == (4, 6)
    rec = recorder.last
    assert (rec.method, rec.path) == ("POST", f"/v1beta/models/{MODEL}:generateContent")
    assert rec.query == {}
    assert_keyed(rec)
    assert rec.json == {
        "contents": [{"role": "user", "parts": [{"text": "Hi there"}]}],
        "systemInstruction": {"parts": [{"text": "Be kind."}]},
        "generationConfig": {"temperature": 0.2, "maxOutputTokens": 50, "stopSequences": ["\n\n"]},
    }


async def test_max_output_tokens_maps_to_length(provider: GeminiProvider) -> None:
    resp = await provider.chat(chat("one two three four", max_tokens=2))
    assert resp.choices[0].content == "Hello from"
    assert resp.choices[0].finish_reason == "length"


async def test_n_two_asks_for_two_candidates(provider: GeminiProvider, recorder: Recorder) -> None:
    resp = await provider.chat(chat("Hey", n=2))
    assert [(c.index, c.content) for c in resp.choices] == [
        (0, "Hello from fake gemini: Hey"),
        (1, "Hello from fake gemini: Hey (2)"),
    ]
    assert recorder.last.json["generationConfig"] == {"candidateCount": 2}
    chunks = await collect(provider, chat("Hey", n=2))
    assert content(chunks, 0) == "Hello from fake gemini: Hey"
    assert content(chunks, 1) == "Hello from fake gemini: Hey (2)"
    assert sorted(d.index for c in chunks for d in c.choices if d.finish_reason) == [0, 1]


async def test_json_schema_answer_is_json(provider: GeminiProvider, recorder: Recorder) -> None:
    schema = {
        "type": "object",
        "properties": {"city": {"type": "string"}, "temp": {"type": "integer"}},
    }
    resp = await provider.chat(
        chat(
            "Paris?",
            response_format={"type": "json_schema", "json_schema": {"name": "w", "schema": schema}},
        )
    )
    assert orjson.loads(resp.choices[0].content or "") == {
        "city": "Hello from fake gemini: Paris?",
        "temp": 42,
    }
    assert recorder.last.json["generationConfig"] == {
        "responseMimeType": "application/json",
        "responseJsonSchema": schema,
    }


async def test_image_parts_reach_gemini(provider: GeminiProvider, recorder: Recorder) -> None:
    await provider.chat(
        chat(
            [
                {
                    "role": "user",
                    "content": [
                        {"type": "text", "text": "Describe"},
                        {
                            "type": "image_url",
                            "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="},
                        },
                    ],
                }
            ]
        )
    )
    assert recorder.last.json["contents"][0]["parts"][1] == {
        "inlineData": {"mimeType": "image/png", "data": "iVBORw0KGgo="}
    }


# ----------------------------------------------------------------- tools


async def test_tool_call_round_trip_returns_the_signature_and_the_name(
    provider: GeminiProvider, recorder: Recorder
) -> None:
    first = await provider.chat(chat("What is the weather in Paris?", tools=[WEATHER_TOOL]))
    choice = first.choices[0]
    assert choice.finish_reason == "tool_calls"
    assert choice.content == "Let me look that up."
    (call,) = choice.tool_calls
    assert call.name == "get_weather"
    assert orjson.loads(call.arguments) == {"city": "Paris", "unit": "celsius"}
    sent = recorder.last.json
    assert sent["tools"] == [
        {
            "functionDeclarations": [
                {
                    "name": "get_weather",
                    "description": "Current weather",
                    "parametersJsonSchema": WEATHER_TOOL["function"]["parameters"],
                }
            ]
        }
    ]  # type: ignore[index]

    second = await provider.chat(
        chat(
            [
                {"role": "user", "content": "What is the weather in Paris?"},
                {
                    "role": "assistant",
                    "content": choice.content,
                    "tool_calls": [
                        {
                            "id": call.id,
                            "type": "function",
                            "function": {"name": call.name, "arguments": call.arguments},
                        }
                    ],
                },
                {"role": "tool", "tool_call_id": call.id, "content": '{"temp_c": 21}'},
            ],
            tools=[WEATHER_TOOL],
        )
    )
    assert second.choices[0].content == 'Tool results: get_weather={"temp_c":21}'
    contents = recorder.last.json["contents"]
    # the fake answers 400 "Corrupted thought signature" unless it issued this one
    assert contents[1]["parts"][1]["thoughtSignature"] != "skip_thought_signature_validator"
    assert contents[2] == {
        "role": "user",
        "parts": [{"functionResponse": {"name": "get_weather", "response": {"temp_c": 21}}}],
    }


async def test_a_history_written_elsewhere_passes_the_signature_check(
    provider: GeminiProvider,
) -> None:
    resp = await provider.chat(
        chat(
            [
                {"role": "user", "content": "weather?"},
                {
                    "role": "assistant",
                    "tool_calls": [
                        {
                            "id": "toolu_01",
                            "type": "function",
                            "function": {"name": "get_weather", "arguments": '{"city": "Rome"}'},
                        }
                    ],
                },
                {"role": "tool", "tool_call_id": "toolu_01", "content": "sunny"},
            ],
            tools=[WEATHER_TOOL],
        )
    )
    assert resp.choices[0].content == 'Tool results: get_weather={"output":"sunny"}'


async def test_named_tool_choice_forces_that_function(
    provider: GeminiProvider, recorder: Recorder
) -> None:
    resp = await provider.chat(
        chat(
            "hello",
            tools=[WEATHER_TOOL],
            tool_choice={"type": "function", "function": {"name": "get_weather"}},
        )
    )
    assert resp.choices[0].tool_calls[0].name == "get_weather"
    assert recorder.last.json["toolConfig"] == {
        "functionCallingConfig": {"mode": "ANY", "allowedFunctionNames": ["get_weather"]}
    }


async def test_streamed_tool_call(provider: GeminiProvider, recorder: Recorder) -> None:
    chunks = await collect(provider, chat("weather in Paris", tools=[WEATHER_TOOL]))
    calls = [t for c in chunks for d in c.choices for t in d.tool_calls]
    assert [(t.index, t.name) for t in calls] == [(0, "get_weather")]
    assert orjson.loads(calls[0].arguments) == {"city": "Paris", "unit": "celsius"}
    assert calls[0].id and calls[0].id.startswith("call_")
    assert content(chunks) == "Let me look that up."
    finishes = [d.finish_reason for c in chunks for d in c.choices if d.finish_reason]
    assert finishes == ["tool_calls"]


# ------------------------------------------------------------- streaming


async def test_stream_maps_events_and_ends_with_usage(
    provider: GeminiProvider, recorder: Recorder
) -> None:
    req = chat("Tell me something nice today", stream=True)
    chunks = await collect(provider, req)
    assert chunks[0].choices[0].role == "assistant"
    assert content(chunks) == "Hello from fake gemini: Tell me something nice today"
    text_chunks = [c for c in chunks for d in c.choices if d.content]
    assert len(text_chunks) >= 3  # spread over several events
    finishes = [d.finish_reason for c in chunks for d in c.choices if d.finish_reason]
    assert finishes == ["stop"]
    last = chunks[-1]
    assert last.choices == [] and last.usage is not None
    whole = await provider.chat(chat("Tell me something nice today"))
    assert (last.usage.input_tokens, last.usage.output_tokens) == (
        whole.usage.input_tokens,
        whole.usage.output_tokens,
    )
    stream_rec = recorder.requests[-2]
    assert stream_rec.path == f"/v1beta/models/{MODEL}:streamGenerateContent"
    assert stream_rec.query == {"alt": "sse"}
    assert_keyed(stream_rec)
    assert "stream" not in stream_rec.json and "model" not in stream_rec.json


async def test_stream_survives_five_byte_chunks_and_multibyte_text(
    provider: GeminiProvider, recorder: Recorder
) -> None:
    text = "Zürich ☀️ 東京 🚀"
    events = [
        sse(
            {
                "candidates": [
                    {"content": {"role": "model", "parts": [{"text": text[:4]}]}, "index": 0}
                ],
                "responseId": "r1",
                "modelVersion": "gm-1",
            }
        ),
        sse(
            {
                "candidates": [
                    {
                        "content": {"role": "model", "parts": [{"text": text[4:]}]},
                        "finishReason": "STOP",
                        "index": 0,
                    }
                ],
                "usageMetadata": {
                    "promptTokenCount": 3,
                    "candidatesTokenCount": 7,
                    "cachedContentTokenCount": 2,
                    "totalTokenCount": 10,
                },
                "responseId": "r1",
                "modelVersion": "gm-1",
            }
        ),
    ]

    async def chunked(request: web.Request, rec: Recorded) -> web.StreamResponse:
        return await send_sse(request, events, chunking=5)

    recorder.script.append(chunked)
    chunks = await collect(provider, chat("hi"))
    assert content(chunks) == text
    assert {c.id for c in chunks} == {"r1"} and chunks[-1].model == "gm-1"
    usage = chunks[-1].usage
    assert usage is not None
    assert (usage.input_tokens, usage.output_tokens, usage.cached_input_tokens) == (3, 7, 2)


async def test_an_error_event_mid_stream_raises_after_the_text(
    provider: GeminiProvider, recorder: Recorder
) -> None:
    events = [
        sse({"candidates": [{"content": {"parts": [{"text": "partial"}]}, "index": 0}]}),
        sse(
            {"error": {"code": 503, "message": "The model is overloaded.", "status": "UNAVAILABLE"}}
        ),
    ]

    async def broken(request: web.Request, rec: Recorded) -> web.StreamResponse:
        return await send_sse(request, events)

    recorder.script.append(broken)
    seen: list[ChatChunk] = []
    with pytest.raises(UpstreamUnavailableError, match="overloaded"):
        async for chunk in provider.chat_stream(chat("hi")):
            seen.append(chunk)
    assert content(seen) == "partial"


async def test_a_stream_without_events_is_an_error(
    provider: GeminiProvider, recorder: Recorder
) -> None:
    async def empty(request: web.Request, rec: Recorded) -> web.StreamResponse:
        return await send_sse(request, [])

    recorder.script.append(empty)
    with pytest.raises(Exception, match="without an event"):
        await collect(provider, chat("hi"))


# ------------------------------------------------------------ embeddings


async def test_embeddings(provider: GeminiProvider, recorder: Recorder) -> None:
    resp = await provider.embed(EmbeddingRequest(model="gem", input=["alpha", "beta"]))
    assert resp.vectors == [vector("alpha", 8), vector("beta", 8)]
    rec = recorder.last
    assert rec.path == f"/v1beta/models/{MODEL}:batchEmbedContents"
    assert_keyed(rec)
    assert rec.json == {
        "requests": [
            {"model": f"models/{MODEL}", "content": {"parts": [{"text": "alpha"}]}},
            {"model": f"models/{MODEL}", "content": {"parts": [{"text": "beta"}]}},
        ]
    }
    sized = await provider.embed(EmbeddingRequest(model="gem", input="x", dimensions=3))
    assert sized.vectors == [vector("x", 3)]
    assert recorder.last.json["requests"][0]["outputDimensionality"] == 3


async def test_more_than_a_hundred_inputs_go_in_batches(
    provider: GeminiProvider, recorder: Recorder
) -> None:
    texts = [f"text {i}" for i in range(230)]
    resp = await provider.embed(EmbeddingRequest(model="gem", input=texts))
    assert resp.vectors == [vector(t, 8) for t in texts]
    sizes = sorted(len(r.json["requests"]) for r in recorder.requests)
    assert sizes == [30, 100, 100]


# ---------------------------------------------------------------- errors


@pytest.mark.parametrize(
    ("status", "google_status", "error"),
    [
        (429, "RESOURCE_EXHAUSTED", RateLimitedError),
        (503, "UNAVAILABLE", UpstreamUnavailableError),
        (400, "INVALID_ARGUMENT", InvalidRequestError),
    ],
)
async def test_google_errors_are_classified(
    provider: GeminiProvider,
    recorder: Recorder,
    status: int,
    google_status: str,
    error: type[Exception],
) -> None:
    for _ in range(2):
        recorder.script.append(google_error_handler(status, google_status, f"{KEY} went wrong"))
    with pytest.raises(error) as info:
        await provider.chat(chat("hi"))
    assert "went wrong" in str(info.value) and KEY not in str(info.value)
    with pytest.raises(error):
        await collect(provider, chat("hi"))


async def test_rate_limit_keeps_retry_after(provider: GeminiProvider, recorder: Recorder) -> None:
    recorder.script.append(
        error_response(
            429,
            {"error": {"code": 429, "message": "Quota exceeded", "status": "RESOURCE_EXHAUSTED"}},
            headers={"Retry-After": "7"},
        )
    )
    with pytest.raises(RateLimitedError) as info:
        await provider.chat(chat("hi"))
    assert info.value.retry_after == 7


async def test_the_fake_refuses_what_google_refuses(
    provider: GeminiProvider, recorder: Recorder
) -> None:
    provider.headers.pop("x-goog-api-key")
    with pytest.raises(PermissionDeniedError):
        await provider.chat(chat("hi"))
    provider.headers["x-goog-api-key"] = KEY
    # a function call turn answered by the wrong number of results
    with pytest.raises(InvalidRequestError, match="number of function response parts"):
        await provider.chat(
            chat(
                [
                    {"role": "user", "content": "weather?"},
                    {
                        "role": "assistant",
                        "tool_calls": [
                            {
                                "id": "a",
                                "type": "function",
                                "function": {"name": "get_weather", "arguments": "{}"},
                            },
                            {
                                "id": "b",
                                "type": "function",
                                "function": {"name": "get_weather", "arguments": "{}"},
                            },
                        ],
                    },
                    {"role": "tool", "tool_call_id": "a", "content": "1"},
                    {"role": "assistant", "content": "ok"},
                ],
                tools=[WEATHER_TOOL],
            )
        )


async def test_missing_key_names_the_variable(
    server: LoopbackServer, transport: Transport, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("GEMINI_API_KEY", raising=False)
    dep = Deployment(name="gem", provider="gemini", model=MODEL, base_url=server.url)
    with pytest.raises(MissingCredentialError, match="GEMINI_API_KEY"):
        GeminiProvider(dep, transport)


async def test_base_url_with_version_and_custom_key_variable(
    server: LoopbackServer,
    transport: Transport,
    recorder: Recorder,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("MY_GEMINI", "AIzaOtherKey000000000")
    monkeypatch.setenv("GEMINI_API_KEY", KEY)
    dep = Deployment(
        name="gem",
        provider="gemini",
        model=f"models/{MODEL}",
        base_url=server.url + "/v1beta/",
        api_key_env="MY_GEMINI",
    )
    resp = await GeminiProvider(dep, transport).chat(chat("yo"))
    assert resp.choices[0].content == "Hello from fake gemini: yo"
    assert recorder.last.path == f"/v1beta/models/{MODEL}:generateContent"
    assert recorder.last.headers["x-goog-api-key"] == "AIzaOtherKey000000000"
    assert GeminiProvider(Deployment(name="d", provider="gemini", model=MODEL), transport).url(
        "generateContent"
    ) == (f"https://generativelanguage.googleapis.com/v1beta/models/{MODEL}:generateContent")
