"""Samples per second from Prometheus range-query responses into DuckDB.

Figures for the same response bodies (``--chunks`` range-query responses of
``--series`` series x ``--points`` points, values as the decimal strings
Prometheus sends):

- ceiling: ``json.loads`` of each body, the least work any Python client
  must do per response;
- json.loads, GC paused: the same with Python's cyclic garbage collector
  switched off, as capplan collect parses. This is a reference row, not the
  ceiling;
- capplan collect: ``collect_prometheus`` as ``capplan collect`` runs it.
  It parses, converts and inserts into a fresh DuckDB file, and fetches the
  next chunk while the previous one is written. Its transport returns
  ``json.loads(body)["data"]["result"]``, the same work prometheus-api-client
  does with a response, so no HTTP time is counted;
- capplan serial: the same steps one chunk after another, without the
  overlap.

``--stages`` then times each step on its own, one chunk after another: the
parse with and without the garbage collector, the conversion to Arrow, the
write into the store, and the same insert into a table with the primary key
(series_name, ts) that ``samples`` had up to schema version 8.

    .venv/bin/python bench/prometheus_ingest.py [--series 100] [--points 10000] [--chunks 4] [--repeat 5] [--stages]

The goal is at least half the ceiling for capplan collect.
"""

from __future__ import annotations

import argparse
import gc
import json
import random
import statistics
import sys
import tempfile
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import duckdb  # noqa: E402

from capplan.store import Store  # noqa: E402
from loadprobe.prometheus.client import PrometheusClient  # noqa: E402
from loadprobe.prometheus.collector import CollectRequest, collect_prometheus, cyclic_gc_paused  # noqa: E402
from loadprobe.prometheus.matrix import MatrixChunk, matrix_to_chunk  # noqa: E402
from loadprobe.prometheus.sample_store import write_chunk  # noqa: E402

STEP_S = 15
START = datetime(2026, 10, 5)


def epoch_s(moment: datetime) -> int:
    return int(moment.replace(tzinfo=timezone.utc).timestamp())


def make_body(series: int, points: int, start: datetime, rng: random.Random) -> bytes:
    """Return a query_range response body like Prometheus's for a request-rate query by instance."""
    first = epoch_s(start)
    result = []
    for index in range(series):
        # Computed rates print with up to 17 significant digits, as Prometheus
        # formats them (the shortest text that reads back as the same float).
        values = [[first + STEP_S * k, repr(rng.uniform(0, 2000))] for k in range(points)]
        metric = {"instance": f"10.0.{index // 256}.{index % 256}:9100", "job": "api", "code": "200"}
        result.append({"metric": metric, "values": values})
    return json.dumps({"status": "success", "data": {"resultType": "matrix", "result": result}}).encode()


class CannedTransport:
    """Returns the prepared body whose first timestamp is the requested start."""

    def __init__(self, bodies: dict[int, bytes]) -> None:
        self._bodies = bodies

    def query_range(self, query: str, start: datetime, end: datetime, step_s: int) -> list[dict[str, Any]]:
        return json.loads(self._bodies[int(start.timestamp())])["data"]["result"]

    def query(self, query: str, at: datetime) -> list[dict[str, Any]]:
        raise NotImplementedError

    def close(self) -> None:
        pass


def timed(run: Any) -> tuple[float, float]:
    """Return the wall-clock and the CPU seconds (all threads of this process) that ``run()`` took."""
    wall, cpu = time.perf_counter(), time.process_time()
    run()
    return time.perf_counter() - wall, time.process_time() - cpu


def run_ceiling(bodies: list[bytes]) -> None:
    for body in bodies:
        json.loads(body)


def run_parse_gc_paused(bodies: list[bytes]) -> None:
    for body in bodies:
        with cyclic_gc_paused():
            json.loads(body)


def prepare_store(folder: Path, label: str) -> Store:
    store = Store(folder / f"{label}-{time.monotonic_ns()}.duckdb")
    with store.write():
        pass  # create and migrate outside the timed part
    return store


def run_collect(store: Store, bodies: dict[int, bytes], points: int, chunks: int) -> None:
    request = CollectRequest(
        name="api_rps",
        query="sum by (instance, job, code) (rate(http_requests_total[1m]))",
        since=START,
        until=START + timedelta(seconds=STEP_S * (points * chunks - 1)),
        step_s=STEP_S,
        points_per_chunk=points,
    )
    client = PrometheusClient("http://127.0.0.1:9", transport=CannedTransport(bodies))
    result = collect_prometheus(store, client, request)
    assert result.chunks_written == chunks, result


def run_serial(store: Store, bodies: dict[int, bytes]) -> None:
    row = {"series_name": "api_rps", "prometheus_url": "http://127.0.0.1:9", "requested_query": "q", "query": "q",
           "step_s": STEP_S, "window_start": START, "window_end": START}
    collection_id = None
    for _, body in sorted(bodies.items()):
        with cyclic_gc_paused():
            chunk = matrix_to_chunk(json.loads(body)["data"]["result"], "api_rps")
        collection_id = write_chunk(store, collection_id=collection_id, collection_row=row, chunk=chunk,
                                    chunk_end=START, unit=None, now=START)


def cpu_seconds(run: Any) -> float:
    gc.collect()
    return timed(run)[1]


