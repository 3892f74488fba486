"""The official anthropic SDK against a gateway process, served by every upstream wire format.

The client speaks Anthropic Messages; the deployments behind the gateway
speak OpenAI chat, Anthropic, Gemini (loopback fakes that check what the
vendors check) and the embedded local model (real, slow: marked).
"""

from __future__ import annotations

import json
import urllib.request
from collections.abc import Callable

import anthropic
import pytest

from tests.conftest import Gateway
from tests.e2e.anthropic.support import (
    ENV,
    LOCAL,
    PREFIX,
    REMOTE,
    WEATHER,
    Fakes,
    config,
    last_sent,
    text_of,
)

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
    assert text_of(message) == f"Hello from fake {PREFIX[model]}: héllo 漢字"
    assert message.type == "message" and message.role == "assistant"
    assert message.id.startswith("msg_") and message.model == model
    assert message._request_id is not None and message._request_id.startswith("req_")
    assert message.stop_reason == "end_turn"
    assert message.usage.input_tokens > 0 and message.usage.output_tokens > 0
    sent = last_sent(fakes, model).json
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
    assert text_of(message) == "Hello from fake openai: hi"


# ---------------------------------------------------------------- streaming


@pytest.mark.parametrize("model", REMOTE)
def test_streaming(client: anthropic.Anthropic, fakes: Fakes, model: str) -> None:
    with client.messages.stream(
        model=model, max_tokens=64, messages=[{"role": "user", "content": "stream 漢字 ✓"}]
    ) as stream:
        pieces = list(stream.text_stream)
        final = stream.get_final_message()
    assert "".join(pieces) == f"Hello from fake {PREFIX[model]}: stream 漢字 ✓"
    assert text_of(final) == "".join(pieces)
    assert final.stop_reason == "end_turn"
    assert final.usage.output_tokens > 0 and final.usage.input_tokens > 0
    assert last_sent(fakes, model).json.get("stream", True) is True


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


# ---------------------------------------------------------------- stop sequences


@pytest.mark.parametrize("model", REMOTE)
def test_stop_sequences(client: anthropic.Anthropic, fakes: Fakes, model: str) -> None:
    message = client.messages.create(
        model=model,
        max_tokens=64,
        stop_sequences=["STOP", "halt"],
        messages=[{"role": "user", "content": "one two STOP three"}],
    )
    sent = last_sent(fakes, model).json
    if model == "claude":
        assert sent["stop_sequences"] == ["STOP", "halt"]
    elif model == "gpt":
        assert sent["stop"] == ["STOP", "halt"]
    else:
        assert sent["generationConfig"]["stopSequences"] == ["STOP", "halt"]
    if model != "gpt":  # the OpenAI fake does not apply stop sequences
        assert "STOP" not in text_of(message) and "one two" in text_of(message)


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
    assert isinstance(json.loads(text_of(message))["answer"], str)
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
    assert last_sent(fakes, "claude").json["thinking"] == {"type": "enabled", "budget_tokens": 1024}
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
    sent = last_sent(fakes, "claude").json["messages"][1]["content"][0]
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


# ---------------------------------------------------------------- local model


@pytest.mark.local_model
def test_local_model_plain_streaming_and_count(
    start_gateway: Callable[..., Gateway], fakes: Fakes
) -> None:
    gw = start_gateway(config(fakes, embedded=True), ENV)
    with anthropic.Anthropic(base_url=gw.url, api_key="x", max_retries=0, timeout=120) as c:
        message = c.messages.create(
            model=LOCAL,
            max_tokens=32,
            extra_body={"temperature": 0},
            messages=[{"role": "user", "content": "What is the capital of France?"}],
        )
        assert "Paris" in text_of(message)
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
        assert text.strip() and text_of(final) == text and "\n" not in text
        assert final.usage.output_tokens > 0
        count = c.messages.count_tokens(model=LOCAL, messages=[{"role": "user", "content": "hi"}])
        assert count.input_tokens > 0
