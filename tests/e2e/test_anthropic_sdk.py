"""The official anthropic SDK against a gateway process, served by every upstream wire format.

The client speaks Anthropic Messages; the deployments behind the gateway
speak OpenAI chat, Anthropic, Gemini (loopback fakes that check what the
vendors check) and the embedded local model (real, slow: marked).
"""

from __future__ import annotations

import json
import urllib.request
from collections.abc import Callable, Iterator
from typing import Any, cast

import anthropic
import pytest
from aiohttp import web

from tests.conftest import UPSTREAM_KEY, Gateway
from tests.e2e.governance.support import ADMIN, make_key
from tests.fakes.anthropic_upstream import anthropic_error, create_fake_anthropic
from tests.fakes.gemini_upstream import create_fake_gemini
from tests.fakes.harness import Handler, LoopbackServer, Recorded, Recorder, send_sse, sse

CONFIG = """
embedded_models: {embedded}
deployments:
  - name: gpt
    provider: openai-compatible
    model: gpt-4o-mini
    base_url: {openai}/v1
    api_key_env: OPENAI_FAKE_KEY
    prices: {{input: 1, output: 2}}
  - name: claude
    provider: anthropic
    model: claude-sonnet-4-5
    base_url: {anthropic}
    prices: {{input: 1, output: 2}}
  - name: gemini
    provider: gemini
    model: gemini-2.5-flash
    base_url: {gemini}
    prices: {{input: 1, output: 2}}
"""
REMOTE = ["gpt", "claude", "gemini"]
LOCAL = "gemma-3-270m"
PREFIX = {"gpt": "openai", "claude": "anthropic", "gemini": "gemini"}

WEATHER: Any = {
    "name": "get_weather",
    "description": "Weather in a city",
    "input_schema": {
        "type": "object",
        "properties": {"city": {"type": "string"}},
        "required": ["city"],
    },
}

Fakes = dict[str, tuple[LoopbackServer, Recorder]]


@pytest.fixture(scope="module")
def fakes(fake_openai: tuple[LoopbackServer, Recorder]) -> Iterator[Fakes]:
    a_rec, g_rec = Recorder(), Recorder()
    with (
        LoopbackServer(create_fake_anthropic(a_rec)) as a,
        LoopbackServer(create_fake_gemini(g_rec)) as g,
    ):
        yield {"gpt": fake_openai, "claude": (a, a_rec), "gemini": (g, g_rec)}


def _config(fakes: Fakes, embedded: bool) -> str:
    return CONFIG.format(
        embedded="true" if embedded else "false",
        openai=fakes["gpt"][0].url,
        anthropic=fakes["claude"][0].url,
        gemini=fakes["gemini"][0].url,
    )


ENV = {
    "OPENAI_FAKE_KEY": UPSTREAM_KEY,
    "ANTHROPIC_API_KEY": "sk-ant-test",
    "GEMINI_API_KEY": "gem-test",
}


@pytest.fixture(scope="module")
def gateway(start_module_gateway: Callable[..., Gateway], fakes: Fakes) -> Gateway:
    return start_module_gateway(_config(fakes, embedded=False), ENV)


@pytest.fixture
def client(gateway: Gateway) -> Iterator[anthropic.Anthropic]:
    with anthropic.Anthropic(base_url=gateway.url, api_key="x", max_retries=0) as c:
        yield c


def _last(fakes: Fakes, model: str) -> Recorded:
    return fakes[model][1].last


def _text(message: anthropic.types.Message) -> str:
    return "".join(b.text for b in message.content if b.type == "text")


# ---------------------------------------------------------------- plain


