"""The Anthropic Messages translators, without a server."""

from __future__ import annotations

from typing import Any

import pytest

from modelyard.errors import InvalidRequestError
from modelyard.types import ChatRequest, ToolCallOut, Usage
from modelyard.wire import anthropic as wire

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


def request(**fields: Any) -> ChatRequest:
    fields.setdefault("model", "claude")
    fields.setdefault("messages", [{"role": "user", "content": "hi"}])
    return ChatRequest.model_validate(fields)


def body(**fields: Any) -> dict[str, Any]:
    return wire.messages_request(request(**fields), model="claude-sonnet-4-5")


# ------------------------------------------------------------------ requests


def test_minimal_request_has_exactly_the_required_fields() -> None:
    assert body() == {
        "model": "claude-sonnet-4-5",
        "max_tokens": 4096,
        "messages": [{"role": "user", "content": [{"type": "text", "text": "hi"}]}],
    }


def test_max_tokens_comes_from_the_client_then_the_deployment_then_the_default() -> None:
    req = request(max_tokens=50, max_completion_tokens=70)
    assert wire.messages_request(req, model="m", default_max_tokens=900)["max_tokens"] == 70
    assert wire.messages_request(request(max_tokens=50), model="m")["max_tokens"] == 50
    req = request()
    assert wire.messages_request(req, model="m", default_max_tokens=900)["max_tokens"] == 900
    assert wire.messages_request(req, model="m")["max_tokens"] == wire.DEFAULT_MAX_TOKENS


def test_system_and_developer_messages_go_to_the_top_level_system() -> None:
    out = body(
        messages=[
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": "hi"},
            {"role": "developer", "content": [{"type": "text", "text": "Answer in French."}]},
            {"role": "user", "content": "again"},
        ]
    )
    assert out["system"] == "Be brief.\n\nAnswer in French."
    # with the system turn gone the two user turns are adjacent and become one
    assert out["messages"] == [
        {
            "role": "user",
            "content": [{"type": "text", "text": "hi"}, {"type": "text", "text": "again"}],
        }
    ]


def test_sampling_fields_are_mapped_and_temperature_clamped_to_anthropic_range() -> None:
    out = body(temperature=1.7, top_p=0.9, stop="END", user="u-42", seed=7, presence_penalty=1)
    assert out["temperature"] == 1.0
    assert out["top_p"] == 0.9
    assert out["stop_sequences"] == ["END"]
    assert out["metadata"] == {"user_id": "u-42"}
    assert "seed" not in out and "presence_penalty" not in out and "stop" not in out
    assert body(temperature=0.3)["temperature"] == 0.3
    assert body(stop=["a", "b"])["stop_sequences"] == ["a", "b"]


def test_anthropic_only_extras_pass_through_and_stream_flag_is_set() -> None:
    req = request(top_k=5, thinking={"type": "enabled", "budget_tokens": 1024}, logit_bias={})
    out = wire.messages_request(req, model="m", stream=True)
    assert out["top_k"] == 5
    assert out["thinking"] == {"type": "enabled", "budget_tokens": 1024}
    assert out["stream"] is True
    assert "logit_bias" not in out


def test_more_than_one_choice_is_refused() -> None:
    with pytest.raises(InvalidRequestError) as info:
        body(n=2)
    assert info.value.param == "n"


def test_tool_round_trip_history_becomes_tool_use_and_tool_result_blocks() -> None:
    out = body(
        tools=[WEATHER_TOOL],
        messages=[
            {"role": "user", "content": "weather in Paris and Rome?"},
            {
                "role": "assistant",
                "content": "",
                "tool_calls": [
                    {
                        "id": "call_1",
                        "type": "function",
                        "function": {"name": "get_weather", "arguments": '{"city":"Paris"}'},
                    },
                    {
                        "id": "call_2",
                        "type": "function",
                        "function": {"name": "get_weather", "arguments": ""},
                    },
                ],
            },
            {"role": "tool", "tool_call_id": "call_1", "content": "sunny"},
            {
                "role": "tool",
                "tool_call_id": "call_2",
                "content": [{"type": "text", "text": "rain"}],
            },
            {"role": "user", "content": "thanks"},
        ],
    )
    assert out["messages"] == [
        {"role": "user", "content": [{"type": "text", "text": "weather in Paris and Rome?"}]},
        {
            "role": "assistant",
            "content": [
                {
                    "type": "tool_use",
                    "id": "call_1",
                    "name": "get_weather",
                    "input": {"city": "Paris"},
                },
                {"type": "tool_use", "id": "call_2", "name": "get_weather", "input": {}},
            ],
        },
        {
            "role": "user",
            "content": [
                {"type": "tool_result", "tool_use_id": "call_1", "content": "sunny"},
                {
                    "type": "tool_result",
                    "tool_use_id": "call_2",
                    "content": [{"type": "text", "text": "rain"}],
                },
                {"type": "text", "text": "thanks"},
            ],
        },
    ]
    assert out["tools"] == [
        {
            "name": "get_weather",
            "description": "Weather for a city",
            "input_schema": WEATHER_TOOL["function"]["parameters"],  # type: ignore[index]
        }
    ]
    assert "tool_choice" not in out


