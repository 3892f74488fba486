"""Cache keys: scoped to team and route, every output-changing field in, canonical, pure."""

from __future__ import annotations

import copy
import subprocess
import sys
from typing import Any

import orjson
import pytest

from modelyard.cache.keys import (
    EXCLUDED,
    CacheControl,
    cacheable,
    exact_key,
    parse_cache_control,
    semantic_key,
)

CHAT: dict[str, Any] = {
    "model": "support",
    "temperature": 0,
    "messages": [
        {"role": "system", "content": "You answer briefly."},
        {"role": "user", "content": "What is the capital of France?"},
    ],
}
RESPONSES: dict[str, Any] = {
    "model": "support",
    "temperature": 0,
    "instructions": "You answer briefly.",
    "input": "What is the capital of France?",
}
MESSAGES: dict[str, Any] = {
    "model": "support",
    "max_tokens": 256,
    "temperature": 0,
    "system": "You answer briefly.",
    "messages": [{"role": "user", "content": "What is the capital of France?"}],
}
BASES = {"chat": CHAT, "responses": RESPONSES, "messages": MESSAGES}


def key(body: dict[str, Any], endpoint: str = "chat", team: str | None = "a") -> str:
    return exact_key(team, "support", endpoint, body)


# ---------------------------------------------------------------- scope


def test_a_key_is_a_sha256_in_hex_and_the_same_every_time() -> None:
    k = key(CHAT)
    assert len(k) == 64 and int(k, 16) >= 0
    assert key(copy.deepcopy(CHAT)) == k


def test_two_teams_never_share_a_key() -> None:
    teams: list[str | None] = ["a", "b", "A", "", "anonymous", "null", "None", None]
    assert len({key(CHAT, team=t) for t in teams}) == len(teams)


def test_the_route_and_the_endpoint_are_part_of_the_key() -> None:
    base = exact_key("a", "support", "chat", CHAT)
    assert exact_key("a", "support-2", "chat", CHAT) != base
    assert exact_key("a", "support", "completions", CHAT) != base


def test_no_concatenation_of_team_and_route_collides() -> None:
    assert exact_key("a\nb", "c", "chat", CHAT) != exact_key("a", "b\nc", "chat", CHAT)
    assert exact_key("ab", "c", "chat", CHAT) != exact_key("a", "bc", "chat", CHAT)


# ---------------------------------------------------------------- fields that change the output

# (endpoint, field, a value that differs from the base request's)
CHANGES: list[tuple[str, str, Any]] = [
    ("chat", "model", "support-fast"),
    ("chat", "messages", [{"role": "user", "content": "What is the capital of Spain?"}]),
    ("chat", "tools", [{"type": "function", "function": {"name": "f", "parameters": {}}}]),
    ("chat", "tool_choice", "required"),
    ("chat", "parallel_tool_calls", False),
    ("chat", "response_format", {"type": "json_object"}),
    ("chat", "temperature", 0.2),
    ("chat", "top_p", 0.5),
    ("chat", "seed", 7),
    ("chat", "max_tokens", 10),
    ("chat", "max_completion_tokens", 10),
    ("chat", "stop", ["\n"]),
    ("chat", "n", 2),
    ("chat", "logit_bias", {"50256": -100}),
    ("chat", "logprobs", True),
    ("chat", "top_logprobs", 3),
    ("chat", "presence_penalty", 0.5),
    ("chat", "frequency_penalty", 0.5),
    ("chat", "reasoning_effort", "high"),
    ("chat", "verbosity", "low"),
    ("chat", "service_tier", "flex"),
    ("chat", "modalities", ["text", "audio"]),
    ("chat", "prediction", {"type": "content", "content": "Paris"}),
    ("chat", "stream", True),
    ("chat", "a_field_added_next_year", 1),
    ("responses", "instructions", "You answer at length."),
    ("responses", "input", "What is the capital of Spain?"),
    ("responses", "text", {"format": {"type": "json_object"}}),
    ("responses", "reasoning", {"effort": "high"}),
    ("responses", "previous_response_id", "resp_" + "0" * 48),
    ("responses", "max_output_tokens", 10),
    ("responses", "tools", [{"type": "function", "name": "f", "parameters": {}}]),
    ("responses", "tool_choice", "required"),
    ("responses", "top_p", 0.5),
    ("responses", "include", ["reasoning.encrypted_content"]),
    ("responses", "truncation", "auto"),
    ("responses", "store", False),  # decides whether the answer's id can be found later
    ("responses", "metadata", {"k": "v"}),  # echoed in the response object
    ("responses", "user", "u-1"),  # echoed in the response object
    ("messages", "system", "You answer at length."),
    ("messages", "messages", [{"role": "user", "content": "And Spain?"}]),
    ("messages", "stop_sequences", ["\n"]),
    ("messages", "top_k", 1),
    ("messages", "thinking", {"type": "enabled", "budget_tokens": 1024}),
    ("messages", "max_tokens", 1024),
    ("messages", "tool_choice", {"type": "any"}),
    ("messages", "output_config", {"effort": "low"}),
    ("messages", "service_tier", "standard_only"),
]


