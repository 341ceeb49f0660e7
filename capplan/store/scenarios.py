"""What-if plans saved from the app's Scenarios page, one row per name in ``plan_scenarios``.

The settings are stored as JSON text that the app encodes and decodes
(``capplan.app_pages.scenario_model.PlanSettings``), so this module does not
depend on the forecasting package.
"""

from __future__ import annotations

from datetime import datetime

import pandas as pd

from capplan.errors import ConfigError
from capplan.store.connection import Store

__all__ = ["MAX_NAME_LENGTH", "save_plan_scenario", "list_plan_scenarios", "delete_plan_scenario"]

MAX_NAME_LENGTH = 80


def _check_name(name: str) -> str:
    cleaned = name.strip()
    if not cleaned:
        raise ConfigError("the scenario name is empty; give a name such as 'launch in March'")
    if len(cleaned) > MAX_NAME_LENGTH:
        raise ConfigError(
            f"the scenario name has {len(cleaned)} characters; give a name of at most {MAX_NAME_LENGTH}"
        )
    return cleaned


def save_plan_scenario(
    store: Store,
    name: str,
    settings_json: str,
    *,
    series_name: str | None,
    run_id: int | None,
    saved_at: datetime,
) -> str:
    """Insert or replace the scenario called ``name`` and return the name as stored (trimmed).

    ``saved_at`` is naive UTC. Saving under an existing name keeps its
    ``created_at`` and replaces everything else.
    """
    cleaned = _check_name(name)
    with store.write() as con:
        con.execute(
            """
            INSERT INTO plan_scenarios (name, created_at, updated_at, series_name, run_id, settings)
            VALUES (?, ?, ?, ?, ?, ?)
            ON CONFLICT (name) DO UPDATE SET updated_at = excluded.updated_at,
                series_name = excluded.series_name, run_id = excluded.run_id, settings = excluded.settings
            """,
            [cleaned, saved_at, saved_at, series_name, run_id, settings_json],
        )
    return cleaned


def list_plan_scenarios(store: Store) -> pd.DataFrame:
    """Return the saved scenarios, most recently saved first."""
    with store.read() as con:
        return con.execute(
            "SELECT name, created_at, updated_at, series_name, run_id, settings FROM plan_scenarios "
            "ORDER BY updated_at DESC, name"
        ).df()


def delete_plan_scenario(store: Store, name: str) -> bool:
    """Delete the scenario called ``name``; return False when there was none."""
    with store.write() as con:
        row = con.execute("DELETE FROM plan_scenarios WHERE name = ? RETURNING name", [name]).fetchone()
    return row is not None
