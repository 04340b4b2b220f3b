"""The maXs30 MMC array behind the SQUID electronics: 64 pixels on 32 double-meander channels.

Geometry (REFERENCE section 1). Pixels A1..H8: rows A-H, columns 1-8. Channel k (1-based)
reads the two vertically neighbouring pixels of row pair p = (k - 1) // 8 (A/B, C/D, E/F, G/H)
in column (k - 1) % 8 + 1: channel 1 = A1/B1, 8 = A8/B8, 16 = C8/D8, 32 = G8/H8. The upper
pixel (A, C, E, G) gives positive pulses, the lower one negative (the gradiometer). The four
corner pixels (A1, A8, H1, H8) have a smaller sensor (`small_sensor_um`, 250 um instead of
300 um): their channels (1, 8, 25, 32) are non-gradiometric.

Physics: every pixel is the thermodynamic MMC of `cryodaq.analysis.mmc_thermo` with the
parameters of `world.detector` (`cryodaq.sim_instruments.mmc_pixels`: sizes, Er
concentration, persistent current, meander, thermal links, SQUID noise; spreads from pixel
to pixel). It runs at the chip temperature: the thermal plant's `plate` (the one the
temperature controller regulates) plus a seeded Ornstein-Uhlenbeck drift (`drift_rms_K`,
`drift_time_s`). A photon absorbed in a pixel's absorber (after the athermal loss of its
hit position) gives the two-body pulse at the chip temperature of that moment, with the
nonlinear height of the model; a muon's deposit in a sensor the sensor response. The flux of
channel k (Phi_0 at the first-stage SQUID):
  sum over hits of polarity x pulse(E, T_chip)
  + sum over its two pixels of polarity x k mu_0 G / p (m(T_lock) - m(T_chip))
  + noise + jumps and bursts,
where T_lock is `lock_K` (default 20 mK), the chip temperature at which the flux-locked
loops were locked (their zero of flux). The second
term cancels in a gradiometer up to the pixels' spread and leaves the difference of the two
sensors' M(T) at a corner. The noise is the model's: both pixels' thermodynamic
fluctuations, their Er 1/f noise and the two-stage SQUID's white and 1/f noise, at the chip
temperature (`cryodaq.sim_instruments.mmc_render`). It is the total noise at the ADC: the
SQUID electronics and the ADC's own white noise are part of it (see `MmcChannel.codes`). Dead
channels give no flux at all; noisy ones have `noisy_factor` times the SQUID noise. An
unlocked SQUID passes nothing (squid_model).

Truth and parameters, for tests (`array = rig.world.detector_array("mmc")`, built when the
SQUID electronics reading it are opened):
- `array.truth()` -> dict of equal-length arrays, sorted by time, of every event generated so
  far (the whole array, up to the latest sample any channel produced, dead channels too):
  `time_s` (float64, World time), `channel` (int, 1-based FLL channel), `pixel` (str, "C4";
  the channel's pair "C4/D4" for jump and burst), `kind` (str: xray, continuum, fluorescence,
  muon, jump, burst), `energy_eV` (deposited; 0 for jump and burst), `deposit` (str: absorber,
  sensor, substrate for muon hits, else ""), `amplitude_eV` (signed step of a jump, amplitude
  of a burst's oscillation, else 0), `height_phi0` (signed peak flux injected; 0 for bursts),
  `chip_K` (chip temperature at the event).
- `array.pixels(chip_K=None)` -> dict of (64,) arrays, the model's predictions at `chip_K`
  (default: the chip temperature now): `name`, `channel`, `polarity` (+1/-1), `rise_s`,
  `decay_s`, `phi0_per_eV` (small-signal peak height per eV), `gain` (phi0_per_eV over the
  array's median), `gain_per_K` (d ln height / dT), `phi0_per_K` (flux per kelvin of the
  sensor, |k mu_0 G/p dm/dT|), `dM_dT_A_m2_per_K` (dm/dT of the sensor, < 0),
  `heat_capacity_absorber_J_per_K`, `heat_capacity_sensor_J_per_K`, `baseline_fwhm_eV` (the
  optimal-filter limit of the pixel's pulse in its channel's noise, infinite record,
  `PixelModel.baseline_fwhm_eV`), `small_sensor` (bool).
- `array.channels(chip_K=None)` -> dict of (32,) arrays: `channel`, `name` ("C8/D8"), `dead`,
  `noisy`, `nongradiometric`, `white_phi0_per_rthz` (the SQUIDs'), `onef_phi0sq_at_1hz`
  (SQUID and Er 1/f), `temperature_phi0_per_K` (d baseline / dT: the two sensors' dm/dT,
  each with its pixel's polarity; 0 if dead).
- `array.chip_temperature(t)` -> chip temperature (K) at World times `t` (the last 2 h).
- `array.model` -> the `PixelModel` (e.g. `array.model.channel_psd(pixels, T, f)`).

Distorted hits (muon showers): in the sensor, the model's sensor response (a jump within
100 ns, relaxing with the pixel's rise time to its decay); in the substrate, a slow small pulse
(rise 0.1 and decay 2 pixel decay times, a third of the height: mostly below an edge trigger's
threshold, it distorts the records it falls in). Jumps: a step that relaxes in 1 s.

Between acquisitions a campaign may swap the source or mount the shield with
`set: {world.detector.source: none}` or `{world.background.shield: ptfe}` (`World.set_param`):
events drawn from then on follow the new parameters.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import numpy as np

from cryodaq.analysis import mmc_thermo as thermo
from cryodaq.sim_instruments import ziggurat
from cryodaq.sim_instruments.mmc_background import (
    DEPOSITS,
    KINDS,
    ArrayLayout,
    Background,
    EventGenerator,
    sources_from_params,
)
from cryodaq.sim_instruments.mmc_pixels import SENSOR_RISE_S, PixelModel, peak_norm
from cryodaq.sim_instruments.mmc_render import ChannelNoise, NoiseSections, add_terms
from cryodaq.sim_instruments.params import number
from cryodaq.sim_instruments.pulse_source import TAIL_DECAYS

if TYPE_CHECKING:
    from cryodaq.sim_instruments.world import World

ROWS = "ABCDEFGH"
COLS = 8
N_CHANNELS = 32
CORNER_CHANNELS = (1, 8, 25, 32)
#: Events are drawn in chunks of this much virtual time (also the chip temperature's knots).
CHUNK_S = 1.0
#: Chip temperature knots kept (2 h at CHUNK_S), for signals and truth.
KEEP_KNOTS = 7200
#: A jump: an instantaneous step that relaxes over this time (a step within any record).
JUMP_RECOVERY_S = 1.0


def pixel_name(index: int) -> str:
    return f"{ROWS[index // COLS]}{index % COLS + 1}"


def channel_pixels(channel: int) -> tuple[int, int]:
    """(upper, lower) pixel indices (0..63) of 1-based `channel`."""
    pair, col = divmod(channel - 1, COLS)
    return 2 * pair * COLS + col, (2 * pair + 1) * COLS + col


def channel_name(channel: int) -> str:
    up, low = channel_pixels(channel)
    return f"{pixel_name(up)}/{pixel_name(low)}"


def _channel_list(raw: Any, key: str) -> list[int]:
    """Channels given as numbers or pair names ("C8/D8"), as 1-based numbers."""
    names = {channel_name(c): c for c in range(1, N_CHANNELS + 1)}
    out = []
    for item in raw or []:
        if isinstance(item, str) and item in names:
            out.append(names[item])
        elif isinstance(item, int) and 1 <= item <= N_CHANNELS:
            out.append(item)
        else:
            raise ValueError(
                f"world.detector.{key}: {item!r} is not a channel 1..32 or a pair like 'C8/D8'"
            )
    return out


class MmcChannel:
    """Flux of one double-meander channel; a source for `squid_model` (like `PulseSource`)."""

    def __init__(self, array: MmcArray, channel: int, rng: np.random.Generator) -> None:
        self.array = array
        self.channel = channel
        self.pixels = list(channel_pixels(channel))
        self.dead = channel in array.dead
        self.factor = array.noisy_factor if channel in array.noisy else 1.0
        self._rng_noise, state_rng = rng.spawn(2)
        self._state = ziggurat.new_state(state_rng)
        self._spare = np.zeros(1)  # the second normal of a pair drawn at a block's end
        self._noise = ChannelNoise(self._rng_noise)
        self._buf = np.zeros(0)
        self._terms = np.zeros((5, 0))  # rows: time, height, rise (or frequency), decay, phase
        self._pending: list[np.ndarray] = []
        #: Polarity-weighted flux of the two sensors' moments (the baseline's temperature term).
        self.polarity = np.zeros(2) if self.dead else array.polarity[self.pixels]

    @property
    def history(self) -> list[tuple[float, float]]:
        """(arrival time s, energy eV) of the pulses of this channel's pixels so far."""
        truth = self.array.truth()
        sel = (truth["channel"] == self.channel) & (truth["energy_eV"] > 0)
        return list(zip(truth["time_s"][sel], truth["energy_eV"][sel], strict=True))

    @property
    def white_density(self) -> float:
        """The SQUIDs' white flux noise density (Phi_0/rtHz) of this channel."""
        return 0.0 if self.dead else self.array.model.readout.white_phi0_per_rthz * self.factor

    def white_sigma(self, rate_hz: float) -> float:
        """Rms (Phi0) per sample of the white noise at `rate_hz` (all of it: see the module)."""
        return self.white_density * math.sqrt(rate_hz / 2.0)

    def _sections(self, rate_hz: float, chip_K: float) -> NoiseSections:
        """The noise sections at `rate_hz`, rebuilt when the chip temperature has moved."""
        if self.dead:
            return self._noise.at(rate_hz, chip_K, lambda: (0.0, 0.0, [], (0.0, 0.0)))
        return self._noise.at(rate_hz, chip_K, lambda: self.array.model.channel_noise(
            self.pixels, chip_K, self.factor))

    def _prepare(self, t0: float, n: int, rate_hz: float) -> tuple[np.ndarray, int, int]:
        """The deterministic part of the flux (hits, jumps, bursts, temperature) in the buffer,
        and the range of its samples that may be non-zero."""
        t_end = t0 + n / rate_hz
        self.array.generate_until(t_end)
        if self._buf.size < n:
            self._buf = np.zeros(n)
        buf = self._buf[:n]
        if self._pending:
            self._terms = np.concatenate([self._terms, *self._pending], axis=1)
            self._pending = []
        lo = hi = 0  # the samples of buf that may be non-zero
        if self._terms.shape[1]:
            ended, lo, hi = add_terms(buf, t0, rate_hz, self._terms)
            if ended > 64:  # drop the terms that are over (rarely: it costs a copy)
                terms = self._terms
                over = terms[0] + TAIL_DECAYS * np.abs(terms[3]) <= t_end
                self._terms = np.ascontiguousarray(terms[:, ~over])
        return buf, lo, hi

    def _render(self, out: np.ndarray, t0: float, rate: float,
                sigma: Callable[[float], float] | None, scale: float) -> None:
        """Render `out`, split where the chip temperature's knots fall: the baseline's
        temperature term is linear within each piece (module docstring)."""
        n = out.shape[0]
        buf, lo, hi = self._prepare(t0, n, rate)
        noise = self._sections(rate, float(self.array.chip_temperature(t0)))
        own = noise.white_sigma()
        noise.set_white(own if sigma is None else sigma(own))
        knot_t, knot_k = self.array.temperature_knots(t0, t0 + n / rate)
        flux = np.zeros(knot_t.size) if self.dead else self.array.baseline_flux(
            self.channel, knot_k)
        inner = np.ceil((knot_t[1:-1] - t0) * rate).astype(np.int64)
        cuts = [0, *inner[(inner > 0) & (inner < n)].tolist(), n]
        for i0, i1 in zip(cuts[:-1], cuts[1:], strict=True):
            t = t0 + i0 / rate
            k = min(max(int(np.searchsorted(knot_t, t, side="right")) - 1, 0), knot_t.size - 2)
            slope = (flux[k + 1] - flux[k]) / (knot_t[k + 1] - knot_t[k])
            base = flux[k] + slope * (t - knot_t[k])
            noise.render(out[i0:i1], buf[i0:i1], int(lo - i0), int(hi - i0), self._state,
                         self._spare, int(self._noise.phase + i0), float(scale), float(base),
                         float(slope / rate))
        self._noise.phase += n

    def block(
        self,
        t0: float,
        n: int,
        rate_hz: float,
        white: np.random.Generator | None = None,
        white_sigma: float | None = None,
    ) -> np.ndarray:
        """Flux (Phi0) at t0 + i / rate_hz, with this channel's noise (`white`, `white_sigma`:
        a caller's merged white noise of at least that rms replaces the channel's own)."""
        out = np.empty(n)
        merged = None if white_sigma is None else (lambda own: max(own, white_sigma))
        self._render(out, t0, rate_hz, merged, 1.0)
        return out

    def codes(
        self, t0: float, n: int, rate_hz: float, codes_per_phi0: float, electronics_phi0: float,
        out: np.ndarray,
    ) -> None:
        """ADC codes (int16 `out`) of this channel through a locked FLL and an ADC: one fused
        pass. The channel's noise is the total at the ADC: its white part has the variance
        of the channel's white noise less the quantisation's (1/12 LSB^2), and never less
        than `electronics_phi0` (amplifier and ADC noise, flux-referred)."""
        q2 = 1.0 / (12.0 * codes_per_phi0**2)
        self._render(out, t0, rate_hz,
                     lambda own: math.sqrt(max(own**2 - q2, electronics_phi0**2)),
                     codes_per_phi0)

    def forget_after(self, t: float) -> None:
        """Drop the terms of events after World time `t`."""
        if self._pending:
            self._terms = np.concatenate([self._terms, *self._pending], axis=1)
            self._pending = []
        self._terms = np.ascontiguousarray(self._terms[:, self._terms[0] <= t])

    def add_terms(self, terms: np.ndarray) -> None:
        """Signal terms of new events (columns as `_terms`); a dead channel keeps none."""
        if not self.dead:
            self._pending.append(terms)


