"""`tune`: sweep the uMUX band, find the resonators, put a tone on each minimum, and measure
the channel budget from them.

The tones go on the minima of the sweep taken as the board runs (flux ramp on: the dips averaged
over the ramp). The resonators' own widths need the flux still: with the ramp running a second
sweep is taken with it off (and the ramp put back), and its Lorentzian fits give the centres and
full widths f_r/Q_L that fix the guard factor g_f = spacing / bandwidth and the budget
f_ADC/(2 f_ramp n_Phi0 g_f) at the board's ramp (`cryodaq.analysis.channel_budget`); neighbours
closer than `min_guard` widths are reported (result, log) as colliding."""

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
from cryodaq.analysis.channel_budget import MIN_GUARD, MeasuredBudget, measured_budget
from cryodaq.analysis.resonator import Dips, find_dips
from cryodaq.drivers.umux import BASEBAND_HALF_WIDTH_HZ, Sweep, UmuxBoard

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
    min_guard: float = Field(MIN_GUARD, gt=0, le=100,
                             description="neighbours closer than this many widths collide")


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
        """Find the resonators in a full-band sweep, put one tone on each minimum, measure the
        budget from the resonators' fitted widths and spacings."""
        board = ctx.typed(step.instrument, UmuxBoard, f"tune {step.instrument}")
        sweep = board.sweep(-HALF_BAND_HZ * 0.999, HALF_BAND_HZ * 0.999, step.points)
        dips = find_dips(sweep.baseband_hz, sweep.s21)
        still = _still_dips(board, step.points, dips)
        f_ramp, n_phi0 = float(board.ramp_frequency), float(board.ramp_amplitude)
        try:
            budget = measured_budget(still.freq_hz, still.fwhm_hz, 2.0 * BASEBAND_HALF_WIDTH_HZ,
                                     f_ramp, n_phi0, step.min_guard)
        except ValueError as exc:
            raise StepError(f"tune {step.instrument}: no channel budget from the "
                            f"{len(still)} resonators found: {exc}") from None
        board_budget = board.channel_budget
        wanted = min(len(dips), step.channels or min(budget.channels, board_budget))
        for limit, what in ((budget.channels, _formula(budget, f_ramp, n_phi0)),
                            (board_budget, "the board's own budget (CHAN:BUDG?)")):
            if wanted > limit:
                raise StepError(f"tune {step.instrument}: {wanted} tones exceed the channel "
                                f"budget {limit}: {what}")
        for ch in board.channel_ids:
            board.channel(ch).enabled = False
        placed = [board.set_tone(i + 1, float(f)) for i, f in enumerate(dips.freq_hz[:wanted])]
        collided = _collisions(budget, still, np.array(placed), sweep.lo_hz)
        for c in collided:
            log.warning("tune %s: resonators at %.6f and %.6f GHz collide: %.3g MHz apart, "
                        "%.2f mean widths (< min_guard %g)%s", step.instrument,
                        c["f1_GHz"], c["f2_GHz"], c["spacing_Hz"] / 1e6, c["guard"],
                        step.min_guard, "; their widths overlap" if c["overlap"] else "")
        numbers = {
            "channel_budget": budget.channels,
            "board_channel_budget": board_budget,
            "guard_factor": budget.guard,
            "spacing_Hz": budget.spacing_hz,
            "bandwidth_Hz": budget.bandwidth_hz,
            "collisions": collided,
        }
        ctx.save_arrays(
            self.data_name(step, suffix),
            {"lo_hz": sweep.lo_hz, "budget": budget.channels, "ramp_hz": f_ramp,
             "n_phi0": n_phi0, **numbers},
            baseband_hz=sweep.baseband_hz,
            s21=sweep.s21,
            dips_hz=dips.freq_hz,
            tones_hz=np.array(placed),
            resonators_hz=still.freq_hz,
            widths_hz=still.fwhm_hz,
        )
        return {"resonators_found": len(dips), "tones": wanted, **numbers}

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


def _still_dips(board: UmuxBoard, points: int, dips: Dips) -> Dips:
    """The resonators with the flux still: a sweep with the ramp off (put back after), or
    `dips` when the ramp is not running."""
    if not board.ramp_on:
        return dips
    board.ramp_on = False
    try:
        sweep: Sweep = board.sweep(-HALF_BAND_HZ * 0.999, HALF_BAND_HZ * 0.999, points)
    finally:
        board.ramp_on = True
    return find_dips(sweep.baseband_hz, sweep.s21)


def _formula(budget: MeasuredBudget, f_ramp: float, n_phi0: float) -> str:
    adc = 2.0 * BASEBAND_HALF_WIDTH_HZ
    return (f"f_ADC/(2 f_ramp n_Phi0 g_f) = {adc / 1e6:g} MHz/(2 x {f_ramp / 1e3:g} kHz x "
            f"{n_phi0:g} x {budget.guard:.3g}), g_f = {budget.spacing_hz / 1e6:.4g} MHz / "
            f"{budget.bandwidth_hz / 1e6:.4g} MHz measured")


def _collisions(budget: MeasuredBudget, still: Dips, tones_hz: np.ndarray,
                lo_hz: float) -> list[dict[str, Any]]:
    """Each collision with the resonators' RF frequencies and the channels (1..) whose tone
    sits within half a spacing of them (None: no tone)."""
    def channel(f: float) -> int | None:
        if tones_hz.size == 0:
            return None
        i = int(np.argmin(np.abs(tones_hz - f)))
        return i + 1 if abs(tones_hz[i] - f) < 0.5 * budget.spacing_hz else None

    out = []
    for c in budget.collisions:
        f1, f2 = float(still.freq_hz[c.first]), float(still.freq_hz[c.second])
        out.append({"f1_GHz": (lo_hz + f1) / 1e9, "f2_GHz": (lo_hz + f2) / 1e9,
                    "channels": [channel(f1), channel(f2)], "spacing_Hz": c.spacing_hz,
                    "guard": c.guard, "overlap": c.overlap})
    return out
