"""Typed keys for what ``create_app`` puts on the aiohttp application."""

from __future__ import annotations

from aiohttp import web

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
