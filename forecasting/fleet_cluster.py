"""Run fleet forecasts on a Dask cluster: connect to its scheduler and watch its workers.

The lead process connects a ``distributed.Client`` to a running scheduler and
hands :mod:`forecasting.fleet` a ``concurrent.futures`` executor from
``Client.get_executor()``, so the cluster runs the same task function as the
local process pool. When a worker process dies, the scheduler reruns its tasks
on the other workers; a task that was running on
``distributed.scheduler.allowed-failures`` + 1 workers that died (4 with
Dask's default) fails with ``KilledWorker``. The watch logs each change in the
number of workers, because the client gets no event for those reruns.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from concurrent.futures import Executor
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from capplan.errors import ConfigError

__all__ = ["CONNECT_TIMEOUT_S", "WORKER_WAIT_S", "ClusterWatch", "dask_executor"]

logger = logging.getLogger(__name__)

CONNECT_TIMEOUT_S = 5.0  # seconds to connect to the scheduler, and to reconnect after a lost connection
WORKER_WAIT_S = 10.0  # seconds a scheduler without workers gets for the first one to join
CLOSE_TIMEOUT_S = 10.0
WATCH_INTERVAL_S = 2.0  # minimum seconds between two requests for the scheduler's worker count


@dataclass
class ClusterWatch:
    """Worker count of a connected cluster, logged whenever it changes between two checks."""

    client: Any
    address: str
    workers: int
    threads: int
    _checked_at: float = 0.0

    def check(self) -> str | None:
        """Return why the cluster cannot finish the run, or None; log a change in the number of workers.

        The client's status is read on every call. The scheduler is queried
        for its worker count at most once per WATCH_INTERVAL_S.
        """
        status = str(self.client.status)
        if status not in ("running", "connecting"):  # "connecting": Dask retries for CONNECT_TIMEOUT_S, then closes
            logger.error("lost the connection to the Dask scheduler %s (client status %s)", self.address, status)
            return f"ConnectionError: lost the connection to the Dask scheduler {self.address}"
        now = time.monotonic()
        if now - self._checked_at < WATCH_INTERVAL_S:
            return None
        self._checked_at = now
        info = self.client.scheduler_info(n_workers=0)  # totals only, without a row per worker
        workers = int(info.get("n_workers", 0))
        if workers == 0 and self.workers > 0:
            logger.warning(
                "Dask scheduler %s lost all its workers; start one with 'dask worker %s'", self.address, self.address
            )
        elif workers < self.workers:
            logger.warning(
                "Dask scheduler %s lost %d worker(s), %d left; it reruns their unfinished tasks on the others",
                self.address, self.workers - workers, workers,
            )
        elif workers > self.workers:
            logger.info("Dask scheduler %s gained %d worker(s), %d now", self.address, workers - self.workers, workers)
        self.workers = workers
        return None


@contextmanager
def dask_executor(address: str) -> Iterator[tuple[Executor, ClusterWatch]]:
    """Connect to the Dask scheduler at ``address`` and yield an executor on it with a watch of its workers.

    Raises ConfigError when Dask is not installed, the address is invalid, the
    scheduler does not respond within CONNECT_TIMEOUT_S, or no worker joins
    within WORKER_WAIT_S.
    """
    try:
        from distributed import Client
    except ImportError as exc:
        raise ConfigError(
            f"--cluster {address} needs Dask's distributed scheduler, which is not installed; "
            "run 'pip install \"dask[distributed]\"' or drop --cluster to use local processes"
        ) from exc

    try:
        client = Client(address, timeout=CONNECT_TIMEOUT_S, set_as_default=False)
    except ValueError as exc:
        raise ConfigError(
            f"--cluster {address!r} is invalid ({exc}); give the scheduler address, such as tcp://127.0.0.1:8786"
        ) from exc
    except OSError as exc:
        raise ConfigError(
            f"cannot reach the Dask scheduler at {address} (timed out after {CONNECT_TIMEOUT_S:g} s); "
            f"start one with 'dask scheduler' and workers with 'dask worker {address}', "
            "or drop --cluster to use local processes"
        ) from exc

    try:
        watch = _connected_watch(client, address)
        # pure=False: every submission is a new task, so two runs never share a cached result on the cluster.
        yield client.get_executor(pure=False), watch
    finally:
        client.close(timeout=CLOSE_TIMEOUT_S)
        logger.info("disconnected from Dask scheduler %s", address)


def _connected_watch(client: Any, address: str) -> ClusterWatch:
    try:
        client.wait_for_workers(1, timeout=WORKER_WAIT_S)
    except TimeoutError as exc:  # distributed's WorkerStartTimeoutError subclasses it
        raise ConfigError(
            f"the Dask scheduler at {address} has no workers after {WORKER_WAIT_S:g} s; "
            f"start them with 'dask worker {address}', or drop --cluster to use local processes"
        ) from exc
    info = client.scheduler_info(n_workers=0)
    watch = ClusterWatch(client, address, int(info["n_workers"]), int(info["total_threads"]))
    logger.info("connected to Dask scheduler %s: %d worker(s), %d thread(s)", address, watch.workers, watch.threads)
    return watch
