"""Tool calling and JSON output through the gateway, with the official openai SDK as the client.

One gateway process fronts the OpenAI, Anthropic and Gemini fakes. For each:
a two-step tool call (call, result, answer), parallel tool calls streamed and
not, every ``tool_choice`` mode as the vendor spells it, and JSON schema
output in the vendor's own form. The fakes check what the vendors check
(results that answer the previous turn's calls, thought signatures, ...) and
record what they got, which the tests assert on. The embedded model cannot
call tools: its tests check it refuses a forced call and reads a tool history.

What a vendor cannot express is not asserted: Gemini before version 3 gives
its calls no ids (the gateway makes them up and keeps them to itself), and
no Gemini has a ``parallel_tool_calls`` switch.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from typing import Any

import openai
import pytest

from tests.conftest import UPSTREAM_KEY, Gateway
from tests.fakes.anthropic_upstream import create_fake_anthropic
from tests.fakes.gemini_upstream import create_fake_gemini
from tests.fakes.harness import LoopbackServer, Recorded, Recorder
from tests.fakes.openai_upstream import create_fake_openai

CONFIG = """
embedded_models: false
deployments:
  - name: gpt
    provider: openai
    model: gpt-4o-mini
    base_url: {openai}/v1
    api_key_env: BENCH_KEY
    prices: {{input: 1, output: 2}}
  - name: claude
    provider: anthropic
    model: claude-sonnet-4-5
    base_url: {anthropic}
    max_output_tokens: 1024
    prices: {{input: 1, output: 2}}
  - name: gemini
    provider: gemini
    model: gemini-2.5-flash
    base_url: {gemini}
    prices: {{input: 1, output: 2}}
  - name: gemini-3
    provider: gemini
    model: gemini-3-pro-preview
    base_url: {gemini}
    prices: {{input: 1, output: 2}}
