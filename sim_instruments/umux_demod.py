"""Firmware-equivalent channelisation and flux-ramp demodulation of one uMUX tone (numba).

Per-channel baseband equivalent of the ROACH2 chain. The DAC tone at f_t goes through the
feedline, whose transmission at f_t is the product of every nearby notch at its present
resonance f_r(Phi_k); Phi_k = static + detector flux + the common sawtooth ramp (n_Phi0 quanta
per period). The HEMT adds white noise; after down-conversion the firmware's digital
down-converter leaves the complex channel signal z_j at the channel rate f_ch (here directly:
the tone's carrier is removed; raw IQ keeps the tone phase and cable delay). The ramp is made
from the channel clock: a period holds `ratio` = f_ch / f_ramp samples. The demodulator then,
per ramp period (REFERENCE.md section 3): drops the first `drop` samples after the reset,
takes y_j = arg(r (z_j - c)), the resonator's phase about its IQ circle centre c (the
channel's calibration), forms C = sum y_j wa_j and S = sum y_j wb_j with reference tables for
w_c = 2 pi n_Phi0 f_ramp (`reference_weights`: the plain cos/sin sums made blind to the
offset and the next harmonics over the kept samples), theta = atan2(-S, C), and unwraps
theta (steps within +-pi): one output per ramp period. Noise, crosstalk, the residual
flux-dependent error and slips of signals faster than half a quantum per period all come out
of these sums. The channel filter passes the other tones attenuated by its isolation; their
offsets are multiples of the DAC look-up-table grid, so that leak repeats with the table's
period and the demodulated output carries lines at the table's rate and its harmonics (with
a 8192-sample table at 512 MS/s: 62.5 kHz, the HOLMES artefact).

The feedline response is tabulated per resonator against the fractional flux (`LUT_POINTS`
per quantum, linear interpolation, error < 1e-6 of S21); the detector flux, given at the
ramp-period boundaries, is interpolated linearly within each period, so a demodulated sample
is (nearly) the flux averaged over its period.
"""

from __future__ import annotations

import math

import numba
import numpy as np

from cryodaq.analysis.resonator import notch_s21, squid_resonance
from cryodaq.sim_instruments import ziggurat

#: Harmonics of the SQUID response the reference tables are made blind to, besides the first
#: (whose amplitude they measure) and the offset.
FIT_HARMONICS = 2
#: Points per flux quantum of the tabulated resonator response.
LUT_POINTS = 1024


def response_table(f_tone_hz: float, f0_hz: np.ndarray, swing_hz: float, lam: float,
                   q_i: np.ndarray, q_c: np.ndarray) -> np.ndarray:
    """S21 at the tone of each resonator (rows) against flux k / LUT_POINTS, k = 0..LUT_POINTS
    (the last point repeats the first: one period)."""
    flux = np.arange(LUT_POINTS + 1) / LUT_POINTS
    f_r = squid_resonance(flux[None, :], np.asarray(f0_hz)[:, None], swing_hz, lam)
    return np.ascontiguousarray(
        notch_s21(f_tone_hz, f_r, np.asarray(q_i)[:, None], np.asarray(q_c)[:, None]))


#: Abramowitz & Stegun 4.4.49: atan(t) = t sum_k A_k t^(2k) on [0, 1], error <= 2e-8 rad.
_A0, _A1, _A2, _A3, _A4, _A5, _A6, _A7 = (
    0.9999993329, -0.3332985605, 0.1994653599, -0.1390853351, 0.0964200441, -0.0559098861,
    0.0218612288, -0.0040540580)


@numba.njit(inline="always")
def phase_angle(y, x):  # pragma: no cover - numba
    """atan2(y, x) to 4e-8 rad (the firmware's CORDIC is coarser), ~5x faster than libm's;
    without branches, so that a loop over it vectorises (0 at the origin)."""
    ax, ay = abs(x), abs(y)
    hi = max(ax, ay)
    t = min(ax, ay) / (hi if hi > 0.0 else 1.0)
    t2 = t * t
    r = t * (_A0 + t2 * (_A1 + t2 * (_A2 + t2 * (_A3 + t2 * (_A4 + t2 * (
        _A5 + t2 * (_A6 + t2 * _A7)))))))
    r = 0.5 * math.pi - r if ay > ax else r
    r = math.pi - r if x < 0.0 else r
    return -r if y < 0.0 else r


@numba.njit(inline="always")
def lut_at(lut, flux):  # pragma: no cover - numba
    """A resonator's tabulated S21 (one row of `response_table`) at `flux` (quanta)."""
    size = lut.shape[0] - 1
    u = (flux - math.floor(flux)) * size
    i = int(u)
    if i >= size:
        i = size - 1
    return lut[i] + (lut[i + 1] - lut[i]) * (u - i)