@pytest.mark.parametrize(("endpoint", "field", "value"), CHANGES)
def test_every_field_that_can_change_the_answer_changes_the_key(
    endpoint: str, field: str, value: Any
) -> None:
    base = BASES[endpoint]
    assert base.get(field) != value, "the case must change the request"
    assert key({**base, field: value}, endpoint) != key(base, endpoint)


@pytest.mark.parametrize(("endpoint", "field"), [(e, f) for e in EXCLUDED for f in EXCLUDED[e]])
def test_the_excluded_fields_do_not_change_the_key(endpoint: str, field: str) -> None:
    base = BASES.get(endpoint, {"model": "support", "prompt": "Say hi", "temperature": 0})
    for value in ("x", {"k": "v"}, True, None):
        assert key({**base, field: value}, endpoint) == key(base, endpoint)


def test_the_fields_excluded_elsewhere_count_for_an_endpoint_that_does_not_exclude_them() -> None:
    # ``user`` changes nothing in a chat completion, but the Responses object echoes it
    assert key({**CHAT, "user": "u-1"}, "chat") == key(CHAT, "chat")
    assert key({**RESPONSES, "user": "u-1"}, "responses") != key(RESPONSES, "responses")
    # an endpoint this module does not know excludes nothing
    assert key({**CHAT, "user": "u-1"}, "batch") != key(CHAT, "batch")


def test_whitespace_inside_message_text_changes_the_key() -> None:
    spaced = copy.deepcopy(CHAT)
    spaced["messages"][1]["content"] = "What is the capital of  France?"
    trailing = copy.deepcopy(CHAT)
    trailing["messages"][1]["content"] += "\n"
    assert len({key(CHAT), key(spaced), key(trailing)}) == 3


def test_the_order_of_messages_changes_the_key() -> None:
    swapped = {**CHAT, "messages": CHAT["messages"][::-1]}
    assert key(swapped) != key(CHAT)


# ---------------------------------------------------------------- canonical form

COMPACT = (
    b'{"model":"support","temperature":0,"messages":[{"role":"system","content":"Be brief."},'
    b'{"role":"user","content":"Hi \\u00e9"}],"response_format":{"type":"json_schema",'
    b'"json_schema":{"name":"x","schema":{"type":"object","properties":{"a":{"type":"string"}}}}}}'
)
REORDERED = b"""{
  "response_format": {"json_schema": {"schema": {"properties": {"a": {"type": "string"}},
                                                 "type": "object"}, "name": "x"},
                      "type": "json_schema"},
  "messages": [ { "content" : "Be brief.", "role" : "system" },
                { "content" : "Hi \xc3\xa9", "role" : "user" } ],
  "temperature": 0.0,
  "model":   "support"
}"""


def test_key_order_json_whitespace_and_escapes_do_not_change_the_key() -> None:
    assert orjson.loads(COMPACT) != orjson.loads(b'{"model": "other"}')
    assert key(orjson.loads(COMPACT)) == key(orjson.loads(REORDERED))


def test_a_whole_float_is_its_integer_but_a_boolean_is_not() -> None:
    assert key({**CHAT, "temperature": 0.0}) == key({**CHAT, "temperature": 0})
    assert key({**CHAT, "max_tokens": 100.0}) == key({**CHAT, "max_tokens": 100})
    assert key({**CHAT, "temperature": 0.5}) != key({**CHAT, "temperature": 0})
    assert key({**CHAT, "n": True}) != key({**CHAT, "n": 1})
    assert key({**CHAT, "seed": 2**60}) != key({**CHAT, "seed": 2**60 + 1})


