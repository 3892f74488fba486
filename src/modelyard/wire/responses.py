"""OpenAI's Responses API, as a pure translator: dict in, dict out, no I/O.

Inbound, a request's ``input`` (a string or a list of items) becomes normalised
items (each with its id, as ``input_items`` lists them), and a conversation of
items becomes internal chat messages; ``tools``, ``tool_choice`` and
``text.format`` become their chat counterparts. Outbound, an internal answer
becomes output items and the ``response`` object. The streamed events are in
``wire.responses_stream``; storing turns is ``storage.response_store``'s job.

Only what the gateway can serve from any vendor is accepted: messages with
text and image parts, ``function_call`` and ``function_call_output`` items,
function tools. Anything else is refused with a 400 that names the field.
"""

from __future__ import annotations

import secrets
from typing import Any

from modelyard.errors import InvalidRequestError
from modelyard.types import ChatResponse, FinishReason, Usage

ROLES = ("user", "system", "developer", "assistant")
_DETAILS = ("auto", "low", "high")
_UNSUPPORTED = ("background", "conversation", "prompt")
_INCOMPLETE: dict[str, str] = {"length": "max_output_tokens", "content_filter": "content_filter"}


def new_item_id(prefix: str) -> str:
    """``resp_``, ``msg_``, ``fc_`` ... and 48 random hex digits."""
    return f"{prefix}_{secrets.token_hex(24)}"


def _bad(message: str, param: str) -> InvalidRequestError:
    return InvalidRequestError(f"Invalid request: {param}: {message}", param=param)


def _text(value: Any, param: str) -> str:
    if not isinstance(value, str):
        raise _bad("expected a string", param)
    return value


def _item_id(item: dict[str, Any], prefix: str, param: str) -> str:
    given = item.get("id")
    if given is None:
        return new_item_id(prefix)
    return _text(given, f"{param}.id")


# ---------------------------------------------------------------- input items


def _part(part: Any, assistant: bool, param: str) -> dict[str, Any]:
    if not isinstance(part, dict):
        raise _bad("expected a content part object", param)
    kind = part.get("type")
    if assistant:
        if kind not in ("output_text", "input_text", "refusal"):
            raise _bad("an assistant message holds output_text parts", f"{param}.type")
        text = part.get("refusal") if kind == "refusal" else part.get("text")
        return {"type": "output_text", "text": _text(text, f"{param}.text"), "annotations": []}
    if kind == "input_text":
        return {"type": "input_text", "text": _text(part.get("text"), f"{param}.text")}
    if kind == "input_image":
        url = part.get("image_url")
        if not isinstance(url, str) or not url:
            raise _bad("input_image needs image_url (file_id is not supported)", param)
        detail = part.get("detail") or "auto"
        return {"type": "input_image", "image_url": url, "detail": detail}
    raise _bad(f"unsupported content part type {kind!r}", f"{param}.type")


def _message(item: dict[str, Any], param: str) -> dict[str, Any]:
    role = item.get("role")
    if role not in ROLES:
        raise _bad(f"role must be one of {', '.join(ROLES)}", f"{param}.role")
    assistant = role == "assistant"
    content = item.get("content")
    parts: list[dict[str, Any]]
    if isinstance(content, str):
        part: dict[str, Any] = {"type": "input_text", "text": content}
        parts = [_part({**part, "type": "output_text"}, True, param) if assistant else part]
    elif isinstance(content, list):
        parts = [_part(p, assistant, f"{param}.content[{j}]") for j, p in enumerate(content)]
    else:
        raise _bad("expected a string or a list of content parts", f"{param}.content")
    return {
        "id": _item_id(item, "msg", param),
        "type": "message",
        "role": role,
        "content": parts,
        "status": "completed",
    }


def _function_call(item: dict[str, Any], param: str) -> dict[str, Any]:
    return {
        "id": _item_id(item, "fc", param),
        "type": "function_call",
        "call_id": _text(item.get("call_id"), f"{param}.call_id"),
        "name": _text(item.get("name"), f"{param}.name"),
        "arguments": _text(item.get("arguments"), f"{param}.arguments"),
        "status": "completed",
    }


def _function_output(item: dict[str, Any], param: str) -> dict[str, Any]:
    output = item.get("output")
    if isinstance(output, list):  # a list of input_text parts: the gateway passes text only
        parts = [_part(p, False, f"{param}.output[{j}]") for j, p in enumerate(output)]
        if any(p["type"] != "input_text" for p in parts):
            raise _bad("only text outputs are supported", f"{param}.output")
        output = "".join(p["text"] for p in parts)
    return {
        "id": _item_id(item, "fco", param),
        "type": "function_call_output",
        "call_id": _text(item.get("call_id"), f"{param}.call_id"),
        "output": _text(output, f"{param}.output"),
        "status": "completed",
    }


