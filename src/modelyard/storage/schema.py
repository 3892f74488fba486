"""The database schema, in one place: what the migrations create and the code reads.

A change here needs a migration in ``storage/migrations/versions`` too; a test
compares the two.
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    Float,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
)

metadata = MetaData()

requests_table = Table(
    "requests",
    metadata,
    Column("seq", Integer, primary_key=True, autoincrement=True),
    Column("id", String(128), nullable=False),  # the request id clients see
    Column("ts", Float, nullable=False),
    Column("endpoint", String(32), nullable=False),
    Column("model", String(200), nullable=False),
    Column("deployment", String(200)),
    Column("provider", String(40)),
    Column("status", Integer, nullable=False),
    Column("stream", Boolean, nullable=False),
    Column("latency_ms", Float, nullable=False),
    Column("input_tokens", Integer, nullable=False, default=0),
    Column("output_tokens", Integer, nullable=False, default=0),
    Column("cached_input_tokens", Integer, nullable=False, default=0),
    Column("reasoning_tokens", Integer, nullable=False, default=0),
    Column("ttft_ms", Float),
    Column("error_type", String(64)),
    # the ledger (revision 0002): who, what it cost, the client's own tags
    Column("key_id", String(40)),
    Column("team", String(100)),
    Column("route", String(200)),
    Column("tags", Text),  # JSON object of the request's X-Modelyard-Tags
    Column("cache_write_tokens", Integer, nullable=False, default=0),
    Column("audio_input_tokens", Integer, nullable=False, default=0),
    Column("audio_output_tokens", Integer, nullable=False, default=0),
    Column("cost_micros", BigInteger, nullable=False, default=0),  # integer micro-dollars
    Column("client_request_id", String(128)),
    # response caching (revision 0006): a hit costs nothing and books what it saved
    Column("cache", String(16)),
    Column("saved_micros", BigInteger, nullable=False, default=0),
    Index("ux_requests_id", "id", unique=True),  # exactly one ledger row per request
    Index("ix_requests_ts", "ts"),
    Index("ix_requests_key_ts", "key_id", "ts"),  # a budget's spend, read at period start
    Index("ix_requests_team_ts", "team", "ts"),
)


decisions_table = Table(
    "routing_decisions",
    metadata,
    Column("seq", Integer, primary_key=True, autoincrement=True),
    Column("request_id", String(128), nullable=False, index=True),
    Column("ts", Float, nullable=False),
    Column("route", String(200), nullable=False),
    Column("chosen", String(200)),
    Column("body", Text, nullable=False),  # the decision as JSON
    Column("team", String(100)),  # whose request: only that team (or an admin) may read it
)

route_overrides = Table(
    "route_overrides",
    metadata,
    Column("name", String(200), primary_key=True),
    Column("body", Text),  # NULL: deleted
    Column("ts", Float, nullable=False),
)

teams_table = Table(
    "teams",
    metadata,
    Column("name", String(100), primary_key=True),
    Column("created", Float, nullable=False),
    Column("limits", Text, nullable=False),  # JSON: governance.keys.Limits
)

keys_table = Table(
    "api_keys",
    metadata,
    Column("id", String(40), primary_key=True),  # key_<hex>: how the ledger and the API name it
    Column("digest", String(64), nullable=False, unique=True),  # HMAC-SHA256 of the key, hex
    Column("prefix", String(16), nullable=False),  # the key's first characters, for people
    Column("name", String(200), nullable=False),
    Column("team", String(100)),  # NULL for admin keys
    Column("role", String(16), nullable=False),  # user | admin
    Column("models", Text),  # JSON list of routes/models it may call; NULL: any
    Column("limits", Text, nullable=False),  # JSON: governance.keys.Limits
    Column("created", Float, nullable=False),
    Column("expires", Float),
    Column("revoked", Float),
)

#: one row, bumped by every change to keys or teams, so that replicas notice at once
governance_epoch = Table(
    "governance_epoch",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("epoch", BigInteger, nullable=False),
)

#: the Responses API's stored turns (revision 0004): each row holds its whole context, so a
#: conversation continues from one row whichever vendor served the turns before it
responses_table = Table(
    "responses",
    metadata,
    Column("id", String(64), primary_key=True),  # resp_<hex>
    Column("team", String(100)),  # whose response: any other team is answered 404
    Column("created", Float, nullable=False),
    Column("model", String(200), nullable=False),
    Column("previous_response_id", String(64)),
    Column("input_items", Text, nullable=False),  # JSON list: earlier turns' items, then this input
    Column("output_items", Text, nullable=False),  # JSON list
    Column("body", Text, nullable=False),  # the response object as JSON
)

#: what live traffic taught a learned route (revision 0005): one sampled prompt a row, with
#: every router model's answer scored against the reference (``routing.learned.live``)
outcomes_table = Table(
    "outcomes",
    metadata,
    Column("id", String(128), primary_key=True),  # the sampled request's id
    Column("route", String(200), nullable=False),
    Column("created", Float, nullable=False),
    Column("prompt", Text, nullable=False),
    Column("reference", Text),  # the reference deployment's extracted answer
    Column("outcomes", Text, nullable=False),  # JSON: {model: {score, answer, tokens}}
    Index("ix_outcomes_route_created", "route", "created"),
)