@pytest.mark.parametrize("model", REMOTE)
def test_plain_message(client: anthropic.Anthropic, fakes: Fakes, model: str) -> None:
    message = client.messages.create(
        model=model,
        max_tokens=64,
        system=[{"type": "text", "text": "Be brief."}],
        messages=[{"role": "user", "content": "héllo 漢字"}],
        metadata={"user_id": "user-42"},
        # this SDK version has no sampling arguments; older clients send them
        extra_body={"temperature": 0.5, "top_p": 0.9, "top_k": 5},
    )
    assert _text(message) == f"Hello from fake {PREFIX[model]}: héllo 漢字"
    assert message.type == "message" and message.role == "assistant"
    assert message.id.startswith("msg_") and message.model == model
    assert message._request_id is not None and message._request_id.startswith("req_")
    assert message.stop_reason == "end_turn"
    assert message.usage.input_tokens > 0 and message.usage.output_tokens > 0
    sent = _last(fakes, model).json
    if model == "claude":
        # relayed as the client wrote it: the model name is the only change
        assert sent["system"] == [{"type": "text", "text": "Be brief."}]
        assert sent["max_tokens"] == 64 and sent["model"] == "claude-sonnet-4-5"
        assert sent["top_k"] == 5 and sent["metadata"] == {"user_id": "user-42"}
        assert sent["temperature"] == 0.5 and sent["top_p"] == 0.9
    elif model == "gpt":
        assert sent["messages"][0] == {"role": "system", "content": "Be brief."}
        assert sent["max_tokens"] == 64 and sent["user"] == "user-42"
        assert "top_k" not in sent  # an Anthropic-only field is not sent to OpenAI hosts
    else:
        assert sent["systemInstruction"]["parts"][0]["text"] == "Be brief."
        assert sent["generationConfig"]["maxOutputTokens"] == 64


def test_bearer_token_and_any_version_are_accepted(gateway: Gateway) -> None:
    with anthropic.Anthropic(
        base_url=gateway.url,
        auth_token="x",
        default_headers={"anthropic-version": "2026-10-21"},
        max_retries=0,
    ) as c:
        message = c.messages.create(
            model="gpt", max_tokens=16, messages=[{"role": "user", "content": "hi"}]
        )
    assert _text(message) == "Hello from fake openai: hi"


# ---------------------------------------------------------------- streaming


@pytest.mark.parametrize("model", REMOTE)
def test_streaming(client: anthropic.Anthropic, fakes: Fakes, model: str) -> None:
    with client.messages.stream(
        model=model, max_tokens=64, messages=[{"role": "user", "content": "stream 漢字 ✓"}]
    ) as stream:
        pieces = list(stream.text_stream)
        final = stream.get_final_message()
    assert "".join(pieces) == f"Hello from fake {PREFIX[model]}: stream 漢字 ✓"
    assert _text(final) == "".join(pieces)
    assert final.stop_reason == "end_turn"
    assert final.usage.output_tokens > 0 and final.usage.input_tokens > 0
    assert _last(fakes, model).json.get("stream", True) is True


def test_raw_event_sequence(gateway: Gateway) -> None:
    # raw bytes: the SDK hides pings
    body = {
        "model": "gpt",
        "max_tokens": 32,
        "stream": True,
        "messages": [{"role": "user", "content": "hello"}],
    }
    request = urllib.request.Request(
        gateway.url + "/v1/messages",
        data=json.dumps(body).encode(),
        headers={"x-api-key": "x", "anthropic-version": "2023-06-01"},
    )
    with urllib.request.urlopen(request, timeout=10) as resp:
        assert resp.headers["Content-Type"].startswith("text/event-stream")
        raw = resp.read().decode()
    events = [e for e in raw.split("\n\n") if e]
    kinds = []
    for e in events:
        name, data = e.split("\n")
        kinds.append(name.removeprefix("event: "))
        assert json.loads(data.removeprefix("data: "))["type"] == kinds[-1]
    assert kinds[:2] == ["message_start", "ping"]
    assert kinds[-2:] == ["message_delta", "message_stop"]
    assert kinds[2] == "content_block_start" and kinds[-3] == "content_block_stop"
    assert set(kinds[3:-3]) == {"content_block_delta"}


# ---------------------------------------------------------------- tools


@pytest.mark.parametrize("model", REMOTE)
@pytest.mark.parametrize("stream", [False, True])
def test_tool_use_then_result(
    client: anthropic.Anthropic, fakes: Fakes, model: str, stream: bool
) -> None:
    messages: list[Any] = [{"role": "user", "content": "weather in Paris?"}]
    kwargs: dict[str, Any] = {"model": model, "max_tokens": 200, "tools": [WEATHER]}
    if stream:
        with client.messages.stream(messages=messages, **kwargs) as s:
            first = s.get_final_message()
    else:
        first = client.messages.create(messages=messages, **kwargs)
    assert first.stop_reason == "tool_use"
    calls = [b for b in first.content if b.type == "tool_use"]
    assert len(calls) == 1 and calls[0].name == "get_weather"
    assert isinstance(calls[0].input, dict) and "city" in calls[0].input
    messages += [
        {"role": "assistant", "content": [b.model_dump() for b in first.content]},
        {
            "role": "user",
            "content": [
                {"type": "tool_result", "tool_use_id": calls[0].id, "content": '{"temp_c": 21}'},
            ],
        },
    ]
    final = client.messages.create(messages=messages, **kwargs)
    assert final.stop_reason == "end_turn" and _text(final)
    sent = _last(fakes, model).json
    if model == "claude":
        last = sent["messages"][-1]["content"][0]
        assert last == {
            "type": "tool_result",
            "tool_use_id": calls[0].id,
            "content": '{"temp_c": 21}',
        }
    elif model == "gpt":
        assert sent["messages"][-1] == {
            "role": "tool",
            "tool_call_id": calls[0].id,
            "content": '{"temp_c": 21}',
        }


