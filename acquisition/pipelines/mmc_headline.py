"""Headline of the `mmc` pipeline: the array's mean resolution at Mn Kα and each pixel's, the
background rate of each group with the cuts that shaped it, and the cuts' efficiencies."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from cryodaq.acquisition.pipelines.mmc_options import DEFAULTS
from cryodaq.acquisition.pipelines.report_headline import Table, column, failed_entries, ok_entries
from cryodaq.acquisition.pipelines.report_numbers import count, fmt, percent

#: The calibration's ellipse cut is learned to remove this share of the Kα events (the
#: default `reject_fraction`); more than three times it is reported.
ELLIPSE_EXPECTED = float(DEFAULTS["reject_fraction"])
#: A background cut that costs more than this share of the live time is reported.
LIVE_LOST_HIGH = 0.10

CAPTIONS = {
    "ka_histogram": "Mn Kα of a typical pixel with its fit: the Kα1/Kα2 structure resolved, "
    "the fitted width the pixel's resolution.",
    "resolution_map": "Kα FWHM over the 64 pixels as laid out on the chip (– : not analysed): "
    "look for outliers and for rows or columns that share a readout problem.",
    "pulse_chi2_zeta": "A Mn Kα pulse, and the calibration events in χ² against ζ with the "
    "ellipse cut: good events form one tight cluster inside the ellipse.",
    "background": "Background spectra of each group after all cuts: fluorescence lines on a "
    "flat continuum; the shield should lower the continuum.",
    "efficiency": "Trigger and χ²–ζ cut efficiency against energy, from pulses injected in "
    "noise records: a sharp step; E50 sets the lowest usable energy.",
}

PIXEL_COLUMNS = (
    "pixel", "channel", "Kα FWHM (eV)", "baseline FWHM (eV)", "filter prediction (eV)",
    "counts in Kα", "clean / pulses", "trigger E50 (eV)", "ellipse cut removed",
)  # fmt: skip


def _pixel_row(name: str, p: Mapping[str, Any], noisy: bool) -> tuple[str, ...]:
    trig = p.get("trigger_efficiency") or {}
    ellipse = p.get("ellipse") or {}
    return (
        f"{name} (noisy)" if noisy else name,
        count(p.get("channel")),
        fmt(p.get("fwhm_eV"), p.get("fwhm_err_eV")),
        fmt(p.get("baseline_fwhm_eV"), p.get("baseline_fwhm_err_eV")),
        fmt(p.get("predicted_fwhm_eV"), digits=3),
        count(p.get("counts")),
        f"{count(p.get('clean_pulses'))} / {count(p.get('pulses'))}",
        fmt(trig.get("e50_eV"), digits=3),
        percent(ellipse.get("rejected_ka_fraction")),
    )


def _summary(results: Mapping[str, Any]) -> Table:
    pixels = results.get("pixels") or {}
    ok = ok_entries(pixels)
    noisy = results.get("noisy") or []
    trig = [p.get("trigger_efficiency") or {} for p in ok.values()]
    cut = [p.get("cut_efficiency") or {} for p in ok.values()]
    lines = results.get("calibration_lines") or {}
    nl = lines.get("nonlinearity") or {}

    def mean(values: list[float], unit: str = "eV") -> str:
        return fmt(sum(values) / len(values), unit=unit, digits=3) if values else "–"

    rows = [
        ("mean Kα FWHM (noisy pixels left out)",
         fmt(results.get("mean_fwhm_eV"), results.get("mean_fwhm_err_eV"), "eV")),
        ("mean baseline FWHM", fmt(results.get("mean_baseline_fwhm_eV"), unit="eV", digits=3)),
        ("mean filter prediction", fmt(results.get("mean_predicted_fwhm_eV"), unit="eV",
                                       digits=3)),
        ("pixels analysed / in the array",
         f"{count(results.get('analysed'))} / {count(len(pixels))}"),
        ("noisy pixels left out", ", ".join(map(str, noisy)) or "none"),
        ("trigger efficiency E50 / E90 (mean)",
         f"{mean(column(trig, 'e50_eV'))} / {mean(column(trig, 'e90_eV'))}"),
        ("expected from the noise E50 / E90 (mean)",
         f"{mean(column(trig, 'expected_e50_eV'))} / {mean(column(trig, 'expected_e90_eV'))}"),
        ("χ²–ζ cut efficiency E50 / E90 (mean)",
         f"{mean(column(cut, 'e50_eV'))} / {mean(column(cut, 'e90_eV'))}"),
        ("Kα events removed by the ellipse cut",
         percent((results.get("cuts") or {}).get("calibration_ellipse_rejected_fraction"))),
    ]  # fmt: skip
    if nl.get("energy_eV") and len(lines.get("lines") or {}) < 2:
        rows.append(("nonlinearity", "not measured: one calibration line"))
    elif nl.get("energy_eV"):
        rows.append((
            f"nonlinearity at {fmt(nl['energy_eV'], unit='eV', digits=5)}",
            percent(nl.get("mean"), nl.get("mean_err")),
        ))  # fmt: skip
    return Table("Array resolution and efficiencies", ("quantity", "value"), tuple(rows))


def _background(results: Mapping[str, Any]) -> Table | None:
    groups = results.get("background_groups") or {}
    if not groups:
        return None
    cuts = results.get("cuts") or {}
    rows = []
    for label, g in groups.items():
        c = cuts.get(label) or {}
        burst = c.get("burst") or {}
        band = g.get("band_eV") or [None, None]
        rows.append((
            str(label),
            fmt(g.get("rate_per_keV_cm2_s"), g.get("rate_err")),
            fmt(g.get("rate_corrected_per_keV_cm2_s"), g.get("rate_corrected_err")),
            f"{fmt(band[0], scale=1e3, digits=2)}–{fmt(band[1], scale=1e3, digits=2)}",
            count(g.get("counts")),
            fmt(g.get("live_time_s"), digits=3),
            f"{count(burst.get('events_removed'))} "
            f"({percent(burst.get('live_time_fraction_lost'))} of live time)",
            count((c.get("coincidence") or {}).get("events_removed")),
            count((c.get("ellipse") or {}).get("events_removed")),
            f"{count(c.get('events_kept'))} / {count(c.get('events'))}",
        ))  # fmt: skip
    return Table(
        "Background",
        ("group", "rate (/keV/cm²/s)", "efficiency-corrected", "band (keV)", "counts",
         "live time (s)", "burst cut removed", "coincidence cut removed",
         "ellipse cut removed", "events kept"),
        tuple(rows),
        "Rate per keV, cm² of analysed absorber and second of live time after the burst cut; "
        "the corrected rate divides each event by the trigger and χ²–ζ efficiency at its energy.",
    )  # fmt: skip


def tables(results: Mapping[str, Any]) -> list[Table]:
    noisy = set(results.get("noisy") or [])
    pixels = ok_entries(results.get("pixels"))
    out = [_summary(results)]
    background = _background(results)
    if background is not None:
        out.append(background)
    out.append(Table(
        "Pixels",
        PIXEL_COLUMNS,
        tuple(_pixel_row(n, p, n in noisy) for n, p in pixels.items()),
        "Kα FWHM from the line fit with its natural shape; trigger E50 where half of the "
        "pulses of that energy trigger.",
    ))  # fmt: skip
    return out


def problems(results: Mapping[str, Any]) -> list[str]:
    out = failed_entries(results.get("pixels"), "pixel")
    noisy = results.get("noisy") or []
    if noisy:
        out.append(f"noisy pixels left out of the means: {', '.join(map(str, noisy))}.")
    found = (results.get("calibration_lines") or {}).get("lines") or {}
    if len(found) == 1:
        out.append(f"the energy calibration found only {next(iter(found))}: a line through it "
                   "and zero, no nonlinearity measured (too few counts in the other lines?).")
    cuts = results.get("cuts") or {}
    ellipse = cuts.get("calibration_ellipse_rejected_fraction")
    if isinstance(ellipse, float) and ellipse > 3 * ELLIPSE_EXPECTED:
        out.append(f"the χ²–ζ ellipse cut removed {percent(ellipse)} of the Kα events "
                   f"(about {percent(ELLIPSE_EXPECTED)} expected).")
    for label, c in cuts.items():
        lost = ((c or {}).get("burst") or {}).get("live_time_fraction_lost") if isinstance(
            c, Mapping) else None
        if isinstance(lost, float) and lost > LIVE_LOST_HIGH:
            out.append(f"background {label}: the burst cut dropped {percent(lost)} of the "
                       "live time.")
    return out
