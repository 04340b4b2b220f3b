"""The look shared by cryodaq's pages: the stylesheet the live page serves and the run report
embeds (`look.css`), and the report's own layout over it (`report.css`)."""

from __future__ import annotations

from pathlib import Path

LOOK_CSS = Path(__file__).resolve().with_name("look.css")
REPORT_CSS = Path(__file__).resolve().with_name("report.css")


def report_style() -> str:
    """Both stylesheets, as the report embeds them."""
    return LOOK_CSS.read_text(encoding="utf-8") + REPORT_CSS.read_text(encoding="utf-8")