@pytest.mark.parametrize("model", REMOTE)
def test_forced_tool_choice(client: anthropic.Anthropic, fakes: Fakes, model: str) -> None:
    message = client.messages.create(
        model=model,
        max_tokens=100,
        tools=[WEATHER],
        tool_choice={"type": "tool", "name": "get_weather", "disable_parallel_tool_use": True},
        messages=[{"role": "user", "content": "anything"}],
    )
    assert [b.type for b in message.content if b.type == "tool_use"] == ["tool_use"]
    sent = _last(fakes, model).json
    if model == "claude":
        assert sent["tool_choice"] == {
            "type": "tool",
            "name": "get_weather",
            "disable_parallel_tool_use": True,
        }
    elif model == "gpt":
        assert sent["tool_choice"] == {"type": "function", "function": {"name": "get_weather"}}
        assert sent["parallel_tool_calls"] is False


def _parallel_calls_stream(cities: list[str]) -> Handler:
    """The OpenAI fake's answer: parallel tool calls, their arguments cut mid-string."""

    def chunk(delta: dict[str, Any], finish: str | None = None) -> bytes:
        choice = {"index": 0, "delta": delta, "finish_reason": finish}
        return sse(
            {
                "id": "chatcmpl-p",
                "object": "chat.completion.chunk",
                "created": 1,
                "model": "gpt-4o-mini",
                "choices": [choice],
            }
        )

    async def handler(request: web.Request, rec: Recorded) -> web.StreamResponse:
        events = [chunk({"role": "assistant", "content": ""})]
        for i, city in enumerate(cities):
            args = json.dumps({"city": city}, ensure_ascii=False)
            head = {"index": i, "id": f"call_{i}", "type": "function"}
            events.append(
                chunk(
                    {
                        "tool_calls": [
                            head | {"function": {"name": "get_weather", "arguments": args[:7]}}
                        ]
                    }
                )
            )
            events.append(
                chunk({"tool_calls": [{"index": i, "function": {"arguments": args[7:]}}]})
            )
        events.append(chunk({}, "tool_calls"))
        usage = {"prompt_tokens": 20, "completion_tokens": 9, "total_tokens": 29}
        events.append(
            sse(
                {
                    "id": "chatcmpl-p",
                    "object": "chat.completion.chunk",
                    "created": 1,
                    "model": "gpt-4o-mini",
                    "choices": [],
                    "usage": usage,
                }
            )
        )
        events.append(b"data: [DONE]\n\n")
        return await send_sse(request, events, chunking=5)

    return handler


def test_parallel_tool_calls_stream_and_their_results_go_back(
    client: anthropic.Anthropic, fakes: Fakes
) -> None:
    fakes["gpt"][1].script.append(_parallel_calls_stream(["Paris", "Zürich"]))
    messages: list[Any] = [{"role": "user", "content": "weather in Paris and Zürich?"}]
    with client.messages.stream(
        model="gpt", max_tokens=100, tools=[WEATHER], messages=messages
    ) as stream:
        first = stream.get_final_message()
    calls = [b for b in first.content if b.type == "tool_use"]
    assert [(c.id, c.input) for c in calls] == [
        ("call_0", {"city": "Paris"}),
        ("call_1", {"city": "Zürich"}),
    ]
    assert first.stop_reason == "tool_use"
    assert first.usage.input_tokens == 20 and first.usage.output_tokens == 9
    messages += [
        {"role": "assistant", "content": [b.model_dump() for b in first.content]},
        {
            "role": "user",
            "content": [
                {"type": "tool_result", "tool_use_id": "call_0", "content": "21C"},
                {"type": "tool_result", "tool_use_id": "call_1", "content": "15C"},
                {"type": "text", "text": "Which is warmer?"},
            ],
        },
    ]
    final = client.messages.create(model="gpt", max_tokens=100, tools=[WEATHER], messages=messages)
    assert _text(final) == "Hello from fake openai: Which is warmer?"
    sent = _last(fakes, "gpt").json["messages"]
    assert [m["role"] for m in sent] == ["user", "assistant", "tool", "tool", "user"]
    assert [c["id"] for c in sent[1]["tool_calls"]] == ["call_0", "call_1"]
    assert [(m["tool_call_id"], m["content"]) for m in sent[2:4]] == [
        ("call_0", "21C"),
        ("call_1", "15C"),
    ]


