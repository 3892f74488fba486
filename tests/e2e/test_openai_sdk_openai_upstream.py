"""The official openai SDK against a gateway process in front of the loopback OpenAI fake."""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Callable, Iterator

import openai
import orjson
import pytest
from aiohttp import web

from tests.conftest import UPSTREAM_KEY, Gateway
from tests.fakes.harness import LoopbackServer, Recorded, Recorder, error_response

CONFIG = """
embedded_models: false
deployments:
  - name: bench
    provider: openai-compatible
    model: bench-model
    base_url: {url}/v1
    api_key_env: BENCH_KEY
    prices: {{input: 1, output: 2}}
  - name: gpt
    provider: openai
    model: gpt-4o-mini
    base_url: {url}/v1
    api_key_env: BENCH_KEY
  - name: azure-gpt
    provider: azure
    model: my-gpt-deployment
    base_url: {url}
    api_version: "2024-10-21"
    api_key_env: BENCH_KEY
    prices: {{input: 2.5, output: 10}}
  - name: bench-limited
    provider: openai-compatible
    model: bench-model
    base_url: {url}/v1
    api_key_env: BENCH_KEY
    prices: {{input: 1, output: 2}}
aliases:
  fast: bench
"""


@pytest.fixture(scope="module")
def gateway(
    start_module_gateway: Callable[..., Gateway], fake_openai: tuple[LoopbackServer, Recorder]
) -> Gateway:
    server, _ = fake_openai
    return start_module_gateway(CONFIG.format(url=server.url), {"BENCH_KEY": UPSTREAM_KEY})


@pytest.fixture
def client(gateway: Gateway, openai_upstream: object) -> Iterator[openai.OpenAI]:
    with openai.OpenAI(base_url=gateway.v1, api_key="unused-for-now", max_retries=0) as c:
        yield c


def test_chat_non_streaming_reaches_upstream_with_deployment_model(
    client: openai.OpenAI, openai_upstream: tuple[LoopbackServer, Recorder]
) -> None:
    _, rec = openai_upstream
    resp = client.chat.completions.create(
        model="bench", messages=[{"role": "user", "content": "ping"}], max_tokens=20, seed=7
    )
    assert resp.choices[0].message.content == "Hello from fake openai: ping"
    assert resp.usage is not None and resp.usage.prompt_tokens == 11
    sent = rec.last
    assert sent.path == "/v1/chat/completions"
    assert sent.headers["authorization"] == f"Bearer {UPSTREAM_KEY}"
    assert sent.json["model"] == "bench-model"
    assert sent.json["max_tokens"] == 20 and sent.json["seed"] == 7


def test_alias_resolves_to_its_deployment(
    client: openai.OpenAI, openai_upstream: tuple[LoopbackServer, Recorder]
) -> None:
    client.chat.completions.create(model="fast", messages=[{"role": "user", "content": "x"}])
    assert openai_upstream[1].last.json["model"] == "bench-model"


def test_openai_host_gets_max_completion_tokens(
    client: openai.OpenAI, openai_upstream: tuple[LoopbackServer, Recorder]
) -> None:
    client.chat.completions.create(
        model="gpt", messages=[{"role": "user", "content": "x"}], max_tokens=33
    )
    body = openai_upstream[1].last.json
    assert body["max_completion_tokens"] == 33 and "max_tokens" not in body


def test_azure_uses_deployment_url_api_version_and_api_key_header(
    client: openai.OpenAI, openai_upstream: tuple[LoopbackServer, Recorder]
) -> None:
    resp = client.chat.completions.create(
        model="azure-gpt", messages=[{"role": "user", "content": "hi"}]
    )
    assert resp.choices[0].message.content == "Hello from fake openai: hi"
    sent = openai_upstream[1].last
    assert sent.path == "/openai/deployments/my-gpt-deployment/chat/completions"
    assert sent.query == {"api-version": "2024-10-21"}
    assert sent.headers["api-key"] == UPSTREAM_KEY and "authorization" not in sent.headers
    assert "model" not in sent.json


@pytest.mark.parametrize("include_usage", [True, False])
def test_chat_streaming(
    client: openai.OpenAI, openai_upstream: tuple[LoopbackServer, Recorder], include_usage: bool
) -> None:
    kwargs = {"stream_options": {"include_usage": True}} if include_usage else {}
    stream = client.chat.completions.create(
        model="bench", messages=[{"role": "user", "content": "stream me"}], stream=True, **kwargs
    )
    chunks = list(stream)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == "Hello from fake openai: stream me"
    usage_chunks = [c for c in chunks if c.usage]
    assert len(usage_chunks) == (1 if include_usage else 0)
    # the gateway always asks the upstream for usage, to account for the stream
    assert openai_upstream[1].last.json["stream_options"] == {"include_usage": True}


def test_streamed_tool_call_arguments_reassemble(client: openai.OpenAI) -> None:
    tools = [
        {
            "type": "function",
            "function": {
                "name": "get_weather",
                "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
            },
        }
    ]
    stream = client.chat.completions.create(
        model="bench",
        messages=[{"role": "user", "content": "weather in Paris?"}],
        tools=tools,
        stream=True,  # type: ignore[arg-type]
    )
    args = ""
    finish = None
    for chunk in stream:
        for choice in chunk.choices:
            for call in choice.delta.tool_calls or []:
                args += call.function.arguments or "" if call.function else ""
            finish = choice.finish_reason or finish
    assert json.loads(args) == {"city": "Paris", "unit": "°C"}
    assert finish == "tool_calls"


