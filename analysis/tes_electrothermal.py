"""Small-signal electrothermal model of a voltage-biased TES with a thermal network (Irwin and
Hilton 2005; REFERENCE.md section 8): impedance, current responsivity, pulse per unit energy,
every noise term's current PSD, the NEP and the optimal-filter resolution limit; and the exact
discrete-time form of the same linear system, as a sampler at a fixed rate sees it.

State x = (dI, dT_0, dT_1, ...): the TES current and the temperatures of the thermal bodies,
body 0 being the TES itself (the only one the current heats); d/dt x = A x + B u.
- Electrical: L dI/dt = -(R_L + R0 (1 + beta)) dI - (alpha R0 I0 / T0) dT_0 + v.
- Body 0: C_0 dT_0/dt = I0 R0 (2 + beta) dI + (alpha P_J / T0 - G_b0) dT_0 + links + p_0.
- Body k: C_k dT_k/dt = -G_bk dT_k + sum_j G_kj (dT_j - dT_k) + p_k.
Links between bodies conduct linearly (G_kj); each body's link to the bath follows
P = K (T^n - T_b^n) with G_bk = n K T0^(n-1) at the operating point.

Noise inputs (one-sided densities): TES Johnson S_V = 4 k_B T0 R0 (1 + 2 beta), driving the
electrical equation with v and body 0 with -I0 v; load Johnson S_V = 4 k_B T_L R_L; thermal
fluctuations S_P = 4 k_B T^2 G across each link (+p into one end, -p into the other), the bath
links with the factor F(T0, T_b) (ballistic or diffusive). The readout (SQUID/HEMT) is white in
flux; it is not the TES's and enters where the flux is read.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.linalg import expm, solve_discrete_lyapunov

BOLTZMANN = 1.380649e-23
E_CHARGE = 1.602176634e-19
FWHM_PER_SIGMA = 2.0 * np.sqrt(2.0 * np.log(2.0))
#: Names of the TES noise terms, in the order `noise_inputs` gives them.
TERMS = ("thermal", "tes_johnson", "load_johnson")


@dataclass(frozen=True)
class TesSmallSignal:
    """A TES at its operating point, with its circuit and thermal network (SI units)."""

    t0_K: float
    r0_ohm: float
    i0_A: float
    alpha: float  # alpha_I = (T0 / R0) dR/dT
    beta: float  # beta_I = (I0 / R0) dR/dI
    inductance_H: float
    load_ohm: float  # Thevenin resistance of the bias circuit (shunt + parasitic)
    load_K: float
    heat_capacities: tuple[float, ...]  # J/K, body 0 = the TES
    links: tuple[tuple[int, int, float], ...]  # (body i, body j, G W/K) inside the network
    bath_g: tuple[float, ...]  # W/K, each body's conductance to the bath at the operating point
    n: float  # exponent of the bath links
    bath_K: float
    deposit: int = 0  # body in which deposited energy thermalises
    ballistic: bool = True

    @property
    def p_joule_W(self) -> float:
        return self.i0_A**2 * self.r0_ohm

    @property
    def loop_gain(self) -> float:
        """L_I = P_J alpha / (G T0), G the TES body's conductance to the bath."""
        return self.p_joule_W * self.alpha / (self.bath_g[0] * self.t0_K)

    @property
    def size(self) -> int:
        return 1 + len(self.heat_capacities)


def flink_factor(t0_K: float, bath_K: float, n: float, ballistic: bool) -> float:
    """F(T0, T_b) of the thermal fluctuation noise across a link to the bath."""
    r = bath_K / t0_K
    if ballistic:
        return 0.5 * (r ** (n + 1.0) + 1.0)
    if r >= 1.0 - 1e-9:
        return 1.0
    return n / (2.0 * n + 1.0) * (1.0 - r ** (2.0 * n + 1.0)) / (1.0 - r**n)


def system_matrix(p: TesSmallSignal) -> np.ndarray:
    """A of d/dt x = A x + B u (see the module)."""
    m = p.size
    a = np.zeros((m, m))
    c = np.asarray(p.heat_capacities, dtype=float)
    a[0, 0] = -(p.load_ohm + p.r0_ohm * (1.0 + p.beta)) / p.inductance_H
    a[0, 1] = -p.alpha * p.r0_ohm * p.i0_A / (p.t0_K * p.inductance_H)
    a[1, 0] = p.i0_A * p.r0_ohm * (2.0 + p.beta) / c[0]
    a[1, 1] = p.alpha * p.p_joule_W / (p.t0_K * c[0])
    for k, g in enumerate(p.bath_g):
        a[k + 1, k + 1] -= g / c[k]
    for i, j, g in p.links:
        a[i + 1, i + 1] -= g / c[i]
        a[i + 1, j + 1] += g / c[i]
        a[j + 1, j + 1] -= g / c[j]
        a[j + 1, i + 1] += g / c[j]
    return a


