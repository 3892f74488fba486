"""The anthropic SDK against every upstream: tools, tool choice, parallel calls, and errors."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any, cast

import anthropic
import pytest
from aiohttp import web

from tests.conftest import Gateway
from tests.e2e.anthropic.support import (
    ENV,
    REMOTE,
    WEATHER,
    Fakes,
    config,
    last_sent,
    text_of,
)
from tests.e2e.governance.support import ADMIN, make_key
from tests.fakes.anthropic_upstream import anthropic_error
from tests.fakes.harness import Handler, Recorded, send_sse, sse

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
    assert final.stop_reason == "end_turn" and text_of(final)
    sent = last_sent(fakes, model).json
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
    sent = last_sent(fakes, model).json
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
    assert text_of(final) == "Hello from fake openai: Which is warmer?"
    sent = last_sent(fakes, "gpt").json["messages"]
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
    gw = start_gateway(config(fakes, embedded=False), ENV | {"MODELYARD_ADMIN_KEY": ADMIN})
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
        assert text_of(c.messages.create(**args)) == "Hello from fake openai: hi"
    with (
        anthropic.Anthropic(base_url=gw.url, auth_token=poor, max_retries=0) as c,
        pytest.raises(anthropic.APIStatusError) as refused,
    ):
        c.messages.create(**args)
    assert refused.value.status_code == 402
    assert isinstance(refused.value.body, dict)
    assert refused.value.body["error"]["type"] == "billing_error"
