"""What the learned-route end-to-end tests share: a solver upstream and small helpers.

``solver`` is a scripted answer of the fake OpenAI upstream (``Recorder.script``)
that plays models of different skill on the echo table's prompts ("what is A
plus B?"): ``big-model`` always adds right, ``small-model`` is off by one on
prompts with "tricky" in them, and ``judge-model`` grades with the evaluation
rubric (``{"score": 1}`` when the candidate's last number is the reference's).
Its answers are OpenAI chat completion objects with 11 prompt and 7 completion
tokens, like the fake's own; a streamed request is refused, because the
learned route's calls and its sampling ask for whole answers.
"""

from __future__ import annotations

import json
import re
import time
from typing import Any

from aiohttp import web

from tests.conftest import Gateway
from tests.e2e.governance.support import admin
from tests.fakes.harness import Recorded, Recorder

_SUM = re.compile(r"what is (\d+) plus (\d+)\?")
_NUMBER = re.compile(r"-?\d+")


def reply(model: str, text: str) -> web.Response:
    return web.json_response(
        {
            "id": "chatcmpl-solver",
            "object": "chat.completion",
            "created": 1_764_000_000,
            "model": model,
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": text, "refusal": None},
                    "logprobs": None,
                    "finish_reason": "stop",
                }
            ],
            "usage": {"prompt_tokens": 11, "completion_tokens": 7, "total_tokens": 18},
        }
    )


def _grade(text: str) -> str:
    reference = text.split("## Reference answer", 1)[1].split("## Candidate answer", 1)
    want = _NUMBER.findall(reference[0])
    got = _NUMBER.findall(reference[1])
    right = bool(want) and bool(got) and want[-1] == got[-1]
    return json.dumps({"score": 1 if right else 0, "reason": "compared the last numbers"})


async def solver(request: web.Request, rec: Recorded) -> web.StreamResponse:
    body = json.loads(rec.body)
    if body.get("stream"):
        return web.json_response({"error": {"message": "solver: no streams"}}, status=400)
    model = body["model"]
    text = body["messages"][-1]["content"]
    if model == "judge-model":
        return reply(model, _grade(text))
    found = _SUM.search(text)
    if found is None:
        return reply(model, "I do not know.")
    total = int(found.group(1)) + int(found.group(2))
    if model == "small-model" and "tricky" in text:
        total += 1
    return reply(model, f"Adding them up, the answer is {total}.")


def play_solver(recorder: Recorder, times: int = 500) -> None:
    recorder.script.clear()
    recorder.script.extend([solver] * times)


def upstream_models(recorder: Recorder) -> list[str]:
    """The models the upstream was asked for, in order; the record is cleared."""
    models = [json.loads(r.body)["model"] for r in recorder.requests]
    recorder.requests.clear()
    return models


def wait_for_outcomes(gw: Gateway, route: str, count: int, timeout: float = 15.0) -> list[Any]:
    """The route's exported outcome rows, once there are at least ``count``."""
    deadline = time.monotonic() + timeout
    while True:
        status, found = admin(gw, "GET", f"/admin/learned/{route}/outcomes")
        assert status == 200, found
        rows: list[Any] = found["outcomes"]
        if len(rows) >= count or time.monotonic() > deadline:
            return rows
        time.sleep(0.1)


async def big_fails(request: web.Request, rec: Recorded) -> web.StreamResponse:
    """``big-model`` answers 500; any other model echoes the prompt as the fake does."""
    body = json.loads(rec.body)
    if body["model"] == "big-model":
        error = {"message": "boom", "type": "server_error", "param": None, "code": None}
        return web.json_response({"error": error}, status=500)
    return reply(body["model"], "Hello from fake openai: " + body["messages"][-1]["content"])
