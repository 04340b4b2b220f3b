"""The run summary (`summary.json`): what a campaign did, as one typed, frozen record.

The campaign runner writes it after every step (atomically); `cryodaq analyze`, the report
and the command line read it. A summary is never changed in place: each `with_*` returns a
new one.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from cryodaq.acquisition.atomic import write_json_atomic
from cryodaq.acquisition.errors import CryodaqError


def json_default(value: Any) -> Any:
    """`json.dumps` default for step results: arrays as lists, paths as strings."""
    if hasattr(value, "tolist"):
        return value.tolist()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"not JSON-serialisable: {type(value).__name__}")


@dataclass(frozen=True)
class RunSummary:
    """A run's outcome so far: status, times, each completed step's entry, each acquisition's
    totals, each analysis' results and the figures (relative to the run directory)."""

    campaign: str
    rig: str
    simulated: bool
    run_dir: str
    versions: Mapping[str, str]
    started: str
    #: A simulated rig's virtual time 0 as wall-clock ns (records carry real dates).
    clock_epoch_ns: int = 0
    status: str = "running"  # running, completed, interrupted, failed
    error: str | None = None
    finished: str | None = None
    resumed: tuple[str, ...] = ()
    steps_done: int = 0
    virtual_time_s: float = 0.0
    wall_time_s: float = 0.0
    live_time_s: float = 0.0
    drops: Mapping[str, int] = field(default_factory=dict)
    steps: tuple[Mapping[str, Any], ...] = ()
    acquisitions: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    analyze: Mapping[str, Any] = field(default_factory=dict)
    figures: tuple[str, ...] = ()

    def to_json(self) -> dict[str, Any]:
        """The summary as `summary.json` holds it."""
        out = asdict(self)
        for key in ("resumed", "steps", "figures"):
            out[key] = list(out[key])
        return out

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> RunSummary:
        """A summary from `summary.json`'s mapping; unknown keys are ignored."""
        known = {f.name for f in fields(cls)}
        values = {k: v for k, v in data.items() if k in known}
        for key in ("resumed", "steps", "figures"):
            values[key] = tuple(values.get(key, ()))
        return cls(**values)

    @classmethod
    def read(cls, path: Path) -> RunSummary:
        """The summary in `path`; `CryodaqError` if it is missing or not a run summary."""
        try:
            return cls.from_json(json.loads(Path(path).read_text()))
        except (OSError, ValueError, TypeError) as exc:
            raise CryodaqError(f"{path}: not a cryodaq run summary ({exc})") from None

    def write(self, path: Path) -> None:
        """Write the summary to `path` atomically (a reader sees the old or the new one)."""
        write_json_atomic(path, self.to_json(), default=json_default)

    def with_step(self, entry: Mapping[str, Any]) -> RunSummary:
        return replace(self, steps=(*self.steps, dict(entry)))

    def with_acquisition(self, name: str, totals: Mapping[str, Any]) -> RunSummary:
        return replace(self, acquisitions={**self.acquisitions, name: dict(totals)})

    def with_analysis(self, name: str, results: Any, figures: tuple[str, ...] = ()) -> RunSummary:
        """`results` of analysis `name`, and its `figures` added to the run's."""
        return replace(
            self,
            analyze={**self.analyze, name: results},
            figures=tuple(sorted({*self.figures, *figures})),
        )

    def finished_as(
        self, status: str, error: str | None, finished: str, virtual_s: float, wall_s: float,
        steps_done: int,
    ) -> RunSummary:
        """The summary at the end of a run (or of a resumed part): status and totals."""
        drops: dict[str, int] = {}
        for acq in self.acquisitions.values():
            for sink, d in acq["drops"].items():
                drops[sink] = drops.get(sink, 0) + d["records"]
        return replace(
            self,
            status=status,
            error=error,
            finished=finished,
            virtual_time_s=self.virtual_time_s + virtual_s,
            wall_time_s=self.wall_time_s + wall_s,
            steps_done=steps_done,
            live_time_s=sum(a["live_time_s"] for a in self.acquisitions.values()),
            drops=drops,
        )
