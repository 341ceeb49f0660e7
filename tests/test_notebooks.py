"""Both notebooks executed by papermill on a real Jupyter kernel, against a store built by the test.

The kernel is this virtualenv's Python with ipykernel, registered under a
test-only name in a kernelspec folder in tmp_path, so the run uses neither a
user's kernels nor the network. A cell that raises fails the test.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from pathlib import Path

import nbformat
import papermill
import pytest
from test_review_store import (
    LAST_DAY,
    QUARTER,
    SERIES,
    ReviewStore,
    build_review_store,
    expected_old_forecast_errors,
    peak_rps,
)

from capplan.review import build_review, build_sections
from capplan.review.sections import Chart, Heading, Text

REPO_ROOT = Path(__file__).resolve().parent.parent
REVIEW_NOTEBOOK = REPO_ROOT / "notebooks" / "quarterly_capacity_review.ipynb"
TOUR_NOTEBOOK = REPO_ROOT / "notebooks" / "analyst_tour.ipynb"
KERNEL_NAME = "capplan-test-python"
CELL_TIMEOUT_S = 120


@pytest.fixture(scope="module")
def kernel_name(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """Register this interpreter as a Jupyter kernel for the module's tests."""
    data_dir = tmp_path_factory.mktemp("jupyter")
    spec_dir = data_dir / "kernels" / KERNEL_NAME
    spec_dir.mkdir(parents=True)
    spec = {
        "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": "capplan tests",
        "language": "python",
    }
    (spec_dir / "kernel.json").write_text(json.dumps(spec))
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("JUPYTER_PATH", str(data_dir))
        # Keep the kernel's runtime files out of the user's home folder.
        patch.setenv("JUPYTER_RUNTIME_DIR", str(data_dir / "runtime"))
        yield KERNEL_NAME


@pytest.fixture(scope="module")
def review_store(tmp_path_factory: pytest.TempPathFactory) -> ReviewStore:
    return build_review_store(tmp_path_factory.mktemp("review") / "review.duckdb")


def execute(notebook: Path, out: Path, kernel: str, parameters: dict) -> nbformat.NotebookNode:
    papermill.execute_notebook(
        str(notebook),
        str(out),
        parameters=parameters,
        kernel_name=kernel,
        cwd=str(REPO_ROOT),
        execution_timeout=CELL_TIMEOUT_S,
        progress_bar=False,
    )
    return nbformat.read(out, as_version=4)


def outputs_text(notebook: nbformat.NotebookNode) -> str:
    """Return the plain-text and HTML outputs of every code cell, joined."""
    parts = []
    for cell in notebook.cells:
        if cell.cell_type != "code":
            continue
        for output in cell.get("outputs", []):
            if output.get("output_type") == "stream":
                parts.append(output.get("text", ""))
            data = output.get("data", {})
            for mime in ("text/plain", "text/html"):
                if mime in data:
                    parts.append(data[mime] if isinstance(data[mime], str) else "".join(data[mime]))
    return "\n".join(parts)


def image_count(notebook: nbformat.NotebookNode) -> int:
    return sum(
        "image/png" in output.get("data", {})
        for cell in notebook.cells
        if cell.cell_type == "code"
        for output in cell.get("outputs", [])
    )


def test_review_notebook_key_numbers(tmp_path: Path, kernel_name: str, review_store: ReviewStore) -> None:
    executed = execute(
        REVIEW_NOTEBOOK,
        tmp_path / "review.ipynb",
        kernel_name,
        {"database": str(review_store.store.path), "quarter": QUARTER, "services": [SERIES], "slo_p95_ms": 200},
    )
    text = outputs_text(executed)
    errors = expected_old_forecast_errors()
    october = errors[errors["month"] == "2026-10-01"]

    assert f"review of {QUARTER} for {SERIES}, with data up to {LAST_DAY.date()}" in text
    assert f"runs out on {review_store.new_runway.isoformat()}" in text
    assert "The plan needs 11 instances in 2027Q1" in text
    assert f"missed the daily peaks by {errors['ape_pct'].mean():.1f} % on average over 90 days" in text
    assert f"{october['ape_pct'].mean():.1f} %" in text
    assert "-16.7 %" in text  # safe load per instance, 200 rps against 240 rps last quarter
    assert f"{peak_rps(LAST_DAY):,.1f}" in text
    assert "last quarter's plan short in 2026-11" in text
    assert image_count(executed) == 4


def test_review_notebook_matches_report(tmp_path: Path, kernel_name: str, review_store: ReviewStore) -> None:
    parameters = {"database": str(review_store.store.path), "quarter": QUARTER}
    executed = execute(REVIEW_NOTEBOOK, tmp_path / "review.ipynb", kernel_name, parameters)
    text = outputs_text(executed)
    sections = build_sections(build_review(review_store.store, QUARTER))

    charts = 0
    for section in sections.values():
        for block in section.blocks:
            if isinstance(block, (Text, Heading)):
                assert block.text in text
            else:
                assert block.caption in text
            charts += isinstance(block, Chart)
    assert charts == image_count(executed) == 4


def test_review_notebook_failing_cell_fails(tmp_path: Path, kernel_name: str, review_store: ReviewStore) -> None:
    with pytest.raises(papermill.PapermillExecutionError) as raised:
        execute(
            REVIEW_NOTEBOOK,
            tmp_path / "review.ipynb",
            kernel_name,
            {"database": str(review_store.store.path), "quarter": "2026Q5"},
        )
    assert "invalid quarter '2026Q5'" in str(raised.value)


def test_analyst_tour_answers(tmp_path: Path, kernel_name: str, review_store: ReviewStore) -> None:
    executed = execute(TOUR_NOTEBOOK, tmp_path / "tour.ipynb", kernel_name, {"database": str(review_store.store.path)})
    text = outputs_text(executed)
    errors = expected_old_forecast_errors()
    november = errors[errors["month"] == "2026-11-01"]

    assert f"looking at series {SERIES!r}" in text
    for name in ("daily_peaks", "step_summary", "forecast_vs_actual", "latest_plan", "plan_vs_actual"):
        assert name in text
    assert f"{peak_rps(LAST_DAY):.1f}" in text  # the newest daily peak
    assert "generator saturated" in text  # the step table of the newest run
    assert f"{november['ape_pct'].mean():.2f}" in text  # November's MAPE of last quarter's forecast
    assert review_store.new_runway.isoformat() in text
