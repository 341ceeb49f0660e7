"""Benchmark: k6 ``--out json`` import speed and peak memory.

Generates k6 NDJSON files in a temporary folder (deleted afterwards) with the
metric mix a plain HTTP test writes: per request the http_req_* trends,
http_reqs, http_req_failed, data_sent/received, iterations and
iteration_duration, plus vus once a second, in a stepped load. Then it
measures, each in a fresh process:

- ``capplan import`` of the file into a new DuckDB store (parse, split,
  histograms, write), in MB/s;
- the peer: a plain ``for line in file: json.loads(line)`` loop over the same
  file, which does less work than any importer must;
- peak resident memory of both, on a small and a large file, to show whether
  memory grows with the file.

Run: .venv/bin/python bench/import_k6.py --small-mb 100 --large-mb 1000
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

T0_S = 1_796_400_000  # 2026-12-04, an arbitrary fixed start
TAGS = (
    '{{"expected_response":"{expected}","group":"","method":"GET","name":"http://127.0.0.1:8080/",'
    '"proto":"HTTP/1.1","scenario":"default","status":"{status}","tls_version":"","url":"http://127.0.0.1:8080/"}}'
)
REQUEST_METRICS = (
    "http_reqs", "http_req_duration", "http_req_blocked", "http_req_connecting", "http_req_tls_handshaking",
    "http_req_sending", "http_req_waiting", "http_req_receiving", "http_req_failed", "data_sent", "data_received",
    "iteration_duration", "iterations",
)


def rfc3339(epoch_s: float) -> str:
    seconds = int(epoch_s)
    micros = int(round((epoch_s - seconds) * 1e6))
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds)) + f".{micros:06d}+00:00"


def generate(path: Path, target_mb: float) -> int:
    """Write a k6 NDJSON file of about ``target_mb`` MB and return its request count."""
    target = target_mb * 1e6
    written = 0
    requests = 0
    second = 0
    with path.open("w") as handle:
        for metric, kind in (("vus", "gauge"), ("http_req_duration", "trend"), ("http_reqs", "counter")):
            handle.write(
                f'{{"metric":"{metric}","type":"Metric","data":{{"name":"{metric}","type":"{kind}",'
                f'"contains":"default","thresholds":[],"submetrics":null}}}}\n'
            )
        while written < target:
            vus = 10 * (1 + (second // 60) % 5)  # five 60-second steps, repeated
            rate = vus * 5
            chunk = [f'{{"metric":"vus","type":"Point","data":{{"time":"{rfc3339(T0_S + second)}","value":{vus},"tags":null}}}}\n']
            for number in range(rate):
                end = T0_S + second + (number + 0.5) / rate
                duration = 10.0 + vus * 0.8 + (number % 7)
                failed = number % 97 == 0
                tags = TAGS.format(expected="false" if failed else "true", status="503" if failed else "200")
                stamp = rfc3339(end)
                for metric in REQUEST_METRICS:
                    value: float = 1
                    if metric == "http_req_duration":
                        value = duration
                    elif metric == "http_req_failed":
                        value = int(failed)
                    chunk.append(f'{{"metric":"{metric}","type":"Point","data":{{"time":"{stamp}","value":{value},"tags":{tags}}}}}\n')
            text = "".join(chunk)
            handle.write(text)
            written += len(text)
            requests += rate
            second += 1
    return requests


CHILD_IMPORT = """
import json, resource, sys, time
from capplan.store import Store
from loadprobe.importers import ImportOptions, import_file
start = time.perf_counter()
result = import_file(Store(sys.argv[2]), sys.argv[1], ImportOptions())
elapsed = time.perf_counter() - start
print(json.dumps({"seconds": elapsed, "requests": result.runs[0].requests,
                  "max_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""
CHILD_JSON_LOOP = """
import json, resource, sys, time
start = time.perf_counter()
count = 0
with open(sys.argv[1]) as handle:
    for line in handle:
        json.loads(line)
        count += 1
elapsed = time.perf_counter() - start
print(json.dumps({"seconds": elapsed, "lines": count,
                  "max_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""


def measure(code: str, *args: str) -> dict:
    output = subprocess.run([sys.executable, "-c", code, *args], check=True, capture_output=True, text=True).stdout
    return json.loads(output.strip().splitlines()[-1])


def bench_file(folder: Path, size_mb: float, repeats: int) -> dict:
    path = folder / f"k6-{size_mb:g}mb.json"
    started = time.perf_counter()
    requests = generate(path, size_mb)
    size = path.stat().st_size / 1e6
    print(f"generated {size:.0f} MB, {requests:,} requests in {time.perf_counter() - started:.0f} s", file=sys.stderr)
    best_import: dict | None = None
    best_loop: dict | None = None
    for repeat in range(repeats):
        db = folder / f"store-{repeat}.duckdb"
        imported = measure(CHILD_IMPORT, str(path), str(db))
        db.unlink()
        looped = measure(CHILD_JSON_LOOP, str(path))
        if best_import is None or imported["seconds"] < best_import["seconds"]:
            best_import = imported
        if best_loop is None or looped["seconds"] < best_loop["seconds"]:
            best_loop = looped
    assert best_import is not None and best_loop is not None
    path.unlink()
    return {"size_mb": size, "requests": requests, "import": best_import, "json_loop": best_loop}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--small-mb", type=float, default=100.0, help="size of the file timed for speed (MB)")
    parser.add_argument("--large-mb", type=float, default=1000.0, help="size of the file for the memory check (MB)")
    parser.add_argument("--repeats", type=int, default=3, help="runs of each measurement on the small file; the best counts")
    parser.add_argument("--tmp", default=None, help="folder for the generated files (default: the system temp folder)")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="capplan-bench-", dir=args.tmp) as name:
        folder = Path(name)
        rows = [bench_file(folder, args.small_mb, args.repeats), bench_file(folder, args.large_mb, 1)]

    print(f"{'file':>8} {'requests':>10} {'import MB/s':>12} {'json.loads MB/s':>16} {'ratio':>6} "
          f"{'import peak MB':>15} {'json.loads peak MB':>19}")
    for row in rows:
        import_rate = row["size_mb"] / row["import"]["seconds"]
        loop_rate = row["size_mb"] / row["json_loop"]["seconds"]
        print(f"{row['size_mb']:>6.0f}MB {row['requests']:>10,} {import_rate:>12.1f} {loop_rate:>16.1f} "
              f"{import_rate / loop_rate:>5.2f}x {row['import']['max_rss_mb']:>15.0f} {row['json_loop']['max_rss_mb']:>19.0f}")
    small, large = rows
    print(f"peak memory, large / small file: import {large['import']['max_rss_mb'] / small['import']['max_rss_mb']:.2f}x "
          f"for a {large['size_mb'] / small['size_mb']:.1f}x larger file")
    print(f"machine: {os.cpu_count()} cores, Python {sys.version.split()[0]}")


if __name__ == "__main__":
    main()
