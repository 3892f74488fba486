"""Pure tests of the Gemini wire translators: no server, dicts in and out."""

from __future__ import annotations

import base64
from typing import Any

import orjson
import pytest

from modelyard.errors import InvalidRequestError
from modelyard.types import ChatRequest, EmbeddingRequest
from modelyard.wire import gemini as g


def req(messages: list[dict[str, Any]], **kw: Any) -> ChatRequest:
    return ChatRequest.model_validate({"model": "gemini-2.5-flash", "messages": messages, **kw})


WEATHER_TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Weather for a city",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string"}},
            "required": ["city"],
            "additionalProperties": False,
        },
    },
}
TIME_TOOL = {"type": "function", "function": {"name": "get_time"}}


def call(id_: str, name: str, args: str) -> dict[str, Any]:
    return {"id": id_, "type": "function", "function": {"name": name, "arguments": args}}


# ------------------------------------------------------------- requests


def test_system_and_developer_messages_become_the_system_instruction() -> None:
    body = g.chat_request_to_gemini(
        req(
            [
                {"role": "system", "content": "Be brief."},
                {"role": "developer", "content": "Answer in French."},
                {"role": "user", "content": "Hi"},
            ]
        )
    )
    assert body["systemInstruction"] == {
        "parts": [{"text": "Be brief."}, {"text": "Answer in French."}]
    }
    assert body["contents"] == [{"role": "user", "parts": [{"text": "Hi"}]}]
    assert "generationConfig" not in body and "tools" not in body


def test_consecutive_turns_of_one_role_are_merged_and_assistant_is_model() -> None:
    body = g.chat_request_to_gemini(
        req(
            [
                {"role": "user", "content": "one"},
                {"role": "user", "content": [{"type": "text", "text": "two"}]},
                {"role": "assistant", "content": "three"},
                {"role": "user", "content": "four"},
            ]
        )
    )
    assert body["contents"] == [
        {"role": "user", "parts": [{"text": "one"}, {"text": "two"}]},
        {"role": "model", "parts": [{"text": "three"}]},
        {"role": "user", "parts": [{"text": "four"}]},
    ]


def test_tool_calls_and_results_recover_the_function_name() -> None:
    body = g.chat_request_to_gemini(
        req(
            [
                {"role": "user", "content": "weather and time?"},
                {
                    "role": "assistant",
                    "content": None,
                    "tool_calls": [
                        call("call_a", "get_weather", '{"city": "Paris"}'),
                        call("call_b", "get_time", ""),
                    ],
                },
                {"role": "tool", "tool_call_id": "call_b", "content": "12:00"},
                {"role": "tool", "tool_call_id": "call_a", "content": '{"temp": 21}'},
                {"role": "user", "content": "thanks"},
            ],
            tools=[WEATHER_TOOL, TIME_TOOL],
        )
    )
    model_turn, results = body["contents"][1], body["contents"][2]
    assert model_turn == {
        "role": "model",
        "parts": [
            {
                "functionCall": {"name": "get_weather", "args": {"city": "Paris"}, "id": "call_a"},
                "thoughtSignature": g.SKIP_SIGNATURE,
            },
            {"functionCall": {"name": "get_time", "args": {}, "id": "call_b"}},
        ],
    }
    # both results and the next user text are one user turn, in order
    time_result = {"name": "get_time", "response": {"output": "12:00"}, "id": "call_b"}
    weather_result = {"name": "get_weather", "response": {"temp": 21}, "id": "call_a"}
    assert results == {
        "role": "user",
        "parts": [
            {"functionResponse": time_result},
            {"functionResponse": weather_result},
            {"text": "thanks"},
        ],
    }
    assert len(body["contents"]) == 3


