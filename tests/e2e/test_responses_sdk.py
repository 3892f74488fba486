"""The official openai SDK's Responses API against a gateway process with three vendors behind it.

Stored conversations continue across vendors (``previous_response_id`` on a
different deployment each turn); stored responses belong to the key's team.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from typing import Any

import openai
import pytest

from tests.conftest import Gateway
from tests.e2e.governance.support import ENV, make_key
from tests.fakes.anthropic_upstream import create_fake_anthropic
from tests.fakes.faulty_upstream import FaultyUpstream
from tests.fakes.gemini_upstream import create_fake_gemini
from tests.fakes.harness import LoopbackServer, Recorder

CONFIG = """
embedded_models: false
deployments:
  - name: gpt
    provider: openai-compatible
    model: gpt-x
    base_url: "{openai}/v1"
    api_key_env: K
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
  - name: stateful-only
    provider: openai-compatible
    model: gpt-x
    base_url: "{openai}/v1"
    api_key_env: K
    prices: {{input: 1, output: 2}}
    contract: {{kinds: [stateful]}}
  - name: small
    provider: openai-compatible
    model: gpt-x
    base_url: "{openai}/v1"
    api_key_env: K
    prices: {{input: 1, output: 2}}
    context_window: 1000
  - name: flaky
    provider: openai-compatible
    model: flaky
    base_url: "{flaky}"
    api_key_env: K
    prices: {{input: 1, output: 2}}
