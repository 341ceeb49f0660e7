"""The ``capplan app`` command: serve the Streamlit app on this machine.

``streamlit run`` runs in a child process on the packaged
``capplan/app_entry/capplan_app.py``, bound to 127.0.0.1 unless ``--address``
names another address. The store path reaches the app through ``CAPPLAN_DB``. The child's
output goes to stderr, so stdout stays free for ``--json``.
"""

from __future__ import annotations

import argparse
import errno
import ipaddress
import logging
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from collections.abc import Callable
from types import FrameType
from typing import Any

import httpx

from capplan.cli.output import print_json
from capplan.errors import CapplanError, ConfigError
from capplan.store import resolve_db_path

__all__ = [
    "APP_FILE",
    "DEFAULT_ADDRESS",
    "DEFAULT_PORT",
    "register",
    "streamlit_command",
    "serve_app",
    "stop_app",
    "wait_until_serving",
    "warn_if_exposed",
]

logger = logging.getLogger(__name__)

# The script sits alone in its folder, because streamlit puts that folder first on sys.path.
APP_FILE = Path(__file__).resolve().parent.parent / "app_entry" / "capplan_app.py"
DEFAULT_PORT = 8501
DEFAULT_ADDRESS = "127.0.0.1"
# A cold start imports streamlit, pandas, altair and duckdb before the health
# check responds, so the limit leaves room for a slow disk or a busy machine.
STARTUP_TIMEOUT_S = 60.0
HEALTH_POLL_INTERVAL_S = 0.5
HEALTH_REQUEST_TIMEOUT_S = 2.0
SHUTDOWN_TIMEOUT_S = 10.0
KILL_WAIT_S = 5.0          # how long a SIGKILLed streamlit gets to be reaped before capplan gives up on it
EXIT_POLL_INTERVAL_S = 0.1
WILDCARD_ADDRESSES = ("0.0.0.0", "::", "")


