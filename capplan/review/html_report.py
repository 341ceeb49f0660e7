"""The review as one self-contained HTML file.

Figures are embedded as base64 PNG and the style sheet is inline, so the file
opens without a network connection and contains no script.
"""

from __future__ import annotations

import base64
import logging
import os
import re
from pathlib import Path

import jinja2

from capplan import __version__
from capplan.errors import ConfigError
from capplan.review.formatting import fmt_day
from capplan.review.model import QuarterlyReview
from capplan.review.plots import figure_png
from capplan.review.sections import Chart, Heading, Section, Table, Text, build_sections

__all__ = ["render_report", "write_report"]

logger = logging.getLogger(__name__)

_TEMPLATE = """<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>{{ title }}</title>
<style>
  body { font-family: -apple-system, "Segoe UI", "DejaVu Sans", Arial, sans-serif; margin: 2rem auto;
         max-width: 1150px; padding: 0 1rem; color: #222; line-height: 1.45; }
  h1 { margin-bottom: 0.2rem; }
  h2 { border-bottom: 2px solid #ddd; padding-bottom: 0.2rem; margin-top: 2.5rem; }
  h3 { margin-top: 1.6rem; }
  .meta { color: #555; margin-top: 0; }
  nav ol { columns: 2; }
  table.data { border-collapse: collapse; margin: 0.6rem 0 1.2rem; font-size: 0.9rem; }
  table.data th, table.data td { border: 1px solid #ccc; padding: 0.25rem 0.55rem; text-align: left; vertical-align: top; }
  table.data th { background: #f3f3f3; }
  table.data .number { text-align: right; white-space: nowrap; }
  .scroll { overflow-x: auto; }
  caption { caption-side: top; text-align: left; font-weight: 600; padding-bottom: 0.3rem; }
  figure { margin: 0.8rem 0 1.4rem; }
  figure img { max-width: 100%; height: auto; border: 1px solid #eee; }
  figcaption { color: #555; font-size: 0.9rem; }
</style>
</head>
<body>
<h1>{{ title }}</h1>
<p class="meta">Generated {{ generated }} UTC by capplan {{ version }} from {{ store }}.</p>
<nav><ol>
{% for section in sections %}  <li><a href="#{{ section.key }}">{{ section.title }}</a></li>
{% endfor %}</ol></nav>
{% for section in sections %}
<section id="{{ section.key }}">
<h2>{{ section.title }}</h2>
{% for block in section.blocks %}
{% if block.kind == "heading" %}<h3>{{ block.text }}</h3>
{% elif block.kind == "text" %}<p>{{ block.text }}</p>
{% elif block.kind == "table" %}<div class="scroll"><table class="data"><caption>{{ block.caption }}</caption>
<thead><tr>{% for column in block.columns %}<th{% if column.numeric %} class="number"{% endif %}>{{ column.title }}</th>{% endfor %}</tr></thead>
<tbody>
{% for row in block.rows %}<tr>{% for cell in row %}<td{% if block.columns[loop.index0].numeric %} class="number"{% endif %}>{{ cell }}</td>{% endfor %}</tr>
{% endfor %}</tbody></table></div>
{% elif block.kind == "chart" %}<figure><img alt="{{ block.caption }}" src="data:image/png;base64,{{ block.png }}"><figcaption>{{ block.caption }}</figcaption></figure>
{% endif %}{% endfor %}
</section>
{% endfor %}
</body>
</html>
"""


# Cells such as "1,234.5", "-16.7 %", "n/a" or "2026-11-30" are right-aligned; text is left-aligned.
_NUMERIC_CELL = re.compile(r"^([+-]?[\d,]+(\.\d+)?( ?%| rps| ms)?|\d{4}-\d{2}(-\d{2})?( \*)?|n/a|)$")


def _is_numeric_column(values: list[str]) -> bool:
    return all(_NUMERIC_CELL.match(value.strip()) for value in values)


def _block_context(block: Heading | Text | Table | Chart) -> dict[str, object]:
    if isinstance(block, Heading):
        return {"kind": "heading", "text": block.text}
    if isinstance(block, Text):
        return {"kind": "text", "text": block.text}
    if isinstance(block, Table):
        frame = block.frame.astype(str)
        columns = [
            {"title": str(column), "numeric": _is_numeric_column(frame[column].tolist())} for column in frame.columns
        ]
        return {"kind": "table", "caption": block.caption, "columns": columns, "rows": frame.values.tolist()}
    png = base64.b64encode(figure_png(block.figure)).decode("ascii")
    return {"kind": "chart", "caption": block.caption, "png": png}


def render_report(review: QuarterlyReview, sections: dict[str, Section] | None = None) -> str:
    """Return the review as an HTML document."""
    sections = build_sections(review) if sections is None else sections
    environment = jinja2.Environment(autoescape=True, undefined=jinja2.StrictUndefined)
    template = environment.from_string(_TEMPLATE)
    context_sections = [
        {"key": section.key, "title": section.title, "blocks": [_block_context(block) for block in section.blocks]}
        for section in sections.values()
    ]
    return template.render(
        title=f"Quarterly capacity review {review.quarter}",
        generated=f"{fmt_day(review.generated_at)} {review.generated_at:%H:%M}",
        version=__version__,
        store=str(review.store_path),
        sections=context_sections,
    )


def write_report(review: QuarterlyReview, path: str | os.PathLike[str]) -> Path:
    """Render the review and write it to ``path`` atomically; return the path.

    The file is written next to its target first and then renamed, so a failed
    render never leaves half a report. Raises ConfigError when the folder is
    missing or not writable.
    """
    target = Path(path)
    folder = target.parent if str(target.parent) else Path(".")
    if not folder.is_dir():
        raise ConfigError(f"--out: folder {folder} does not exist; create it or choose another path")
    html = render_report(review)
    temporary = folder / f".{target.name}.{os.getpid()}.tmp"
    try:
        temporary.write_text(html, encoding="utf-8")
        os.replace(temporary, target)
    except OSError as exc:
        temporary.unlink(missing_ok=True)
        raise ConfigError(f"--out: cannot write {target}: {exc.strerror or exc}; choose a writable path") from exc
    logger.info("wrote the %s review to %s (%d bytes)", review.quarter, target, len(html.encode("utf-8")))
    return target
