"""Figures for run reports: one place that selects matplotlib's Agg backend and the style."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")  # files only, never a window; before pyplot is imported anywhere

import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

STYLE: dict[str, Any] = {
    "figure.dpi": 100,
    "savefig.dpi": 110,
    "axes.grid": True,
    "grid.alpha": 0.3,
    "font.size": 9,
    "axes.titlesize": 9,
    "legend.fontsize": 7,
    "legend.frameon": False,
}


def figure(width: float = 7.0, height: float = 4.5) -> tuple[Figure, Any]:
    """A figure with one axes, in the report style."""
    with plt.rc_context(STYLE):
        fig, ax = plt.subplots(figsize=(width, height), layout="constrained")
    return fig, ax


def grid(n: int, panel: float = 2.2, max_columns: int = 6) -> tuple[Figure, list[Any]]:
    """A figure with `n` small panels (row-major), the unused ones hidden."""
    cols = max(1, min(n, max_columns))
    rows = max(1, math.ceil(n / cols))
    with plt.rc_context(STYLE):
        fig, axes = plt.subplots(
            rows, cols, figsize=(panel * cols + 0.5, 0.8 * panel * rows + 0.5), layout="constrained"
        )
    flat = list(getattr(axes, "flat", [axes]))
    for ax in flat[n:]:
        ax.set_visible(False)
    return fig, flat[:n]


def save(fig: Figure, path: Path) -> Path:
    """Write `fig` as PNG at `path` (parents created), close it, return the path."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with plt.rc_context(STYLE):
        fig.savefig(path, format="png")
    plt.close(fig)
    return path
