"""The embedded default: no configuration, the real local models, the official openai SDK.

This is what a new user gets from ``make run``: the gateway on its defaults
(only the port and data directory are chosen by the test), Gemma 3 270M
answering in-process, and MiniLM embeddings.
"""

from __future__ import annotations

import math
import sqlite3
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor

import openai
import pytest

from tests.conftest import Gateway

pytestmark = pytest.mark.local_model


@pytest.fixture(scope="module")
def gateway(start_module_gateway: Callable[..., Gateway]) -> Gateway:
    return start_module_gateway(None)


@pytest.fixture
def client(gateway: Gateway) -> Iterator[openai.OpenAI]:
    with openai.OpenAI(base_url=gateway.v1, api_key="x", max_retries=0, timeout=120) as c:
        yield c


def test_models_lists_the_embedded_models(client: openai.OpenAI) -> None:
    assert {m.id for m in client.models.list()} == {"gemma-3-270m", "all-minilm-l6-v2"}


def test_chat_gets_a_real_answer(client: openai.OpenAI, gateway: Gateway) -> None:
    resp = client.chat.completions.create(
        model="gemma-3-270m",
        messages=[{"role": "user", "content": "What is the capital of France?"}],
        max_tokens=32,
        temperature=0,
    )
    answer = resp.choices[0].message.content or ""
    assert "Paris" in answer
    assert resp.usage is not None
    assert resp.usage.prompt_tokens > 5 and 0 < resp.usage.completion_tokens <= 32
    # the model was assembled into the data directory on first use
    assert any(gateway.data_dir.joinpath("models").glob("*.gguf"))


def test_chat_streams_a_real_answer(client: openai.OpenAI) -> None:
    stream = client.chat.completions.create(
        model="gemma-3-270m",
        messages=[{"role": "user", "content": "Name a color of the sky on a clear day."}],
        max_tokens=24,
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = list(stream)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text.strip()
    assert sum(1 for c in chunks if c.choices and c.choices[0].delta.content) >= 2
    assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens > 0


def test_concurrent_requests_queue_and_all_succeed(client: openai.OpenAI) -> None:
    def ask(i: int) -> str:
        resp = client.chat.completions.create(
            model="gemma-3-270m",
            messages=[{"role": "user", "content": f"Count from {i} to {i + 3}."}],
            max_tokens=12,
        )
        return resp.choices[0].message.content or ""

    with ThreadPoolExecutor(4) as pool:
        answers = list(pool.map(ask, range(4)))
    assert all(a.strip() for a in answers)


def test_completions_continue_a_prompt(client: openai.OpenAI) -> None:
    resp = client.completions.create(
        model="gemma-3-270m", prompt="The first three planets are Mercury,", max_tokens=8
    )
    assert resp.choices[0].text.strip()


def test_embeddings(client: openai.OpenAI) -> None:
    emb = client.embeddings.create(
        model="all-minilm-l6-v2",
        input=["A cat sits on the mat.", "A kitten rests on a rug.", "Stock prices fell today."],
    )
    vecs = [d.embedding for d in emb.data]
    assert [len(v) for v in vecs] == [384, 384, 384]
    assert math.isclose(sum(x * x for x in vecs[0]), 1.0, rel_tol=1e-3)

    def cos(a: list[float], b: list[float]) -> float:
        return sum(x * y for x, y in zip(a, b, strict=True))

    assert cos(vecs[0], vecs[1]) > cos(vecs[0], vecs[2]) + 0.2
    assert emb.usage.prompt_tokens > 0


def test_state_is_in_sqlite_under_the_data_dir(client: openai.OpenAI, gateway: Gateway) -> None:
    client.chat.completions.create(
        model="gemma-3-270m", messages=[{"role": "user", "content": "Hi"}], max_tokens=4
    )
    db = gateway.data_dir / "modelyard.db"
    deadline = time.monotonic() + 5
    rows: list[tuple[str, int]] = []
    while not rows and time.monotonic() < deadline:
        time.sleep(0.2)
        with sqlite3.connect(db) as conn:
            rows = conn.execute(
                "SELECT deployment, output_tokens FROM requests WHERE endpoint = 'chat'"
            ).fetchall()
    assert rows and all(dep == "gemma-3-270m" and out > 0 for dep, out in rows)
