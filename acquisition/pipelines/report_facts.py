"""The run facts at the end of the report, folded: the steps with their times, the
acquisitions, every result of each analysis, the software versions, and the rig and campaign
as they ran (snapshots from campaign.json)."""

from __future__ import annotations

import html
import json
from collections.abc import Mapping
from typing import Any

from cryodaq.acquisition.pipelines.report_numbers import fmt
from cryodaq.acquisition.pipelines.report_tables import compact, section

#: Top-level summary keys shown in the run table (the rest have sections of their own).
RUN_KEYS = (
    "campaign", "rig", "simulated", "run_dir", "status", "error", "started", "finished",
    "resumed", "steps_done", "virtual_time_s", "wall_time_s", "live_time_s", "clock_epoch_ns",
)  # fmt: skip


def _folded(title: str, body: str, open_: bool = False) -> str:
    state = " open" if open_ else ""
    return f"<details{state}><summary>{html.escape(title)}</summary>{body}</details>"


def _steps(steps: list[Mapping[str, Any]]) -> str:
    rows = []
    for s in steps:
        result = compact(s.get("result"), 2) or "(see the analysis results)"
        rows.append(
            f'<tr><td class="k">{html.escape(str(s.get("id", "")))}</td>'
            f'<td class="k">{html.escape(str(s.get("kind", "")))}</td>'
            f'<td class="k">{html.escape(str(s.get("name") or ""))}</td>'
            f"<td>{html.escape(fmt(s.get('virtual_time_s'), digits=3))}</td>"
            f"<td>{html.escape(fmt(s.get('wall_time_s'), digits=3))}</td>"
            f'<td class="k">{result}</td></tr>'
        )
    return (
        '<div class="scroll"><table><tr><th class="k">step</th><th class="k">kind</th>'
        '<th class="k">name</th><th>virtual (s)</th><th>wall (s)</th><th class="k">result</th>'
        "</tr>" + "".join(rows) + "</table></div>"
    )


def _snapshot(value: Any) -> str:
    return f"<pre>{html.escape(json.dumps(value, indent=2, default=str))}</pre>"


def run_facts(summary: Mapping[str, Any], campaign: Mapping[str, Any] | None) -> str:
    """The folded section of run facts."""
    run = {k: summary[k] for k in RUN_KEYS if k in summary}
    parts = [
        _folded("Run", f'<div class="scroll">{section(run, 4)}</div>', open_=True),
        _folded(f"Steps ({len(summary.get('steps') or [])})", _steps(summary.get("steps") or [])),
    ]
    acquisitions = summary.get("acquisitions") or {}
    if acquisitions:
        body = section({"acquisitions": acquisitions, "drops": summary.get("drops") or {}}, 4)
        parts.append(_folded("Acquisitions", f'<div class="scroll">{body}</div>'))
    for name, results in (summary.get("analyze") or {}).items():
        body = section(results if isinstance(results, Mapping) else {"result": results}, 4)
        parts.append(_folded(f"All results of {name}", f'<div class="scroll">{body}</div>'))
    parts.append(_folded("Software versions", section(summary.get("versions") or {}, 4)))
    if campaign is not None:
        rig = campaign.get("rig")
        if rig is not None:
            parts.append(_folded("Rig as it ran", _snapshot(rig)))
        rest = {k: v for k, v in campaign.items() if k != "rig"}
        parts.append(_folded("Campaign as it ran", _snapshot(rest)))
    return (
        '<section class="facts"><details><summary>Run facts: steps, times, versions, rig and '
        'campaign</summary>' + "\n".join(parts) + "</details></section>"
    )
