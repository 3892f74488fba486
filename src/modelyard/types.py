"""Internal request, response, stream-event and usage types.

Requests are pydantic models: they validate what a client sent, and a failed
validation names the field (``messages.0.role``). Their shape follows the
OpenAI chat semantics, the lingua franca every wire translator maps to and
from (as any-llm does); vendor-only fields a client passes ride in
``model_extra`` and reach OpenAI-compatible upstreams untouched.

Responses and stream chunks are plain slotted dataclasses: translators build
thousands of them per second and they need no validation.

Wire formats (JSON shapes of each vendor) live in ``modelyard.wire``, not here.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

Role = Literal["system", "developer", "user", "assistant", "tool"]
FinishReason = Literal["stop", "length", "tool_calls", "content_filter"]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=False)


class FunctionCall(_Strict):
    name: str
    arguments: str


class ToolCall(_Strict):
    id: str
    type: Literal["function"] = "function"
    function: FunctionCall


class ImageURL(_Strict):
    url: str
    detail: Literal["auto", "low", "high"] | None = None


class TextPart(_Strict):
    type: Literal["text"]
    text: str


class ImagePart(_Strict):
    type: Literal["image_url"]
    image_url: ImageURL


ContentPart = Annotated[TextPart | ImagePart, Field(discriminator="type")]


class Message(BaseModel):
    model_config = ConfigDict(extra="allow")

    role: Role
    content: str | list[ContentPart] | None = None
    name: str | None = None
    tool_calls: list[ToolCall] | None = None
    tool_call_id: str | None = None

    @model_validator(mode="after")
    def _check_role_fields(self) -> Message:
        if self.role == "tool" and not self.tool_call_id:
            raise ValueError("a message with role 'tool' needs tool_call_id")
        if self.role != "assistant" and self.content is None:
            raise ValueError(f"a message with role {self.role!r} needs content")
        if self.role == "assistant" and self.content is None and not self.tool_calls:
            raise ValueError("an assistant message needs content or tool_calls")
        return self

    def text(self) -> str:
        """The message's text, images left out."""
        if self.content is None:
            return ""
        if isinstance(self.content, str):
            return self.content
        return "".join(p.text for p in self.content if isinstance(p, TextPart))

    @property
    def has_image(self) -> bool:
        return isinstance(self.content, list) and any(
            isinstance(p, ImagePart) for p in self.content
        )


class FunctionDefinition(_Strict):
    name: str = Field(pattern=r"^[a-zA-Z0-9_.\-]{1,64}$")
    description: str | None = None
    parameters: dict[str, Any] | None = None
    strict: bool | None = None


class Tool(_Strict):
    type: Literal["function"]
    function: FunctionDefinition


class _ToolName(_Strict):
    name: str


class NamedToolChoice(_Strict):
    type: Literal["function"]
    function: _ToolName


ToolChoice = Literal["auto", "none", "required"] | NamedToolChoice