"""

VENDORS = ["gpt", "claude", "gemini", "gemini-3"]  # Gemini 3 gives its calls ids


def _tool(name: str, description: str) -> dict[str, Any]:
    schema = {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}
    return {
        "type": "function",
        "function": {"name": name, "description": description, "parameters": schema},
    }


TOOLS = [_tool("get_weather", "Weather in a city"), _tool("get_time", "Local time in a city")]
BOTH = "What are the weather and the time in Paris? Use get_weather and get_time."
SCHEMA = {
    "type": "object",
    "properties": {"answer": {"type": "string"}},
    "required": ["answer"],
    "additionalProperties": False,
}


@pytest.fixture(scope="module")
def upstreams() -> Iterator[dict[str, tuple[LoopbackServer, Recorder]]]:
    """The three fakes; each cuts its streams into small pieces, splitting characters."""
    o_rec, a_rec, g_rec = Recorder(), Recorder(), Recorder()
    with (
        LoopbackServer(create_fake_openai(o_rec, chunking=3)) as o,
        LoopbackServer(create_fake_anthropic(a_rec, chunking=7)) as a,
        LoopbackServer(create_fake_gemini(g_rec, chunking=5)) as g,
    ):
        yield {
            "gpt": (o, o_rec),
            "claude": (a, a_rec),
            "gemini": (g, g_rec),
            "gemini-3": (g, g_rec),
        }


@pytest.fixture(scope="module")
def gateway(
    start_module_gateway: Callable[..., Gateway],
    upstreams: dict[str, tuple[LoopbackServer, Recorder]],
) -> Gateway:
    urls = {name: server.url for name, (server, _) in upstreams.items()}
    config = CONFIG.format(openai=urls["gpt"], anthropic=urls["claude"], gemini=urls["gemini"])
    env = {"BENCH_KEY": UPSTREAM_KEY, "ANTHROPIC_API_KEY": "sk-ant-test", "GEMINI_API_KEY": "g"}
    return start_module_gateway(config, env)


@pytest.fixture
def client(gateway: Gateway) -> Iterator[openai.OpenAI]:
    with openai.OpenAI(base_url=gateway.v1, api_key="x", max_retries=0) as c:
        yield c


def _sent(upstreams: dict[str, tuple[LoopbackServer, Recorder]], vendor: str) -> Recorded:
    return upstreams[vendor][1].last


def _ask(client: openai.OpenAI, stream: bool, **kwargs: Any) -> tuple[Any, list[Any], str | None]:
    """(content, tool calls as (id, name, arguments), finish reason), streamed or not."""
    if not stream:
        choice = client.chat.completions.create(**kwargs).choices[0]
        calls = [
            (c.id, c.function.name, c.function.arguments) for c in choice.message.tool_calls or []
        ]
        return choice.message.content, calls, choice.finish_reason
    text: str | None = None
    parts: dict[int, list[str]] = {}
    finish = None
    for chunk in client.chat.completions.create(stream=True, **kwargs):
        for choice in chunk.choices:
            if choice.delta.content:
                text = (text or "") + choice.delta.content
            for call in choice.delta.tool_calls or []:
                got = parts.setdefault(call.index, ["", "", ""])
                got[0] += call.id or ""
                if call.function:
                    got[1] += call.function.name or ""
                    got[2] += call.function.arguments or ""
            finish = choice.finish_reason or finish
    return text, [tuple(parts[i]) for i in sorted(parts)], finish


def _history(calls: list[Any], results: list[str]) -> list[dict[str, Any]]:
    assistant = {
        "role": "assistant",
        "content": None,
        "tool_calls": [
            {"id": i, "type": "function", "function": {"name": n, "arguments": a}}
            for i, n, a in calls
        ],
    }
    tools = [
        {"role": "tool", "tool_call_id": call[0], "content": result}
        for call, result in zip(calls, results, strict=True)
    ]
    return [assistant, *tools]


@pytest.mark.parametrize("stream", [False, True], ids=["whole", "streamed"])
@pytest.mark.parametrize("vendor", VENDORS)
def test_two_step_tool_call(
    client: openai.OpenAI,
    upstreams: dict[str, tuple[LoopbackServer, Recorder]],
    vendor: str,
    stream: bool,
) -> None:
    messages: list[dict[str, Any]] = [{"role": "user", "content": "weather in Paris?"}]
    _, calls, finish = _ask(client, stream, model=vendor, messages=messages, tools=TOOLS)
    assert finish == "tool_calls"
    [(call_id, name, arguments)] = calls
    assert call_id and name == "get_weather"
    assert json.loads(arguments)["city"] == "Paris"
    messages += _history(calls, ['{"temp_c": 21, "sky": "☀"}'])
    content, calls, finish = _ask(client, stream, model=vendor, messages=messages, tools=TOOLS)
    assert finish == "stop" and not calls and content
    sent = _sent(upstreams, vendor).json
    if vendor == "gpt":
        assert sent["messages"][-1] == {
            "role": "tool",
            "tool_call_id": call_id,
            "content": '{"temp_c": 21, "sky": "☀"}',
        }
        assert content == 'Tool results: {"temp_c": 21, "sky": "☀"}'
    elif vendor == "claude":
        [result] = sent["messages"][-1]["content"]
        assert result == {
            "type": "tool_result",
            "tool_use_id": call_id,
            "content": '{"temp_c": 21, "sky": "☀"}',
        }
    else:
        [result] = sent["contents"][-1]["parts"]
        [call] = [p["functionCall"] for p in sent["contents"][-2]["parts"] if "functionCall" in p]
        expected = {"name": "get_weather", "response": {"temp_c": 21, "sky": "☀"}}
        if vendor == "gemini-3":  # the id Gemini gave goes back with the call and its result
            gemini_id = call_id.partition("__sig_")[0]
            assert gemini_id.startswith("fc-") and call["id"] == gemini_id
            expected["id"] = gemini_id
        else:  # an id the gateway made up stays with the gateway
            assert call_id.startswith("call_") and "id" not in call
        assert result == {"functionResponse": expected}
        assert content == 'Tool results: get_weather={"temp_c":21,"sky":"☀"}'


@pytest.mark.parametrize("vendor", VENDORS)
def test_parallel_tool_calls_streamed_and_whole_agree(
    client: openai.OpenAI, upstreams: dict[str, tuple[LoopbackServer, Recorder]], vendor: str
) -> None:
    messages: list[dict[str, Any]] = [{"role": "user", "content": BOTH}]
    answers = {}
    for stream in (False, True):
        _, calls, finish = _ask(client, stream, model=vendor, messages=messages, tools=TOOLS)
        assert finish == "tool_calls"
        assert [name for _, name, _ in calls] == ["get_weather", "get_time"]
        assert len({call_id for call_id, _, _ in calls}) == 2
        cities = [json.loads(arguments)["city"] for _, _, arguments in calls]
        assert cities[1] == "東京"  # multi-byte arguments come through whole
        answers[stream] = [(name, json.loads(arguments)) for _, name, arguments in calls]
    assert answers[False] == answers[True]
    # both results go back in one turn, each paired with its call
    messages += _history(calls, ['{"temp_c": 21}', '"10:30"'])
    content, again, finish = _ask(client, True, model=vendor, messages=messages, tools=TOOLS)
    assert finish == "stop" and not again and content
    sent = _sent(upstreams, vendor).json
    if vendor == "claude":
        results = sent["messages"][-1]["content"]
        assert [r["tool_use_id"] for r in results] == [c[0] for c in calls]
    elif vendor.startswith("gemini"):
        results = [p["functionResponse"] for p in sent["contents"][-1]["parts"]]
        ids = [c[0].partition("__sig_")[0] for c in calls] if vendor == "gemini-3" else []
        assert [r.pop("id", None) for r in results] == (ids or [None, None])
        assert results == [
            {"name": "get_weather", "response": {"temp_c": 21}},
            {"name": "get_time", "response": {"output": "10:30"}},
        ]
        calls_sent = [p for p in sent["contents"][-2]["parts"] if "functionCall" in p]
        assert "thoughtSignature" in calls_sent[0]
    else:
        assert [m["tool_call_id"] for m in sent["messages"][-2:]] == [c[0] for c in calls]


NAMED = {"type": "function", "function": {"name": "get_time"}}
VENDOR_CHOICE: dict[str, dict[str, Any]] = {
    "claude": {
        "auto": {"type": "auto"},
        "none": {"type": "none"},
        "required": {"type": "any"},
        "named": {"type": "tool", "name": "get_time"},
    },
    "gemini": {
        "auto": {"mode": "AUTO"},
        "none": {"mode": "NONE"},
        "required": {"mode": "ANY"},
        "named": {"mode": "ANY", "allowedFunctionNames": ["get_time"]},
    },
}


@pytest.mark.parametrize("mode", ["auto", "none", "required", "named"])
@pytest.mark.parametrize("vendor", VENDORS)
def test_tool_choice_reaches_the_vendor_in_its_form(
    client: openai.OpenAI,
    upstreams: dict[str, tuple[LoopbackServer, Recorder]],
    vendor: str,
    mode: str,
) -> None:
    choice: Any = NAMED if mode == "named" else mode
    content, calls, finish = _ask(
        client,
        False,
        model=vendor,
        messages=[{"role": "user", "content": "Hello there"}],
        tools=TOOLS,
        tool_choice=choice,
    )
    sent = _sent(upstreams, vendor).json
    if vendor == "gpt":
        assert sent["tool_choice"] == choice
    elif vendor == "claude":
        assert sent["tool_choice"] == VENDOR_CHOICE[vendor][mode]
    else:
        assert sent["toolConfig"]["functionCallingConfig"] == VENDOR_CHOICE["gemini"][mode]
    if mode in ("auto", "none"):
        assert finish == "stop" and not calls and content
    else:
        assert finish == "tool_calls"
        assert [name for _, name, _ in calls] == ["get_time" if mode == "named" else "get_weather"]


@pytest.mark.parametrize("stream", [False, True], ids=["whole", "streamed"])
@pytest.mark.parametrize("vendor", ["gpt", "claude"])
def test_parallel_tool_calls_false_reaches_the_vendor(
    client: openai.OpenAI,
    upstreams: dict[str, tuple[LoopbackServer, Recorder]],
    vendor: str,
    stream: bool,
) -> None:
    _, calls, finish = _ask(
        client,
        stream,
        model=vendor,
        messages=[{"role": "user", "content": BOTH}],
        tools=TOOLS,
        parallel_tool_calls=False,
    )
    assert finish == "tool_calls" and [name for _, name, _ in calls] == ["get_weather"]
    sent = _sent(upstreams, vendor).json
    if vendor == "gpt":
        assert sent["parallel_tool_calls"] is False
    else:
        assert sent["tool_choice"] == {"type": "auto", "disable_parallel_tool_use": True}


@pytest.mark.parametrize("stream", [False, True], ids=["whole", "streamed"])
@pytest.mark.parametrize("vendor", VENDORS)
def test_json_schema_output_reaches_the_vendor_in_its_form(
    client: openai.OpenAI,
    upstreams: dict[str, tuple[LoopbackServer, Recorder]],
    vendor: str,
    stream: bool,
) -> None:
    fmt = {
        "type": "json_schema",
        "json_schema": {"name": "reply", "schema": SCHEMA, "strict": True},
    }
    content, calls, finish = _ask(
        client,
        stream,
        model=vendor,
        messages=[{"role": "user", "content": "Answer in JSON, s'il vous plaît"}],
        response_format=fmt,
    )
    assert finish == "stop" and not calls
    assert isinstance(json.loads(content)["answer"], str)
    sent = _sent(upstreams, vendor).json
    if vendor == "gpt":
        assert sent["response_format"] == fmt
    elif vendor == "claude":
        # Anthropic gets JSON output as a forced tool whose input schema is the client's
        assert sent["tools"] == [
            {"name": "json_response", "description": sent["tools"][0]["description"]}
            | {"input_schema": SCHEMA}
        ]
        assert sent["tool_choice"] == {"type": "tool", "name": "json_response"}
    else:
        config = sent["generationConfig"]
        assert config["responseMimeType"] == "application/json"
        assert config["responseJsonSchema"] == SCHEMA


# ------------------------------------------------------------- the local model


@pytest.fixture(scope="module")
def local_client(start_module_gateway: Callable[..., Gateway]) -> Iterator[openai.OpenAI]:
    gateway = start_module_gateway(None)
    with openai.OpenAI(base_url=gateway.v1, api_key="x", max_retries=0, timeout=120) as c:
        yield c


@pytest.mark.local_model
@pytest.mark.parametrize("choice", ["required", "named"])
def test_local_model_refuses_a_forced_tool_call(local_client: openai.OpenAI, choice: str) -> None:
    with pytest.raises(openai.BadRequestError) as info:
        local_client.chat.completions.create(
            model="gemma-3-270m",
            messages=[{"role": "user", "content": "weather in Paris?"}],
            tools=TOOLS,  # type: ignore[arg-type]
            tool_choice=NAMED if choice == "named" else "required",  # type: ignore[arg-type]
        )
    assert "tool_choice" in str(info.value)


@pytest.mark.local_model
@pytest.mark.parametrize("stream", [False, True], ids=["whole", "streamed"])
def test_local_model_answers_after_a_tool_result(local_client: openai.OpenAI, stream: bool) -> None:
    calls = [("call_1", "get_weather", '{"city": "Paris"}')]
    messages = [
        {"role": "user", "content": "weather in Paris?"},
        *_history(calls, ['{"temp_c": 21}']),
    ]
    content, calls_back, finish = _ask(
        local_client,
        stream,
        model="gemma-3-270m",
        messages=messages,
        tools=TOOLS,
        max_tokens=16,
    )
    assert not calls_back and finish in ("stop", "length") and content


@pytest.mark.local_model
def test_local_model_opens_a_json_answer_with_a_brace(local_client: openai.OpenAI) -> None:
    resp = local_client.chat.completions.create(
        model="gemma-3-270m",
        messages=[{"role": "user", "content": "Name a colour, as JSON."}],
        response_format={"type": "json_schema", "json_schema": {"name": "c", "schema": SCHEMA}},
        max_tokens=24,
    )
    assert (resp.choices[0].message.content or "").startswith("{")
