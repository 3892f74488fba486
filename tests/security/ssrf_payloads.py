"""Hostile request bodies and headers for the SSRF tests: a URL in every field that could hold one.

Each builder takes one URL and answers ``(label, path, body)`` triples. The
fields are those the advisories against other gateways name (``base_url``,
``api_base``, ``url``), every place the wire formats carry a URL as data
(image parts, Responses ``input_image``/``input_file``, Anthropic image
``source.url``), and places a careless server might dereference (JSON-schema
``$ref``/``$id`` in tools and response formats, MCP server URLs), at the top
level and nested.
"""

from __future__ import annotations

from typing import Any

Payload = tuple[str, str, dict[str, Any]]

USER = {"role": "user", "content": "hi"}
URL_KEYS = ("base_url", "api_base", "url", "image_url", "endpoint", "server_url", "webhook")


def url_fields(url: str) -> dict[str, Any]:
    """The URL under every suspicious key, and again one and two levels down."""
    flat: dict[str, Any] = dict.fromkeys(URL_KEYS, url)
    return {**flat, "extra_body": {**flat, "nested": {**flat, "list": [flat]}}}


def _schema(url: str) -> dict[str, Any]:
    return {
        "$schema": url,
        "$id": url,
        "type": "object",
        "properties": {
            "link": {"type": "string", "format": "uri", "default": url},
            "remote": {"$ref": url + "#/definitions/x"},
        },
    }


def chat(url: str, model: str = "gpt") -> list[Payload]:
    base = {"model": model, "messages": [USER]}
    image = {"type": "image_url", "image_url": {"url": url, "detail": "low"}}
    path = "/v1/chat/completions"
    function = {"name": "fetch", "description": url, "parameters": _schema(url)}
    tool = {"type": "function", "function": function}
    return [
        ("chat: url fields", path, {**base, **url_fields(url)}),
        ("chat: url fields in metadata", path, {**base, "metadata": {"base_url": url}}),
        ("chat: model is a url", path, {**base, "model": url}),
        (
            "chat: image part",
            path,
            {
                **base,
                "messages": [{"role": "user", "content": [{"type": "text", "text": "x"}, image]}],
            },
        ),
        (
            "chat: image part, streamed",
            path,
            {**base, "stream": True, "messages": [{"role": "user", "content": [image]}]},
        ),
        (
            "chat: image part with url fields",
            path,
            {**base, "messages": [{"role": "user", "content": [{**image, **url_fields(url)}]}]},
        ),
        ("chat: message url fields", path, {**base, "messages": [{**USER, **url_fields(url)}]}),
        ("chat: tool definition", path, {**base, "tools": [tool]}),
        (
            "chat: json schema response format",
            path,
            {
                **base,
                "response_format": {
                    "type": "json_schema",
                    "json_schema": {"name": "x", "schema": _schema(url)},
                },
            },
        ),
        (
            "chat: tool call and result carry urls",
            path,
            {
                **base,
                "messages": [
                    USER,
                    {
                        "role": "assistant",
                        "content": None,
                        "tool_calls": [
                            {
                                "id": "call_1",
                                "type": "function",
                                "function": {"name": "fetch", "arguments": f'{{"url": "{url}"}}'},
                            }
                        ],
                    },
                    {"role": "tool", "tool_call_id": "call_1", "content": url},
                ],
            },
        ),
        (
            "completions: url fields",
            "/v1/completions",
            {"model": model, "prompt": url, **url_fields(url)},
        ),
        (
            "embeddings: url fields",
            "/v1/embeddings",
            {"model": model, "input": url, **url_fields(url)},
        ),
    ]


def responses(url: str, model: str = "gpt") -> list[Payload]:
    path = "/v1/responses"
    image = {"type": "input_image", "image_url": url, "detail": "low"}
    text = {"type": "input_text", "text": "x"}
    return [
        ("responses: url fields", path, {"model": model, "input": "hi", **url_fields(url)}),
        ("responses: input is a url", path, {"model": model, "input": url}),
        (
            "responses: input_image",
            path,
            {"model": model, "input": [{"role": "user", "content": [text, image]}]},
        ),
        (
            "responses: input_image, streamed",
            path,
            {"model": model, "stream": True, "input": [{"role": "user", "content": [image]}]},
        ),
        (
            "responses: input_file by url",
            path,
            {
                "model": model,
                "input": [{"role": "user", "content": [{"type": "input_file", "file_url": url}]}],
            },
        ),
        (
            "responses: mcp tool server",
            path,
            {
                "model": model,
                "input": "hi",
                "tools": [{"type": "mcp", "server_label": "x", "server_url": url}],
            },
        ),
        (
            "responses: function tool schema",
            path,
            {
                "model": model,
                "input": "hi",
                "tools": [{"type": "function", "name": "f", "parameters": _schema(url)}],
            },
        ),
        (
            "responses: previous id is a url",
            path,
            {"model": model, "input": "x", "previous_response_id": url},
        ),
    ]


def anthropic(url: str, model: str) -> list[Payload]:
    path = "/v1/messages"
    base = {"model": model, "max_tokens": 16}
    image = {"type": "image", "source": {"type": "url", "url": url}}
    text = {"type": "text", "text": "x"}
    return [
        ("messages: url fields", path, {**base, "messages": [USER], **url_fields(url)}),
        (
            "messages: image source.url",
            path,
            {**base, "messages": [{"role": "user", "content": [text, image]}]},
        ),
        (
            "messages: image source.url, streamed",
            path,
            {**base, "stream": True, "messages": [{"role": "user", "content": [image]}]},
        ),
        (
            "messages: mcp server",
            path,
            {**base, "messages": [USER], "mcp_servers": [{"type": "url", "url": url, "name": "x"}]},
        ),
        (
            "messages: tool schema",
            path,
            {**base, "messages": [USER], "tools": [{"name": "f", "input_schema": _schema(url)}]},
        ),
        (
            "count_tokens: image",
            "/v1/messages/count_tokens",
            {"model": model, "messages": [{"role": "user", "content": [image]}]},
        ),
    ]


def forwarding_headers(host: str) -> dict[str, str]:
    """Headers with which a proxy-aware server might be talked into a different upstream."""
    return {
        "Host": host,
        "X-Forwarded-Host": host,
        "X-Forwarded-For": host.rsplit(":", 1)[0],
        "X-Forwarded-Proto": "http",
        "Forwarded": f'for=127.0.0.1;host="{host}";proto=http',
        "X-Original-URL": f"http://{host}/v1",
        "X-Rewrite-URL": f"http://{host}/v1",
        "X-Upstream-URL": f"http://{host}/v1",
        "X-Base-URL": f"http://{host}/v1",
    }