@pytest.mark.parametrize("model", REMOTE)
def test_tool_choice_none(client: anthropic.Anthropic, model: str) -> None:
    message = client.messages.create(
        model=model,
        max_tokens=100,
        tools=[WEATHER],
        tool_choice={"type": "none"},
        messages=[{"role": "user", "content": "weather in Paris?"}],
    )
    assert [b.type for b in message.content] == ["text"]
    assert message.stop_reason == "end_turn"


def test_failure_after_the_stream_began_is_an_error_event(
    client: anthropic.Anthropic, fakes: Fakes
) -> None:
    async def breaks(request: web.Request, rec: Recorded) -> web.StreamResponse:
        message = {
            "id": "msg_1",
            "type": "message",
            "role": "assistant",
            "model": "m",
            "content": [],
            "stop_reason": None,
            "stop_sequence": None,
            "usage": {"input_tokens": 5, "output_tokens": 1},
        }
        return await send_sse(
            request,
            [
                sse({"type": "message_start", "message": message}, "message_start"),
                sse(
                    {
                        "type": "content_block_start",
                        "index": 0,
                        "content_block": {"type": "text", "text": ""},
                    },
                    "content_block_start",
                ),
                sse(
                    {
                        "type": "content_block_delta",
                        "index": 0,
                        "delta": {"type": "text_delta", "text": "partial "},
                    },
                    "content_block_delta",
                ),
                sse(
                    {
                        "type": "error",
                        "error": {"type": "overloaded_error", "message": "Overloaded"},
                    },
                    "error",
                ),
            ],
        )

    fakes["claude"][1].script.append(breaks)
    got: list[str] = []
    with (
        pytest.raises(anthropic.APIStatusError) as info,
        client.messages.stream(
            model="claude", max_tokens=50, messages=[{"role": "user", "content": "x"}]
        ) as stream,
    ):
        got.extend(stream.text_stream)
    assert got == ["partial "]
    assert isinstance(info.value.body, dict)
    assert info.value.body["type"] == "error"
    # an Anthropic upstream's own events are relayed as they came, its error event too
    assert info.value.body["error"] == {"type": "overloaded_error", "message": "Overloaded"}


# ---------------------------------------------------------------- stop sequences


@pytest.mark.parametrize("model", REMOTE)
def test_stop_sequences(client: anthropic.Anthropic, fakes: Fakes, model: str) -> None:
    message = client.messages.create(
        model=model,
        max_tokens=64,
        stop_sequences=["STOP", "halt"],
        messages=[{"role": "user", "content": "one two STOP three"}],
    )
    sent = _last(fakes, model).json
    if model == "claude":
        assert sent["stop_sequences"] == ["STOP", "halt"]
    elif model == "gpt":
        assert sent["stop"] == ["STOP", "halt"]
    else:
        assert sent["generationConfig"]["stopSequences"] == ["STOP", "halt"]
    if model != "gpt":  # the OpenAI fake does not apply stop sequences
        assert "STOP" not in _text(message) and "one two" in _text(message)


# ---------------------------------------------------------------- structured output


@pytest.mark.parametrize("model", REMOTE)
def test_output_format_json_schema(client: anthropic.Anthropic, fakes: Fakes, model: str) -> None:
    schema = {
        "type": "object",
        "properties": {"answer": {"type": "string"}},
        "required": ["answer"],
        "additionalProperties": False,
    }
    message = client.messages.create(
        model=model,
        max_tokens=100,
        output_config={"format": {"type": "json_schema", "schema": schema}},
        messages=[{"role": "user", "content": "Answer in JSON"}],
    )
    assert isinstance(json.loads(_text(message))["answer"], str)
    assert message.stop_reason == "end_turn"


# ---------------------------------------------------------------- thinking


