"""The HOLMES TES array behind a uMUX board: four detector designs, their sources, noise and
bath coupling, and the truth tests compare the analysis with.

World parameters: a `world.detectors.<name>` entry with `model: tes` is a TES of design
`design` (default: the entry's name when it is one of a, b, c, d; `DESIGNS` holds their
defaults). Any default can be overridden in the entry: `rise_s`, `fast_s`, `slow_s`,
`slow_fraction` (`pulse_shapes.three_exponential`), `phi0_per_eV`, `saturation_eV`
(`tes_response.pulse_height_phi0`), `noise_fwhm_eV` (optimal-filter FWHM of the noise alone),
`excess_fwhm_eV` (default 0: a Gaussian scatter of each deposit's effective energy, relative,
of this FWHM at Mn Ka1 (`EXCESS_REFERENCE_EV`): the absorber's thermalisation and position
dependence, which broaden lines beyond the noise, as the paper's 4.5 eV Mn Ka against 3.3 eV
of noise for design (a)),
`loop_gain`, `noise_mix` (relative white input densities of the TES noise terms of
`cryodaq.analysis.tes_noise`), `rate_hz` (fluorescence photons per second) and `lines` (weights of
`xray_lines.LINE_SHAPES` lines, natural shapes), `ho163_activity_Bq` (implant; the spectrum of
`cryodaq.analysis.ho163`), `bath_plate`, `reference_K`, `baseline_phi0_per_K`, `gain_per_K` (bath
temperature moves the baseline and the gain together).

Each detector's flux (Phi0) is generated at the ramp-period boundaries: Poisson arrivals of
both sources superposed (true pile-up: pulses simply add), heights from the non-linear
response times the bath gain at the arrival, the TES noise terms (white noise through their
transfer functions, one-pole sections at the rise and fast-decay times), and the baseline.
The TES noise amplitude is set so that the optimal filter on noise alone (TES terms + the
readout noise of a well-tuned channel: a tone of the reference amplitude at the centre of the
resonator's swing, as `UmuxModel.nominal_readout_density` predicts it) has FWHM
`noise_fwhm_eV`, for records of `NOISE_RECORD` samples with `NOISE_PRETRIGGER` before the
arrival at the ramp rate; a worse-placed tone adds its own extra readout noise on top.

Truth, as a test reaches it: `rig.world.detector_array("holmes")` (the name is the uMUX
board's sim param `array`) is the `TesArray`; its `truth()` gives equal-length arrays over
every event generated, in time order: `time_s` (World time of arrival; demodulated sample i
of an acquisition started at World time `stream_start_s` is the flux averaged over
[stream_start_s + i / f_ramp, stream_start_s + (i + 1) / f_ramp)), `channel` (board channel
reading the detector then; -1 if none), `resonator`, `design` ("a".."d"), `kind` ("line" or
"ho163"), `line` (target line name, "" for 163Ho), `energy_eV`, `height_phi0` (pulse height
incl. the bath gain) and `slipped` (the demodulator of that channel was off by a different
number of whole quanta just before the arrival and `SLIP_WINDOW_FAST` fast decay times
after). `detectors()`: {channel: injected parameters} of the channels reading a TES
(`TesDetector.parameters`: design, tau_rise_s, tau_fast_s, tau_slow_s, slow_fraction,
phi0_per_eV, saturation_eV, noise_fwhm_eV, excess_fwhm_eV, rates, bath coefficients,
resonator); `TesDetector.expected_line_fwhm_eV(E)` the instrumental FWHM a line at E gets
(noise through the response's slope at its height, plus the excess): what a perfect
analysis measures, leaving out what the flux-ramp demodulation adds: a flux that
moves by b quanta within a ramp period shifts the first harmonic's phase by ~b/(4 pi
n_Phi0) quanta, periodic in the flux (the sin/cos image term; 3e-4 Phi0 rms at 0.01
Phi0/period), and the dropped reset sample leaves a static error of 2e-4 Phi0 rms. On a Mn
Ka pulse of design (a) these scatter the amplitude by ~1e-4 of its height (noise-free
least squares: 1.3e-4; in the runs' optimal-filter amplitudes with the true arrival phase
and bath gain taken out, 0.3-1e-4 above the 2.3-2.6e-4 of the noise): +1-4 % on the line."""