def print_stages(folder: Path, bodies: dict[int, bytes], samples: int) -> None:
    """Print the CPU seconds per million samples of each step, run one chunk after another."""
    ordered = [body for _, body in sorted(bodies.items())]
    parsed: list[list[dict[str, Any]]] = []
    chunks: list[MatrixChunk] = []
    stages: dict[str, float] = {}
    stages["json.loads"] = cpu_seconds(lambda: run_ceiling(ordered))
    stages["json.loads, GC paused"] = cpu_seconds(lambda: run_parse_gc_paused(ordered))
    parsed.extend(json.loads(body)["data"]["result"] for body in ordered)

    def convert() -> None:
        with cyclic_gc_paused():
            chunks.extend(matrix_to_chunk(result, "api_rps") for result in parsed)

    stages["matrix_to_chunk (to Arrow)"] = cpu_seconds(convert)
    parsed.clear()

    store = prepare_store(folder, "stages")
    row = {"series_name": "api_rps", "prometheus_url": "http://127.0.0.1:9", "requested_query": "q", "query": "q",
           "step_s": STEP_S, "window_start": START, "window_end": START}

    def write() -> None:
        collection_id = None
        for chunk in chunks:
            collection_id = write_chunk(store, collection_id=collection_id, collection_row=row, chunk=chunk,
                                        chunk_end=START, unit=None, now=START)

    stages["write_chunk (samples, no key)"] = cpu_seconds(write)

    con = duckdb.connect(str(folder / f"keyed-{time.monotonic_ns()}.duckdb"))
    con.execute("CREATE TABLE samples (series_name VARCHAR NOT NULL, ts TIMESTAMP NOT NULL, value DOUBLE, "
                "PRIMARY KEY (series_name, ts))")

    def insert_keyed() -> None:
        for chunk in chunks:
            con.register("incoming_samples", chunk.table)
            con.execute("BEGIN TRANSACTION")
            con.execute("INSERT INTO samples SELECT series_name::VARCHAR, ts, value FROM incoming_samples")
            con.execute("COMMIT")
            con.unregister("incoming_samples")

    stages["INSERT with PRIMARY KEY"] = cpu_seconds(insert_keyed)
    con.close()

    print(f"{'stage, one run':<32} {'CPU s per 1M samples':>21}")
    for label, seconds in stages.items():
        print(f"{label:<32} {seconds * 1e6 / samples:>21.3f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--series", type=int, default=100)
    parser.add_argument("--points", type=int, default=10_000, help="points per series in one response (at most 11,000)")
    parser.add_argument("--chunks", type=int, default=4, help="responses per run")
    parser.add_argument("--repeat", type=int, default=5, help="runs of each figure, interleaved; the median is printed")
    parser.add_argument("--stages", action="store_true", help="also print the CPU time of each step, measured once")
    args = parser.parse_args()

    rng = random.Random(1)
    bodies: dict[int, bytes] = {}
    for index in range(args.chunks):
        start = START + timedelta(seconds=STEP_S * args.points * index)
        bodies[epoch_s(start)] = make_body(args.series, args.points, start, rng)
    samples = args.series * args.points * args.chunks
    megabytes = sum(len(b) for b in bodies.values()) / 1e6
    print(f"{args.chunks} responses of {args.series} series x {args.points} points: {samples:,} samples, {megabytes:.0f} MB of JSON")

    labels = ("json.loads (ceiling)", "json.loads, GC paused", "capplan collect", "capplan serial")
    walls: dict[str, list[float]] = {label: [] for label in labels}
    cpus: dict[str, list[float]] = {label: [] for label in labels}
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        for _ in range(args.repeat):
            for label in labels:
                gc.collect()
                if label == "json.loads (ceiling)":
                    wall, cpu = timed(lambda: run_ceiling(list(bodies.values())))
                elif label == "json.loads, GC paused":
                    wall, cpu = timed(lambda: run_parse_gc_paused(list(bodies.values())))
                elif label == "capplan collect":
                    store = prepare_store(folder, "collect")
                    wall, cpu = timed(lambda: run_collect(store, bodies, args.points, args.chunks))
                else:
                    store = prepare_store(folder, "serial")
                    wall, cpu = timed(lambda: run_serial(store, bodies))
                walls[label].append(wall)
                cpus[label].append(cpu)

    # Wall-clock rates show the overlap of fetching and writing, but only
    # when a second core is free. CPU rates are steadier on a shared machine.
    ceiling_wall = samples / statistics.median(walls[labels[0]])
    ceiling_cpu = samples / statistics.median(cpus[labels[0]])
    print(f"{'path':<22} {'samples/s':>12} {'vs ceiling':>11} {'per CPU s':>12} {'vs ceiling':>11}")
    for label in labels:
        wall_rate = samples / statistics.median(walls[label])
        cpu_rate = samples / statistics.median(cpus[label])
        print(
            f"{label:<22} {wall_rate:>12,.0f} {wall_rate / ceiling_wall:>10.2f}x "
            f"{cpu_rate:>12,.0f} {cpu_rate / ceiling_cpu:>10.2f}x"
        )

    if args.stages:
        print()
        with tempfile.TemporaryDirectory() as tmp:
            print_stages(Path(tmp), bodies, samples)


if __name__ == "__main__":
    main()
