"""`spectrum`: one power spectrum from a VST or a signal analyser, saved under its name."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Literal

from cryodaq.acquisition.campaign.fields import Duration, Hertz, Name, Step
from cryodaq.acquisition.campaign.steps.base import StepHandler, StepRun
from cryodaq.acquisition.campaign.steps.context import RunContext
from cryodaq.acquisition.yaml_source import KeyPath
from cryodaq.drivers.microwave import SpectrumInstrument

if TYPE_CHECKING:
    from cryodaq.acquisition.campaign.checks import StepChecker
    from cryodaq.acquisition.campaign.state import CampaignState

#: Step fields the instrument is configured with (`SpectrumInstrument.configure_spectrum`).
FIELDS = ("centre", "span", "rbw", "integration")


class SpectrumStep(Step):
    kind: Literal["spectrum"] = "spectrum"
    name: Name
    #: Default: the rig's only instrument that can do it.
    instrument: str | None = None
    centre: Hertz | None = None
    span: Hertz | None = None
    rbw: Hertz | None = None
    integration: Duration | None = None


class SpectrumHandler(StepHandler):
    kind = "spectrum"
    model = SpectrumStep

    def check(self, checker: StepChecker, body: Any, path: KeyPath, state: CampaignState) -> None:
        checker.microwave_fields(body, path, SpectrumInstrument, "a spectrum's instrument")

    def run(
        self, run: StepRun, step: SpectrumStep, sid: str, suffix: str, ctx: RunContext
    ) -> dict:
        inst = ctx.only_or_named(step.instrument, SpectrumInstrument, f"spectrum {step.name}")
        given = {f: getattr(step, f) for f in FIELDS if getattr(step, f) is not None}
        inst.configure_spectrum(**given)
        temperatures = ctx.temperatures()
        spectrum = inst.spectrum()
        attrs = {
            "bin_width_Hz": spectrum.bin_width_Hz,
            "integration_s": spectrum.integration_s,
            "temperatures_K": temperatures,
            "time_s": ctx.clock.now(),
        }
        ctx.save_arrays(
            f"{step.name}{suffix}", attrs,
            frequencies_Hz=spectrum.frequencies_Hz, power_W=spectrum.power_W,
        )  # fmt: skip
        return {
            "bins": int(spectrum.power_W.size),
            "mean_power_W": float(spectrum.power_W.mean()),
            **attrs,
        }
