"""Latency accuracy under a stalling server: capplan's probe beside wrk.

nginx serves a static page; this script freezes its worker process with
SIGSTOP for STALL_S every PERIOD_S (a stop-the-world pause) while each tool
runs. With uniform arrivals at a constant rate, the fraction STALL_S/PERIOD_S
of requests arrives during a freeze and waits uniformly between 0 and
STALL_S, so the true p99 follows from the schedule:
``p99 = STALL_S * (1 - 0.01 / (STALL_S / PERIOD_S))`` plus the normal service
time. The script prints each tool's reported p99 against it.

    .venv/bin/python bench/stall_accuracy.py [--rate 200] [--cycles 4]

Needs Debian's nginx and wrk. Traffic goes to 127.0.0.1 only, and the freeze
loop stops after the run.
"""

from __future__ import annotations

import argparse
import getpass
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

NGINX_CONF = """
user {user};
worker_processes 1;
daemon off;
pid {root}/nginx.pid;
error_log {root}/error.log warn;
events {{ worker_connections 4096; }}
http {{
    access_log off;
    keepalive_requests 1000000;
    client_body_temp_path {root}/body;
    proxy_temp_path {root}/proxy;
    fastcgi_temp_path {root}/fastcgi;
    uwsgi_temp_path {root}/uwsgi;
    scgi_temp_path {root}/scgi;
    server {{ listen 127.0.0.1:{port}; root {root}/www; }}
}}
"""
PERIOD_S = 5.0
STALL_S = 1.0


def worker_pid(master_pid: int) -> int:
    children = Path(f"/proc/{master_pid}/task/{master_pid}/children").read_text().split()
    if not children:
        raise RuntimeError("nginx has no worker process")
    return int(children[0])


def freeze_loop(pid: int, stop: threading.Event, deadline: float) -> None:
    """Stop the worker for STALL_S at the end of each PERIOD_S, until ``stop`` is set or the deadline passes."""
    while not stop.is_set() and time.monotonic() < deadline:
        if stop.wait(PERIOD_S - STALL_S):
            break
        os.kill(pid, signal.SIGSTOP)
        time.sleep(STALL_S)
        os.kill(pid, signal.SIGCONT)


def run_probe(url: str, load: list[str], duration_s: float, db: Path) -> dict:
    result = subprocess.run(
        [sys.executable, "-m", "capplan", "probe", "baseline", url, *load, "--duration", f"{duration_s:g}s",
         "--slo-p95", "5000", "--workers", "1", "--json", "--db", str(db)],
        capture_output=True, text=True, check=True, timeout=duration_s + 120,
    )  # fmt: skip
    return json.loads(result.stdout)["steps"][0]


def run_wrk(url: str, duration_s: float) -> dict[str, float]:
    output = subprocess.run(
        ["wrk", "-t1", "-c64", f"-d{int(duration_s)}s", "--latency", url],
        capture_output=True, text=True, check=True, timeout=duration_s + 60,
    ).stdout  # fmt: skip
    values = {}
    for label, key in (("50%", "p50"), ("99%", "p99")):
        match = re.search(rf"{re.escape(label)}\s+([0-9.]+)(us|ms|s)", output)
        if match:
            scale = {"us": 0.001, "ms": 1.0, "s": 1000.0}[match.group(2)]
            values[key] = float(match.group(1)) * scale
    rate = re.search(r"Requests/sec:\s+([0-9.]+)", output)
    values["rps"] = float(rate.group(1)) if rate else float("nan")
    return values


def with_freezes(master_pid: int, duration_s: float, action):
    stop = threading.Event()
    thread = threading.Thread(target=freeze_loop, args=(worker_pid(master_pid), stop, time.monotonic() + duration_s + 5), daemon=True)
    thread.start()
    try:
        return action()
    finally:
        stop.set()
        thread.join(timeout=PERIOD_S + 1)
        os.kill(worker_pid(master_pid), signal.SIGCONT)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rate", type=float, default=200.0, help="capplan's arrival rate, requests/s (default 200)")
    parser.add_argument("--cycles", type=int, default=4, help="freeze cycles per tool (default 4)")
    parser.add_argument("--port", type=int, default=18090)
    args = parser.parse_args()
    nginx = shutil.which("nginx") or "/usr/sbin/nginx"
    if not Path(nginx).exists() or shutil.which("wrk") is None:
        print("needs nginx and wrk: apt-get install -y nginx wrk", file=sys.stderr)
        return 2
    duration_s = args.cycles * PERIOD_S
    frozen_fraction = STALL_S / PERIOD_S
    true_p99_ms = STALL_S * 1000.0 * (1.0 - 0.01 / frozen_fraction)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        (root / "www").mkdir()
        (root / "www" / "index.html").write_text("ok\n")
        conf = root / "nginx.conf"
        conf.write_text(NGINX_CONF.format(user=getpass.getuser(), root=root, port=args.port))
        server = subprocess.Popen([nginx, "-p", str(root), "-c", str(conf), "-e", str(root / "error.log")])
        try:
            time.sleep(1.0)
            url = f"http://127.0.0.1:{args.port}/"
            db = root / "bench.duckdb"
            probe = with_freezes(server.pid, duration_s, lambda: run_probe(url, ["--rate", f"{args.rate:g}"], duration_s, db))
            closed = with_freezes(server.pid, duration_s, lambda: run_probe(url, ["--users", "64"], duration_s, db))
            wrk = with_freezes(server.pid, duration_s, lambda: run_wrk(url, duration_s))
        finally:
            server.terminate()
            server.wait(timeout=10)
    print(f"freeze {STALL_S:g} s every {PERIOD_S:g} s for {duration_s:g} s; true p99 under a constant rate: {true_p99_ms:.0f} ms")
    print(f"{'tool':28} {'rate rps':>9} {'p50 ms':>8} {'p99 ms':>8} {'p99 / true':>11}")
    print(
        f"{'capplan probe (open model)':28} {probe['achieved_rps']:9.0f} {probe['p50_ms']:8.1f} "
        f"{probe['p99_ms']:8.1f} {probe['p99_ms'] / true_p99_ms:10.3f}x"
    )
    print(
        f"{'capplan probe, 64 users':28} {closed['achieved_rps']:9.0f} {closed['p50_ms']:8.1f} "
        f"{closed['p99_ms']:8.1f} {closed['p99_ms'] / true_p99_ms:10.3f}x"
    )
    print(f"{'wrk -t1 -c64 (closed loop)':28} {wrk['rps']:9.0f} {wrk.get('p50', float('nan')):8.1f} {wrk.get('p99', float('nan')):8.1f} {wrk.get('p99', float('nan')) / true_p99_ms:10.3f}x")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
