"""One background group of the `mmc` pipeline: the burst cut per ADC, the coincidence cut, the
ellipse cut, and the rate between `band_eV`, raw and corrected for the pixels' trigger and cut
efficiencies (`mmc_efficiency`).

A part (one stored acquisition) may hold several ADCs (acquired as one stream): the burst cut
counts each ADC's triggers alone, as the paper does, and drops that ADC's minutes; the
coincidence flags come from the trigger engine, across every channel of the part.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from cryodaq.acquisition.pipelines.mmc_pixel import PartInfo, PixelOutcome, Shared
from cryodaq.analysis.mmc_background import BurstCut, background_rate, burst_cut

#: Efficiencies below this are not corrected for (an event there would weigh too much).
MIN_EFFICIENCY = 0.1


def background_group(
    shared: Shared, label: str, parts: tuple[PartInfo, ...], ok: dict[str, PixelOutcome]
) -> tuple[dict[str, Any], np.ndarray, float]:
    """Cuts and rate of one background group; returns the numbers, the energies of the events
    that pass every cut and the exposure (pixel area x live time summed, cm^2 s)."""
    opts = shared.opts
    cuts: dict[str, Any] = {"triggers": 0, "burst": {"triggers_removed": 0}}
    bursts: dict[tuple[int, str | None], BurstCut] = {}
    for i, part in enumerate(parts):
        per_adc: dict[str | None, list[np.ndarray]] = {}
        for o in ok.values():
            if _has(o, label, i):
                per_adc.setdefault(_adc(o, label, i), []).append(o.triggers[label][i])
        for adc, times in per_adc.items():
            trig = np.concatenate(times)
            bursts[i, adc] = burst_cut(
                trig, part.start_s, part.live_s,
                max_per_minute=int(opts["burst_per_minute"]),
                minute_s=float(opts["minute_s"]), guard=int(opts["burst_guard_minutes"]),
            )  # fmt: skip
            cuts["triggers"] += int(trig.size)
            cuts["burst"]["triggers_removed"] += int((~bursts[i, adc].keeps(trig)).sum())
    n = {"events": 0, "burst": 0, "coincidence": 0, "ellipse": 0}
    kept_e, weights, exposure, full = [], [], 0.0, 0.0
    pixel_area = float(opts["pixel_area_cm2"])
    for o in ok.values():
        ev = o.background.get(label)
        mine = [i for i in range(len(parts)) if _has(o, label, i)]
        exposure += pixel_area * sum(bursts[i, _adc(o, label, i)].live_after_s for i in mine)
        full += pixel_area * sum(parts[i].live_s for i in mine)
        if ev is None:
            continue
        b = np.ones(ev.time_s.size, bool)
        for i in mine:
            sel = ev.part == i
            b[sel] = bursts[i, _adc(o, label, i)].keeps(ev.time_s[sel])
        c = ev.coincidence <= 1
        n["events"] += ev.time_s.size
        n["burst"] += int((~b).sum())
        n["coincidence"] += int((b & ~c).sum())
        n["ellipse"] += int((b & c & ~ev.inside).sum())
        e = ev.energy_eV[b & c & ev.inside]
        kept_e.append(e)
        eff = o.efficiency.at(e) if o.efficiency is not None else np.ones(e.size)
        weights.append(1.0 / np.maximum(eff, MIN_EFFICIENCY))
    energies = np.concatenate(kept_e) if kept_e else np.zeros(0)
    total_live = sum(p.live_s for p in parts)
    lost = 1.0 - exposure / full if full > 0 else None
    cuts["burst"].update(
        {
            "events_removed": n["burst"],
            "dropped_s": total_live * lost if lost is not None else 0.0,
            "dropped_s_per_adc": {
                str(adc): sum(b.dropped_s for (_, a), b in bursts.items() if a == adc)
                for adc in {a for _, a in bursts}
            },
            "live_time_fraction_lost": lost,
            "minutes_dropped": int(sum(b.dropped.sum() for b in bursts.values())),
            "dropped_intervals_s": [list(iv) for b in bursts.values() for iv in b.intervals()],
        }
    )
    cuts["coincidence"] = {"events_removed": n["coincidence"], "live_time_fraction_lost": 0.0}
    cuts["ellipse"] = {"events_removed": n["ellipse"], "live_time_fraction_lost": 0.0}
    cuts["events"] = n["events"]
    cuts["events_kept"] = int(energies.size)
    area = pixel_area * len(ok)
    lo, hi = (float(x) for x in opts["band_eV"])
    numbers: dict[str, Any] = {"label": label, "acquisitions": [p.name for p in parts],
                               "cuts": cuts}
    if exposure > 0:
        rate = background_rate(energies, exposure / area, area, lo, hi)
        w = np.concatenate(weights) if weights else np.zeros(0)
        corrected = background_rate(energies, exposure / area, area, lo, hi, weights=w)
        numbers.update(
            rate_per_keV_cm2_s=rate.rate_per_keV_cm2_s,
            rate_err=rate.rate_err,
            # divided by the trigger and chi2-zeta cut efficiency at each event's energy
            rate_corrected_per_keV_cm2_s=corrected.rate_per_keV_cm2_s,
            rate_corrected_err=corrected.rate_err,
            live_time_s=rate.live_time_s,
            counts=rate.counts,
            area_cm2=area,
            band_eV=[lo, hi],
        )
    return numbers, energies, exposure


def _has(o: PixelOutcome, label: str, i: int) -> bool:
    """Whether the pixel's channel was recorded in part `i` of group `label`."""
    times = o.triggers.get(label, [])
    return i < len(times) and times[i] is not None


def _adc(o: PixelOutcome, label: str, i: int) -> str | None:
    """The ADC the pixel's channel came from in part `i` of group `label`."""
    adcs = o.adcs.get(label, [])
    return adcs[i] if i < len(adcs) else None
