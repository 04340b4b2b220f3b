"""The analyses of a run as the report shows them: each result of summary.json's `analyze`
with the pipeline that made it and its figures in the pipeline's order (from the analyze step
that ran it), and the figures no analysis claims."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import PurePath
from typing import Any

from cryodaq.acquisition.pipelines.report_headline import HEADLINES


@dataclass(frozen=True)
class Analysis:
    """One analysis result: its name, pipeline (None if unknown), results and figures (paths
    relative to the run directory, in the pipeline's order)."""

    name: str
    pipeline: str | None
    results: Any
    figures: tuple[str, ...]


def _step_for(name: str, steps: Sequence[Mapping[str, Any]]) -> Mapping[str, Any] | None:
    """The last analyze step whose result is `name`: `<step name or pipeline><suffix>`, the
    suffix naming a sweep point or repeat (`.0`, `.2.1`) or empty."""
    found = None
    for step in steps:
        result = step.get("result")
        if step.get("kind") != "analyze" or not isinstance(result, Mapping):
            continue
        base = step.get("name") or result.get("pipeline")
        if isinstance(base, str) and re.fullmatch(rf"{re.escape(base)}(\.\d+)*", name):
            found = step
    return found


def analyses(summary: Mapping[str, Any]) -> tuple[list[Analysis], list[str]]:
    """The run's analyses, and the figures of summary.json that none of them lists."""
    by_name = {PurePath(f).name: f for f in summary.get("figures") or []}
    steps = summary.get("steps") or []
    out, claimed = [], set()
    for name, results in (summary.get("analyze") or {}).items():
        step = _step_for(name, steps)
        result = step["result"] if step else {}
        pipeline = result.get("pipeline") or (name if name in HEADLINES else None)
        figures = []
        for f in result.get("figures") or []:
            rel = by_name.get(PurePath(f).name)
            if rel is not None and rel not in claimed:
                figures.append(rel)
                claimed.add(rel)
        out.append(Analysis(name, pipeline, results, tuple(figures)))
    return out, [f for f in summary.get("figures") or [] if f not in claimed]
