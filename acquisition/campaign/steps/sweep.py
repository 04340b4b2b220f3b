"""`sweep`: run a list of steps once per point of settings (paired lists, or a grid)."""

from __future__ import annotations

import itertools
import math
from typing import TYPE_CHECKING, Any, Literal

from pydantic import Field, model_validator

from cryodaq.acquisition.campaign.fields import Step
from cryodaq.acquisition.campaign.steps.base import StepHandler
from cryodaq.acquisition.yaml_source import KeyPath

if TYPE_CHECKING:
    from cryodaq.acquisition.campaign.checks import Entry, StepChecker
    from cryodaq.acquisition.campaign.state import CampaignState

#: Sweep points walked with their own instrument state (every value is checked regardless).
MAX_SWEEP_POINTS_WALKED = 256
#: Most points of one sweep, and most passes of one repeat.
MAX_PASSES = 100_000


class SweepStep(Step):
    """Run `steps` once per point: `over` pairs equal-length lists, `grid` takes products."""

    kind: Literal["sweep"] = "sweep"
    over: dict[str, list[Any]] = Field(default_factory=dict)
    grid: dict[str, list[Any]] = Field(default_factory=dict)
    steps: list[AnyStep]  # noqa: F821 (resolved by `campaign.schema`)

    @model_validator(mode="after")
    def _points(self) -> SweepStep:
        if not self.over and not self.grid:
            raise ValueError("a sweep needs `over` (paired lists) or `grid` (all combinations)")
        lengths = {len(v) for v in self.over.values()}
        if len(lengths) > 1:
            raise ValueError(f"lists under `over` must have equal lengths, got {sorted(lengths)}")
        count = max(lengths, default=1) * math.prod(len(v) for v in self.grid.values())
        if count > MAX_PASSES:
            raise ValueError(f"{count} points; a sweep has at most {MAX_PASSES}")
        return self


def points(step: SweepStep) -> list[dict[str, Any]]:
    """The settings of each point of a sweep: paired `over` lists, times the `grid` product."""
    over = [
        dict(zip(step.over, values, strict=True))
        for values in zip(*step.over.values(), strict=True)
    ]
    grid = [
        dict(zip(step.grid, values, strict=True))
        for values in itertools.product(*step.grid.values())
    ]
    return [{**o, **g} for o in (over or [{}]) for g in (grid or [{}])]


class SweepHandler(StepHandler):
    kind = "sweep"
    model = SweepStep

    def passes(self, step: SweepStep) -> list[dict[str, Any]]:
        return points(step)

    def body(self, step: SweepStep) -> list[Step]:
        return step.steps

    def check(self, checker: StepChecker, body: Any, path: KeyPath, state: CampaignState) -> None:
        if not isinstance(body, dict):
            return
        axes: dict[str, list[list[Entry]]] = {}
        for table in ("over", "grid"):
            lists = body.get(table)
            axes[table] = [
                [(key, v, (*path, table, key), (*path, table, key, j)) for j, v in enumerate(vs)]
                for key, vs in (lists.items() if isinstance(lists, dict) else ())
                if isinstance(vs, list)
            ]
        paired = list(zip(*axes["over"], strict=False)) if axes["over"] else [()]
        grid = [[(entry,) for entry in values] for values in axes["grid"]]
        count = len(paired) * math.prod(len(values) for values in grid)
        combos = (sum(p, ()) for p in itertools.product(paired, *grid))
        last, walked = state, 0
        budget = max(1, min(MAX_SWEEP_POINTS_WALKED, checker.walks_left))
        for point in itertools.islice(combos, budget):
            last = state.copy()
            for entry in point:
                checker.assign(last, *entry)
            # The first point names every point's data; the others check their state.
            checker.nested(body.get("steps"), (*path, "steps"), last, count,
                           None if walked == 0 else walked)
            walked += 1
            checker.walks_left -= 1
        if 0 < walked < count:  # values only points beyond those would set
            for entry in (e for values in [*axes["over"], *axes["grid"]] for e in values):
                checker.assign(state.copy(), *entry, budget=False)
        if not walked:
            checker.nested(body.get("steps"), (*path, "steps"), last, 1)
        state.values = last.values  # the instruments stay at the last point
