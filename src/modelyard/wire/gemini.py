"""Gemini API (generateContent, streamGenerateContent, batchEmbedContents) <-> internal types.

Pure: dict in, dict out, no I/O. The provider in ``modelyard.providers.gemini``
sends what these functions build and hands back what it receives.

Two things the OpenAI shape has no room for are carried in the tool call id:

* Gemini names a function result by the function's *name*, so a ``tool``
  message's name is found from the assistant tool call it answers. A call
  Gemini gave an ``id`` keeps it as its tool call id, and the id goes back as
  the ``id`` of the call and of its result ("return the response with the
  matching id", Google asks); a call without one gets an id made up here,
  which is never sent to Gemini.
* Thinking models attach an opaque ``thoughtSignature`` to a ``functionCall``
  part and reject the next turn unless it comes back unchanged. The signature
  rides in the tool call id we hand the client (``call_…__sig_<urlsafe b64>``);
  a history without one (written by a client or another model) gets Google's
  documented placeholder that skips the check.
"""

from __future__ import annotations

import base64
import re
import time
import urllib.parse
import uuid
from typing import Any

import orjson

from modelyard.errors import InvalidRequestError
from modelyard.types import (
    ChatChunk,
    ChatRequest,
    ChatResponse,
    Choice,
    ChoiceDelta,
    EmbeddingRequest,
    EmbeddingResponse,
    FinishReason,
    FunctionDefinition,
    ImagePart,
    Message,
    NamedToolChoice,
    ToolCallDelta,
    ToolCallOut,
    Usage,
)
from modelyard.wire.upstream_shape import index, tokens, upstream_shape

_FILTERED = (
    "SAFETY",
    "RECITATION",
    "BLOCKLIST",
    "PROHIBITED_CONTENT",
    "SPII",
    "IMAGE_SAFETY",
    "IMAGE_PROHIBITED_CONTENT",
    "IMAGE_RECITATION",
)
#: Gemini finishReason -> ours; any other reason (OTHER, LANGUAGE, ...) ends as "stop".
FINISH: dict[str, FinishReason] = {
    "STOP": "stop",
    "MAX_TOKENS": "length",
    **dict.fromkeys(_FILTERED, "content_filter"),
}

#: Google's placeholder for a function call whose signature is unknown.
SKIP_SIGNATURE = "skip_thought_signature_validator"
_SIG = "__sig_"
_MADE_UP_ID = re.compile(r"call_[0-9a-f]{24}")  # what new_tool_call_id makes

_IMAGE_TYPES = {
    "png": "image/png",
    "jpg": "image/jpeg",
    "jpeg": "image/jpeg",
    "webp": "image/webp",
    "gif": "image/gif",
    "heic": "image/heic",
    "heif": "image/heif",
    "pdf": "application/pdf",
}


def model_resource(model: str) -> str:
    """``gemini-2.5-flash`` -> ``models/gemini-2.5-flash``; tuned models keep their prefix."""
    return model if model.startswith(("models/", "tunedModels/")) else f"models/{model}"


# ------------------------------------------------------- tool call ids


def new_tool_call_id() -> str:
    return f"call_{uuid.uuid4().hex[:24]}"


def encode_tool_call_id(call_id: str, signature: str | None) -> str:
    if not signature:
        return call_id
    sig = signature.replace("+", "-").replace("/", "_").rstrip("=")
    return f"{call_id}{_SIG}{sig}"


def gemini_call_id(tool_call_id: str) -> str | None:
    """The ``id`` to hand back to Gemini with a call and its result; None for ids made up here."""
    call_id = tool_call_id.partition(_SIG)[0]
    return None if not call_id or _MADE_UP_ID.fullmatch(call_id) else call_id


def decode_signature(tool_call_id: str) -> str | None:
    """The thought signature carried in a tool call id we issued, if any."""
    _, sep, sig = tool_call_id.partition(_SIG)
    if not sep or not sig:
        return None
    sig = sig.replace("-", "+").replace("_", "/")
    return sig + "=" * (-len(sig) % 4)


# ------------------------------------------------------------ requests


