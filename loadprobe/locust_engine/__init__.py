"""Stepped load tests on Locust's master/worker mode, stored like the built-in engine's runs (tool 'locust')."""

from loadprobe.locust_engine.locustfile import USER_RPS, LocustStep, locustfile_text, plan_steps
from loadprobe.locust_engine.step_reports import StepLogReader, StepStats, merge_reports, step_log_line
from loadprobe.locust_engine.runner import LocustOptions, parse_host_port, run_locust_step, run_locust_worker
from loadprobe.locust_engine.verdict import LATENCY_NOTE, judge_locust_step

__all__ = [
    "LATENCY_NOTE",
    "USER_RPS",
    "LocustOptions",
    "LocustStep",
    "StepLogReader",
    "StepStats",
    "judge_locust_step",
    "locustfile_text",
    "merge_reports",
    "parse_host_port",
    "plan_steps",
    "run_locust_step",
    "run_locust_worker",
    "step_log_line",
]
