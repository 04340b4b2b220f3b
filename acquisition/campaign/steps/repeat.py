"""`repeat`: run a list of steps a number of times."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Literal

from pydantic import Field

from cryodaq.acquisition.campaign.fields import Step
from cryodaq.acquisition.campaign.steps.base import StepHandler
from cryodaq.acquisition.campaign.steps.sweep import MAX_PASSES
from cryodaq.acquisition.yaml_source import KeyPath

if TYPE_CHECKING:
    from cryodaq.acquisition.campaign.checks import StepChecker
    from cryodaq.acquisition.campaign.state import CampaignState


class RepeatStep(Step):
    kind: Literal["repeat"] = "repeat"
    times: int = Field(ge=1, le=MAX_PASSES)
    steps: list[AnyStep]  # noqa: F821 (resolved by `campaign.schema`)


class RepeatHandler(StepHandler):
    kind = "repeat"
    model = RepeatStep

    def passes(self, step: RepeatStep) -> list[dict[str, Any]]:
        return [{} for _ in range(step.times)]

    def body(self, step: RepeatStep) -> list[Step]:
        return step.steps

    def check(self, checker: StepChecker, body: Any, path: KeyPath, state: CampaignState) -> None:
        if isinstance(body, dict):
            times = body.get("times")
            times = times if isinstance(times, int) and not isinstance(times, bool) else 1
            # A second pass sees the state the first one leaves behind (within the budget).
            checker.nested(body.get("steps"), (*path, "steps"), state, times)
            if times > 1 and checker.walks_left > 0:
                checker.walks_left -= 1
                checker.nested(body.get("steps"), (*path, "steps"), state, times)
