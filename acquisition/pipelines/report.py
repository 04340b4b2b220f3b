"""The run's HTML report, read like the first page of a measurement note: what was measured, on
which rig, when and whether it completed; each analysis' headline results (its pipeline's
`<name>_headline` module); the figures with a caption saying what to look for; the problems;
the run facts last, folded.

One self-contained file: the figures are embedded (PNG as data: URIs), the stylesheet inline
(`look.css`, shared with the live page, and `report.css`), no script, no font, no link out, so
the file can be mailed, pasted into a logbook or printed to PDF as it is. It is rebuilt from
`summary.json`, `campaign.json` and the figures alone (`cryodaq report RUN_DIR`).
"""

from __future__ import annotations

import base64
import html
import json
import os
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from cryodaq.acquisition.atomic import write_atomic
from cryodaq.acquisition.pipelines.look import report_style
from cryodaq.acquisition.pipelines.report_analyses import Analysis, analyses
from cryodaq.acquisition.pipelines.report_facts import run_facts
from cryodaq.acquisition.pipelines.report_headline import Headline, caption, headline
from cryodaq.acquisition.pipelines.report_numbers import count, fmt
from cryodaq.acquisition.pipelines.report_problems import (
    generic_analysis_problems,
    missing_figures,
    run_problems,
)
from cryodaq.acquisition.pipelines.report_tables import headline_table
from cryodaq.acquisition.store.layout import CAMPAIGN
from cryodaq.acquisition.store.summary import RunSummary

REPORT_NAME = "report.html"
#: The element holding the time the report was written (the only part a rebuild changes).
STAMP_CLASS = "written"
#: Figures wider than this (width / height: panels side by side) take the page's full width.
WIDE_ASPECT = 2.5


def _e(text: Any) -> str:
    return html.escape(str(text))


def duration(seconds: Any) -> str:
    """A duration in the unit that reads best: `30 s`, `3.0 min`, `1.2 h`."""
    if not isinstance(seconds, int | float):
        return "–"
    if seconds < 120:
        return fmt(float(seconds), unit="s", digits=3 if seconds >= 1 else 2)
    if seconds < 7200:
        return f"{seconds / 60:.1f} min"
    return f"{seconds / 3600:.1f} h"


def _when(iso: Any) -> str:
    text = str(iso or "–").replace("T", " ")
    return text.removesuffix("+00:00") + " UTC" if text.endswith("+00:00") else text


def _measured(summary: Mapping[str, Any]) -> str:
    """One line per acquisition: source, channels, live time, records."""
    items = []
    for name, a in (summary.get("acquisitions") or {}).items():
        if not isinstance(a, Mapping):
            continue
        chans = a.get("channels") or []
        items.append(
            f"<b>{_e(name)}</b> ({_e(a.get('source', '?'))}, {count(len(chans))} channels, "
            f"{_e(duration(a.get('live_time_s')))} live, {count(a.get('records'))} records)"
        )
    return f"<p>Acquired: {'; '.join(items)}.</p>" if items else ""


def _header(summary: Mapping[str, Any], campaign: Mapping[str, Any] | None,
            problems: int) -> str:  # fmt: skip
    status = str(summary.get("status", "unknown"))
    rig = "simulated rig" if summary.get("simulated") else "rig"
    described = (campaign or {}).get("description")
    facts = [
        f"{rig} <b>{_e(summary.get('rig', '?'))}</b>",
        f"started <b>{_e(_when(summary.get('started')))}</b>",
        f"finished <b>{_e(_when(summary.get('finished')))}</b>",
        f"live <b>{_e(duration(summary.get('live_time_s')))}</b>"
        if summary.get("acquisitions") else "",
        f"virtual <b>{_e(duration(summary.get('virtual_time_s')))}</b>",
        f"wall <b>{_e(duration(summary.get('wall_time_s')))}</b>",
    ]
    out = [
        f'<header><h1>{_e(summary.get("campaign", "run"))} '
        f'<span class="status {_e(status)}">{_e(status)}</span></h1>',
        f"<p>{_e(described)}</p>" if described else "",
        '<p class="facts">' + " ".join(f"<span>{f}</span>" for f in facts if f) + "</p>",
        _measured(summary),
    ]
    if status != "completed":
        error = summary.get("error")
        state = "has not finished (still running, or it died)" if status == "running" else (
            f"did not complete ({_e(status)})")  # fmt: skip
        out.append(f'<p class="problem">The run {state}'
                   + (f": {_e(error)}" if error else ".") + "</p>")  # fmt: skip
    if problems:
        out.append(f'<p class="muted">{count(problems)} problem(s): see Problems below.</p>')
    return "\n".join(out) + "</header>"


def _what(a: Analysis) -> str:
    results = a.results if isinstance(a.results, Mapping) else {}
    acquired = results.get("acquisitions") or results.get("calibration")
    pipeline = f"{a.pipeline} pipeline" if a.pipeline else "pipeline unknown"
    on = f" on {', '.join(map(str, acquired))}" if isinstance(acquired, list) and acquired else ""
    return f'{_e(a.name)} <span class="muted">{_e(pipeline)}{_e(on)}</span>'


