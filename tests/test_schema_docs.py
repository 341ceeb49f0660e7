"""docs/schema.md against the real schema: every table, view and column is documented, and every example query runs.

The queries run through a read-only connection (Store.read()) on a store
built by the test, and each must return rows, so an example that silently
matches nothing fails too.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from test_review_store import ReviewStore, build_review_store

from capplan.store import Store

REPO_ROOT = Path(__file__).resolve().parent.parent
SCHEMA_DOC = REPO_ROOT / "docs" / "schema.md"
MIN_EXAMPLE_QUERIES = 12

_HEADING = re.compile(r"^### `(?P<name>[a-z_0-9]+)`\s*$")
_COLUMN_ROW = re.compile(r"^\| `(?P<column>[a-z_0-9]+)` \| (?P<type>[A-Z]+) \|")
_SQL_BLOCK = re.compile(r"```sql\n(?P<sql>.*?)```", re.DOTALL)


def documented_columns() -> dict[str, list[tuple[str, str]]]:
    """Return each documented table or view with its (column, type) rows, in the page's order."""
    documented: dict[str, list[tuple[str, str]]] = {}
    current: str | None = None
    for line in SCHEMA_DOC.read_text(encoding="utf-8").splitlines():
        heading = _HEADING.match(line)
        if heading:
            current = heading.group("name")
            documented[current] = []
            continue
        if line.startswith("## "):
            current = None
        row = _COLUMN_ROW.match(line)
        if row and current is not None:
            documented[current].append((row.group("column"), row.group("type")))
    return documented


def example_queries() -> list[str]:
    text = SCHEMA_DOC.read_text(encoding="utf-8")
    examples = text[text.index("## Example queries") :]
    return [match.group("sql").strip() for match in _SQL_BLOCK.finditer(examples)]


def store_columns(store: Store) -> dict[str, list[tuple[str, str]]]:
    with store.read() as con:
        rows = con.execute(
            """
            SELECT table_name, column_name, data_type FROM information_schema.columns
            WHERE table_schema = 'main' ORDER BY table_name, ordinal_position
            """
        ).fetchall()
    columns: dict[str, list[tuple[str, str]]] = {}
    for table, column, data_type in rows:
        columns.setdefault(table, []).append((column, data_type))
    return columns


@pytest.fixture(scope="module")
def review_store(tmp_path_factory: pytest.TempPathFactory) -> ReviewStore:
    built = build_review_store(tmp_path_factory.mktemp("docs") / "docs.duckdb")
    with built.store.write() as con:
        # The cost example needs a priced plan, which the review store does not make.
        con.execute("UPDATE plans SET price_per_instance_hour = 0.25 WHERE plan_id = ?", [built.new_plan_id])
        con.execute("UPDATE plan_months SET hours = 720, cost = instances * 720 * 0.25 WHERE plan_id = ?", [built.new_plan_id])
    return built


def test_schema_docs_every_table_and_view(tmp_path: Path) -> None:
    store = Store(tmp_path / "fresh.duckdb")
    with store.write():
        pass
    actual = store_columns(store)
    documented = documented_columns()

    assert sorted(set(actual) - set(documented)) == [], "tables or views missing from docs/schema.md"
    assert sorted(set(documented) - set(actual)) == [], "docs/schema.md documents tables or views that do not exist"


def test_schema_docs_every_column_and_type(tmp_path: Path) -> None:
    store = Store(tmp_path / "fresh.duckdb")
    with store.write():
        pass
    actual = store_columns(store)
    documented = documented_columns()
    for name, columns in actual.items():
        assert documented.get(name) == columns, f"docs/schema.md: columns or types of {name} differ from the store"


def test_schema_docs_examples_run(review_store: ReviewStore) -> None:
    queries = example_queries()
    assert len(queries) >= MIN_EXAMPLE_QUERIES
    with review_store.store.read() as con:
        for sql in queries:
            rows = con.execute(sql).fetchall()
            assert rows, f"example query returned no rows:\n{sql}"


def test_schema_docs_examples_read_only(review_store: ReviewStore) -> None:
    for sql in example_queries():
        first_word = sql.split(None, 1)[0].upper()
        assert first_word in ("SELECT", "WITH"), f"example query is not a read:\n{sql}"
