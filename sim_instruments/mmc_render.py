"""Rendering an MMC channel's flux block by block: the pulse terms and the model's noise.

The noise of a channel (`NoiseSections`) is built from the sections of the detector model
(`cryodaq.analysis.mmc_thermo`), each a filter of white noise:
- white (the SQUIDs') plus the fast thermodynamic Lorentzian (corner 1/(2 pi tau_r)) as one
  ARMA(1,1) process driven by one normal per sample: y[n] = a y[n-1] + c0 z[n] + c1 z[n-1]
  has the PSD sigma^2 + L / (1 + (2 pi f tau)^2) for a = exp(-1/(rate tau)) and c0, c1 from
  the spectral factorisation of that sum (`arma_coefficients`); the pixels of a channel have
  rise times a few % apart, their fast Lorentzians are summed into one of the same level and
  variance (an error ~ (spread)^2 of a part that is itself a few % of the white);
- the slow thermodynamic Lorentzians (one per pixel, merged likewise when the two decay
  times are within 10 %; corner 1/(2 pi tau_d)) and the 1/f noise
  (SQUID and Er spins; a sum of Lorentzians with corners a factor 2 apart, see
  `cryodaq.sim_instruments.noise`) as first-order processes updated every `stride` samples
  (rate / stride >= 16 corners) and interpolated linearly in between (held values would
  put steps at fixed phases into records: noise that is not stationary within a record).
The normals come from one xoshiro/ziggurat stream per channel, in sample order, so the
stream does not depend on block sizes.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numba
import numpy as np

from cryodaq.sim_instruments import ziggurat
from cryodaq.sim_instruments.noise import CORNER_RATIO, LOWEST_CORNER_HZ
from cryodaq.sim_instruments.pulse_source import TAIL_DECAYS, add_pulse

#: Slow components are updated at >= this many times their corner frequency.
UPDATES_PER_CORNER = 16.0
#: ... and at >= 1 / this times the highest frequency where their tail matters (`_stride`).
TAIL_FIDELITY = 0.25
#: The 1/f synthesis runs up to this many times the frequency where 1/f crosses the white
#: (the knee); there 1/f is 7 % of the white, and the optimal-filter resolution of a maXs30
#: pixel differs from that of a 1/f without end by ~0.7 %.
ONE_OVER_F_TOP_KNEES = 15.0


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
def add_terms(buf, t0, rate, terms):  # pragma: no cover - numba
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


@numba.njit(inline="always")
def _emit(out, q, x, scale, quantise):  # pragma: no cover - numba
    x *= scale
    if quantise:
        out[q] = np.int16(np.rint(min(max(x, -32768.0), 32767.0)))
    else:
        out[q] = x


@numba.njit(cache=True, nogil=True)
def render(  # pragma: no cover - numba
    out, buf, lo, hi, state, spare, slow, prev, a, b, stride, phase, arma, scale, quantise, base,
    slope
):
    """out[i] = scale * (buf[i] + base + slope i + slow components + ARMA(1,1) noise),
    rounded and clipped to int16 if `quantise`; buf is read (and zeroed) only in [lo, hi),
    being zero elsewhere.
    arma = [pole, c0, c1, y_prev, z_prev] (the last two updated). The normals come in pairs
    from one 64-bit word, the pair's first at an even sample (phase + i), its second kept in
    `spare[0]` across blocks. Slow component k is an AR(1) sampled every stride[k] samples
    (ascending powers of two) and interpolated linearly in between: `prev[k]` its value at
    the last multiple of stride[k] up to phase, `slow[k]` at the next one (both updated)."""
    s0, s1, s2, s3 = ziggurat.load(state)
    pole, c0, c1, y, zp = arma[0], arma[1], arma[2], arma[3], arma[4]
    pole2 = pole * pole
    n = out.shape[0]
    ncomp = slow.shape[0]
    total = base
    drift = slope  # per sample: the baseline's slope plus the slow components'
    inv = np.empty(ncomp)
    for k in range(ncomp):
        inv[k] = 1.0 / stride[k]
        r = phase & (stride[k] - 1)
        per = (slow[k] - prev[k]) * inv[k]
        total += slow[k] if r == 0 else prev[k] + per * r
        drift += per
    fastest = stride[0] if ncomp else 1 << 62
    i = 0
    while i < n:
        p = phase + i
        if ncomp and p & (fastest - 1) == 0:
            for k in range(ncomp):
                if p & (stride[k] - 1) != 0:
                    break
                z, s0, s1, s2, s3 = ziggurat.normal(s0, s1, s2, s3)
                old = slow[k]
                new = a[k] * old + b[k] * z
                drift += (new - old - (old - prev[k])) * inv[k]
                prev[k] = old
                slow[k] = new
        step = 2.0 * drift
        j = min(n, i + fastest - (p & (fastest - 1)))
        q = i
        if q < j and (phase + q) & 1:
            z1 = spare[0]
            y = pole * y + c0 * z1 + c1 * zp
            zp = z1
            _emit(out, q, buf[q] + total + y, scale, quantise)
            buf[q] = 0.0
            total += drift
            q += 1
        if quantise and (j <= lo or q >= hi):  # the hot loop: noise alone
            while q + 1 < j:
                z1, z2, s0, s1, s2, s3 = ziggurat.normal_pair(s0, s1, s2, s3)
                u1 = c0 * z1 + c1 * zp
                u2 = c0 * z2 + c1 * z1 + pole * u1
                x1 = (total + pole * y + u1) * scale
                y = pole2 * y + u2
                x2 = (total + drift + y) * scale
                total += step
                zp = z2
                out[q] = np.int16(np.rint(min(max(x1, -32768.0), 32767.0)))
                out[q + 1] = np.int16(np.rint(min(max(x2, -32768.0), 32767.0)))
                q += 2
        elif quantise:  # with pulses, jumps or bursts
            while q + 1 < j:
                z1, z2, s0, s1, s2, s3 = ziggurat.normal_pair(s0, s1, s2, s3)
                u1 = c0 * z1 + c1 * zp
                u2 = c0 * z2 + c1 * z1 + pole * u1
                x1 = (buf[q] + total + pole * y + u1) * scale
                y = pole2 * y + u2
                x2 = (buf[q + 1] + total + drift + y) * scale
                total += step
                zp = z2
                buf[q] = 0.0
                buf[q + 1] = 0.0
                out[q] = np.int16(np.rint(min(max(x1, -32768.0), 32767.0)))
                out[q + 1] = np.int16(np.rint(min(max(x2, -32768.0), 32767.0)))
                q += 2
        else:  # float output
            while q + 1 < j:
                z1, z2, s0, s1, s2, s3 = ziggurat.normal_pair(s0, s1, s2, s3)
                u1 = c0 * z1 + c1 * zp
                u2 = c0 * z2 + c1 * z1 + pole * u1
                x1 = buf[q] + total + pole * y + u1
                y = pole2 * y + u2
                x2 = buf[q + 1] + total + drift + y
                total += step
                zp = z2
                buf[q] = 0.0
                buf[q + 1] = 0.0
                _emit(out, q, x1, scale, quantise)
                _emit(out, q + 1, x2, scale, quantise)
                q += 2
        if q < j:
            z1, z2, s0, s1, s2, s3 = ziggurat.normal_pair(s0, s1, s2, s3)
            spare[0] = z2
            y = pole * y + c0 * z1 + c1 * zp
            zp = z1
            _emit(out, q, buf[q] + total + y, scale, quantise)
            buf[q] = 0.0
            total += drift
        i = j
    arma[3] = y
    arma[4] = zp
    ziggurat.store(state, s0, s1, s2, s3)


def arma_coefficients(sigma: float, level: float, tau_s: float, rate_hz: float
                      ) -> tuple[float, float, float]:
    """(a, c0, c1) of the ARMA(1,1) whose PSD is white `sigma` per sample plus a Lorentzian of
    one-sided level `level` (units^2/Hz) and time constant `tau_s` (module docstring)."""
    if level <= 0.0 or tau_s <= 0.0:
        return 0.0, sigma, 0.0
    a = math.exp(-1.0 / (rate_hz * tau_s))
    # the Lorentzian sampled: AR(1) with innovation b, its low-frequency level 2 b^2 /
    # (rate (1 - a)^2) = level
    b2 = level * rate_hz / 2.0 * (1.0 - a) ** 2
    s2 = sigma * sigma
    q = s2 * (1.0 + a * a) + b2
    c0 = math.sqrt((q + math.sqrt(max(q * q - 4.0 * a * a * s2 * s2, 0.0))) / 2.0)
    return a, c0, -a * s2 / c0


def _stride(rate_hz: float, corner_hz: float, level: float, white: float) -> int:
    """Samples between updates of a slow component: UPDATES_PER_CORNER per 1 / corner, and
    fine enough that the linear interpolation's sinc^4 cut (-(2/3) (pi f stride / rate)^2)
    takes < 0.5 % of the white level up to where the component's tail falls to 1 % of it."""
    reach = corner_hz * math.sqrt(max(level / (0.01 * white), 1.0)) if white > 0 else corner_hz
    limit = min(rate_hz / (UPDATES_PER_CORNER * corner_hz), TAIL_FIDELITY * rate_hz / reach)
    return max(1, 2 ** int(math.log2(max(limit, 1.0))))


