"""The safe-load policy: how a measured breaking point becomes loads to plan with.

The defaults follow common capacity practice: plan normal operation at 60 % of
the breaking point and never exceed 80 % of it.
"""

from __future__ import annotations

from dataclasses import dataclass

from capplan.errors import ConfigError

__all__ = ["SafeLoadPolicy", "DEFAULT_POLICY"]


@dataclass(frozen=True)
class SafeLoadPolicy:
    """Fractions of the breaking point that bound safe and recommended load."""

    safe_fraction: float = 0.8
    recommended_fraction: float = 0.6

    def __post_init__(self) -> None:
        if not 0 < self.recommended_fraction <= self.safe_fraction <= 1:
            raise ConfigError(
                f"safe-load policy: need 0 < recommended ({self.recommended_fraction}) "
                f"<= safe ({self.safe_fraction}) <= 1; for example 0.6 and 0.8"
            )

    def loads(self, breaking_point_rps: float | None, highest_passed_rps: float | None) -> tuple[float | None, float | None]:
        """Return (safe_rps, recommended_rps).

        With a breaking point, both are fractions of it. Without one, they are
        fractions of the highest rate that passed, which is a lower bound
        because the real limit lies somewhere above that rate.
        """
        basis = breaking_point_rps if breaking_point_rps is not None else highest_passed_rps
        if basis is None:
            return None, None
        return basis * self.safe_fraction, basis * self.recommended_fraction


DEFAULT_POLICY = SafeLoadPolicy()
