"""One keep-alive HTTP/1.1 client connection: an asyncio Protocol fed to httptools.

The connection carries one request at a time (no pipelining). Response
framing follows RFC 9112 section 6.3: llhttp, the C parser inside httptools,
handles Content-Length, chunked bodies and the bodiless 1xx, 204 and 304
responses. Two cases need the connection's help because httptools does not
expose them: a response to HEAD ends at its header block, and a body with
neither Content-Length nor chunked coding ends when the server closes the
connection.
"""

from __future__ import annotations

import asyncio
import socket
from typing import Protocol, cast

from httptools import HttpParserError, HttpParserUpgrade, HttpResponseParser

__all__ = ["HttpConnection", "ConnectionClosedError", "ResponseProtocolError"]


class ConnectionClosedError(ConnectionError):
    """The server closed the connection before the response was complete.

    ``answered`` is False when no byte of a response arrived, which is the
    only case where an idempotent request may be sent again.
    """

    def __init__(self, message: str, *, answered: bool) -> None:
        super().__init__(message)
        self.answered = answered


class ResponseProtocolError(Exception):
    """The server sent bytes that are not a valid HTTP/1.1 response."""


class IdleListener(Protocol):
    def connection_lost_while_idle(self, connection: HttpConnection) -> None: ...


# Header names whose presence means the body is length-delimited, so a close
# before its end truncates it. Compared after lower-casing.
_LENGTH_HEADER = b"content-length"
_TRANSFER_ENCODING_HEADER = b"transfer-encoding"
_FRAMING_NAME_LENGTHS = frozenset({len(_LENGTH_HEADER), len(_TRANSFER_ENCODING_HEADER)})


