"""Circuit-breaker and 429-cooldown news shared by the replicas of a gateway, through Redis.

Each replica keeps its own ``HealthBoard`` and routes on it alone, synchronously
and without the network. This module only carries news between boards:

* Out: the board's ``on_change`` hook fires on a transition (a breaker opened,
  closed again, a cooldown set or extended). The hook puts the news in an
  outbox and returns; a writer task SETs the deployment's key and PUBLISHes the
  news. The outbox keeps the latest news per deployment and kind, so a burst
  of 429s sends a few messages, not one per request.
* In: a listener task SUBSCRIBEs to the channel, then reads the keys (a
  replica that starts during an outage knows of it before it serves), and
  applies other replicas' news with ``DeploymentHealth.adopt_*``, which never
  call the hook: no echo. News carries a random replica id; our own is skipped.

Times travel as wall-clock seconds and arrive on this process's monotonic
clock, so they are as good as the hosts' clock sync (NTP: milliseconds); a
time in the future is taken as now. Keys, under the prefix, live as long as
they matter: ``health:open:<deployment>`` for ``open_seconds`` (deleted when
the breaker closes), ``health:cooling:<deployment>`` until the cooldown ends;
a write never shortens a key's life, so a later replica learns the longest.

Redis down never stops serving: every replica goes on with what it knows,
one warning is logged, and the listener subscribes and reads the keys again
when Redis is back. News that could not be sent is dropped. Pub/sub channels
are not per database: gateways sharing a Redis server need different prefixes.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from typing import Any

import orjson
from redis.asyncio import Redis
from redis.asyncio.client import PubSub
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError

from modelyard.routing.health import CLOSED_AGAIN, COOLING, OPENED, DeploymentHealth, HealthBoard

log = logging.getLogger(__name__)

HEARTBEAT = 5.0  # seconds of silence before a PING; twice that without a PONG: reconnect
RETRY_SECONDS = 1.0  # between tries to reach Redis while it is down
START_WAIT = 3.0  # seconds start() waits for the first subscription, then serves regardless
# SET the key unless it outlives this news already: another replica's may end later
EXTEND = """
if redis.call('PTTL', KEYS[1]) < tonumber(ARGV[2]) then
  return redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
end
"""


class SharedHealth:
    def __init__(self, redis: Redis, board: HealthBoard, prefix: str = "modelyard:"):
        self.redis = redis
        self.board = board
        self.channel = prefix + "health"
        self._key = prefix + "health:"
        self.replica = os.urandom(8).hex()
        self._outbox: dict[tuple[str, str], dict[str, Any]] = {}
        self._wake = asyncio.Event()
        self._tried = asyncio.Event()  # the first subscription succeeded or failed
        self._tasks: list[asyncio.Task[None]] = []
        self._down = False

    async def start(self) -> None:
        """Listen and publish from now on; wait (a little) until the current state is read."""
        self._tasks = [asyncio.create_task(self._listen()), asyncio.create_task(self._write())]
        self.board.watch(self._changed)
        try:
            await asyncio.wait_for(self._tried.wait(), START_WAIT)
        except TimeoutError:
            self._warn(TimeoutError(f"no subscription after {START_WAIT}s"))

    async def close(self) -> None:
        self.board.watch(None)
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks = []

    # ------------------------------------------------------------------ out

    def _changed(self, health: DeploymentHealth, what: str) -> None:
        """On the request path: take the news now (the record moves on), send it later."""
        to_wall = time.time() - time.monotonic()
        news: dict[str, Any] = {"replica": self.replica, "deployment": health.name, "event": what}
        if what == OPENED:
            news |= {"opened_at": health.opened_at + to_wall, "failures": health.failures}
        elif what == COOLING:
            news["until"] = health.cooldown_until + to_wall
        else:
            news["at"] = time.time()
        self._outbox[health.name, COOLING if what == COOLING else "breaker"] = news
        self._wake.set()

    async def _write(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            while self._outbox:
                news = self._outbox.pop(next(iter(self._outbox)))
                try:
                    await self._send(news)
                except (RedisError, OSError) as exc:
                    self._warn(exc)
                else:
                    self._up()

    async def _send(self, news: dict[str, Any]) -> None:
        what, data = news["event"], orjson.dumps(news)
        key = f"{self._key}{'cooling' if what == COOLING else 'open'}:{news['deployment']}"
        async with self.redis.pipeline(transaction=False) as pipe:
            if what == CLOSED_AGAIN:
                pipe.delete(key)
            else:
                open_seconds = self.board.settings.open_seconds
                until = news["until"] if what == COOLING else news["opened_at"] + open_seconds
                if (ttl_ms := int((until - time.time()) * 1000)) > 0:
                    pipe.eval(EXTEND, 1, key, data, ttl_ms)  # a short text: no EVALSHA dance
            pipe.publish(self.channel, data)
            await pipe.execute()

    # ------------------------------------------------------------------- in

    async def _listen(self) -> None:
        while True:
            try:
                async with self.redis.pubsub(ignore_subscribe_messages=True) as pubsub:
                    await pubsub.subscribe(self.channel)
                    await self._load()  # after SUBSCRIBE, so that no news falls in between
                    self._up()
                    self._tried.set()
                    await self._receive(pubsub)
            except (RedisError, OSError) as exc:
                self._warn(exc)
            except Exception:  # a bug here must not end sharing for good
                log.exception("breaker state listener failed; it starts again")
            self._tried.set()
            await asyncio.sleep(RETRY_SECONDS)

    async def _load(self) -> None:
        keys = [f"{self._key}{kind}:{n}" for n in list(self.board) for kind in ("open", "cooling")]
        for raw in await self.redis.mget(keys) if keys else []:
            if raw is not None:
                self._apply(raw)

    async def _receive(self, pubsub: PubSub) -> None:
        loop = asyncio.get_running_loop()
        heard = loop.time()
        while True:
            message = await pubsub.get_message(timeout=HEARTBEAT)
            now = loop.time()
            if message is not None:
                heard = now
                if message["type"] == "message":
                    self._apply(message["data"])
            elif now - heard > 2 * HEARTBEAT:
                raise RedisConnectionError("no answer to PING on the health channel")
            elif now - heard >= HEARTBEAT:
                await pubsub.ping()

    def _apply(self, raw: bytes | str) -> None:
        try:
            news = orjson.loads(raw)
            name = news["deployment"]
            if news["replica"] == self.replica or name not in self.board:
                return  # our own, or a deployment this replica does not have
            health = self.board[name]
            now = time.monotonic()
            to_local = now - time.time()
            what = news["event"]
            if what == OPENED:
                health.adopt_open(min(news["opened_at"] + to_local, now), int(news["failures"]))
            elif what == CLOSED_AGAIN:
                health.adopt_closed(min(news["at"] + to_local, now))
            elif what == COOLING:
                health.adopt_cooldown(news["until"] + to_local)
        except (ValueError, KeyError, TypeError) as exc:
            log.warning("ignored malformed breaker news %r: %s", raw[:200], exc)

    def _up(self) -> None:
        if self._down:
            self._down = False
            log.info("breaker state is shared again: Redis answers")

    def _warn(self, exc: BaseException) -> None:
        if not self._down:
            self._down = True
            log.warning(
                "breaker state is not shared while Redis is unreachable (%s); "
                "each replica goes on with what it knows",
                exc,
            )
