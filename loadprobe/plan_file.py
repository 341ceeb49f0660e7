"""Load-test plans in TOML: k6-style stages and weighted request scenarios.

Example::

    url = "http://127.0.0.1:8080/"
    model = "open"                 # open (arrival rate) or closed (users)
    arrivals = "poisson"           # open model: uniform or poisson
    think_time = "1s..3s"          # closed model: fixed ("2s") or a range
    thresholds = ["p95<500", "error_rate<1%", "checkout.p99<1000"]
    abort_on_fail = true           # stop at the first breach and exit 99
    slo_p95 = "500ms"              # SLO that marks a step failed (not an abort)
    max_error_rate = "1%"

    [[stages]]                     # each stage ramps from the previous target
    duration = "30s"
    target = 100                   # requests/s (open) or users (closed)

    [[scenarios]]
    name = "search"
    path = "/search?q=disk"
    weight = 25
    expected_status = 200

Every value is checked against the hard limits before anything is sent.
"""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from capplan.errors import ConfigError, InputDataError
from capplan.units import parse_duration_s, parse_fraction, parse_latency_ms
from loadprobe.arrivals import ARRIVAL_KINDS
from loadprobe.generator import GeneratorConfig, Stage
from loadprobe.http_engine import RequestSpec
from loadprobe.limits import check_stage_limits
from loadprobe.thresholds import Threshold, parse_threshold

__all__ = ["LoadPlan", "read_plan", "parse_plan", "parse_think_time"]

_TOP_KEYS = {
    "url", "model", "arrivals", "think_time", "max_in_flight", "timeout", "workers", "engine",
    "abort_on_fail", "grace", "start_target", "thresholds", "stages", "scenarios", "slo_p95", "max_error_rate",
}  # fmt: skip
_SCENARIO_KEYS = {"name", "method", "path", "headers", "body", "expected_status", "expected_body", "weight"}
_METHODS = {"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"}


@dataclass(frozen=True)
class LoadPlan:
    """A parsed plan: stages to run, how to generate them, and what must hold."""

    stages: tuple[Stage, ...]
    generator: GeneratorConfig
    thresholds: tuple[Threshold, ...]
    abort_on_fail: bool
    grace_s: float
    slo_p95_ms: float | None = None
    max_error_rate: float | None = None


def parse_think_time(text: str | float) -> tuple[float, float]:
    """Parse ``2s`` or ``1s..3s`` into a (low, high) range in seconds."""
    if isinstance(text, (int, float)):
        if text < 0:
            raise ConfigError(f"think_time {text!r} must not be negative")
        return float(text), float(text)
    if re.fullmatch(r"\s*0*\.?0*\s*(ms|s)?\s*", text):
        return 0.0, 0.0  # no think time: users send back to back
    if ".." in text:
        low_text, high_text = text.split("..", 1)
        low = parse_duration_s(low_text, "think_time")
        high = parse_duration_s(high_text, "think_time")
        if high < low:
            raise ConfigError(f"think_time {text!r}: the upper end is below the lower end; write it as low..high")
        return low, high
    value = parse_duration_s(text, "think_time")
    return value, value


def _scenario(index: int, table: dict[str, Any]) -> RequestSpec:
    unknown = set(table) - _SCENARIO_KEYS
    if unknown:
        raise ConfigError(f"scenario {index + 1}: unknown key(s) {', '.join(sorted(unknown))}; known: {', '.join(sorted(_SCENARIO_KEYS))}")
    name = str(table.get("name", f"scenario{index + 1}"))
    method = str(table.get("method", "GET")).upper()
    if method not in _METHODS:
        raise ConfigError(f"scenario {name!r}: method {method!r} is not one of {', '.join(sorted(_METHODS))}")
    headers = table.get("headers", {})
    if not isinstance(headers, dict):
        raise ConfigError(f"scenario {name!r}: headers must be a table such as {{ Accept = \"application/json\" }}")
    body = table.get("body")
    expected_status = table.get("expected_status")
    if expected_status is not None and not (isinstance(expected_status, int) and 100 <= expected_status <= 599):
        raise ConfigError(f"scenario {name!r}: expected_status {expected_status!r} is not an HTTP status such as 200")
    return RequestSpec(
        name=name,
        method=method,
        path=str(table.get("path", "")),
        headers=tuple((str(key), str(value)) for key, value in headers.items()),
        body=None if body is None else str(body).encode(),
        expected_status=expected_status,
        expected_body=None if table.get("expected_body") is None else str(table["expected_body"]),
        weight=float(table.get("weight", 1.0)),
    )


