"""Compare HTTP clients for the probe's hot path against nginx on 127.0.0.1.

Each client keeps CONCURRENCY requests in flight on one pool for DURATION_S
seconds (a closed loop, so this measures the client's ceiling, not latency
accuracy) and prints requests/s and its ratio to aiohttp. wrk runs too when
it is installed, as the ceiling nginx allows.

    .venv/bin/python bench/http_clients.py [--duration 10] [--concurrency 64]

Needs Debian's nginx (and optionally wrk). Traffic goes to 127.0.0.1 only.
"""

from __future__ import annotations

import argparse
import asyncio
import getpass
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import aiohttp
import httpx

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


async def closed_loop(send, duration_s: float, concurrency: int) -> int:
    deadline = time.perf_counter() + duration_s
    count = 0

    async def worker() -> None:
        nonlocal count
        while time.perf_counter() < deadline:
            await send()
            count += 1

    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return count


async def bench_aiohttp(url: str, duration_s: float, concurrency: int) -> float:
    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=connector) as session:

        async def send() -> None:
            async with session.get(url) as response:
                await response.read()

        started = time.perf_counter()
        count = await closed_loop(send, duration_s, concurrency)
        return count / (time.perf_counter() - started)


async def bench_httpx(url: str, duration_s: float, concurrency: int) -> float:
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(limits=limits) as client:

        async def send() -> None:
            response = await client.get(url)
            response.read()

        started = time.perf_counter()
        count = await closed_loop(send, duration_s, concurrency)
        return count / (time.perf_counter() - started)


def bench_wrk(url: str, duration_s: float, concurrency: int) -> float | None:
    wrk = shutil.which("wrk")
    if wrk is None:
        return None
    output = subprocess.run(
        [wrk, "-t1", f"-c{concurrency}", f"-d{int(duration_s)}s", url], capture_output=True, text=True, check=True
    ).stdout
    match = re.search(r"Requests/sec:\s+([0-9.]+)", output)
    return float(match.group(1)) if match else None


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--duration", type=float, default=10.0, help="seconds per client (default 10)")
    parser.add_argument("--concurrency", type=int, default=64, help="requests in flight (default 64)")
    parser.add_argument("--port", type=int, default=18080)
    args = parser.parse_args()
    nginx = shutil.which("nginx") or "/usr/sbin/nginx"
    if not Path(nginx).exists():
        print("nginx is not installed: apt-get install -y nginx", file=sys.stderr)
        return 2
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
            try:
                import uvloop

                uvloop.install()
            except ImportError:
                pass
            results = {
                "aiohttp": asyncio.run(bench_aiohttp(url, args.duration, args.concurrency)),
                "httpx": asyncio.run(bench_httpx(url, args.duration, args.concurrency)),
                "wrk": bench_wrk(url, args.duration, args.concurrency),
            }
        finally:
            server.terminate()
            server.wait(timeout=10)
    reference = results["aiohttp"]
    print(f"{'client':10} {'requests/s':>12} {'vs aiohttp':>11}")
    for name, rate in results.items():
        if rate is None:
            print(f"{name:10} {'not installed':>12}")
            continue
        print(f"{name:10} {rate:12.0f} {rate / reference:10.2f}x")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
