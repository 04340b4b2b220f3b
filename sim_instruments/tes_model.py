"""The HOLMES TES array behind a uMUX board: each detector an electrothermal TES (Irwin and
Hilton; `tes_device`, `tes_signal`), its sources and its bath, and the truth tests compare the
analysis with.

World parameters: a `world.detectors.<name>` entry with `model: tes` is a TES of design
`design` (default: the entry's name when it is one of a, b, c, d; `tes_device.DESIGNS` holds
their physical parameters). Any of them can be overridden in the entry: `t0_K`, `r0_ohm`,
`rn_ohm`, `alpha`, `beta` (the operating point and transition at the design's bath), `bath_K`
(the bath temperature the design point is defined at), `inductance_H`, `load_ohm`,
`g_W_per_K`, `n`, `c_tes_J_per_K`, `c_abs_J_per_K`, `g_link_W_per_K`, `c_tail_J_per_K`,
`g_tail_W_per_K`, `phi0_per_A` (the rf-SQUID's input coupling, M_in); `max_energy_eV` (pulse
table range, default 10 keV); `rate_hz` (fluorescence photons per second) and `lines`
(weights of `xray_lines.LINE_SHAPES` lines, natural shapes), `ho163_activity_Bq`,
`ho163_q_eV`, `ho163_m_nu_eV` (the implant: `ho163_source.Ho163Source`), `bath_plate` (default
`holder`).

What follows from them: rise and decay times (the modes of the linear system), the pulse
height and its saturation (the integrated non-linear equations), every noise term (TES and
load Johnson, thermal fluctuations across each link; the SQUID/HEMT readout is the uMUX
chain's, added by the board's demodulation), and the bath dependence: the plate's temperature
moves the operating point at the fixed bias voltage (the current I0 and so the baseline, and
the gain through the changed small-signal response). Flux = M_in (I0 - I) relative to the
operating point at the design's bath (the input coil's sense makes pulses positive).

Each detector's flux (Phi0) is generated at the ramp-period boundaries: Poisson arrivals of
both sources superposed (pile-up: pulses add; the large-signal shape of each at the design's
operating point, scaled by the bath's gain at its arrival), the noise and the baseline.

Truth, as a test reaches it: `rig.world.detector_array("holmes")` (the name is the uMUX
board's sim param `array`) is the `TesArray`; its `truth()` gives equal-length arrays over
every event generated, in time order: `time_s` (World time of arrival; demodulated sample i
of an acquisition started at World time `stream_start_s` is the flux averaged over
[stream_start_s + i / f_ramp, stream_start_s + (i + 1) / f_ramp)), `channel` (board channel
reading the detector then; -1 if none), `resonator`, `design` ("a".."d"), `kind` ("line" or
"ho163"), `line` (target line name, "" for 163Ho), `energy_eV`, `height_phi0` (peak of the
large-signal pulse incl. the bath gain) and `slipped` (the demodulator of that channel was off
by a different number of whole quanta just before the arrival and `SLIP_WINDOW_FAST` fast
decay times after). `detectors()`: {channel: parameters} of the channels reading a TES
(`TesDetector.parameters`: the physical ones and what the model predicts from them: operating
point, loop gain, time constants, slow share, small-signal Phi0 per eV, the optimal-filter
noise FWHM on `NOISE_RECORD`-sample records with the board's nominal readout noise)."""

from __future__ import annotations

import dataclasses
import functools
import math
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import numpy as np

from cryodaq.analysis.tes_electrothermal import (
    E_CHARGE,
    TesSmallSignal,
    pulse,
    sample_system,
    sampled_noise_psd,
    system_matrix,
    time_constants,
)
from cryodaq.analysis.tes_noise import record_grid, resolution_fwhm
from cryodaq.analysis.xray_lines import LINE_SHAPES
from cryodaq.sim_instruments.ho163_source import Ho163Source
from cryodaq.sim_instruments.params import number
from cryodaq.sim_instruments.tes_device import (
    DESIGNS,
    MAX_ENERGY_EV,
    PulseTable,
    TesDevice,
    design_parameters,
)
from cryodaq.sim_instruments.tes_signal import TesSignal

