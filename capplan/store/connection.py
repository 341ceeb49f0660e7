"""Opening the DuckDB store for reading or writing.

DuckDB allows one writing process per file, and a read-only open fails while
another process holds the write lock. Connections are therefore short-lived:
each write opens the file, commits and closes, so a long probe run does not
lock out the app between steps. A lock conflict is retried for a few seconds
before it becomes a StoreError.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import duckdb

from capplan.errors import StoreError
from capplan.store.schema import SCHEMA_VERSION, current_version, migrate

__all__ = ["DEFAULT_DB_PATH", "resolve_db_path", "Store"]

logger = logging.getLogger(__name__)

DEFAULT_DB_PATH = Path("data") / "capplan.duckdb"
LOCK_RETRY_TIMEOUT_S = 10.0
LOCK_RETRY_INTERVAL_S = 0.1


def resolve_db_path(path: str | os.PathLike[str] | None = None) -> Path:
    """Return the store path: the argument, else ``$CAPPLAN_DB``, else ``data/capplan.duckdb``."""
    if path:
        return Path(path)
    env = os.environ.get("CAPPLAN_DB")
    if env:
        return Path(env)
    return DEFAULT_DB_PATH


def _is_lock_conflict(exc: duckdb.Error) -> bool:
    text = str(exc).lower()
    return "lock" in text and ("conflicting" in text or "could not set" in text)


class Store:
    """A capplan DuckDB file. Cheap to create; it opens connections on demand."""

    def __init__(self, path: str | os.PathLike[str] | None = None) -> None:
        self.path = resolve_db_path(path)
        self._migrated = False

    def __repr__(self) -> str:
        return f"Store({str(self.path)!r})"

    def exists(self) -> bool:
        return self.path.is_file()

    def _connect(self, read_only: bool) -> duckdb.DuckDBPyConnection:
        deadline = time.monotonic() + LOCK_RETRY_TIMEOUT_S
        while True:
            try:
                return duckdb.connect(str(self.path), read_only=read_only)
            except duckdb.Error as exc:
                if _is_lock_conflict(exc) and time.monotonic() < deadline:
                    logger.debug("store %s is locked by another process; retrying", self.path)
                    time.sleep(LOCK_RETRY_INTERVAL_S)
                    continue
                if _is_lock_conflict(exc):
                    raise StoreError(
                        f"store {self.path} is locked by another writing process; "
                        "wait for it to finish or pass --db with another file"
                    ) from exc
                raise StoreError(f"cannot open store {self.path}: {exc}") from exc

    @contextmanager
    def write(self) -> Iterator[duckdb.DuckDBPyConnection]:
        """Yield a read-write connection inside one transaction; commit on success.

        The file and its folder are created on first use and the schema is
        migrated to the current version.
        """
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StoreError(f"cannot create the folder for store {self.path}: {exc}") from exc
        con = self._connect(read_only=False)
        try:
            if not self._migrated:
                migrate(con)
                self._migrated = True
            con.execute("BEGIN TRANSACTION")
            try:
                yield con
            except BaseException:
                con.execute("ROLLBACK")
                raise
            con.execute("COMMIT")
        except duckdb.Error as exc:
            raise StoreError(f"store {self.path}: {exc}") from exc
        finally:
            con.close()

    @contextmanager
    def read(self) -> Iterator[duckdb.DuckDBPyConnection]:
        """Yield a read-only connection; the store must exist and be migrated."""
        if not self.exists():
            raise StoreError(
                f"no store at {self.path}; run 'capplan demo --no-serve' or 'capplan collect' first, "
                "or pass --db with an existing file"
            )
        con = self._connect(read_only=True)
        try:
            version = current_version(con)
            if version != SCHEMA_VERSION:
                raise StoreError(
                    f"store {self.path} has schema version {version}, expected {SCHEMA_VERSION}; "
                    "run any writing capplan command (such as 'capplan collect') to migrate it"
                )
            yield con
        except duckdb.Error as exc:
            raise StoreError(f"store {self.path}: {exc}") from exc
        finally:
            con.close()
