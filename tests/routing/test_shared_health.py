"""Breaker and cooldown news between replicas: the transition hook, and Redis pub/sub for real.

Two ``SharedHealth`` on two ``HealthBoard`` in one process are two replicas
(each with a client of its own). They use the Redis server this machine runs
(127.0.0.1:6379) under a key prefix of the test's own, deleted afterwards; the
tests fail, rather than skip, when it is missing. An outage is played by a TCP
proxy in front of Redis that a test stops and starts again.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import AsyncIterator, Callable

import orjson
import pytest
from redis.asyncio import Redis
from redis.asyncio.client import PubSub

from modelyard.routing import shared_health
from modelyard.routing.config import HealthSettings
from modelyard.routing.health import (
    CLOSED,
    CLOSED_AGAIN,
    COOLING,
    HALF_OPEN,
    OPEN,
    OPENED,
    DeploymentHealth,
    HealthBoard,
)
from modelyard.routing.shared_health import SharedHealth
from modelyard.storage.redis import connect_redis
from tests.fakes.harness import free_port

REDIS_URL = "redis://127.0.0.1:6379/0"
SETTINGS = HealthSettings(failure_threshold=2, open_seconds=1.0, cooldown_seconds=1.0)
NAMES = ["dep-a", "dep-b"]


def recorded(health: DeploymentHealth) -> list[str]:
    told: list[str] = []
    health.on_change = lambda h, what: told.append(what)
    return told


async def until(condition: Callable[[], bool], timeout: float = 2.0) -> float:
    """Seconds until ``condition`` held; fails the test after ``timeout``."""
    t0 = time.monotonic()
    while not condition():
        assert time.monotonic() - t0 < timeout, "not within the timeout"
        await asyncio.sleep(0.001)
    return time.monotonic() - t0


# ------------------------------------------------------------ the hook, no Redis


def test_the_hook_hears_transitions_only() -> None:
    health = DeploymentHealth("d", SETTINGS)
    told = recorded(health)
    health.succeeded(10.0)
    health.failed(100.0)
    assert told == []  # closed stays closed, one failure is below the threshold
    health.failed(100.1)
    assert told == [OPENED] and health.state == OPEN
    health.failed(100.2)  # a straggler while open: no news
    assert told == [OPENED]
    health.begin(101.5)
    assert health.state == HALF_OPEN
    health.failed(101.6)  # the probe failed: open again, news again
    assert told == [OPENED, OPENED] and health.opened_at == 101.6
    health.begin(103.0)
    health.succeeded(10.0)
    health.succeeded(10.0)
    assert told == [OPENED, OPENED, CLOSED_AGAIN] and health.state == CLOSED


def test_the_hook_hears_a_cooldown_set_or_extended_not_shortened() -> None:
    health = DeploymentHealth("d", SETTINGS)
    told = recorded(health)
    health.rate_limited(100.0, 5.0)
    health.rate_limited(101.0, 1.0)  # ends before the one set
    assert told == [COOLING] and health.cooldown_until == 105.0
    health.rate_limited(102.0, None)  # cooldown_seconds: 1, still earlier
    health.rate_limited(104.5, 2.0)
    assert told == [COOLING, COOLING] and health.cooldown_until == 106.5


def test_the_board_watches_present_and_future_records() -> None:
    board = HealthBoard(SETTINGS, ["a"])
    told: list[tuple[str, str]] = []
    board.watch(lambda h, what: told.append((h.name, what)))
    board["a"].rate_limited(1.0, 1.0)
    board["late"].rate_limited(1.0, 1.0)  # created by __missing__
    assert told == [("a", COOLING), ("late", COOLING)]
    board.watch(None)
    board["a"].rate_limited(5.0, 1.0)
    assert len(told) == 2


def test_adopted_news_is_never_told_again_and_the_probe_still_works() -> None:
    health = DeploymentHealth("d", SETTINGS)
    told = recorded(health)
    health.adopt_open(100.0, 7)
    health.adopt_cooldown(100.5)
    assert told == []
    assert health.blocked(100.2) == "cooling down after a 429 for 0.3s more"
    assert health.blocked(100.6) == "circuit breaker open after 7 failures"
    assert health.blocked(101.0) is None  # open_seconds over: one probe may go
    health.begin(101.0)
    assert health.blocked(101.0) == "circuit breaker half-open, a probe is in flight"
    health.succeeded(5.0)  # the local probe closes it, and that is news
    assert told == [CLOSED_AGAIN]


def test_adopted_news_does_not_undo_newer_local_news() -> None:
    health = DeploymentHealth("d", SETTINGS)
    health.failed(200.0)
    health.failed(200.0)
    health.adopt_open(150.0, 2)  # older than the local opening
    assert health.opened_at == 200.0
    health.adopt_closed(199.0)  # a close from before it opened here
    assert health.state == OPEN
    health.adopt_closed(200.5)
    assert health.state == CLOSED and health.failures == 0
    health.rate_limited(300.0, 5.0)
    health.adopt_cooldown(302.0)
    assert health.cooldown_until == 305.0


# ------------------------------------------------------------- two replicas, Redis


class Replicas:
    """Shared-health replicas on one prefix; each gets a client and a board of its own."""

    def __init__(self, prefix: str) -> None:
        self.prefix = prefix
        self.started: list[tuple[SharedHealth, Redis]] = []

    async def start(self, url: str = REDIS_URL) -> SharedHealth:
        client = connect_redis(url)
        replica = SharedHealth(client, HealthBoard(SETTINGS, NAMES), prefix=self.prefix)
        await replica.start()
        self.started.append((replica, client))
        return replica

    async def close(self) -> None:
        for replica, client in self.started:
            await replica.close()
            await client.aclose()


@pytest.fixture
async def redis_client() -> AsyncIterator[Redis]:
    client = connect_redis(REDIS_URL)
    await client.ping()  # Redis must answer: no skip
    yield client
    await client.aclose()


@pytest.fixture
async def replicas(redis_client: Redis) -> AsyncIterator[Replicas]:
    made = Replicas(f"test:{uuid.uuid4().hex}:")
    yield made
    await made.close()
    keys = [k async for k in redis_client.scan_iter(match=made.prefix + "*")]
    if keys:
        await redis_client.delete(*keys)


async def test_an_opened_breaker_reaches_the_other_replica_once_and_its_close_too(
    replicas: Replicas, redis_client: Redis
) -> None:
    a, b = await replicas.start(), await replicas.start()
    async with redis_client.pubsub(ignore_subscribe_messages=True) as listener:
        await listener.subscribe(a.channel)
        a.board["dep-a"].failed(time.monotonic())
        a.board["dep-a"].failed(time.monotonic())
        delay = await until(lambda: b.board["dep-a"].state == OPEN)
        print(f"opened: reached the other replica in {delay * 1000:.2f} ms")
        assert b.board["dep-a"].opened_at == pytest.approx(a.board["dep-a"].opened_at, abs=0.005)
        assert b.board["dep-a"].failures == 2
        assert "circuit breaker open" in (b.board["dep-a"].blocked(time.monotonic()) or "")
        assert b.board["dep-b"].state == CLOSED
        await asyncio.sleep(0.2)
        heard = [m async for m in messages(listener)]
        assert [orjson.loads(m)["event"] for m in heard] == [OPENED]  # no echo from b
        ttl = await redis_client.pttl(replicas.prefix + "health:open:dep-a")
        assert 500 < ttl <= 1000  # open_seconds: 1, less the 0.3 s waited

        await asyncio.sleep(1.0)  # open_seconds over: a probes, and it succeeds
        a.board["dep-a"].begin(time.monotonic())
        a.board["dep-a"].succeeded(5.0)
        delay = await until(lambda: b.board["dep-a"].state == CLOSED)
        print(f"closed: reached the other replica in {delay * 1000:.2f} ms")
        assert b.board["dep-a"].failures == 0
        assert await redis_client.exists(replicas.prefix + "health:open:dep-a") == 0


async def messages(listener: PubSub) -> AsyncIterator[bytes]:
    """What was published so far (a None can also be a subscribe confirmation, skipped)."""
    deadline = time.monotonic() + 0.1
    while time.monotonic() < deadline:
        if (m := await listener.get_message(timeout=0.02)) is not None:
            yield m["data"]


async def test_a_cooldown_reaches_the_other_replica_and_only_extends(
    replicas: Replicas, redis_client: Redis
) -> None:
    a, b = await replicas.start(), await replicas.start()
    b.board["dep-b"].rate_limited(time.monotonic(), 3.0)
    await asyncio.sleep(0.05)  # b's key is written first
    a.board["dep-b"].rate_limited(time.monotonic(), 1.5)
    # each keeps the later end: a takes b's 3 s over its own 1.5 s, b keeps its own
    await until(lambda: a.board["dep-b"].cooldown_until - time.monotonic() > 2.5)
    await asyncio.sleep(0.1)  # a's news has reached b too
    ends = b.board["dep-b"].cooldown_until, a.board["dep-b"].cooldown_until
    assert ends[0] == pytest.approx(ends[1], abs=0.005)
    # and the key, written last by a, was not shortened to a's 1.5 s
    assert 2_500 < await redis_client.pttl(replicas.prefix + "health:cooling:dep-b") <= 3_000


async def test_a_replica_that_starts_during_an_outage_knows_of_it(replicas: Replicas) -> None:
    a = await replicas.start()
    a.board["dep-a"].failed(time.monotonic())
    a.board["dep-a"].failed(time.monotonic())
    a.board["dep-b"].rate_limited(time.monotonic(), 5.0)
    await asyncio.sleep(0.1)  # a's writer has sent it
    late = await replicas.start()  # start() returns once the keys are read
    assert late.board["dep-a"].state == OPEN
    assert late.board["dep-a"].opened_at == pytest.approx(a.board["dep-a"].opened_at, abs=0.005)
    assert late.board["dep-b"].cooldown_until == pytest.approx(
        a.board["dep-b"].cooldown_until, abs=0.005
    )


async def test_own_unknown_and_malformed_news_is_ignored(
    replicas: Replicas, redis_client: Redis, caplog: pytest.LogCaptureFixture
) -> None:
    b = await replicas.start()
    future = time.time() + 60
    for news in [
        {"replica": b.replica, "deployment": "dep-a", "event": OPENED, "opened_at": 0},
        {"replica": "x", "deployment": "not-here", "event": COOLING, "until": future},
    ]:
        await redis_client.publish(b.channel, orjson.dumps(news))
    await redis_client.publish(b.channel, b"{not json")
    await redis_client.publish(b.channel, orjson.dumps({"replica": "x", "event": OPENED}))
    news = {"replica": "x", "deployment": "dep-b", "event": COOLING, "until": future}
    await redis_client.publish(b.channel, orjson.dumps(news))
    await until(lambda: b.board["dep-b"].cooldown_until > 0)  # still listening
    assert b.board["dep-a"].state == CLOSED and "not-here" not in b.board
    assert sum("malformed" in r.message for r in caplog.records) == 2
    late = b.board["dep-b"].cooldown_until - time.monotonic()
    assert 59 < late <= 60


# -------------------------------------------------------------- Redis goes away


class Proxy:
    """A TCP proxy in front of Redis: ``stop()`` is an outage, ``start()`` its end."""

    def __init__(self) -> None:
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._pipe, "127.0.0.1", self.port)

    async def stop(self) -> None:
        assert self._server is not None
        self._server.close()
        for writer in self._writers:
            writer.close()
        await self._server.wait_closed()

    async def _pipe(self, client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter) -> None:
        redis_r, redis_w = await asyncio.open_connection("127.0.0.1", 6379)
        self._writers |= {client_w, redis_w}

        async def copy(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
            try:
                while data := await src.read(65536):
                    dst.write(data)
                    await dst.drain()
            except (ConnectionError, OSError):
                pass
            finally:
                dst.close()

        await asyncio.gather(copy(client_r, redis_w), copy(redis_r, client_w))


async def test_redis_down_warns_once_serves_locally_and_catches_up_when_back(
    replicas: Replicas, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(shared_health, "RETRY_SECONDS", 0.05)
    caplog.set_level(logging.INFO, logger=shared_health.__name__)
    proxy = Proxy()
    await proxy.start()
    a, b = await replicas.start(), await replicas.start(proxy.url)
    await proxy.stop()  # b loses Redis
    await until(lambda: any("unreachable" in r.message for r in caplog.records))

    b.board["dep-b"].failed(time.monotonic())  # b serves on, on its own
    b.board["dep-b"].failed(time.monotonic())
    assert b.board["dep-b"].state == OPEN
    a.board["dep-a"].failed(time.monotonic())  # news that b cannot hear now
    a.board["dep-a"].failed(time.monotonic())
    await asyncio.sleep(0.3)  # many tries to reach Redis meanwhile
    assert b.board["dep-a"].state == CLOSED
    assert sum("unreachable" in r.message for r in caplog.records) == 1

    await proxy.start()
    delay = await until(lambda: b.board["dep-a"].state == OPEN)  # read from the key
    print(f"caught up {delay * 1000:.0f} ms after Redis came back")
    assert any("shared again" in r.message for r in caplog.records)
    a.board["dep-b"].rate_limited(time.monotonic(), 5.0)  # and b hears news again
    await until(lambda: b.board["dep-b"].cooldown_until > 0)
    await proxy.stop()


async def test_start_does_not_wait_long_for_a_redis_that_is_not_there(
    replicas: Replicas, caplog: pytest.LogCaptureFixture
) -> None:
    t0 = time.monotonic()
    nowhere = await replicas.start(f"redis://127.0.0.1:{free_port()}/0")
    assert time.monotonic() - t0 < 1.0  # refused at once
    nowhere.board["dep-a"].failed(time.monotonic())
    nowhere.board["dep-a"].failed(time.monotonic())
    assert nowhere.board["dep-a"].state == OPEN
    await asyncio.sleep(0.1)
    assert sum("unreachable" in r.message for r in caplog.records) == 1
