"""The request engine: one HTTP request and the classification of its outcome.

The probe talks to the network only through :class:`RequestSender`, so a test
can inject a fault (a reset, a stall) that a real server cannot give on demand.
The real sender uses aiohttp: measured on 2 cores against nginx on 127.0.0.1
with 64 requests in flight, aiohttp reached 16,700 requests/s where httpx's
AsyncClient reached 446 (see docs/benchmarks.md), so httpx is kept for the
few one-off requests (reachability checks) and aiohttp carries the load.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from typing import Protocol

import aiohttp

__all__ = ["Outcome", "RequestSender", "AiohttpSender", "ERROR_KINDS"]

# Error kinds stored per step; "ok" is not an error.
ERROR_KINDS = ("http_4xx", "http_5xx", "unexpected_status", "timeout", "refused", "reset", "other")


@dataclass(slots=True)
class Outcome:
    """The result of one request. Times are ``time.perf_counter()`` seconds."""

    sent_at: float
    done_at: float
    status: int | None
    error_kind: str | None  # None for a success, else one of ERROR_KINDS


class RequestSender(Protocol):
    async def send(self) -> Outcome: ...

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


class AiohttpSender:
    """Send GET (or another method) requests to one URL over a pooled aiohttp session."""

    def __init__(
        self,
        url: str,
        *,
        method: str = "GET",
        timeout_s: float = 5.0,
        max_connections: int = 512,
        expected_status: int | None = None,
    ) -> None:
        self.url = url
        self.method = method
        self.expected_status = expected_status
        self._timeout = aiohttp.ClientTimeout(total=timeout_s)
        connector = aiohttp.TCPConnector(limit=max_connections, limit_per_host=max_connections, ttl_dns_cache=300)
        self._session = aiohttp.ClientSession(connector=connector, timeout=self._timeout)

    async def send(self) -> Outcome:
        sent_at = time.perf_counter()
        status: int | None = None
        error_kind: str | None
        try:
            async with self._session.request(self.method, self.url) as response:
                await response.read()
                status = response.status
            error_kind = classify_status(status, self.expected_status)
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
        await self._session.close()