def test_stream_false_is_no_stream_and_stream_options_count_only_for_a_stream() -> None:
    assert key({**CHAT, "stream": False}) == key(CHAT)
    quiet = {**CHAT, "stream_options": {"include_usage": True}}
    assert key(quiet) == key(CHAT)  # no stream: the options do nothing
    streamed = {**CHAT, "stream": True}
    with_usage = {**streamed, "stream_options": {"include_usage": True}}
    assert key(streamed) != key(CHAT)  # a stream's bytes are not a JSON body's
    assert key(with_usage) != key(streamed)  # include_usage adds a chunk to the bytes


def test_the_caller_s_body_is_not_changed() -> None:
    body = {**CHAT, "stream": False, "user": "u", "temperature": 0.0}
    before = copy.deepcopy(body)
    key(body)
    semantic_key("a", "support", "chat", body)
    assert body == before and type(body["temperature"]) is float


def test_a_value_json_cannot_hold_raises() -> None:
    with pytest.raises(TypeError):
        key({**CHAT, "seed": object()})


# ---------------------------------------------------------------- the default rule


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ({"temperature": 0}, True),
        ({"temperature": 0.0}, True),
        ({"seed": 1}, True),
        ({"temperature": 0.7, "seed": 0}, True),
        ({"temperature": 0.7}, False),
        ({}, False),  # the vendors' default temperature is 1
        ({"temperature": None, "seed": None}, False),
        ({"temperature": False}, False),
        ({"seed": True}, False),
        ({"seed": "1"}, False),
        ({"temperature": "0"}, False),
    ],
)
def test_only_temperature_zero_or_a_seed_is_cacheable_by_default(
    body: dict[str, Any], expected: bool
) -> None:
    assert cacheable(body) is expected


# ---------------------------------------------------------------- the semantic key


def sem(body: dict[str, Any], endpoint: str = "chat", team: str | None = "a") -> Any:
    return semantic_key(team, "support", endpoint, body)


def with_question(body: dict[str, Any], text: str) -> dict[str, Any]:
    out = copy.deepcopy(body)
    out["messages"][-1]["content"] = text
    return out


def test_the_semantic_scope_leaves_out_the_last_question_only() -> None:
    a = sem(CHAT)
    b = sem(with_question(CHAT, "Which city is France's capital?"))
    assert a.text == "What is the capital of France?"
    assert b.text == "Which city is France's capital?"
    assert a.scope == b.scope
    assert a.scope != key(CHAT) and len(a.scope) == 64


@pytest.mark.parametrize(
    "change",
    [
        {"temperature": 0.3},
        {"model": "support-fast"},
        {"max_tokens": 5},
        {"tools": [{"type": "function", "function": {"name": "f", "parameters": {}}}]},
        {"messages": [{"role": "system", "content": "Be verbose."}, CHAT["messages"][1]]},
        {"messages": [CHAT["messages"][1]]},  # no system prompt
    ],
)
def test_everything_but_the_last_question_is_in_the_semantic_scope(change: dict[str, Any]) -> None:
    changed = sem({**CHAT, **change})
    assert changed is not None
    assert changed.scope != sem(CHAT).scope


def test_two_teams_never_share_a_semantic_scope() -> None:
    assert sem(CHAT, team="a").scope != sem(CHAT, team="b").scope
    assert sem(CHAT, team=None).scope != sem(CHAT, team="").scope


def test_text_parts_are_joined_and_other_parts_have_no_semantic_key() -> None:
    parts = with_question(CHAT, "")
    parts["messages"][-1]["content"] = [
        {"type": "text", "text": "What is"},
        {"type": "text", "text": "the capital?"},
    ]
    assert sem(parts).text == "What is\nthe capital?"
    image = copy.deepcopy(parts)
    image["messages"][-1]["content"].append(
        {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}}
    )
    assert sem(image) is None


@pytest.mark.parametrize(
    "last",
    [
        {"role": "tool", "tool_call_id": "c1", "content": "42"},
        {"role": "assistant", "content": "Paris."},
        {"role": "user", "content": "   "},
        {"role": "user", "content": None},
        {"role": "user", "content": []},
    ],
)
def test_a_last_turn_that_is_not_user_text_has_no_semantic_key(last: dict[str, Any]) -> None:
    assert sem({**CHAT, "messages": [*CHAT["messages"], last]}) is None


