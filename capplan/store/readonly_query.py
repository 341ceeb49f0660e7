"""Read-only access to the store: the app's reads and the guarded query runner behind ``capplan sql``.

Every connection opened here is read-only, has DuckDB's external access
switched off (no file reads or writes besides the store itself, no ATTACH, no
extension loading) and locks its configuration, so a query cannot switch the
guard off again with ``SET``. :func:`run_query` adds a statement allow-list, a
row limit and a time limit on top of that. The app's SQL page and ``capplan
sql`` both call it, so they accept and reject the same queries.

DuckDB lets one process write a file while nobody else holds it, and a
read-only open fails while a writer holds the lock. Readers therefore retry a
lock conflict for READ_LOCK_RETRY_S, which covers the short transactions of
capplan's writers, and then raise StoreBusyError, which the app turns into a
notice over its last good data.

Within one process, DuckDB refuses to open a file with a configuration that
differs from the connections already open on it. :data:`CONNECTION_GUARD`
therefore lets the app's reads share the file, and makes the app's one write
(saving a scenario) wait until no read connection is open.
"""

from __future__ import annotations

import logging
import re
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import duckdb
import pandas as pd
import pyarrow as pa

from capplan.errors import CapplanError, StoreError
from capplan.store.connection import Store
from capplan.store.schema import SCHEMA_VERSION, current_version

__all__ = [
    "DEFAULT_ROW_LIMIT",
    "DEFAULT_TIMEOUT_S",
    "ALLOWED_STATEMENTS_TEXT",
    "CONNECTION_GUARD",
    "QueryError",
    "QueryRejectedError",
    "QueryTimeoutError",
    "StoreBusyError",
    "QueryResult",
    "ReadOnlyStore",
    "check_query",
    "run_query",
    "describe_schema",
    "table_names",
]

logger = logging.getLogger(__name__)

DEFAULT_ROW_LIMIT = 10_000
MAX_ROW_LIMIT = 1_000_000
DEFAULT_TIMEOUT_S = 10.0
MAX_TIMEOUT_S = 600.0
READ_LOCK_RETRY_S = 2.0
READ_LOCK_RETRY_INTERVAL_S = 0.05
ARROW_BATCH_ROWS = 2048
# NOTE: a guessed bound, so that one analyst query cannot take the memory of a
# machine shared with probes and the app. Queries that need more fail with
# DuckDB's out-of-memory error, which names the limit.
QUERY_MEMORY_LIMIT = "2GB"

READ_ONLY_CONFIG: dict[str, Any] = {
    "enable_external_access": False,
    "autoinstall_known_extensions": False,
    "autoload_known_extensions": False,
    "memory_limit": QUERY_MEMORY_LIMIT,
    # Set last: every later SET fails, including SET enable_external_access = true.
    "lock_configuration": True,
}

ALLOWED_STATEMENTS_TEXT = (
    "SELECT, WITH, VALUES, FROM, DESCRIBE, SHOW, SUMMARIZE, EXPLAIN and PRAGMA table_info / show_tables"
)
_ALLOWED_PRAGMAS = frozenset({"table_info", "show_tables", "show_tables_expanded", "show", "database_size", "version"})
_PRAGMA_NAME = re.compile(r"^\s*pragma\s+([a-z_]+)", re.IGNORECASE)
_EXPLAIN_PREFIX = re.compile(r"^\s*explain\s+(analyze\s+)?", re.IGNORECASE)

# Why a statement type is rejected, and what to do instead.
_REJECTION_HINTS = {
    "COPY": "to save a result as a file, run 'capplan sql QUERY --csv > FILE' or use the SQL page's download button",
    "EXPORT": "to save a result as a file, run 'capplan sql QUERY --csv > FILE'",
    "ATTACH": "queries run on this store only and cannot open other databases",
    "DETACH": "queries run on this store only",
    "LOAD": "extensions cannot be installed or loaded",
    "SET": "the connection's settings are fixed",
    "VARIABLE_SET": "the connection's settings are fixed",
}
_WRITE_HINT = "the store is opened read-only here; capplan commands such as 'capplan collect' write it"