class JSONSchemaSpec(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    name: str = Field(pattern=r"^[a-zA-Z0-9_\-]{1,64}$")
    description: str | None = None
    json_schema: dict[str, Any] | None = Field(default=None, alias="schema")
    strict: bool | None = None


class ResponseFormat(_Strict):
    type: Literal["text", "json_object", "json_schema"]
    json_schema: JSONSchemaSpec | None = None

    @model_validator(mode="after")
    def _schema_needed(self) -> ResponseFormat:
        if self.type == "json_schema" and self.json_schema is None:
            raise ValueError("type 'json_schema' needs the json_schema field")
        return self


class StreamOptions(_Strict):
    include_usage: bool = False


Stop = str | Annotated[list[str], Field(max_length=4)] | None


class _Sampling(BaseModel):
    """Fields shared by chat and legacy completion requests."""

    model_config = ConfigDict(extra="allow")

    model: str = Field(min_length=1)
    temperature: float | None = Field(default=None, ge=0, le=2)
    top_p: float | None = Field(default=None, ge=0, le=1)
    n: int = Field(default=1, ge=1, le=16)
    stop: Stop = None
    seed: int | None = None
    stream: bool = False
    stream_options: StreamOptions | None = None
    presence_penalty: float | None = Field(default=None, ge=-2, le=2)
    frequency_penalty: float | None = Field(default=None, ge=-2, le=2)
    user: str | None = None

    @property
    def stop_list(self) -> list[str]:
        if self.stop is None:
            return []
        return [self.stop] if isinstance(self.stop, str) else list(self.stop)

    @property
    def include_usage(self) -> bool:
        return bool(self.stream_options and self.stream_options.include_usage)


class ChatRequest(_Sampling):
    messages: list[Message] = Field(min_length=1)
    max_tokens: int | None = Field(default=None, ge=1)
    max_completion_tokens: int | None = Field(default=None, ge=1)
    response_format: ResponseFormat | None = None
    tools: list[Tool] | None = None
    tool_choice: ToolChoice | None = None
    parallel_tool_calls: bool | None = None

    @model_validator(mode="after")
    def _check_tools(self) -> ChatRequest:
        if isinstance(self.tool_choice, NamedToolChoice):
            names = {t.function.name for t in self.tools or []}
            if self.tool_choice.function.name not in names:
                raise ValueError(
                    f"tool_choice names {self.tool_choice.function.name!r}, which is not in tools"
                )
        elif self.tool_choice == "required" and not self.tools:
            raise ValueError("tool_choice 'required' needs tools")
        return self

    @property
    def output_limit(self) -> int | None:
        return self.max_completion_tokens or self.max_tokens


class CompletionRequest(_Sampling):
    prompt: str | Annotated[list[str], Field(min_length=1)]
    max_tokens: int | None = Field(default=16, ge=1)
    echo: bool = False
    suffix: str | None = None

    @property
    def prompts(self) -> list[str]:
        return [self.prompt] if isinstance(self.prompt, str) else list(self.prompt)


class EmbeddingRequest(BaseModel):
    model_config = ConfigDict(extra="allow")

    model: str = Field(min_length=1)
    input: str | Annotated[list[str], Field(min_length=1, max_length=2048)]
    encoding_format: Literal["float", "base64"] = "float"
    dimensions: int | None = Field(default=None, ge=1)
    user: str | None = None

    @property
    def inputs(self) -> list[str]:
        return [self.input] if isinstance(self.input, str) else list(self.input)


# ---------------------------------------------------------------- responses


@dataclass(slots=True)
class Usage:
    """Token counts of one call, in OpenAI's convention: totals, and parts of those totals.

    ``input_tokens`` is the whole prompt: cache reads, cache writes and audio
    included (OpenAI's ``prompt_tokens``; Gemini's ``promptTokenCount``; the
    Anthropic translator adds ``cache_read_input_tokens`` and
    ``cache_creation_input_tokens`` to Anthropic's ``input_tokens``, which
    leaves them out). ``cached_input_tokens``, ``cache_write_tokens`` and
    ``audio_input_tokens`` are parts of it, taken as disjoint.

    ``output_tokens`` is everything generated: ``reasoning_tokens`` and
    ``audio_output_tokens`` are parts of it, not additions to it.

    The price book (``modelyard.governance.prices``) relies on this to price
    each token once.
    """

    input_tokens: int = 0
    output_tokens: int = 0
    cached_input_tokens: int = 0
    cache_write_tokens: int = 0
    reasoning_tokens: int = 0
    audio_input_tokens: int = 0
    audio_output_tokens: int = 0

    @property
    def total_tokens(self) -> int:
        return self.input_tokens + self.output_tokens

    def add(self, other: Usage) -> None:
        self.input_tokens += other.input_tokens
        self.output_tokens += other.output_tokens
        self.cached_input_tokens += other.cached_input_tokens
        self.cache_write_tokens += other.cache_write_tokens
        self.reasoning_tokens += other.reasoning_tokens
        self.audio_input_tokens += other.audio_input_tokens
        self.audio_output_tokens += other.audio_output_tokens


@dataclass(slots=True)
class ToolCallOut:
    id: str
    name: str
    arguments: str  # JSON text, as OpenAI carries it


@dataclass(slots=True)
class Choice:
    index: int
    content: str | None
    finish_reason: FinishReason | None
    tool_calls: list[ToolCallOut] = field(default_factory=list)
    reasoning: str | None = None


@dataclass(slots=True)
class ChatResponse:
    id: str
    model: str
    created: int
    choices: list[Choice]
    usage: Usage


@dataclass(slots=True)
class ToolCallDelta:
    index: int
    id: str | None = None
    name: str | None = None
    arguments: str = ""


@dataclass(slots=True)
class ChoiceDelta:
    index: int = 0
    role: Literal["assistant"] | None = None
    content: str | None = None
    reasoning: str | None = None
    tool_calls: list[ToolCallDelta] = field(default_factory=list)
    finish_reason: FinishReason | None = None


@dataclass(slots=True)
class ChatChunk:
    """One streamed event. ``usage`` is set on the final usage chunk only."""

    id: str
    model: str
    created: int
    choices: list[ChoiceDelta]
    usage: Usage | None = None


@dataclass(slots=True)
class CompletionChoice:
    index: int
    text: str
    finish_reason: FinishReason | None


@dataclass(slots=True)
class CompletionResponse:
    id: str
    model: str
    created: int
    choices: list[CompletionChoice]
    usage: Usage


@dataclass(slots=True)
class EmbeddingResponse:
    model: str
    vectors: list[list[float]]
    usage: Usage
