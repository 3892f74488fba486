"""Two gateway replicas sharing PostgreSQL and Redis: budgets, rate limits, revocation, ledger.

Both replicas are real processes with their own data directories, the same
secret and admin key, one database and one Redis, as a scaled-out deployment
runs them. Volleys of 50 requests are released together by a barrier and
spread over both replicas, so a replica that checked a limit on its own would
let requests through that the other replica also let through.

The database is a schema of its own in the machine's ``test`` database,
dropped afterwards: a client key left in the shared schema would end the open
embedded mode of every later gateway on it. Redis is shared with other runs,
so team names carry this run's id and the counters made here are deleted.
"""

from __future__ import annotations

import contextlib
import subprocess
import sys
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import pytest
import redis
from sqlalchemy import create_engine, select, text

from modelyard.settings import database_url
from modelyard.storage.schema import keys_table, requests_table
from tests.conftest import Gateway
from tests.e2e.governance.support import (
    CONFIG,
    COST,
    ENV,
    Reply,
    Volley,
    admin,
    chat_body,
    create_key,
    post_chat,
    reservation,
)
from tests.fakes.harness import LoopbackServer, Recorder

POSTGRES = "postgresql://postgres@127.0.0.1:5432/test"
REDIS = "redis://127.0.0.1:6379/0"
SECRET = "replica-secret-" + "s" * 17
RUN = uuid.uuid4().hex[:10]
TRIALS = 100
VOLLEY = 50
MAX_TOKENS = 50
# what a gateway does to its database at start, once the parent says go
MIGRATE_AT_GO = """
import sys
from alembic import command  # imported first, so that the processes migrate in step
from modelyard.settings import database_url
from modelyard.storage.request_log import create_db_engine
print("ready", flush=True)
sys.stdin.readline()
create_db_engine(database_url(sys.argv[1])).dispose()
"""

Upstream = tuple[LoopbackServer, Recorder]


@contextlib.contextmanager
def new_schema(name: str) -> Iterator[str]:
    """The database URL of a new schema ``name`` in the ``test`` database, dropped afterwards
    with this run's Redis counters of the keys and teams made in it."""
    engine = create_engine(database_url(POSTGRES))
    with engine.begin() as conn:
        conn.execute(text(f"CREATE SCHEMA {name}"))
    try:
        yield f"{POSTGRES}?options=-csearch_path%3D{name}"
    finally:
        with engine.begin() as conn:
            conn.execute(text(f"SET search_path TO {name}"))
            ids = set(conn.execute(select(keys_table.c.id)).scalars())
            conn.execute(text(f"DROP SCHEMA {name} CASCADE"))
        engine.dispose()
        with redis.Redis.from_url(REDIS) as client:
            for counter in client.scan_iter(match="modelyard:*", count=1000):
                owner = counter.decode().split(":")[3:4]  # modelyard:budget:team:<name>:...
                if owner and (owner[0].startswith(f"rep-{RUN}-") or owner[0] in ids):
                    client.delete(counter)


def replica_env(database: str) -> dict[str, str]:
    return {
        **ENV,
        "MODELYARD_SECRET_KEY": SECRET,
        "MODELYARD_DATABASE_URL": database,
        "MODELYARD_REDIS_URL": REDIS,
    }


@pytest.fixture(scope="module")
def database() -> Iterator[str]:
    with new_schema(f"replicas_{RUN}") as url:
        yield url


@pytest.fixture(scope="module")
def replicas(
    database: str, start_module_gateway: Callable[..., Gateway], fake_openai: Upstream
) -> list[Gateway]:
    fake_openai[1].script.clear()  # answers an earlier test scripted are not this module's
    config = CONFIG.format(url=fake_openai[0].url)
    return [start_module_gateway(config, replica_env(database)) for _ in range(2)]


@pytest.fixture(scope="module")
def volley(replicas: list[Gateway]) -> Iterator[Volley]:
    with Volley(replicas, VOLLEY) as v:
        yield v


def _marked(marker: str) -> bytes:
    """A request whose prompt names its trial: upstream calls are told apart by it."""
    return chat_body(messages=[{"role": "user", "content": marker}], max_tokens=MAX_TOKENS)


def _upstream_calls(recorder: Recorder, seen: int, marker: str) -> int:
    return sum(marker.encode() in r.body for r in recorder.requests[seen:])


@dataclass
class Trial:
    team: str
    budget: tuple[str, str]  # whose budget: ("key", id) or ("team", name)
    replies: list[Reply]
    upstream: int  # calls that reached the upstream


@pytest.fixture(scope="module")
def budget_trials(replicas: list[Gateway], volley: Volley, fake_openai: Upstream) -> list[Trial]:
    """100 volleys, each on a fresh key whose hard budget is exactly one reservation: the
    one request that runs costs less than it reserved, and the rest can never cover another."""
    recorder = fake_openai[1]
    trials = []
    for n in range(TRIALS):
        marker = f"budget {RUN} {n:03d}"
        body = _marked(marker)
        limits = {"budget_usd": reservation(body, 1, MAX_TOKENS) / 1e6}
        team = f"rep-{RUN}-b{n:03d}"
        on_team = n // 2 % 2 == 1  # the key's budget or its team's, made through either replica
        holder = "team_limits" if on_team else "limits"
        key, key_id = create_key(replicas[n % 2], team, **{holder: limits})
        seen = len(recorder.requests)
        replies = volley.fire(key, body)
        budget = ("team", team) if on_team else ("key", key_id)
        trials.append(Trial(team, budget, replies, _upstream_calls(recorder, seen, marker)))
    return trials