"""

WEATHER = {
    "type": "function",
    "name": "get_weather",
    "description": "Weather in a city",
    "parameters": {
        "type": "object",
        "properties": {"city": {"type": "string"}},
        "required": ["city"],
    },
    "strict": False,
}

Fakes = dict[str, Recorder]


@pytest.fixture(scope="module")
def fakes(fake_openai: tuple[LoopbackServer, Recorder]) -> Iterator[dict[str, Any]]:
    a_rec, g_rec = Recorder(), Recorder()
    with (
        LoopbackServer(create_fake_anthropic(a_rec)) as a,
        LoopbackServer(create_fake_gemini(g_rec)) as g,
        FaultyUpstream("flaky") as flaky,
    ):
        o, o_rec = fake_openai
        yield {
            "urls": (o.url, a.url, g.url, flaky.url),
            "gpt": o_rec,
            "claude": a_rec,
            "gemini": g_rec,
            "flaky": flaky,
        }


@pytest.fixture(scope="module")
def gateway(start_module_gateway: Callable[..., Gateway], fakes: dict[str, Any]) -> Gateway:
    o, a, g, f = fakes["urls"]
    env = {**ENV, "ANTHROPIC_API_KEY": "sk-ant-test", "GEMINI_API_KEY": "gem-test"}
    return start_module_gateway(CONFIG.format(openai=o, anthropic=a, gemini=g, flaky=f), env)


@pytest.fixture(scope="module")
def keys(gateway: Gateway) -> dict[str, str]:
    return {"a": make_key(gateway, "team-a"), "b": make_key(gateway, "team-b")}


def _client(gateway: Gateway, key: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=gateway.v1, api_key=key, max_retries=0)


@pytest.fixture
def client(gateway: Gateway, keys: dict[str, str]) -> Iterator[openai.OpenAI]:
    with _client(gateway, keys["a"]) as c:
        yield c


@pytest.fixture
def other_team(gateway: Gateway, keys: dict[str, str]) -> Iterator[openai.OpenAI]:
    with _client(gateway, keys["b"]) as c:
        yield c


def _all_text(value: Any) -> str:
    """Every string inside a recorded upstream body, joined: where earlier turns must show."""
    if isinstance(value, str):
        return value
    if isinstance(value, dict):
        return " ".join(_all_text(v) for v in value.values())
    if isinstance(value, list):
        return " ".join(_all_text(v) for v in value)
    return ""


@pytest.mark.parametrize("model", ["gpt", "claude", "gemini"])
def test_plain_response(client: openai.OpenAI, fakes: dict[str, Any], model: str) -> None:
    resp = client.responses.create(
        model=model, input="héllo 漢字", instructions="Be brief.", max_output_tokens=50
    )
    vendor = {"gpt": "openai", "claude": "anthropic", "gemini": "gemini"}[model]
    assert resp.output_text == f"Hello from fake {vendor}: héllo 漢字"
    assert resp.id.startswith("resp_") and resp.object == "response"
    assert resp.status == "completed" and resp.model == model
    assert resp.output[0].type == "message" and resp.output[0].id.startswith("msg_")
    assert resp.instructions == "Be brief." and resp.max_output_tokens == 50
    assert resp.usage is not None and resp.usage.input_tokens > 0
    assert resp.usage.total_tokens == resp.usage.input_tokens + resp.usage.output_tokens
    sent = _all_text(fakes[model].last.json)
    assert "Be brief." in sent and "héllo 漢字" in sent


@pytest.mark.parametrize("model", ["gpt", "claude", "gemini"])
def test_streaming_events(client: openai.OpenAI, model: str) -> None:
    events = list(client.responses.create(model=model, input="stream 漢字 please", stream=True))
    kinds = [e.type for e in events]
    assert kinds[:4] == [
        "response.created",
        "response.in_progress",
        "response.output_item.added",
        "response.content_part.added",
    ]
    assert kinds[-4:] == [
        "response.output_text.done",
        "response.content_part.done",
        "response.output_item.done",
        "response.completed",
    ]
    assert [e.sequence_number for e in events] == list(range(len(events)))
    text = "".join(e.delta for e in events if e.type == "response.output_text.delta")
    assert text.endswith("stream 漢字 please")
    done = events[-1]
    assert done.type == "response.completed"
    assert done.response.output_text == text and done.response.status == "completed"
    assert done.response.usage is not None and done.response.usage.output_tokens > 0
    # the stored response is the one the stream completed with
    assert client.responses.retrieve(done.response.id).output_text == text


def test_a_stream_that_breaks_ends_failed_and_is_not_stored(
    client: openai.OpenAI, fakes: dict[str, Any]
) -> None:
    fakes["flaky"].mode = "reset_after:2"
    try:
        events = list(client.responses.create(model="flaky", input="x", stream=True))
    finally:
        fakes["flaky"].mode = "ok"
    kinds = [e.type for e in events]
    assert kinds[:2] == ["response.created", "response.in_progress"]
    assert "response.output_text.delta" in kinds and kinds[-2:] == ["error", "response.failed"]
    assert [e.sequence_number for e in events] == list(range(len(events)))
    failed = events[-1].response  # type: ignore[union-attr]
    assert failed.status == "failed" and failed.error is not None
    with pytest.raises(openai.NotFoundError):
        client.responses.retrieve(failed.id)


def test_stream_helper_and_final_response(client: openai.OpenAI) -> None:
    with client.responses.stream(model="claude", input="helper") as stream:
        deltas = [e.delta for e in stream if e.type == "response.output_text.delta"]
        final = stream.get_final_response()
    assert final.output_text == "".join(deltas) == "Hello from fake anthropic: helper"


@pytest.mark.parametrize("model", ["gpt", "claude", "gemini"])
@pytest.mark.parametrize("stream", [False, True])
def test_two_step_function_call(
    client: openai.OpenAI, fakes: dict[str, Any], model: str, stream: bool
) -> None:
    if stream:
        events = list(
            client.responses.create(
                model=model, input="weather in Paris?", tools=[WEATHER], stream=True
            )
        )
        args = "".join(
            e.delta for e in events if e.type == "response.function_call_arguments.delta"
        )
        first = events[-1].response  # type: ignore[union-attr]
        done = [e for e in events if e.type == "response.function_call_arguments.done"]
        assert done and done[0].arguments == args
    else:
        first = client.responses.create(model=model, input="weather in Paris?", tools=[WEATHER])
    calls = [item for item in first.output if item.type == "function_call"]
    assert len(calls) == 1
    call = calls[0]
    assert call.name == "get_weather" and call.id is not None and call.id.startswith("fc_")
    assert json.loads(call.arguments)["city"] == "Paris"
    second = client.responses.create(
        model=model,
        previous_response_id=first.id,
        input=[{"type": "function_call_output", "call_id": call.call_id, "output": "22 °C"}],
        tools=[WEATHER],
    )
    assert second.previous_response_id == first.id
    assert second.output_text and not [i for i in second.output if i.type == "function_call"]
    sent = _all_text(fakes[model].last.json)
    assert "weather in Paris?" in sent and "22 °C" in sent and "get_weather" in sent


def test_json_schema_output(client: openai.OpenAI, fakes: dict[str, Any]) -> None:
    schema = {
        "type": "object",
        "properties": {"answer": {"type": "string"}},
        "required": ["answer"],
        "additionalProperties": False,
    }
    resp = client.responses.create(
        model="gpt",
        input="answer in JSON",
        text={"format": {"type": "json_schema", "name": "reply", "schema": schema, "strict": True}},
    )
    assert json.loads(resp.output_text) == {"answer": "ok"}
    assert resp.text is not None and resp.text.format is not None
    assert resp.text.format.type == "json_schema"
    sent = fakes["gpt"].last.json
    assert sent["response_format"]["type"] == "json_schema"
    assert sent["response_format"]["json_schema"]["schema"] == schema


def test_conversation_changes_vendor_each_turn(
    client: openai.OpenAI, fakes: dict[str, Any]
) -> None:
    one = client.responses.create(model="gpt", input="turn one", instructions="first rules")
    two = client.responses.create(
        model="claude", input="turn two", previous_response_id=one.id, instructions="second rules"
    )
    three = client.responses.create(model="gemini", input="turn three", previous_response_id=two.id)
    assert three.output_text == "Hello from fake gemini: turn three"
    to_claude = fakes["claude"].last.json
    assert [m["role"] for m in to_claude["messages"]] == ["user", "assistant", "user"]
    claude_text = _all_text(to_claude)
    assert "turn one" in claude_text and one.output_text in claude_text
    assert "second rules" in claude_text and "first rules" not in claude_text
    gemini_text = _all_text(fakes["gemini"].last.json)
    for earlier in ("turn one", one.output_text, "turn two", two.output_text, "turn three"):
        assert earlier in gemini_text
    assert "second rules" not in gemini_text  # instructions are the current request's only
    items = client.responses.input_items.list(three.id, order="asc")
    texts = [item.content[0].text for item in items.data]  # type: ignore[union-attr]
    assert texts == ["turn one", one.output_text, "turn two", two.output_text, "turn three"]


def test_retrieve_input_items_and_delete(client: openai.OpenAI) -> None:
    made = client.responses.create(
        model="gpt",
        input=[
            {"role": "user", "content": "first"},
            {"role": "assistant", "content": "noted"},
            {"role": "user", "content": [{"type": "input_text", "text": "last"}]},
        ],
        metadata={"purpose": "test"},
    )
    got = client.responses.retrieve(made.id)
    assert got.model_dump() == made.model_dump() and got.metadata == {"purpose": "test"}
    newest_first = client.responses.input_items.list(made.id)
    roles = [item.role for item in newest_first.data]  # type: ignore[union-attr]
    assert roles == ["user", "assistant", "user"]
    assert newest_first.data[0].content[0].text == "last"  # type: ignore[union-attr]
    page = client.responses.input_items.list(made.id, order="asc", limit=2)
    assert len(page.data) == 2 and page.has_more is True
    rest = client.responses.input_items.list(made.id, order="asc", after=page.data[-1].id)
    assert [item.content[0].text for item in rest.data] == ["last"]  # type: ignore[union-attr]
    assert rest.has_more is False
    every = list(client.responses.input_items.list(made.id, order="asc", limit=1))
    assert len(every) == 3  # the SDK's auto-pagination follows ``after``
    client.responses.delete(made.id)
    with pytest.raises(openai.NotFoundError):
        client.responses.retrieve(made.id)
    with pytest.raises(openai.NotFoundError):
        client.responses.delete(made.id)


def test_store_false_keeps_nothing(client: openai.OpenAI) -> None:
    resp = client.responses.create(model="gpt", input="forget me", store=False)
    assert resp.output_text.endswith("forget me")
    with pytest.raises(openai.NotFoundError):
        client.responses.retrieve(resp.id)
    with pytest.raises(openai.BadRequestError):
        client.responses.create(model="gpt", input="more", previous_response_id=resp.id)


def test_stored_or_continued_turns_are_stateful_traffic(client: openai.OpenAI) -> None:
    stored = client.responses.create(model="stateful-only", input="kept")
    assert stored.output_text.endswith("kept")
    continued = client.responses.create(
        model="stateful-only", input="on", previous_response_id=stored.id, store=False
    )
    assert continued.output_text.endswith("on")
    with pytest.raises(openai.PermissionDeniedError) as refused:
        client.responses.create(model="stateful-only", input="once", store=False)
    assert "serves only stateful traffic" in refused.value.message


def test_the_stored_conversation_counts_towards_the_prompt(client: openai.OpenAI) -> None:
    long = client.responses.create(model="gpt", input="word " * 1000)  # ~1250 tokens
    assert client.responses.create(model="small", input="short").output_text
    with pytest.raises(openai.APIStatusError) as refused:
        client.responses.create(model="small", input="short", previous_response_id=long.id)
    assert "context window" in refused.value.message


def test_another_team_cannot_see_or_continue_or_delete(
    client: openai.OpenAI, other_team: openai.OpenAI
) -> None:
    mine = client.responses.create(model="gpt", input="team a secret")
    with pytest.raises(openai.NotFoundError) as missing:
        other_team.responses.retrieve(mine.id)
    with pytest.raises(openai.NotFoundError) as absent:
        other_team.responses.retrieve("resp_" + "0" * 48)
    assert missing.value.body == {**absent.value.body, "message": missing.value.body["message"]}  # type: ignore[dict-item]
    with pytest.raises(openai.NotFoundError):
        other_team.responses.input_items.list(mine.id)
    with pytest.raises(openai.NotFoundError):
        other_team.responses.delete(mine.id)
    with pytest.raises(openai.BadRequestError) as refused:
        other_team.responses.create(model="gpt", input="leak?", previous_response_id=mine.id)
    assert refused.value.param == "previous_response_id"  # type: ignore[attr-defined]
    assert client.responses.retrieve(mine.id).output_text == mine.output_text


@pytest.mark.parametrize("bad", ["nonsense", "resp_XYZ", "resp_" + "a" * 300, "msg_" + "a" * 48])
def test_an_id_of_unknown_format_is_refused_cleanly(client: openai.OpenAI, bad: str) -> None:
    with pytest.raises(openai.NotFoundError):
        client.responses.retrieve(bad)
    with pytest.raises(openai.NotFoundError):
        client.responses.input_items.list(bad)
    with pytest.raises(openai.NotFoundError):
        client.responses.delete(bad)
    with pytest.raises(openai.BadRequestError) as refused:
        client.responses.create(model="gpt", input="x", previous_response_id=bad)
    assert refused.value.code == "previous_response_not_found"


def test_invalid_items_name_the_field(client: openai.OpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as refused:
        client.responses.create(
            model="gpt",
            input=[{"role": "user", "content": [{"type": "input_file", "file_id": "f"}]}],
        )
    assert refused.value.param == "input[0].content[0].type"  # type: ignore[attr-defined]
    with pytest.raises(openai.BadRequestError) as refused:
        client.responses.create(model="gpt", input="x", tools=[{"type": "web_search"}])
    assert refused.value.param == "tools[0].type"  # type: ignore[attr-defined]


@pytest.mark.local_model
def test_open_embedded_mode_keeps_a_conversation_with_the_local_model(
    start_gateway: Callable[..., Gateway],
) -> None:
    gw = start_gateway(None)  # no keys: the open mode, whose stored turns have no team
    with openai.OpenAI(base_url=gw.v1, api_key="x", max_retries=0, timeout=120) as client:
        first = client.responses.create(
            model="gemma-3-270m",
            input="What is the capital of France?",
            max_output_tokens=24,
            temperature=0,
        )
        assert "Paris" in first.output_text
        events = list(
            client.responses.create(
                model="gemma-3-270m",
                input="And of Italy?",
                previous_response_id=first.id,
                max_output_tokens=24,
                temperature=0,
                stream=True,
            )
        )
        final = events[-1]
        assert final.type in ("response.completed", "response.incomplete")
        assert final.response.output_text  # type: ignore[union-attr]
        items = client.responses.input_items.list(final.response.id, order="asc")  # type: ignore[union-attr]
        assert [i.role for i in items.data] == ["user", "assistant", "user"]  # type: ignore[union-attr]
        assert client.responses.retrieve(first.id).output_text == first.output_text
