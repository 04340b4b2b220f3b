"""The `haloscope` pipeline's options: its defaults and their checks, with no analysis imported,
so `cryodaq validate` checks a campaign's options cheaply."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from cryodaq.acquisition.pipelines import PipelineError, with_defaults
from cryodaq.acquisition.pipelines.yfactor_options import options as yfactor_options

DEFAULTS: dict[str, Any] = {
    "reflection": "s11",
    "spectra": "spec",
    "thermometers": {"att": "tc.2", "cav": "tc.3", "mx": "tc.1"},
    "hemt_K": 4.0,
    "A3": 0.9,
    "yfactor": {},
    "fixed_losses": {"A1": 0.96, "A2": 0.94, "A_cir": 0.96},
    "ripple_window_bins": 201,
    "ripple_polyorder": 2,
    "ripple_knot_Hz": 250e3,
}
LOSSES = ("A1", "A_cir", "A2")


def options(given: Mapping[str, Any] | None) -> dict[str, Any]:
    """The step's options over DEFAULTS, checked (`PipelineError`)."""
    opts = with_defaults(given, DEFAULTS, "haloscope", ("yfactor", "thermometers", "fixed_losses"))
    therm = {**DEFAULTS["thermometers"], **((given or {}).get("thermometers") or {})}
    if set(therm) != {"att", "cav", "mx"}:
        raise PipelineError(f"haloscope: `thermometers` takes att, cav, mx; got {sorted(therm)}")
    opts["thermometers"] = therm
    fixed = {**DEFAULTS["fixed_losses"], **((given or {}).get("fixed_losses") or {})}
    bad = set(fixed) - set(LOSSES)
    if bad or not all(0.0 < float(v) <= 1.0 for v in fixed.values()):
        raise PipelineError(f"haloscope: `fixed_losses` takes A1, A_cir, A2 in (0, 1]; got {fixed}")
    opts["fixed_losses"] = {k: float(v) for k, v in fixed.items()}
    raw_y = (given or {}).get("yfactor", {})
    opts["yfactor"] = None if raw_y is None else yfactor_options(raw_y)
    return opts