@pytest.mark.parametrize("arguments", ["not json", "[1, 2]"])
def test_tool_call_arguments_that_are_not_a_json_object_are_refused(arguments: str) -> None:
    with pytest.raises(InvalidRequestError) as info:
        body(
            messages=[
                {"role": "user", "content": "x"},
                {
                    "role": "assistant",
                    "tool_calls": [
                        {
                            "id": "c",
                            "type": "function",
                            "function": {"name": "f", "arguments": arguments},
                        }
                    ],
                },
            ]
        )
    assert info.value.param == "messages.1.tool_calls.0.function.arguments"


def test_images_become_base64_or_url_sources() -> None:
    out = body(
        messages=[
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "what are these?"},
                    {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0K"}},
                    {"type": "image_url", "image_url": {"url": "data:image/jpg;base64,/9j/"}},
                    {"type": "image_url", "image_url": {"url": "https://example.com/cat.webp"}},
                ],
            }
        ]
    )
    assert out["messages"][0]["content"] == [
        {"type": "text", "text": "what are these?"},
        {
            "type": "image",
            "source": {"type": "base64", "media_type": "image/png", "data": "iVBORw0K"},
        },
        {"type": "image", "source": {"type": "base64", "media_type": "image/jpeg", "data": "/9j/"}},
        {"type": "image", "source": {"type": "url", "url": "https://example.com/cat.webp"}},
    ]


@pytest.mark.parametrize(
    "url", ["ftp://example.com/a.png", "data:image/png,rawbytes", "data:image/tiff;base64,AAAA"]
)
def test_unusable_images_are_refused_with_the_field_named(url: str) -> None:
    with pytest.raises(InvalidRequestError) as info:
        body(
            messages=[
                {
                    "role": "user",
                    "content": [
                        {"type": "text", "text": "x"},
                        {"type": "image_url", "image_url": {"url": url}},
                    ],
                }
            ]
        )
    assert info.value.param == "messages.0.content.1.image_url.url"


@pytest.mark.parametrize(
    ("choice", "parallel", "expected"),
    [
        ("auto", None, {"type": "auto"}),
        ("required", None, {"type": "any"}),
        ("none", None, {"type": "none"}),
        (
            {"type": "function", "function": {"name": "get_weather"}},
            None,
            {"type": "tool", "name": "get_weather"},
        ),
        (None, False, {"type": "auto", "disable_parallel_tool_use": True}),
        ("required", False, {"type": "any", "disable_parallel_tool_use": True}),
        ("none", False, {"type": "none"}),
        (None, True, None),
    ],
)
def test_tool_choice_variants(choice: Any, parallel: bool | None, expected: Any) -> None:
    out = body(tools=[WEATHER_TOOL], tool_choice=choice, parallel_tool_calls=parallel)
    assert out.get("tool_choice") == expected


def test_tool_choice_without_tools_is_not_sent() -> None:
    assert "tool_choice" not in body(tool_choice="auto")
    assert "tools" not in body(tool_choice="none")


def test_json_schema_is_emulated_with_a_forced_tool() -> None:
    schema = {"type": "object", "properties": {"answer": {"type": "string"}}}
    out = body(
        response_format={
            "type": "json_schema",
            "json_schema": {"name": "reply", "schema": schema, "description": "The reply"},
        }
    )
    assert out["tools"] == [
        {"name": "json_response", "description": "The reply", "input_schema": schema}
    ]
    assert out["tool_choice"] == {"type": "tool", "name": "json_response"}


def test_json_object_uses_an_open_object_schema() -> None:
    out = body(response_format={"type": "json_object"})
    assert out["tools"][0]["input_schema"] == {"type": "object"}
    assert out["tool_choice"] == {"type": "tool", "name": "json_response"}
    assert "tools" not in body(response_format={"type": "text"})


