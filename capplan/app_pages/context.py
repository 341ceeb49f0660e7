"""What every page of the app gets: the store, its version, the user's time zone and the overview read."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from capplan.app_pages.data import StoreOverview, StoreVersion

__all__ = ["AppContext"]


@dataclass(frozen=True)
class AppContext:
    """The state one script run shares across its page: store path and version, time zone, overview."""

    db_path: Path
    version: StoreVersion
    timezone: str
    overview: StoreOverview

    @property
    def db(self) -> str:
        """The store path as the cached readers take it."""
        return str(self.db_path)
