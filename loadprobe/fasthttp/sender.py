"""FastHttpSender: the probe's RequestSender on asyncio Protocols and httptools.

The probe's hot path sends one request and reads its status, so this engine
does only that: requests are serialised once per RequestSpec, responses are
parsed by llhttp (C), and a body is kept only when the spec checks it. On
2 cores against nginx on 127.0.0.1 with 64 connections, it completed about
six times as many requests per CPU-second as AiohttpSender: 61,900 against
10,200 with uvloop (bench/probe_throughput.py, docs/benchmarks.md).

Plain http only. A request whose URL is https goes through an AiohttpSender
that this sender creates on first use, because TLS would need its own
transport handling here.
"""

from __future__ import annotations

import asyncio
import logging
import time

from loadprobe.fasthttp.connection import ConnectionClosedError, ResponseProtocolError
from loadprobe.fasthttp.pool import ConnectError, HostPool
from loadprobe.fasthttp.request import PreparedRequest, prepare_request
from loadprobe.http_engine import AiohttpSender, Outcome, RequestSpec, classify_status

__all__ = ["FastHttpSender", "new_event_loop"]

logger = logging.getLogger(__name__)

# Prepared requests are cached per RequestSpec object; a caller that builds a
# new spec for every request would otherwise grow the cache without bound.
MAX_PREPARED_SPECS = 4096


def new_event_loop() -> asyncio.AbstractEventLoop:
    """Create a uvloop event loop when uvloop is installed, else asyncio's default loop.

    Pass it as ``asyncio.Runner(loop_factory=new_event_loop)``.
    """
    try:
        import uvloop
    except ImportError:
        return asyncio.new_event_loop()
    return uvloop.new_event_loop()


class FastHttpSender:
    """Send requests relative to one base URL over keep-alive HTTP/1.1 connections.

    Each host and port gets its own pool of at most ``max_connections``
    connections. A request that finds them all busy waits for one, and the
    wait counts in its latency, as it would for a real client of the target.
    ``timeout_s`` bounds the whole request, wait and connect included; a
    request that runs out of time closes its connection and counts as a
    timeout. An idempotent request is sent once more on a new connection when
    the server closed its reused connection before any response byte arrived.
    Every other close before the response ends counts as a reset.
    """

    def __init__(self, base_url: str, timeout_s: float = 5.0, max_connections: int = 512) -> None:
        if not timeout_s > 0:
            raise ValueError(f"timeout_s must be positive, got {timeout_s!r}")
        if max_connections < 1:
            raise ValueError(f"max_connections must be at least 1, got {max_connections!r}")
        self.base_url = base_url
        self.timeout_s = timeout_s
        self.max_connections = max_connections
        self.retries = 0  # requests sent again after a server closed an idle connection
        self._opened_by_closed_pools = 0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._pools: dict[tuple[str, int], HostPool] = {}
        self._prepared: dict[int, tuple[RequestSpec, PreparedRequest]] = {}
        self._https_sender: AiohttpSender | None = None

    @property
    def connections_opened(self) -> int:
        """Connections opened since this sender was created, over all hosts."""
        return self._opened_by_closed_pools + sum(pool.connections_opened for pool in self._pools.values())

    async def send(self, spec: RequestSpec) -> Outcome:
        sent_at = time.perf_counter()
        prepared = self._prepare(spec)
        if prepared.scheme == "https":
            return await self._https(spec)

        status: int | None = None
        error_kind: str | None
        try:
            async with asyncio.timeout(self.timeout_s):
                status, body = await self._exchange(prepared)
            error_kind = classify_status(status, spec.expected_status)
            if error_kind is None and prepared.expected_body is not None and prepared.expected_body not in body:
                error_kind = "unexpected_body"
        except TimeoutError:
            error_kind = "timeout"
        except ConnectError:
            error_kind = "refused"
        except ConnectionClosedError:
            error_kind = "reset"
        except ResponseProtocolError as exc:
            # DEBUG only: a broken server repeats this for every request, and
            # each step already counts it under "other".
            logger.debug("invalid response for %s %s: %s", spec.method, spec.path or self.base_url, exc)
            error_kind = "other"
        return Outcome(sent_at=sent_at, done_at=time.perf_counter(), status=status, error_kind=error_kind)

    async def close(self) -> None:
        """Close every idle connection. A request still running closes its own when it ends."""
        pools, self._pools = self._pools, {}
        for pool in pools.values():
            self._opened_by_closed_pools += pool.connections_opened
            pool.close()
        self._prepared.clear()
        if self._https_sender is not None:
            await self._https_sender.close()
            self._https_sender = None
        if pools:
            logger.info(
                "fast HTTP engine closed: %d connection(s) opened, %d request(s) retried after an idle close",
                self.connections_opened,
                self.retries,
            )
            await asyncio.sleep(0)  # let the transports run their close callbacks

    def _prepare(self, spec: RequestSpec) -> PreparedRequest:
        # Keyed by id() because hashing a frozen dataclass costs more than the
        # lookup. The stored spec keeps its id from being reused while cached.
        cached = self._prepared.get(id(spec))
        if cached is not None and cached[0] is spec:
            return cached[1]
        prepared = prepare_request(self.base_url, spec)
        if len(self._prepared) >= MAX_PREPARED_SPECS:
            self._prepared.clear()
        self._prepared[id(spec)] = (spec, prepared)
        return prepared

    def _pool(self, prepared: PreparedRequest) -> HostPool:
        loop = asyncio.get_running_loop()
        if loop is not self._loop:
            # Connections belong to the loop that opened them, so a sender used
            # from a new loop (a second asyncio.run) starts with fresh pools.
            if self._pools:
                logger.debug("event loop changed; dropping %d connection pool(s)", len(self._pools))
                for dropped in self._pools.values():
                    self._opened_by_closed_pools += dropped.connections_opened
            self._pools = {}
            self._loop = loop
        key = (prepared.host, prepared.port)
        pool = self._pools.get(key)
        if pool is None:
            pool = HostPool(loop, prepared.host, prepared.port, self.max_connections)
            self._pools[key] = pool
        return pool

    async def _exchange(self, prepared: PreparedRequest) -> tuple[int, bytes]:
        """Send one request and return its status and kept body, retrying once after an idle close."""
        pool = self._pool(prepared)
        keep_body = prepared.expected_body is not None
        retried = False
        while True:
            connection = pool.try_acquire()
            reused = True
            if connection is None:
                connection, reused = await pool.acquire()
            waiter = connection.start(prepared.data, is_head=prepared.is_head, keep_body=keep_body)
            try:
                status = await waiter
            except ConnectionClosedError as exc:
                pool.release(connection, reuse=False)
                if reused and not exc.answered and prepared.idempotent and not retried:
                    # A server may close an idle connection just as a request
                    # is sent on it. HTTP/1.1 lets a client send an idempotent
                    # request again then (RFC 9112, Retrying Requests).
                    retried = True
                    self.retries += 1
                    logger.debug("connection to %s:%d closed before a response; sending again", pool.host, pool.port)
                    continue
                raise
            except BaseException:
                # Timed out or cancelled mid-response: the connection's state is unknown.
                pool.release(connection, reuse=False)
                raise
            body = connection.body
            pool.release(connection, reuse=not prepared.close_after)
            return status, body

    async def _https(self, spec: RequestSpec) -> Outcome:
        if self._https_sender is None:
            logger.info("%s is https; the fast engine speaks plain http, so aiohttp sends these requests", self.base_url)
            self._https_sender = AiohttpSender(self.base_url, timeout_s=self.timeout_s, max_connections=self.max_connections)
        return await self._https_sender.send(spec)
