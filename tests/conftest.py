"""Shared fixtures: real servers on 127.0.0.1 and store files in tmp_path.

A server that cannot be found on this machine makes its tests skip with the
reason outside CI; with CI=true the same test fails, so CI cannot pass by
skipping.
"""

from __future__ import annotations

import getpass
import os
import shutil
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest

from capplan.store import Store
from loadprobe.demo_target import TargetConfig
from loadprobe.target_process import DemoTargetProcess, free_port, start_demo_target

SERVER_START_TIMEOUT_S = 20.0


def require_binary(name: str, *candidates: str) -> str:
    """Return the path of a server binary, or skip (outside CI) / fail (CI=true)."""
    for candidate in (shutil.which(name), *candidates):
        if candidate and os.access(candidate, os.X_OK):
            return candidate
    reason = f"{name} is not installed; run 'make test', which installs it with apt-get"
    if os.environ.get("CI") == "true":
        pytest.fail(reason)
    pytest.skip(reason)


@pytest.fixture
def store(tmp_path: Path) -> Store:
    return Store(tmp_path / "capplan.duckdb")


@pytest.fixture
def demo_target() -> Iterator[DemoTargetProcess]:
    """The demo target with a fixed 200 rps capacity: 4 workers, 20 ms fixed service time."""
    config = TargetConfig(workers=4, service_ms=20.0, service_cv=0.0, queue_limit=100, seed=1)
    target = start_demo_target(config)
    try:
        yield target
    finally:
        target.stop()


# Workers run as the test's own user: the default 'nobody' cannot read files
# under pytest's private tmp_path.
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
    {limit_zone}
    server {{
        listen 127.0.0.1:{port};
        root {root}/www;
        location / {{
            {limit_rule}
        }}
        {extra_locations}
    }}
}}
"""


@contextmanager
def running_nginx(
    root: Path,
    rate_limit_rps: int | None = None,
    files: dict[str, str | bytes] | None = None,
    extra_locations: str = "",
) -> Iterator[str]:
    """Run nginx on 127.0.0.1 serving ``files`` (path -> text or bytes) and yield its base URL.

    With ``rate_limit_rps``, every request beyond that rate (and a burst of
    20) gets a 503 response, which gives the server a known capacity.
    ``extra_locations`` is added to the server block as it is, for example
    ``location = /status { stub_status; }``.
    """
    binary = require_binary("nginx", "/usr/sbin/nginx")
    (root / "www").mkdir(parents=True)
    for name, content in {"index.html": "ok\n", **(files or {})}.items():
        if isinstance(content, bytes):
            (root / "www" / name).write_bytes(content)
        else:
            (root / "www" / name).write_text(content)
    port = free_port()
    limit_zone = limit_rule = ""
    if rate_limit_rps is not None:
        limit_zone = f"limit_req_zone $binary_remote_addr zone=fixed:1m rate={rate_limit_rps}r/s;"
        limit_rule = "limit_req zone=fixed burst=20 nodelay; limit_req_status 503;"
    conf = root / "nginx.conf"
    conf.write_text(
        NGINX_CONF.format(
            user=getpass.getuser(),
            root=root,
            port=port,
            limit_zone=limit_zone,
            limit_rule=limit_rule,
            extra_locations=extra_locations,
        )
    )
    process = subprocess.Popen(
        [binary, "-p", str(root), "-c", str(conf), "-e", str(root / "error.log")],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    url = f"http://127.0.0.1:{port}/"
    try:
        deadline = time.monotonic() + SERVER_START_TIMEOUT_S
        while True:
            if process.poll() is not None:
                pytest.fail(f"nginx exited with {process.returncode}: {process.stderr.read().decode() if process.stderr else ''}")
            try:
                if httpx.get(url, timeout=1.0).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"nginx did not answer on {url} within {SERVER_START_TIMEOUT_S:.0f} s")
            time.sleep(0.1)
        # Let a limiter's bucket refill after the readiness requests.
        time.sleep(0.5)
        yield url
    finally:
        process.terminate()
        try:
            process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@pytest.fixture
def nginx_rate_limited(tmp_path: Path) -> Iterator[tuple[str, float]]:
    """nginx on 127.0.0.1 that serves a static page at most 200 requests/s (503 beyond).

    Yields the URL and the known limit in requests/s.
    """
    with running_nginx(tmp_path / "nginx", rate_limit_rps=200) as url:
        yield url, 200.0


@pytest.fixture
def nginx_static(tmp_path: Path) -> Iterator[str]:
    """nginx on 127.0.0.1 serving small pages: /, /health, /search, /login, /checkout, /profile."""
    files = {name: f"{name} ok\n" for name in ("health", "search", "login", "checkout", "profile")}
    with running_nginx(tmp_path / "nginx", files=files) as url:
        yield url
