"""Queries against a Prometheus HTTP API, with retries and readable errors.

:class:`PrometheusClient` is the one place capplan sends PromQL. It sends
each request through a :class:`QueryTransport`. The default transport is
prometheus-api-client's ``PrometheusConnect``, and a test or a benchmark can
pass another one, for example one that returns a prepared response.

Timeouts, connection errors, 408, 429 and 5xx answers are retried with
exponential backoff. Other errors (a PromQL syntax error, a 401) fail at
once, because repeating the request cannot fix them. Every error names the
query, the time window and the fix, and never contains a credential.
"""

from __future__ import annotations

import json
import logging
import re
import time
from collections.abc import Callable
from datetime import datetime, timezone
from typing import Any, Protocol

import requests
from prometheus_api_client import PrometheusApiClientException
from urllib3.util.retry import Retry

from capplan.errors import CapplanError
from loadprobe.prometheus.auth import TOKEN_ENV, USER_ENV, PASSWORD_ENV, PrometheusAuth, normalise_prometheus_url

__all__ = [
    "DEFAULT_TIMEOUT_S",
    "DEFAULT_RETRIES",
    "PrometheusQueryError",
    "QueryTransport",
    "ApiClientTransport",
    "PrometheusClient",
]

logger = logging.getLogger(__name__)

DEFAULT_TIMEOUT_S = 30.0
DEFAULT_RETRIES = 3
DEFAULT_BACKOFF_S = 1.0
MAX_BACKOFF_S = 30.0
RETRYABLE_STATUS = frozenset({408, 429, 500, 502, 503, 504})

# prometheus-api-client (0.5 to 0.7) reports a non-200 response only as this text.
_STATUS_PATTERN = re.compile(r"HTTP Status Code (\d{3})")
_ERRNO_PATTERN = re.compile(r"\[Errno -?\d+\][^'\")]*")
_ERROR_BODY_PATTERN = re.compile(r'"error"\s*:\s*"((?:[^"\\]|\\.)*)"')

Result = list[dict[str, Any]]


class PrometheusQueryError(CapplanError):
    """A query to the Prometheus API failed or was rejected.

    ``query`` and ``window`` identify the request that failed. ``status`` is
    the HTTP status (None when no response arrived), and ``retryable`` tells
    whether the failure was of a kind that retries could have outlasted.
    """

    def __init__(
        self,
        message: str,
        *,
        query: str = "",
        window: str = "",
        status: int | None = None,
        retryable: bool = False,
    ) -> None:
        super().__init__(message)
        self.query = query
        self.window = window
        self.status = status
        self.retryable = retryable


class QueryTransport(Protocol):
    """Sends one request to a Prometheus API and returns ``data.result``."""

    def query_range(self, query: str, start: datetime, end: datetime, step_s: int) -> Result: ...

    def query(self, query: str, at: datetime) -> Result: ...

    def close(self) -> None: ...


class ApiClientTransport:
    """The transport over prometheus-api-client's ``PrometheusConnect``.

    Retries are switched off in its urllib3 adapter so that
    :class:`PrometheusClient` alone decides when to retry and can report
    each attempt.
    """

    def __init__(self, url: str, auth: PrometheusAuth, timeout_s: float) -> None:
        from prometheus_api_client import PrometheusConnect

        # The same policy as requests' default adapter: no retries, and a read
        # timeout surfaces as requests.ReadTimeout rather than a ConnectionError.
        no_retry = Retry(0, read=False)
        self._connect = PrometheusConnect(
            url=url,
            headers=auth.headers() or None,
            auth=auth.basic,
            retry=no_retry,
            timeout=timeout_s,
        )

    def query_range(self, query: str, start: datetime, end: datetime, step_s: int) -> Result:
        return list(self._connect.custom_query_range(query, start_time=start, end_time=end, step=str(step_s)))

    def query(self, query: str, at: datetime) -> Result:
        return list(self._connect.custom_query(query, params={"time": f"{at.timestamp():.3f}"}))

    def close(self) -> None:
        self._connect.close()


def _aware_utc(moment: datetime) -> datetime:
    """Attach UTC to a naive UTC datetime; ``datetime.timestamp`` would take it as local time."""
    if moment.tzinfo is None:
        return moment.replace(tzinfo=timezone.utc)
    return moment.astimezone(timezone.utc)


def _format_window(start: datetime, end: datetime | None = None) -> str:
    """Return ``for START..END`` for a range query or ``at TIME`` for an instant query, in UTC."""
    first = _aware_utc(start).strftime("%Y-%m-%dT%H:%M:%SZ")
    if end is None:
        return f"at {first}"
    return f"for {first}..{_aware_utc(end).strftime('%Y-%m-%dT%H:%M:%SZ')}"


