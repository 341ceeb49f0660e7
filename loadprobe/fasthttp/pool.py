"""A bounded pool of keep-alive connections to one host and port.

At most ``max_connections`` connections are open or opening at once. A
request that finds none free waits in FIFO order. A released connection goes
straight to the longest waiter, and so does the right to open a new one when
a connection was closed, so no waiter can be overtaken by a newcomer.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque

from loadprobe.fasthttp.connection import HttpConnection

__all__ = ["HostPool", "ConnectError"]

logger = logging.getLogger(__name__)


class ConnectError(ConnectionError):
    """A new connection to the host could not be opened."""


# Handed to a waiter instead of a connection: a slot was freed, so the waiter
# opens a connection of its own. The pool's open count already includes it.
_OPEN_SLOT = object()


class HostPool:
    """Keep-alive connections to ``host``:``port``, reused most recently used first."""

    def __init__(self, loop: asyncio.AbstractEventLoop, host: str, port: int, max_connections: int) -> None:
        self.host = host
        self.port = port
        self.max_connections = max_connections
        self.connections_opened = 0
        self._loop = loop
        self._idle: list[HttpConnection] = []
        self._open_count = 0  # idle, busy and still connecting
        self._waiters: deque[asyncio.Future[object]] = deque()
        self._closed = False

    def try_acquire(self) -> HttpConnection | None:
        """Return an idle connection without waiting, or None when there is none."""
        idle = self._idle
        while idle:
            connection = idle.pop()
            if connection.usable:
                return connection
            self._slot_freed()
        return None

    async def acquire(self) -> tuple[HttpConnection, bool]:
        """Return a connection and whether it was reused from the pool.

        Waits when all ``max_connections`` are busy. Raises ConnectError when a
        new connection cannot be opened.
        """
        connection = self.try_acquire()
        if connection is not None:
            return connection, True
        if self._open_count >= self.max_connections:
            waiter: asyncio.Future[object] = self._loop.create_future()
            self._waiters.append(waiter)
            try:
                handed = await waiter
            except asyncio.CancelledError:
                self._cancel_waiter(waiter)
                raise
            if isinstance(handed, HttpConnection):
                return handed, True
        else:
            self._open_count += 1
        try:
            connection = await self._connect()
        except BaseException:
            self._slot_freed()
            raise
        return connection, False

    def release(self, connection: HttpConnection, *, reuse: bool) -> None:
        """Return a connection after its response, or close it unless ``reuse`` is true and it is usable."""
        if reuse and connection.usable and not self._closed:
            waiters = self._waiters
            while waiters:
                waiter = waiters.popleft()
                if not waiter.done():
                    waiter.set_result(connection)
                    return
            self._idle.append(connection)
            return
        if connection.usable:
            connection.close()
        else:
            connection.abort()
        self._slot_freed()

    def connection_lost_while_idle(self, connection: HttpConnection) -> None:
        # The server closed an idle keep-alive connection, so forget it now
        # and free its slot for a new one.
        try:
            self._idle.remove(connection)
        except ValueError:
            return  # already taken out of the pool, and counted by the caller that took it
        self._slot_freed()

    def close(self) -> None:
        """Close the idle connections and fail every waiter. Busy connections close when released."""
        self._closed = True
        idle, self._idle = self._idle, []
        for connection in idle:
            connection.close()
        self._open_count -= len(idle)
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_exception(ConnectError(f"the pool for {self.host}:{self.port} was closed"))

    async def _connect(self) -> HttpConnection:
        if self._closed:
            raise ConnectError(f"the pool for {self.host}:{self.port} was closed")
        try:
            _, protocol = await self._loop.create_connection(lambda: HttpConnection(self._loop, self), self.host, self.port)
        except OSError as exc:
            raise ConnectError(f"cannot connect to {self.host}:{self.port}: {exc}") from exc
        connection = protocol
        connection.keep_alive = True  # usable until a response ends keep-alive
        self.connections_opened += 1
        logger.debug("opened connection %d to %s:%d", self.connections_opened, self.host, self.port)
        return connection

    def _slot_freed(self) -> None:
        waiters = self._waiters
        while waiters:
            waiter = waiters.popleft()
            if not waiter.done():
                waiter.set_result(_OPEN_SLOT)
                return
        self._open_count -= 1

    def _cancel_waiter(self, waiter: asyncio.Future[object]) -> None:
        if waiter.done() and not waiter.cancelled() and waiter.exception() is None:
            # The waiter was handed a connection or a slot just before the
            # cancellation reached it: pass it on instead of losing it.
            handed = waiter.result()
            if isinstance(handed, HttpConnection):
                self.release(handed, reuse=True)
            else:
                self._slot_freed()
            return
        try:
            self._waiters.remove(waiter)
        except ValueError:
            pass
