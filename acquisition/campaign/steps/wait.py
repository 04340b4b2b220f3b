"""`wait`: let time pass (virtual time on a simulated rig: instant)."""

from __future__ import annotations

from typing import Literal

from cryodaq.acquisition.campaign.fields import Duration, Step
from cryodaq.acquisition.campaign.steps.base import StepHandler, StepRun
from cryodaq.acquisition.campaign.steps.context import RunContext


class WaitStep(Step):
    kind: Literal["wait"] = "wait"
    duration: Duration


class WaitHandler(StepHandler):
    kind = "wait"
    model = WaitStep
    scalar_body = "duration"

    def run(self, run: StepRun, step: WaitStep, sid: str, suffix: str, ctx: RunContext) -> dict:
        ctx.clock.sleep(step.duration)
        return {"waited_s": step.duration}
