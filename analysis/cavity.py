"""Cavity-emitted radiation of a haloscope cavity (Chang et al. 2024, Eqs 1-4).

A cavity with intrinsic loss rate `kappa0`, external coupling rate `kappae` (both full widths
in Hz) and resonance `f_c` reflects the noise arriving from the attenuator with `S_r` and emits
its own thermal noise through the antenna with `S_t` (Eq 2). Noise temperatures are the
effective ones of Eq 3, which include the half quantum. Equation numbers are the seed paper's.

The emitted power is written once for any incoming noise temperature (`emitted_power`): the
lossless chain of Eq 1 feeds it `T~(T_att)`, a lossy input line (Eqs 5-8) feeds it `T_in`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike
from scipy import constants, optimize

H = constants.h
K_B = constants.k


@dataclass(frozen=True)
class Cavity:
    """A cavity mode seen through one antenna: rates are full widths in Hz (Eq 2)."""

    kappa0_Hz: float
    kappae_Hz: float
    fc_Hz: float

    def __post_init__(self) -> None:
        for name in ("kappa0_Hz", "kappae_Hz", "fc_Hz"):
            value = getattr(self, name)
            if not (np.isfinite(value) and value > 0):
                raise ValueError(f"Cavity.{name} must be a finite number > 0, got {value!r}")

    @property
    def linewidth_Hz(self) -> float:
        """Loaded full width kappa0 + kappae."""
        return self.kappa0_Hz + self.kappae_Hz

    @property
    def loaded_q(self) -> float:
        return self.fc_Hz / self.linewidth_Hz

    @property
    def coupling(self) -> float:
        """Coupling coefficient beta = kappae / kappa0 (> 1: over-coupled)."""
        return self.kappae_Hz / self.kappa0_Hz


@dataclass(frozen=True)
class Chain:
    """Linear amplification chain: power gain and added noise referred to its input (Eq 4)."""

    gain_dB: float
    added_noise_K: float

    @property
    def gain(self) -> float:
        return float(10.0 ** (self.gain_dB / 10.0))

    def received_power(self, emitted_W: ArrayLike, bandwidth_Hz: ArrayLike) -> np.ndarray:
        """Eq 4 with this chain's gain and added noise."""
        return received_power(emitted_W, bandwidth_Hz, self.gain, self.added_noise_K)


def _detuning(f: ArrayLike, cavity: Cavity) -> np.ndarray:
    return np.asarray(f, dtype=float) - cavity.fc_Hz


def reflection(f: ArrayLike, cavity: Cavity) -> np.ndarray:
    """Eq 2a: S_r = (kappa0 - kappae + 2iD) / (kappa0 + kappae + 2iD), D = f - f_c."""
    two_d = 2j * _detuning(f, cavity)
    return (cavity.kappa0_Hz - cavity.kappae_Hz + two_d) / (cavity.linewidth_Hz + two_d)


def transmission(f: ArrayLike, cavity: Cavity) -> np.ndarray:
    """Eq 2b: S_t = 2 sqrt(kappa0 kappae) / (kappa0 + kappae + 2iD)."""
    two_d = 2j * _detuning(f, cavity)
    return 2.0 * np.sqrt(cavity.kappa0_Hz * cavity.kappae_Hz) / (cavity.linewidth_Hz + two_d)


def transmission_power(f: ArrayLike, cavity: Cavity, bin_width_Hz: ArrayLike = 0.0) -> np.ndarray:
    """|S_t|^2 averaged over the bin [f - w/2, f + w/2] (w = 0: at f).

    |S_t|^2 = 4 k0 ke / (K^2 + 4 D^2) is a Lorentzian of full width K = k0 + ke; its bin average
    is 2 k0 ke / (K w) [atan(2 D+ / K) - atan(2 D- / K)], the difference of arctangents taken
    as one `arctan2` so that narrow bins keep full precision.
    """
    d = _detuning(f, cavity)
    w = np.asarray(bin_width_Hz, dtype=float)
    if np.any(w < 0):
        raise ValueError(f"bin_width_Hz must be >= 0, got {bin_width_Hz!r}")
    k = cavity.linewidth_Hz
    k0ke = cavity.kappa0_Hz * cavity.kappae_Hz
    point = 4.0 * k0ke / (k * k + 4.0 * d * d)
    a = 2.0 * (d + 0.5 * w) / k
    b = 2.0 * (d - 0.5 * w) / k
    with np.errstate(divide="ignore", invalid="ignore"):
        averaged = 2.0 * k0ke / (k * w) * np.arctan2(a - b, 1.0 + a * b)
    return np.where(w > 0, averaged, point)