class QueryError(CapplanError):
    """A query given to ``capplan sql`` or the SQL page failed."""


class QueryRejectedError(QueryError):
    """A query that would write, change settings or reach outside the store."""


class QueryTimeoutError(QueryError):
    """A query ran longer than its time limit and was interrupted."""


class StoreBusyError(StoreError):
    """Another process held the store's write lock for longer than a reader waits."""


class _SharedExclusiveLock:
    """Many holders of the shared side at once, or one holder of the exclusive side."""

    def __init__(self) -> None:
        self._condition = threading.Condition()
        self._shared_holders = 0
        self._exclusive_held = False

    @contextmanager
    def shared(self) -> Iterator[None]:
        with self._condition:
            self._condition.wait_for(lambda: not self._exclusive_held)
            self._shared_holders += 1
        try:
            yield
        finally:
            with self._condition:
                self._shared_holders -= 1
                self._condition.notify_all()

    @contextmanager
    def exclusive(self) -> Iterator[None]:
        with self._condition:
            self._condition.wait_for(lambda: not self._exclusive_held and self._shared_holders == 0)
            self._exclusive_held = True
        try:
            yield
        finally:
            with self._condition:
                self._exclusive_held = False
                self._condition.notify_all()


CONNECTION_GUARD = _SharedExclusiveLock()


def _is_lock_conflict(exc: duckdb.Error) -> bool:
    text = str(exc).lower()
    return "lock" in text and ("conflicting" in text or "could not set" in text)


class ReadOnlyStore(Store):
    """A store opened only with guarded read-only connections.

    Unlike :meth:`Store.read`, it accepts a store whose schema is older than
    this capplan (callers check :func:`table_names` for newer tables) and an
    empty DuckDB file (version 0), and it waits only READ_LOCK_RETRY_S for a
    writer. The store functions in ``capplan.store`` accept it in place of a
    Store.
    """

    def __init__(self, path: Any = None, lock_retry_s: float = READ_LOCK_RETRY_S) -> None:
        super().__init__(path)
        self.lock_retry_s = lock_retry_s

    def __repr__(self) -> str:
        return f"ReadOnlyStore({str(self.path)!r})"

    @contextmanager
    def write(self) -> Iterator[duckdb.DuckDBPyConnection]:
        raise StoreError(f"{self!r} is read-only; open the store with Store({str(self.path)!r}) to write it")
        yield  # pragma: no cover - makes this a generator for contextmanager

    @contextmanager
    def read(self) -> Iterator[duckdb.DuckDBPyConnection]:
        """Yield a guarded read-only connection; raise StoreBusyError if a writer keeps the lock."""
        if not self.exists():
            raise StoreError(
                f"no store at {self.path}; run 'capplan demo --no-serve' or 'capplan collect' first, "
                "or pass --db with an existing file"
            )
        with CONNECTION_GUARD.shared():
            con = self._open()
            try:
                version = current_version(con)
                if version > SCHEMA_VERSION:
                    raise StoreError(
                        f"store {self.path} has schema version {version}, newer than this capplan supports "
                        f"({SCHEMA_VERSION}); upgrade capplan"
                    )
                yield con
            except duckdb.Error as exc:
                raise StoreError(f"store {self.path}: {exc}") from exc
            finally:
                con.close()

    def _open(self) -> duckdb.DuckDBPyConnection:
        deadline = time.monotonic() + self.lock_retry_s
        attempts = 0
        while True:
            attempts += 1
            try:
                return duckdb.connect(str(self.path), read_only=True, config=READ_ONLY_CONFIG)
            except duckdb.Error as exc:
                if not _is_lock_conflict(exc):
                    raise StoreError(f"cannot open store {self.path} read-only: {exc}") from exc
                if time.monotonic() >= deadline:
                    raise StoreBusyError(
                        f"store {self.path} is locked by a writing process (tried {attempts} times in "
                        f"{self.lock_retry_s:g} s); try again when the write has finished"
                    ) from exc
                logger.debug("store %s is locked by a writer; retrying the read-only open", self.path)
                time.sleep(READ_LOCK_RETRY_INTERVAL_S)