class NoiseSections:
    """A channel's noise sections at one sample rate: the slow components (state, a, b,
    stride) and the fast Lorentzian (level, tau) that `render` merges with the white."""

    def __init__(self, rate_hz: float, white_density: float, onef_at_1hz: float,
                 slow: list[tuple[float, float]], fast: tuple[float, float],
                 rng: np.random.Generator) -> None:
        self.rate_hz = rate_hz
        self.white_density = white_density
        self.fast = fast
        corners, levels = [], []
        if onef_at_1hz > 0:
            # 1/f as Lorentzians of level c / f_k, corners a factor r apart: S = pi c /
            # (2 f ln r), so c = 2 ln(r) S(1 Hz) / pi
            c = 2.0 * math.log(CORNER_RATIO) * onef_at_1hz / math.pi
            knee = onef_at_1hz / max(white_density**2, 1e-300)
            top = min(rate_hz / 16.0, ONE_OVER_F_TOP_KNEES * knee)
            f = LOWEST_CORNER_HZ
            while f <= top:
                corners.append(f)
                levels.append(c / f)
                f *= CORNER_RATIO
        for level, tau in slow:
            if level > 0:
                corners.append(1.0 / (2.0 * math.pi * tau))
                levels.append(level)
        stride = np.array([_stride(rate_hz, fk, level, white_density**2)
                           for fk, level in zip(corners, levels, strict=True)], dtype=np.int64)
        order = np.argsort(stride, kind="stable")
        self.stride = np.ascontiguousarray(stride[order])
        fk = np.array(corners)[order] if corners else np.zeros(0)
        rates = rate_hz / self.stride
        self.a = np.exp(-2.0 * math.pi * fk / rates)
        self.b = (1.0 - self.a) * np.sqrt(np.array(levels)[order] * rates / 2.0)
        stationary = self.b / np.sqrt(1.0 - self.a**2) if corners else np.zeros(0)
        #: Each slow component at the last and the next multiple of its stride (`render`),
        #: started in the stationary state (no warm-up transient).
        self.prev = rng.standard_normal(fk.size) * stationary
        self.state = self.a * self.prev + self.b * rng.standard_normal(fk.size)
        self.arma = np.zeros(5)
        self._sigma = -1.0

    def white_sigma(self) -> float:
        return self.white_density * math.sqrt(self.rate_hz / 2.0)

    def set_white(self, sigma: float) -> np.ndarray:
        """The ARMA coefficients for white `sigma` per sample (state kept); returns `arma`."""
        if sigma != self._sigma:
            self.arma[:3] = arma_coefficients(sigma, self.fast[0], self.fast[1], self.rate_hz)
            self._sigma = sigma
        return self.arma

    def render(self, out: np.ndarray, buf: np.ndarray, lo: int, hi: int, normals: np.ndarray,
               spare: np.ndarray, phase: int, scale: float, base: float = 0.0,
               slope: float = 0.0) -> None:
        """`render` with these sections (`set_white` first); `normals`: the ziggurat state."""
        render(out, buf, int(lo), int(hi), normals, spare, self.state, self.prev, self.a, self.b,
               self.stride, int(phase), self.arma, float(scale), out.dtype == np.int16,
               float(base), float(slope))

    def carry_from(self, old: NoiseSections) -> None:
        """Continue from `old` (a temperature change rebuilt the sections): the ARMA state,
        and the slow components' states rescaled to their new stationary widths when the
        components correspond (same strides), so the noise has no step."""
        self.arma[3:] = old.arma[3:]
        if np.array_equal(self.stride, old.stride):
            width = self.b / np.sqrt(1.0 - self.a**2)
            before = old.b / np.sqrt(1.0 - old.a**2)
            scale = np.divide(width, before, out=np.zeros_like(width), where=before > 0)
            self.state = old.state * scale
            self.prev = old.prev * scale


