"""The capplan commands that the app suggests when the store lacks something.

The app may read a store other than the default one, because ``capplan app
--db`` passes the path through ``CAPPLAN_DB``. The user's shell may not have
that variable set, so the suggested commands name any store other than the
default with ``--db``.
"""

from __future__ import annotations

import shlex
from pathlib import Path

from capplan.store import DEFAULT_DB_PATH

__all__ = [
    "capplan_command",
    "DEMO_COMMAND",
    "PROBE_COMMAND",
    "COLLECT_COMMAND",
    "ANALYZE_COMMAND",
    "FORECAST_COMMAND",
    "PLAN_COMMAND",
]

DEMO_COMMAND = "capplan demo --no-serve"
PROBE_COMMAND = (
    "capplan probe step URL --start 50 --step 50 --max 500 --step-duration 30s "
    "--slo-p95 500ms --max-error-rate 1%"
)
COLLECT_COMMAND = "capplan collect --csv FILE --name NAME"
ANALYZE_COMMAND = "capplan analyze --prometheus URL"
FORECAST_COMMAND = "capplan forecast NAME --horizon 12mo"
PLAN_COMMAND = "capplan plan --run RUN --demand NAME"


def capplan_command(command: str, db_path: Path) -> str:
    """Append ``--db PATH`` to a command unless the store is the default one."""
    if db_path.absolute() == DEFAULT_DB_PATH.absolute():
        return command
    return f"{command} --db {shlex.quote(str(db_path))}"
