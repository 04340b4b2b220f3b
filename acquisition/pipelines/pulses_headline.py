"""Headline of the `pulses` pipeline: resolution per channel at the calibration line, beside
the baseline (noise) resolution, the optimal filter's prediction, pulse shape, rate and counts."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from cryodaq.acquisition.pipelines.report_headline import Table, failed_entries, ok_entries
from cryodaq.acquisition.pipelines.report_numbers import count, fmt, percent

#: Cuts keeping less than this share of the isolated pulses (no other trigger from the
#: isolation time before the record to its end: `isolated_pulses`) are reported.
KEPT_LOW = 0.7

CAPTIONS = {
    "spectrum": "Each channel's spectrum at the calibration line with its likelihood fit: look "
    "for one peak the fit follows, no shoulder or low-energy tail.",
    "pulses": "Average pulse per channel with its two-exponential fit: the dashed fit should "
    "lie on the pulse, rise and decay alike on every channel.",
    "noise_psd": "Noise spectral density per channel: a flat white level with a 1/f rise at low "
    "frequency; sharp lines are pick-up the filter cannot remove.",
    "resolution": "Line, baseline and predicted FWHM per channel: the line should sit on the "
    "baseline and the prediction; a line far above them means drift or a bad calibration.",
}

COLUMNS = (
    "channel", "line FWHM (eV)", "baseline FWHM (eV)", "filter prediction (eV)",
    "rise (µs)", "decay (ms)", "rate (Hz)", "counts in line",
)  # fmt: skip


def _row(name: str, c: Mapping[str, Any], counts: str) -> tuple[str, ...]:
    """A channel's row; the mean row's values without errors at 3 significant digits."""
    return (
        name,
        fmt(c.get("fwhm_eV"), c.get("fwhm_err_eV")),
        fmt(c.get("baseline_fwhm_eV"), c.get("baseline_fwhm_err_eV"), digits=3),
        fmt(c.get("predicted_fwhm_eV"), digits=3),
        fmt(c.get("rise_s"), c.get("rise_err_s"), scale=1e-6, digits=3),
        fmt(c.get("decay_s"), c.get("decay_err_s"), scale=1e-3, digits=3),
        fmt(c.get("rate_hz"), c.get("rate_err_hz"), digits=3),
        counts,
    )


def tables(results: Mapping[str, Any]) -> list[Table]:
    channels = ok_entries(results.get("channels"))
    rows = [_row(ch, c, count(c.get("counts"))) for ch, c in channels.items()]
    mean = results.get("mean")
    if isinstance(mean, Mapping) and len(channels) > 1:
        total = sum(int(c.get("counts") or 0) for c in channels.values())
        rows.append(_row(f"mean of {len(channels)}", mean, f"{count(total)} (total)"))
    line = fmt(results.get("line_eV"), digits=6, unit="eV")
    shape = results.get("line_shape", "gaussian")
    return [Table(
        f"Energy resolution at the {line} line ({shape} fit)",
        COLUMNS,
        tuple(rows),
        "FWHM from a Poisson-likelihood fit of the line; baseline from the noise records "
        "through the same filter; rate = pulse triggers per live second.",
    )]  # fmt: skip


def problems(results: Mapping[str, Any]) -> list[str]:
    out = failed_entries(results.get("channels"), "channel")
    for ch, c in ok_entries(results.get("channels")).items():
        triggers, kept = c.get("pulse_triggers"), c.get("pulses")
        isolated = c.get("isolated_pulses")
        if not (triggers and isolated and kept is not None):
            continue
        if kept < KEPT_LOW * isolated:
            out.append(
                f"channel {ch}: the cuts kept {count(kept)} of the {count(isolated)} pulses "
                f"isolated from pile-up ({percent(kept / isolated)}; {count(triggers)} pulse "
                "triggers in all)."
            )
    return out