def test_n_choices_and_response_format(client: openai.OpenAI) -> None:
    resp = client.chat.completions.create(
        model="bench",
        messages=[{"role": "user", "content": "x"}],
        n=2,
        response_format={"type": "json_object"},
    )
    assert [c.index for c in resp.choices] == [0, 1]
    assert json.loads(resp.choices[0].message.content or "") == {"answer": "ok"}


def test_completions_and_embeddings_and_models(client: openai.OpenAI) -> None:
    comp = client.completions.create(model="bench", prompt="Once upon", max_tokens=5)
    assert comp.choices[0].text == " continued by fake openai"
    streamed = "".join(
        c.choices[0].text
        for c in client.completions.create(model="bench", prompt="Once", stream=True)
        if c.choices
    )
    assert streamed == "continuedbyfakeopenai"
    emb = client.embeddings.create(model="bench", input=["a", "bb"])
    assert len(emb.data) == 2 and len(emb.data[0].embedding) == 4
    ids = {m.id for m in client.models.list()}
    assert {"bench", "gpt", "azure-gpt", "fast"} <= ids
    assert client.models.retrieve("fast").id == "fast"


def test_upstream_429_reaches_client_with_retry_after(
    client: openai.OpenAI, openai_upstream: tuple[LoopbackServer, Recorder]
) -> None:
    openai_upstream[1].script.append(
        error_response(
            429,
            {
                "error": {
                    "message": "Rate limit reached",
                    "type": "requests",
                    "param": None,
                    "code": "rate_limit_exceeded",
                }
            },
            headers={"retry-after": "7"},
        )
    )
    with pytest.raises(openai.RateLimitError) as info:
        client.chat.completions.create(
            model="bench-limited", messages=[{"role": "user", "content": "x"}]
        )
    assert info.value.response.headers["retry-after"] == "7"
    assert "Rate limit reached" in info.value.message
    # the deployment now cools down as the upstream asked: the gateway does not call it
    calls = len(openai_upstream[1].requests)
    with pytest.raises(openai.RateLimitError) as info:
        client.chat.completions.create(
            model="bench-limited", messages=[{"role": "user", "content": "x"}]
        )
    assert len(openai_upstream[1].requests) == calls
    assert int(info.value.response.headers["retry-after"]) in (6, 7)


def test_upstream_key_error_is_scrubbed(
    client: openai.OpenAI, openai_upstream: tuple[LoopbackServer, Recorder]
) -> None:
    openai_upstream[1].script.append(
        error_response(
            401,
            {
                "error": {
                    "message": "Incorrect API key provided: sk-live-abcdef123456.",
                    "type": "invalid_request_error",
                    "param": None,
                    "code": "invalid_api_key",
                }
            },
        )
    )
    with pytest.raises(openai.AuthenticationError) as info:
        client.chat.completions.create(model="bench", messages=[{"role": "user", "content": "x"}])
    assert "sk-live" not in info.value.message and "[redacted]" in info.value.message


def test_bad_requests_get_400_naming_the_field(client: openai.OpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as info:
        client.chat.completions.create(
            model="bench",
            messages=[{"role": "wizard", "content": "x"}],  # type: ignore[misc,list-item]
        )
    assert info.value.body["param"] == "messages[0].role"  # type: ignore[index]
    with pytest.raises(openai.BadRequestError) as info:
        client.chat.completions.create(
            model="bench", messages=[{"role": "user", "content": "x"}], temperature=5
        )
    assert info.value.body["param"] == "temperature"  # type: ignore[index]
    with pytest.raises(openai.NotFoundError):
        client.chat.completions.create(model="nope", messages=[{"role": "user", "content": "x"}])


def test_requests_are_logged_to_sqlite(client: openai.OpenAI, gateway: Gateway) -> None:
    resp = client.chat.completions.with_raw_response.create(
        model="bench", messages=[{"role": "user", "content": "x"}]
    )
    rid = resp.headers["x-request-id"]
    deadline = time.monotonic() + 5
    rows: list[tuple[str, str, int, int, int]] = []
    while time.monotonic() < deadline and not rows:
        time.sleep(0.2)
        with sqlite3.connect(gateway.data_dir / "modelyard.db") as db:
            rows = db.execute(
                "SELECT endpoint, deployment, status, input_tokens, cached_input_tokens"
                " FROM requests WHERE id = ?",
                (rid,),
            ).fetchall()
    assert rows == [("chat", "bench", 200, 11, 2)]


def test_upstream_dying_mid_stream_ends_with_an_error_event(
    client: openai.OpenAI, openai_upstream: tuple[LoopbackServer, Recorder]
) -> None:
    async def dies(request: web.Request, rec: Recorded) -> web.StreamResponse:
        resp = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await resp.prepare(request)
        for word in ("Hello", " there"):
            chunk = {
                "id": "c1",
                "object": "chat.completion.chunk",
                "created": 1,
                "model": "bench-model",
                "choices": [{"index": 0, "delta": {"content": word}, "finish_reason": None}],
            }
            await resp.write(b"data: " + orjson.dumps(chunk) + b"\n\n")
        await resp.write(b'data: {"id": "c1", "choices": [{"ind')  # half an event, then gone
        assert request.transport is not None
        request.transport.close()
        return resp

    openai_upstream[1].script.append(dies)
    stream = client.chat.completions.create(
        model="bench", messages=[{"role": "user", "content": "x"}], stream=True
    )
    seen: list[str] = []
    with pytest.raises(openai.APIError) as info:
        for chunk in stream:
            seen.append(chunk.choices[0].delta.content or "")
    assert seen == ["Hello", " there"]  # whole events only; the half event never reached us
    assert "bench" in info.value.message
