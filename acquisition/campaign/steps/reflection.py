"""`reflection`: an S11 sweep from a VST or a VNA, saved under its name."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Literal

from pydantic import Field

from cryodaq.acquisition.campaign.fields import Hertz, Name, Step
from cryodaq.acquisition.campaign.steps.base import StepHandler, StepRun
from cryodaq.acquisition.campaign.steps.context import RunContext
from cryodaq.acquisition.units import UnitError, to_si
from cryodaq.acquisition.yaml_source import KeyPath
from cryodaq.drivers.microwave import ReflectionInstrument

if TYPE_CHECKING:
    from cryodaq.acquisition.campaign.checks import StepChecker
    from cryodaq.acquisition.campaign.state import CampaignState

class ReflectionStep(Step):
    kind: Literal["reflection"] = "reflection"
    name: Name
    #: Default: the rig's only instrument that can do it.
    instrument: str | None = None
    start: Hertz
    stop: Hertz
    points: int = Field(2001, ge=2, le=100_001)
    power_dBm: float = -30.0


class ReflectionHandler(StepHandler):
    kind = "reflection"
    model = ReflectionStep

    def check(self, checker: StepChecker, body: Any, path: KeyPath, state: CampaignState) -> None:
        checker.microwave_fields(body, path, ReflectionInstrument, "a reflection's instrument")
        try:
            start, stop = to_si(body["start"], "Hz"), to_si(body["stop"], "Hz")
        except (KeyError, TypeError, UnitError):
            return
        if start >= stop:
            checker.fail((*path, "stop"), f"stop ({stop:g} Hz) must be above start ({start:g} Hz)")

    def run(
        self, run: StepRun, step: ReflectionStep, sid: str, suffix: str, ctx: RunContext
    ) -> dict:
        inst = ctx.only_or_named(step.instrument, ReflectionInstrument, f"reflection {step.name}")
        sweep = inst.reflection(step.start, step.stop, step.points, step.power_dBm)
        attrs = {"power_dBm": step.power_dBm, "time_s": ctx.clock.now()}
        ctx.save_arrays(
            f"{step.name}{suffix}", attrs, frequencies_Hz=sweep.frequencies_Hz, s11=sweep.s11
        )
        return {"points": int(sweep.s11.size), **attrs}
