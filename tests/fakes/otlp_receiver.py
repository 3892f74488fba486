"""A loopback OTLP/HTTP trace receiver: ``POST /v1/traces`` in protobuf, the spans kept.

It decodes each export with opentelemetry-proto's own message classes (the
collector's wire format), answers an empty ``ExportTraceServiceResponse``,
and keeps every span as a ``ReceivedSpan`` for the tests to check the tree.
"""

from __future__ import annotations

import gzip
import threading
import zlib
from dataclasses import dataclass
from typing import Any

from aiohttp import web
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.proto.common.v1.common_pb2 import AnyValue
from opentelemetry.proto.trace.v1.trace_pb2 import Span, Status


@dataclass(frozen=True)
class ReceivedSpan:
    name: str
    trace_id: str
    span_id: str
    parent_id: str  # "" for a root span
    kind: str  # SERVER, CLIENT, INTERNAL...
    start_ns: int
    end_ns: int
    attributes: dict[str, Any]
    error: bool
    service: str


def _value(v: AnyValue) -> Any:
    which = v.WhichOneof("value")
    if which == "array_value":
        return [_value(x) for x in v.array_value.values]
    if which == "kvlist_value":
        return {kv.key: _value(kv.value) for kv in v.kvlist_value.values}
    return getattr(v, which) if which else None


class OtlpReceiver:
    def __init__(self) -> None:
        self.spans: list[ReceivedSpan] = []
        self.content_types: set[str] = set()
        self._lock = threading.Lock()

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_post("/v1/traces", self._traces)
        return app

    async def _traces(self, request: web.Request) -> web.Response:
        body = await request.read()
        encoding = request.headers.get("Content-Encoding", "")
        if encoding == "gzip":
            body = gzip.decompress(body)
        elif encoding == "deflate":
            body = zlib.decompress(body)
        export = ExportTraceServiceRequest()
        export.ParseFromString(body)
        received = []
        for resource_spans in export.resource_spans:
            resource = {a.key: _value(a.value) for a in resource_spans.resource.attributes}
            for scope_spans in resource_spans.scope_spans:
                for span in scope_spans.spans:
                    received.append(
                        ReceivedSpan(
                            name=span.name,
                            trace_id=span.trace_id.hex(),
                            span_id=span.span_id.hex(),
                            parent_id=span.parent_span_id.hex(),
                            kind=Span.SpanKind.Name(span.kind).removeprefix("SPAN_KIND_"),
                            start_ns=span.start_time_unix_nano,
                            end_ns=span.end_time_unix_nano,
                            attributes={a.key: _value(a.value) for a in span.attributes},
                            error=span.status.code == Status.STATUS_CODE_ERROR,
                            service=str(resource.get("service.name", "")),
                        )
                    )
        with self._lock:
            self.content_types.add(request.headers.get("Content-Type", ""))
            self.spans.extend(received)
        return web.Response(
            body=ExportTraceServiceResponse().SerializeToString(),
            content_type="application/x-protobuf",
        )

    def snapshot(self) -> list[ReceivedSpan]:
        with self._lock:
            return list(self.spans)
