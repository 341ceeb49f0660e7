"""Collecting a Prometheus query's history into the store, resumable and idempotent.

A collection plans grid-aligned chunks (see :mod:`loadprobe.prometheus.timegrid`),
fetches them in a background thread and writes each one in its own
transaction as it arrives, so fetching chunk *k+1* overlaps writing chunk
*k*. While the fetching thread parses and converts a response, Python's
cyclic garbage collector is off for the whole process (see :func:`cyclic_gc_paused`).
The chunks that a failed or interrupted run wrote stay stored, and
its ``prometheus_collections`` row records how far it got.

Resuming: when NAME already holds samples from an earlier collection of the
same query and step, only the part of the requested window outside the
stored span is fetched, starting again at the last stored timestamp (which
is re-read, in case it was evaluated before all of its data had arrived).
``resume=False`` fetches the whole window again; the upsert by (series,
timestamp) replaces the stored values, so no rows are duplicated.

Nothing is written before the first chunk has arrived and been checked, so
a rejected query or an unreachable server leaves the store unchanged.
"""

from __future__ import annotations

import gc
import logging
import queue
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Protocol

from capplan.errors import ConfigError, InputDataError
from capplan.store import Store
from loadprobe.prometheus import sample_store
from loadprobe.prometheus.client import PrometheusClient
from loadprobe.prometheus.matrix import MatrixChunk, matrix_to_chunk
from loadprobe.prometheus.timegrid import DEFAULT_POINTS_PER_CHUNK, Chunk, align_window, plan_chunks, utc_now

__all__ = [
    "CollectRequest",
    "CollectResult",
    "CollectProgress",
    "collect_prometheus",
    "cyclic_gc_paused",
    "validate_series_name",
]

logger = logging.getLogger(__name__)

# Chunks fetched ahead of the writer; bounds memory to about two responses.
PREFETCH_CHUNKS = 1
_QUEUE_POLL_S = 0.2


@dataclass(frozen=True)
class CollectRequest:
    """A collection request: ``query`` evaluated every ``step_s`` from ``since`` to ``until`` (naive UTC).

    ``query`` is sent as it is. ``requested_query`` is the query the user
    gave, which differs when a bare counter was wrapped in rate().
    """

    name: str
    query: str
    since: datetime
    until: datetime
    step_s: int
    requested_query: str = ""
    unit: str | None = None
    resume: bool = True
    points_per_chunk: int = DEFAULT_POINTS_PER_CHUNK


@dataclass
class CollectResult:
    """The outcome of one collection run."""

    name: str
    query: str
    step_s: int
    window_start: datetime | None
    window_end: datetime | None
    collection_id: int | None = None
    chunks_planned: int = 0
    chunks_written: int = 0
    samples_written: int = 0
    resumed_from: datetime | None = None
    series_seen: set[str] = field(default_factory=set)


class CollectProgress(Protocol):
    def started(self, chunks: int) -> None: ...

    def chunk_written(self, chunk: Chunk, samples: int) -> None: ...

    def close(self) -> None: ...


def validate_series_name(name: str) -> str:
    """Check a NAME for Prometheus series and return it stripped."""
    cleaned = (name or "").strip()
    if not cleaned:
        raise ConfigError("collect needs a series name; give --name NAME, such as --name api_rps")
    bad = [ch for ch in '{}"' if ch in cleaned]
    if bad or any(ch.isspace() for ch in cleaned):
        raise ConfigError(
            f"--name {cleaned!r} contains {' '.join(repr(ch) for ch in bad) or 'white space'}; series of a "
            "Prometheus collection are stored as NAME{label=\"value\"}, so give a NAME without braces, "
            "quotes or spaces, such as api_rps"
        )
    return cleaned


