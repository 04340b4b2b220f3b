"""The `pulses` pipeline's options: its defaults and their checks, with no analysis imported,
so `cryodaq validate` checks a campaign's options cheaply."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from cryodaq.acquisition.pipelines import PipelineError, with_defaults

#: Natural line shapes the pipeline can fit (`cryodaq.analysis.xray_lines.LINE_SHAPES`, which
#: imports the fitting code; a test keeps the two equal).
LINE_SHAPES = ("AlKa", "ClKa", "CaKa", "MnKa", "MnKb")

#: Options of the record pipelines that may be null (`learn_records`: learn from all records).
NULLABLE = ("learn_records",)

DEFAULTS: dict[str, Any] = {
    "line_eV": 5898.75,
    "line_shape": "gaussian",
    "bin_eV": None,
    "window_eV": None,
    "background": False,
    "min_pulses": 20,
    "min_noise": 20,
    "isolation_decays": 8.0,
    "channels": None,
    "save_filter": True,
    "learn_records": 20000,
}


def options(given: Mapping[str, Any] | None) -> dict[str, Any]:
    """The step's options over DEFAULTS, checked (`PipelineError`)."""
    opts = with_defaults(given, DEFAULTS, "pulses", NULLABLE, ("bin_eV", "window_eV"))
    if opts["line_shape"] != "gaussian" and opts["line_shape"] not in LINE_SHAPES:
        raise PipelineError(
            f"pulses: line_shape {opts['line_shape']!r} unknown; allowed: gaussian, "
            + ", ".join(LINE_SHAPES)
        )
    check_learn_records(opts, "pulses")
    if not float(opts["line_eV"]) > 0:
        raise PipelineError(f"pulses: line_eV must be > 0, got {opts['line_eV']}")
    return opts


def check_learn_records(opts: dict[str, Any], pipeline: str) -> None:
    """`learn_records` (records held per channel for the learn steps) is null (all) or a whole
    number >= `min_pulses` (`PipelineError` otherwise); `2e4` is taken as 20000."""
    learn, least = opts["learn_records"], max(opts["min_pulses"], 1)
    if learn is not None and not (float(learn).is_integer() and learn >= least):
        raise PipelineError(
            f"{pipeline}: learn_records must be null (all) or a whole number >= min_pulses "
            f"({opts['min_pulses']}), got {learn}"
        )
    if learn is not None:
        opts["learn_records"] = int(learn)