@numba.njit(inline="always")
def _feedline(luts, static, signal, q, frac, n_phi0):  # pragma: no cover - numba
    """Noise-free channel signal: product of the tabulated notches at their present flux."""
    z = 1.0 + 0.0j
    for k in range(luts.shape[0]):
        s = signal[k, q]
        z *= lut_at(luts[k], static[k] + s + (signal[k, q + 1] - s) * frac + n_phi0 * frac)
    return z


def reference_weights(ratio: int, n_phi0: int, drop: int) -> tuple[np.ndarray, np.ndarray]:
    """The firmware's reference tables (wa, wb) over the `ratio` channel samples of a ramp
    period: a = sum y_j wa_j and b = sum y_j wb_j are the cos and sin amplitudes of the
    least-squares fit of y = a0 + a cos + b sin + (harmonics 2..FIT_HARMONICS) over the kept
    samples
    (the first `drop` get weight 0). With none dropped these are the plain sums
    (2/N) sum y cos and (2/N) sum y sin of REFERENCE.md section 3; with samples dropped the fit
    keeps the offset and the neighbouring harmonics from leaking into (a, b), which would
    otherwise leave a flux-dependent error of order drop/ratio radians."""
    if ratio < drop + 2 * FIT_HARMONICS + 2:
        raise ValueError(f"need >= {drop + 2 * FIT_HARMONICS + 2} channel samples per ramp "
                         f"period, got {ratio}")
    phase = 2.0 * np.pi * n_phi0 * np.arange(drop, ratio) / ratio
    harmonics = [f(h * phase) for h in range(1, FIT_HARMONICS + 1) for f in (np.cos, np.sin)]
    basis = np.column_stack([np.ones_like(phase), *harmonics])
    proj = np.linalg.pinv(basis)
    wa = np.zeros(ratio)
    wb = np.zeros(ratio)
    wa[drop:], wb[drop:] = proj[1], proj[2]
    return wa, wb


@numba.njit(inline="always")
def period_sums(start, luts, static, signal, q, ratio, n_phi0, wa, wb, drop, centre, rot, leak,
                sigma, u, du, s0, s1, s2, s3):  # pragma: no cover - numba
    """The firmware's sums (a, b) over ramp period q of `signal`, sample by sample: the
    feedline at each kept channel sample (`start` = the period's first sample in the stream,
    for the leak's phase), the leak, the HEMT noise (ziggurat stream s0..s3, advanced) and
    the phase about the circle centre. `u`, `du`: scratch arrays of one entry per resonator."""
    m = luts.shape[0]
    size = luts.shape[1] - 1
    n_leak = leak.shape[0]
    i_leak = (start + drop) % n_leak
    for k in range(m):  # flux linear in the period: start and step in table points
        step = (signal[k, q + 1] - signal[k, q] + n_phi0) / ratio
        flux = static[k] + signal[k, q] + step * drop
        u[k] = (flux - math.floor(flux)) * size
        du[k] = (step - math.floor(step)) * size
    a = 0.0
    b = 0.0
    for j in range(drop, ratio):
        z = 1.0 + 0.0j
        for k in range(m):
            i = int(u[k])
            if i >= size:
                i = size - 1
            w = u[k] - i
            z *= luts[k, i] + (luts[k, i + 1] - luts[k, i]) * w
            u[k] += du[k]
            if u[k] >= size:
                u[k] -= size
        z = (z + leak[i_leak] - centre) * rot
        i_leak += 1
        if i_leak == n_leak:
            i_leak = 0
        nq, s0, s1, s2, s3 = ziggurat.normal(s0, s1, s2, s3)
        ni, s0, s1, s2, s3 = ziggurat.normal(s0, s1, s2, s3)
        y = phase_angle(z.imag + sigma * nq, z.real + sigma * ni)
        a += y * wa[j]
        b += y * wb[j]
    return a, b, s0, s1, s2, s3


@numba.njit(inline="always")
def unwrap(prev, theta):  # pragma: no cover - numba
    """theta moved onto the branch within +-pi of `prev` (NaN: the stream's first output)."""
    if math.isnan(prev):
        return theta
    d = theta - prev
    return prev + d - 2.0 * math.pi * math.floor((d + math.pi) / (2.0 * math.pi))


@numba.njit(cache=True, nogil=True)
def demodulate(first_period, luts, static, signal, ratio, n_phi0, wa, wb, drop, centre, rot,
               leak, sigma, state, last, out):  # pragma: no cover - numba
    """Demodulated, unwrapped phase of ramp periods first_period .. first_period + len(out) - 1,
    computed sample by sample (the reference the per-period tables of `umux_period` follow).

    `signal` (resonators x (len(out) + 1)): detector flux at the periods' boundaries; `ratio`
    channel samples per ramp period (the ramp is generated from the channel clock); the
    first `drop` after each reset are discarded; `wa`, `wb` the reference tables
    (`reference_weights`); theta = atan2(-b, a). `centre` and `rot` the channel's calibration
    (`calibration`); `leak[j mod len]` the other tones leaking through the channel filter at
    channel sample j of the stream (`tone_leak`); `sigma` the noise per quadrature and
    channel sample (relative to the carrier), drawn from the ziggurat stream `state`; `last`
    the previous unwrapped phase (NaN at the start of a stream). Returns the last unwrapped
    phase."""
    prev = last
    s0, s1, s2, s3 = ziggurat.load(state)
    u = np.empty(luts.shape[0])
    du = np.empty(luts.shape[0])
    for q in range(out.shape[0]):
        a, b, s0, s1, s2, s3 = period_sums((first_period + q) * ratio, luts, static, signal, q,
                                           ratio, n_phi0, wa, wb, drop, centre, rot, leak,
                                           sigma, u, du, s0, s1, s2, s3)
        prev = unwrap(prev, math.atan2(-b, a))
        out[q] = prev
    ziggurat.store(state, s0, s1, s2, s3)
    return prev


