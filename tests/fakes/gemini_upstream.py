"""A loopback fake of the Gemini API: generateContent, streamGenerateContent, (batch)embedContent.

It checks requests the way Google does (unknown fields, roles, empty parts,
function call/response pairing, thought signatures, schema fields) and
answers in Google's shapes, errors included. What it says:

* text: ``Hello from fake gemini: `` + the last user text;
* with tools, a function call when the last user text mentions "weather" (or
  when the mode is ANY), carrying a thought signature it later checks; one call
  for each declared function the last user text names (parallel calls, only
  the first with a signature), limited to ``allowedFunctionNames``; a Gemini 3
  model gives each call an ``id``, which must come back on the call's result;
* after function results: ``Tool results: name={...}``;
* JSON (an object built from ``responseJsonSchema``) when responseMimeType is
  application/json;
* ``candidateCount`` candidates; streams spread each answer over several events.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import itertools
import re
from typing import Any

import orjson
from aiohttp import web

from tests.fakes.harness import Handler, Recorded, Recorder

SKIP_SIGNATURE = "skip_thought_signature_validator"
CITIES = ("Paris", "東京", "Zürich")

_REQUEST_FIELDS = {
    "contents",
    "systemInstruction",
    "generationConfig",
    "tools",
    "toolConfig",
    "safetySettings",
    "cachedContent",
}
_CONFIG_FIELDS = {
    "temperature",
    "topP",
    "topK",
    "maxOutputTokens",
    "stopSequences",
    "candidateCount",
    "seed",
    "presencePenalty",
    "frequencyPenalty",
    "responseMimeType",
    "responseSchema",
    "responseJsonSchema",
    "responseModalities",
    "thinkingConfig",
    "responseLogprobs",
    "logprobs",
}
_DATA_FIELDS = {
    "text",
    "inlineData",
    "fileData",
    "functionCall",
    "functionResponse",
    "executableCode",
    "codeExecutionResult",
}
_PART_META = {"thought", "thoughtSignature", "videoMetadata"}
_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_.:\-]{0,63}$")


class Invalid(Exception):
    """A request Google would answer with 400 INVALID_ARGUMENT."""


def google_error(code: int, status: str, message: str) -> web.Response:
    body = {"error": {"code": code, "message": message, "status": status}}
    return web.Response(status=code, body=orjson.dumps(body), content_type="application/json")


def google_error_handler(code: int, status: str, message: str) -> Handler:
    """A scripted answer for ``recorder.script``."""

    async def handler(request: web.Request, rec: Recorded) -> web.StreamResponse:
        return google_error(code, status, message)

    return handler


def _camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(w.title() for w in rest)


def _known(obj: dict[str, Any], allowed: set[str], where: str) -> None:
    for key in obj:
        if _camel(key) not in allowed:
            raise Invalid(
                f"Invalid JSON payload received. Unknown name \"{key}\" at '{where}': "
                "Cannot find field."
            )


def _get(obj: dict[str, Any], name: str) -> Any:
    """Google's JSON parser takes a field in camelCase or snake_case."""
    snake = re.sub(r"([A-Z])", lambda m: "_" + m.group(1).lower(), name)
    return obj.get(name, obj.get(snake))


def _words(text: str) -> int:
    return len(text.split())


def vector(text: str, dims: int) -> list[float]:
    """A deterministic embedding of ``text`` with ``dims`` values."""
    out: list[float] = []
    seed = text.encode()
    while len(out) < dims:
        seed = hashlib.sha256(seed).digest()
        out.extend(round((b - 127.5) / 127.5, 6) for b in seed)
    return out[:dims]