def reflection_power(f: ArrayLike, cavity: Cavity, bin_width_Hz: ArrayLike = 0.0) -> np.ndarray:
    """|S_r|^2 averaged over the bin; equals 1 - |S_t|^2 for the lossless port of Eq 2."""
    return 1.0 - transmission_power(f, cavity, bin_width_Hz)


def effective_temperature(temperature_K: ArrayLike, f: ArrayLike) -> np.ndarray:
    """Eq 3: T~ = (h f / k_B) (1 / (exp(h f / k_B T) - 1) + 1/2).

    Evaluated as (h f / 2 k_B) coth(h f / 2 k_B T), the same function, which neither overflows
    at T -> 0 (where T~ -> h f / 2 k_B, the half quantum) nor loses precision at high T (T~ -> T).
    """
    t, freq = np.broadcast_arrays(np.asarray(temperature_K, float), np.asarray(f, float))
    if np.any(t < 0) or not np.all(np.isfinite(t)):
        raise ValueError(f"temperature_K must be finite and >= 0, got {temperature_K!r}")
    if np.any(freq <= 0) or not np.all(np.isfinite(freq)):
        raise ValueError("frequency must be finite and > 0 Hz")
    half_quantum = H * freq / (2.0 * K_B)
    y = np.divide(half_quantum, t, out=np.full(t.shape, np.inf), where=t > 0)
    return half_quantum / np.tanh(y)


def emitted_power(
    f: ArrayLike,
    cavity: Cavity,
    incoming_K: ArrayLike,
    cavity_K: ArrayLike,
    bandwidth_Hz: ArrayLike,
) -> np.ndarray:
    """Power (W) the cavity sends towards the receiver in the bin of width B centred on f.

    P_c = (|S_r|^2 T_in + |S_t|^2 T~_c) k_B B, with `incoming_K` the effective noise temperature
    arriving at the antenna (Eq 1: T~_att; Eq 8: T_in) and `cavity_K` the cavity's physical
    temperature. The cavity response is averaged over the bin, so this is the bin's power for
    any B (for B << kappa it is Eq 1 at f times B).
    """
    st2 = transmission_power(f, cavity, bandwidth_Hz)
    t_cavity = effective_temperature(cavity_K, f)
    return ((1.0 - st2) * np.asarray(incoming_K, float) + st2 * t_cavity) * K_B * np.asarray(
        bandwidth_Hz, float
    )


def lossless_emitted_power(
    f: ArrayLike,
    cavity: Cavity,
    attenuator_K: ArrayLike,
    cavity_K: ArrayLike,
    bandwidth_Hz: ArrayLike,
) -> np.ndarray:
    """Eq 1: P_c = (|S_r|^2 T~_att + |S_t|^2 T~_c) k_B B for lossless cables and circulator."""
    incoming = effective_temperature(attenuator_K, f)
    return emitted_power(f, cavity, incoming, cavity_K, bandwidth_Hz)


def received_power(
    emitted_W: ArrayLike, bandwidth_Hz: ArrayLike, gain: float, added_noise_K: float
) -> np.ndarray:
    """Eq 4: P_r = G (P_c + k_B T_a B); also Eq 9 with G', T_a' in place of G, T_a."""
    emitted = np.asarray(emitted_W, float)
    return gain * (emitted + K_B * added_noise_K * np.asarray(bandwidth_Hz, float))


def line_reflection(
    f: ArrayLike,
    cavity: Cavity,
    baseline: complex,
    delay_s: float,
    reference_Hz: float = 0.0,
) -> np.ndarray:
    """S11 as a receiver sees it: baseline x exp(-2 pi i (f - f_ref) tau) x S_r(f).

    `baseline` is the line's complex transmission (input attenuation, amplification, phase) at
    `reference_Hz`; `delay_s` is the electrical delay of the cables.
    """
    f = np.asarray(f, dtype=float)
    phase = np.exp(-2j * np.pi * (f - reference_Hz) * delay_s)
    return baseline * phase * reflection(f, cavity)


@dataclass(frozen=True)
class ReflectionFit:
    """Result of `fit_reflection`: cavity, line parameters and one-sigma errors."""

    cavity: Cavity
    baseline: complex
    reference_Hz: float
    delay_s: float
    kappa0_err_Hz: float
    kappae_err_Hz: float
    fc_err_Hz: float
    residual_rms: float

    def model(self, f: ArrayLike) -> np.ndarray:
        """Fitted S11 at `f`."""
        return line_reflection(f, self.cavity, self.baseline, self.delay_s, self.reference_Hz)


