"""The DuckDB store: schema, connections, and reads and writes per table."""

from capplan.store.connection import DEFAULT_DB_PATH, Store, resolve_db_path
from capplan.store.schema import SCHEMA_VERSION

__all__ = ["DEFAULT_DB_PATH", "SCHEMA_VERSION", "Store", "resolve_db_path"]