def test_fifty_requests_at_once_on_two_replicas_pass_a_budget_for_one_exactly_once(
    budget_trials: list[Trial],
) -> None:
    wrong = [
        (n, t.upstream, Counter((r.status, r.code) for r in t.replies))
        for n, t in enumerate(budget_trials)
        if t.upstream != 1
        or Counter((r.status, r.code) for r in t.replies)
        != {(200, None): 1, (402, "budget_exceeded"): VOLLEY - 1}
    ]
    assert wrong == []


def test_the_ledger_has_one_row_per_request_and_agrees_with_the_shared_counters(
    budget_trials: list[Trial], replicas: list[Gateway], database: str
) -> None:
    answered = [r.request_id for t in budget_trials for r in t.replies]
    assert len(set(answered)) == TRIALS * VOLLEY  # request ids are unique across replicas
    engine = create_engine(database_url(database))
    ledger_rows = requests_table.c
    query = select(ledger_rows.id, ledger_rows.team, ledger_rows.cost_micros).where(
        ledger_rows.team.like(f"rep-{RUN}-b%")
    )
    deadline = time.monotonic() + 20
    while True:  # the ledger is written in batches, the counters settled after the answer
        with engine.connect() as conn:
            rows = conn.execute(query).all()
        budgets = [_budgets(gw) for gw in replicas]
        settled = all(b[trial.budget][1] == 0 for b in budgets for trial in budget_trials)
        if (len(rows) >= len(answered) and settled) or time.monotonic() > deadline:
            break
        time.sleep(0.25)
    engine.dispose()
    per_id = Counter(row.id for row in rows)
    assert sorted(per_id) == sorted(answered) and set(per_id.values()) == {1}
    ledger = Counter[str]()
    for row in rows:
        ledger[row.team] += row.cost_micros
    for counters in budgets:  # each replica reports the shared counters
        assert {t.budget: counters[t.budget] for t in budget_trials} == {
            t.budget: (ledger[t.team], 0) for t in budget_trials
        }
    assert set(ledger.values()) == {COST}


def _budgets(gw: Gateway) -> dict[tuple[str, str], tuple[int | None, int | None]]:
    """(spent, reserved) of each budget, by ("key", id) or ("team", name)."""
    status, body = admin(gw, "GET", "/admin/budgets")
    assert status == 200, body
    out = {}
    for b in body["budgets"]:
        owner = ("key", b["key"]) if "key" in b else ("team", b["team"])
        out[owner] = (b["spent_micros"], b["reserved_micros"])
    return out


def test_a_rate_limit_of_ten_a_minute_over_two_replicas_admits_exactly_ten_of_fifty(
    replicas: list[Gateway], volley: Volley, fake_openai: Upstream
) -> None:
    recorder = fake_openai[1]
    wrong = []
    for n in range(TRIALS):
        marker = f"rate {RUN} {n:03d}"
        key, _ = create_key(replicas[n % 2], f"rep-{RUN}-r{n:03d}", limits={"rpm": 10})
        seen = len(recorder.requests)
        replies = volley.fire(key, _marked(marker))
        outcomes = Counter((r.status, r.code) for r in replies)
        # refused requests take nothing: each waits for the one slot that frees in 6 s
        waits = {r.headers.get("Retry-After") for r in replies if r.status != 200}
        calls = _upstream_calls(recorder, seen, marker)
        if outcomes != {(200, None): 10, (429, "rate_limit_exceeded"): 40} or calls != 10:
            wrong.append((n, calls, outcomes))
        elif not waits <= {"1", "2", "3", "4", "5", "6"}:
            wrong.append((n, calls, waits))
    assert wrong == []


def test_a_key_revoked_through_one_replica_is_refused_by_the_other_at_its_next_request(
    replicas: list[Gateway],
) -> None:
    for n in range(10):
        one, other = replicas[n % 2], replicas[1 - n % 2]
        key, key_id = create_key(one, f"rep-{RUN}-k{n}")
        assert post_chat(other, key, chat_body())[0] == 200  # the other replica holds the key
        assert admin(one, "DELETE", f"/admin/keys/{key_id}")[0] == 204
        status, _, body = post_chat(other, key, chat_body())
        assert (status, body["error"]["code"]) == (401, "revoked_api_key")
        assert post_chat(one, key, chat_body())[0] == 401


@pytest.fixture
def empty_database() -> Iterator[str]:
    with new_schema(f"replicas_{RUN}_new") as url:
        yield url


def test_replicas_starting_together_on_a_new_database_all_migrate_it(empty_database: str) -> None:
    """Each replica starting on a new database ran the migrations at the same time, and all
    but one failed on the tables another had just made."""
    replicas = [
        subprocess.Popen(
            [sys.executable, "-c", MIGRATE_AT_GO, empty_database],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(3)
    ]
    for replica in replicas:
        assert replica.stdout is not None and replica.stdout.readline() == "ready\n"
    for replica in replicas:
        assert replica.stdin is not None
        replica.stdin.write("go\n")
        replica.stdin.flush()
    errors = [replica.communicate(timeout=60)[1] for replica in replicas]
    assert [r.returncode for r in replicas] == [0, 0, 0], errors
