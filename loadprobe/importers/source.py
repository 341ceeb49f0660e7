"""Reading a result file: gzip or plain, its first bytes, and malformed-line bookkeeping.

Files are read as streams, never whole, so memory does not grow with their
size. ``bytes_read`` counts bytes of the file on disk (compressed bytes for
a .gz file) for the progress display.
"""

from __future__ import annotations

import gzip
import io
import logging
import zlib
from collections.abc import Callable
from os import PathLike
from pathlib import Path
from typing import IO

from capplan.errors import InputDataError

__all__ = ["SourceFile", "MalformedLines", "GZIP_MAGIC"]

logger = logging.getLogger(__name__)

GZIP_MAGIC = b"\x1f\x8b"
HEAD_BYTES = 64 * 1024
MAX_LINE_WARNINGS = 10  # malformed lines logged one by one; the rest are counted


class _CountingReader(io.RawIOBase):
    """A raw reader that counts the bytes read from the file underneath."""

    def __init__(self, handle: IO[bytes]) -> None:
        self._handle = handle
        self.bytes_read = 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: bytearray | memoryview) -> int:  # type: ignore[override]
        count = self._handle.readinto(buffer)  # type: ignore[attr-defined]
        self.bytes_read += count or 0
        return count

    def close(self) -> None:
        self._handle.close()
        super().close()


class _TolerantGzip(io.RawIOBase):
    """A gzip stream that ends quietly where a truncated file ends, noting that it did.

    A load generator that is killed leaves a .gz file without its end marker;
    everything before the cut is still valid and is read.
    """

    def __init__(self, handle: IO[bytes], on_truncated: Callable[[], None]) -> None:
        self._gzip = gzip.GzipFile(fileobj=handle, mode="rb")
        self._on_truncated = on_truncated

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: bytearray | memoryview) -> int:  # type: ignore[override]
        # read1 decompresses one input chunk at a time, so a cut loses at most
        # that chunk; readinto would drop everything decompressed in the call.
        try:
            data = self._gzip.read1(len(buffer))
        except (EOFError, zlib.error):
            self._on_truncated()
            return 0
        buffer[: len(data)] = data
        return len(data)

    def close(self) -> None:
        self._gzip.close()
        super().close()


class SourceFile:
    """A result file on disk, transparently gunzipped."""

    def __init__(self, path: str | PathLike[str]) -> None:
        self.path = Path(path)
        if not self.path.exists():
            raise InputDataError(f"result file {self.path} not found; check the path")
        if self.path.is_dir():
            raise InputDataError(f"{self.path} is a directory; give the path of a result file")
        try:
            self.size = self.path.stat().st_size
            with self.path.open("rb") as handle:
                self.is_gzip = handle.read(2) == GZIP_MAGIC
        except PermissionError as exc:
            raise InputDataError(f"cannot read result file {self.path}: {exc.strerror}; check its permissions") from exc
        self._counter: _CountingReader | None = None
        self.truncated = False

    @property
    def bytes_read(self) -> int:
        return self._counter.bytes_read if self._counter is not None else 0

    def head(self, size: int = HEAD_BYTES) -> bytes:
        """Return up to ``size`` bytes from the start of the (decompressed) content."""
        try:
            with self._open_raw(count=False) as stream:
                return stream.read(size)
        except (OSError, EOFError, zlib.error) as exc:
            raise InputDataError(f"cannot read {self.path}: {exc}; check that the file is complete") from exc

    def open_binary(self) -> IO[bytes]:
        """Open the content for streaming, counting bytes for the progress display."""
        return self._open_raw(count=True)

    def open_text(self, newline: str | None = None) -> IO[str]:
        """Open the content as UTF-8 text; undecodable bytes become U+FFFD instead of stopping the import."""
        return io.TextIOWrapper(self._open_raw(count=True), encoding="utf-8-sig", errors="replace", newline=newline)

    def _open_raw(self, count: bool) -> IO[bytes]:
        handle: IO[bytes] = self.path.open("rb", buffering=0)
        if count:
            self._counter = _CountingReader(handle)
            handle = io.BufferedReader(self._counter, buffer_size=1 << 20)
        else:
            handle = io.BufferedReader(handle)  # type: ignore[arg-type]
        if self.is_gzip:
            return io.BufferedReader(_TolerantGzip(handle, self._mark_truncated), buffer_size=1 << 20)
        return handle

    def _mark_truncated(self) -> None:
        if not self.truncated:
            logger.warning("%s: the compressed file ends early; everything before the cut is imported", self.path)
        self.truncated = True


class MalformedLines:
    """Counts lines that could not be read and logs the first few with their line numbers."""

    def __init__(self, source: Path) -> None:
        self.source = source
        self.count = 0
        self.first_line: int | None = None

    def add(self, line_number: int, reason: str) -> None:
        self.count += 1
        if self.first_line is None:
            self.first_line = line_number
        if self.count <= MAX_LINE_WARNINGS:
            logger.warning("%s line %d: skipped a malformed line: %s", self.source, line_number, reason)
        elif self.count == MAX_LINE_WARNINGS + 1:
            logger.warning("%s: more malformed lines follow; they are counted but not logged one by one", self.source)

    def report(self) -> None:
        if self.count:
            logger.warning(
                "%s: %d malformed line(s) skipped in all, the first on line %d", self.source, self.count, self.first_line
            )