def chat_request_to_gemini(req: ChatRequest) -> dict[str, Any]:
    """The body of ``:generateContent`` / ``:streamGenerateContent`` for a chat request."""
    system: list[dict[str, Any]] = []
    contents: list[dict[str, Any]] = []
    names: dict[str, str] = {}  # tool_call_id -> function name
    for i, msg in enumerate(req.messages):
        if msg.role in ("system", "developer"):
            system.append({"text": msg.text()})
            continue
        if msg.role == "assistant":
            role, parts = "model", _assistant_parts(msg, i, names)
        elif msg.role == "tool":
            role, parts = "user", [_function_response(msg, i, names)]
        else:
            role, parts = "user", _user_parts(msg, i)
        if contents and contents[-1]["role"] == role:
            contents[-1]["parts"].extend(parts)
        else:
            contents.append({"role": role, "parts": parts})
    if not contents:
        raise InvalidRequestError(
            "Gemini needs at least one user or assistant message", param="messages"
        )
    body: dict[str, Any] = {"contents": contents}
    if system:
        body["systemInstruction"] = {"parts": system}
    config = _generation_config(req)
    if config:
        body["generationConfig"] = config
    if req.tools:
        body["tools"] = [{"functionDeclarations": [_declaration(t.function) for t in req.tools]}]
        if req.tool_choice is not None:
            body["toolConfig"] = {"functionCallingConfig": _calling_config(req)}
    return body


def _user_parts(msg: Message, i: int) -> list[dict[str, Any]]:
    if isinstance(msg.content, str) or msg.content is None:
        return [{"text": msg.content or ""}]
    parts: list[dict[str, Any]] = []
    for j, part in enumerate(msg.content):
        if isinstance(part, ImagePart):
            parts.append(_image(part.image_url.url, f"messages.{i}.content.{j}.image_url.url"))
        else:
            parts.append({"text": part.text})
    return parts or [{"text": ""}]


def _image(url: str, param: str) -> dict[str, Any]:
    if url.startswith("data:"):
        header, comma, payload = url[5:].partition(",")
        if not comma:
            raise InvalidRequestError("a data: URL needs a comma before its data", param=param)
        mime, _, flags = header.partition(";")
        if "base64" in flags.split(";"):
            try:
                base64.b64decode(payload, validate=True)
            except ValueError:  # binascii.Error, or a character that is not ASCII
                raise InvalidRequestError(
                    "the data: URL is not valid base64", param=param
                ) from None
            data = payload
        else:
            data = base64.b64encode(urllib.parse.unquote_to_bytes(payload)).decode()
        return {"inlineData": {"mimeType": mime or "text/plain", "data": data}}
    if url.startswith(("https://", "http://", "gs://")):
        file: dict[str, Any] = {"fileUri": url}
        ext = urllib.parse.urlsplit(url).path.rpartition(".")[2].lower()
        if ext in _IMAGE_TYPES:
            file["mimeType"] = _IMAGE_TYPES[ext]
        return {"fileData": file}
    raise InvalidRequestError("an image URL must be a data:, https:// or gs:// URL", param=param)


def _assistant_parts(msg: Message, i: int, names: dict[str, str]) -> list[dict[str, Any]]:
    parts: list[dict[str, Any]] = []
    text = msg.text()
    if text or not msg.tool_calls:
        parts.append({"text": text})
    for j, call in enumerate(msg.tool_calls or []):
        names[call.id] = call.function.name
        param = f"messages.{i}.tool_calls.{j}.function.arguments"
        args = _arguments(call.function.arguments, param)
        function_call: dict[str, Any] = {"name": call.function.name, "args": args}
        if call_id := gemini_call_id(call.id):
            function_call["id"] = call_id
        part: dict[str, Any] = {"functionCall": function_call}
        signature = decode_signature(call.id) or (SKIP_SIGNATURE if j == 0 else None)
        if signature:
            part["thoughtSignature"] = signature
        parts.append(part)
    return parts


def _arguments(text: str, param: str) -> dict[str, Any]:
    if not text.strip():
        return {}
    try:
        value = orjson.loads(text)
    except orjson.JSONDecodeError:
        raise InvalidRequestError("tool call arguments are not valid JSON", param=param) from None
    if not isinstance(value, dict):
        raise InvalidRequestError("tool call arguments must be a JSON object", param=param)
    return value


def _function_response(msg: Message, i: int, names: dict[str, str]) -> dict[str, Any]:
    name = names.get(msg.tool_call_id or "") or msg.name
    if not name:
        raise InvalidRequestError(
            f"tool_call_id {msg.tool_call_id!r} answers no earlier assistant tool call",
            param=f"messages.{i}.tool_call_id",
        )
    text = msg.text()
    try:
        value: Any = orjson.loads(text)
    except orjson.JSONDecodeError:
        value = text
    # Google: the response is a JSON object; "output" holds a plain result.
    response = value if isinstance(value, dict) else {"output": value}
    function_response: dict[str, Any] = {"name": name, "response": response}
    if call_id := gemini_call_id(msg.tool_call_id or ""):
        function_response["id"] = call_id
    return {"functionResponse": function_response}


