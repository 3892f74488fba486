"""Typed keys for what ``create_app`` puts on the aiohttp application."""

from __future__ import annotations

from aiohttp import web

from modelyard.governance.auth import KeyRing
from modelyard.governance.gate import Governance
from modelyard.governance.keys import Principal
from modelyard.governance.store import GovernanceStore
from modelyard.observability.hub import Observability
from modelyard.providers.transport import Transport
from modelyard.routing.learned.live import LiveLearner
from modelyard.routing.router import Router
from modelyard.settings import Settings
from modelyard.storage.request_log import RequestLog
from modelyard.storage.route_store import RouteStore

SETTINGS = web.AppKey("settings", Settings)
ROUTER = web.AppKey("router", Router)
REQUEST_LOG = web.AppKey("request_log", RequestLog)
TRANSPORT = web.AppKey("transport", Transport)
MAX_BODY_BYTES = web.AppKey("max_body_bytes", int)
REQUEST_ID = web.RequestKey("request_id", str)
# the status the ledger gave a generation: a stream that broke after its first byte
# went out as a 200 but is not one here
ANSWER_STATUS = web.RequestKey("answer_status", int)
ROUTE_STORE = web.AppKey("route_store", RouteStore)
LEARNER = web.AppKey("learner", LiveLearner)  # learned routes' traffic sampling
KEY_RING = web.AppKey("key_ring", KeyRing)
GOVERNANCE = web.AppKey("governance", Governance)
GOVERNANCE_STORE = web.AppKey("governance_store", GovernanceStore)
OBSERVABILITY = web.AppKey("observability", Observability)  # metrics, traces, logs
PRINCIPAL = web.RequestKey("principal", Principal)
# prompt bytes a request carries outside its body: the stored conversation it continues
STORED_PROMPT_BYTES = web.RequestKey("stored_prompt_bytes", int)

SSE_HEADERS = {
    "Content-Type": "text/event-stream; charset=utf-8",
    "Cache-Control": "no-cache",
    "X-Accel-Buffering": "no",
}
DEPLOYMENT_HEADER = "X-Modelyard-Deployment"
