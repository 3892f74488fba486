from __future__ import annotations

import orjson
import pytest

from modelyard.errors import (
    AuthenticationError,
    InvalidRequestError,
    RateLimitedError,
    UpstreamBadResponseError,
    UpstreamError,
    UpstreamTimeoutError,
    UpstreamUnavailableError,
)
from modelyard.providers.classify import from_exception, from_response, retry_after, scrub
from modelyard.providers.http1 import ProtocolError


def _body(**err: object) -> bytes:
    return orjson.dumps({"error": err})


@pytest.mark.parametrize(
    ("status", "body", "cls", "client_status"),
    [
        (400, _body(message="bad", code="context_length_exceeded"), InvalidRequestError, 400),
        (401, _body(message="no"), AuthenticationError, 401),
        (429, _body(message="slow down"), RateLimitedError, 429),
        (500, _body(message="boom"), UpstreamError, 500),
        (502, b"<html>bad gateway</html>", UpstreamBadResponseError, 502),
        (503, _body(message="x"), UpstreamUnavailableError, 503),
        (504, b"", UpstreamTimeoutError, 504),
        (408, _body(message="request timeout"), UpstreamTimeoutError, 408),
        (
            529,
            orjson.dumps(
                {"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}}
            ),
            UpstreamUnavailableError,
            503,
        ),
        (418, b"teapot", InvalidRequestError, 400),
        (599, b"", UpstreamBadResponseError, 502),
    ],
)
def test_status_table(status: int, body: bytes, cls: type, client_status: int) -> None:
    err = from_response(status, body, {}, "dep")
    assert type(err) is cls
    assert err.status == client_status
    assert "dep" in err.message


def test_vendor_code_refines_an_ambiguous_status() -> None:
    google = orjson.dumps(
        {"error": {"code": 500, "message": "quota", "status": "RESOURCE_EXHAUSTED"}}
    )
    assert isinstance(from_response(500, google, {}, "g"), RateLimitedError)


def test_openai_code_and_param_are_passed_on() -> None:
    err = from_response(
        400, _body(message="too long", code="context_length_exceeded", param="messages"), {}, "d"
    )
    assert err.code == "context_length_exceeded" and err.param == "messages"


def test_retry_after_forms() -> None:
    assert retry_after({"retry-after": "3"}) == 3.0
    assert retry_after({"retry-after-ms": "1500", "retry-after": "9"}) == 1.5
    assert retry_after({"retry-after": "Wed, 21 Oct 2015 07:28:00 GMT"}) == 0.0
    assert retry_after({}) is None
    err = from_response(429, b"{}", {"retry-after": "12"}, "d")
    assert err.retry_after == 12.0


def test_scrub_removes_keys() -> None:
    text = scrub("Incorrect API key provided: sk-proj-abcdef123 and AIzaSyA1234567890abc")
    assert "sk-proj" not in text and "AIza" not in text


def test_an_upstream_that_repeats_the_credentials_it_was_sent_is_not_repeated() -> None:
    sent = {
        "Content-Type": "application/json",
        "x-api-key": "plain-key-0123456789",
        "Authorization": "Token tok-0123456789",
        "X-Title": "my app",
    }
    body = _body(message="no access for plain-key-0123456789 / tok-0123456789 (application/json)")
    text = from_response(401, body, {}, "d", sent=sent).message
    assert "0123456789" not in text
    assert text == "deployment 'd': no access for [redacted] / [redacted] (application/json)"


def test_network_exceptions() -> None:
    assert isinstance(from_exception(TimeoutError(), "d"), UpstreamTimeoutError)
    assert isinstance(from_exception(ConnectionRefusedError(), "d"), UpstreamUnavailableError)
    assert isinstance(from_exception(ConnectionResetError(), "d"), UpstreamUnavailableError)
    assert isinstance(from_exception(ProtocolError("bad"), "d"), UpstreamBadResponseError)
