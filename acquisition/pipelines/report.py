"""The run's HTML report: summary tables and the figures, in one file next to its PNGs.

`write_report` renders any JSON-like summary: the scalars of a mapping become a key/value
table, a mapping or list whose entries are flat mappings (channels, steps) a table with one row
per entry, and other nested mappings subsections. Every text is escaped; figures are linked by
paths relative to the report, so the run directory can be moved or archived as a whole.
"""

from __future__ import annotations

import html
import math
import os
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from cryodaq.acquisition.atomic import write_atomic
from cryodaq.acquisition.store.summary import RunSummary

REPORT_NAME = "report.html"
#: Rows shown per table (the rest is counted, not shown) and nesting depth rendered.
MAX_ROWS = 500
MAX_DEPTH = 8
#: Longest text of a nested value shown in a table cell.
COMPACT_CHARS = 160

STYLE = """
body { font: 14px/1.4 system-ui, sans-serif; margin: 2em auto; max-width: 72em; color: #222; }
h1 { font-size: 1.5em; } h2 { font-size: 1.25em; border-bottom: 1px solid #ccc; }
h3, h4, h5, h6 { font-size: 1.05em; }
table { border-collapse: collapse; margin: 0.5em 0 1em; font-size: 13px; display: block;
        overflow-x: auto; max-width: 100%; }
th, td { border: 1px solid #ddd; padding: 2px 8px; text-align: right; }
th { background: #f3f3f3; } td.k, th.k { text-align: left; }
figure { display: inline-block; margin: 0.5em; vertical-align: top; }
figure img { max-width: 100%; border: 1px solid #eee; }
figcaption { font-size: 12px; color: #555; }
.note { color: #777; font-size: 12px; }
"""


def _scalar(v: Any) -> bool:
    return v is None or isinstance(v, str | int | float | bool)


def _flat_seq(v: Any) -> bool:
    return isinstance(v, Sequence) and not isinstance(v, str) and all(_scalar(x) for x in v)


def _fmt(v: Any) -> str:
    """A value as escaped text: floats to 6 significant digits, lists comma-separated."""
    if v is None:
        return "&ndash;"
    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, float):
        return "nan" if math.isnan(v) else html.escape(f"{v:.6g}")
    if _flat_seq(v):
        return ", ".join(_fmt(x) for x in v) or "&ndash;"
    return html.escape(str(v))


def _row_table(rows: Mapping[str, Mapping[str, Any]], key_name: str, depth: int) -> str:
    """One row per entry, one column per field seen (small nested values as `k=v` text)."""
    cols: list[str] = []
    for r in rows.values():
        cols += [k for k in r if k not in cols]
    head = "".join(f"<th>{html.escape(str(c))}</th>" for c in cols)
    body = []
    for i, (name, r) in enumerate(rows.items()):
        if i == MAX_ROWS:
            more = f"… {len(rows) - i} more"
            body.append(f'<tr><td class="k" colspan="{len(cols) + 1}">{more}</td></tr>')
            break
        cells = "".join(f"<td>{_compact(r.get(c), depth)}</td>" for c in cols)
        body.append(f'<tr><td class="k">{html.escape(str(name))}</td>{cells}</tr>')
    return (
        f'<table><tr><th class="k">{html.escape(key_name)}</th>{head}</tr>'
        + "".join(body)
        + "</table>"
    )


def _compact(v: Any, depth: int = 2) -> str | None:
    """A value as one short line (`k=v, k2={a=1}`, mappings nested at most `depth` deep),
    or None if it does not fit in one."""
    if _scalar(v) or _flat_seq(v):
        text = _fmt(v)
    elif isinstance(v, Mapping) and depth > 0:
        items = [(html.escape(str(k)), _compact(x, depth - 1)) for k, x in v.items()]
        if any(x is None for _, x in items):
            return None
        text = ", ".join(f"{k}={x}" for k, x in items)
        text = f"{{{text}}}" if text else "&ndash;"
    else:
        return None
    return text if len(text) <= COMPACT_CHARS else None


