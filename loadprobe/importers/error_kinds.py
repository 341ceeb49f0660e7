"""Classifying a failed request from another tool into capplan's error kinds.

The kinds are the probe's own (``loadprobe.http_engine.ERROR_KINDS``) plus
``assertion``: a response that arrived but failed a check or assertion in the
test script. Each tool reports failures differently, as an HTTP status, a k6
error code or a free-text message, so each has its own entry point here.
"""

from __future__ import annotations

import re

__all__ = ["IMPORT_ERROR_KINDS", "kind_from_status", "kind_from_k6", "kind_from_text", "kind_from_jmeter"]

IMPORT_ERROR_KINDS = (
    "http_4xx",
    "http_5xx",
    "unexpected_status",
    "timeout",
    "refused",
    "reset",
    "assertion",
    "other",
)

# Status codes inside messages such as Locust's "HTTPError('503 Server Error: ...')"
# or Gatling's "status.find.in(200,...), but actually found 500".
_STATUS_IN_TEXT = re.compile(
    r"(?:found|HTTPError\(['\"]|status(?: code)?[ :=]+|response code[ :=]+)\s*([1-5]\d\d)\b|\b([1-5]\d\d) (?:Server|Client) Error",
    re.IGNORECASE,
)
_TIMEOUT_WORDS = ("timeout", "timed out", "time out", "timedout")
_REFUSED_WORDS = ("refused", "connectexception", "hostconnectexception", "no route to host")
_RESET_WORDS = (
    "reset",
    "broken pipe",
    "remotedisconnected",
    "remote end closed",
    "nohttpresponseexception",
    "connection closed",
    "connection aborted",
    "unexpected eof",
    "premature",
    "socketexception",
)
_ASSERTION_WORDS = ("assert", "check", "expected", "find", "catchresponseerror", "validation")


def kind_from_status(status: int) -> str:
    """Return the error kind of a failed request that got an HTTP status."""
    if 400 <= status < 500:
        return "http_4xx"
    if 500 <= status < 600:
        return "http_5xx"
    return "unexpected_status"


def kind_from_text(text: str) -> str:
    """Return the error kind named by a tool's error message.

    Network words win over a status number because a message such as
    "Read timed out (read timeout=5)" names no status at all, while a status
    inside a message is the server's response.
    """
    lowered = text.lower()
    if any(word in lowered for word in _TIMEOUT_WORDS):
        return "timeout"
    if any(word in lowered for word in _REFUSED_WORDS):
        return "refused"
    match = _STATUS_IN_TEXT.search(text)
    if match:
        return kind_from_status(int(match.group(1) or match.group(2)))
    if any(word in lowered for word in _RESET_WORDS):
        return "reset"
    if any(word in lowered for word in _ASSERTION_WORDS):
        return "assertion"
    return "other"


def kind_from_k6(status: str, error_code: str | None, error: str | None) -> str:
    """Return the error kind of a failed k6 request from its ``status``, ``error_code`` and ``error`` tags.

    k6 error codes (k6 0.24 and later): 1050 request timeout, 1211 dial
    timeout, 1212 connection refused, 1201 broken pipe and 1220 reset by
    peer; 1400-1599 mirror HTTP statuses. Status 0 means no response.
    """
    code = int(error_code) if error_code and error_code.isdigit() else None
    if code is not None:
        if code in (1050, 1211):
            return "timeout"
        if code == 1212:
            return "refused"
        if code in (1201, 1220):
            return "reset"
        if 1400 <= code < 1500:
            return "http_4xx"
        if 1500 <= code < 1600:
            return "http_5xx"
    if status.isdigit() and int(status) > 0:
        return kind_from_status(int(status))
    if error:
        return kind_from_text(error)
    return "other"


def kind_from_jmeter(response_code: str, message: str) -> str:
    """Return the error kind of a failed JMeter sample.

    A numeric code below 400 on a failed sample means an assertion failed.
    JMeter writes network failures into the code column as
    ``Non HTTP response code: java.net.SocketTimeoutException``.
    """
    code = response_code.strip()
    if code.isdigit():
        status = int(code)
        if status >= 400:
            return kind_from_status(status)
        return "assertion"
    kind = kind_from_text(code) if code else "other"
    if kind == "other" and message:
        kind = kind_from_text(message)
    return kind
