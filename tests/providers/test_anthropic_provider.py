"""AnthropicProvider against the loopback fake of ``POST /v1/messages``."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import anthropic
import orjson
import pytest
from aiohttp import web

from modelyard.errors import (
    AuthenticationError,
    InvalidRequestError,
    MissingCredentialError,
    RateLimitedError,
    UpstreamBadResponseError,
    UpstreamUnavailableError,
)
from modelyard.providers.anthropic import AnthropicProvider
from modelyard.providers.transport import Transport
from modelyard.settings import Deployment
from modelyard.types import ChatChunk, ChatRequest, Usage
from tests.fakes.anthropic_upstream import answer, create_fake_anthropic, error_body, stream_events
from tests.fakes.harness import LoopbackServer, Recorded, Recorder, error_response, send_sse, sse

KEY = "sk-ant-test-0123456789"
WEATHER_TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Weather for a city",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string"}},
            "required": ["city"],
        },
    },
}


class Fake:
    def __init__(self, server: LoopbackServer, recorder: Recorder):
        self.server = server
        self.recorder = recorder

    @property
    def url(self) -> str:
        return self.server.url

    def deployment(self, **fields: Any) -> Deployment:
        fields = {
            "name": "claude",
            "provider": "anthropic",
            "model": "claude-sonnet-4-5",
            "base_url": self.url,
            **fields,
        }
        return Deployment.model_validate(fields)


@pytest.fixture
def fake(monkeypatch: pytest.MonkeyPatch) -> Iterator[Fake]:
    monkeypatch.setenv("ANTHROPIC_API_KEY", KEY)
    recorder = Recorder()
    with LoopbackServer(create_fake_anthropic(recorder)) as server:
        yield Fake(server, recorder)


@pytest.fixture
def chunked_fake(monkeypatch: pytest.MonkeyPatch) -> Iterator[Fake]:
    monkeypatch.setenv("ANTHROPIC_API_KEY", KEY)
    recorder = Recorder()
    with LoopbackServer(create_fake_anthropic(recorder, chunking=7)) as server:
        yield Fake(server, recorder)


def chat(text: str = "hi", **fields: Any) -> ChatRequest:
    fields.setdefault("messages", [{"role": "user", "content": text}])
    return ChatRequest.model_validate({"model": "claude", **fields})


async def run_chat(deployment: Deployment, req: ChatRequest) -> Any:
    transport = Transport.create()
    try:
        return await AnthropicProvider(deployment, transport).chat(req)
    finally:
        await transport.close()


async def run_stream(deployment: Deployment, req: ChatRequest) -> list[ChatChunk]:
    transport = Transport.create()
    try:
        return [c async for c in AnthropicProvider(deployment, transport).chat_stream(req)]
    finally:
        await transport.close()


def text_of(chunks: list[ChatChunk]) -> str:
    return "".join(d.content or "" for c in chunks for d in c.choices)


# ------------------------------------------------------------- plain answers


async def test_chat_sends_the_documented_request_and_maps_the_answer(fake: Fake) -> None:
    req = chat(
        messages=[
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": "hi there"},
        ],
        temperature=1.5,
    )
    resp = await run_chat(fake.deployment(headers={"anthropic-beta": "x-2025"}), req)

    sent = fake.recorder.last
    assert (sent.method, sent.path) == ("POST", "/v1/messages")
    assert sent.headers["x-api-key"] == KEY
    assert sent.headers["anthropic-version"] == "2023-06-01"
    assert sent.headers["content-type"] == "application/json"
    assert sent.headers["anthropic-beta"] == "x-2025"
    assert "authorization" not in sent.headers
    assert sent.json == {
        "model": "claude-sonnet-4-5",
        "max_tokens": 4096,
        "system": "Be brief.",
        "messages": [{"role": "user", "content": [{"type": "text", "text": "hi there"}]}],
        "temperature": 1.0,
    }

    expected = answer(sent.json, 1)
    assert resp.id == "msg_fake0001"
    assert resp.model == "claude-sonnet-4-5"
    assert resp.created > 1_600_000_000
    assert resp.choices[0].content == "Hello from fake anthropic: hi there"
    assert resp.choices[0].finish_reason == "stop"
    assert resp.usage == Usage(
        input_tokens=expected["usage"]["input_tokens"],
        output_tokens=expected["usage"]["output_tokens"],
    )
    assert resp.usage.input_tokens > 0 and resp.usage.output_tokens > 0


async def test_deployment_limit_and_trailing_slash_in_base_url(fake: Fake) -> None:
    dep = fake.deployment(base_url=fake.url + "/", max_output_tokens=321)
    await run_chat(dep, chat())
    assert fake.recorder.last.path == "/v1/messages"
    assert fake.recorder.last.json["max_tokens"] == 321
    await run_chat(dep, chat(max_tokens=12))
    assert fake.recorder.last.json["max_tokens"] == 12


async def test_stop_sequence_and_length_limits(fake: Fake) -> None:
    resp = await run_chat(fake.deployment(), chat("one two three", stop=["three"]))
    assert fake.recorder.last.json["stop_sequences"] == ["three"]
    assert resp.choices[0].content == "Hello from fake anthropic: one two "
    assert resp.choices[0].finish_reason == "stop"
    resp = await run_chat(fake.deployment(), chat("one two three", max_tokens=4))
    assert resp.choices[0].content == "Hello from fake anthropic:"
    assert resp.choices[0].finish_reason == "length"


async def test_thinking_extra_comes_back_as_reasoning(fake: Fake) -> None:
    req = chat("why?", thinking={"type": "enabled", "budget_tokens": 1024})
    resp = await run_chat(fake.deployment(), req)
    assert fake.recorder.last.json["thinking"] == {"type": "enabled", "budget_tokens": 1024}
    assert resp.choices[0].reasoning == "Thinking about: why?"
    assert resp.choices[0].content == "Hello from fake anthropic: why?"
    chunks = await run_stream(fake.deployment(), req)
    assert "".join(d.reasoning or "" for c in chunks for d in c.choices) == "Thinking about: why?"
    assert text_of(chunks) == "Hello from fake anthropic: why?"


async def test_cache_tokens_count_into_the_input_total(fake: Fake) -> None:
    async def cached(request: web.Request, rec: Recorded) -> web.StreamResponse:
        message = answer(orjson.loads(rec.body), 7)
        message["usage"].update(
            input_tokens=10, cache_read_input_tokens=1000, cache_creation_input_tokens=200
        )
        return web.json_response(message)

    fake.recorder.script.append(cached)
    resp = await run_chat(fake.deployment(), chat())
    assert resp.usage == Usage(
        input_tokens=1210,
        output_tokens=resp.usage.output_tokens,
        cached_input_tokens=1000,
        cache_write_tokens=200,
    )


async def test_more_than_one_choice_is_refused_before_any_call(fake: Fake) -> None:
    with pytest.raises(InvalidRequestError) as info:
        await run_chat(fake.deployment(), chat(n=3))
    assert info.value.param == "n"
    assert fake.recorder.requests == []


# ------------------------------------------------------------------ streaming


async def test_stream_yields_role_text_finish_then_usage(fake: Fake) -> None:
    chunks = await run_stream(fake.deployment(), chat("hello"))
    sent = fake.recorder.last
    assert sent.json["stream"] is True
    assert sent.headers["x-api-key"] == KEY
    assert chunks[0].choices[0].role == "assistant"
    assert text_of(chunks) == "Hello from fake anthropic: hello"
    assert len([c for c in chunks if c.choices and c.choices[0].content]) > 3  # really streamed
    assert chunks[-2].choices[0].finish_reason == "stop"
    assert chunks[-1].choices == []
    expected = answer(sent.json, 1)["usage"]
    assert chunks[-1].usage == Usage(
        input_tokens=expected["input_tokens"], output_tokens=expected["output_tokens"]
    )
    assert {c.id for c in chunks} == {"msg_fake0001"}


async def test_stream_in_seven_byte_pieces_keeps_multibyte_text_whole(chunked_fake: Fake) -> None:
    text = "naïve café 🌍 — 東京"
    chunks = await run_stream(chunked_fake.deployment(), chat(text))
    assert text_of(chunks) == "Hello from fake anthropic: " + text
    assert chunks[-1].usage is not None and chunks[-1].usage.output_tokens > 0


async def test_error_event_mid_stream_raises_the_classified_error(fake: Fake) -> None:
    async def overloaded(request: web.Request, rec: Recorded) -> web.StreamResponse:
        events = stream_events(answer(orjson.loads(rec.body), 1))[:4]
        events.append(sse(error_body("overloaded_error", "Overloaded"), "error"))
        return await send_sse(request, events)

    fake.recorder.script.append(overloaded)
    seen: list[ChatChunk] = []
    transport = Transport.create()
    try:
        provider = AnthropicProvider(fake.deployment(), transport)
        with pytest.raises(UpstreamUnavailableError) as info:
            async for chunk in provider.chat_stream(chat("hello")):
                seen.append(chunk)
    finally:
        await transport.close()
    assert info.value.status == 503
    assert info.value.upstream_status == 529
    assert "Overloaded" in info.value.message
    assert seen[0].choices[0].role == "assistant"
    assert text_of(seen) == "Hello"  # the first text delta came through before the error


async def test_stream_cut_before_message_stop_is_a_bad_response(fake: Fake) -> None:
    async def cut(request: web.Request, rec: Recorded) -> web.StreamResponse:
        return await send_sse(request, stream_events(answer(orjson.loads(rec.body), 1))[:-2])

    fake.recorder.script.append(cut)
    with pytest.raises(UpstreamBadResponseError):
        await run_stream(fake.deployment(), chat("hello"))


# ---------------------------------------------------------------- tool calls


async def test_tool_call_round_trip(fake: Fake) -> None:
    question = {"role": "user", "content": "What's the weather in Paris?"}
    first = await run_chat(fake.deployment(), chat(messages=[question], tools=[WEATHER_TOOL]))
    assert fake.recorder.last.json["tools"] == [
        {
            "name": "get_weather",
            "description": "Weather for a city",
            "input_schema": WEATHER_TOOL["function"]["parameters"],  # type: ignore[index]
        }
    ]
    choice = first.choices[0]
    assert choice.finish_reason == "tool_calls"
    assert choice.content == "Let me look that up."
    [call] = choice.tool_calls
    assert call.name == "get_weather"
    assert orjson.loads(call.arguments) == {"city": "Paris"}

    history = [
        question,
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
        {"role": "tool", "tool_call_id": call.id, "content": "18C and sunny"},
    ]
    second = await run_chat(fake.deployment(), chat(messages=history, tools=[WEATHER_TOOL]))
    # the fake, like Anthropic, refuses a tool_result that answers no tool_use of the last turn
    assert fake.recorder.last.json["messages"][2] == {
        "role": "user",
        "content": [{"type": "tool_result", "tool_use_id": call.id, "content": "18C and sunny"}],
    }
    assert second.choices[0].content == "Hello from fake anthropic: 18C and sunny"
    assert second.choices[0].finish_reason == "stop"


async def test_tool_result_for_an_unknown_call_is_refused_by_the_fake(fake: Fake) -> None:
    history = [
        {"role": "user", "content": "weather?"},
        {"role": "assistant", "content": "ok"},
        {"role": "tool", "tool_call_id": "toolu_nope", "content": "x"},
    ]
    with pytest.raises(InvalidRequestError) as info:
        await run_chat(fake.deployment(), chat(messages=history))
    assert "tool_use_id" in info.value.message


async def test_streamed_tool_call_arguments_reassemble(chunked_fake: Fake) -> None:
    req = chat("weather in Paris please", tools=[WEATHER_TOOL], parallel_tool_calls=False)
    chunks = await run_stream(chunked_fake.deployment(), req)
    assert chunked_fake.recorder.last.json["tool_choice"] == {
        "type": "auto",
        "disable_parallel_tool_use": True,
    }
    calls = [t for c in chunks for d in c.choices for t in d.tool_calls]
    assert calls[0].id is not None and calls[0].id.startswith("toolu_")
    assert calls[0].name == "get_weather"
    assert all(t.index == 0 for t in calls)
    fragments = [t.arguments for t in calls if t.arguments]
    assert len(fragments) > 2
    assert orjson.loads("".join(fragments)) == {"city": "Paris"}
    assert chunks[-2].choices[0].finish_reason == "tool_calls"


async def test_json_schema_answer_is_text(fake: Fake) -> None:
    schema = {
        "type": "object",
        "properties": {"answer": {"type": "string"}},
        "required": ["answer"],
    }
    fmt = {"type": "json_schema", "json_schema": {"name": "reply", "schema": schema}}
    resp = await run_chat(fake.deployment(), chat("2+2?", response_format=fmt))
    assert fake.recorder.last.json["tool_choice"] == {"type": "tool", "name": "json_response"}
    assert orjson.loads(resp.choices[0].content) == {"answer": "fake answer"}
    assert resp.choices[0].tool_calls == []
    assert resp.choices[0].finish_reason == "stop"
    chunks = await run_stream(fake.deployment(), chat("2+2?", response_format=fmt))
    assert orjson.loads(text_of(chunks)) == {"answer": "fake answer"}
    assert chunks[-2].choices[0].finish_reason == "stop"


# -------------------------------------------------------------------- errors


async def test_rate_limit_carries_retry_after(fake: Fake) -> None:
    fake.recorder.script.append(
        error_response(429, error_body("rate_limit_error", "slow down"), {"retry-after": "7"})
    )
    with pytest.raises(RateLimitedError) as info:
        await run_chat(fake.deployment(), chat())
    assert info.value.retry_after == 7.0
    assert "slow down" in info.value.message


async def test_overloaded_is_unavailable(fake: Fake) -> None:
    fake.recorder.script.append(error_response(529, error_body("overloaded_error", "Overloaded")))
    with pytest.raises(UpstreamUnavailableError) as info:
        await run_stream(fake.deployment(), chat())
    assert info.value.status == 503
    assert info.value.upstream_status == 529


async def test_bad_key_is_an_authentication_error(fake: Fake) -> None:
    body = error_body("authentication_error", "invalid x-api-key")
    fake.recorder.script.append(error_response(401, body))
    with pytest.raises(AuthenticationError) as info:
        await run_chat(fake.deployment(), chat())
    assert info.value.status == 401
    assert KEY not in info.value.message


async def test_missing_key_variable_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("ANTHROPIC_API_KEY", raising=False)
    dep = Deployment(name="claude", provider="anthropic", model="m")
    transport = Transport.create()
    try:
        with pytest.raises(MissingCredentialError) as info:
            AnthropicProvider(dep, transport)
    finally:
        await transport.close()
    assert info.value.variable == "ANTHROPIC_API_KEY"


# ---------------------------------------------------- the fake is faithful


async def test_fake_refuses_what_anthropic_refuses(fake: Fake) -> None:
    url = fake.url + "/v1/messages"
    good = {"model": "m", "max_tokens": 10, "messages": [{"role": "user", "content": "hi"}]}
    headers = {"content-type": "application/json", "anthropic-version": "2023-06-01"}
    cases: list[tuple[dict[str, Any], dict[str, str], type[Exception], str]] = [
        (good, headers, AuthenticationError, "x-api-key"),
        (
            good,
            {**headers, "x-api-key": KEY, "anthropic-version": ""},
            InvalidRequestError,
            "anthropic-version",
        ),
        (
            {**good, "max_tokens": None},
            {**headers, "x-api-key": KEY},
            InvalidRequestError,
            "max_tokens",
        ),
        (
            {**good, "messages": [{"role": "system", "content": "x"}]},
            {**headers, "x-api-key": KEY},
            InvalidRequestError,
            "role",
        ),
        ({**good, "n": 2}, {**headers, "x-api-key": KEY}, InvalidRequestError, "n: Extra"),
    ]
    transport = Transport.create()
    try:
        for body, sent_headers, error, words in cases:
            with pytest.raises(error) as info:
                await transport.post(
                    url, orjson.dumps(body), sent_headers, deployment="fake", timeout=5
                )
            assert words in info.value.args[0]
    finally:
        await transport.close()


async def test_official_sdk_reads_the_fake(fake: Fake) -> None:
    async with anthropic.AsyncAnthropic(api_key=KEY, base_url=fake.url, max_retries=0) as client:
        message = await client.messages.create(
            model="claude-test-model",
            max_tokens=100,
            messages=[{"role": "user", "content": "weather in Oslo?"}],
            tools=[
                {
                    "name": "get_weather",
                    "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}},
                }
            ],
        )
        async with client.messages.stream(
            model="claude-test-model",
            max_tokens=100,
            messages=[{"role": "user", "content": "weather in Oslo?"}],
            tools=[
                {
                    "name": "get_weather",
                    "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}},
                }
            ],
        ) as stream:
            streamed = await stream.get_final_message()
    assert message.stop_reason == "tool_use"
    assert [b.type for b in message.content] == ["text", "tool_use"]
    assert message.content[1].input == {"city": "Paris"}  # type: ignore[union-attr]
    assert streamed.content[1].input == {"city": "Paris"}  # type: ignore[union-attr]
    assert streamed.content[0].text == "Let me look that up."  # type: ignore[union-attr]
    assert streamed.usage.output_tokens == message.usage.output_tokens
    assert [r.json.get("stream") for r in fake.recorder.requests] == [None, True]