class HttpConnection(asyncio.Protocol):
    """A client connection that sends prepared requests and parses their responses.

    ``start`` writes a request and returns a future that resolves to the
    response status, or fails with ConnectionClosedError or
    ResponseProtocolError. ``body`` contains the response body only when the
    request asked to keep it.
    """

    __slots__ = (
        "_loop",
        "_listener",
        "_transport",
        "_parser",
        "_waiter",
        "_is_head",
        "_keep_body",
        "_body_parts",
        "_answered",
        "_headers_done",
        "_length_delimited",
        "_interim",
        "_replace_parser",
        "status",
        "keep_alive",
        "closed",
        "body",
    )

    def __init__(self, loop: asyncio.AbstractEventLoop, listener: IdleListener) -> None:
        self._loop = loop
        self._listener = listener
        self._transport: asyncio.Transport | None = None
        self._parser = HttpResponseParser(self)
        self._waiter: asyncio.Future[int] | None = None
        self._is_head = False
        self._keep_body = False
        self._body_parts: list[bytes] = []
        self._answered = False
        self._headers_done = False
        self._length_delimited = False
        self._interim = False
        self._replace_parser = False
        self.status = 0
        self.keep_alive = False
        self.closed = False
        self.body = b""

    # asyncio.Protocol callbacks

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports implement asyncio.Transport without subclassing it.
        self._transport = cast(asyncio.Transport, transport)
        sock = transport.get_extra_info("socket")
        if sock is not None:
            # Requests are written whole, so Nagle's algorithm would only delay them.
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def data_received(self, data: bytes) -> None:
        if self._waiter is None:
            # Bytes that no request asked for: the server is out of step with
            # this connection, so it is not reused.
            self.keep_alive = False
            self.abort()
            return
        self._answered = True
        try:
            self._parser.feed_data(data)
        except HttpParserUpgrade:
            self._fail(ResponseProtocolError("the server switched protocols (status 101) without an Upgrade request"))
        except HttpParserError as exc:
            self._fail(ResponseProtocolError(f"invalid HTTP response: {exc}"))
        if self._replace_parser:
            # A HEAD response ended at its header block while llhttp still
            # expects the body that Content-Length announced.
            self._parser = HttpResponseParser(self)
            self._replace_parser = False

    def eof_received(self) -> bool:
        return False  # let the transport close; connection_lost finishes the response

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self.keep_alive = False
        waiter = self._waiter
        if waiter is None:
            self._listener.connection_lost_while_idle(self)
            return
        self._waiter = None
        if waiter.done():
            return
        if exc is None and self._headers_done and not self._length_delimited and not self._interim:
            # RFC 9112 section 6.3: without Content-Length or a final chunked
            # coding, the body ends when the server closes the connection.
            self._finish_body()
            waiter.set_result(self.status)
            return
        reason = f": {exc}" if exc is not None else ""
        waiter.set_exception(
            ConnectionClosedError(f"the server closed the connection before the response was complete{reason}", answered=self._answered)
        )

    # httptools callbacks

    def on_header(self, name: bytes, value: bytes) -> None:
        if len(name) in _FRAMING_NAME_LENGTHS:
            lowered = name.lower()
            if lowered == _LENGTH_HEADER:
                self._length_delimited = True
            elif lowered == _TRANSFER_ENCODING_HEADER:
                # Only a final "chunked" coding delimits the body. With any
                # other final coding the body ends at the close (RFC 9112 section 6.3).
                self._length_delimited = value.rsplit(b",", 1)[-1].strip().lower() == b"chunked"

    def on_headers_complete(self) -> None:
        if self._waiter is None:
            # A response after the finished one, which no request asked for.
            self.keep_alive = False
            return
        status = self._parser.get_status_code()
        self.status = status
        self._headers_done = True
        self._interim = 100 <= status < 200 and status != 101
        if self._is_head and not self._interim:
            self.keep_alive = self._parser.should_keep_alive()
            self._replace_parser = True
            self._complete()

    def on_body(self, body: bytes) -> None:
        if self._waiter is None:
            # Body bytes after a finished HEAD response belong to no request.
            self.keep_alive = False
        elif self._keep_body:
            self._body_parts.append(body)

    def on_message_complete(self) -> None:
        if self._interim:
            # A 1xx interim response (100 Continue, 103 Early Hints) precedes
            # the final response on the same request.
            self._interim = False
            self._headers_done = False
            self._length_delimited = False
            return
        if self._waiter is None:
            return  # a HEAD response that was already completed at its headers
        if self.status == 101:
            return  # feed_data raises HttpParserUpgrade next, which fails the request
        self.keep_alive = self._parser.should_keep_alive()
        self._finish_body()
        self._complete()

    # Used by the pool and the sender

    @property
    def usable(self) -> bool:
        return not self.closed and self.keep_alive

    def start(self, data: bytes, *, is_head: bool, keep_body: bool) -> asyncio.Future[int]:
        """Write one request and return the future of its response status."""
        assert self._transport is not None and self._waiter is None
        waiter: asyncio.Future[int] = self._loop.create_future()
        self._waiter = waiter
        self._is_head = is_head
        self._keep_body = keep_body
        self._answered = False
        self._headers_done = False
        self._length_delimited = False
        self._interim = False
        self.status = 0
        self.keep_alive = False
        self.body = b""
        self._transport.write(data)
        return waiter

    def close(self) -> None:
        """Close after flushing what was written, for a connection the server asked to close."""
        self._waiter = None
        if self._transport is not None and not self.closed:
            self.closed = True
            self._transport.close()

    def abort(self) -> None:
        """Drop the connection at once, for one whose response state is unknown."""
        self._waiter = None
        if self._transport is not None and not self.closed:
            self.closed = True
            self._transport.abort()

    def _finish_body(self) -> None:
        if self._body_parts:
            self.body = b"".join(self._body_parts)
            self._body_parts = []

    def _complete(self) -> None:
        waiter = self._waiter
        self._waiter = None
        if waiter is not None and not waiter.done():
            waiter.set_result(self.status)

    def _fail(self, exc: Exception) -> None:
        waiter = self._waiter
        self.keep_alive = False
        self.abort()
        if waiter is not None and not waiter.done():
            waiter.set_exception(exc)