def normalize_input(value: Any) -> list[dict[str, Any]]:
    """A request's ``input`` as items with ids, in the shape ``input_items`` lists them."""
    if isinstance(value, str):
        return [_message({"role": "user", "content": value}, "input")]
    if not isinstance(value, list) or not value:
        raise _bad("expected a string or a non-empty list of items", "input")
    items = []
    for i, item in enumerate(value):
        param = f"input[{i}]"
        if not isinstance(item, dict):
            raise _bad("expected an item object", param)
        kind = item.get("type", "message" if "role" in item else None)
        if kind == "message":
            items.append(_message(item, param))
        elif kind == "function_call":
            items.append(_function_call(item, param))
        elif kind == "function_call_output":
            items.append(_function_output(item, param))
        else:
            raise _bad(f"unsupported item type {kind!r}", f"{param}.type")
    return items


def items_to_messages(items: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Normalised items as chat messages; function calls join the assistant turn before them."""
    messages: list[dict[str, Any]] = []
    for item in items:
        kind = item["type"]
        if kind == "function_call":
            call = {
                "id": item["call_id"],
                "type": "function",
                "function": {"name": item["name"], "arguments": item["arguments"]},
            }
            last = messages[-1] if messages else None
            if last is not None and last["role"] == "assistant":
                last.setdefault("tool_calls", []).append(call)
            else:
                messages.append({"role": "assistant", "content": None, "tool_calls": [call]})
        elif kind == "function_call_output":
            messages.append(
                {"role": "tool", "tool_call_id": item["call_id"], "content": item["output"]}
            )
        elif item["role"] == "assistant":
            text = "".join(p["text"] for p in item["content"])
            messages.append({"role": "assistant", "content": text})
        else:
            messages.append({"role": item["role"], "content": _chat_content(item["content"])})
    return messages


def _chat_content(parts: list[dict[str, Any]]) -> str | list[dict[str, Any]]:
    if len(parts) == 1 and parts[0]["type"] == "input_text":
        return str(parts[0]["text"])
    out: list[dict[str, Any]] = []
    for p in parts:
        if p["type"] == "input_text":
            out.append({"type": "text", "text": p["text"]})
        else:
            image: dict[str, Any] = {"url": p["image_url"]}
            if p.get("detail") in _DETAILS:
                image["detail"] = p["detail"]
            out.append({"type": "image_url", "image_url": image})
    return out


def messages_to_items(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Chat messages as Responses items (no ids): the inverse of ``items_to_messages``."""
    items: list[dict[str, Any]] = []
    for m in messages:
        role = m["role"]
        if role == "tool":
            items.append(
                {
                    "type": "function_call_output",
                    "call_id": m["tool_call_id"],
                    "output": m["content"],
                }
            )
            continue
        content = m.get("content")
        if role == "assistant":
            if content is not None:
                part = {"type": "output_text", "text": content, "annotations": []}
                items.append({"type": "message", "role": role, "content": [part]})
            for call in m.get("tool_calls") or []:
                fn = call["function"]
                items.append(
                    {
                        "type": "function_call",
                        "call_id": call["id"],
                        "name": fn["name"],
                        "arguments": fn["arguments"],
                    }
                )
            continue
        if isinstance(content, str):
            parts: list[dict[str, Any]] = [{"type": "input_text", "text": content}]
        else:
            parts = []
            for p in content or []:
                if p["type"] == "text":
                    parts.append({"type": "input_text", "text": p["text"]})
                else:
                    url = p["image_url"]
                    detail = url.get("detail") or "auto"
                    parts.append({"type": "input_image", "image_url": url["url"], "detail": detail})
        items.append({"type": "message", "role": role, "content": parts})
    return items


# ---------------------------------------------------------------- request options


def tools_to_chat(tools: Any) -> list[dict[str, Any]] | None:
    """Responses' flat function tools as chat tools; other tool types are refused."""
    if tools is None:
        return None
    if not isinstance(tools, list):
        raise _bad("expected a list of tools", "tools")
    out = []
    for i, tool in enumerate(tools):
        if not isinstance(tool, dict) or tool.get("type") != "function":
            raise _bad("only function tools are supported", f"tools[{i}].type")
        fn: dict[str, Any] = {"name": _text(tool.get("name"), f"tools[{i}].name")}
        for key in ("description", "parameters", "strict"):
            if tool.get(key) is not None:
                fn[key] = tool[key]
        out.append({"type": "function", "function": fn})
    return out or None


def tool_choice_to_chat(choice: Any) -> str | dict[str, Any] | None:
    if choice is None or choice in ("auto", "none", "required"):
        return choice  # type: ignore[no-any-return]
    if isinstance(choice, dict) and choice.get("type") == "function":
        return {
            "type": "function",
            "function": {"name": _text(choice.get("name"), "tool_choice.name")},
        }
    raise _bad("expected auto, none, required or a function choice", "tool_choice")


def text_format_to_chat(text: Any) -> dict[str, Any] | None:
    """``text.format`` as a chat ``response_format``; plain text needs none."""
    if text is None:
        return None
    fmt = text.get("format") if isinstance(text, dict) else None
    if fmt is None:
        return None
    kind = fmt.get("type") if isinstance(fmt, dict) else None
    if kind == "text":
        return None
    if kind == "json_object":
        return {"type": "json_object"}
    if kind == "json_schema":
        spec: dict[str, Any] = {"name": _text(fmt.get("name"), "text.format.name")}
        if not isinstance(fmt.get("schema"), dict):
            raise _bad("expected a JSON schema object", "text.format.schema")
        for key in ("schema", "description", "strict"):
            if fmt.get(key) is not None:
                spec[key] = fmt[key]
        return {"type": "json_schema", "json_schema": spec}
    raise _bad("expected text, json_object or json_schema", "text.format.type")


def chat_body(
    request: dict[str, Any], conversation: list[dict[str, Any]], instructions: str | None
) -> dict[str, Any]:
    """The internal chat request (as a dict) for a Responses request and its whole conversation."""
    for name in _UNSUPPORTED:  # each changes what the request means: refuse, never ignore
        if request.get(name):
            raise _bad("is not supported by this gateway", name)
    messages = items_to_messages(conversation)
    if instructions:
        messages.insert(0, {"role": "developer", "content": instructions})
    body: dict[str, Any] = {"model": request["model"], "messages": messages}
    options = {
        "tools": tools_to_chat(request.get("tools")),
        "tool_choice": tool_choice_to_chat(request.get("tool_choice")),
        "response_format": text_format_to_chat(request.get("text")),
        "max_completion_tokens": request.get("max_output_tokens"),
        "temperature": request.get("temperature"),
        "top_p": request.get("top_p"),
        "parallel_tool_calls": request.get("parallel_tool_calls"),
        "user": request.get("user"),
    }
    body.update((k, v) for k, v in options.items() if v is not None)
    if request.get("stream"):  # the usage goes into response.completed
        body.update(stream=True, stream_options={"include_usage": True})
    return body


# ---------------------------------------------------------------- the response object


def echo_of(request: dict[str, Any], previous_response_id: str | None) -> dict[str, Any]:
    """What a response object repeats of its request."""
    text = request.get("text") or {"format": {"type": "text"}}
    return {
        "instructions": request.get("instructions"),
        "max_output_tokens": request.get("max_output_tokens"),
        "metadata": request.get("metadata") or {},
        "parallel_tool_calls": request.get("parallel_tool_calls") is not False,
        "previous_response_id": previous_response_id,
        "store": request.get("store", True),
        "temperature": request.get("temperature"),
        "text": text,
        "tool_choice": request.get("tool_choice") or "auto",
        "tools": request.get("tools") or [],
        "top_p": request.get("top_p"),
        "truncation": "disabled",
        "user": request.get("user"),
    }


def usage_to_dict(u: Usage) -> dict[str, Any]:
    return {
        "input_tokens": u.input_tokens,
        "input_tokens_details": {
            "cached_tokens": u.cached_input_tokens,
            "cache_write_tokens": u.cache_write_tokens,
        },
        "output_tokens": u.output_tokens,
        "output_tokens_details": {"reasoning_tokens": u.reasoning_tokens},
        "total_tokens": u.total_tokens,
    }


def message_item(item_id: str, text: str, status: str = "completed") -> dict[str, Any]:
    part = {"type": "output_text", "text": text, "annotations": [], "logprobs": []}
    return {
        "id": item_id,
        "type": "message",
        "role": "assistant",
        "status": status,
        "content": [part],
    }


def call_item(
    item_id: str, call_id: str, name: str, arguments: str, status: str = "completed"
) -> dict[str, Any]:
    return {
        "id": item_id,
        "type": "function_call",
        "call_id": call_id,
        "name": name,
        "arguments": arguments,
        "status": status,
    }


def output_items(resp: ChatResponse) -> list[dict[str, Any]]:
    """The first choice of an internal answer as output items: its text, then its calls."""
    if not resp.choices:
        return []
    choice = resp.choices[0]
    items = []
    if choice.content:
        items.append(message_item(new_item_id("msg"), choice.content))
    for call in choice.tool_calls:
        items.append(call_item(new_item_id("fc"), call.id, call.name, call.arguments))
    return items


def response_object(
    response_id: str,
    created_at: int,
    model: str,
    echo: dict[str, Any],
    output: list[dict[str, Any]],
    *,
    finish: FinishReason | None = None,
    usage: Usage | None = None,
    status: str | None = None,
    error: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The ``response`` object; ``status`` follows ``finish`` unless given."""
    incomplete = _INCOMPLETE.get(finish or "")
    if status is None:
        status = "incomplete" if incomplete else "completed"
    return {
        "id": response_id,
        "object": "response",
        "created_at": created_at,
        "status": status,
        "error": error,
        "incomplete_details": {"reason": incomplete}
        if incomplete and status == "incomplete"
        else None,
        "model": model,
        "output": output,
        "usage": usage_to_dict(usage) if usage is not None else None,
        **echo,
    }


def render_response(
    resp: ChatResponse, response_id: str, created_at: int, model: str, echo: dict[str, Any]
) -> dict[str, Any]:
    """A whole internal answer as the ``response`` object."""
    finish = resp.choices[0].finish_reason if resp.choices else None
    return response_object(
        response_id, created_at, model, echo, output_items(resp), finish=finish, usage=resp.usage
    )
