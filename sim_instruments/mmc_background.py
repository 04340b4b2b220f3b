"""What hits the maXs30 array: calibration sources and the background of an unshielded cryostat.

Every process is a Poisson process; `EventGenerator.chunk` draws the events of one stretch of
virtual time as rows (time, pixel or channel, kind, deposit, energy), which `mmc_array` turns
into signals and keeps as truth. Kinds:
- `xray`: a photon of a calibration source (`world.detector.source`: fe55, am241 or a list),
  photoabsorbed in a pixel's absorber with the probability its thickness of Au gives at its
  line's centre (`cryodaq.analysis.am241_lines.au_photoabsorption`, xraydb, as the calibration
  expects; the rest pass through or scatter out); 55Fe energies are drawn from the natural
  (Holzer) Mn Ka / Kb shapes of `cryodaq.analysis.xray_lines`, 241Am's from the Np L lines
  (Lorentzians of their natural widths) and the sharp gammas of
  `cryodaq.analysis.am241_lines.am241_emission`.
- `continuum`: flat background spectrum, `world.background.continuum_per_keV_cm2_s` over the
  absorbers' area (64 x 500 x 500 um^2 = 16 mm^2, REFERENCE section 1).
- `fluorescence`: Cu Ka (8.0 keV) and Nb Ka (16.6 keV) from the holder and the shield.
- `muon`: a shower through the chip hits 2-4 neighbouring pixels within 0.5 us; each hit
  deposits in the absorber (normal shape), the sensor (fast rise) or the substrate (slow).
- `jump`: an instantaneous step of one channel's baseline (energy 0).
- `burst`: phone-like pick-up: for a few seconds, packets of a damped oscillation on every
  channel of one ADC's cable (`burst_groups`), one row per packet and channel (energy 0).
`world.background.shield: ptfe` scales the continuum and the fluorescence lines down.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from cryodaq.analysis.am241_lines import am241_emission, au_photoabsorption
from cryodaq.analysis.line_fit import Lorentzian
from cryodaq.analysis.xray_lines import MN_KA, MN_KB
from cryodaq.sim_instruments.params import number

#: Sampled natural-line energies stay within this distance of their component (eV); the
#: Lorentzian tails beyond (~0.1 % of events) are redrawn.
LORENTZ_WINDOW_EV = 500.0
#: Kinds of truth rows, in the order of their codes.
KINDS = ("xray", "continuum", "fluorescence", "muon", "jump", "burst")
#: Where a muon hit deposits its energy.
DEPOSITS = ("", "absorber", "sensor", "substrate")


def sample_lorentzians(
    shape: Sequence[Lorentzian], rng: np.random.Generator, n: int
) -> np.ndarray:
    """`n` energies from a sum of Lorentzians (a natural line shape), tails cut at
    +-LORENTZ_WINDOW_EV around each component."""
    w = np.array([c.weight for c in shape], dtype=float)
    centre = np.array([c.energy_eV for c in shape])
    half = np.array([c.fwhm_eV for c in shape]) / 2.0
    which = rng.choice(w.size, size=n, p=w / w.sum())
    out = np.empty(n)
    todo = np.arange(n)
    while todo.size:
        k = which[todo]
        x = half[k] * np.tan(np.pi * (rng.random(todo.size) - 0.5))
        ok = np.abs(x) < LORENTZ_WINDOW_EV
        out[todo[ok]] = centre[k[ok]] + x[ok]
        todo = todo[~ok]
    return out


@dataclass(frozen=True)
class SourceLine:
    """One emission line of a source: a natural shape, or a sharp energy."""

    weight: float  # photons per decay (relative)
    energy_eV: float
    shape: tuple[Lorentzian, ...] = ()


#: 55Fe: Mn Ka (Ka1 + Ka2) and Kb; Kb/Ka = 0.136 from the emission probabilities per decay
#: (DDEP/LNHB 55Fe: Ka2 8.45 %, Ka1 16.57 %, Kb 3.40 %; approx.).
FE55 = (SourceLine(25.02, 5898.75, MN_KA), SourceLine(3.40, 6490.45, MN_KB))
#: 241Am: the Np L lines (xraydb energies and natural widths, intensities from the subshell
#: yields) and the gammas (sharp), photons per 100 decays (`cryodaq.analysis.am241_lines`).
AM241 = tuple(
    SourceLine(ln.per_100_decays, ln.energy_eV,
               (Lorentzian(ln.energy_eV, ln.fwhm_eV, 1.0),) if ln.fwhm_eV > 0 else ())
    for ln in am241_emission()
)
SOURCE_LINES = {"fe55": FE55, "am241": AM241}
#: Fluorescence (Ka1, Ka2 at 2:1) of copper and niobium (xraydb/Bearden energies, eV).
CU_KA = ((8047.8, 2.0), (8027.8, 1.0))
NB_KA = ((16615.1, 2.0), (16521.0, 1.0))


@dataclass(frozen=True)
class Source:
    """A calibration source in front of the window: photons per pixel per second, lines."""

    name: str
    rate_per_pixel_hz: float
    lines: tuple[SourceLine, ...]

    def sample(self, rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray]:
        """`n` photon energies and the index of the line each belongs to."""
        p = np.array([line.weight for line in self.lines])
        which = rng.choice(p.size, size=n, p=p / p.sum())
        out = np.empty(n)
        for i, line in enumerate(self.lines):
            sel = which == i
            if line.shape:
                out[sel] = sample_lorentzians(line.shape, rng, int(sel.sum()))
            else:
                out[sel] = line.energy_eV
        return out, which


def sources_from_params(world: Mapping[str, Any]) -> list[Source]:
    """The sources named by `world.detector.source` (str, list or none), rates from
    `world.sources.<name>.rate_per_pixel_hz`."""
    chosen = (world.get("detector") or {}).get("source", "fe55")
    names = [] if chosen in (None, "none", "") else [chosen] if isinstance(chosen, str) else chosen
    out = []
    defaults = {"fe55": 2.5, "am241": 1.0}
    for name in names:
        if name not in SOURCE_LINES:
            raise ValueError(
                f"world.detector.source: {name!r} is not one of {', '.join(SOURCE_LINES)}, none"
            )
        p = (world.get("sources") or {}).get(name) or {}
        rate = number(p, "rate_per_pixel_hz", defaults[name], f"world.sources.{name}", 0.0, 1e4)
        out.append(Source(name, rate, SOURCE_LINES[name]))
    return out


@dataclass(frozen=True)
class Background:
    """Rates and shapes of the background processes (`world.background`)."""

    enabled: bool
    continuum_per_keV_cm2_s: float
    continuum_from_eV: float
    continuum_to_eV: float
    cu_ka_per_cm2_s: float
    nb_ka_per_cm2_s: float
    muon_per_cm2_s: float
    muon_mean_eV: float
    muon_deposits: tuple[float, float, float]  # absorber, sensor, substrate fractions
    jump_per_channel_h: float
    jump_mean_eV: float
    burst_per_h: float
    burst_duration_s: float
    burst_packet_hz: float
    burst_frequency_hz: float
    burst_damping_s: float
    burst_amplitude_eV: float

    @classmethod
    def from_params(cls, params: Mapping[str, Any]) -> Background:
        w = "world.background"
        p = dict(params or {})
        shield = p.get("shield", "none")
        if shield not in ("none", "ptfe", None):
            raise ValueError(f"{w}.shield must be none or ptfe, got {shield!r}")
        ptfe = shield == "ptfe"
        # PTFE (REFERENCE section 1): Cu Ka -85 %, continuum -58 %; Nb Ka at 16.6 keV passes
        # 4.5 mm of PTFE more easily: an assumed -50 %.
        cut_cont = number(p, "ptfe_continuum_reduction", 0.58, w, 0.0, 1.0) if ptfe else 0.0
        cut_cu = number(p, "ptfe_cu_reduction", 0.85, w, 0.0, 1.0) if ptfe else 0.0
        cut_nb = number(p, "ptfe_nb_reduction", 0.5, w, 0.0, 1.0) if ptfe else 0.0
        lo = number(p, "continuum_from_eV", 100.0, w, 0.0)
        hi = number(p, "continuum_to_eV", 20e3, w, lo)
        deposits = p.get("muon_deposits") or {}
        fractions = tuple(
            number(deposits, k, d, f"{w}.muon_deposits", 0.0)
            for k, d in (("absorber", 0.2), ("sensor", 0.4), ("substrate", 0.4))
        )
        if sum(fractions) <= 0:
            raise ValueError(f"{w}.muon_deposits must not all be 0")
        return cls(
            enabled=bool(p.get("enabled", True)),
            continuum_per_keV_cm2_s=number(p, "continuum_per_keV_cm2_s", 3.2e-4, w, 0.0)
            * (1.0 - cut_cont),
            continuum_from_eV=lo,
            continuum_to_eV=hi,
            cu_ka_per_cm2_s=number(p, "cu_ka_per_cm2_s", 2.0e-4, w, 0.0) * (1.0 - cut_cu),
            nb_ka_per_cm2_s=number(p, "nb_ka_per_cm2_s", 1.0e-4, w, 0.0) * (1.0 - cut_nb),
            # sea level: ~1 muon / cm^2 / min through a horizontal surface
            muon_per_cm2_s=number(p, "muon_per_cm2_s", 1.0 / 60.0, w, 0.0),
            muon_mean_eV=number(p, "muon_mean_eV", 8e3, w, 1.0),
            muon_deposits=fractions,  # type: ignore[arg-type]
            jump_per_channel_h=number(p, "jump_per_channel_h", 1.0, w, 0.0),
            jump_mean_eV=number(p, "jump_mean_eV", 2e3, w, 1.0),
            burst_per_h=number(p, "burst_per_h", 1.0, w, 0.0),
            burst_duration_s=number(p, "burst_duration_s", 3.0, w, 1e-3),
            burst_packet_hz=number(p, "burst_packet_hz", 10.0, w, 0.0),
            burst_frequency_hz=number(p, "burst_frequency_hz", 40e3, w, 1.0),
            burst_damping_s=number(p, "burst_damping_s", 2e-4, w, 1e-6),
            burst_amplitude_eV=number(p, "burst_amplitude_eV", 2e3, w, 0.0),
        )


@dataclass(frozen=True)
class ArrayLayout:
    """What the generator needs of the array: pixel -> channel, neighbours, areas, groups."""

    pixel_channel: np.ndarray  # (64,) 1-based channel of each pixel
    rows: int
    cols: int
    pixel_area_cm2: float
    chip_area_cm2: float
    absorber_m: float  # absorber thickness
    groups: tuple[tuple[int, ...], ...]  # channels sharing a cable (one ADC each)


class EventGenerator:
    """Draws the events of the configured sources and background, chunk by chunk."""

    def __init__(self, sources: list[Source], background: Background, layout: ArrayLayout):
        self.sources = sources
        self.background = background
        self.layout = layout
        # photoabsorption in the Au at each line's centre, as the calibration expects (the
        # tails of Np Ll and La2 reach across the Au L3 / L2 edges, 48 and 27 eV away: for
        # absorbers >= 8 um that changes their absorbed fraction by < 4 % and < 1 %)
        self._absorbed = [au_photoabsorption(np.array([ln.energy_eV for ln in s.lines]),
                                             layout.absorber_m * 1e6) for s in sources]

    def chunk(self, t0: float, dt: float, rng: np.random.Generator) -> dict[str, np.ndarray]:
        """Events in [t0, t0 + dt), sorted by time: time_s, pixel (-1: a whole channel),
        channel, kind (code into KINDS), deposit (code into DEPOSITS), energy_eV,
        amplitude_eV (signed step of a jump, oscillation of a burst), phase (bursts)."""
        parts = [self._photons(t0, dt, rng)]
        if self.background.enabled:
            parts += [self._muons(t0, dt, rng), self._jumps(t0, dt, rng), self._bursts(t0, dt, rng)]
        rows = {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}
        order = np.argsort(rows["time_s"], kind="stable")
        return {k: v[order] for k, v in rows.items()}

    def _rows(self, t, pixel, kind, energy, channel=None, deposit=None, amplitude=None, phase=None):
        n = t.size
        if channel is None:
            channel = self.layout.pixel_channel[pixel]
        return {
            "time_s": t,
            "pixel": np.asarray(pixel, dtype=np.int64),
            "channel": np.asarray(channel, dtype=np.int64),
            "kind": np.full(n, KINDS.index(kind), dtype=np.int8),
            "deposit": np.zeros(n, np.int8) if deposit is None else deposit.astype(np.int8),
            "energy_eV": energy,
            "amplitude_eV": np.zeros(n) if amplitude is None else amplitude,
            "phase": np.zeros(n) if phase is None else phase,
        }

    def _photons(self, t0: float, dt: float, rng: np.random.Generator) -> dict[str, np.ndarray]:
        lay, bg = self.layout, self.background
        npix = lay.pixel_channel.size
        parts = [("xray", np.zeros(0))]
        for source, absorbed in zip(self.sources, self._absorbed, strict=True):
            n = rng.poisson(source.rate_per_pixel_hz * npix * dt)
            e, which = source.sample(rng, n)
            keep = rng.random(n) < absorbed[which]
            parts.append(("xray", e[keep]))
        if bg.enabled:
            area = lay.pixel_area_cm2 * npix
            span_keV = (bg.continuum_to_eV - bg.continuum_from_eV) / 1e3
            n = rng.poisson(bg.continuum_per_keV_cm2_s * area * span_keV * dt)
            parts.append(("continuum", rng.uniform(bg.continuum_from_eV, bg.continuum_to_eV, n)))
            for per_cm2_s, lines in ((bg.cu_ka_per_cm2_s, CU_KA), (bg.nb_ka_per_cm2_s, NB_KA)):
                n = rng.poisson(per_cm2_s * area * dt)
                e, w = np.array(lines).T
                parts.append(("fluorescence", rng.choice(e, size=n, p=w / w.sum())))
        rows = []
        for kind, e in parts:
            t = t0 + dt * rng.random(e.size)
            rows.append(self._rows(t, rng.integers(0, npix, e.size), kind, e))
        return {k: np.concatenate([r[k] for r in rows]) for k in rows[0]}

    def _muons(self, t0: float, dt: float, rng: np.random.Generator) -> dict[str, np.ndarray]:
        lay, bg = self.layout, self.background
        n = rng.poisson(bg.muon_per_cm2_s * lay.chip_area_cm2 * dt)
        times, pixels, deposits = [], [], []
        frac = np.array(bg.muon_deposits) / sum(bg.muon_deposits)
        for t in t0 + dt * rng.random(n):
            r, c = rng.integers(0, lay.rows), rng.integers(0, lay.cols)
            # the shower: this pixel, its side neighbour (always another channel) and 0-2 more
            cells = {(r, c), (r, c + 1 if c + 1 < lay.cols else c - 1)}
            for _ in range(rng.integers(0, 3)):
                rr = min(max(r + rng.integers(-1, 2), 0), lay.rows - 1)
                cc = min(max(c + rng.integers(-1, 2), 0), lay.cols - 1)
                cells.add((rr, cc))
            for rr, cc in sorted(cells):
                times.append(t + 0.5e-6 * rng.random())
                pixels.append(rr * lay.cols + cc)
                deposits.append(1 + rng.choice(3, p=frac))
        m = len(times)
        return self._rows(
            np.array(times),
            np.array(pixels, dtype=np.int64),
            "muon",
            rng.exponential(bg.muon_mean_eV, m),
            deposit=np.array(deposits, dtype=np.int8),
        )

    def _jumps(self, t0: float, dt: float, rng: np.random.Generator) -> dict[str, np.ndarray]:
        lay, bg = self.layout, self.background
        channels = np.unique(lay.pixel_channel)
        n = rng.poisson(bg.jump_per_channel_h / 3600.0 * channels.size * dt)
        step = rng.exponential(bg.jump_mean_eV, n) * rng.choice((-1.0, 1.0), n)
        return self._rows(
            t0 + dt * rng.random(n), np.full(n, -1), "jump", np.zeros(n),
            channel=rng.choice(channels, n), amplitude=step,
        )

    def _bursts(self, t0: float, dt: float, rng: np.random.Generator) -> dict[str, np.ndarray]:
        lay, bg = self.layout, self.background
        times, channels, amps = [], [], []
        for start in t0 + dt * rng.random(rng.poisson(bg.burst_per_h / 3600.0 * dt)):
            group = np.array(lay.groups[rng.integers(0, len(lay.groups))])
            duration = rng.exponential(bg.burst_duration_s)
            packets = start + duration * rng.random(rng.poisson(bg.burst_packet_hz * duration) + 1)
            # each channel picks up the field with its own coupling (log-normal, sigma 0.5)
            coupling = bg.burst_amplitude_eV * np.exp(0.5 * rng.standard_normal(group.size))
            for t in packets:
                times.append(np.full(group.size, t))
                channels.append(group)
                amps.append(coupling)
        if not times:
            return self._rows(np.zeros(0), np.zeros(0, np.int64), "burst", np.zeros(0),
                              channel=np.zeros(0, np.int64))
        t = np.concatenate(times)
        return self._rows(
            t, np.full(t.size, -1), "burst", np.zeros(t.size),
            channel=np.concatenate(channels), amplitude=np.concatenate(amps),
            phase=rng.uniform(0.0, 2.0 * math.pi, t.size),
        )
