"""The official openai SDK against a gateway process in front of the Anthropic and Gemini fakes.

The client speaks OpenAI; the gateway translates to each vendor's wire format
and back. The fakes check what the vendors check, and record what they got.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator

import openai
import pytest

from tests.conftest import Gateway
from tests.fakes.anthropic_upstream import anthropic_error, create_fake_anthropic
from tests.fakes.gemini_upstream import create_fake_gemini, google_error_handler
from tests.fakes.harness import LoopbackServer, Recorded, Recorder

CONFIG = """
embedded_models: false
deployments:
  - name: claude
    provider: anthropic
    model: claude-sonnet-4-5
    base_url: {anthropic}
    max_output_tokens: 1024
  - name: gemini
    provider: gemini
    model: gemini-2.5-flash
    base_url: {gemini}
  - name: gemini-limited
    provider: gemini
    model: gemini-2.5-flash
    base_url: {gemini}
"""

TOOLS = [
    {
        "type": "function",
        "function": {
            "name": "get_weather",
            "description": "Weather in a city",
            "parameters": {
                "type": "object",
                "properties": {"city": {"type": "string"}},
                "required": ["city"],
            },
        },
    }
]


@pytest.fixture(scope="module")
def fakes() -> Iterator[dict[str, tuple[LoopbackServer, Recorder]]]:
    a_rec, g_rec = Recorder(), Recorder()
    with (
        LoopbackServer(create_fake_anthropic(a_rec)) as a,
        LoopbackServer(create_fake_gemini(g_rec)) as g,
    ):
        yield {"claude": (a, a_rec), "gemini": (g, g_rec)}


@pytest.fixture(scope="module")
def gateway(
    start_module_gateway: Callable[..., Gateway],
    fakes: dict[str, tuple[LoopbackServer, Recorder]],
) -> Gateway:
    config = CONFIG.format(anthropic=fakes["claude"][0].url, gemini=fakes["gemini"][0].url)
    env = {"ANTHROPIC_API_KEY": "sk-ant-test", "GEMINI_API_KEY": "gem-test"}
    return start_module_gateway(config, env)


@pytest.fixture
def client(gateway: Gateway) -> Iterator[openai.OpenAI]:
    with openai.OpenAI(base_url=gateway.v1, api_key="x", max_retries=0) as c:
        yield c


def _last(fakes: dict[str, tuple[LoopbackServer, Recorder]], model: str) -> Recorded:
    return fakes[model][1].last


@pytest.mark.parametrize("model", ["claude", "gemini"])
def test_chat_round_trip(
    client: openai.OpenAI, fakes: dict[str, tuple[LoopbackServer, Recorder]], model: str
) -> None:
    resp = client.chat.completions.create(
        model=model,
        messages=[
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": "héllo"},
        ],
        max_tokens=50,
        temperature=0.2,
    )
    vendor = "anthropic" if model == "claude" else "gemini"
    assert resp.choices[0].message.content == f"Hello from fake {vendor}: héllo"
    assert resp.choices[0].finish_reason == "stop"
    assert resp.usage is not None and resp.usage.prompt_tokens > 0
    sent = _last(fakes, model)
    if model == "claude":
        assert sent.path == "/v1/messages"
        assert sent.headers["x-api-key"] == "sk-ant-test"
        assert sent.headers["anthropic-version"] == "2023-06-01"
        assert sent.json["system"] == "Be brief." or sent.json["system"][0]["text"] == "Be brief."
        assert sent.json["max_tokens"] == 50 and sent.json["model"] == "claude-sonnet-4-5"
    else:
        assert sent.path == "/v1beta/models/gemini-2.5-flash:generateContent"
        assert sent.headers["x-goog-api-key"] == "gem-test" and "key" not in sent.query
        assert sent.json["systemInstruction"]["parts"][0]["text"] == "Be brief."
        assert sent.json["generationConfig"]["maxOutputTokens"] == 50


@pytest.mark.parametrize("model", ["claude", "gemini"])
def test_streaming(
    client: openai.OpenAI, fakes: dict[str, tuple[LoopbackServer, Recorder]], model: str
) -> None:
    stream = client.chat.completions.create(
        model=model,
        messages=[{"role": "user", "content": "stream 漢字 please"}],
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = list(stream)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text.endswith("stream 漢字 please")
    assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens > 0
    finishes = [c.choices[0].finish_reason for c in chunks if c.choices]
    assert finishes[-1] == "stop"
    sent = _last(fakes, model)
    if model == "claude":
        assert sent.json["stream"] is True
    else:
        assert sent.path.endswith(":streamGenerateContent") and sent.query["alt"] == "sse"


@pytest.mark.parametrize("model", ["claude", "gemini"])
@pytest.mark.parametrize("stream", [False, True])
def test_tool_call_and_result(client: openai.OpenAI, model: str, stream: bool) -> None:
    messages: list[dict[str, object]] = [{"role": "user", "content": "weather in Paris?"}]
    kwargs: dict[str, object] = {"model": model, "messages": messages, "tools": TOOLS}
    if stream:
        name, args, call_id = "", "", ""
        finish = None
        for chunk in client.chat.completions.create(stream=True, **kwargs):  # type: ignore[call-overload]
            for choice in chunk.choices:
                for call in choice.delta.tool_calls or []:
                    call_id = call.id or call_id
                    if call.function:
                        name += call.function.name or ""
                        args += call.function.arguments or ""
                finish = choice.finish_reason or finish
    else:
        resp = client.chat.completions.create(**kwargs)  # type: ignore[call-overload]
        call = resp.choices[0].message.tool_calls[0]
        name, args, call_id = call.function.name, call.function.arguments, call.id
        finish = resp.choices[0].finish_reason
    assert finish == "tool_calls"
    assert name == "get_weather"
    assert "city" in json.loads(args)
    # send the tool result back: the vendor must accept the translated history
    messages += [
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {"id": call_id, "type": "function", "function": {"name": name, "arguments": args}}
            ],
        },
        {"role": "tool", "tool_call_id": call_id, "content": '{"temp_c": 21}'},
    ]
    final = client.chat.completions.create(model=model, messages=messages, tools=TOOLS)  # type: ignore[arg-type]
    assert final.choices[0].finish_reason == "stop"
    assert final.choices[0].message.content


@pytest.mark.parametrize("model", ["claude", "gemini"])
def test_json_schema_output(client: openai.OpenAI, model: str) -> None:
    schema = {
        "type": "object",
        "properties": {"answer": {"type": "string"}},
        "required": ["answer"],
        "additionalProperties": False,
    }
    resp = client.chat.completions.create(
        model=model,
        messages=[{"role": "user", "content": "Answer in JSON"}],
        response_format={
            "type": "json_schema",
            "json_schema": {"name": "reply", "schema": schema, "strict": True},
        },
    )
    data = json.loads(resp.choices[0].message.content or "")
    assert isinstance(data["answer"], str)
    assert resp.choices[0].finish_reason == "stop"


def test_vendor_errors_are_classified_after_one_retry(
    client: openai.OpenAI, fakes: dict[str, tuple[LoopbackServer, Recorder]]
) -> None:
    async def overloaded(request: object, rec: Recorded) -> object:
        return anthropic_error(529, "overloaded_error", "Overloaded")

    claude = fakes["claude"][1]
    before = len(claude.requests)
    claude.script.extend([overloaded, overloaded])  # type: ignore[list-item]
    with pytest.raises(openai.InternalServerError) as info:
        client.chat.completions.create(model="claude", messages=[{"role": "user", "content": "x"}])
    assert info.value.status_code == 503
    assert len(claude.requests) - before == 2  # the first try and one retry, no more

    gemini = fakes["gemini"][1]
    before = len(gemini.requests)
    gemini.script.append(google_error_handler(429, "RESOURCE_EXHAUSTED", "quota"))
    with pytest.raises(openai.RateLimitError):
        client.chat.completions.create(
            model="gemini-limited", messages=[{"role": "user", "content": "x"}]
        )
    assert len(gemini.requests) - before == 1  # a 429 cools the deployment down: no retry


def test_gemini_embeddings(client: openai.OpenAI) -> None:
    emb = client.embeddings.create(model="gemini", input=["one", "two", "three"])
    assert [d.index for d in emb.data] == [0, 1, 2]
    assert len({len(d.embedding) for d in emb.data}) == 1