@dataclass(frozen=True)
class QueryResult:
    """The first ``row_limit`` rows of a query, and whether more rows were left out."""

    query: str
    frame: pd.DataFrame
    truncated: bool
    row_limit: int
    elapsed_s: float

    @property
    def columns(self) -> list[str]:
        return [str(column) for column in self.frame.columns]


def _parse(query: str) -> list[Any]:
    # A separate in-memory database parses, so a rejected statement gets the same
    # message whether or not the store exists.
    with duckdb.connect(":memory:", config={"enable_external_access": False}) as parser:
        try:
            return list(parser.extract_statements(query))
        except duckdb.Error as exc:
            raise QueryError(f"invalid SQL: {_first_line(exc)}") from exc


def _first_line(exc: BaseException) -> str:
    return str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__


def check_query(query: str) -> str:
    """Return the single statement in ``query`` if it is allowed, else raise QueryRejectedError.

    Allowed are reading statements (ALLOWED_STATEMENTS_TEXT). EXPLAIN is
    allowed when the statement it explains is.
    """
    if not query or not query.strip():
        raise QueryError("the query is empty; give one SELECT statement, such as 'SELECT * FROM runs LIMIT 10'")
    statements = _parse(query)
    if not statements:
        raise QueryError("the query contains no statement; give one SELECT statement, such as 'SELECT * FROM runs'")
    if len(statements) > 1:
        raise QueryRejectedError(
            f"the query contains {len(statements)} statements; give one statement at a time"
        )
    statement = statements[0]
    kind = statement.type.name
    if kind == "SELECT":
        return str(statement.query)
    if kind == "EXPLAIN":
        explained = _EXPLAIN_PREFIX.sub("", str(statement.query), count=1)
        check_query(explained)
        return str(statement.query)
    if kind == "PRAGMA":
        match = _PRAGMA_NAME.match(str(statement.query))
        name = match.group(1).lower() if match else "?"
        if name in _ALLOWED_PRAGMAS:
            return str(statement.query)
        raise QueryRejectedError(
            f"PRAGMA {name} is rejected: only reading statements are allowed ({ALLOWED_STATEMENTS_TEXT})"
        )
    hint = _REJECTION_HINTS.get(kind, _WRITE_HINT)
    raise QueryRejectedError(
        f"{_statement_keyword(statement)} statements are rejected: only reading statements are allowed "
        f"({ALLOWED_STATEMENTS_TEXT}); {hint}"
    )


def _statement_keyword(statement: Any) -> str:
    """Return the statement's first word in capitals, such as DROP or INSTALL, for messages."""
    words = str(statement.query).split()
    return words[0].upper() if words else statement.type.name