def _generation_config(req: ChatRequest) -> dict[str, Any]:
    config: dict[str, Any] = {}
    for key, value in (
        ("temperature", req.temperature),
        ("topP", req.top_p),
        ("maxOutputTokens", req.output_limit),
        ("seed", req.seed),
        ("presencePenalty", req.presence_penalty),
        ("frequencyPenalty", req.frequency_penalty),
    ):
        if value is not None:
            config[key] = value
    if req.stop_list:
        config["stopSequences"] = req.stop_list
    if req.n != 1:
        config["candidateCount"] = req.n
    fmt = req.response_format
    if fmt is not None and fmt.type != "text":
        config["responseMimeType"] = "application/json"
        if fmt.json_schema is not None and fmt.json_schema.json_schema is not None:
            # responseJsonSchema takes JSON Schema as is; responseSchema is an OpenAPI subset.
            config["responseJsonSchema"] = fmt.json_schema.json_schema
    return config


def _declaration(fn: FunctionDefinition) -> dict[str, Any]:
    out: dict[str, Any] = {"name": fn.name}
    if fn.description:
        out["description"] = fn.description
    if fn.parameters is not None:
        # OpenAI parameters are JSON Schema (additionalProperties, $defs, ...), which
        # the OpenAPI-subset ``parameters`` field rejects; parametersJsonSchema takes it.
        out["parametersJsonSchema"] = fn.parameters
    return out


def _calling_config(req: ChatRequest) -> dict[str, Any]:
    choice = req.tool_choice
    if isinstance(choice, NamedToolChoice):
        return {"mode": "ANY", "allowedFunctionNames": [choice.function.name]}
    return {"mode": {"auto": "AUTO", "none": "NONE", "required": "ANY"}[str(choice)]}


def embed_request_to_gemini(req: EmbeddingRequest, model: str) -> dict[str, Any]:
    """The body of ``:batchEmbedContents``: one request per input, in order."""
    resource = model_resource(model)
    requests = []
    for text in req.inputs:
        item: dict[str, Any] = {"model": resource, "content": {"parts": [{"text": text}]}}
        if req.dimensions is not None:
            item["outputDimensionality"] = req.dimensions
        requests.append(item)
    return {"requests": requests}


# ----------------------------------------------------------- responses


def usage_from_gemini(meta: dict[str, Any] | None) -> Usage:
    if not meta:
        return Usage()
    thoughts = tokens(meta.get("thoughtsTokenCount"))
    return Usage(
        # tool-use prompt tokens are billed as input and counted in totalTokenCount
        input_tokens=tokens(meta.get("promptTokenCount"))
        + tokens(meta.get("toolUsePromptTokenCount")),
        output_tokens=tokens(meta.get("candidatesTokenCount")) + thoughts,
        cached_input_tokens=tokens(meta.get("cachedContentTokenCount")),
        reasoning_tokens=thoughts,
    )


def _tool_call(part: dict[str, Any]) -> ToolCallOut:
    fc = part["functionCall"]
    call_id = str(fc.get("id") or new_tool_call_id())
    return ToolCallOut(
        id=encode_tool_call_id(call_id, part.get("thoughtSignature")),
        name=str(fc.get("name", "")),
        arguments=orjson.dumps(fc.get("args") or {}).decode(),
    )


def _split_parts(parts: list[dict[str, Any]]) -> tuple[str, str, list[ToolCallOut], bool]:
    """(text, reasoning, tool calls, whether any text part was seen)."""
    text: list[str] = []
    thought: list[str] = []
    calls: list[ToolCallOut] = []
    for part in parts:
        if "functionCall" in part:
            calls.append(_tool_call(part))
        elif "text" in part:
            (thought if part.get("thought") else text).append(str(part["text"]))
    return "".join(text), "".join(thought), calls, bool(text)


def _finish(reason: str | None, has_calls: bool) -> FinishReason | None:
    if not reason or reason == "FINISH_REASON_UNSPECIFIED":
        return None
    mapped = FINISH.get(reason, "stop")
    return "tool_calls" if mapped == "stop" and has_calls else mapped


def _blocked(data: dict[str, Any]) -> bool:
    feedback = data.get("promptFeedback") or {}
    return not data.get("candidates") and bool(feedback.get("blockReason"))


