"""The run's problems, stated plainly for the report: a run that did not complete and its
error, records dropped by sinks, gaps in the sample stream, acquisitions that ended early,
analyses that failed channels or cut more than expected, figures that are missing."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from cryodaq.acquisition.pipelines.report_headline import failed_entries
from cryodaq.acquisition.pipelines.report_numbers import count

#: Where a pipeline without a headline module keeps its per-channel entries.
ENTRY_KEYS = (("channels", "channel"), ("pixels", "pixel"))


def run_problems(summary: Mapping[str, Any]) -> list[str]:
    """Problems of the run itself: its status, resumptions, drops, gaps, early ends."""
    out = []
    status = summary.get("status")
    if status != "completed":
        done = count(summary.get("steps_done") or len(summary.get("steps") or []))
        error = summary.get("error")
        reason = f": {error}" if error else ""
        if status == "running":
            out.append(f"The run has not finished (still running, or it died) after {done} "
                       f"steps{reason}.")
        else:
            out.append(f"The run did not complete: {status} after {done} steps{reason}.")
    resumed = summary.get("resumed") or []
    if resumed:
        out.append(f"The run was interrupted and resumed {count(len(resumed))} time(s), at "
                   f"{', '.join(map(str, resumed))}.")
    for sink, n in (summary.get("drops") or {}).items():
        if n:
            out.append(f"Sink {sink} dropped {count(n)} records (its queue was full).")
    for name, acq in (summary.get("acquisitions") or {}).items():
        out += _acquisition_problems(str(name), acq if isinstance(acq, Mapping) else {})
    return out


def _acquisition_problems(name: str, acq: Mapping[str, Any]) -> list[str]:
    out = []
    gaps = acq.get("gaps") or 0
    if gaps:
        out.append(
            f"Acquisition {name}: {count(gaps)} gap(s) in the sample stream, "
            f"{count(acq.get('gap_samples'))} samples lost, "
            f"{count(acq.get('records_lost_to_gaps'))} records lost with them."
        )
    end = acq.get("end_reason")
    if end and end != "completed":
        out.append(f"Acquisition {name} ended early: {end}.")
    return out


def generic_analysis_problems(results: Any) -> list[str]:
    """Failed channels or pixels of an analysis whose pipeline has no headline module."""
    if not isinstance(results, Mapping):
        return []
    return [p for key, what in ENTRY_KEYS for p in failed_entries(results.get(key), what)]


def missing_figures(run_dir: Path, figures: list[str]) -> list[str]:
    """One sentence per figure summary.json lists that is not in the run directory."""
    return [f"Figure {f} is missing from the run directory." for f in figures
            if not (run_dir / f).is_file()]  # fmt: skip