def test_anthropic_messages_semantic_key() -> None:
    a = sem(MESSAGES, "messages")
    blocks = copy.deepcopy(MESSAGES)
    blocks["messages"][-1]["content"] = [{"type": "text", "text": "Capital of France?"}]
    b = sem(blocks, "messages")
    assert a.text == "What is the capital of France?" and b.text == "Capital of France?"
    assert a.scope == b.scope
    assert sem({**MESSAGES, "system": "Other."}, "messages").scope != a.scope
    cached = copy.deepcopy(blocks)
    cached["messages"][-1]["content"][0]["cache_control"] = {"type": "ephemeral"}
    assert sem(cached, "messages") is None
    result = copy.deepcopy(MESSAGES)
    result["messages"][-1]["content"] = [
        {"type": "tool_result", "tool_use_id": "t1", "content": "42"}
    ]
    assert sem(result, "messages") is None


def test_responses_semantic_key_for_a_string_and_for_items() -> None:
    a = sem(RESPONSES, "responses")
    assert a.text == "What is the capital of France?"
    items = {
        **RESPONSES,
        "input": [
            {"role": "user", "content": "Hello"},
            {"type": "message", "role": "user", "content": [{"type": "input_text", "text": "Q?"}]},
        ],
    }
    b = sem(items, "responses")
    assert b.text == "Q?"
    assert b.scope != a.scope  # an earlier turn is part of the scope
    assert sem({**RESPONSES, "instructions": "Other."}, "responses").scope != a.scope
    output = {
        **RESPONSES,
        "input": [{"type": "function_call_output", "call_id": "c", "output": "1"}],
    }
    assert sem(output, "responses") is None


def test_completions_semantic_key_and_unknown_endpoints() -> None:
    body = {"model": "support", "prompt": "Say hi", "temperature": 0}
    assert sem(body, "completions").text == "Say hi"
    assert sem({**body, "prompt": ["Say hi"]}, "completions") is None
    assert sem(CHAT, "embeddings") is None


# ---------------------------------------------------------------- Cache-Control


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        (None, CacheControl()),
        ("", CacheControl()),
        ("no-cache", CacheControl(no_cache=True)),
        ("No-Store", CacheControl(no_store=True)),
        ("no-cache, no-store", CacheControl(no_cache=True, no_store=True)),
        ("max-age=60", CacheControl(max_age=60)),
        ('max-age="60"', CacheControl(max_age=60)),
        ("MAX-AGE = 60 ,no-cache", CacheControl(no_cache=True, max_age=60)),
        ("max-age=600, max-age=30", CacheControl(max_age=30)),
        ("max-age=0", CacheControl(max_age=0)),
        ("max-age=-1", CacheControl()),
        ("max-age=1.5", CacheControl()),
        ("max-age=", CacheControl()),
        ("max-age", CacheControl()),
        ("max-age=٣", CacheControl()),  # a digit, but not an ASCII one
        ("max-age=" + "9" * 5000, CacheControl(max_age=2**31 - 1)),
        ("private, must-revalidate, x-custom=1", CacheControl()),
    ],
)
def test_cache_control_is_parsed(header: str | None, expected: CacheControl) -> None:
    assert parse_cache_control(header) == expected


def test_what_cache_control_allows() -> None:
    plain = CacheControl()
    assert plain.may_serve(10**6) and plain.ttl(300) == 300
    assert not CacheControl(no_cache=True).may_serve(0)
    assert CacheControl(no_cache=True).ttl(300) == 300  # the fresh answer may be stored
    assert CacheControl(no_store=True).may_serve(5) and CacheControl(no_store=True).ttl(300) == 0
    young = CacheControl(max_age=60)
    assert young.may_serve(60) and not young.may_serve(60.5)
    assert young.ttl(300) == 60  # shortens the route's TTL
    assert CacheControl(max_age=900).ttl(300) == 300  # lengthens it only up to a ceiling
    assert CacheControl(max_age=900).ttl(300, ceiling=3600) == 900
    assert CacheControl(max_age=9000).ttl(300, ceiling=3600) == 3600
    zero = CacheControl(max_age=0)
    assert zero.ttl(300) == 0 and not zero.may_serve(0.001)


# ---------------------------------------------------------------- no work at import


def test_the_cache_package_imports_neither_numpy_nor_redis() -> None:
    code = (
        "import sys, modelyard.cache.keys, modelyard.cache.store, modelyard.cache.semantic, "
        "modelyard.cache.replay; print([m for m in ('numpy', 'redis') if m in sys.modules])"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"