def test_thinking_passes_through_to_an_anthropic_upstream(
    client: anthropic.Anthropic, fakes: Fakes
) -> None:
    message = client.messages.create(
        model="claude",
        max_tokens=2048,
        thinking={"type": "enabled", "budget_tokens": 1024},
        messages=[{"role": "user", "content": "think"}],
    )
    assert _last(fakes, "claude").json["thinking"] == {"type": "enabled", "budget_tokens": 1024}
    assert [b.type for b in message.content] == ["thinking", "text"]
    assert message.content[0].type == "thinking" and message.content[0].thinking
    assert message.content[0].signature == "c2lnLWZha2U="  # relayed, so the next turn is valid


def test_signatures_and_the_stop_sequence_survive_a_streamed_anthropic_turn(
    client: anthropic.Anthropic, fakes: Fakes
) -> None:
    with client.messages.stream(
        model="claude",
        max_tokens=2048,
        thinking={"type": "enabled", "budget_tokens": 1024},
        stop_sequences=["fake"],
        messages=[{"role": "user", "content": "think"}],
    ) as stream:
        message = stream.get_final_message()
    thinking = message.content[0]
    assert thinking.type == "thinking" and thinking.signature == "c2lnLWZha2U="
    assert message.stop_reason == "stop_sequence" and message.stop_sequence == "fake"
    assert message.model == "claude" and message.usage.output_tokens > 0
    follow = client.messages.create(  # the thinking block goes back as it came
        model="claude",
        max_tokens=2048,
        thinking={"type": "enabled", "budget_tokens": 1024},
        messages=[
            {"role": "user", "content": "think"},
            {"role": "assistant", "content": [b.model_dump() for b in message.content]},
            {"role": "user", "content": "more"},
        ],
    )
    sent = _last(fakes, "claude").json["messages"][1]["content"][0]
    assert sent["type"] == "thinking" and sent["signature"] == "c2lnLWZha2U="
    assert follow.stop_reason == "end_turn"


# ---------------------------------------------------------------- count_tokens


def test_count_tokens(client: anthropic.Anthropic) -> None:
    short = client.messages.count_tokens(
        model="claude", messages=[{"role": "user", "content": "hi"}]
    )
    long = client.messages.count_tokens(
        model="gemini",
        system="You are a careful assistant.",
        tools=[WEATHER],
        messages=[{"role": "user", "content": "tell me about the weather " * 20}],
    )
    assert 0 < short.input_tokens < long.input_tokens
    assert long.input_tokens > 100  # 520 characters of text and a tool definition
    with pytest.raises(anthropic.NotFoundError):
        client.messages.count_tokens(model="nope", messages=[{"role": "user", "content": "hi"}])


# ---------------------------------------------------------------- errors


def test_unknown_model_is_not_found(client: anthropic.Anthropic) -> None:
    with pytest.raises(anthropic.NotFoundError) as info:
        client.messages.create(
            model="no-such-model", max_tokens=8, messages=[{"role": "user", "content": "x"}]
        )
    body = info.value.body
    assert isinstance(body, dict) and body["type"] == "error"
    assert body["error"]["type"] == "not_found_error"
    assert "no-such-model" in body["error"]["message"]
    assert info.value.request_id is not None and info.value.request_id.startswith("req_")


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"model": "gpt", "messages": [{"role": "user", "content": "x"}]}, "max_tokens"),
        (
            {"model": "gpt", "max_tokens": 8, "messages": [{"role": "robot", "content": "x"}]},
            "messages.0.role",
        ),
        (
            {
                "model": "gpt",
                "max_tokens": 8,
                "messages": [{"role": "user", "content": [{"type": "text"}]}],
            },
            "messages.0.content.0.text",
        ),
        (
            {
                "model": "gpt",
                "max_tokens": 8,
                "temperature": 1.5,
                "messages": [{"role": "user", "content": "x"}],
            },
            "temperature",
        ),
        (
            {
                "model": "gpt",
                "max_tokens": 8,
                "stop_sequences": ["a", "b", "c", "d", "e"],
                "messages": [{"role": "user", "content": "x"}],
            },
            "stop_sequences",
        ),
        (
            {
                "model": "gpt",
                "max_tokens": 8,
                "messages": [{"role": "user", "content": "x"}],
                "frequency_penalty": 1,
            },
            "frequency_penalty",
        ),
    ],
)
def test_bad_field_is_named(gateway: Gateway, body: dict[str, Any], field: str) -> None:
    # the SDK checks required fields itself, so the body goes through its raw client
    with (
        anthropic.Anthropic(base_url=gateway.url, api_key="x", max_retries=0) as c,
        pytest.raises(anthropic.BadRequestError) as info,
    ):
        c.post("/v1/messages", body=body, cast_to=object)
    err = info.value.body
    assert isinstance(err, dict) and err["type"] == "error"
    assert err["error"]["type"] == "invalid_request_error"
    assert field in err["error"]["message"]


