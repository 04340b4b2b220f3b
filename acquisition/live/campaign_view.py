"""Campaign progress as its run directory shows it: the step now, steps done and to go, the
virtual and wall times, the end state and its error."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from cryodaq.acquisition.campaign.fields import Step
from cryodaq.acquisition.campaign.steps.table import HANDLERS
from cryodaq.acquisition.campaign.validate import CampaignInvalid, load_campaign
from cryodaq.acquisition.errors import CryodaqError
from cryodaq.acquisition.store.layout import CAMPAIGN, PROGRESS, SUMMARY

#: Line energies marked on a live spectrum when a pulses pipeline names none (Mn Ka1, 55Fe).
DEFAULT_LINE_EV = {"pulses": 5898.75}


@dataclass(frozen=True)
class Leaf:
    """One step that runs (not a sweep or repeat): its id as in progress.json, and a label."""

    sid: str
    label: str


def leaf_steps(steps: Sequence[Step], prefix: str = "") -> list[Leaf]:
    """Every leaf step of a campaign in the order the runner walks them (ids as it gives)."""
    out: list[Leaf] = []
    for i, step in enumerate(steps):
        sid = f"{prefix}{i}"
        handler = HANDLERS[step.kind]
        passes = handler.passes(step)
        if passes is None:
            out.append(Leaf(sid, f"{step.kind} {step.name or ''}".strip()))
            continue
        for k in range(len(passes)):
            out.extend(leaf_steps(handler.body(step), f"{sid}.{k}."))
    return out


def expected_lines(steps: Sequence[Step]) -> list[float]:
    """Line energies (eV) the campaign's analyses look for (their `line_eV` options)."""
    lines: set[float] = set()
    for step in steps:
        handler = HANDLERS[step.kind]
        if handler.passes(step) is not None:
            lines.update(expected_lines(handler.body(step)))
        elif step.kind == "analyze":
            value = step.options.get("line_eV", DEFAULT_LINE_EV.get(step.pipeline))
            if isinstance(value, int | float):
                lines.add(float(value))
    return sorted(lines)


def _read_json(path: Path) -> dict[str, Any]:
    """A JSON file written atomically by the run; {} while it does not exist."""
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return {}


def _since(iso: str | None) -> float:
    try:
        return time.time() - datetime.fromisoformat(iso).timestamp() if iso else 0.0
    except ValueError:
        return 0.0


class CampaignView:
    """Reads a run directory's campaign, progress and summary (all written atomically)."""

    def __init__(self, run_dir: Path) -> None:
        self.run_dir = Path(run_dir)
        self.leaves: list[Leaf] | None = None
        self.lines_ev: list[float] = []
        self.problem: str | None = None
        self._done: list[dict[str, Any]] = []
        self._done_key: tuple[int, ...] | None = None
        self._derived: dict[Callable[..., Any], Any] = {}

    def _load_campaign(self) -> None:
        if self.leaves is not None or not (self.run_dir / CAMPAIGN).is_file():
            return
        try:
            loaded = load_campaign(self.run_dir / CAMPAIGN)
        except (CampaignInvalid, CryodaqError, OSError) as exc:
            self.problem = f"{self.run_dir / CAMPAIGN}: {str(exc).splitlines()[0]}"
            self.leaves = []
            return
        self.leaves = leaf_steps(loaded.campaign.steps)
        self.lines_ev = expected_lines(loaded.campaign.steps)

    def done_steps(self) -> list[dict[str, Any]]:
        """The completed steps' entries, in the order they completed (read again only when
        progress.json changed)."""
        path = self.run_dir / PROGRESS
        try:
            stat = path.stat()
            key = (stat.st_mtime_ns, stat.st_size, stat.st_ino)
        except OSError:
            key = None
        if key is None or key != self._done_key:
            self._done = list(_read_json(path).get("done", {}).values())
            self._done_key, self._derived = key, {}
        return self._done

    def derived(self, fn: Callable[[list[dict[str, Any]]], Any]) -> Any:
        """`fn(done_steps())`, made again only when the completed steps change."""
        done = self.done_steps()
        if fn not in self._derived:
            self._derived[fn] = fn(done)
        return self._derived[fn]

    def snapshot(self, running_stream_s: float = 0.0) -> dict[str, Any]:
        """The progress as plain values; `running_stream_s` is the stream time of an
        acquisition still being written (its step is not yet done)."""
        self._load_campaign()
        summary = _read_json(self.run_dir / SUMMARY)
        done = self.done_steps()
        done_ids = {d.get("id") for d in done}
        leaves = self.leaves or []
        status = summary.get("status", "starting")
        running = status == "running"
        current = next((leaf for leaf in leaves if leaf.sid not in done_ids), None)
        virtual = sum(float(d.get("virtual_time_s") or 0.0) for d in done)
        if running:
            virtual += running_stream_s
            wall = _since(summary.get("started"))
        else:
            virtual = float(summary.get("virtual_time_s") or virtual)
            wall = float(summary.get("wall_time_s") or 0.0)
        error = summary.get("error")
        end = None
        if status not in ("running", "starting"):
            end = f"{status}: {len(done)} steps" + (f"; error: {error}" if error else "")
        return {
            "name": summary.get("campaign") or self.run_dir.name,
            "run_dir": str(self.run_dir),
            "simulated": summary.get("simulated"),
            "status": status,
            "current": (
                {"id": current.sid, "label": current.label} if running and current else None
            ),
            "steps_done": len(done),
            "steps_total": len(leaves),
            "steps_to_go": max(0, len(leaves) - len(done)),
            "virtual_time_s": virtual,
            "wall_time_s": wall,
            "end": end,
            "error": error,
            "problem": self.problem,
        }