def noise_inputs(p: TesSmallSignal) -> dict[str, list[tuple[np.ndarray, float]]]:
    """Per term, its independent sources: (column of B, one-sided density of u)."""
    m = p.size
    c = np.asarray(p.heat_capacities, dtype=float)
    tes = np.zeros(m)
    tes[0], tes[1] = 1.0 / p.inductance_H, -p.i0_A / c[0]
    load = np.zeros(m)
    load[0] = 1.0 / p.inductance_H
    thermal = []
    f = flink_factor(p.t0_K, p.bath_K, p.n, p.ballistic)
    for k, g in enumerate(p.bath_g):
        if g > 0:
            col = np.zeros(m)
            col[k + 1] = 1.0 / c[k]
            thermal.append((col, 4.0 * BOLTZMANN * p.t0_K**2 * g * f))
    for i, j, g in p.links:
        col = np.zeros(m)
        col[i + 1], col[j + 1] = 1.0 / c[i], -1.0 / c[j]
        thermal.append((col, 4.0 * BOLTZMANN * p.t0_K**2 * g))
    return {
        "thermal": thermal,
        "tes_johnson": [(tes, 4.0 * BOLTZMANN * p.t0_K * p.r0_ohm * (1.0 + 2.0 * p.beta))],
        "load_johnson": [(load, 4.0 * BOLTZMANN * p.load_K * p.load_ohm)],
    }


def time_constants(p: TesSmallSignal) -> np.ndarray:
    """1 / rates of the system's modes (s), ascending: the rise first, then the decays.
    Complex pairs (an underdamped TES) give their real part's time constant twice."""
    lam = np.linalg.eigvals(system_matrix(p))
    if np.any(lam.real >= 0):
        grow = ", ".join(f"{r:.3g}" for r in np.unique(lam.real[lam.real >= 0]))
        raise ValueError(f"unstable operating point: modes growing at {grow} /s (L_I too "
                         f"large for this inductance, or beta/alpha out of range)")
    return np.sort(-1.0 / lam.real)


def _resolvent_column(p: TesSmallSignal, f_hz: np.ndarray, col: np.ndarray) -> np.ndarray:
    """dI(f) per unit input on `col`: e_0 . (i w - A)^-1 col, at each frequency."""
    a = system_matrix(p)
    w = 2.0 * np.pi * np.asarray(f_hz, dtype=float)
    eye = np.eye(p.size)
    mats = 1j * w[:, None, None] * eye[None] - a[None]
    return np.linalg.solve(mats, np.broadcast_to(col, (w.size, p.size))[..., None])[:, 0, 0]


def current_responsivity(p: TesSmallSignal, f_hz: np.ndarray, body: int | None = None
                         ) -> np.ndarray:
    """s_I(f) (A/W): current per power into `body` (default: the deposition body)."""
    body = p.deposit if body is None else body
    col = np.zeros(p.size)
    col[body + 1] = 1.0 / p.heat_capacities[body]
    return _resolvent_column(p, f_hz, col)


def pulse_spectrum(p: TesSmallSignal, f_hz: np.ndarray) -> np.ndarray:
    """Fourier transform (A s per J) of the current pulse of a unit energy deposit: an
    impulse of power into the deposition body, so the responsivity itself."""
    return current_responsivity(p, f_hz)


def impedance(p: TesSmallSignal, f_hz: np.ndarray) -> np.ndarray:
    """Z_TES(f) (Ohm): the voltage across the TES per current, from the electrical row with
    the thermal response folded in (Z = v/dI - R_L - i w L for a drive v)."""
    col = np.zeros(p.size)
    col[0] = 1.0 / p.inductance_H
    w = 2.0 * np.pi * np.asarray(f_hz, dtype=float)
    return 1.0 / _resolvent_column(p, f_hz, col) - p.load_ohm - 1j * w * p.inductance_H