@numba.njit(cache=True, nogil=True)
def channel_iq(first_sample, first_period, luts, static, signal, ratio, n_phi0, rot, leak,
               sigma, state, out):  # pragma: no cover - numba
    """Raw channel samples first_sample .. + len(out) - 1 (complex, rotated by `rot`, with the
    other tones' `leak` and noise `sigma` per quadrature); `signal` covers the ramp periods
    from `first_period` on."""
    s0, s1, s2, s3 = ziggurat.load(state)
    for i in range(out.shape[0]):
        j = first_sample + i
        p = j // ratio
        z = (_feedline(luts, static, signal, p - first_period, (j - p * ratio) / ratio, n_phi0)
             + leak[j % leak.shape[0]]) * rot
        ni, s0, s1, s2, s3 = ziggurat.normal(s0, s1, s2, s3)
        nq, s0, s1, s2, s3 = ziggurat.normal(s0, s1, s2, s3)
        out[i] = complex(z.real + sigma * ni, z.imag + sigma * nq)
    ziggurat.store(state, s0, s1, s2, s3)


def tone_leak(own_hz: float, others_hz: np.ndarray, amplitudes: np.ndarray,
              phases: np.ndarray, channel_rate_hz: float, period_samples: int) -> np.ndarray:
    """Other tones in a channel after its down-conversion, at the channel samples of one
    period of the DAC look-up table (`period_samples`, over which every tone offset, a
    multiple of the LUT grid, turns whole cycles): sum_o A_o exp(i (2 pi (f_o - f) j / f_ch
    + phi_o)), A_o the leak amplitude relative to the channel's own carrier."""
    j = np.arange(period_samples)
    leak = np.zeros(period_samples, dtype=complex)
    for f_o, a_o, phi_o in zip(others_hz, amplitudes, phases, strict=True):
        leak += a_o * np.exp(1j * (2.0 * np.pi * (f_o - own_hz) * j / channel_rate_hz + phi_o))
    return leak


def calibration(luts: np.ndarray, static: np.ndarray, n_phi0: int) -> tuple[complex, complex]:
    """The channel's centring, as the firmware measures it when the ramp starts: the centre c
    of the circle the channel's IQ traces over a ramp period (algebraic least-squares circle
    fit) and the unit phasor r that puts the mean of r (z - c) on the real axis. The
    demodulator's y = arg(r (z - c)) is then the resonator's phase angle about its circle
    centre, a smooth function of the flux, centred on zero."""
    frac = (np.arange(512) + 0.5) / 512
    z = np.array([_feedline(luts, static, np.zeros((luts.shape[0], 2)), 0, f, n_phi0)
                  for f in frac])
    x, y = z.real, z.imag
    a = np.column_stack([x, y, np.ones_like(x)])
    coef = np.linalg.lstsq(a, x * x + y * y, rcond=None)[0]
    centre = complex(coef[0] / 2.0, coef[1] / 2.0)
    mean = np.mean((z - centre) / np.abs(z - centre))
    return centre, complex(np.conj(mean) / abs(mean))


def readout_flux_density(luts: np.ndarray, static: np.ndarray, ratio: int, n_phi0: int,
                         drop: int, centre: complex, rot: complex, sigma: float,
                         f_ramp_hz: float) -> float:
    """Predicted white flux noise (Phi0/sqrt(Hz), one-sided) the HEMT noise gives this channel:
    the demodulator linearised in the noise (y_j moves by Im(n_j / z_j), z the centred signal;
    theta = arg X, X = a - ib, by Im(dX / X)) at the static flux."""
    wa, wb = reference_weights(ratio, n_phi0, drop)
    j = np.arange(drop, ratio)
    signal = np.zeros((luts.shape[0], 2))
    z = (np.array([_feedline(luts, static, signal, 0, f, n_phi0) for f in j / ratio])
         - centre) * rot
    w = wa[drop:] - 1j * wb[drop:]
    x = np.sum(np.angle(z) * w)
    var = np.sum(sigma**2 / np.abs(z) ** 2 * np.imag(w / x) ** 2)
    return float(np.sqrt(2.0 * var / f_ramp_hz) / (2.0 * np.pi))
