"""The `mmc` pipeline's options: its defaults and their checks, with no analysis imported,
so `cryodaq validate` checks a campaign's options cheaply."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from cryodaq.acquisition.pipelines import PipelineError, with_defaults
from cryodaq.acquisition.pipelines.pulses_options import NULLABLE, check_learn_records

ROWS = "ABCDEFGH"


def maxs30_layout() -> dict[str, list[str]]:
    """FLL channel -> [positive pixel, negative pixel] of the maXs30 chip: channel k reads
    column (k - 1) % 8 + 1 of the row pair (A, B), (C, D), (E, F), (G, H) number (k - 1) // 8."""
    out = {}
    for k in range(1, 33):
        pair, col = divmod(k - 1, 8)
        out[str(k)] = [f"{ROWS[2 * pair]}{col + 1}", f"{ROWS[2 * pair + 1]}{col + 1}"]
    return out


DEFAULTS: dict[str, Any] = {
    "background": {},
    "wiring": {"adc1": 1, "adc2": 17},
    "layout": None,  # maxs30_layout()
    "thermometers": [1, 8, 25, 32],
    "reject_fraction": 0.01,
    "burst_per_minute": 30,
    "burst_guard_minutes": 1,
    "minute_s": 60.0,
    "band_eV": [1000.0, 10000.0],
    "pixel_area_cm2": 0.05 * 0.05,  # 500 um x 500 um absorbers
    "noisy_factor": 1.5,
    "min_pulses": 30,
    "min_noise": 20,
    "learn_records": 20000,
    "isolation_decays": 8.0,
    "thermometer_smoothing_s": 0.2,
    "thermometer_guard_s": 0.03,
    "channels": None,
    "spectrum_bin_eV": 200.0,
    "spectrum_max_eV": 20000.0,
    "sources": ["fe55"],  # in front during the calibration acquisitions: fe55 [, am241]
    "absorber_thickness_um": 20.0,  # Au: the expected rates of the calibration lines
}


#: Calibration sources the pipeline knows (`cryodaq.analysis.calibration_sources.SOURCES`;
#: a test keeps the two equal).
CALIBRATION_SOURCES = ("fe55", "am241")


def calibration_sources(opts: Mapping[str, Any]) -> tuple[tuple[str, ...], float]:
    """Option `sources` (a name or a list) and `absorber_thickness_um`, checked."""
    raw = opts["sources"]
    sources = (raw,) if isinstance(raw, str) else tuple(str(s) for s in raw or ())
    if ("fe55" not in sources or any(s not in CALIBRATION_SOURCES for s in sources)
            or len(set(sources)) != len(sources)):
        raise PipelineError(
            f"mmc: option sources must list the calibration sources once each, fe55 among them "
            f"(Mn Ka gives the template and the resolution) and optionally am241; got {raw!r}"
        )
    thickness = float(opts["absorber_thickness_um"])
    if not 0.0 < thickness <= 1000.0:
        raise PipelineError(f"mmc: absorber_thickness_um must be in (0, 1000], got {thickness}")
    return sources, thickness


def options(given: Mapping[str, Any] | None) -> dict[str, Any]:
    """The step's options over DEFAULTS, checked (`PipelineError`)."""
    if isinstance((given or {}).get("sources"), str):  # one source: `sources: fe55`
        given = {**(given or {}), "sources": [given["sources"]]}  # type: ignore[index]
    opts = with_defaults(given, DEFAULTS, "mmc", NULLABLE)
    if not isinstance(opts["layout"], Mapping | None):
        raise PipelineError(f"mmc: option layout must be a mapping, got {opts['layout']!r}")
    opts["layout"] = {str(k): list(v) for k, v in (opts["layout"] or maxs30_layout()).items()}
    if not isinstance(opts["background"], dict):
        raise PipelineError("mmc: option background must map labels to acquisition lists")
    if not 0 < float(opts["reject_fraction"]) < 1:
        raise PipelineError(
            f"mmc: reject_fraction must be in (0, 1), got {opts['reject_fraction']}"
        )
    lo, hi = (float(x) for x in opts["band_eV"])
    if not 0 <= lo < hi:
        raise PipelineError(
            f"mmc: band_eV must be [lo, hi] with 0 <= lo < hi, got {opts['band_eV']}"
        )
    calibration_sources(opts)
    check_learn_records(opts, "mmc")
    return opts