#: A channel's noise sections are rebuilt when its temperature has moved by this fraction.
NOISE_RETUNE = 0.01


class ChannelNoise:
    """A channel's `NoiseSections` and the samples rendered with them (`phase`): rebuilt when
    the sample rate changes (phase restarts) or the temperature moves by > NOISE_RETUNE (the
    state carries over, `NoiseSections.carry_from`)."""

    def __init__(self, rng: np.random.Generator) -> None:
        self.rng = rng
        self.sections: NoiseSections | None = None
        self.temperature_K = 0.0
        self.phase = 0

    def at(self, rate_hz: float, temperature_K: float,
           components: Callable[[], tuple[float, float, list[tuple[float, float]],
                                          tuple[float, float]]]) -> NoiseSections:
        """The sections at `rate_hz` and `temperature_K`; `components()`: the model's (white,
        1/f at 1 Hz, slow, fast) there, asked only when the sections are rebuilt."""
        old = self.sections
        same_rate = old is not None and old.rate_hz == rate_hz
        if same_rate and abs(temperature_K - self.temperature_K) <= (
                NOISE_RETUNE * self.temperature_K):
            return old
        new = NoiseSections(rate_hz, *components(), self.rng)
        if same_rate:
            new.carry_from(old)
        else:
            self.phase = 0
        self.sections, self.temperature_K = new, temperature_K
        return new