from __future__ import annotations

import functools
import math
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import numba
import numpy as np

from cryodaq.analysis.ho163 import ho163_cdf
from cryodaq.analysis.optimal_filter import FWHM_PER_SIGMA
from cryodaq.analysis.pulse_shapes import three_exponential
from cryodaq.analysis.tes_noise import (
    TES_COMPONENTS,
    component_numerators,
    record_grid,
    scale_for_fwhm,
    tes_noise_psd,
)
from cryodaq.analysis.tes_response import (
    energy_per_phi0,
    pulse_height_phi0,
    shape_peak,
    unit_height_pulse,
)
from cryodaq.analysis.xray_lines import LINE_SHAPES
from cryodaq.sim_instruments import ziggurat
from cryodaq.sim_instruments.params import number

if TYPE_CHECKING:
    from cryodaq.sim_instruments.world import World

#: Defaults of the four HOLMES designs (seed paper Fig. 2, Tables 2-3 ranges: rise 10-15 us,
#: pulses ~300 us, a slow decay holding a few % of the energy; 1 Phi0 ~ 11 uA). (a) follows
#: the paper's calibration curve (see `tes_response`); (b) converts heat to current worse;
#: (c) is faster at another working point with a small dynamic range: Mn Ka starts at
#: 0.36 Phi0/us (1.46 x the 0.25 Phi0/us limit; demodulated pulses slip from ~1.3 x, the
#: period averaging softens the first step), Ca Ka at 0.96 x does not; (d) has the larger
#: heat capacity: smaller pulses.
DESIGNS: dict[str, dict[str, float]] = {
    "a": {"rise_s": 13e-6, "fast_s": 75e-6, "slow_s": 500e-6, "slow_fraction": 0.04,
          "phi0_per_eV": 1.0 / 2734.5, "saturation_eV": 62.7e3, "noise_fwhm_eV": 3.3},
    "b": {"rise_s": 12e-6, "fast_s": 80e-6, "slow_s": 550e-6, "slow_fraction": 0.05,
          "phi0_per_eV": 3.0e-4, "saturation_eV": 60e3, "noise_fwhm_eV": 4.1},
    "c": {"rise_s": 10e-6, "fast_s": 45e-6, "slow_s": 400e-6, "slow_fraction": 0.03,
          "phi0_per_eV": 4.6e-4, "saturation_eV": 40e3, "noise_fwhm_eV": 4.1},
    "d": {"rise_s": 11e-6, "fast_s": 50e-6, "slow_s": 450e-6, "slow_fraction": 0.03,
          "phi0_per_eV": 2.4e-4, "saturation_eV": 80e3, "noise_fwhm_eV": 6.2},
}
#: Relative white input densities of the TES noise terms before scaling.
NOISE_MIX = {"thermal": 1.0, "tes_johnson": 1.5, "load_johnson": 0.4}
#: Fluorescence target lines and their relative weights (55Fe on CaCO3 + NaCl + Al).
TARGET_LINES = {"AlKa": 0.10, "ClKa": 0.25, "CaKa": 0.25, "MnKa": 0.35, "MnKb": 0.05}
#: Energy (Mn Ka1, eV) at which `excess_fwhm_eV` is the FWHM of the relative scatter.
EXCESS_REFERENCE_EV = 5898.853
#: Record on which `noise_fwhm_eV` is defined (samples at the ramp rate).
NOISE_RECORD = 1024
NOISE_PRETRIGGER = 256
#: Readout noise (Phi0/sqrt(Hz)) assumed for a detector no board has set one for (HEMT-limited
#: uMUX at the default tone power: 0.4 - 0.6 uPhi0/sqrt(Hz)).
TYPICAL_READOUT = 5e-7
#: A pulse is followed for this many slow decay times.
TAIL_SLOW = 12.0
#: Natural line shapes are sampled within +-this of each component (eV).
LORENTZ_CUT_EV = 200.0
#: A slip counts for an event if it happens within this many fast decay times of arrival.
SLIP_WINDOW_FAST = 6.0
KINDS = ("line", "ho163")


