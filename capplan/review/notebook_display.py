"""Showing review sections in a Jupyter notebook.

Each block is displayed with an HTML and a plain-text form, so the notebook
reads well when rendered and its outputs stay searchable as text.
"""

from __future__ import annotations

from html import escape

from capplan.review.plots import figure_png
from capplan.review.sections import Chart, Heading, Section, Table, Text

__all__ = ["show_section"]


def show_section(section: Section) -> None:
    """Display every block of a section in the current notebook cell."""
    from IPython.display import Image, display

    for block in section.blocks:
        if isinstance(block, Heading):
            display({"text/html": f"<h3>{escape(block.text)}</h3>", "text/plain": block.text}, raw=True)
        elif isinstance(block, Text):
            display({"text/html": f"<p>{escape(block.text)}</p>", "text/plain": block.text}, raw=True)
        elif isinstance(block, Table):
            html = block.frame.to_html(index=False, border=0, escape=True)
            display(
                {
                    "text/html": f"<p><b>{escape(block.caption)}</b></p>{html}",
                    "text/plain": f"{block.caption}\n{block.frame.to_string(index=False)}",
                },
                raw=True,
            )
        elif isinstance(block, Chart):
            display(Image(data=figure_png(block.figure), format="png"))
            display({"text/html": f"<p><i>{escape(block.caption)}</i></p>", "text/plain": block.caption}, raw=True)