def _row_depth(v: Any) -> int:
    """Nesting a cell may show if `v` renders as one row per entry, else 0: entries must be
    mappings of values that fit in a cell, nested once (entries of a mapping: channels) or
    twice (entries of a list: steps with their results)."""
    entries = v.values() if isinstance(v, Mapping) else v if isinstance(v, list) else None
    depth = 2 if isinstance(v, list) else 1
    if not entries:
        return 0
    ok = all(
        isinstance(e, Mapping) and all(_compact(x, depth) is not None for x in e.values())
        for e in entries
    )
    return depth if ok else 0


def _section(obj: Mapping[str, Any], level: int) -> str:
    """Key/value table of the scalars of `obj`, then one subsection per nested entry."""
    parts = []
    scalars = {k: v for k, v in obj.items() if _scalar(v) or _flat_seq(v)}
    if scalars:
        rows = "".join(
            f'<tr><td class="k">{html.escape(str(k))}</td><td>{_fmt(v)}</td></tr>'
            for k, v in scalars.items()
        )
        parts.append(f"<table>{rows}</table>")
    h = f"h{min(level, 6)}"
    for k, v in obj.items():
        if k in scalars:
            continue
        title = f"<{h}>{html.escape(str(k))}</{h}>"
        depth = _row_depth(v)
        if depth:
            rows = v if isinstance(v, Mapping) else {str(i): e for i, e in enumerate(v)}
            parts.append(title + _row_table(rows, str(k), depth))
        elif isinstance(v, Mapping | list) and not v:
            parts.append(title + '<p class="note">none</p>')
        elif isinstance(v, Mapping) and level < MAX_DEPTH:
            parts.append(title + _section(v, level + 1))
        elif isinstance(v, list) and level < MAX_DEPTH:
            items = {str(i): e if isinstance(e, Mapping) else {"value": e} for i, e in enumerate(v)}
            parts.append(title + _section(items, level + 1))
        else:
            parts.append(title + f'<p class="note">{_fmt(str(v))}</p>')
    return "\n".join(parts)


def _figures(report_dir: Path, figures: Sequence[Path]) -> str:
    out = []
    for fig in figures:
        rel = Path(os.path.relpath(Path(fig).resolve(), report_dir.resolve())).as_posix()
        name = html.escape(Path(fig).stem.replace("_", " "))
        src = html.escape(rel, quote=True)
        out.append(
            f'<figure><a href="{src}"><img src="{src}" alt="{name}"></a>'
            f"<figcaption>{name}</figcaption></figure>"
        )
    return "\n".join(out)


def write_report(run_dir: str | os.PathLike[str], summary: dict, figures: list[Path]) -> Path:
    """Write `<run_dir>/report.html` from `summary` (JSON-like) and `figures` (PNG paths)."""
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    title = str(summary.get("campaign") or summary.get("name") or run_dir.name)
    if isinstance(summary.get("campaign"), Mapping):
        title = str(summary["campaign"].get("name") or run_dir.name)
    stamp = datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
    body = [
        f"<h1>cryodaq run report: {html.escape(title)}</h1>",
        f'<p class="note">{html.escape(str(run_dir))} &middot; written {stamp}</p>',
        "<h2>Summary</h2>",
        _section(summary, 3),
    ]
    if figures:
        body += ["<h2>Figures</h2>", _figures(run_dir, figures)]
    page = (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f"<title>{html.escape(title)}</title><style>{STYLE}</style></head><body>\n"
        + "\n".join(body)
        + "\n</body></html>\n"
    )
    path = run_dir / REPORT_NAME
    write_atomic(path, page)
    return path


def write_run_report(run_dir: Path, summary: RunSummary) -> Path:
    """`report.html` of a campaign run: its summary and every figure it lists."""
    return write_report(run_dir, summary.to_json(), [run_dir / f for f in summary.figures])