@numba.njit(cache=True, nogil=True)
def _tes_noise(out, state, filt, coef, sigma):  # pragma: no cover - numba
    """out[i] = sum over the noise terms c of A_c r_c + B_c f_c, where r_c and f_c are white
    normals (rms sigma[c]) through one-pole low-passes y = a y + (1 - a) x at the rise (a =
    coef[0]) and fast-decay (coef[1]) times: H = A/(1 + s tau_r) + B/(1 + s tau_f). `filt`
    (terms x 2) holds the sections' states; `coef` rows 2.. hold (A_c, B_c)."""
    s0, s1, s2, s3 = ziggurat.load(state)
    a_r, a_f = coef[0, 0], coef[0, 1]
    for i in range(out.shape[0]):
        total = 0.0
        for c in range(filt.shape[0]):
            x, s0, s1, s2, s3 = ziggurat.normal(s0, s1, s2, s3)
            x *= sigma[c]
            filt[c, 0] = a_r * filt[c, 0] + (1.0 - a_r) * x
            filt[c, 1] = a_f * filt[c, 1] + (1.0 - a_f) * x
            total += coef[c + 1, 0] * filt[c, 0] + coef[c + 1, 1] * filt[c, 1]
        out[i] = total
    ziggurat.store(state, s0, s1, s2, s3)


@functools.lru_cache(maxsize=4)
def _ho163_table() -> tuple[np.ndarray, np.ndarray]:
    return ho163_cdf()


def _design(name: str, p: Mapping[str, Any], where: str) -> str:
    design = str(p.get("design", name if name in DESIGNS else ""))
    if design not in DESIGNS:
        raise ValueError(f"{where}.design must be one of {', '.join(DESIGNS)}, got {design!r}")
    return design