def _plan(store: Store, request: CollectRequest, result: CollectResult) -> list[Chunk]:
    """Check the request against what is stored and return the chunks to fetch."""
    if request.until <= request.since:
        raise ConfigError(
            f"--since {request.since.isoformat()} is not before --until {request.until.isoformat()} (UTC); "
            "give an earlier --since"
        )
    foreign = sample_store.foreign_series(store, request.name)
    if foreign:
        series_name, source = foreign[0]
        raise ConfigError(
            f"series {series_name!r} in {store.path} contains {source} samples; collect Prometheus data under "
            "another --name so the two sources are not mixed"
        )
    prior = sample_store.prior_collection(store, request.name)
    if prior is not None and (prior.query != request.query or prior.step_s != request.step_s):
        raise ConfigError(
            f"series {request.name!r} was collected from {prior.query!r} with a {prior.step_s} s step; "
            f"collecting {request.query!r} with a {request.step_s} s step under the same name would mix them; "
            "give another --name"
        )

    window = align_window(request.since, request.until, request.step_s)
    if window is None:
        raise ConfigError(
            f"the window {request.since.isoformat()}..{request.until.isoformat()} (UTC) contains no multiple of the "
            f"{request.step_s} s step; widen the window or shorten --step"
        )
    first, last = window
    result.window_start, result.window_end = first, last

    stats = sample_store.family_stats(store, request.name)
    if not request.resume or prior is None or stats.first_ts is None or stats.last_ts is None:
        return plan_chunks(first, last, request.step_s, request.points_per_chunk)

    step = timedelta(seconds=request.step_s)
    spans: list[tuple[datetime, datetime]] = []
    if first < stats.first_ts:
        spans.append((first, min(last, stats.first_ts - step)))
    resume_at = max(first, stats.last_ts)
    if resume_at <= last:
        spans.append((resume_at, last))
        if resume_at > first:
            result.resumed_from = resume_at
            logger.info(
                "series %s: continuing from the last stored sample at %s UTC; pass --no-resume to fetch the whole window again",
                request.name,
                resume_at.isoformat(),
            )
    if not spans:
        logger.info("series %s: the window %s..%s UTC is already stored", request.name, first.isoformat(), last.isoformat())
    chunks: list[Chunk] = []
    for span_start, span_end in spans:
        if span_end >= span_start:
            chunks.extend(plan_chunks(span_start, span_end, request.step_s, request.points_per_chunk))
    return chunks


class _Fetched:
    def __init__(self, chunk: Chunk, data: MatrixChunk | None = None, error: BaseException | None = None) -> None:
        self.chunk = chunk
        self.data = data
        self.error = error


_DONE = object()


@contextmanager
def cyclic_gc_paused() -> Iterator[None]:
    """Switch off Python's cyclic garbage collector for the block, and back on after it unless it was off before.

    The collector is global, so other threads run without it during the block too.

    Parsing a range-query response allocates one list per sample, and the
    collections those allocations trigger took about two thirds of
    ``json.loads`` time on a response of 1M samples (Python 3.11, see the
    Prometheus section of docs/benchmarks.md). A parsed response contains no
    reference cycles, so reference counting alone frees it.
    """
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def _fetch_all(
    client: PrometheusClient,
    request: CollectRequest,
    chunks: list[Chunk],
    out: queue.Queue[object],
    stop: threading.Event,
) -> None:
    """Fetch and convert each chunk in order and hand it to the writer; stop at the first error."""

    def put(item: object) -> bool:
        while not stop.is_set():
            try:
                out.put(item, timeout=_QUEUE_POLL_S)
                return True
            except queue.Full:
                continue
        return False

    for chunk in chunks:
        if stop.is_set():
            return
        try:
            with cyclic_gc_paused():
                data = matrix_to_chunk(client.query_range(request.query, chunk.start, chunk.end, chunk.step_s), request.name)
        except BaseException as exc:  # handed to the writer thread, which re-raises it
            put(_Fetched(chunk, error=exc))
            return
        if not put(_Fetched(chunk, data=data)):
            return
    put(_DONE)


