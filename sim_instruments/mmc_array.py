"""The maXs30 MMC array behind the SQUID electronics: 64 pixels on 32 double-meander channels.

Geometry (REFERENCE section 1). Pixels A1..H8: rows A-H, columns 1-8. Channel k (1-based)
reads the two vertically neighbouring pixels of row pair p = (k - 1) // 8 (A/B, C/D, E/F, G/H)
in column (k - 1) % 8 + 1: channel 1 = A1/B1, 8 = A8/B8, 16 = C8/D8, 32 = G8/H8. The upper
pixel (A, C, E, G) gives positive pulses, the lower one negative (the gradiometer). The four
corner channels (1, 8, 25, 32) are non-gradiometric: the corner pixel's sensor is 250 um
instead of 300 um wide, so that pixel's pulses are (250/300)^2 smaller (it still has its
absorber and sees photons) and the channel's baseline follows the chip temperature,
(1 - (250/300)^2) x phi0_per_eV x C / e per kelvin with the sign of the larger pixel.

Signal of channel k in flux quanta, sampled at the ADC's rate (World time t):
  sum over hits of polarity x phi0_per_eV x gain_pixel x g(T_chip) x E (1 - E / E_nl)
      x (1 + excess scatter) x shape(t - t_hit)       (shape per pixel, or distorted)
  + white + 1/f noise  + non-gradiometric baseline  + jumps and bursts,
where g(T) = exp(gain_per_K (T - reference_K)) and T_chip = the thermal plant's `plate`
temperature + a seeded Ornstein-Uhlenbeck drift (`drift_rms_K`, `drift_time_s`). The noise is
white flux noise of density `white_phi0_per_rthz` (the SQUID's and the readout's, referred
to the SQUID input) plus 1/f with knee `noise_knee_hz`, the same physical parameters on every
channel; the baseline resolution each pixel then has follows from its pulse shape and gain
and is for the analysis to find. This is the total noise at the ADC: the SQUID electronics
and the ADC's own white noise are part of it (see `MmcChannel.codes`). Dead channels give
no flux at all; noisy ones have `noisy_factor` times the noise. An unlocked SQUID passes
nothing (squid_model).

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
- `array.pixels()` -> dict of (64,) arrays: `name`, `channel`, `polarity` (+1/-1), `rise_s`,
  `decay_s`, `gain` (relative, incl. the small sensor), `phi0_per_eV` (at reference_K),
  `small_sensor` (bool).
- `array.channels()` -> dict of (32,) arrays: `channel`, `name` ("C8/D8"), `dead`, `noisy`,
  `nongradiometric`, `white_phi0_per_rthz`, `knee_hz`, `temperature_phi0_per_K`
  (non-gradiometric baseline coefficient, else 0).
- `array.chip_temperature(t)` -> chip temperature (K) at World times `t` (the last 2 h).

Distorted hits (muon showers): in the sensor, a 100 ns rise and an overshoot relaxing with
the pixel's rise time (the sensor alone heated first); in the substrate, a slow small pulse
(rise 0.1 and decay 2 pixel decay times, a third of the height: mostly below an edge trigger's
threshold, it distorts the records it falls in). Jumps: a step that relaxes in 1 s.

Between acquisitions a campaign may swap the source or mount the shield with
`set: {world.detector.source: none}` or `{world.background.shield: ptfe}` (`World.set_param`):
events drawn from then on follow the new parameters.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

import numba
import numpy as np

from cryodaq.sim_instruments import ziggurat
from cryodaq.sim_instruments.mmc_background import (
    DEPOSITS,
    KINDS,
    ArrayLayout,
    Background,
    EventGenerator,
    sources_from_params,
)
from cryodaq.sim_instruments.noise import ColoredNoise
from cryodaq.sim_instruments.params import number
from cryodaq.sim_instruments.pulse_source import TAIL_DECAYS, add_pulse

if TYPE_CHECKING:
    from cryodaq.sim_instruments.world import World

ROWS = "ABCDEFGH"
COLS = 8
N_CHANNELS = 32
CORNER_CHANNELS = (1, 8, 25, 32)
#: Events are drawn in chunks of this much virtual time (also the chip temperature's knots).
CHUNK_S = 1.0
E_CHARGE = 1.602176634e-19
#: Chip temperature knots kept (2 h at CHUNK_S), for signals and truth.
KEEP_KNOTS = 7200
#: Rise of a hit in the sensor itself (electron-spin coupling, REFERENCE: ~100 ns).
SENSOR_RISE_S = 1e-7
#: A jump: an instantaneous step that relaxes over this time (a step within any record).
JUMP_RECOVERY_S = 1.0
#: The 1/f synthesis runs up to this many knees (there 1/f is 1 % of the white level).
ONE_OVER_F_TOP_KNEES = 100.0


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


@numba.njit(cache=True, nogil=True)
def _add_oscillation(out, t0, rate, time, amplitude, freq, damping, phase):  # pragma: no cover
    """Add amplitude sin(2 pi f (t - time) + phase) exp(-(t - time) / damping), t >= time."""
    n = out.shape[0]
    first = max(int(math.ceil((time - t0) * rate)), 0)
    last = min(n, int(math.ceil((time - t0) * rate + TAIL_DECAYS * damping * rate)) + 1)
    for i in range(first, last):
        dt = t0 + i / rate - time
        out[i] += amplitude * math.sin(2.0 * math.pi * freq * dt + phase) * math.exp(-dt / damping)


@numba.njit(cache=True, nogil=True)
def _add_terms(buf, t0, rate, terms):  # pragma: no cover - numba
    """Add the terms (rows time, height, rise, decay, phase) that reach [t0, t0 + n / rate):
    two-exponential pulses (decay > 0) and oscillations (decay < 0: -damping, with frequency
    in the rise row). Returns how many have ended before the block's end, and the range of
    samples [lo, hi) they may have touched (the rest of buf is left as it was)."""
    n = buf.shape[0]
    t_end = t0 + n / rate
    ended = 0
    lo, hi = n, 0
    for p in range(terms.shape[1]):
        time, height, rise, decay = terms[0, p], terms[1, p], terms[2, p], terms[3, p]
        tail = TAIL_DECAYS * abs(decay)
        if time + tail <= t_end:
            ended += 1
        if time >= t_end or time + tail <= t0:
            continue
        lo = min(lo, max(int(math.floor((time - t0) * rate)), 0))
        hi = max(hi, min(int(math.ceil((time + tail - t0) * rate)) + 2, n))
        if decay > 0:
            add_pulse(buf, t0, rate, time, height, rise, decay)
        else:
            _add_oscillation(buf, t0, rate, time, height, rise, -decay, terms[4, p])
    return ended, lo, hi


@numba.njit(cache=True, nogil=True)
def _add_ramp(buf, t0, rate, knot_t, knot_v):  # pragma: no cover - numba
    """Add the piecewise-linear function through (knot_t, knot_v) to buf[i] at t0 + i / rate
    (extrapolated by the first and last segments)."""
    n = buf.shape[0]
    i = 0
    for k in range(knot_t.shape[0] - 1):
        last = k == knot_t.shape[0] - 2
        stop = n if last else min(n, int(math.ceil((knot_t[k + 1] - t0) * rate)))
        if stop <= i:
            continue
        slope = (knot_v[k + 1] - knot_v[k]) / (knot_t[k + 1] - knot_t[k])
        v = knot_v[k] + slope * (t0 + i / rate - knot_t[k])
        dv = slope / rate
        for q in range(i, stop):
            buf[q] += v
            v += dv
        i = stop


@numba.njit(inline="always")
def _emit(out, buf, q, x, scale, quantise):  # pragma: no cover - numba
    x *= scale
    buf[q] = 0.0
    if quantise:
        out[q] = np.int16(np.rint(min(max(x, -32768.0), 32767.0)))
    else:
        out[q] = x


@numba.njit(cache=True, nogil=True)
def _render(  # pragma: no cover - numba
    out, buf, lo, hi, state, spare, onef, a, b, stride, phase, sigma, scale, quantise
):
    """out[i] = scale * (buf[i] + 1/f + sigma * normal), rounded and clipped to int16 if
    `quantise`; buf is read (and zeroed) only in [lo, hi), being zero elsewhere. The normals
    come in pairs from one 64-bit word, the pair's first at an even sample (phase + i), its
    second kept in `spare[0]` across blocks, so the stream does not depend on block sizes.
    The 1/f components are updated every stride[k] samples (ascending powers of two) and
    held between."""
    s0, s1, s2, s3 = ziggurat.load(state)
    n = out.shape[0]
    ncomp = onef.shape[0]
    total = 0.0
    for k in range(ncomp):
        total += onef[k]
    fastest = stride[0] if ncomp else 1 << 62
    i = 0
    while i < n:
        p = phase + i
        if ncomp and p & (fastest - 1) == 0:
            for k in range(ncomp):
                if p & (stride[k] - 1) != 0:
                    break
                z, s0, s1, s2, s3 = ziggurat.normal(s0, s1, s2, s3)
                new = a[k] * onef[k] + b[k] * z
                total += new - onef[k]
                onef[k] = new
        j = min(n, i + fastest - (p & (fastest - 1)))
        q = i
        if q < j and (phase + q) & 1:
            _emit(out, buf, q, buf[q] + total + sigma * spare[0], scale, quantise)
            q += 1
        if quantise and (j <= lo or q >= hi):  # the hot loop: noise alone
            while q + 1 < j:
                z1, z2, s0, s1, s2, s3 = ziggurat.normal_pair(s0, s1, s2, s3)
                x1 = (total + sigma * z1) * scale
                x2 = (total + sigma * z2) * scale
                out[q] = np.int16(np.rint(min(max(x1, -32768.0), 32767.0)))
                out[q + 1] = np.int16(np.rint(min(max(x2, -32768.0), 32767.0)))
                q += 2
        elif quantise:  # with pulses, jumps, bursts or a temperature baseline
            while q + 1 < j:
                z1, z2, s0, s1, s2, s3 = ziggurat.normal_pair(s0, s1, s2, s3)
                x1 = (buf[q] + total + sigma * z1) * scale
                x2 = (buf[q + 1] + total + sigma * z2) * scale
                buf[q] = 0.0
                buf[q + 1] = 0.0
                out[q] = np.int16(np.rint(min(max(x1, -32768.0), 32767.0)))
                out[q + 1] = np.int16(np.rint(min(max(x2, -32768.0), 32767.0)))
                q += 2
        else:
            while q + 1 < j:
                z1, z2, s0, s1, s2, s3 = ziggurat.normal_pair(s0, s1, s2, s3)
                _emit(out, buf, q, buf[q] + total + sigma * z1, scale, quantise)
                _emit(out, buf, q + 1, buf[q + 1] + total + sigma * z2, scale, quantise)
                q += 2
        if q < j:
            z1, z2, s0, s1, s2, s3 = ziggurat.normal_pair(s0, s1, s2, s3)
            spare[0] = z2
            _emit(out, buf, q, buf[q] + total + sigma * z1, scale, quantise)
        i = j
    ziggurat.store(state, s0, s1, s2, s3)


class MmcChannel:
    """Flux of one double-meander channel; a source for `squid_model` (like `PulseSource`)."""

    def __init__(self, array: MmcArray, channel: int, rng: np.random.Generator) -> None:
        self.array = array
        self.channel = channel
        self.dead = channel in array.dead
        factor = array.noisy_factor if channel in array.noisy else 1.0
        self.white_density = 0.0 if self.dead else array.channel_white[channel - 1] * factor
        self._rng_noise, state_rng = rng.spawn(2)
        self._state = ziggurat.new_state(state_rng)
        self._spare = np.zeros(1)  # the second normal of a pair drawn at a block's end
        self._noise: ColoredNoise | None = None
        self._phase = 0
        self._buf = np.zeros(0)
        self._terms = np.zeros((5, 0))  # rows: time, height, rise (or frequency), decay, phase
        self._pending: list[np.ndarray] = []
        self.temperature_phi0_per_K = 0.0 if self.dead else array.channel_tcoef[channel - 1]

    @property
    def history(self) -> list[tuple[float, float]]:
        """(arrival time s, energy eV) of the pulses of this channel's pixels so far."""
        truth = self.array.truth()
        sel = (truth["channel"] == self.channel) & (truth["energy_eV"] > 0)
        return list(zip(truth["time_s"][sel], truth["energy_eV"][sel], strict=True))

    def white_sigma(self, rate_hz: float) -> float:
        """Rms (Phi0) per sample of the white noise at `rate_hz` (all of it: see the module)."""
        return self.white_density * math.sqrt(rate_hz / 2.0)

    def _onef(self, rate_hz: float) -> ColoredNoise:
        if self._noise is None or self._noise.rate_hz != rate_hz:
            knee = 0.0 if self.dead else self.array.knee_hz
            self._noise = ColoredNoise(
                self.white_density, knee, rate_hz, self._rng_noise, ONE_OVER_F_TOP_KNEES * knee
            )
            self._phase = 0
        return self._noise

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
            ended, lo, hi = _add_terms(buf, t0, rate_hz, self._terms)
            if ended > 64:  # drop the terms that are over (rarely: it costs a copy)
                terms = self._terms
                over = terms[0] + TAIL_DECAYS * np.abs(terms[3]) <= t_end
                self._terms = np.ascontiguousarray(terms[:, ~over])
        if self.temperature_phi0_per_K:
            knots_t, knots_k = self.array.temperature_knots(t0, t_end)
            _add_ramp(buf, t0, rate_hz, knots_t,
                      self.temperature_phi0_per_K * (knots_k - self.array.reference_K))
            lo, hi = 0, n
        return buf, lo, hi

    def _render(self, out: np.ndarray, t0: float, rate: float, sigma: float, scale: float) -> None:
        buf, lo, hi = self._prepare(t0, out.shape[0], rate)
        state, a, b, stride = self._onef(rate).components()
        _render(out, buf, lo, hi, self._state, self._spare, state, a, b, stride, self._phase,
                sigma, scale, out.dtype == np.int16)
        self._phase += out.shape[0]

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
        sigma = self.white_sigma(rate_hz)
        if white_sigma is not None:
            sigma = max(sigma, white_sigma)
        out = np.empty(n)
        self._render(out, t0, rate_hz, sigma, 1.0)
        return out

    def codes(
        self, t0: float, n: int, rate_hz: float, codes_per_phi0: float, electronics_phi0: float,
        out: np.ndarray,
    ) -> None:
        """ADC codes (int16 `out`) of this channel through a locked FLL and an ADC: one fused
        pass. The channel's noise is the total at the ADC: its Gaussian part has the variance
        of the channel's white noise less the quantisation's (1/12 LSB^2), and never less
        than `electronics_phi0` (amplifier and ADC noise, flux-referred)."""
        q2 = 1.0 / (12.0 * codes_per_phi0**2)
        sigma = math.sqrt(max(self.white_sigma(rate_hz) ** 2 - q2, electronics_phi0**2))
        self._render(out, t0, rate_hz, sigma, codes_per_phi0)

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
        self.phi0_per_eV = number(p, "phi0_per_eV", 1e-5, w, 0.0)
        rise = number(p, "rise_s", 10e-6, w, 1e-8)
        decay = number(p, "decay_s", 3e-3, w, rise)
        spread = number(p, "shape_spread", 0.03, w, 0.0, 0.3)
        gain_spread = number(p, "gain_spread", 0.02, w, 0.0, 0.3)
        #: SQUID + readout white flux noise density (Phi0/rtHz), every channel.
        self.white_phi0_per_rthz = number(p, "white_phi0_per_rthz", 9.1e-7, w, 0.0)
        excess = number(p, "excess_fwhm_eV", 3.8, w, 0.0)
        self.excess_rel = excess / (2.0 * math.sqrt(2.0 * math.log(2.0))) / 5.9e3
        self.knee_hz = number(p, "noise_knee_hz", 5.0, w, 0.0)
        self.dead = set(_channel_list(p.get("dead_channels", [11, 20, 27]), "dead_channels"))
        self.noisy = set(_channel_list(p.get("noisy_channels", ["C8/D8"]), "noisy_channels"))
        self.noisy_factor = number(p, "noisy_factor", 2.5, w, 0.0)
        self.gain_per_K = number(p, "gain_per_K", -500.0, w)
        self.reference_K = number(p, "reference_K", 0.020, w, 1e-4)
        self.plate = str(p.get("plate", "detector"))
        world.thermal.temperature(self.plate)  # a wrong plate name fails here, named
        self.drift_rms_K = number(p, "drift_rms_K", 10e-6, w, 0.0)
        self.drift_time_s = number(p, "drift_time_s", 300.0, w, 1e-3)
        self.nonlinearity_eV = number(p, "nonlinearity_eV", 5.9e6, w, 1.0)
        heat_capacity = number(p, "heat_capacity_J_per_K", 1.4e-11, w, 0.0)
        sensor = number(p, "sensor_um", 300.0, w, 1.0)
        small = number(p, "small_sensor_um", 250.0, w, 1.0, sensor)
        absorber = number(p, "absorber_um", 500.0, w, 1.0)
        thickness = number(p, "absorber_thickness_um", 20.0, w, 0.01)
        chip = number(p, "chip_mm", 8.0, w, 0.1)

        rng = world.rng(f"{name}.pixels")
        npix = len(ROWS) * COLS
        self.polarity = np.array([1.0 if (i // COLS) % 2 == 0 else -1.0 for i in range(npix)])
        self.rise_s = rise * (1.0 + spread * rng.standard_normal(npix))
        self.decay_s = decay * (1.0 + spread * rng.standard_normal(npix))
        self.gain = 1.0 + gain_spread * rng.standard_normal(npix)
        self.pixel_channel = np.zeros(npix, dtype=np.int64)
        for ch in range(1, N_CHANNELS + 1):
            for px in channel_pixels(ch):
                self.pixel_channel[px] = ch
        area_ratio = (small / sensor) ** 2
        corner_pixels = {0, COLS - 1, npix - COLS, npix - 1}
        self.small_sensor = np.array([i in corner_pixels for i in range(npix)])
        self.gain[self.small_sensor] *= area_ratio
        # Common-mode chip heating: flux phi0_per_eV x C/e per K from each sensor, with the
        # pixel's polarity: it cancels in a gradiometer and leaves the difference at a corner.
        phi0_per_K = self.phi0_per_eV * heat_capacity / E_CHARGE
        self.channel_tcoef = np.zeros(N_CHANNELS)
        for ch in CORNER_CHANNELS:
            up, low = channel_pixels(ch)
            up_s = area_ratio if self.small_sensor[up] else 1.0
            low_s = area_ratio if self.small_sensor[low] else 1.0
            self.channel_tcoef[ch - 1] = phi0_per_K * (up_s - low_s)
        self.channel_white = np.full(N_CHANNELS, self.white_phi0_per_rthz)

        cm2 = 1e-8  # per um^2
        groups = tuple(tuple(range(g, g + 16)) for g in (1, 17))
        self.layout = ArrayLayout(
            self.pixel_channel, len(ROWS), COLS, absorber**2 * cm2, (chip * 1e3) ** 2 * cm2,
            thickness * 1e-6, groups,
        )
        self.generator = self._generator()
        world.on_param_change(self._param_changed)
        world.on_param_change(self._reconfigure)
        self._rng_events = world.rng(f"{name}.events")
        self._rng_drift = world.rng(f"{name}.drift")
        self._generated_to: float | None = None
        self._knot_t = np.zeros(0)  # chip temperature at CHUNK_S steps (the last KEEP_KNOTS)
        self._knot_k = np.zeros(0)
        self._drift = 0.0
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

    def _reconfigure(self, key: str) -> None:
        """A campaign swapped the source or changed the background (`set: {world.KEY: v}`):
        events drawn from the next chunk (<= CHUNK_S later) follow the new parameters."""
        if key.split(".")[0] in ("sources", "background") or key.startswith("detector.source"):
            params = self.world.params
            self.generator = EventGenerator(
                sources_from_params(params), Background.from_params(params.get("background") or {}),
                self.layout,
            )

    def response(self, energy_eV: np.ndarray, chip_K: np.ndarray) -> np.ndarray:
        """Relative flux per eV at `energy_eV` and chip temperature (before pixel gain)."""
        g = np.exp(self.gain_per_K * (chip_K - self.reference_K))
        return g * (1.0 - energy_eV / self.nonlinearity_eV)

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
        scatter = 1.0 + self.excess_rel * self._rng_events.standard_normal(n)
        height = (self.polarity[px] * self.gain[px] * self.phi0_per_eV * energy
                  * self.response(energy, chip) * scatter)
        rise, decay = self.rise_s[px].copy(), self.decay_s[px].copy()
        phase = ev["phase"].copy()
        extra = []  # a sensor hit's overshoot: a second term relaxing with the pixel's rise
        dep = ev["deposit"]
        sensor = dep == DEPOSITS.index("sensor")
        substrate = dep == DEPOSITS.index("substrate")
        rise[sensor] = SENSOR_RISE_S
        if sensor.any():
            extra.append(np.array([ev["time_s"][sensor], height[sensor],
                                   np.full(sensor.sum(), SENSOR_RISE_S), self.rise_s[px][sensor],
                                   np.zeros(sensor.sum())]))
        # substrate: heat reaches the sensor slowly through the substrate, a third of it
        rise[substrate] = 0.1 * self.decay_s[px][substrate]
        decay[substrate] = 2.0 * self.decay_s[px][substrate]
        height[substrate] *= 0.3
        jump = kind == KINDS.index("jump")
        burst = kind == KINDS.index("burst")
        ref = self.phi0_per_eV * self.gain[up]  # channel-wide: the upper pixel's scale
        height[jump] = ev["amplitude_eV"][jump] * ref[jump]
        rise[jump], decay[jump] = 1e-9, JUMP_RECOVERY_S
        bg = self.generator.background
        height[burst] = ev["amplitude_eV"][burst] * ref[burst]
        rise[burst] = bg.burst_frequency_hz
        decay[burst] = -bg.burst_damping_s
        terms = np.array([ev["time_s"], height, rise, decay, phase])
        if extra:
            sensor_ch = ch[sensor]
            extra_terms = np.concatenate(extra, axis=1)
            chans = np.concatenate([ch, sensor_ch])
            terms = np.concatenate([terms, extra_terms], axis=1)
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
            "height_phi0": np.where(burst, 0.0, height),
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

    def pixels(self) -> dict[str, np.ndarray]:
        """Injected per-pixel parameters (see the module docstring)."""
        return {
            "name": np.array([pixel_name(i) for i in range(self.polarity.size)]),
            "channel": self.pixel_channel.copy(),
            "polarity": self.polarity.astype(int),
            "rise_s": self.rise_s.copy(),
            "decay_s": self.decay_s.copy(),
            "gain": self.gain.copy(),
            "phi0_per_eV": self.phi0_per_eV * self.gain,
            "small_sensor": self.small_sensor.copy(),
        }

    def channels(self) -> dict[str, np.ndarray]:
        """Injected per-channel parameters (see the module docstring)."""
        ids = np.arange(1, N_CHANNELS + 1)
        out = [self.outputs[int(c)] for c in ids]
        return {
            "channel": ids,
            "name": np.array([channel_name(int(c)) for c in ids]),
            "dead": np.array([o.dead for o in out]),
            "noisy": np.array([int(c) in self.noisy for c in ids]),
            "nongradiometric": np.isin(ids, CORNER_CHANNELS),
            "white_phi0_per_rthz": np.array([o.white_density for o in out]),
            "knee_hz": np.full(ids.size, self.knee_hz),
            "temperature_phi0_per_K": np.array([o.temperature_phi0_per_K for o in out]),
        }


def mmc_array(world: World, name: str = "mmc") -> MmcArray:
    """The World's array `name`, built from `world.detector` on first use."""
    return world.detector_array(name, lambda: MmcArray(world, name))