class MmcArray:
    """The 64-pixel array, its sources and background, chip temperature and truth."""

    def __init__(self, world: World, name: str = "mmc") -> None:
        self.world = world
        self.name = name
        params = world.params
        p = dict(params.get("detector") or {})
        w = "world.detector"
        sensor = number(p, "sensor_um", 300.0, w, 1.0)
        small = number(p, "small_sensor_um", 250.0, w, 1.0, sensor)
        absorber = number(p, "absorber_um", 500.0, w, 1.0)
        thickness = number(p, "absorber_thickness_um", 20.0, w, 0.01)
        chip = number(p, "chip_mm", 8.0, w, 0.1)
        self.dead = set(_channel_list(p.get("dead_channels", [11, 20, 27]), "dead_channels"))
        self.noisy = set(_channel_list(p.get("noisy_channels", ["C8/D8"]), "noisy_channels"))
        self.noisy_factor = number(p, "noisy_factor", 2.5, w, 0.0)
        self.plate = str(p.get("plate", "detector"))
        world.thermal.temperature(self.plate)  # a wrong plate name fails here, named
        self.drift_rms_K = number(p, "drift_rms_K", 10e-6, w, 0.0)
        self.drift_time_s = number(p, "drift_time_s", 300.0, w, 1e-3)

        npix = len(ROWS) * COLS
        self.polarity = np.array([1.0 if (i // COLS) % 2 == 0 else -1.0 for i in range(npix)])
        self.pixel_channel = np.zeros(npix, dtype=np.int64)
        for ch in range(1, N_CHANNELS + 1):
            for px in channel_pixels(ch):
                self.pixel_channel[px] = ch
        corner_pixels = {0, COLS - 1, npix - COLS, npix - 1}
        self.small_sensor = np.array([i in corner_pixels for i in range(npix)])
        #: The pixels' thermodynamic model (`mmc_pixels`), per-pixel spreads drawn once.
        self.model = PixelModel(p, w, npix, world.rng(f"{name}.pixels"),
                                np.where(self.small_sensor, small, sensor))

        cm2 = 1e-8  # per um^2
        groups = tuple(tuple(range(g, g + 16)) for g in (1, 17))
        self.layout = ArrayLayout(
            self.pixel_channel, len(ROWS), COLS, absorber**2 * cm2, (chip * 1e3) ** 2 * cm2,
            thickness * 1e-6, groups,
        )
        self.generator = self._generator()
        world.on_param_change(self._param_changed)
        self._rng_events = world.rng(f"{name}.events")
        self._rng_drift = world.rng(f"{name}.drift")
        self._generated_to: float | None = None
        self._knot_t = np.zeros(0)  # chip temperature at CHUNK_S steps (the last KEEP_KNOTS)
        self._knot_k = np.zeros(0)
        self._drift = 0.0
        #: Chip temperature at which the flux-locked loops were locked: their zero of flux.
        self.lock_K = number(p, "lock_K", 0.020, w, 1e-4, 10.0)
        self._pairs: dict[int, tuple[np.ndarray, np.ndarray, np.ndarray, float]] = {}
        self._phi0_per_eV = self.model.response(self.lock_K).phi0_per_eV
        self._truth: list[dict[str, np.ndarray]] = []
        self._truth_cache: dict[str, np.ndarray] | None = None
        self.outputs = {
            ch: MmcChannel(self, ch, world.rng(f"{name}.ch{ch}"))
            for ch in range(1, N_CHANNELS + 1)
        }

    # -- model -------------------------------------------------------------------------------

    def _generator(self) -> EventGenerator:
        params = self.world.params
        background = Background.from_params(params.get("background") or {})
        return EventGenerator(sources_from_params(params), background, self.layout)

    def _param_changed(self, key: str) -> None:
        """A campaign swapped the source or changed the background (`set: {world.KEY: v}`):
        events drawn from the next CHUNK_S on follow it. The detector itself is built once."""
        if key.startswith(("sources.", "background.")) or key in (
            "detector.source", "sources", "background"
        ):
            self.generator = self._generator()
            self._forget_after(self.world.now())

    def _forget_after(self, t: float) -> None:
        """Drop the events drawn ahead of World time `t` (no sample of them exists yet)."""
        if self._generated_to is None or self._generated_to <= t:
            return
        if self._truth:
            self.truth()  # merges the chunks into self._truth[0]
            keep = self._truth[0]["time_s"] <= t
            self._truth = [{k: v[keep] for k, v in self._truth[0].items()}]
            self._truth_cache = None
        for out in self.outputs.values():
            out.forget_after(t)
        chip = float(self.chip_temperature(t))
        keep = self._knot_t < t
        self._knot_t, self._knot_k = self._knot_t[keep], self._knot_k[keep]
        self._add_knot(t, chip)
        self._generated_to = t

    def channel(self, channel: int) -> MmcChannel:
        return self.outputs[channel]

    def baseline_flux(self, channel: int, chip_K: np.ndarray) -> np.ndarray:
        """The temperature term of `channel`'s flux at chip temperatures `chip_K` (module
        docstring): each sensor's moment change since T_lock, with its pixel's polarity."""
        if channel not in self._pairs:
            px = np.array(channel_pixels(channel))
            design = self.model.subset(px)
            lock = thermo.moment(design, self.lock_K)
            # m(T) = m_sat tanh(x / (T + theta)): the two pixels' constants, for speed
            sat = thermo.spin_count(design) * thermo.G_ER * thermo.MU_B / 2.0
            theta = design.weiss_K_per_ppm * design.er_ppm
            x = thermo.G_ER * thermo.MU_B / 2.0 * thermo.field_T(design) / thermo.K_B
            weight = self.polarity[px] * thermo.meander_coupling(design)
            self._pairs[channel] = (weight * sat, x, theta, float(np.sum(weight * lock)))
        amp, x, theta, lock = self._pairs[channel]
        t = np.asarray(chip_K, dtype=float)[:, None]
        return lock - (amp * np.tanh(x / (t + theta))).sum(axis=1)

    # -- time --------------------------------------------------------------------------------

    def generate_until(self, t_end: float) -> None:
        """Draw every event up to `t_end` (in CHUNK_S steps from World time 0)."""
        if self._generated_to is None:
            self._generated_to = 0.0
            self._add_knot(0.0, self._chip(0.0))
        while self._generated_to < t_end:
            t0 = self._generated_to
            self._generated_to = t0 + CHUNK_S
            self._add_knot(self._generated_to, self._chip(CHUNK_S))
            self._route(self.generator.chunk(t0, CHUNK_S, self._rng_events))

    def _add_knot(self, t: float, kelvin: float) -> None:
        self._knot_t = np.append(self._knot_t[-KEEP_KNOTS:], t)
        self._knot_k = np.append(self._knot_k[-KEEP_KNOTS:], kelvin)

    def _chip(self, dt: float) -> float:
        """Plate temperature now + the drift advanced by `dt` (exact OU step)."""
        decay = math.exp(-dt / self.drift_time_s)
        self._drift = self._drift * decay + self.drift_rms_K * math.sqrt(
            1.0 - decay * decay
        ) * self._rng_drift.standard_normal()
        return self.world.thermal.temperature(self.plate) + self._drift

    def chip_temperature(self, t: np.ndarray | float) -> np.ndarray:
        """Chip temperature (K) at World times `t` of the last KEEP_KNOTS x CHUNK_S seconds
        generated (linear between CHUNK_S knots)."""
        return np.interp(t, self._knot_t, self._knot_k)

    def temperature_knots(self, t0: float, t1: float) -> tuple[np.ndarray, np.ndarray]:
        """The knots of the chip temperature covering [t0, t1]."""
        kt = self._knot_t
        lo = max(int(np.searchsorted(kt, t0, side="right")) - 1, 0)
        hi = min(int(np.searchsorted(kt, t1, side="left")) + 1, kt.size)
        lo = min(lo, hi - 2)
        return kt[lo:hi], self._knot_k[lo:hi]

    def _route(self, ev: dict[str, np.ndarray]) -> None:
        """Turn events into per-channel signal terms and truth rows."""
        n = ev["time_s"].size
        if n == 0:
            return
        chip = self.chip_temperature(ev["time_s"])
        kind = ev["kind"]
        pixel = ev["pixel"]
        energy = ev["energy_eV"]
        px = np.where(pixel >= 0, pixel, 0)
        ch = ev["channel"]
        up = 2 * COLS * ((ch - 1) // COLS) + (ch - 1) % COLS  # the channel's upper pixel
        dep = ev["deposit"]
        sensor = dep == DEPOSITS.index("sensor")
        substrate = dep == DEPOSITS.index("substrate")
        hit = (pixel >= 0) & ~sensor
        position = self._rng_events.random(n)  # where in the absorber (athermal loss)
        height, rise, decay = np.zeros(n), np.ones(n), np.ones(n)
        sensor_peak = np.zeros(0)  # a sensor hit's jump: both of its terms
        if hit.any():
            h, r, d = self.model.absorber_hits(px[hit], energy[hit], chip[hit], position[hit])
            height[hit], rise[hit], decay[hit] = self.polarity[px[hit]] * h, r, d
        phase = ev["phase"].copy()
        extra = None  # a sensor hit's second term (the part relaxing with the rise time)
        if sensor.any():
            c_d, c_r, r, d = self.model.sensor_hits(px[sensor], energy[sensor], chip[sensor])
            pol = self.polarity[px[sensor]]
            k = np.full(r.size, SENSOR_RISE_S)
            height[sensor] = pol * c_d * peak_norm(k, d)
            rise[sensor], decay[sensor] = SENSOR_RISE_S, d
            extra = np.array([ev["time_s"][sensor], pol * c_r * peak_norm(k, r), k, r,
                              np.zeros(r.size)])
            sensor_peak = pol * (c_d + c_r)
        # substrate: heat reaches the sensor slowly through the substrate, a third of it
        rise[substrate] = 0.1 * decay[substrate]
        decay[substrate] = 2.0 * decay[substrate]
        height[substrate] *= 0.3
        jump = kind == KINDS.index("jump")
        burst = kind == KINDS.index("burst")
        ref = self._phi0_per_eV[up]  # channel-wide: the upper pixel's scale
        height[jump] = ev["amplitude_eV"][jump] * ref[jump]
        rise[jump], decay[jump] = 1e-9, JUMP_RECOVERY_S
        bg = self.generator.background
        height[burst] = ev["amplitude_eV"][burst] * ref[burst]
        rise[burst] = bg.burst_frequency_hz
        decay[burst] = -bg.burst_damping_s
        terms = np.array([ev["time_s"], height, rise, decay, phase])
        peak = height.copy()  # the truth's peak flux
        peak[sensor] = sensor_peak
        if extra is not None:
            chans = np.concatenate([ch, ch[sensor]])
            terms = np.concatenate([terms, extra], axis=1)
        else:
            chans = ch
        for c in np.unique(chans):
            self.outputs[int(c)].add_terms(terms[:, chans == c])
        self._truth.append({  # compact: strings are made in `truth()`
            "time_s": ev["time_s"],
            "channel": ch,
            "pixel": pixel,
            "kind": kind,
            "energy_eV": energy,
            "deposit": dep,
            "amplitude_eV": ev["amplitude_eV"],
            "height_phi0": np.where(burst, 0.0, peak),
            "chip_K": chip,
        })
        self._truth_cache = None

    # -- truth -------------------------------------------------------------------------------

    def truth(self) -> dict[str, np.ndarray]:
        """Every event generated so far (see the module docstring), sorted by time."""
        if self._truth_cache is None:
            if not self._truth:
                return {k: np.zeros(0) for k in ("time_s", "channel", "pixel", "kind", "energy_eV")}
            if len(self._truth) > 1:
                rows = {k: np.concatenate([t[k] for t in self._truth]) for k in self._truth[0]}
                order = np.argsort(rows["time_s"], kind="stable")
                self._truth = [{k: v[order] for k, v in rows.items()}]
            rows = dict(self._truth[0])
            names = np.array([pixel_name(i) for i in range(self.polarity.size)])
            pairs = np.array([channel_name(c) for c in range(1, N_CHANNELS + 1)])
            pixel = rows["pixel"]
            rows["pixel"] = np.where(pixel >= 0, names[np.maximum(pixel, 0)],
                                     pairs[rows["channel"] - 1])
            rows["kind"] = np.array(KINDS)[rows["kind"]]
            rows["deposit"] = np.array(DEPOSITS)[rows["deposit"]]
            self._truth_cache = rows
        return self._truth_cache

    def now_K(self) -> float:
        """The chip temperature at the latest knot (the plate's before any was drawn)."""
        if self._knot_k.size:
            return float(self._knot_k[-1])
        return float(self.world.thermal.temperature(self.plate))

    def pixels(self, chip_K: float | None = None) -> dict[str, np.ndarray]:
        """The pixels and the model's predictions at `chip_K` (see the module docstring)."""
        t = self.now_K() if chip_K is None else float(chip_K)
        m = self.model
        r = m.response(t)
        c1, c2 = r.body.c1, r.body.c2
        base = np.array([
            m.baseline_fwhm_eV(i, list(channel_pixels(int(c))), t,
                               self.noisy_factor if int(c) in self.noisy else 1.0)
            for i, c in enumerate(self.pixel_channel)
        ])
        return {
            "name": np.array([pixel_name(i) for i in range(self.polarity.size)]),
            "channel": self.pixel_channel.copy(),
            "polarity": self.polarity.astype(int),
            "rise_s": r.rise_s,
            "decay_s": r.decay_s,
            "phi0_per_eV": r.phi0_per_eV,
            "gain": r.phi0_per_eV / np.median(r.phi0_per_eV),
            "gain_per_K": thermo.gain_per_K(m.design, t),
            "phi0_per_K": r.phi0_per_K,
            "dM_dT_A_m2_per_K": -thermo.spin_heat_capacity(m.design, t) / thermo.field_T(
                m.design),
            "heat_capacity_absorber_J_per_K": c1,
            "heat_capacity_sensor_J_per_K": c2,
            "baseline_fwhm_eV": base,
            "small_sensor": self.small_sensor.copy(),
        }

    def channels(self, chip_K: float | None = None) -> dict[str, np.ndarray]:
        """The channels and their model noise at `chip_K` (see the module docstring)."""
        t = self.now_K() if chip_K is None else float(chip_K)
        ids = np.arange(1, N_CHANNELS + 1)
        out = [self.outputs[int(c)] for c in ids]
        r = self.model.response(t)
        onef, tcoef = np.zeros(ids.size), np.zeros(ids.size)
        for k, o in enumerate(out):
            if not o.dead:
                onef[k] = (self.model.readout.onef_phi0sq_at_1hz * o.factor**2
                           + float(np.sum(r.er_onef_phi0sq[o.pixels])))
                tcoef[k] = float(np.sum(self.polarity[o.pixels] * r.phi0_per_K[o.pixels]))
        return {
            "channel": ids,
            "name": np.array([channel_name(int(c)) for c in ids]),
            "dead": np.array([o.dead for o in out]),
            "noisy": np.array([int(c) in self.noisy for c in ids]),
            "nongradiometric": np.isin(ids, CORNER_CHANNELS),
            "white_phi0_per_rthz": np.array([o.white_density for o in out]),
            "onef_phi0sq_at_1hz": onef,
            "temperature_phi0_per_K": tcoef,
        }


def mmc_array(world: World, name: str = "mmc") -> MmcArray:
    """The World's array `name`, built from `world.detector` on first use."""
    return world.detector_array(name, lambda: MmcArray(world, name))