class TesDetector:
    """One TES on one resonator: its events, noise and bath coupling (see the module)."""

    def __init__(self, world: World, name: str, params: Mapping[str, Any],
                 rng: np.random.Generator, where: str) -> None:
        p = dict(params)
        self.world = world
        self.name = name
        self.design = _design(name, p, where)
        d = DESIGNS[self.design]
        self.rise_s = number(p, "rise_s", d["rise_s"], where, 1e-8, 1e-2)
        self.fast_s = number(p, "fast_s", d["fast_s"], where, self.rise_s * 1.01, 1.0)
        self.slow_s = number(p, "slow_s", d["slow_s"], where, self.fast_s, 10.0)
        self.slow_fraction = number(p, "slow_fraction", d["slow_fraction"], where, 0.0, 0.5)
        self.phi0_per_eV = number(p, "phi0_per_eV", d["phi0_per_eV"], where, 1e-9, 1.0)
        self.saturation_eV = number(p, "saturation_eV", d["saturation_eV"], where, 1.0, 1e9)
        self.noise_fwhm_eV = number(p, "noise_fwhm_eV", d["noise_fwhm_eV"], where, 1e-3, 1e4)
        self.excess_fwhm_eV = number(p, "excess_fwhm_eV", 0.0, where, 0.0, 1e3)
        self.loop_gain = number(p, "loop_gain", 10.0, where, 0.0, 1e4)
        mix = dict(p.get("noise_mix") or {})
        unknown = set(mix) - set(TES_COMPONENTS)
        if unknown:
            raise ValueError(f"{where}.noise_mix: unknown terms {sorted(unknown)} "
                             f"(allowed: {', '.join(TES_COMPONENTS)})")
        self.noise_mix = {c: number(mix, c, NOISE_MIX[c], f"{where}.noise_mix", 0.0, 1e6)
                          for c in TES_COMPONENTS}
        if not any(self.noise_mix.values()):
            raise ValueError(f"{where}.noise_mix: at least one term must be > 0")
        self.rate_hz = number(p, "rate_hz", 5.0, where, 0.0, 1e5)
        self.activity_Bq = number(p, "ho163_activity_Bq", 0.0, where, 0.0, 1e5)
        lines = dict(p.get("lines") or TARGET_LINES)
        for line in lines:
            if line not in LINE_SHAPES:
                raise ValueError(f"{where}.lines: unknown line {line!r} "
                                 f"(known: {', '.join(LINE_SHAPES)})")
        self.line_names = list(lines)
        weights = np.array([number(lines, k, 0.0, f"{where}.lines", 0.0) for k in lines])
        if self.rate_hz > 0 and not weights.sum() > 0:
            raise ValueError(f"{where}.lines: weights must not all be 0")
        self.line_p = weights / weights.sum() if weights.sum() > 0 else weights
        plates = world.thermal.names()
        plate = p.get("bath_plate", "holder" if "holder" in plates else None)
        if plate is not None and plate not in plates:
            raise ValueError(f"{where}.bath_plate: no plate {plate!r} in world.thermal "
                             f"(plates: {', '.join(plates)})")
        self.bath_plate: str | None = plate
        self.reference_K = number(p, "reference_K", 0.040, where, 1e-4, 10.0)
        self.baseline_per_K = number(p, "baseline_phi0_per_K", -20.0, where, -1e6, 1e6)
        self.gain_per_K = number(p, "gain_per_K", -30.0, where, -1e6, 1e6)

        self._rng_events = rng.spawn(1)[0]
        self._noise_state = ziggurat.new_state(rng)
        self._filt = np.zeros((len(TES_COMPONENTS), 2))
        self._noise_scale: float | None = None
        self._peak = shape_peak(self.rise_s, self.fast_s, self.slow_s, self.slow_fraction)
        self._span_s = TAIL_SLOW * self.slow_s
        self._next_t: float | None = None
        self._active_t = np.zeros(0)
        self._active_h = np.zeros(0)
        self._events: list[tuple[float, int, str, float, float, int]] = []
        self._bath: tuple[float, float] | None = None  # (time, K) of the last block's end
        #: (time, whole quanta the demodulator is off by from then on), as it changes.
        self.slip_changes: list[tuple[float, int]] = []

    # -- noise ----------------------------------------------------------------------------

    def template_per_eV(self, rate_hz: float) -> np.ndarray:
        """Small-signal pulse per eV (Phi0/eV) on the `NOISE_RECORD` record at `rate_hz`, as
        the demodulator delivers it: the flux averaged over each ramp period (the mean of the
        pulse at the period's two boundaries, between which the SQUID sees it linear)."""
        t = (np.arange(NOISE_RECORD + 1) - NOISE_PRETRIGGER) / rate_hz
        pulse = self.phi0_per_eV * unit_height_pulse(t, self.rise_s, self.fast_s, self.slow_s,
                                                     self.slow_fraction)
        return 0.5 * (pulse[:-1] + pulse[1:])

    def noise_psd(self, f_hz: np.ndarray, readout_density: float = 0.0) -> dict[str, np.ndarray]:
        """The injected noise PSD's components (Phi0^2/Hz) at the present scale, as the
        analytic model of `cryodaq.analysis.tes_noise` (`realised_psd`: what the generator
        makes)."""
        scale = self._noise_scale or 0.0
        densities = {c: scale * self.noise_mix[c] for c in TES_COMPONENTS}
        return tes_noise_psd(f_hz, densities, self.rise_s, self.fast_s, self.loop_gain,
                             readout_density)

    def _filters(self, rate_hz: float) -> np.ndarray:
        """Pole factors (row 0) and partial-fraction weights (A_c, B_c) of each term's
        discrete realisation: H = A/(1 + s tau_r) + B/(1 + s tau_f) by one-pole sections."""
        nums = component_numerators(self.loop_gain, self.fast_s)
        coef = np.zeros((len(TES_COMPONENTS) + 1, 2))
        coef[0] = (math.exp(-1.0 / (rate_hz * self.rise_s)),
                   math.exp(-1.0 / (rate_hz * self.fast_s)))
        tr, tf = self.rise_s, self.fast_s
        for row, c in enumerate(TES_COMPONENTS, start=1):
            n0, n1 = nums[c]
            coef[row] = ((n0 - n1 / tr) / (1.0 - tf / tr), (n0 - n1 / tf) / (1.0 - tr / tf))
        return coef

    def realised_psd(self, f_hz: np.ndarray, rate_hz: float,
                     scale: float | None = None) -> np.ndarray:
        """PSD (Phi0^2/Hz) of the TES noise as the demodulator delivers it: the one-pole
        sections' discrete responses, times cos^2(pi f / rate) of the averaging over each
        ramp period (the flux is linear between the periods' boundaries)."""
        scale = (self._noise_scale or 0.0) if scale is None else scale
        coef = self._filters(rate_hz)
        z = np.exp(-2j * np.pi * np.asarray(f_hz, dtype=float) / rate_hz)
        h_r = (1.0 - coef[0, 0]) / (1.0 - coef[0, 0] * z)
        h_f = (1.0 - coef[0, 1]) / (1.0 - coef[0, 1] * z)
        total = sum((scale * self.noise_mix[c]) ** 2
                    * np.abs(coef[row, 0] * h_r + coef[row, 1] * h_f) ** 2
                    for row, c in enumerate(TES_COMPONENTS, start=1))
        return total * np.cos(np.pi * np.asarray(f_hz, dtype=float) / rate_hz) ** 2

    def set_readout(self, readout_density: float, rate_hz: float) -> None:
        """Scale the TES noise so that, with white readout noise `readout_density`
        (Phi0/sqrt(Hz)), the optimal-filter FWHM of the demodulated noise is
        `noise_fwhm_eV` (`cryodaq.analysis.tes_noise.scale_for_fwhm` on `realised_psd`)."""
        if not readout_density > 0:
            raise ValueError(f"readout_density must be > 0 (the demodulator always adds "
                             f"some), got {readout_density}")
        f = record_grid(NOISE_RECORD, rate_hz)
        tes = self.realised_psd(f, rate_hz, scale=1.0)
        readout = np.full(f.shape, readout_density**2)
        try:
            self._noise_scale = scale_for_fwhm(self.noise_fwhm_eV, self.template_per_eV(rate_hz),
                                               tes, readout, rate_hz)
        except ValueError as exc:
            raise ValueError(f"world.detectors.{self.name}: {exc} (raise the tone power or "
                             f"lower the HEMT noise)") from None

    def _noise(self, n: int, rate_hz: float) -> np.ndarray:
        if self._noise_scale is None:
            self.set_readout(TYPICAL_READOUT, rate_hz)
        assert self._noise_scale is not None
        sigma = np.array([self._noise_scale * self.noise_mix[c] * math.sqrt(rate_hz / 2.0)
                          for c in TES_COMPONENTS])
        out = np.empty(n)
        _tes_noise(out, self._noise_state, self._filt, self._filters(rate_hz), sigma)
        return out

    # -- events ---------------------------------------------------------------------------

    def draw_event(self) -> tuple[int, str, float]:
        """(kind index into KINDS, line name, energy eV) of one event of the two sources."""
        rng = self._rng_events
        total = self.rate_hz + self.activity_Bq
        if rng.uniform() * total < self.activity_Bq:
            grid, cdf = _ho163_table()
            return 1, "", float(np.interp(rng.uniform(), cdf, grid))
        name = self.line_names[int(rng.choice(len(self.line_names), p=self.line_p))]
        comps = LINE_SHAPES[name]
        w = np.array([c.weight for c in comps])
        comp = comps[int(rng.choice(len(comps), p=w / w.sum()))]
        half = comp.fwhm_eV / 2.0
        lim = math.atan(LORENTZ_CUT_EV / half) / math.pi  # truncated Cauchy, inverse CDF
        u = rng.uniform(-lim, lim)
        return 0, name, comp.energy_eV + half * math.tan(math.pi * u)

    def bath_K(self, t: np.ndarray) -> np.ndarray:
        """Bath temperature at times `t` (linear between the blocks' ends)."""
        now = self.world.thermal.temperature(self.bath_plate) if self.bath_plate else 0.0
        t_now = self.world.now()
        if self._bath is None or self._bath[0] >= t_now:
            return np.full(np.shape(t), now)
        t_a, k_a = self._bath
        return k_a + (now - k_a) * np.clip((np.asarray(t) - t_a) / (t_now - t_a), 0.0, 1.0)

    def _arrivals(self, t0: float, t_end: float, channel: int) -> None:
        total = self.rate_hz + self.activity_Bq
        if total <= 0:
            return
        rng = self._rng_events
        if self._next_t is None or self._next_t < t0 - self._span_s:
            self._next_t = t0 + rng.exponential(1.0 / total)
        times, heights = [], []
        while self._next_t < t_end:
            t = self._next_t
            kind, line, energy = self.draw_event()
            gain = 1.0
            if self.bath_plate:
                gain += self.gain_per_K * (float(self.bath_K(np.array(t))) - self.reference_K)
            deposit = energy
            if self.excess_fwhm_eV > 0:  # (no draw without: the other events stay as they were)
                deposit *= 1.0 + (self.excess_fwhm_eV / FWHM_PER_SIGMA / EXCESS_REFERENCE_EV
                                  * rng.standard_normal())
            height = gain * float(pulse_height_phi0(deposit, self.phi0_per_eV,
                                                    self.saturation_eV))
            self._events.append((t, kind, line, energy, height, channel))
            times.append(t)
            heights.append(height)
            self._next_t += rng.exponential(1.0 / total)
        if times:
            self._active_t = np.concatenate([self._active_t, times])
            self._active_h = np.concatenate([self._active_h, heights])

    def block(self, t0: float, n: int, rate_hz: float, channel: int = -1) -> np.ndarray:
        """Flux (Phi0) at t0 + i / rate_hz, i < n; consecutive blocks join seamlessly. Events
        generated now are recorded as read by board `channel` (-1: none)."""
        t = t0 + np.arange(n) / rate_hz
        t_end = t0 + n / rate_hz
        self._arrivals(t0, t_end, channel)
        keep = self._active_t > t0 - self._span_s
        self._active_t, self._active_h = self._active_t[keep], self._active_h[keep]
        out = self._noise(n, rate_hz)
        for t_a, h in zip(self._active_t, self._active_h, strict=True):
            i0 = max(0, math.ceil((t_a - t0) * rate_hz - 1e-9))
            i1 = min(n, math.ceil((t_a + self._span_s - t0) * rate_hz))
            if i1 > i0:
                shape = three_exponential(t[i0:i1] - t_a, self.rise_s, self.fast_s,
                                          self.slow_s, self.slow_fraction)
                out[i0:i1] += (h / self._peak) * shape
        if self.bath_plate:
            out += self.baseline_per_K * (self.bath_K(t) - self.reference_K)
            self._bath = (self.world.now(), self.world.thermal.temperature(self.bath_plate))
        return out

    def expected_line_fwhm_eV(self, energy_eV: float) -> float:
        """Instrumental FWHM (eV) of a line at `energy_eV`: the noise-only FWHM scaled by the
        response's slope dE/dPhi at the line's pulse height against at zero, in quadrature
        with the excess at that energy (bath drift excluded: the baseline tracks it)."""
        height = pulse_height_phi0(energy_eV, self.phi0_per_eV, self.saturation_eV)
        slope = float(energy_per_phi0(height, self.phi0_per_eV, self.saturation_eV))
        noise = self.noise_fwhm_eV * slope * self.phi0_per_eV
        excess = self.excess_fwhm_eV * energy_eV / EXCESS_REFERENCE_EV
        return math.hypot(noise, excess)

    def quanta_at(self, t: np.ndarray) -> np.ndarray:
        """Whole quanta the demodulator reading this detector was off by at times `t`."""
        if not self.slip_changes:
            return np.zeros(np.shape(t), dtype=int)
        times = np.array([c[0] for c in self.slip_changes])
        quanta = np.concatenate([[0], [c[1] for c in self.slip_changes]])
        return quanta[np.searchsorted(times, t, side="right")]

    def truth_rows(self) -> list[tuple[float, int, str, float, float, int]]:
        """(time, kind index, line, energy, height, channel) of every event generated."""
        return self._events

    def parameters(self) -> dict[str, Any]:
        """The injected parameters (names as the analysis summary reports them)."""
        return {
            "design": self.design, "tau_rise_s": self.rise_s, "tau_fast_s": self.fast_s,
            "tau_slow_s": self.slow_s, "slow_fraction": self.slow_fraction,
            "phi0_per_eV": self.phi0_per_eV, "saturation_eV": self.saturation_eV,
            "noise_fwhm_eV": self.noise_fwhm_eV, "excess_fwhm_eV": self.excess_fwhm_eV,
            "rate_hz": self.rate_hz,
            "ho163_activity_Bq": self.activity_Bq, "baseline_phi0_per_K": self.baseline_per_K,
            "gain_per_K": self.gain_per_K, "reference_K": self.reference_K,
        }


