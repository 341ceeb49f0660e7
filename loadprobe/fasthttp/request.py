"""Serialising a RequestSpec into the bytes of one HTTP/1.1 request.

A spec is turned into bytes once and the result is reused for every request
of that spec, so the hot path only writes a prepared buffer. Framing follows
RFC 9112: the body is always sent whole with a Content-Length, never chunked.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from importlib import metadata
from urllib.parse import quote, urljoin, urlsplit

from loadprobe.http_engine import RequestSpec

__all__ = ["PreparedRequest", "prepare_request", "IDEMPOTENT_METHODS"]

# Idempotent methods (RFC 9110): repeating such a request does not change the
# result, so it may be retried on a new connection.
IDEMPOTENT_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "TRACE", "PUT", "DELETE"})

# Methods whose request content has a defined meaning, so an empty body is
# still announced with "Content-Length: 0" (RFC 9110, Content-Length).
_METHODS_WITH_CONTENT = frozenset({"POST", "PUT", "PATCH"})

# A token (RFC 9110, Tokens) is one or more of these characters.
_TOKEN = re.compile(r"^[!#$%&'*+.^_`|~0-9A-Za-z-]+$")
# Control characters other than horizontal tab would let a value end the
# header line early (header injection), so they are rejected.
_FORBIDDEN_VALUE_CHARS = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")
# Characters left as they are in a request target: RFC 3986 reserved and
# unreserved characters, and "%" so that existing escapes stay intact.
_TARGET_SAFE_CHARS = "/?:@!$&'()*+,;=%~-._"

try:
    _USER_AGENT = f"capplan-loadprobe/{metadata.version('capplan')}"
except metadata.PackageNotFoundError:
    _USER_AGENT = "capplan-loadprobe"


@dataclass(frozen=True, slots=True)
class PreparedRequest:
    """The wire form of one RequestSpec and what the engine needs to read its response."""

    scheme: str
    host: str
    port: int
    data: bytes
    is_head: bool
    idempotent: bool
    close_after: bool  # the spec sent "Connection: close", so the connection is not reused
    expected_body: bytes | None


def prepare_request(base_url: str, spec: RequestSpec) -> PreparedRequest:
    """Build the request bytes for ``spec`` sent relative to ``base_url``.

    Raises ValueError for a method, header or URL that cannot be sent as
    HTTP/1.1, naming the bad value.
    """
    url = urljoin(base_url, spec.path) if spec.path else base_url
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme not in ("http", "https"):
        raise ValueError(f"URL {url!r} is not an http or https URL; give one such as http://127.0.0.1:8080/")
    if not parts.hostname:
        raise ValueError(f"URL {url!r} has no host; give one such as http://127.0.0.1:8080/")
    port = parts.port or (443 if scheme == "https" else 80)
    method = spec.method.upper()
    if not _TOKEN.match(method):
        raise ValueError(f"request method {spec.method!r} is not an HTTP token; use a method such as GET or POST")

    target = quote(parts.path or "/", safe=_TARGET_SAFE_CHARS)
    if parts.query:
        target += "?" + quote(parts.query, safe=_TARGET_SAFE_CHARS)

    host_header = f"[{parts.hostname}]" if ":" in parts.hostname else parts.hostname
    if parts.port is not None and parts.port != (443 if scheme == "https" else 80):
        host_header += f":{parts.port}"

    headers = _merge_headers(spec, host_header, method)
    lines = [f"{method} {target} HTTP/1.1"]
    lines.extend(f"{name}: {value}" for name, value in headers.values())
    head = ("\r\n".join(lines) + "\r\n\r\n").encode("utf-8")
    close_after = "close" in _tokens(headers.get("connection", ("", ""))[1])
    return PreparedRequest(
        scheme=scheme,
        host=parts.hostname,
        port=port,
        data=head + (spec.body or b""),
        is_head=method == "HEAD",
        idempotent=method in IDEMPOTENT_METHODS,
        close_after=close_after,
        expected_body=spec.expected_body.encode() if spec.expected_body is not None else None,
    )


def _merge_headers(spec: RequestSpec, host_header: str, method: str) -> dict[str, tuple[str, str]]:
    """Return the request's headers keyed by lower-case name: defaults first, then the spec's."""
    headers: dict[str, tuple[str, str]] = {
        "host": ("Host", host_header),
        "user-agent": ("User-Agent", _USER_AGENT),
        "accept": ("Accept", "*/*"),
    }
    body_length = len(spec.body) if spec.body is not None else None
    for name, value in spec.headers:
        if not _TOKEN.match(name):
            raise ValueError(f"header name {name!r} is not an HTTP token; remove spaces, colons and control characters")
        if _FORBIDDEN_VALUE_CHARS.search(value):
            raise ValueError(f"header {name!r} has a control character in its value {value!r}; remove CR, LF and NUL")
        key = name.lower()
        if key == "transfer-encoding":
            raise ValueError(
                f"header Transfer-Encoding: {value!r} is not supported; the engine sends the body whole with Content-Length"
            )
        if key == "content-length":
            if value.strip() != str(body_length or 0):
                raise ValueError(
                    f"header Content-Length: {value!r} does not match the body of {body_length or 0} bytes; leave it out"
                )
            continue
        headers[key] = (name, value)
    if body_length is not None or method in _METHODS_WITH_CONTENT:
        headers["content-length"] = ("Content-Length", str(body_length or 0))
    return headers


def _tokens(value: str) -> set[str]:
    return {token.strip().lower() for token in value.split(",")}