def pulse(p: TesSmallSignal, t_s: np.ndarray) -> np.ndarray:
    """Small-signal current pulse (A per J) at times `t_s` after a deposit (0 before)."""
    a = system_matrix(p)
    lam, vec = np.linalg.eig(a)
    x0 = np.zeros(p.size)
    x0[p.deposit + 1] = 1.0 / p.heat_capacities[p.deposit]
    coef = np.linalg.solve(vec, x0.astype(complex))
    t = np.asarray(t_s, dtype=float)
    out = (vec[0][None, :] * coef[None, :] * np.exp(np.outer(np.maximum(t, 0.0), lam))).sum(1)
    return np.where(t >= 0, out.real, 0.0)


def noise_current_psd(p: TesSmallSignal, f_hz: np.ndarray) -> dict[str, np.ndarray]:
    """One-sided current noise PSD (A^2/Hz) of each TES term at `f_hz`."""
    out = {}
    for name, sources in noise_inputs(p).items():
        out[name] = sum(s * np.abs(_resolvent_column(p, f_hz, col)) ** 2 for col, s in sources)
    return out


def nep(p: TesSmallSignal, f_hz: np.ndarray, readout_A2_per_Hz: float = 0.0) -> np.ndarray:
    """Noise equivalent power (W/sqrt(Hz)) referred to the deposition body."""
    total = sum(noise_current_psd(p, f_hz).values()) + readout_A2_per_Hz
    return np.sqrt(total) / np.abs(current_responsivity(p, f_hz))


def resolution_limit_fwhm_eV(p: TesSmallSignal, readout_A2_per_Hz: float = 0.0,
                             f_max_hz: float | None = None, points: int = 20_000) -> float:
    """Delta E_FWHM = 2.355 (integral 0..f_max of 4 df / NEP^2)^(-1/2) (eV), on a log grid
    (default f_max: 1000 x the fastest mode's rate; finite with readout noise)."""
    taus = time_constants(p)
    hi = f_max_hz or 1000.0 / (2.0 * np.pi * taus[0])
    f = np.geomspace(1e-3 / (2.0 * np.pi * taus[-1]), hi, points)
    integrand = 4.0 / nep(p, f, readout_A2_per_Hz) ** 2
    info = float(np.sum(0.5 * (integrand[1:] + integrand[:-1]) * np.diff(f)))
    return float(FWHM_PER_SIGMA / np.sqrt(info) / E_CHARGE)


@dataclass(frozen=True)
class SampledSystem:
    """The linear system sampled every `dt_s`: x_{k+1} = phi x_k + w_k, cov(w_k) = q[term]
    (the exact discretisation of the continuous white-noise inputs; Van Loan)."""

    dt_s: float
    phi: np.ndarray
    q: dict[str, np.ndarray]


def sample_system(p: TesSmallSignal, dt_s: float) -> SampledSystem:
    """The exact discrete-time form of the model at step `dt_s` (see `SampledSystem`)."""
    a = system_matrix(p)
    m = p.size
    q = {}
    for name, sources in noise_inputs(p).items():
        qc = sum(0.5 * s * np.outer(col, col) for col, s in sources)  # two-sided densities
        big = np.zeros((2 * m, 2 * m))
        big[:m, :m], big[:m, m:], big[m:, m:] = -a, qc, a.T
        e = expm(big * dt_s)
        phi = e[m:, m:].T
        q[name] = phi @ e[:m, m:]
        q[name] = 0.5 * (q[name] + q[name].T)
    return SampledSystem(dt_s, expm(a * dt_s), q)


def sampled_noise_psd(s: SampledSystem, f_hz: np.ndarray, out: np.ndarray) -> dict[str, np.ndarray]:
    """One-sided PSD (per Hz) of out . x_k of each term, the process sampled at 1/dt (its
    aliases included): S(f) = 2 dt [R(0) + 2 Re sum_m>=1 R(m) z^-m], R(m) = out phi^m P out."""
    z = np.exp(2j * np.pi * np.asarray(f_hz, dtype=float) * s.dt_s)
    m = s.phi.shape[0]
    mats = z[:, None, None] * np.eye(m)[None] - s.phi[None]
    res = {}
    for name, q in s.q.items():
        cov = solve_discrete_lyapunov(s.phi, q)
        rhs = np.broadcast_to((s.phi @ cov @ out).astype(complex), (z.size, m))
        tail = out @ np.linalg.solve(mats, rhs[..., None])[..., 0].T
        res[name] = 2.0 * s.dt_s * (out @ cov @ out + 2.0 * np.real(tail))
    return res
