"""HTML tables of the run report: a headline `Table`, and any JSON-like value rendered
generically (the run facts: steps, acquisitions, every result of an analysis).

Generic rendering: the scalars of a mapping become a key/value table, a mapping or list whose
entries are flat mappings (channels, steps) a table with one row per entry, and other nested
mappings subsections. Every text is escaped.
"""

from __future__ import annotations

import html
import math
from collections.abc import Mapping, Sequence
from typing import Any

from cryodaq.acquisition.pipelines.report_headline import Table

#: Rows shown per table (the rest is counted, not shown) and nesting depth rendered.
MAX_ROWS = 500
MAX_DEPTH = 8
#: Longest text of a nested value shown in a table cell.
COMPACT_CHARS = 160


def headline_table(table: Table) -> str:
    """A headline table: its title, the table (first column the row's name), its note."""
    head = "".join(f"<th>{html.escape(c)}</th>" for c in table.columns)
    rows = "".join(
        "<tr>" + "".join(f"<td>{html.escape(cell)}</td>" for cell in row) + "</tr>"
        for row in table.rows
    ) or f'<tr><td colspan="{len(table.columns)}">none</td></tr>'
    note = f'<p class="note">{html.escape(table.note)}</p>' if table.note else ""
    return (
        f'<h3>{html.escape(table.title)}</h3><table class="headline"><thead><tr>{head}</tr>'
        f"</thead><tbody>{rows}</tbody></table>{note}"
    )


def _scalar(v: Any) -> bool:
    return v is None or isinstance(v, str | int | float | bool)


def _flat_seq(v: Any) -> bool:
    return isinstance(v, Sequence) and not isinstance(v, str) and all(_scalar(x) for x in v)


def fmt_value(v: Any) -> str:
    """A value as escaped text: floats to 6 significant digits, lists comma-separated."""
    if v is None:
        return "&ndash;"
    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, float):
        return "nan" if math.isnan(v) else html.escape(f"{v:.6g}")
    if _flat_seq(v):
        return ", ".join(fmt_value(x) for x in v) or "&ndash;"
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
        cells = "".join(f"<td>{compact(r.get(c), depth)}</td>" for c in cols)
        body.append(f'<tr><td class="k">{html.escape(str(name))}</td>{cells}</tr>')
    return (
        f'<table><tr><th class="k">{html.escape(key_name)}</th>{head}</tr>'
        + "".join(body)
        + "</table>"
    )


def compact(v: Any, depth: int = 2) -> str | None:
    """A value as one short line (`k=v, k2={a=1}`, mappings nested at most `depth` deep),
    or None if it does not fit in one."""
    if _scalar(v) or _flat_seq(v):
        text = fmt_value(v)
    elif isinstance(v, Mapping) and depth > 0:
        items = [(html.escape(str(k)), compact(x, depth - 1)) for k, x in v.items()]
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
        isinstance(e, Mapping) and all(compact(x, depth) is not None for x in e.values())
        for e in entries
    )
    return depth if ok else 0


def section(obj: Mapping[str, Any], level: int) -> str:
    """Key/value table of the scalars of `obj`, then one subsection per nested entry."""
    parts = []
    scalars = {k: v for k, v in obj.items() if _scalar(v) or _flat_seq(v)}
    if scalars:
        rows = "".join(
            f'<tr><td class="k">{html.escape(str(k))}</td><td>{fmt_value(v)}</td></tr>'
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
            parts.append(title + section(v, level + 1))
        elif isinstance(v, list) and level < MAX_DEPTH:
            items = {str(i): e if isinstance(e, Mapping) else {"value": e} for i, e in enumerate(v)}
            parts.append(title + section(items, level + 1))
        else:
            parts.append(title + f'<p class="note">{fmt_value(str(v))}</p>')
    return "\n".join(parts)
