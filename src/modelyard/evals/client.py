"""The harness's calls to the gateway: chat completions over aiohttp, and the ledger's
spend by tag (an admin call). Every call goes through the gateway, so keys, budgets and
routing apply to an evaluation as to any other client."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import aiohttp
import orjson

TAGS_HEADER = "X-Modelyard-Tags"
CALL_TAG = "eval_call"  # each call's tag in the ledger: its cost is looked up by it
RUN_TAG = "eval_run"


@dataclass
class ChatReply:
    text: str | None
    input_tokens: int | None
    output_tokens: int | None
    latency_ms: float
    request_id: str | None
    deployment: str | None
    status: int | None
    error: str | None = None

    @property
    def final(self) -> bool:
        """Whether a re-run should keep this result: answers and request errors (4xx but
        408 and 429) are final; network failures, timeouts, 429 and 5xx are retried."""
        if self.error is None:
            return True
        return (
            self.status is not None
            and 400 <= self.status < 500
            and self.status
            not in (
                408,
                429,
            )
        )


class GatewayClient:
    """One aiohttp session to the gateway; close it with ``close`` (or ``async with``)."""

    def __init__(self, base_url: str, api_key: str | None, *, timeout: float = 300.0) -> None:
        self.base_url = base_url.rstrip("/")
        if self.base_url.endswith("/v1"):
            self.base_url = self.base_url[: -len("/v1")]
        self.api_key = api_key
        self._timeout = aiohttp.ClientTimeout(total=timeout)
        self._session: aiohttp.ClientSession | None = None

    def _headers(self, key: str | None) -> dict[str, str]:
        headers = {"Content-Type": "application/json"}
        if key:
            headers["Authorization"] = f"Bearer {key}"
        return headers

    @property
    def session(self) -> aiohttp.ClientSession:
        if self._session is None:
            self._session = aiohttp.ClientSession(timeout=self._timeout)
        return self._session

    async def chat(
        self, model: str, messages: list[dict[str, Any]], extra: dict[str, Any], tags: str
    ) -> ChatReply:
        body = {**extra, "model": model, "messages": messages, "stream": False}
        headers = {**self._headers(self.api_key), TAGS_HEADER: tags}
        t0 = time.perf_counter()
        try:
            async with self.session.post(
                f"{self.base_url}/v1/chat/completions", data=orjson.dumps(body), headers=headers
            ) as resp:
                raw = await resp.read()
                latency = (time.perf_counter() - t0) * 1000
                return _reply(resp, raw, latency)
        except (TimeoutError, aiohttp.ClientError, OSError) as exc:
            latency = (time.perf_counter() - t0) * 1000
            message = f"{type(exc).__name__}: {exc}".rstrip(": ")
            return ChatReply(None, None, None, latency, None, None, None, message)

    async def spend_by_tag(self, admin_key: str, tag: str, since: float) -> dict[str, float]:
        """The ledger's cost in USD per value of ``tag`` since ``since``; raises on failure."""
        url = f"{self.base_url}/admin/spend"
        params = {"group_by": f"tag:{tag}", "since": str(since)}
        async with self.session.get(url, params=params, headers=self._headers(admin_key)) as r:
            r.raise_for_status()
            data = orjson.loads(await r.read())
        return {
            str(row[f"tag:{tag}"]): float(row["cost_usd"])
            for row in data.get("rows", [])
            if row.get(f"tag:{tag}") is not None
        }

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def __aenter__(self) -> GatewayClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()


def _reply(resp: aiohttp.ClientResponse, raw: bytes, latency: float) -> ChatReply:
    rid = resp.headers.get("X-Request-Id")
    deployment = resp.headers.get("X-Modelyard-Deployment")
    try:
        data = orjson.loads(raw)
    except orjson.JSONDecodeError:
        data = None
    if resp.status >= 400 or not isinstance(data, dict):
        text = raw[:300].decode(errors="replace")
        if isinstance(data, dict) and isinstance(data.get("error"), dict):
            text = str(data["error"].get("message", text))
        error = f"HTTP {resp.status}: {text}"
        return ChatReply(None, None, None, latency, rid, deployment, resp.status, error)
    usage = data.get("usage") or {}
    choices = data.get("choices") or [{}]
    message = (choices[0] or {}).get("message") or {}
    content = message.get("content")
    if isinstance(content, list):
        content = "".join(str(p.get("text", "")) for p in content if isinstance(p, dict))
    return ChatReply(
        content if isinstance(content, str) else "",
        _int(usage.get("prompt_tokens")),
        _int(usage.get("completion_tokens")),
        latency,
        rid,
        deployment,
        resp.status,
    )


def _int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None