if TYPE_CHECKING:
    from cryodaq.sim_instruments.world import World

#: Fluorescence target lines and their relative weights (55Fe on CaCO3 + NaCl + Al).
TARGET_LINES = {"AlKa": 0.10, "ClKa": 0.25, "CaKa": 0.25, "MnKa": 0.35, "MnKb": 0.05}
#: Record on which the predicted noise FWHM is stated (samples at the ramp rate).
NOISE_RECORD = 1024
NOISE_PRETRIGGER = 256
#: Readout noise (Phi0/sqrt(Hz)) assumed for a detector no board has set one for (HEMT-limited
#: uMUX at the default tone power: 0.4 - 0.6 uPhi0/sqrt(Hz)).
TYPICAL_READOUT = 5e-7
#: Natural line shapes are sampled within +-this of each component (eV).
LORENTZ_CUT_EV = 200.0
#: A slip counts for an event if it happens within this many fast decay times of arrival.
SLIP_WINDOW_FAST = 6.0
#: Bath temperatures (K, offsets from the design's) at which the operating point is solved;
#: between them it is interpolated.
BATH_OFFSETS_K = np.concatenate([np.linspace(-0.04, -0.004, 10), np.linspace(-3e-3, 3e-3, 25),
                                 np.linspace(0.004, 0.02, 5)])
KINDS = ("line", "ho163")
#: Keys of a `model: tes` entry besides the physical ones (`tes_device.RANGES`).
ENTRY_KEYS = ("model", "design", "rate_hz", "lines", "ho163_activity_Bq", "ho163_q_eV",
              "ho163_m_nu_eV", "bath_plate", "max_energy_eV")


def _design(name: str, p: Mapping[str, Any], where: str) -> str:
    design = str(p.get("design", name if name in DESIGNS else ""))
    if design not in DESIGNS:
        raise ValueError(f"{where}.design must be one of {', '.join(DESIGNS)}, got {design!r}")
    return design


class DeviceModel:
    """What one set of physical parameters implies, computed once and shared by every
    detector with the same parameters: the device, its pulse table, its bath dependence."""

    def __init__(self, params: tuple[tuple[str, float], ...], max_energy_eV: float,
                 where: str) -> None:
        self.device = TesDevice(dict(params), where)
        self.ss = self.device.small_signal()
        self.phi0_per_A = self.device.p["phi0_per_A"]
        try:
            self.taus = time_constants(self.ss)
        except ValueError as err:
            raise ValueError(f"{where}: {err}") from None
        self.table: PulseTable = self.device.pulse_table(max_energy_eV)
        self.peaks_per_eV = (-self.phi0_per_A * self.table.current).max(axis=1)
        self.peaks = self.peaks_per_eV * self.table.energies_eV
        t = np.arange(0.0, 12.0 * self.taus[-2], self.taus[1] / 50.0)
        self.unit_peak = float(np.max(-pulse(self.ss, t))) * self.phi0_per_A * E_CHARGE
        tb0 = self.device.p["bath_K"]
        baths = tb0 + BATH_OFFSETS_K
        self.baths = baths[(baths >= 0.0) & (baths < 0.98 * self.ss.t0_K)]
        i0, gain = [], []
        for tb in self.baths:
            s = self.device.small_signal(float(tb))
            i0.append(s.i0_A)
            gain.append(float(np.max(-pulse(s, t))) * self.phi0_per_A * E_CHARGE)
        self.i0 = np.array(i0)
        self.gain = np.array(gain) / self.unit_peak
        self._signals: dict[float, dict[str, Any]] = {}

    def baseline_phi0(self, bath_K: np.ndarray) -> np.ndarray:
        """M_in (I0(design) - I0(bath)): the flux the bath's operating point adds."""
        return self.phi0_per_A * (self.ss.i0_A - np.interp(bath_K, self.baths, self.i0))

    def gain_at(self, bath_K: float) -> float:
        """Small-signal pulse height at this bath over the design's."""
        return float(np.interp(bath_K, self.baths, self.gain))

    def slow_fraction(self) -> float:
        """Share of the decay modes' pulse integral in the slowest one."""
        a = system_matrix(self.ss)
        lam, vec = np.linalg.eig(a)
        x0 = np.zeros(self.ss.size)
        x0[self.ss.deposit + 1] = 1.0 / self.ss.heat_capacities[self.ss.deposit]
        amp = vec[0] * np.linalg.solve(vec, x0.astype(complex))
        integral = (-amp / lam).real
        order = np.argsort(-1.0 / lam.real)
        slow, fast = integral[order[-1]], integral[order[-2]]
        return float(slow / (slow + fast))

    def noise_fwhm_eV(self, readout_density: float, rate_hz: float) -> float:
        """Optimal-filter FWHM (eV) of the noise alone on `NOISE_RECORD`-sample records at
        `rate_hz` as the demodulator delivers them: the sampled TES noise (aliases included)
        averaged over each ramp period, plus the white readout."""
        f = record_grid(NOISE_RECORD, rate_hz)
        sampled = sample_system(self.ss, 1.0 / rate_hz)
        out = np.zeros(self.ss.size)
        out[0] = self.phi0_per_A
        tes = sum(sampled_noise_psd(sampled, f, out).values())
        psd = tes * np.cos(np.pi * f / rate_hz) ** 2 + readout_density**2
        return resolution_fwhm(self.template_per_eV(rate_hz), psd, rate_hz)

    def template_per_eV(self, rate_hz: float) -> np.ndarray:
        """Small-signal pulse per eV (Phi0/eV) on the `NOISE_RECORD` record at `rate_hz`,
        averaged over each ramp period as the demodulator delivers it."""
        t = (np.arange(NOISE_RECORD + 1) - NOISE_PRETRIGGER) / rate_hz
        p = -pulse(self.ss, t) * self.phi0_per_A * E_CHARGE
        return 0.5 * (p[:-1] + p[1:])