@upstream_shape
def chat_response_from_gemini(
    data: dict[str, Any], *, model: str, created: int | None = None
) -> ChatResponse:
    choices: list[Choice] = []
    for position, cand in enumerate(data.get("candidates") or []):
        parts = (cand.get("content") or {}).get("parts") or []
        text, reasoning, calls, has_text = _split_parts(parts)
        choices.append(
            Choice(
                index=index(cand.get("index", position)),
                content=text if has_text or not calls else None,
                finish_reason=_finish(cand.get("finishReason") or "STOP", bool(calls)),
                tool_calls=calls,
                reasoning=reasoning or None,
            )
        )
    if _blocked(data):
        choices.append(Choice(index=0, content="", finish_reason="content_filter"))
    choices.sort(key=lambda c: c.index)
    return ChatResponse(
        id=str(data.get("responseId") or f"gemini-{uuid.uuid4().hex}"),
        model=str(data.get("modelVersion") or model),
        created=int(time.time()) if created is None else created,
        choices=choices,
        usage=usage_from_gemini(data.get("usageMetadata")),
    )


@upstream_shape
def embed_response_from_gemini(data: dict[str, Any], *, model: str) -> EmbeddingResponse:
    return EmbeddingResponse(
        model=model,
        vectors=[[float(v) for v in e.get("values") or []] for e in data.get("embeddings") or []],
        usage=usage_from_gemini(data.get("usageMetadata")),
    )


class GeminiStreamTranslator:
    """Turns the events of ``:streamGenerateContent?alt=sse`` into chat chunks.

    Each event is a whole ``GenerateContentResponse`` holding the next piece of
    each candidate. Per candidate the output is a role chunk, then text,
    reasoning and complete tool calls as they come, then a finish chunk; after
    the last event ``finish()`` gives one usage chunk from the last
    ``usageMetadata`` (Gemini reports running totals).
    """

    def __init__(self, model: str, *, created: int | None = None):
        self.model = model
        self.created = int(time.time()) if created is None else created
        self.id: str | None = None
        self.events = 0
        self._usage: dict[str, Any] | None = None
        self._started: set[int] = set()
        self._finished: set[int] = set()
        self._tools: dict[int, int] = {}  # candidate index -> tool calls so far

    def _chunk(self, delta: ChoiceDelta) -> ChatChunk:
        return ChatChunk(id=self.id or "", model=self.model, created=self.created, choices=[delta])

    @upstream_shape
    def feed(self, data: dict[str, Any]) -> list[ChatChunk]:
        self.events += 1
        if self.id is None:
            self.id = str(data.get("responseId") or f"gemini-{uuid.uuid4().hex}")
        if data.get("modelVersion"):
            self.model = str(data["modelVersion"])
        if data.get("usageMetadata"):
            self._usage = data["usageMetadata"]
        out: list[ChatChunk] = []
        if _blocked(data) and 0 not in self._finished:
            out += self._start(0)
            out.append(self._chunk(ChoiceDelta(index=0, finish_reason="content_filter")))
            self._finished.add(0)
        for position, cand in enumerate(data.get("candidates") or []):
            out += self._candidate(index(cand.get("index", position)), cand)
        return out

    def _start(self, idx: int) -> list[ChatChunk]:
        if idx in self._started:
            return []
        self._started.add(idx)
        return [self._chunk(ChoiceDelta(index=idx, role="assistant", content=""))]

    def _candidate(self, idx: int, cand: dict[str, Any]) -> list[ChatChunk]:
        out = self._start(idx)
        text, reasoning, calls, _ = _split_parts((cand.get("content") or {}).get("parts") or [])
        if reasoning:
            out.append(self._chunk(ChoiceDelta(index=idx, reasoning=reasoning)))
        if text:
            out.append(self._chunk(ChoiceDelta(index=idx, content=text)))
        for call in calls:
            n = self._tools.get(idx, 0)
            self._tools[idx] = n + 1
            delta = ToolCallDelta(index=n, id=call.id, name=call.name, arguments=call.arguments)
            out.append(self._chunk(ChoiceDelta(index=idx, tool_calls=[delta])))
        reason = _finish(cand.get("finishReason"), idx in self._tools)
        if reason is not None and idx not in self._finished:
            self._finished.add(idx)
            out.append(self._chunk(ChoiceDelta(index=idx, finish_reason=reason)))
        return out

    @upstream_shape
    def finish(self) -> list[ChatChunk]:
        """Finish chunks for candidates the stream left open, then the usage chunk."""
        out: list[ChatChunk] = []
        for idx in sorted(self._started - self._finished):
            self._finished.add(idx)
            reason: FinishReason = "tool_calls" if idx in self._tools else "stop"
            out.append(self._chunk(ChoiceDelta(index=idx, finish_reason=reason)))
        usage = usage_from_gemini(self._usage)
        out.append(
            ChatChunk(
                id=self.id or "", model=self.model, created=self.created, choices=[], usage=usage
            )
        )
        return out
