"""The `holmes` pipeline's options: its defaults and their checks, with no analysis imported,
so `cryodaq validate` checks a campaign's options cheaply."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from cryodaq.acquisition.pipelines import PipelineError, with_defaults
from cryodaq.acquisition.pipelines.pulses_options import NULLABLE, check_learn_records
from cryodaq.analysis.ho163 import Q_EV

DEFAULTS: dict[str, Any] = {
    "lines": ["AlKa", "ClKa", "CaKa", "MnKa", "MnKb"],
    "resolution_line": "MnKa",
    "shape_line": "ClKa",
    "pair_energy_eV": Q_EV / 2.0,
    "pairs": 100,
    "activity_Bq": None,
    "smooth_samples": 1,
    "phase_correction": True,
    "isolation_decays": 8.0,
    "isolation_s": 4e-3,
    "baseline_window_s": 0.15,
    "tes": None,
    "artefact_hz": 62.5e3,
    "fwhm_guess_eV": 5.0,
    "min_pulses": 50,
    "min_noise": 20,
    "channels": None,
    "designs": None,
    "tune": "tune",
    "seed": 0,
    "learn_records": 20000,
}


def options(given: Mapping[str, Any] | None) -> dict[str, Any]:
    """The step's options over DEFAULTS, checked (`PipelineError`)."""
    opts = with_defaults(given, DEFAULTS, "holmes", (*NULLABLE, "artefact_hz"), ("activity_Bq",))
    for key in ("designs", "tes"):
        if not isinstance(opts[key], Mapping | None):
            raise PipelineError(f"holmes: option {key} must be a mapping, got {opts[key]!r}")
    for key in ("resolution_line", "shape_line"):
        if opts[key] not in opts["lines"]:
            raise PipelineError(f"holmes: {key} {opts[key]!r} is not among lines {opts['lines']}")
    if not 1 <= int(opts["smooth_samples"]) <= 64:
        raise PipelineError(f"holmes: smooth_samples must be 1 .. 64, got {opts['smooth_samples']}")
    if not float(opts["baseline_window_s"]) >= 0:
        raise PipelineError(f"holmes: baseline_window_s must be >= 0, got "
                            f"{opts['baseline_window_s']}")
    if not float(opts["pair_energy_eV"]) > 0:
        raise PipelineError(f"holmes: pair_energy_eV must be > 0, got {opts['pair_energy_eV']}")
    check_learn_records(opts, "holmes")
    if opts["designs"] is not None:
        opts["designs"] = {int(k): str(v) for k, v in dict(opts["designs"]).items()}
    return opts
