"""Typed keys for what ``create_app`` puts on the aiohttp application."""

from __future__ import annotations

from aiohttp import web

from modelyard.governance.auth import KeyRing
from modelyard.governance.gate import Governance
from modelyard.governance.keys import Principal
from modelyard.governance.store import GovernanceStore
from modelyard.providers.transport import Transport
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
ROUTE_STORE = web.AppKey("route_store", RouteStore)
KEY_RING = web.AppKey("key_ring", KeyRing)
GOVERNANCE = web.AppKey("governance", Governance)
GOVERNANCE_STORE = web.AppKey("governance_store", GovernanceStore)
PRINCIPAL = web.RequestKey("principal", Principal)