@functools.lru_cache(maxsize=64)
def device_model(params: tuple[tuple[str, float], ...], max_energy_eV: float,
                 where: str) -> DeviceModel:
    """The `DeviceModel` of these parameters (one per distinct set in the process)."""
    return DeviceModel(params, max_energy_eV, where)


class TesDetector:
    """One TES on one resonator: its events, noise and bath coupling (see the module)."""

    def __init__(self, world: World, name: str, params: Mapping[str, Any],
                 rng: np.random.Generator, where: str) -> None:
        p = dict(params)
        self.world = world
        self.name = name
        self.design = _design(name, p, where)
        unknown = sorted(set(p) - set(ENTRY_KEYS) - set(DESIGNS[self.design]))
        if unknown:
            raise ValueError(f"{where}: unknown TES parameters {', '.join(unknown)} (allowed: "
                             f"{', '.join([*ENTRY_KEYS, *DESIGNS[self.design]])})")
        physical = design_parameters(DESIGNS[self.design], p, where)
        max_e = number(p, "max_energy_eV", MAX_ENERGY_EV, where, 1e3, 1e5)
        self.model = device_model(tuple(sorted(physical.items())), max_e, where)
        self.physical = physical
        self.fast_s = float(self.model.taus[2])
        self.rate_hz = number(p, "rate_hz", 5.0, where, 0.0, 1e5)
        self.ho163 = Ho163Source.from_params(p, where)
        self.activity_Bq = self.ho163.activity_Bq
        lines = dict(p.get("lines") or TARGET_LINES)
        for line in lines:
            if line not in LINE_SHAPES:
                raise ValueError(f"{where}.lines: unknown line {line!r} "
                                 f"(known: {', '.join(LINE_SHAPES)})")
            top = max(c.energy_eV for c in LINE_SHAPES[line]) + LORENTZ_CUT_EV
            if top > max_e:
                raise ValueError(f"{where}.lines: {line} reaches {top:g} eV, above "
                                 f"max_energy_eV {max_e:g}")
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
        self._rng = rng
        self._rng_events = rng.spawn(1)[0]
        self._signal: TesSignal | None = None
        self.readout_density = TYPICAL_READOUT
        self._next_t: float | None = None
        self._active = (np.zeros(0), np.zeros(0), np.zeros(0))  # arrival, energy pos, scale
        self._events: list[tuple[float, int, str, float, float, int]] = []
        self._bath: tuple[float, float] | None = None  # (time, K) of the last block's end
        #: (time, whole quanta the demodulator is off by from then on), as it changes.
        self.slip_changes: list[tuple[float, int]] = []

    # -- what the model predicts ----------------------------------------------------------

    @property
    def small_signal(self) -> TesSmallSignal:
        return self.model.ss

    def template_per_eV(self, rate_hz: float) -> np.ndarray:
        """Small-signal pulse per eV (Phi0/eV) on a `NOISE_RECORD` record, period-averaged."""
        return self.model.template_per_eV(rate_hz)

    def height_phi0(self, energy_eV: np.ndarray | float) -> np.ndarray:
        """Peak (Phi0) of the large-signal pulse of a deposit at the design's bath."""
        m = self.model
        return np.asarray(energy_eV) * np.interp(energy_eV, m.table.energies_eV, m.peaks_per_eV)

    def max_slew_phi0_per_s(self, energy_eV: float, rate_hz: float) -> float:
        """Largest change of the large-signal pulse over one sample at `rate_hz`, per s."""
        m = self.model
        row = -m.phi0_per_A * energy_eV * m.table.current[
            int(round(energy_eV / m.table.energies_eV[1]))]
        lag = max(1, int(round(1.0 / (rate_hz * m.table.dt_s))))
        return float(np.max(row[lag:] - row[:-lag]) / (lag * m.table.dt_s))

    def noise_fwhm_eV(self, rate_hz: float) -> float:
        """The model's optimal-filter FWHM of the noise (see `DeviceModel.noise_fwhm_eV`) at
        the readout noise the board set."""
        return self.model.noise_fwhm_eV(self.readout_density, rate_hz)

    def expected_line_fwhm_eV(self, energy_eV: float, rate_hz: float) -> float:
        """Instrumental FWHM (eV) of a line at `energy_eV`: the noise FWHM through the
        response's slope at the line's height against at zero (the pulse's shape taken as
        fixed; bath drift excluded: the baselines track it)."""
        e = self.model.table.energies_eV
        peaks = self.model.peaks
        slope = np.interp(energy_eV, 0.5 * (e[1:] + e[:-1]), np.diff(peaks) / np.diff(e))
        return self.noise_fwhm_eV(rate_hz) * (self.model.unit_peak / float(slope))

    # -- noise ----------------------------------------------------------------------------

    def set_readout(self, readout_density: float, rate_hz: float) -> None:
        """The board's readout noise (Phi0/sqrt(Hz), for the predictions) and its sampling
        rate (the noise generator's step)."""
        if not readout_density > 0:
            raise ValueError(f"readout_density must be > 0 (the demodulator always adds "
                             f"some), got {readout_density}")
        self.readout_density = readout_density
        self._signal_at(rate_hz)

    def _signal_at(self, rate_hz: float) -> TesSignal:
        if self._signal is None or self._signal.rate_hz != rate_hz:
            old = self._signal
            self._signal = TesSignal(self.model.ss, self.model.table, self.model.phi0_per_A,
                                     rate_hz, self._rng)
            if old is not None:  # the same physical state continues at the new step
                self._signal.set_physical_state(old.physical_state())
                self._signal.state = old.state
        return self._signal

    # -- events ---------------------------------------------------------------------------

    def draw_event(self) -> tuple[int, str, float]:
        """(kind index into KINDS, line name, energy eV) of one event of the two sources."""
        rng = self._rng_events
        total = self.rate_hz + self.activity_Bq
        if rng.uniform() * total < self.activity_Bq:
            return 1, "", self.ho163.energy(rng.uniform())
        name = self.line_names[int(rng.choice(len(self.line_names), p=self.line_p))]
        comps = LINE_SHAPES[name]
        w = np.array([c.weight for c in comps])
        comp = comps[int(rng.choice(len(comps), p=w / w.sum()))]
        half = comp.fwhm_eV / 2.0
        lim = math.atan(LORENTZ_CUT_EV / half) / math.pi  # truncated Cauchy, inverse CDF
        u = rng.uniform(-lim, lim)
        return 0, name, comp.energy_eV + half * math.tan(math.pi * u)

    def bath_K(self, t: np.ndarray) -> np.ndarray:
        """Bath temperature at times `t` (linear between the blocks' ends); the design's
        bath without a plate."""
        if not self.bath_plate:
            return np.full(np.shape(t), self.physical["bath_K"])
        now = self.world.thermal.temperature(self.bath_plate)
        t_now = self.world.now()
        if self._bath is None or self._bath[0] >= t_now:
            return np.full(np.shape(t), now)
        t_a, k_a = self._bath
        return k_a + (now - k_a) * np.clip((np.asarray(t) - t_a) / (t_now - t_a), 0.0, 1.0)

    def _arrivals(self, t0: float, t_end: float, channel: int, signal: TesSignal) -> None:
        total = self.rate_hz + self.activity_Bq
        if total <= 0:
            return
        rng = self._rng_events
        if self._next_t is None or self._next_t < t0 - self.model.table.head_s:
            self._next_t = t0 + rng.exponential(1.0 / total)
        times, energies, gains = [], [], []  # gains: the pulses' amplitudes, gain x energy
        while self._next_t < t_end:
            t = self._next_t
            kind, line, energy = self.draw_event()
            gain = self.model.gain_at(float(self.bath_K(np.array(t))))
            height = gain * float(self.height_phi0(energy))
            self._events.append((t, kind, line, energy, height, channel))
            times.append(t)
            energies.append(energy)
            gains.append(gain * energy)
            self._next_t += rng.exponential(1.0 / total)
        if times:
            t_a, e_pos, scale = self._active
            self._active = (np.concatenate([t_a, times]),
                            np.concatenate([e_pos, signal.energy_position(np.array(energies))]),
                            np.concatenate([scale, gains]))

    def block(self, t0: float, n: int, rate_hz: float, channel: int = -1) -> np.ndarray:
        """Flux (Phi0) at t0 + i / rate_hz, i < n; consecutive blocks join seamlessly. Events
        generated now are recorded as read by board `channel` (-1: none)."""
        signal = self._signal_at(rate_hz)
        self._arrivals(t0, t0 + n / rate_hz, channel, signal)
        t_a, e_pos, scale = self._active
        out, done = signal.block(t0, n, t_a, e_pos, scale)
        keep = ~done
        self._active = (t_a[keep], e_pos[keep], scale[keep])
        if self.bath_plate:
            t = t0 + np.arange(n) / rate_hz
            out += self.model.baseline_phi0(self.bath_K(t))
            self._bath = (self.world.now(), self.world.thermal.temperature(self.bath_plate))
        return out

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

    def parameters(self, rate_hz: float | None = None) -> dict[str, Any]:
        """The physical parameters and what the model predicts from them (names as the
        analysis summary reports them; the noise FWHM at `rate_hz`, default the signal's)."""
        m, ss = self.model, self.model.ss
        rate = rate_hz or (self._signal.rate_hz if self._signal else 500e3)
        taus = m.taus
        return {
            "design": self.design, **self.physical,
            "operating_t0_K": ss.t0_K, "operating_r0_ohm": ss.r0_ohm, "operating_i0_A": ss.i0_A,
            "operating_alpha": ss.alpha, "operating_beta": ss.beta, "loop_gain": ss.loop_gain,
            "time_constants_s": [float(x) for x in taus],
            "tau_rise_s": float(taus[1]), "tau_fast_s": float(taus[2]),
            "tau_slow_s": float(taus[3]) if taus.size > 3 else None,
            "slow_fraction": m.slow_fraction() if taus.size > 3 else 0.0,
            "phi0_per_eV": m.unit_peak, "noise_fwhm_eV": self.noise_fwhm_eV(rate),
            "readout_phi0_per_rthz": self.readout_density, "rate_hz": self.rate_hz,
            "small_signal": {**dataclasses.asdict(ss), "phi0_per_A": m.phi0_per_A},
            "ho163_activity_Bq": self.activity_Bq,
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