class FakeGemini:
    def __init__(self, recorder: Recorder, chunking: int | None = None):
        self.recorder = recorder
        self.chunking = chunking
        self.responses = itertools.count(1)
        self.call_ids = itertools.count(1)
        self.signatures: set[str] = set()

    async def handle(self, request: web.Request) -> web.StreamResponse:
        rec = await self.recorder.record(request)
        scripted = self.recorder.next_scripted()
        if scripted is not None:
            return await scripted(request, rec)
        if not request.headers.get("x-goog-api-key") and "key" not in request.query:
            return google_error(
                403,
                "PERMISSION_DENIED",
                "Method doesn't allow unregistered callers (callers without established "
                "identity). Please use API Key or other form of API consumer identity to call "
                "this API.",
            )
        model, _, method = request.match_info["model_and_method"].rpartition(":")
        handlers = {
            "generateContent": self.generate,
            "streamGenerateContent": self.generate,
            "batchEmbedContents": self.batch_embed,
            "embedContent": self.embed,
        }
        if not model or method not in handlers:
            return google_error(404, "NOT_FOUND", f"Method {method!r} is not found.")
        try:
            body = orjson.loads(rec.body)
        except orjson.JSONDecodeError:
            return google_error(400, "INVALID_ARGUMENT", "Invalid JSON payload received.")
        try:
            if not isinstance(body, dict):
                raise Invalid("Invalid JSON payload received. Expected an object.")
            return await handlers[method](request, model, method, body)
        except Invalid as exc:
            return google_error(400, "INVALID_ARGUMENT", str(exc))

    # ------------------------------------------------------ generateContent

    async def generate(
        self, request: web.Request, model: str, method: str, body: dict[str, Any]
    ) -> web.StreamResponse:
        _known(body, _REQUEST_FIELDS, "GenerateContentRequest")
        contents = _get(body, "contents")
        if not isinstance(contents, list) or not contents:
            raise Invalid("* GenerateContentRequest.contents: contents is not specified")
        for i, content in enumerate(contents):
            self._check_content(content, i)
        self._check_pairs(contents)
        system = _get(body, "systemInstruction")
        if system is not None:
            self._check_content(system, -1, system_instruction=True)
        config = _get(body, "generationConfig") or {}
        self._check_config(config)
        declarations, mode, allowed = self._check_tools(body)

        count = int(_get(config, "candidateCount") or 1)
        answers = [
            self._answer(model, contents, config, declarations, mode, allowed, i)
            for i in range(count)
        ]
        prompt = sum(_words(p.get("text", "")) for c in contents for p in c["parts"])
        prompt += sum(_words(p.get("text", "")) for p in (system or {}).get("parts", []))
        usage = {
            "promptTokenCount": max(prompt, 1),
            "candidatesTokenCount": sum(tokens for _, _, tokens in answers),
        }
        usage["totalTokenCount"] = usage["promptTokenCount"] + usage["candidatesTokenCount"]
        head = {"modelVersion": model, "responseId": f"fake-resp-{next(self.responses)}"}
        if method == "generateContent":
            candidates = [
                {"content": {"role": "model", "parts": parts}, "finishReason": reason, "index": i}
                for i, (parts, reason, _) in enumerate(answers)
            ]
            return web.json_response({"candidates": candidates, "usageMetadata": usage, **head})
        events = self._stream_events(answers, usage, head)
        if request.query.get("alt") != "sse":  # without alt=sse Google streams a JSON array
            return web.Response(body=orjson.dumps(events), content_type="application/json")
        resp = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await resp.prepare(request)
        payload = [b"data: " + orjson.dumps(event) + b"\r\n\r\n" for event in events]
        if self.chunking:  # the same bytes, cut anywhere (mid-character too)
            joined = b"".join(payload)
            payload = [joined[i : i + self.chunking] for i in range(0, len(joined), self.chunking)]
        for piece in payload:
            await resp.write(piece)
        await resp.write_eof()
        return resp

    def _check_content(self, content: Any, i: int, *, system_instruction: bool = False) -> None:
        where = "system_instruction" if system_instruction else f"contents[{i}]"
        if not isinstance(content, dict):
            raise Invalid(f"Invalid value at '{where}': expected an object")
        _known(content, {"role", "parts"}, where)
        role = content.get("role")
        if not system_instruction and role not in (None, "user", "model"):
            raise Invalid("Please use a valid role: user, model.")
        parts = content.get("parts")
        if not isinstance(parts, list) or not parts:
            raise Invalid(
                f"* GenerateContentRequest.{where}.parts: contents.parts must not be empty."
            )
        for j, part in enumerate(parts):
            if not isinstance(part, dict):
                raise Invalid(f"Invalid value at '{where}.parts[{j}]'")
            _known(part, _DATA_FIELDS | _PART_META, f"{where}.parts[{j}]")
            data = [k for k in part if _camel(k) in _DATA_FIELDS]
            if len(data) != 1:
                raise Invalid(
                    f"* {where}.parts[{j}].data: required oneof field 'data' must "
                    "have one initialized field"
                )
            self._check_part(_camel(data[0]), part[data[0]], role, f"{where}.parts[{j}]")

    def _check_part(self, kind: str, value: Any, role: Any, where: str) -> None:
        if kind == "text":
            if not isinstance(value, str):
                raise Invalid(f"Invalid value at '{where}.text': expected a string")
            return
        if not isinstance(value, dict):
            raise Invalid(f"Invalid value at '{where}': expected an object")
        if kind == "inlineData":
            if not _get(value, "mimeType") or not isinstance(_get(value, "data"), str):
                raise Invalid(f"* {where}.inline_data: mime_type and data are required")
            try:
                base64.b64decode(_get(value, "data"), validate=True)
            except binascii.Error:
                raise Invalid(
                    f"Invalid value at '{where}.inline_data.data': Base64 decoding failed"
                ) from None
        if kind == "fileData" and not _get(value, "fileUri"):
            raise Invalid(f"* {where}.file_data.file_uri: file_uri is required")
        if kind == "functionCall":
            if role != "model":
                raise Invalid("Please ensure that function call turn comes from the model.")
            if not value.get("name") or not isinstance(value.get("args", {}), dict):
                raise Invalid(f"* {where}.function_call: name is required, args is an object")
        if kind == "functionResponse":
            if role not in (None, "user"):
                raise Invalid("Please ensure that function response turn comes from the user.")
            if not value.get("name") or not isinstance(value.get("response"), dict):
                raise Invalid(f"* {where}.function_response: name and response are required")

    def _check_pairs(self, contents: list[dict[str, Any]]) -> None:
        for i, content in enumerate(contents):
            calls = [p for p in content["parts"] if "functionCall" in p]
            if not calls:
                continue
            signature = calls[0].get("thoughtSignature")
            if signature is None:
                raise Invalid(
                    f"Function call `{calls[0]['functionCall']['name']}` in the {i + 1}. content "
                    "block is missing a `thought_signature`."
                )
            if signature != SKIP_SIGNATURE and signature not in self.signatures:
                raise Invalid("Corrupted thought signature.")
            if i + 1 < len(contents):
                answers = [p for p in contents[i + 1]["parts"] if "functionResponse" in p]
                if len(answers) != len(calls):
                    raise Invalid(
                        "Please ensure that the number of function response parts is equal to "
                        "the number of function call parts of the function call turn."
                    )
                ids = {p["functionCall"]["id"] for p in calls if "id" in p["functionCall"]}
                answered = {p["functionResponse"].get("id") for p in answers}
                if ids - answered:
                    raise Invalid(  # Google: "return the response with the matching id"
                        f"Function response for call id {sorted(ids - answered)[0]!r} is missing."
                    )
                called = sorted(p["functionCall"]["name"] for p in calls)
                if sorted(p["functionResponse"]["name"] for p in answers) != called:
                    raise Invalid("Function response names must match the function call names.")

    def _check_config(self, config: Any) -> None:
        if not isinstance(config, dict):
            raise Invalid("Invalid value at 'generation_config'")
        _known(config, _CONFIG_FIELDS, "generation_config")
        stops = _get(config, "stopSequences") or []
        if len(stops) > 5:
            raise Invalid("* GenerationConfig.stop_sequences: at most 5 stop sequences")
        count = _get(config, "candidateCount")
        if count is not None and not (isinstance(count, int) and 1 <= count <= 8):
            raise Invalid("* GenerationConfig.candidate_count: must be between 1 and 8")
        schema, json_schema = _get(config, "responseSchema"), _get(config, "responseJsonSchema")
        if schema is not None and json_schema is not None:
            raise Invalid("response_schema and response_json_schema cannot both be set")
        if (schema or json_schema) and _get(config, "responseMimeType") != "application/json":
            raise Invalid("response_mime_type must be application/json when a schema is set")

    def _check_tools(self, body: dict[str, Any]) -> tuple[list[dict[str, Any]], str, list[str]]:
        declarations: list[dict[str, Any]] = []
        for tool in _get(body, "tools") or []:
            for decl in _get(tool, "functionDeclarations") or []:
                if not _NAME.match(str(decl.get("name", ""))):
                    raise Invalid(f"* function_declarations.name: invalid {decl.get('name')!r}")
                if "parameters" in decl and _get(decl, "parametersJsonSchema") is not None:
                    raise Invalid("parameters and parameters_json_schema are mutually exclusive")
                declarations.append(decl)
        calling = _get(_get(body, "toolConfig") or {}, "functionCallingConfig") or {}
        mode = calling.get("mode", "AUTO")
        if mode not in ("AUTO", "ANY", "NONE", "VALIDATED"):
            raise Invalid(f"Invalid value at 'tool_config.function_calling_config.mode' ({mode})")
        allowed = list(_get(calling, "allowedFunctionNames") or [])
        if allowed and mode != "ANY":
            raise Invalid("allowed_function_names should only be set when the mode is ANY.")
        names = {d["name"] for d in declarations}
        if any(name not in names for name in allowed):
            raise Invalid("allowed_function_names names a function that is not declared.")
        return declarations, mode, allowed

    def _answer(
        self,
        model: str,
        contents: list[dict[str, Any]],
        config: dict[str, Any],
        declarations: list[dict[str, Any]],
        mode: str,
        allowed: list[str],
        index: int,
    ) -> tuple[list[dict[str, Any]], str, int]:
        """(parts, finishReason, tokens) of one candidate."""
        last = contents[-1]
        results = [p["functionResponse"] for p in last["parts"] if "functionResponse" in p]
        user_text = " ".join(p["text"] for p in last["parts"] if "text" in p)
        wants_call = mode == "ANY" or (mode != "NONE" and "weather" in user_text.lower())
        named = [d["name"] for d in declarations if d["name"] in user_text]
        if allowed:
            named = [n for n in named if n in allowed] or allowed[:1]
        wants_call = wants_call or (mode != "NONE" and bool(named))
        if declarations and wants_call and not results:
            parts: list[dict[str, Any]] = [{"text": "Let me look that up."}]
            for k, name in enumerate(named or [declarations[0]["name"]]):
                call = {"name": name, "args": {"city": CITIES[k % 3], "unit": "celsius"}}
                if model.startswith("gemini-3"):  # Gemini 3 models give each call an id
                    call["id"] = f"fc-{next(self.call_ids)}"
                part: dict[str, Any] = {"functionCall": call}
                if k == 0:  # in parallel calls only the first carries a signature
                    signature = base64.b64encode(f"sig>{name}?{index}".encode()).decode()
                    self.signatures.add(signature)
                    part["thoughtSignature"] = signature
                parts.append(part)
            return parts, "STOP", 10
        if results:
            text = "Tool results: " + "; ".join(
                f"{r['name']}={orjson.dumps(r['response']).decode()}" for r in results
            )
        else:
            text = "Hello from fake gemini: " + user_text
        if _get(config, "responseMimeType") == "application/json":
            schema = _get(config, "responseJsonSchema") or {}
            props = schema.get("properties") or {"answer": {"type": "string"}}
            samples = {"string": text, "integer": 42, "number": 1.5, "boolean": True}
            text = orjson.dumps({k: samples.get(v.get("type")) for k, v in props.items()}).decode()
        elif index:
            text += f" ({index + 1})"
        reason = "STOP"
        for stop in _get(config, "stopSequences") or []:
            if stop in text:
                text = text[: text.index(stop)]
        limit = _get(config, "maxOutputTokens")
        if limit is not None and _words(text) > limit:
            text, reason = " ".join(text.split()[:limit]), "MAX_TOKENS"
        return [{"text": text}], reason, max(_words(text), 1)

    def _stream_events(
        self,
        answers: list[tuple[list[dict[str, Any]], str, int]],
        usage: dict[str, Any],
        head: dict[str, Any],
    ) -> list[dict[str, Any]]:
        pieces: list[list[dict[str, Any]]] = []
        for parts, _, _ in answers:
            split: list[dict[str, Any]] = []
            for part in parts:
                if "text" in part:
                    words = part["text"].split(" ")
                    step = max(len(words) // 3, 1)
                    split += [
                        {
                            "text": " ".join(words[i : i + step])
                            + (" " if i + step < len(words) else "")
                        }
                        for i in range(0, len(words), step)
                    ]
                else:
                    split.append(part)
            pieces.append(split)
        events = []
        early_usage = {
            "promptTokenCount": usage["promptTokenCount"],
            "totalTokenCount": usage["promptTokenCount"],
        }
        for step in range(max(len(p) for p in pieces)):
            candidates = [
                {"content": {"role": "model", "parts": [p[step]]}, "index": i}
                for i, p in enumerate(pieces)
                if step < len(p)
            ]
            events.append({"candidates": candidates, "usageMetadata": early_usage, **head})
        final = [
            {
                "content": {"role": "model", "parts": [{"text": ""}]},
                "finishReason": reason,
                "index": i,
            }
            for i, (_, reason, _) in enumerate(answers)
        ]
        events.append({"candidates": final, "usageMetadata": usage, **head})
        return events

    # --------------------------------------------------------- embeddings

    def _embed_one(self, item: Any, model: str, where: str) -> dict[str, Any]:
        if not isinstance(item, dict):
            raise Invalid(f"Invalid value at '{where}'")
        _known(item, {"model", "content", "taskType", "title", "outputDimensionality"}, where)
        if "model" in item and item["model"] != f"models/{model}":
            raise Invalid(f"* {where}.model: the model in each request must match models/{model}")
        parts = (item.get("content") or {}).get("parts") or []
        if not parts or not all(isinstance(p.get("text"), str) for p in parts):
            raise Invalid(f"* {where}.content: text parts are required")
        dims = _get(item, "outputDimensionality") or 8
        return {"values": vector(" ".join(p["text"] for p in parts), int(dims))}

    async def batch_embed(
        self, request: web.Request, model: str, method: str, body: dict[str, Any]
    ) -> web.StreamResponse:
        _known(body, {"requests"}, "BatchEmbedContentsRequest")
        requests = body.get("requests")
        if not isinstance(requests, list) or not requests:
            raise Invalid("* BatchEmbedContentsRequest.requests: requests is not specified")
        if len(requests) > 100:
            raise Invalid(
                "* BatchEmbedContentsRequest.requests: at most 100 requests can be in one batch"
            )
        embeddings = [self._embed_one(r, model, f"requests[{i}]") for i, r in enumerate(requests)]
        return web.json_response({"embeddings": embeddings})

    async def embed(
        self, request: web.Request, model: str, method: str, body: dict[str, Any]
    ) -> web.StreamResponse:
        return web.json_response({"embedding": self._embed_one(body, model, "request")})


def create_fake_gemini(recorder: Recorder, *, chunking: int | None = None) -> web.Application:
    """The fake as an aiohttp app; ``chunking`` splits streamed bytes into pieces of that size."""
    fake = FakeGemini(recorder, chunking)
    app = web.Application()
    app.router.add_post("/v1beta/models/{model_and_method}", fake.handle)
    return app