def is_tes(entry: Mapping[str, Any] | None) -> bool:
    """Whether a `world.detectors` entry describes a TES (`model: tes`)."""
    return str((entry or {}).get("model", "")) == "tes"


class TesArray:
    """The TES detectors on the resonators of one uMUX chip, and their truth."""

    def __init__(self, world: World, name: str, kinds: list[str]) -> None:
        self.world = world
        self.name = name
        self.kinds = kinds
        self.detectors_by_resonator: dict[int, TesDetector] = {}
        self.channel_of: dict[int, int] = {}  # resonator -> board channel reading it
        self.stream_start_s = 0.0
        self.sample_rate_hz = 0.0

    def kind(self, resonator: int) -> str:
        return self.kinds[resonator % len(self.kinds)]

    def detector(self, resonator: int) -> TesDetector:
        if resonator not in self.detectors_by_resonator:
            kind = self.kind(resonator)
            entry = (self.world.params.get("detectors") or {})[kind] or {}
            self.detectors_by_resonator[resonator] = TesDetector(
                self.world, kind, entry, self.world.rng(f"{self.name}.tes{resonator}"),
                f"world.detectors.{kind}")
        return self.detectors_by_resonator[resonator]

    def truth(self) -> dict[str, np.ndarray]:
        """Every event generated so far, in time order (see the module docstring)."""
        rows = [(r, *e) for r, det in self.detectors_by_resonator.items()
                for e in det.truth_rows()]
        rows.sort(key=lambda row: row[1])
        res = np.array([r[0] for r in rows], dtype=int)
        time_s = np.array([r[1] for r in rows], dtype=float)
        slipped = np.zeros(len(rows), dtype=bool)
        before = 1.0 / max(self.sample_rate_hz, 1.0)
        for r, det in self.detectors_by_resonator.items():
            mine = res == r
            after = SLIP_WINDOW_FAST * det.fast_s
            slipped[mine] = (det.quanta_at(time_s[mine] - before)
                             != det.quanta_at(time_s[mine] + after))
        return {
            "time_s": time_s,
            "channel": np.array([r[6] for r in rows], dtype=int),
            "resonator": res,
            "design": np.array([self.detectors_by_resonator[r[0]].design for r in rows],
                               dtype="<U1"),
            "kind": np.array([KINDS[r[2]] for r in rows], dtype="<U5"),
            "line": np.array([r[3] for r in rows], dtype="<U8"),
            "energy_eV": np.array([r[4] for r in rows], dtype=float),
            "height_phi0": np.array([r[5] for r in rows], dtype=float),
            "slipped": slipped,
        }

    def detectors(self) -> dict[int, dict[str, Any]]:
        """Per board channel now reading a TES: its resonator and injected parameters."""
        return {ch: {"resonator": res, **self.detector(res).parameters()}
                for res, ch in sorted(self.channel_of.items(), key=lambda kv: kv[1])}
