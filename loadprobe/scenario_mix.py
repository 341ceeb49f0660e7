"""A weighted mix of request kinds, picked at random per arrival."""

from __future__ import annotations

import bisect
import itertools
import random
from collections.abc import Sequence

from capplan.errors import ConfigError
from loadprobe.http_engine import DEFAULT_REQUEST, RequestSpec

__all__ = ["ScenarioMix"]


class ScenarioMix:
    """Pick a :class:`RequestSpec` with probability proportional to its weight."""

    def __init__(self, specs: Sequence[RequestSpec] = (DEFAULT_REQUEST,)) -> None:
        if not specs:
            raise ConfigError("a plan needs at least one scenario; add a [[scenarios]] table")
        names = [spec.name for spec in specs]
        duplicates = sorted({name for name in names if names.count(name) > 1})
        if duplicates:
            raise ConfigError(f"scenario names must be unique; {', '.join(duplicates)} appear more than once")
        for spec in specs:
            if not spec.weight > 0:
                raise ConfigError(f"scenario {spec.name!r}: weight {spec.weight:g} must be positive")
        self.specs = tuple(specs)
        total = sum(spec.weight for spec in specs)
        self._cumulative = [value / total for value in itertools.accumulate(spec.weight for spec in specs)]

    @property
    def names(self) -> list[str]:
        return [spec.name for spec in self.specs]

    def share(self, name: str) -> float:
        """Return the expected fraction of requests that go to scenario ``name``."""
        total = sum(spec.weight for spec in self.specs)
        return sum(spec.weight for spec in self.specs if spec.name == name) / total

    def pick(self, rng: random.Random) -> RequestSpec:
        if len(self.specs) == 1:
            return self.specs[0]
        index = bisect.bisect_right(self._cumulative, rng.random())
        return self.specs[min(index, len(self.specs) - 1)]