class PrometheusClient:
    """Sends instant and range queries to one Prometheus-compatible server.

    ``retries`` is the number of extra attempts after the first for a
    retryable failure, and the wait before retry ``n`` (from 1) is
    ``backoff_s * 2**(n-1)`` seconds, capped at 30 s.
    """

    def __init__(
        self,
        url: str,
        *,
        auth: PrometheusAuth | None = None,
        timeout_s: float = DEFAULT_TIMEOUT_S,
        retries: int = DEFAULT_RETRIES,
        backoff_s: float = DEFAULT_BACKOFF_S,
        transport: QueryTransport | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        from capplan.errors import ConfigError

        self.url = normalise_prometheus_url(url)
        if not timeout_s > 0:
            raise ConfigError(f"--timeout {timeout_s:g} s must be positive; give for example 30s")
        if not 0 <= retries <= 20:
            raise ConfigError(f"--retries {retries} is outside 0..20; give for example 3")
        self.auth = auth or PrometheusAuth()
        self.timeout_s = timeout_s
        self.retries = retries
        self.backoff_s = max(0.0, backoff_s)
        self._transport = transport or ApiClientTransport(self.url, self.auth, timeout_s)
        self._sleep = sleep

    def __repr__(self) -> str:
        return f"PrometheusClient({self.url!r}, auth={self.auth.kind})"

    def __enter__(self) -> PrometheusClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._transport.close()

    def query_range(self, query: str, start: datetime, end: datetime, step_s: int) -> Result:
        """Run a range query and return its ``data.result`` (a matrix).

        ``start`` and ``end`` are naive UTC or aware datetimes; Prometheus
        evaluates the query at ``start``, ``start + step_s`` and so on up to
        ``end``. The caller keeps ``(end - start) / step_s`` within 11,000.
        """
        window = _format_window(start, end)
        return self._with_retries(
            lambda: self._transport.query_range(query, _aware_utc(start), _aware_utc(end), step_s), query, window
        )

    def query(self, query: str, at: datetime) -> Result:
        """Run an instant query evaluated at ``at`` and return its ``data.result``."""
        window = _format_window(at)
        return self._with_retries(lambda: self._transport.query(query, _aware_utc(at)), query, window)

    def _with_retries(self, send: Callable[[], Result], query: str, window: str) -> Result:
        attempts = self.retries + 1
        for attempt in range(1, attempts + 1):
            try:
                return send()
            except Exception as exc:  # classified below; unknown kinds are re-raised
                error = self._classify(exc, query, window)
                if error is None:
                    raise
                if not error.retryable or attempt == attempts:
                    if error.retryable and attempts > 1:
                        error = PrometheusQueryError(
                            f"{error} (gave up after {attempts} attempts; raise --timeout or --retries "
                            "if the server is only slow)",
                            query=query,
                            window=window,
                            status=error.status,
                            retryable=True,
                        )
                    raise error from exc
                delay_s = min(MAX_BACKOFF_S, self.backoff_s * 2 ** (attempt - 1))
                logger.warning(
                    "Prometheus query failed (%s); retry %d of %d in %.1f s",
                    self._short_reason(exc),
                    attempt,
                    self.retries,
                    delay_s,
                )
                self._sleep(delay_s)
        raise AssertionError("unreachable: the loop returns or raises")

    def _short_reason(self, exc: BaseException) -> str:
        status = _status_of(exc)
        if status is not None:
            return f"HTTP {status}"
        return self.auth.redact(exc.__class__.__name__)

    def _classify(self, exc: BaseException, query: str, window: str) -> PrometheusQueryError | None:
        """Map a transport exception to a PrometheusQueryError, or return None for an unknown kind."""
        where = f"Prometheus at {self.url}"
        what = f"query {query!r} {window}"

        def error(message: str, status: int | None = None, retryable: bool = False) -> PrometheusQueryError:
            return PrometheusQueryError(
                self.auth.redact(message), query=query, window=window, status=status, retryable=retryable
            )

        if isinstance(exc, requests.exceptions.Timeout):
            return error(
                f"{where} timed out on the {what} after {self.timeout_s:g} s; raise --timeout, "
                "or shorten the window or the step",
                retryable=True,
            )
        if isinstance(exc, requests.exceptions.ConnectionError):
            return error(
                f"cannot connect to {where} for the {what}: {_connection_reason(exc)}; check that the server "
                "is running and the host and port are right",
                retryable=True,
            )
        if isinstance(exc, PrometheusApiClientException):
            status = _status_of(exc)
            detail = _error_text(str(exc))
            if status in (401, 403):
                return error(
                    f"{where} answered HTTP {status} to the {what}; set {TOKEN_ENV}, or {USER_ENV} and "
                    f"{PASSWORD_ENV}, to credentials the server accepts",
                    status,
                )
            if status == 404:
                return error(
                    f"{where} answered HTTP 404 to the {what}; give the base URL that serves /api/v1, "
                    "such as http://127.0.0.1:9090 (Mimir and some proxies add a prefix such as /prometheus)",
                    status,
                )
            if status in RETRYABLE_STATUS or (status is not None and status >= 500):
                return error(f"{where} answered HTTP {status} to the {what}: {detail}", status, retryable=True)
            return error(f"{where} rejected the {what} (HTTP {status}): {detail}; fix the query", status)
        if isinstance(exc, (ValueError, json.JSONDecodeError, KeyError, TypeError)):
            return error(
                f"{where} sent an answer to the {what} that is not a Prometheus API response "
                f"({exc.__class__.__name__}); check that the URL is the Prometheus base URL"
            )
        if isinstance(exc, requests.exceptions.RequestException):
            return error(f"the {what} to {where} failed: {exc.__class__.__name__}: {exc}")
        return None


def _status_of(exc: BaseException) -> int | None:
    if not isinstance(exc, PrometheusApiClientException):
        return None
    match = _STATUS_PATTERN.search(str(exc))
    return int(match.group(1)) if match else None


def _connection_reason(exc: BaseException) -> str:
    """Return the operating system's reason (such as ``[Errno 111] Connection refused``) or the class name."""
    match = _ERRNO_PATTERN.search(str(exc))
    return match.group(0).strip() if match else exc.__class__.__name__


def _error_text(message: str) -> str:
    """Return the ``error`` field of a Prometheus error body quoted in ``message``, or a short excerpt."""
    match = _ERROR_BODY_PATTERN.search(message)
    if match:
        return match.group(1).replace('\\"', '"')
    excerpt = message.strip()
    return excerpt if len(excerpt) <= 200 else excerpt[:200] + "..."
