"""Hard limits on a load test, checked before anything is sent.

They bound what one capplan invocation may offer, so a typo such as an extra
zero cannot flood a service. Raise them in code, not by flag, if a real test
needs more.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from capplan.errors import ConfigError

if TYPE_CHECKING:
    from loadprobe.generator import GeneratorConfig, Stage

__all__ = ["MAX_RATE_RPS", "MAX_USERS", "MAX_STAGES", "MAX_STAGE_DURATION_S", "MAX_TOTAL_DURATION_S", "MAX_IN_FLIGHT", "MAX_WORKERS", "check_stage_limits"]

MAX_RATE_RPS = 50_000.0
MAX_USERS = 20_000.0
MAX_STAGES = 200
MAX_STAGE_DURATION_S = 3600.0
MAX_TOTAL_DURATION_S = 6 * 3600.0
MAX_IN_FLIGHT = 20_000
MAX_WORKERS = 64


def check_stage_limits(stages: Sequence["Stage"], generator: "GeneratorConfig") -> None:
    """Raise ConfigError when a plan exceeds a hard limit, naming the value and the limit."""
    if not stages:
        raise ConfigError("the plan has no stages")
    if len(stages) > MAX_STAGES:
        raise ConfigError(f"the plan has {len(stages)} stages, more than the limit of {MAX_STAGES}")
    total_s = 0.0
    for index, stage in enumerate(stages):
        peak = max(stage.start, stage.end)
        if stage.model == "open" and peak > MAX_RATE_RPS:
            raise ConfigError(f"stage {index + 1} offers {peak:g} rps, above the limit of {MAX_RATE_RPS:g} rps")
        if stage.model == "closed" and peak > MAX_USERS:
            raise ConfigError(f"stage {index + 1} runs {peak:g} users, above the limit of {MAX_USERS:g}")
        if not 1.0 <= stage.duration_s <= MAX_STAGE_DURATION_S:
            raise ConfigError(
                f"stage {index + 1} lasts {stage.duration_s:g} s, outside 1 s..{MAX_STAGE_DURATION_S:g} s"
            )
        total_s += stage.duration_s
    if total_s > MAX_TOTAL_DURATION_S:
        raise ConfigError(f"the plan lasts {total_s:g} s, above the limit of {MAX_TOTAL_DURATION_S:g} s")
    if not 1 <= generator.max_in_flight <= MAX_IN_FLIGHT:
        raise ConfigError(f"max in flight {generator.max_in_flight} is outside 1..{MAX_IN_FLIGHT}")
    if not 1 <= generator.workers <= MAX_WORKERS:
        raise ConfigError(f"workers {generator.workers} is outside 1..{MAX_WORKERS}")
    if not generator.timeout_s > 0:
        raise ConfigError(f"timeout {generator.timeout_s:g} s must be positive")
