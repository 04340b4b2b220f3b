"""Trigger and chi2-zeta cut efficiency of one `mmc` pixel versus energy, from its own data.

The pixel's average pulse (its template), scaled with its calibration to energy E, is added to
its isolated noise records, in software; the edge trigger the acquisition ran (threshold,
kernel width and polarity as stored with the acquisition) is applied to each, and so is the
ellipse cut (`cryodaq.analysis.trigger_efficiency`). The fraction that fires (or that the cut
keeps) at each E is the efficiency; the 50 % and 90 % points are reported, with those
expected from the noise and the threshold alone (the template in white Gaussian noise of the
kernel rms measured on the noise records) and the noise-free step (the energy whose template's
largest kernel value equals the threshold). The background rate is corrected with the product
of both curves.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from cryodaq.analysis.mmc_shape import Ellipse, shape_parameters
from cryodaq.analysis.optimal_filter import AveragePulse, OptimalFilter
from cryodaq.analysis.trigger_efficiency import (
    EfficiencyCurve,
    efficiency_curve,
    expected_threshold_eV,
    fires,
    kernel_sigma,
    model_efficiency,
)

#: Energies (eV) the trigger and the cut efficiency are measured at, and the noise records
#: used at most for each (the cut's chi2 and zeta cost a correlation per record).
ENERGIES_EV = np.geomspace(5.0, 5000.0, 61)
CUT_ENERGIES_EV = np.geomspace(5.0, 3000.0, 12)
MAX_RECORDS = 400
MAX_CUT_RECORDS = 60
#: Samples after the pretrigger where an injected pulse's trigger is looked for, beyond the
#: kernel's own span (2 x width): the rise and the placement of the average pulse.
TRIGGER_SLACK = 24


@dataclass(frozen=True)
class Efficiencies:
    """A pixel's trigger and cut efficiency curves, and what its trigger was."""

    trigger: EfficiencyCurve | None
    cut: EfficiencyCurve
    threshold: Mapping[str, Any]  # the acquisition's trigger of this channel

    def at(self, energy_eV: np.ndarray) -> np.ndarray:
        """The combined efficiency at `energy_eV` (trigger x cut)."""
        trig = self.trigger.at(energy_eV) if self.trigger is not None else 1.0
        return trig * self.cut.at(energy_eV)

    def numbers(self, expected: Mapping[str, Any] | None) -> dict[str, Any]:
        out: dict[str, Any] = {"cut_efficiency": _points(self.cut)}
        if self.trigger is not None:
            out["trigger_efficiency"] = {
                **_points(self.trigger),
                **(expected or {}),
                **{k: self.threshold.get(k) for k in ("edge_threshold", "edge_width",
                                                      "polarity", "sigma", "n_sigma")},
            }  # fmt: skip
        return out


def _points(curve: EfficiencyCurve) -> dict[str, Any]:
    return {"e50_eV": curve.crossing(0.5), "e90_eV": curve.crossing(0.9), "trials": curve.trials}


def measure(
    noise: np.ndarray,
    avg: AveragePulse,
    filt: OptimalFilter,
    ellipse: Ellipse,
    noise_variance: float,
    amplitude_of: Any,
    eV_per_amplitude: float,
    pretrigger: int,
    trigger: Mapping[str, Any] | None,
) -> tuple[Efficiencies, dict[str, Any] | None]:
    """The pixel's efficiencies on its `noise` records (n, L), and what the noise (the kernel's
    rms on those records) and the threshold alone let expect: the 50 % and 90 % points of
    `model_efficiency`, and the noise-free step."""
    noise = np.asarray(noise[:MAX_RECORDS], dtype=np.float64)
    template = np.asarray(avg.template, dtype=np.float64)

    def kept(records: np.ndarray, energy: float) -> np.ndarray:
        shape = shape_parameters(records, template, pretrigger, noise_variance)
        return ellipse.inside(shape.chi2, shape.zeta, filt.apply(records))

    cut = efficiency_curve(noise[:MAX_CUT_RECORDS], template, amplitude_of, CUT_ENERGIES_EV, kept)
    trig_curve, expected = None, None
    thr = None if trigger is None else trigger.get("edge_threshold")
    if thr:
        width, pol = int(trigger.get("edge_width", 2)), int(trigger.get("polarity", 1))
        window = (pretrigger - 2, pretrigger + 2 * width + TRIGGER_SLACK)

        def fired(records: np.ndarray, energy: float) -> np.ndarray:
            return fires(records, float(thr), width, pol, window)

        trig_curve = efficiency_curve(noise, template, amplitude_of, ENERGIES_EV, fired)
        sigma = float(np.median(kernel_sigma(noise, width)))
        model = model_efficiency(template / eV_per_amplitude, float(thr), sigma, width, pol,
                                 window, ENERGIES_EV)  # fmt: skip
        expected = {
            "expected_e50_eV": model.crossing(0.5),
            "expected_e90_eV": model.crossing(0.9),
            "noise_free_step_eV": expected_threshold_eV(float(thr), template / eV_per_amplitude,
                                                        width),
            "noise_records_sigma": sigma,
        }  # fmt: skip
    return Efficiencies(trig_curve, cut, dict(trigger or {})), expected