def test_json_format_beside_client_tools_lets_the_model_pick_any_tool() -> None:
    out = body(tools=[WEATHER_TOOL], response_format={"type": "json_object"})
    assert [t["name"] for t in out["tools"]] == ["get_weather", "json_response"]
    assert out["tool_choice"] == {"type": "any"}
    out = body(tools=[WEATHER_TOOL], tool_choice="none", response_format={"type": "json_object"})
    assert [t["name"] for t in out["tools"]] == ["json_response"]


def test_client_tool_named_like_the_json_tool_is_refused() -> None:
    tool = {"type": "function", "function": {"name": "json_response"}}
    with pytest.raises(InvalidRequestError) as info:
        body(tools=[tool], response_format={"type": "json_object"})
    assert info.value.param == "tools"
    assert body(tools=[tool])["tools"][0]["input_schema"] == {"type": "object", "properties": {}}


# ----------------------------------------------------------------- responses


def message(content: list[dict[str, Any]], stop_reason: str = "end_turn") -> dict[str, Any]:
    return {
        "id": "msg_1",
        "type": "message",
        "role": "assistant",
        "model": "claude-sonnet-4-5",
        "content": content,
        "stop_reason": stop_reason,
        "stop_sequence": None,
        "usage": {"input_tokens": 12, "output_tokens": 30},
    }


def test_response_with_thinking_text_and_tool_use() -> None:
    resp = wire.chat_response_from_message(
        message(
            [
                {"type": "thinking", "thinking": "Let me think.", "signature": "sig"},
                {"type": "text", "text": "Checking "},
                {"type": "text", "text": "now."},
                {
                    "type": "tool_use",
                    "id": "toolu_1",
                    "name": "get_weather",
                    "input": {"city": "Paris", "days": 2},
                },
            ],
            "tool_use",
        ),
        created=1700,
    )
    assert (resp.id, resp.model, resp.created) == ("msg_1", "claude-sonnet-4-5", 1700)
    choice = resp.choices[0]
    assert choice.content == "Checking now."
    assert choice.reasoning == "Let me think."
    assert choice.finish_reason == "tool_calls"
    assert choice.tool_calls == [ToolCallOut("toolu_1", "get_weather", '{"city":"Paris","days":2}')]
    assert resp.usage == Usage(input_tokens=12, output_tokens=30)


def test_tool_use_only_has_null_content_and_empty_answer_has_empty_text() -> None:
    only_tool = message([{"type": "tool_use", "id": "t", "name": "f", "input": {}}], "tool_use")
    choice = wire.chat_response_from_message(only_tool, created=0).choices[0]
    assert choice.content is None
    assert choice.tool_calls[0].arguments == "{}"
    empty = wire.chat_response_from_message(message([], "max_tokens"), created=0).choices[0]
    assert (empty.content, empty.finish_reason, empty.reasoning) == ("", "length", None)


@pytest.mark.parametrize(
    ("stop_reason", "finish"),
    [
        ("end_turn", "stop"),
        ("stop_sequence", "stop"),
        ("max_tokens", "length"),
        ("tool_use", "tool_calls"),
        ("refusal", "content_filter"),
        ("model_context_window_exceeded", "length"),
    ],
)
def test_stop_reasons(stop_reason: str, finish: str) -> None:
    resp = wire.chat_response_from_message(message([], stop_reason), created=0)
    assert resp.choices[0].finish_reason == finish


def test_usage_input_includes_cache_reads_and_writes() -> None:
    usage = wire.usage_from_dict(
        {
            "input_tokens": 10,
            "output_tokens": 5,
            "cache_read_input_tokens": 100,
            "cache_creation_input_tokens": 20,
            "output_tokens_details": {"thinking_tokens": 3},
        }
    )
    assert usage == Usage(
        input_tokens=130,
        output_tokens=5,
        cached_input_tokens=100,
        cache_write_tokens=20,
        reasoning_tokens=3,
    )


def test_forced_json_tool_answer_becomes_text_content() -> None:
    data = message(
        [{"type": "tool_use", "id": "t", "name": "json_response", "input": {"answer": "ok"}}],
        "tool_use",
    )
    choice = wire.chat_response_from_message(data, created=0, json_mode=True).choices[0]
    assert choice.content == '{"answer":"ok"}'
    assert choice.tool_calls == []
    assert choice.finish_reason == "stop"
    # without JSON mode the same block is an ordinary tool call
    plain = wire.chat_response_from_message(data, created=0).choices[0]
    assert plain.content is None and plain.tool_calls[0].name == "json_response"
