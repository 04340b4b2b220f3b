"""Headline of the `holmes` pipeline: per TES design the resolution at the resolution line,
the noise-only and predicted resolution, the pulse's time constants, the slew and time
resolution; over the array the pile-up fraction and the uMUX channel budget."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from cryodaq.acquisition.pipelines.report_headline import Table, failed_entries, ok_entries
from cryodaq.acquisition.pipelines.report_numbers import count, fmt, percent

CAPTIONS = {
    "resonators": "The tune sweep with the resonators found and the tones placed: one tone on "
    "each dip, no two dips closer than the guard factor allows.",
    "pulses": "A single pulse of the shape line per design: the designs differ in rise and "
    "decay; a step or a jump in it would be a slipped flux quantum.",
    "spectra": "Filtered amplitudes per detector, before calibration: the target's lines (Al, "
    "Cl, Ca Kα; Mn Kα, Kβ) sharp on every detector, compressed at high energy by saturation.",
    "noise_psd": "Noise per design with its electrothermal components: the sum should follow "
    "the data; lines at the flux-ramp harmonics are demodulation artefacts.",
    "calibration": "Second-order calibration per detector: the line points on the curve; the "
    "curvature is the TES's saturation.",
    "time_resolution": "Fraction of equal-energy pulse pairs resolved against their separation: "
    "the time resolution τR is where each curve crosses one half.",
    "mn_ka": "Mn Kα1/Kα2 per detector with the natural (Holzer) shape fitted: the fit should "
    "follow both peaks; extra width means drift left uncorrected.",
}

RESOLUTION = (
    "design", "channel", "line FWHM (eV)", "noise FWHM (eV)", "filter prediction (eV)",
    "time resolution (µs)", "pulses",
)  # fmt: skip
SHAPE = (
    "design", "channel", "τ rise (µs)", "τ fast (µs)", "τ slow (µs)", "slow fraction",
    "max slew / limit (Φ₀/µs)",
)  # fmt: skip


def _resolution(ch: str, c: Mapping[str, Any]) -> tuple[str, ...]:
    return (
        str(c.get("design", "–")),
        ch,
        fmt(c.get("fwhm_eV"), c.get("fwhm_err_eV")),
        fmt(c.get("noise_fwhm_eV"), c.get("noise_fwhm_err_eV")),
        fmt(c.get("predicted_fwhm_eV"), digits=3),
        fmt(c.get("time_resolution_s"), scale=1e-6, digits=3),
        count(c.get("pulses")),
    )


def _shape(ch: str, c: Mapping[str, Any]) -> tuple[str, ...]:
    return (
        str(c.get("design", "–")),
        ch,
        fmt(c.get("tau_rise_s"), c.get("tau_rise_err_s"), scale=1e-6),
        fmt(c.get("tau_fast_s"), c.get("tau_fast_err_s"), scale=1e-6),
        fmt(c.get("tau_slow_s"), c.get("tau_slow_err_s"), scale=1e-6),
        fmt(c.get("slow_fraction"), c.get("slow_fraction_err")),
        f"{fmt(c.get('max_slew_phi0_per_us'), digits=2)} / "
        f"{fmt(c.get('slew_limit_phi0_per_us'), digits=2)}",
    )


def _number(ch: str) -> tuple[bool, int, str]:
    """Channel names in numeric order ("2" before "10"), names that are not numbers last."""
    return (not ch.isdigit(), int(ch) if ch.isdigit() else 0, ch)


def tables(results: Mapping[str, Any]) -> list[Table]:
    channels = ok_entries(results.get("channels"))
    order = sorted(channels, key=lambda ch: (str(channels[ch].get("design", "")), _number(ch)))
    line = next((c.get("shape_line") for c in channels.values() if c.get("shape_line")), None)
    resolution = Table(
        "Resolution per detector, by design",
        RESOLUTION,
        tuple(_resolution(ch, channels[ch]) for ch in order),
        "Line FWHM from the natural-width fit of the resolution line (Mn Kα by default); "
        "noise FWHM from the noise records through the same filter; time resolution from "
        "simulated pulse pairs on the measured noise.",
    )
    shape = Table(
        "Pulse shape per detector",
        SHAPE,
        tuple(_shape(ch, channels[ch]) for ch in order),
        "Three-exponential fit of the average pulse" + (f" of {line}" if line else "")
        + "; the largest slew against the limit the flux ramp can follow.",
    )
    pile = results.get("pileup_fraction") or {}
    collisions = results.get("resonator_collisions") or []
    array = Table(
        "Array: pile-up and uMUX channel budget",
        ("quantity", "value"),
        (
            ("pile-up fraction A τ_R", percent(pile.get("value"))),
            ("activity per detector A", fmt(pile.get("activity_Bq"), unit="Bq", digits=3)),
            ("time resolution τ_R (mean)", fmt(pile.get("time_resolution_s"), unit="µs",
                                               scale=1e-6, digits=3)),  # fmt: skip
            ("channel budget (measured / board)",
             f"{count(results.get('channel_budget'))} / "
             f"{count(results.get('board_channel_budget'))}"),  # fmt: skip
            ("guard factor", fmt(results.get("guard_factor"), digits=3)),
            ("resonators found", count(results.get("resonators_found"))),
            ("resonator spacing", fmt(results.get("resonator_spacing_Hz"), unit="MHz",
                                      scale=1e6, digits=3)),  # fmt: skip
            ("resonator bandwidth", fmt(results.get("resonator_bandwidth_Hz"), unit="MHz",
                                        scale=1e6, digits=3)),  # fmt: skip
            ("colliding resonators", count(len(collisions))),
        ),
    )
    return [resolution, shape, array]


def problems(results: Mapping[str, Any]) -> list[str]:
    out = failed_entries(results.get("channels"), "detector")
    for ch, c in ok_entries(results.get("channels")).items():
        slew, limit = c.get("max_slew_phi0_per_us"), c.get("slew_limit_phi0_per_us")
        if isinstance(slew, float) and isinstance(limit, float) and slew > limit:
            out.append(f"detector {ch}: the pulse slews at {fmt(slew, digits=3)} Φ₀/µs, above "
                       f"the flux ramp's limit of {fmt(limit, digits=3)} Φ₀/µs.")
        slipped = c.get("slipped_events")
        if slipped:
            out.append(f"detector {ch}: {count(slipped)} isolated pulses slipped a flux quantum "
                       "and were set aside.")
    collisions = results.get("resonator_collisions") or []
    if collisions:
        out.append(f"{count(len(collisions))} resonator pairs are closer than the guard factor "
                   "allows: their channels cross-talk.")
    return out