def test_gemini_call_ids_go_back_with_the_call_and_its_result() -> None:
    """Regression: Gemini's call ``id`` must come back with the call and its result; it was lost."""
    answer = g.chat_response_from_gemini(
        {
            "candidates": [
                {
                    "content": {
                        "role": "model",
                        "parts": [
                            {"functionCall": {"id": "fc-1", "name": "get_time", "args": {}}},
                            {"functionCall": {"name": "get_time", "args": {}}},
                        ],
                    },
                    "finishReason": "STOP",
                }
            ]
        },
        model="gemini-2.5-flash",
    )
    given_id, made_up = (c.id for c in answer.choices[0].tool_calls)
    assert given_id == "fc-1" and made_up.startswith("call_")
    body = g.chat_request_to_gemini(
        req(
            [
                {"role": "user", "content": "time twice?"},
                {
                    "role": "assistant",
                    "content": None,
                    "tool_calls": [
                        call(given_id, "get_time", "{}"),
                        call(made_up, "get_time", "{}"),
                    ],
                },
                {"role": "tool", "tool_call_id": given_id, "content": "12:00"},
                {"role": "tool", "tool_call_id": made_up, "content": "12:01"},
            ],
            tools=[TIME_TOOL],
        )
    )
    calls = [p["functionCall"] for p in body["contents"][1]["parts"]]
    results = [p["functionResponse"] for p in body["contents"][2]["parts"]]
    assert [c.get("id") for c in calls] == [r.get("id") for r in results] == ["fc-1", None]


def test_a_tool_result_without_its_call_is_refused_with_the_param() -> None:
    with pytest.raises(InvalidRequestError) as info:
        g.chat_request_to_gemini(
            req(
                [
                    {"role": "user", "content": "x"},
                    {"role": "tool", "tool_call_id": "call_missing", "content": "1"},
                ]
            )
        )
    assert info.value.param == "messages.1.tool_call_id"


def test_tool_call_arguments_that_are_not_a_json_object_are_refused() -> None:
    for bad in ("{not json", "[1, 2]"):
        with pytest.raises(InvalidRequestError) as info:
            g.chat_request_to_gemini(
                req(
                    [
                        {"role": "user", "content": "x"},
                        {"role": "assistant", "tool_calls": [call("c1", "get_weather", bad)]},
                    ]
                )
            )
        assert info.value.param == "messages.1.tool_calls.0.function.arguments"