def _results(found: list[tuple[Analysis, Headline | None]]) -> str:
    out = []
    for a, head in found:
        if head is None:
            body = ('<p class="note">This pipeline defines no headline; all its results are '
                    "in the run facts below.</p>")  # fmt: skip
        else:
            body = "\n".join(f'<div class="scroll">{headline_table(t)}</div>' for t in head.tables)
        out.append(f'<section class="results"><h2>{_what(a)}</h2>{body}</section>')
    if not found:
        out.append('<section class="results"><h2>Results</h2><p class="note">This run has no '
                   "analysis results.</p></section>")  # fmt: skip
    return "\n".join(out)


def _aspect(png: bytes) -> float:
    """Width over height of a PNG (from its header; 1 if it is not one)."""
    if png[:8] != b"\x89PNG\r\n\x1a\n" or len(png) < 24:
        return 1.0
    width, height = int.from_bytes(png[16:20], "big"), int.from_bytes(png[20:24], "big")
    return width / height if height else 1.0


def _figure(run_dir: Path, rel: str, text: str) -> str:
    path = run_dir / rel
    name = Path(rel).name
    if not path.is_file():
        return f'<figure><figcaption>{_e(rel)}: missing</figcaption></figure>'
    png = path.read_bytes()
    data = base64.b64encode(png).decode("ascii")
    alt = _e(text or name)
    wide = ' class="wide"' if _aspect(png) > WIDE_ASPECT else ""
    return (
        f'<figure{wide}><img src="data:image/png;base64,{data}" alt="{alt}">'
        f'<figcaption>{_e(text)} <span class="name">{_e(rel)}</span></figcaption></figure>'
    )


def _figures(run_dir: Path, found: list[tuple[Analysis, Headline | None]],
             others: list[str]) -> str:  # fmt: skip
    groups = []
    for a, head in found:
        captions = head.captions if head else {}
        figs = [_figure(run_dir, f, caption(captions, f)) for f in a.figures]
        if figs:
            groups.append((a.name, figs))
    if others:
        groups.append(("other figures", [_figure(run_dir, f, "") for f in others]))
    if not groups:
        return ""
    titled = len(groups) > 1
    body = "\n".join(
        (f"<h3>{_e(name)}</h3>" if titled else "") + f'<div class="figures">{"".join(figs)}</div>'
        for name, figs in groups
    )
    return f'<section class="figures-section"><h2>Figures</h2>{body}</section>'


def problems_of(run_dir: Path, summary: Mapping[str, Any],
                found: list[tuple[Analysis, Headline | None]]) -> list[str]:  # fmt: skip
    """Every problem the report states: the run's, each analysis', missing figures."""
    out = run_problems(summary)
    for a, head in found:
        listed = head.problems if head else generic_analysis_problems(a.results)
        out += [f"{a.name}: {p}" for p in listed]
    return out + missing_figures(run_dir, list(summary.get("figures") or []))


def _problems(problems: list[str]) -> str:
    if not problems:
        body = ('<p class="fine">None: the run completed, no records were dropped, no gaps, '
                "every channel was analysed.</p>")  # fmt: skip
    else:
        body = '<ul class="problems">' + "".join(f"<li>{_e(p)}</li>" for p in problems) + "</ul>"
    return f'<section class="problems-section"><h2>Problems</h2>{body}</section>'


def render(run_dir: Path, summary: Mapping[str, Any], campaign: Mapping[str, Any] | None,
           stamp: str) -> str:  # fmt: skip
    """The report page of the run in `run_dir` (its figures are read from there)."""
    listed, others = analyses(summary)
    found = [(a, headline(a.pipeline, a.results)) for a in listed]
    problems = problems_of(run_dir, summary, found)
    version = (summary.get("versions") or {}).get("cryodaq", "")
    title = str(summary.get("campaign") or run_dir.name)
    body = [
        _header(summary, campaign, len(problems)),
        '<main class="report">',
        _results(found),
        _figures(run_dir, found, others),
        _problems(problems),
        run_facts(summary, campaign),
        "</main>",
        f'<footer>cryodaq {_e(version)} run report of {_e(summary.get("run_dir", run_dir))}, '
        f'written <span class="{STAMP_CLASS}">{_e(stamp)}</span></footer>',
    ]
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{_e(title)}: cryodaq run report</title><style>{report_style()}</style>"
        "</head><body>\n" + "\n".join(b for b in body if b) + "\n</body></html>\n"
    )


def read_campaign(run_dir: Path) -> Mapping[str, Any] | None:
    """The campaign as it ran (`campaign.json`), or None if the run has none readable."""
    try:
        data = json.loads((run_dir / CAMPAIGN).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, Mapping) else None


def write_report(run_dir: str | os.PathLike[str], summary: Mapping[str, Any],
                 campaign: Mapping[str, Any] | None = None) -> Path:  # fmt: skip
    """Write `<run_dir>/report.html` from `summary` (summary.json's mapping) and `campaign`
    (campaign.json's), embedding the figures the summary lists."""
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
    path = run_dir / REPORT_NAME
    write_atomic(path, render(run_dir, summary, campaign, stamp))
    return path


def write_run_report(run_dir: Path, summary: RunSummary) -> Path:
    """`report.html` of a campaign run, from its summary and its campaign.json."""
    return write_report(run_dir, summary.to_json(), read_campaign(Path(run_dir)))