def _wing_slope(f: np.ndarray, phase: np.ndarray) -> float:
    return float(np.polyfit(f, phase, 1)[0])


def _initial_guess(f: np.ndarray, s11: np.ndarray, f_ref: float) -> np.ndarray:
    """Delay from the phase slope of both wings, baseline from the wings, then the cavity from
    1 - S_r = 2 ke / (K + 2iD): |1 - S_r|^2 peaks at f_c with full width K = k0 + ke and height
    (2 ke / K)^2 (unambiguous for under- and over-coupled cavities alike)."""
    n = f.size
    wing = max(3, n // 8)
    phase = np.unwrap(np.angle(s11))
    slope = 0.5 * (_wing_slope(f[:wing], phase[:wing]) + _wing_slope(f[-wing:], phase[-wing:]))
    delay = -slope / (2.0 * np.pi)
    z = s11 * np.exp(2j * np.pi * (f - f_ref) * delay)
    baseline = 0.5 * (np.mean(z[:wing]) + np.mean(z[-wing:]))
    dip = np.abs(1.0 - z / baseline) ** 2
    peak = int(np.argmax(dip))
    above = np.flatnonzero(dip >= 0.5 * dip[peak])
    step = (f[-1] - f[0]) / (n - 1)
    linewidth = max(f[above[-1]] - f[above[0]], 2.0 * step)
    kappae = min(np.sqrt(dip[peak]) * linewidth / 2.0, 0.95 * linewidth)
    kappa0 = max(linewidth - kappae, 0.05 * linewidth)
    return np.array(
        [baseline.real, baseline.imag, delay, f[peak] - f_ref, kappa0, kappae], dtype=float
    )


def fit_reflection(f: ArrayLike, s11: ArrayLike) -> ReflectionFit:
    """Least-squares fit of `line_reflection` to a complex S11 sweep (amplitude and phase).

    The sweep should span a few linewidths on each side of the resonance, so that its wings show
    the line's baseline and delay. Errors come from the Jacobian scaled by the residual scatter;
    `residual_rms` is the scatter per quadrature.
    """
    f = np.asarray(f, dtype=float)
    s11 = np.asarray(s11, dtype=complex)
    if f.ndim != 1 or f.shape != s11.shape or f.size < 16:
        raise ValueError("need matching 1-d frequency and S11 arrays of >= 16 points")
    f_ref = 0.5 * (f[0] + f[-1])
    p0 = _initial_guess(f, s11, f_ref)
    # Fit in parameters of order one: baseline in units of its guess' magnitude, delay in units
    # of 1/span, f_c offset and rates in units of the guessed linewidth. (In Hz and s, the
    # delay's Jacobian column is ~1e13 times the rates' and a finite-difference step of f_c
    # would vanish below the rounding of f_c ~ 5 GHz.)
    linewidth = p0[4] + p0[5]
    unit = np.array([abs(complex(p0[0], p0[1]))] * 2 + [1.0 / (f[-1] - f[0])] + [linewidth] * 3)
    scale = np.abs(s11).max()

    def physical(q: np.ndarray) -> tuple[Cavity, complex, float]:
        p = q * unit
        return Cavity(p[4], p[5], f_ref + p[3]), complex(p[0], p[1]), p[2]

    def residuals(q: np.ndarray) -> np.ndarray:
        cavity, baseline, delay = physical(q)
        r = (line_reflection(f, cavity, baseline, delay, f_ref) - s11) / scale
        return np.concatenate([r.real, r.imag])

    lower = [-np.inf, -np.inf, -np.inf, (f[0] - f_ref) / linewidth, 1e-9, 1e-9]
    upper = [np.inf, np.inf, np.inf, (f[-1] - f_ref) / linewidth, np.inf, np.inf]
    result = optimize.least_squares(
        residuals, p0 / unit, bounds=(lower, upper), method="trf", xtol=1e-12, ftol=1e-12
    )
    dof = max(2 * f.size - p0.size, 1)
    variance = 2.0 * result.cost / dof
    cov = np.linalg.pinv(result.jac.T @ result.jac) * variance
    err = np.sqrt(np.clip(np.diag(cov), 0.0, None)) * unit
    cavity, baseline, delay = physical(result.x)
    return ReflectionFit(
        cavity=cavity,
        baseline=baseline,
        reference_Hz=float(f_ref),
        delay_s=float(delay),
        kappa0_err_Hz=float(err[4]),
        kappae_err_Hz=float(err[5]),
        fc_err_Hz=float(err[3]),
        residual_rms=float(np.sqrt(variance) * scale),
    )