def parse_plan(data: dict[str, Any], url: str | None = None, source: str = "plan") -> LoadPlan:
    """Build a plan from parsed TOML; ``url`` overrides the plan's own."""
    unknown = set(data) - _TOP_KEYS
    if unknown:
        raise ConfigError(f"{source}: unknown key(s) {', '.join(sorted(unknown))}; known: {', '.join(sorted(_TOP_KEYS))}")
    base_url = url or data.get("url")
    if not base_url:
        raise ConfigError(f"{source}: no target; set url = \"http://HOST:PORT/\" in the plan or pass --url")
    model = data.get("model", "open")
    if model not in ("open", "closed"):
        raise ConfigError(f"{source}: model {model!r} is not 'open' or 'closed'")
    arrivals = data.get("arrivals", "uniform")
    if arrivals not in ARRIVAL_KINDS:
        raise ConfigError(f"{source}: arrivals {arrivals!r} is not one of {', '.join(ARRIVAL_KINDS)}")

    stage_tables = data.get("stages") or []
    if not stage_tables:
        raise ConfigError(f"{source}: no [[stages]]; add at least one with duration and target")
    stages = []
    previous = float(data.get("start_target", 0.0))
    for index, table in enumerate(stage_tables):
        unknown_stage_keys = set(table) - {"duration", "target"}
        if unknown_stage_keys:
            raise ConfigError(
                f"{source}: stage {index + 1}: unknown key(s) {', '.join(sorted(unknown_stage_keys))}; "
                "a stage has duration and target, and keys above the first [[stages]] belong to the whole plan"
            )
        if "duration" not in table or "target" not in table:
            raise ConfigError(f"{source}: stage {index + 1} needs both duration and target")
        target = float(table["target"])
        if target < 0:
            raise ConfigError(f"{source}: stage {index + 1} target {target:g} must not be negative")
        duration_s = parse_duration_s(table["duration"], f"stage {index + 1} duration")
        stages.append(Stage(model=model, start=previous, end=target, duration_s=duration_s))
        previous = target

    specs = tuple(_scenario(index, table) for index, table in enumerate(data.get("scenarios") or [{}]))
    generator = GeneratorConfig(
        base_url=str(base_url),
        specs=specs,
        engine=str(data.get("engine", "aiohttp")),
        timeout_s=parse_duration_s(data.get("timeout", "5s"), "timeout"),
        max_in_flight=int(data.get("max_in_flight", 1000)),
        arrivals=arrivals,
        think_time_s=parse_think_time(data.get("think_time", 0.0)),
        workers=int(data.get("workers", 1)),
    )
    check_stage_limits(stages, generator)
    thresholds = tuple(parse_threshold(str(text)) for text in data.get("thresholds", []))
    names = {spec.name for spec in specs}
    for threshold in thresholds:
        if threshold.scenario is not None and threshold.scenario not in names:
            raise ConfigError(
                f"{source}: threshold {threshold.text!r} names scenario {threshold.scenario!r}, "
                f"which the plan does not define; scenarios: {', '.join(sorted(names))}"
            )
    return LoadPlan(
        stages=tuple(stages),
        generator=generator,
        thresholds=thresholds,
        abort_on_fail=bool(data.get("abort_on_fail", True)),
        grace_s=parse_duration_s(data.get("grace", "5s"), "grace"),
        slo_p95_ms=None if data.get("slo_p95") is None else parse_latency_ms(data["slo_p95"], "slo_p95"),
        max_error_rate=None if data.get("max_error_rate") is None else parse_fraction(data["max_error_rate"], "max_error_rate"),
    )


def read_plan(path: str | Path, url: str | None = None) -> LoadPlan:
    """Read and check a TOML plan file."""
    source = Path(path)
    try:
        data = tomllib.loads(source.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise InputDataError(f"plan file {source} not found; check the path") from exc
    except tomllib.TOMLDecodeError as exc:
        raise InputDataError(f"plan file {source} is not valid TOML: {exc}") from exc
    return parse_plan(data, url=url, source=str(source))