def collect_prometheus(
    store: Store,
    client: PrometheusClient,
    request: CollectRequest,
    progress: CollectProgress | None = None,
) -> CollectResult:
    """Collect ``request`` into ``store`` and return what was done.

    Raises PrometheusQueryError when a chunk cannot be fetched; the chunks
    before it are stored by then. Raises ConfigError for a request that
    conflicts with what is stored, and InputDataError when the query returns
    no data at all for a NAME that has nothing stored yet.
    """
    name = validate_series_name(request.name)
    result = CollectResult(name=name, query=request.query, step_s=request.step_s, window_start=None, window_end=None)
    chunks = _plan(store, request, result)
    result.chunks_planned = len(chunks)
    had_samples = sample_store.family_stats(store, name).samples_total > 0
    if not chunks:
        return result

    logger.info(
        "collecting %s from %s: %d chunk(s) of up to %d points every %d s",
        name,
        client.url,
        len(chunks),
        request.points_per_chunk,
        request.step_s,
    )
    collection_row = {
        "series_name": name,
        "prometheus_url": client.url,
        "requested_query": request.requested_query or request.query,
        "query": request.query,
        "step_s": request.step_s,
        "window_start": result.window_start,
        "window_end": result.window_end,
    }
    if progress is not None:
        progress.started(len(chunks))

    fetched: queue.Queue[object] = queue.Queue(maxsize=PREFETCH_CHUNKS)
    stop = threading.Event()
    fetcher = threading.Thread(
        target=_fetch_all, args=(client, request, chunks, fetched, stop), name="prometheus-fetch", daemon=True
    )
    fetcher.start()
    try:
        while True:
            item = fetched.get()
            if item is _DONE:
                break
            assert isinstance(item, _Fetched)
            if item.error is not None:
                raise item.error
            assert item.data is not None
            _write(store, request, result, collection_row, item)
            if progress is not None:
                progress.chunk_written(item.chunk, item.data.samples)
    except KeyboardInterrupt:
        stop.set()
        _close(store, result, "interrupted", "interrupted by the user")
        logger.warning(
            "collection of %s interrupted; %d of %d chunk(s) stored", name, result.chunks_written, len(chunks)
        )
        raise
    except BaseException as exc:
        stop.set()
        _close(store, result, "failed", str(exc))
        if result.chunks_written:
            logger.warning(
                "collection of %s stopped after %d of %d chunk(s); the stored chunks are kept and the next run "
                "continues from the last stored sample",
                name,
                result.chunks_written,
                len(chunks),
            )
        raise
    finally:
        stop.set()
        fetcher.join(timeout=5.0)
        if progress is not None:
            progress.close()

    if result.collection_id is None:
        # Every chunk came back empty, so nothing was written.
        window = f"{result.window_start.isoformat()}..{result.window_end.isoformat()} UTC" if result.window_start else ""
        if not had_samples:
            raise InputDataError(
                f"query {request.query!r} returned no samples from {client.url} for {window}; check the metric "
                "name and labels (the names a server knows are listed at /api/v1/label/__name__/values)"
            )
        logger.warning("query %r returned no new samples for %s; nothing was written", request.query, window)
        return result
    _close(store, result, "finished", None)
    logger.info(
        "collected %d samples in %d series under %s (%d chunk(s))",
        result.samples_written,
        len(result.series_seen),
        name,
        result.chunks_written,
    )
    return result


def _write(store: Store, request: CollectRequest, result: CollectResult, collection_row: dict[str, object], item: _Fetched) -> None:
    data = item.data
    assert data is not None
    if data.samples == 0 and result.collection_id is None:
        return
    result.collection_id = sample_store.write_chunk(
        store,
        collection_id=result.collection_id,
        collection_row=collection_row,
        chunk=data,
        chunk_end=item.chunk.end,
        unit=request.unit,
        now=utc_now(),
    )
    result.chunks_written += 1
    result.samples_written += data.samples
    result.series_seen.update(s.name for s in data.series)


def _close(store: Store, result: CollectResult, status: str, error: str | None) -> None:
    if result.collection_id is None:
        return
    sample_store.finish_collection(store, result.collection_id, status=status, finished_at=utc_now(), error=error)