def run_query(
    store: ReadOnlyStore,
    query: str,
    row_limit: int = DEFAULT_ROW_LIMIT,
    timeout_s: float = DEFAULT_TIMEOUT_S,
) -> QueryResult:
    """Run one allowed statement on a guarded read-only connection and return its first ``row_limit`` rows.

    Raises QueryRejectedError for a statement that is not allowed or that
    tries to read or write a file, QueryTimeoutError when it runs longer than
    ``timeout_s`` (a watchdog interrupts it), QueryError for any other DuckDB
    error, and StoreError when the store cannot be opened.
    """
    if not 1 <= row_limit <= MAX_ROW_LIMIT:
        raise QueryError(f"row limit {row_limit} is invalid; give a whole number from 1 to {MAX_ROW_LIMIT:,}")
    if not 0 < timeout_s <= MAX_TIMEOUT_S:
        raise QueryError(f"time limit {timeout_s:g} s is invalid; give a number of seconds above 0 and at most {MAX_TIMEOUT_S:g}")
    statement = check_query(query)

    started = time.monotonic()
    with store.read() as con, con.cursor() as cursor:
        # A cursor of its own, because the schema check left a result open on ``con``.
        timed_out = threading.Event()

        def interrupt() -> None:
            timed_out.set()
            cursor.interrupt()

        watchdog = threading.Timer(timeout_s, interrupt)
        watchdog.daemon = True
        watchdog.start()
        try:
            table, truncated = _fetch_limited(cursor, statement, row_limit)
        except duckdb.Error as exc:
            raise _query_error(exc, timed_out.is_set(), timeout_s) from exc
        finally:
            watchdog.cancel()
    elapsed_s = time.monotonic() - started
    logger.debug("query returned %d rows in %.3f s (truncated: %s)", table.num_rows, elapsed_s, truncated)
    return QueryResult(
        query=statement,
        frame=table.to_pandas(),
        truncated=truncated,
        row_limit=row_limit,
        elapsed_s=elapsed_s,
    )


def _fetch_limited(con: duckdb.DuckDBPyConnection, statement: str, row_limit: int) -> tuple[pa.Table, bool]:
    """Stream the result in Arrow batches and stop after ``row_limit`` + 1 rows, so a huge result never materializes."""
    relation = con.sql(statement)
    if relation is None:
        return pa.table({}), False
    reader = relation.to_arrow_reader(ARROW_BATCH_ROWS)
    batches = []
    rows = 0
    for batch in reader:
        batches.append(batch)
        rows += batch.num_rows
        if rows > row_limit:
            break
    table = pa.Table.from_batches(batches, schema=reader.schema)
    return table.slice(0, row_limit), rows > row_limit


def _query_error(exc: duckdb.Error, timed_out: bool, timeout_s: float) -> QueryError:
    if timed_out or isinstance(exc, duckdb.InterruptException):
        return QueryTimeoutError(
            f"the query ran longer than its time limit of {timeout_s:g} s and was interrupted; "
            "narrow it with WHERE or LIMIT, or raise the limit (--timeout)"
        )
    if isinstance(exc, duckdb.PermissionException):
        return QueryRejectedError(
            "reading or writing files is disabled: queries can read only the tables and views of the store "
            f"({_first_line(exc)})"
        )
    if isinstance(exc, duckdb.OutOfMemoryException):
        return QueryError(
            f"the query needs more memory than its limit of {QUERY_MEMORY_LIMIT}; aggregate or filter it "
            f"({_first_line(exc)})"
        )
    if "read-only" in str(exc).lower():
        return QueryRejectedError(f"the query would change the store, which is opened read-only ({_first_line(exc)})")
    return QueryError(f"query failed: {_first_line(exc)}")


def table_names(con: duckdb.DuckDBPyConnection) -> set[str]:
    """Return the names of the tables and views in the store's main schema."""
    rows = con.execute(
        "SELECT table_name FROM information_schema.tables WHERE table_schema = 'main'"
    ).fetchall()
    return {str(row[0]) for row in rows}


def describe_schema(store: ReadOnlyStore) -> pd.DataFrame:
    """Return one row per column of every table and view: ``table_name``, ``table_type``, ``column_name``, ``data_type``."""
    with store.read() as con:
        return con.execute(
            """
            SELECT c.table_name, t.table_type, c.column_name, c.data_type
            FROM information_schema.columns c
            JOIN information_schema.tables t USING (table_catalog, table_schema, table_name)
            WHERE c.table_schema = 'main'
            ORDER BY t.table_type, c.table_name, c.ordinal_position
            """
        ).df()