def test_images_become_inline_data_or_file_data() -> None:
    png = base64.b64encode(b"\x89PNG\r\n").decode()
    body = g.chat_request_to_gemini(
        req(
            [
                {
                    "role": "user",
                    "content": [
                        {"type": "text", "text": "what is this?"},
                        {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{png}"}},
                        {
                            "type": "image_url",
                            "image_url": {"url": "https://example.com/a/cat.JPG?x=1"},
                        },
                        {"type": "image_url", "image_url": {"url": "https://example.com/picture"}},
                        {"type": "image_url", "image_url": {"url": "data:text/plain,hi%20there"}},
                    ],
                }
            ]
        )
    )
    assert body["contents"][0]["parts"] == [
        {"text": "what is this?"},
        {"inlineData": {"mimeType": "image/png", "data": png}},
        {"fileData": {"fileUri": "https://example.com/a/cat.JPG?x=1", "mimeType": "image/jpeg"}},
        {"fileData": {"fileUri": "https://example.com/picture"}},
        {"inlineData": {"mimeType": "text/plain", "data": base64.b64encode(b"hi there").decode()}},
    ]


@pytest.mark.parametrize("url", ["ftp://example.com/a.png", "data:image/png;base64,@@@"])
def test_unusable_image_urls_are_refused(url: str) -> None:
    with pytest.raises(InvalidRequestError) as info:
        g.chat_request_to_gemini(
            req([{"role": "user", "content": [{"type": "image_url", "image_url": {"url": url}}]}])
        )
    assert info.value.param == "messages.0.content.0.image_url.url"


def test_a_request_with_only_system_messages_is_refused() -> None:
    with pytest.raises(InvalidRequestError):
        g.chat_request_to_gemini(req([{"role": "system", "content": "alone"}]))


def test_tools_are_declared_with_their_json_schema() -> None:
    body = g.chat_request_to_gemini(
        req([{"role": "user", "content": "x"}], tools=[WEATHER_TOOL, TIME_TOOL])
    )
    assert body["tools"] == [
        {
            "functionDeclarations": [
                {
                    "name": "get_weather",
                    "description": "Weather for a city",
                    "parametersJsonSchema": WEATHER_TOOL["function"]["parameters"],
                },  # type: ignore[index]
                {"name": "get_time"},
            ]
        }
    ]
    assert "toolConfig" not in body


@pytest.mark.parametrize(
    ("choice", "expected"),
    [
        ("auto", {"mode": "AUTO"}),
        ("none", {"mode": "NONE"}),
        ("required", {"mode": "ANY"}),
        (
            {"type": "function", "function": {"name": "get_time"}},
            {"mode": "ANY", "allowedFunctionNames": ["get_time"]},
        ),
    ],
)
def test_tool_choice_maps_to_function_calling_config(choice: Any, expected: Any) -> None:
    body = g.chat_request_to_gemini(
        req([{"role": "user", "content": "x"}], tools=[WEATHER_TOOL, TIME_TOOL], tool_choice=choice)
    )
    assert body["toolConfig"] == {"functionCallingConfig": expected}


def test_sampling_fields_go_to_generation_config() -> None:
    body = g.chat_request_to_gemini(
        req(
            [{"role": "user", "content": "x"}],
            temperature=0.3,
            top_p=0.9,
            max_completion_tokens=77,
            max_tokens=5,
            stop="END",
            n=3,
            seed=7,
            presence_penalty=0.5,
            frequency_penalty=-0.5,
        )
    )
    assert body["generationConfig"] == {
        "temperature": 0.3,
        "topP": 0.9,
        "maxOutputTokens": 77,
        "seed": 7,
        "presencePenalty": 0.5,
        "frequencyPenalty": -0.5,
        "stopSequences": ["END"],
        "candidateCount": 3,
    }


def test_json_modes_set_the_mime_type_and_the_json_schema() -> None:
    schema = {"type": "object", "properties": {"city": {"type": "string"}}}
    plain = g.chat_request_to_gemini(
        req([{"role": "user", "content": "x"}], response_format={"type": "json_object"})
    )
    assert plain["generationConfig"] == {"responseMimeType": "application/json"}
    strict = g.chat_request_to_gemini(
        req(
            [{"role": "user", "content": "x"}],
            response_format={
                "type": "json_schema",
                "json_schema": {"name": "city", "schema": schema, "strict": True},
            },
        )
    )
    assert strict["generationConfig"] == {
        "responseMimeType": "application/json",
        "responseJsonSchema": schema,
    }
    text = g.chat_request_to_gemini(
        req([{"role": "user", "content": "x"}], response_format={"type": "text"})
    )
    assert "generationConfig" not in text


def test_embedding_request_has_one_request_per_input() -> None:
    body = g.embed_request_to_gemini(
        EmbeddingRequest(model="e", input=["a", "b"], dimensions=4), "gemini-embedding-001"
    )
    assert body == {
        "requests": [
            {
                "model": "models/gemini-embedding-001",
                "content": {"parts": [{"text": "a"}]},
                "outputDimensionality": 4,
            },
            {
                "model": "models/gemini-embedding-001",
                "content": {"parts": [{"text": "b"}]},
                "outputDimensionality": 4,
            },
        ]
    }
    assert g.model_resource("models/x") == "models/x"
    assert g.model_resource("tunedModels/t") == "tunedModels/t"


# ------------------------------------------------------------ responses

USAGE = {
    "promptTokenCount": 11,
    "candidatesTokenCount": 5,
    "totalTokenCount": 26,
    "cachedContentTokenCount": 4,
    "thoughtsTokenCount": 10,
}


def test_response_maps_text_reasoning_usage_and_ids() -> None:
    resp = g.chat_response_from_gemini(
        {
            "candidates": [
                {
                    "content": {
                        "role": "model",
                        "parts": [
                            {"text": "thinking...", "thought": True},
                            {"text": "Hello "},
                            {"text": "world"},
                        ],
                    },
                    "finishReason": "STOP",
                    "index": 0,
                }
            ],
            "usageMetadata": USAGE,
            "modelVersion": "gemini-2.5-flash-001",
            "responseId": "r-1",
        },
        model="gemini-2.5-flash",
        created=123,
    )
    assert (resp.id, resp.model, resp.created) == ("r-1", "gemini-2.5-flash-001", 123)
    choice = resp.choices[0]
    assert (choice.content, choice.reasoning, choice.finish_reason) == (
        "Hello world",
        "thinking...",
        "stop",
    )
    u = resp.usage
    assert (u.input_tokens, u.output_tokens, u.cached_input_tokens, u.reasoning_tokens) == (
        11,
        15,
        4,
        10,
    )
    assert u.total_tokens == USAGE["totalTokenCount"]


def test_function_calls_become_tool_calls_with_signature_in_the_id() -> None:
    signature = base64.b64encode(b"\xfb\xff\xfe sig").decode()  # has + / and =
    assert any(c in signature for c in "+/=")
    resp = g.chat_response_from_gemini(
        {
            "candidates": [
                {
                    "content": {
                        "role": "model",
                        "parts": [
                            {
                                "functionCall": {"name": "get_weather", "args": {"city": "Paris"}},
                                "thoughtSignature": signature,
                            },
                            {"functionCall": {"id": "fc-7", "name": "get_time"}},
                        ],
                    },
                    "finishReason": "STOP",
                }
            ]
        },
        model="m",
    )
    choice = resp.choices[0]
    assert choice.finish_reason == "tool_calls" and choice.content is None
    first, second = choice.tool_calls
    assert first.id.startswith("call_") and first.name == "get_weather"
    assert orjson.loads(first.arguments) == {"city": "Paris"}
    assert g.decode_signature(first.id) == signature
    assert all(c.isalnum() or c in "_-" for c in first.id)
    assert (second.id, second.arguments) == ("fc-7", "{}")
    assert g.decode_signature(second.id) is None
    # the signature goes back on the call it came with
    body = g.chat_request_to_gemini(
        req(
            [
                {"role": "user", "content": "x"},
                {
                    "role": "assistant",
                    "tool_calls": [
                        call(first.id, first.name, first.arguments),
                        call(second.id, second.name, "{}"),
                    ],
                },
                {"role": "tool", "tool_call_id": first.id, "content": "sunny"},
                {"role": "tool", "tool_call_id": second.id, "content": "noon"},
            ]
        )
    )
    parts = body["contents"][1]["parts"]
    assert parts[0]["thoughtSignature"] == signature
    assert "thoughtSignature" not in parts[1]
    assert [p["functionResponse"]["name"] for p in body["contents"][2]["parts"]] == [
        "get_weather",
        "get_time",
    ]


@pytest.mark.parametrize(
    ("reason", "expected"),
    [
        ("MAX_TOKENS", "length"),
        ("SAFETY", "content_filter"),
        ("RECITATION", "content_filter"),
        ("BLOCKLIST", "content_filter"),
        ("PROHIBITED_CONTENT", "content_filter"),
        ("SPII", "content_filter"),
        ("OTHER", "stop"),
        ("STOP", "stop"),
    ],
)
def test_finish_reasons(reason: str, expected: str) -> None:
    resp = g.chat_response_from_gemini(
        {"candidates": [{"content": {"parts": [{"text": "x"}]}, "finishReason": reason}]}, model="m"
    )
    assert resp.choices[0].finish_reason == expected


def test_candidates_become_choices_in_index_order() -> None:
    resp = g.chat_response_from_gemini(
        {
            "candidates": [
                {"content": {"parts": [{"text": "b"}]}, "finishReason": "STOP", "index": 1},
                {"content": {"parts": [{"text": "a"}]}, "finishReason": "MAX_TOKENS", "index": 0},
            ]
        },
        model="m",
    )
    assert [(c.index, c.content, c.finish_reason) for c in resp.choices] == [
        (0, "a", "length"),
        (1, "b", "stop"),
    ]


def test_a_blocked_prompt_is_a_content_filter_finish() -> None:
    data = {
        "promptFeedback": {"blockReason": "SAFETY"},
        "usageMetadata": {"promptTokenCount": 9, "totalTokenCount": 9},
    }
    resp = g.chat_response_from_gemini(data, model="m")
    assert [(c.index, c.finish_reason) for c in resp.choices] == [(0, "content_filter")]
    assert resp.usage.input_tokens == 9
    chunks = g.GeminiStreamTranslator("m").feed(data)
    assert chunks[0].choices[0].role == "assistant"
    assert chunks[-1].choices[0].finish_reason == "content_filter"


def test_embedding_response() -> None:
    resp = g.embed_response_from_gemini(
        {"embeddings": [{"values": [0.5, -1]}, {"values": [2, 3]}]}, model="e"
    )
    assert resp.vectors == [[0.5, -1.0], [2.0, 3.0]]
    assert resp.usage.input_tokens == 0