def test_bad_field_through_the_typed_client(client: anthropic.Anthropic) -> None:
    with pytest.raises(anthropic.BadRequestError) as info:
        client.messages.create(
            model="gpt",
            max_tokens=8,
            messages=[{"role": "user", "content": [cast(Any, {"type": "document", "source": {}})]}],
        )
    assert "messages.0.content.0.type" in info.value.message


def test_upstream_failure_has_anthropic_shape(client: anthropic.Anthropic, fakes: Fakes) -> None:
    async def overloaded(request: object, rec: Recorded) -> object:
        return anthropic_error(529, "overloaded_error", "Overloaded")

    fakes["claude"][1].script.extend([overloaded, overloaded])  # type: ignore[list-item]
    with pytest.raises(anthropic.APIStatusError) as info:
        client.messages.create(
            model="claude", max_tokens=8, messages=[{"role": "user", "content": "x"}]
        )
    assert info.value.status_code == 503
    assert isinstance(info.value.body, dict)
    assert info.value.body["error"]["type"] == "overloaded_error"


def test_unknown_path_has_anthropic_shape(gateway: Gateway) -> None:
    with (
        anthropic.Anthropic(base_url=gateway.url, api_key="x", max_retries=0) as c,
        pytest.raises(anthropic.NotFoundError) as info,
    ):
        c.post("/v1/messages/nope", body={}, cast_to=object)
    assert isinstance(info.value.body, dict) and info.value.body["type"] == "error"


def test_auth_and_budget_errors_have_anthropic_shape(
    start_gateway: Callable[..., Gateway], fakes: Fakes
) -> None:
    gw = start_gateway(_config(fakes, embedded=False), ENV | {"MODELYARD_ADMIN_KEY": ADMIN})
    rich = make_key(gw, "rich")
    poor = make_key(gw, "poor", limits={"budget_usd": 1e-6})
    args: dict[str, Any] = {
        "model": "gpt",
        "max_tokens": 8,
        "messages": [{"role": "user", "content": "hi"}],
    }
    for auth in ({"api_key": "sk-not-a-key"}, {"auth_token": "sk-not-a-key"}):
        with (
            anthropic.Anthropic(base_url=gw.url, max_retries=0, **auth) as c,  # type: ignore[arg-type]
            pytest.raises(anthropic.AuthenticationError) as denied,
        ):
            c.messages.create(**args)
        assert isinstance(denied.value.body, dict)
        assert denied.value.body["error"]["type"] == "authentication_error"
    with anthropic.Anthropic(base_url=gw.url, api_key=rich, max_retries=0) as c:
        assert _text(c.messages.create(**args)) == "Hello from fake openai: hi"
    with (
        anthropic.Anthropic(base_url=gw.url, auth_token=poor, max_retries=0) as c,
        pytest.raises(anthropic.APIStatusError) as refused,
    ):
        c.messages.create(**args)
    assert refused.value.status_code == 402
    assert isinstance(refused.value.body, dict)
    assert refused.value.body["error"]["type"] == "billing_error"


# ---------------------------------------------------------------- local model


@pytest.mark.local_model
def test_local_model_plain_streaming_and_count(
    start_gateway: Callable[..., Gateway], fakes: Fakes
) -> None:
    gw = start_gateway(_config(fakes, embedded=True), ENV)
    with anthropic.Anthropic(base_url=gw.url, api_key="x", max_retries=0, timeout=120) as c:
        message = c.messages.create(
            model=LOCAL,
            max_tokens=32,
            extra_body={"temperature": 0},
            messages=[{"role": "user", "content": "What is the capital of France?"}],
        )
        assert "Paris" in _text(message)
        assert message.stop_reason in ("end_turn", "max_tokens")
        assert message.usage.input_tokens > 5 and 0 < message.usage.output_tokens <= 32
        with c.messages.stream(
            model=LOCAL,
            max_tokens=24,
            stop_sequences=["\n"],
            messages=[{"role": "user", "content": "Name a color of the sky on a clear day."}],
        ) as stream:
            text = "".join(stream.text_stream)
            final = stream.get_final_message()
        assert text.strip() and _text(final) == text and "\n" not in text
        assert final.usage.output_tokens > 0
        count = c.messages.count_tokens(model=LOCAL, messages=[{"role": "user", "content": "hi"}])
        assert count.input_tokens > 0
