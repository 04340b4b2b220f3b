"""The `ho163` pipeline's options: its defaults and their checks, with no analysis imported,
so `cryodaq validate` checks a campaign's options cheaply."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from cryodaq.acquisition.pipelines import PipelineError, with_defaults
from cryodaq.acquisition.pipelines.pulses_options import NULLABLE, check_learn_records
from cryodaq.analysis.ho163 import Q_EV

SPECTRUM_DEFAULTS: dict[str, Any] = {
    "q_guess_eV": Q_EV,
    "fit_from_eV": 1700.0,
    "fit_to_eV": None,
    "bin_eV": None,
    "exclude_eV": 200.0,
    "target_m_nu_eV": 2.0,
}

DEFAULTS: dict[str, Any] = {
    **SPECTRUM_DEFAULTS,
    "lines": ["AlKa", "CaKa", "MnKa", "MnKb"],
    "activity_Bq": None,
    "isolation_s": 1e-3,
    "isolation_decays": 8.0,
    "fwhm_guess_eV": 5.0,
    "pairs": 60,
    "min_pulses": 50,
    "min_noise": 20,
    "channels": None,
    "seed": 0,
    "learn_records": 20000,
}


def options(given: Mapping[str, Any] | None) -> dict[str, Any]:
    """The step's options over DEFAULTS, checked (`PipelineError`)."""
    opts = with_defaults(given, DEFAULTS, "ho163", NULLABLE, ("fit_to_eV", "bin_eV", "activity_Bq"))
    for key in ("isolation_s", "exclude_eV", "target_m_nu_eV"):
        if not float(opts[key]) >= 0:
            raise PipelineError(f"ho163: {key} must be >= 0, got {opts[key]}")
    if not 0 < float(opts["fit_from_eV"]) < float(opts["q_guess_eV"]):
        raise PipelineError(f"ho163: fit_from_eV must be in (0, q_guess_eV = "
                            f"{opts['q_guess_eV']}), got {opts['fit_from_eV']}")
    check_learn_records(opts, "ho163")
    return opts
