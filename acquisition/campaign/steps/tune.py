"""`tune`: sweep the uMUX band, find the resonators, put a tone on each minimum."""

from __future__ import annotations

import json
import logging
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
from pydantic import Field

from cryodaq.acquisition.campaign.fields import Step
from cryodaq.acquisition.campaign.steps.base import StepError, StepHandler, StepRun
from cryodaq.acquisition.campaign.steps.context import RunContext
from cryodaq.acquisition.yaml_source import KeyPath
from cryodaq.analysis.resonator import find_dips
from cryodaq.drivers.umux import UmuxBoard

if TYPE_CHECKING:
    from cryodaq.acquisition.campaign.checks import StepChecker
    from cryodaq.acquisition.campaign.state import CampaignState

log = logging.getLogger(__name__)
#: Half the board's baseband: the sweep covers +-HALF_BAND_HZ around the LO.
HALF_BAND_HZ = 256e6


class TuneStep(Step):
    """Sweep the uMUX band, find the resonators, put a tone at each minimum, enable them."""

    kind: Literal["tune"] = "tune"
    instrument: str
    points: int = Field(20_001, ge=101, le=200_001)
    channels: int | None = Field(None, ge=1, description="at most this many tones")


class TuneHandler(StepHandler):
    kind = "tune"
    model = TuneStep

    def data_name(self, step: TuneStep, suffix: str) -> str:
        return f"{step.name or 'tune'}{suffix}"

    def check(self, checker: StepChecker, body: Any, path: KeyPath, state: CampaignState) -> None:
        if not isinstance(body, dict):
            return
        spec = checker.instrument(
            (*path, "instrument"), body.get("instrument"), (UmuxBoard,), "a tune's instrument"
        )
        if spec is None:
            return
        wanted = body.get("channels")
        count = len(spec.driver.channel_groups()["channels"][0])
        ramp = state.ramp(spec.name)
        budget = state.budget
        if isinstance(wanted, int) and not isinstance(wanted, bool) and wanted > count:
            checker.fail((*path, "channels"), f"{spec.name} has {count} channels, not {wanted}")
        elif isinstance(wanted, int) and budget and ramp:
            problem = budget.exceeded(wanted, *ramp)
            if problem:
                checker.fail((*path, "channels"), f"{problem} on {spec.name}")
        if budget and ramp:
            fits = min(count, budget.channels(*ramp), budget.resonators)
            state.enable_tones(spec.name, min(wanted, fits) if isinstance(wanted, int) else fits)
        else:
            state.enable_tones(spec.name, None)

    def run(self, run: StepRun, step: TuneStep, sid: str, suffix: str, ctx: RunContext) -> dict:
        """Find the resonators in a full-band sweep and put one tone on each minimum."""
        board = ctx.typed(step.instrument, UmuxBoard, f"tune {step.instrument}")
        sweep = board.sweep(-HALF_BAND_HZ * 0.999, HALF_BAND_HZ * 0.999, step.points)
        dips = find_dips(sweep.baseband_hz, sweep.s21)
        budget = board.channel_budget
        wanted = min(len(dips), step.channels or budget)
        if wanted > budget:
            raise StepError(
                f"tune {step.instrument}: {wanted} tones exceed the channel budget "
                f"{budget} at the present flux ramp"
            )
        for ch in board.channel_ids:
            board.channel(ch).enabled = False
        placed = [board.set_tone(i + 1, float(f)) for i, f in enumerate(dips.freq_hz[:wanted])]
        ctx.save_arrays(
            self.data_name(step, suffix),
            {"lo_hz": sweep.lo_hz, "budget": budget},
            baseband_hz=sweep.baseband_hz,
            s21=sweep.s21,
            dips_hz=dips.freq_hz,
            tones_hz=np.array(placed),
        )
        return {"resonators_found": len(dips), "tones": wanted, "channel_budget": budget}

    def restoring(self, *, continuing: bool) -> str | None:
        return "restoring tones"  # its tones, not its sweep

    def restore(self, run: StepRun, step: TuneStep, suffix: str, ctx: RunContext) -> None:
        """Put back the tones a completed tune placed (`data/<name>.npz`), as the board held
        them, without sweeping again; refused if the board's LO moved since."""
        board = ctx.typed(step.instrument, UmuxBoard, f"tune {step.instrument}")
        name = self.data_name(step, suffix)
        data = ctx.run_dir / "data"
        try:
            with np.load(data / f"{name}.npz") as npz:
                tones = np.asarray(npz["tones_hz"], dtype=np.float64)
            saved = json.loads((data / f"{name}.json").read_text())
        except (OSError, KeyError, ValueError) as exc:
            raise StepError(f"tune {step.instrument}: cannot restore the tones of {name!r} "
                            f"from {data}: {exc}") from None
        lo = float(board.lo_frequency)
        if abs(lo - float(saved["lo_hz"])) > 1.0:
            raise StepError(f"tune {step.instrument}: the LO is at {lo:.9g} Hz, the tones of "
                            f"{name!r} were placed at {saved['lo_hz']:.9g} Hz")
        for ch in board.channel_ids:
            board.channel(ch).enabled = False
        for i, f in enumerate(tones):
            board.set_tone(i + 1, float(f))
        log.info("tune %s: %d tones restored from %s", step.instrument, tones.size, name)