def register(subparsers: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    parser = subparsers.add_parser(
        "app",
        parents=[common],
        help="serve the Streamlit app on this machine",
        description="Serve the Streamlit app: the newest plan and its runway, the demand forecast, load-test "
        "results, what-if scenarios, bottlenecks and a read-only SQL page. It opens the store read-only, "
        "except that the Scenarios page's Save button stores a named scenario. Ctrl-C stops it.",
    )
    parser.add_argument(
        "--port", type=_port, default=DEFAULT_PORT, help=f"TCP port to listen on (default: {DEFAULT_PORT})"
    )
    parser.add_argument(
        "--address",
        default=DEFAULT_ADDRESS,
        help=f"IP address or host name to listen on (default: {DEFAULT_ADDRESS}, reachable from this machine only)",
    )
    parser.set_defaults(handler=run_app_command)


def _port(text: str) -> int:
    try:
        port = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid port {text!r}; give a number from 1 to 65535") from None
    if not 1 <= port <= 65535:
        raise argparse.ArgumentTypeError(f"invalid port {port}; give a number from 1 to 65535")
    return port


def run_app_command(args: argparse.Namespace) -> int:
    """Serve the app until Ctrl-C or SIGTERM, then stop streamlit and return 0."""
    db_path = resolve_db_path(args.db).absolute()
    if not db_path.is_file():
        logger.info("no store at %s yet, so the app will show the commands that fill it", db_path)
    process = serve_app(db_path, args.port, args.address, block=False)
    if args.json:
        print_json({"url": app_url(args.address, args.port), "db": str(db_path), "pid": process.pid})
    return _block_until_stopped(process)


def app_url(address: str, port: int) -> str:
    """Return the URL that reaches the app from this machine. A wildcard address becomes 127.0.0.1."""
    host = "127.0.0.1" if address in WILDCARD_ADDRESSES else address
    if ":" in host:
        host = f"[{host}]"
    return f"http://{host}:{port}"


def warn_if_exposed(address: str) -> bool:
    """Log a WARNING and return True when ``address`` is not a loopback address."""
    if address == "localhost":
        return False
    try:
        if ipaddress.ip_address(address).is_loopback:
            return False
    except ValueError:
        pass
    logger.warning(
        "--address %s makes the app reachable from other hosts. The app has no login and shows target URLs "
        "and capacity numbers, so keep the default 127.0.0.1 unless the network is trusted.",
        address,
    )
    return True


def streamlit_command(port: int, address: str) -> list[str]:
    """Return the ``streamlit run`` command line for the packaged app file."""
    return [
        sys.executable,
        "-m",
        "streamlit",
        "run",
        str(APP_FILE),
        "--server.address",
        address,
        "--server.port",
        str(port),
        "--server.headless",
        "true",
        "--browser.gatherUsageStats",
        "false",
        # "minimal" hides the developer menu and the Deploy button, which mean nothing to a planner.
        "--client.toolbarMode",
        "minimal",
        # The packaged file does not change while it is served, so watching it only costs inotify watches.
        "--server.fileWatcherType",
        "none",
    ]


def check_port_free(address: str, port: int) -> None:
    """Raise ConfigError when ``address:port`` cannot be bound, so the user sees why before streamlit starts.

    The check sets SO_REUSEADDR except on Windows, as Streamlit 1.67's own
    bind does, so a port in TIME_WAIT counts as free. Another process can
    still take the port between this check and streamlit's bind. Streamlit
    then exits and serve_app reports it.
    """
    try:
        family, kind, protocol, _, socket_address = socket.getaddrinfo(
            address, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        )[0]
    except socket.gaierror as exc:
        raise ConfigError(f"--address {address!r} is not a valid IP address or host name: {exc}") from exc
    with socket.socket(family, kind, protocol) as probe:
        if os.name != "nt":
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(socket_address)
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                raise ConfigError(f"port {port} on {address} is already in use; pass --port with another port") from exc
            if exc.errno == errno.EADDRNOTAVAIL:
                raise ConfigError(f"--address {address} is not an address of this machine") from exc
            raise ConfigError(f"cannot listen on {address}:{port}: {exc}") from exc


def serve_app(
    db_path: str | os.PathLike[str],
    port: int = DEFAULT_PORT,
    address: str = DEFAULT_ADDRESS,
    block: bool = True,
) -> subprocess.Popen[bytes]:
    """Start streamlit on the app for the store at ``db_path`` and wait until its health check responds.

    With ``block=True`` it then waits until streamlit exits, or until Ctrl-C or
    SIGTERM stops it, and returns the finished process. With ``block=False`` it
    returns the running process, and the caller must end it with
    :func:`stop_app`. Raises CapplanError when the port is taken or streamlit
    does not become healthy within STARTUP_TIMEOUT_S, after stopping it.
    """
    warn_if_exposed(address)
    check_port_free(address, port)
    store_path = Path(db_path).absolute()
    environment = dict(os.environ, CAPPLAN_DB=str(store_path))
    command = streamlit_command(port, address)
    logger.debug("starting %s", " ".join(command))
    process = subprocess.Popen(command, env=environment, stdin=subprocess.DEVNULL, stdout=_stderr_fileno())

    url = app_url(address, port)
    try:
        wait_until_serving(url, STARTUP_TIMEOUT_S, process=process)
    except BaseException:
        stop_app(process)
        raise
    logger.info("capplan app is serving %s for store %s (Ctrl-C stops it)", url, store_path)
    if block:
        _block_until_stopped(process)
    return process


def wait_until_serving(url: str, timeout_s: float, process: subprocess.Popen[bytes] | None = None) -> None:
    """Poll ``<url>/_stcore/health`` until streamlit responds with ``ok``.

    Raises CapplanError when ``timeout_s`` passes first, or when ``process``
    is given and exits first.
    """
    health_url = f"{url.rstrip('/')}/_stcore/health"
    deadline = time.monotonic() + timeout_s
    last_problem = "no answer yet"
    # trust_env=False keeps HTTP(S)_PROXY settings from routing a local request elsewhere.
    with httpx.Client(timeout=HEALTH_REQUEST_TIMEOUT_S, trust_env=False) as client:
        while True:
            if process is not None and process.poll() is not None:
                raise CapplanError(
                    f"streamlit failed to start (exit code {process.returncode}) before serving {url}; "
                    "see its output above"
                )
            try:
                response = client.get(health_url)
                if response.status_code == 200 and response.text.strip() == "ok":
                    return
                last_problem = f"HTTP {response.status_code}"
            except httpx.HTTPError as exc:
                last_problem = f"{type(exc).__name__}: {exc}"
            if time.monotonic() >= deadline:
                raise CapplanError(
                    f"timed out after {timeout_s:g} s waiting for the app at {health_url} ({last_problem}); "
                    "see streamlit's output above"
                )
            time.sleep(HEALTH_POLL_INTERVAL_S)


def stop_app(process: subprocess.Popen[bytes], timeout_s: float = SHUTDOWN_TIMEOUT_S) -> int:
    """Stop streamlit with SIGTERM, then SIGKILL after ``timeout_s``, and return its exit code.

    Every wait is a bounded poll, never a blocking ``Popen.wait()``. A
    Ctrl-C that lands inside a blocking wait can leave the Popen's internal
    lock held, and a later blocking wait then hangs (seen once in make demo).
    Returns -9 when streamlit is still not reaped after SIGKILL.
    """
    if process.poll() is None:
        logger.debug("sending SIGTERM to streamlit (pid %d)", process.pid)
        process.terminate()
        if _wait_for_exit(process, timeout_s) is None:
            logger.warning("streamlit (pid %d) did not stop within %g s after SIGTERM; killing it", process.pid, timeout_s)
            process.kill()
            if _wait_for_exit(process, KILL_WAIT_S) is None:
                logger.error("streamlit (pid %d) was not confirmed gone %g s after SIGKILL; giving up on it", process.pid, KILL_WAIT_S)
                return -signal.SIGKILL
    return int(process.returncode)


def _wait_for_exit(process: subprocess.Popen[bytes], timeout_s: float | None) -> int | None:
    """Poll until ``process`` exits and return its exit code, or None after ``timeout_s`` (None: no limit)."""
    deadline = None if timeout_s is None else time.monotonic() + timeout_s
    while True:
        returncode = process.poll()
        if returncode is not None:
            return returncode
        if deadline is not None and time.monotonic() >= deadline:
            return None
        # Signals land here, in the sleep, rather than inside a wait that holds a lock.
        time.sleep(EXIT_POLL_INTERVAL_S)


def _stderr_fileno() -> int | None:
    """Return the file descriptor of stderr, or None when stderr is not a real file (the child then inherits stdout)."""
    try:
        return sys.stderr.fileno()
    except (AttributeError, OSError, ValueError):
        return None


class _StopRequested(Exception):
    """SIGTERM arrived while waiting for streamlit."""


def _raise_stop_requested(signum: int, frame: FrameType | None) -> None:
    raise _StopRequested


def _block_until_stopped(process: subprocess.Popen[bytes]) -> int:
    """Wait for streamlit to exit, or stop it on Ctrl-C or SIGTERM. Return 0 for a requested stop.

    Without the SIGTERM handler, terminating capplan would leave streamlit
    running and holding the port. Signal handlers can only be set in the main
    thread, so in another thread only Ctrl-C stops it.
    """
    previous_handler: signal.Handlers | Callable[[int, FrameType | None], Any] | int | None = None
    in_main_thread = threading.current_thread() is threading.main_thread()
    if in_main_thread:
        previous_handler = signal.signal(signal.SIGTERM, _raise_stop_requested)
    try:
        returncode = _wait_for_exit(process, None)
    except (KeyboardInterrupt, _StopRequested):
        logger.info("stopping the app (streamlit pid %d)", process.pid)
        returncode = stop_app(process)
        logger.info("app stopped (streamlit exit code %d)", returncode)
        return 0
    finally:
        if in_main_thread:
            # None means a handler that was not set from Python, and SIG_DFL is the closest match.
            signal.signal(signal.SIGTERM, signal.SIG_DFL if previous_handler is None else previous_handler)
    if returncode != 0:
        raise CapplanError(f"streamlit exited with code {returncode}; see its output above")
    logger.info("streamlit exited")
    return 0
