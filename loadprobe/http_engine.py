"""The request engine: one HTTP request and the classification of its outcome.

The probe talks to the network only through :class:`RequestSender`, so a test
can inject a fault (a reset, a stall) that a real server cannot give on demand,
and a faster engine can replace this one. The default sender uses aiohttp:
measured on 2 cores against nginx on 127.0.0.1 with 64 requests in flight,
aiohttp reached 12,230 requests/s where httpx's AsyncClient reached 431 (see
docs/benchmarks.md), so httpx is kept for the few one-off requests
(reachability checks) and aiohttp carries the load.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from typing import Protocol
from urllib.parse import urljoin

import aiohttp

__all__ = ["Outcome", "RequestSpec", "RequestSender", "AiohttpSender", "ERROR_KINDS", "classify_status", "DEFAULT_REQUEST"]

# Error kinds stored per step; a success has no kind.
ERROR_KINDS = ("http_4xx", "http_5xx", "unexpected_status", "unexpected_body", "timeout", "refused", "reset", "other")


@dataclass(frozen=True)
class RequestSpec:
    """One kind of request a scenario sends.

    ``path`` is joined to the sender's base URL unless it is absolute.
    ``expected_status`` of None accepts any status below 400;
    ``expected_body`` is a substring the response body must contain.
    """

    name: str = "default"
    method: str = "GET"
    path: str = ""
    headers: tuple[tuple[str, str], ...] = ()
    body: bytes | None = None
    expected_status: int | None = None
    expected_body: str | None = None
    weight: float = 1.0


DEFAULT_REQUEST = RequestSpec()


@dataclass(slots=True)
class Outcome:
    """The result of one request. Times are ``time.perf_counter()`` seconds."""

    sent_at: float
    done_at: float
    status: int | None
    error_kind: str | None  # None for a success, else one of ERROR_KINDS


class RequestSender(Protocol):
    async def send(self, spec: RequestSpec) -> Outcome: ...

    async def close(self) -> None: ...


def classify_status(status: int, expected_status: int | None) -> str | None:
    """Return the error kind of an HTTP status, or None when it counts as success."""
    if expected_status is not None:
        if status == expected_status:
            return None
        if 400 <= status < 500:
            return "http_4xx"
        if status >= 500:
            return "http_5xx"
        return "unexpected_status"
    if status < 400:
        return None
    return "http_4xx" if status < 500 else "http_5xx"


@dataclass
class AiohttpSender:
    """Send requests relative to one base URL over a pooled aiohttp session."""

    base_url: str
    timeout_s: float = 5.0
    max_connections: int = 512
    _session: aiohttp.ClientSession | None = field(default=None, init=False, repr=False)
    _urls: dict[str, str] = field(default_factory=dict, init=False, repr=False)

    def _ensure_session(self) -> aiohttp.ClientSession:
        # Created lazily so the session binds to the running event loop.
        if self._session is None:
            connector = aiohttp.TCPConnector(
                limit=self.max_connections, limit_per_host=self.max_connections, ttl_dns_cache=300
            )
            self._session = aiohttp.ClientSession(
                connector=connector, timeout=aiohttp.ClientTimeout(total=self.timeout_s), auto_decompress=False
            )
        return self._session

    def _url(self, path: str) -> str:
        url = self._urls.get(path)
        if url is None:
            url = urljoin(self.base_url, path) if path else self.base_url
            self._urls[path] = url
        return url

    async def send(self, spec: RequestSpec) -> Outcome:
        session = self._ensure_session()
        sent_at = time.perf_counter()
        status: int | None = None
        error_kind: str | None
        try:
            async with session.request(
                spec.method, self._url(spec.path), headers=dict(spec.headers) or None, data=spec.body
            ) as response:
                body = await response.read()
                status = response.status
            error_kind = classify_status(status, spec.expected_status)
            if error_kind is None and spec.expected_body is not None and spec.expected_body.encode() not in body:
                error_kind = "unexpected_body"
        except asyncio.TimeoutError:
            error_kind = "timeout"
        except aiohttp.ClientConnectorError:
            error_kind = "refused"
        except (aiohttp.ServerDisconnectedError, aiohttp.ClientOSError, aiohttp.ClientPayloadError):
            error_kind = "reset"
        except aiohttp.ClientError:
            error_kind = "other"
        return Outcome(sent_at=sent_at, done_at=time.perf_counter(), status=status, error_kind=error_kind)

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None


__all__ += ["ENGINE_NAMES", "make_sender"]

ENGINE_NAMES = ("auto", "fast", "aiohttp")


def make_sender(engine_name: str, base_url: str, timeout_s: float, max_connections: int) -> RequestSender:
    """Create the request engine named ``engine_name`` for ``base_url``.

    "auto" and "fast" choose FastHttpSender for an http URL; an https URL
    always gets AiohttpSender, because the fast engine speaks plain http only.
    "aiohttp" always chooses AiohttpSender. Raises ValueError for any other name.
    """
    if engine_name not in ENGINE_NAMES:
        raise ValueError(f"engine {engine_name!r} is not one of {', '.join(ENGINE_NAMES)}")
    if engine_name == "aiohttp" or base_url.lower().startswith("https:"):
        return AiohttpSender(base_url, timeout_s=timeout_s, max_connections=max_connections)
    # Imported here because loadprobe.fasthttp builds on this module's types.
    from loadprobe.fasthttp import FastHttpSender

    return FastHttpSender(base_url, timeout_s=timeout_s, max_connections=max_connections)
