"""The flux a TES puts through its rf-SQUID, sample by sample at a fixed rate: its noise and
its pulses, generated from the electrothermal model (`tes_device`) without any per-sample work
in Python.

Noise: the exact discrete-time form of the linear system at the sampling step
(`tes_electrothermal.sample_system`): x_{k+1} = phi x_k + w_k with w_k Gaussian of covariance
Q (every term: TES and load Johnson, thermal fluctuations across each link); flux y = -M_in dI.
The flux alone is what leaves the detector, so it is drawn from the same process's innovations
form (the steady-state Kalman predictor, from the discrete Riccati equation): y_k = c x_k +
s e_k, x_{k+1} = phi x_k + K s e_k with one standard normal e_k per sample; its spectrum is
the sampled process's exactly, plus a white floor of `FLOOR` of its variance (the Riccati
equation's regulariser). The state is kept in units of its stationary standard deviations so
that the numbers stay O(1), and in the modes' coordinates when they are real (then phi is
diagonal: 2 multiplications per mode and sample).

Pulses: the first `head_s` of each pulse come from the large-signal table (per eV, bilinear
in energy and time, times the energy); at the first sample after `head_s` the pulse's state,
propagated exactly by the linear system from the table's end, is added to the noise state,
which then carries the tail at no cost per event (linear superposition).
"""

from __future__ import annotations

import math

import numba
import numpy as np
from scipy.linalg import solve_continuous_lyapunov, solve_discrete_are

from cryodaq.analysis.tes_electrothermal import (
    TesSmallSignal,
    noise_inputs,
    sample_system,
    system_matrix,
)
from cryodaq.sim_instruments import ziggurat
from cryodaq.sim_instruments.tes_device import PulseTable

#: White floor of the innovations form, relative to the flux noise's variance.
FLOOR = 1e-9
NO_INJECTION = np.zeros(0, dtype=np.int64)


@numba.njit(cache=True, nogil=True)
def _noise_and_tails(out, x, phi, lam, gain, c, sigma, inj_at, inj_x, state):  # pragma: no cover
    """out[k] = c . x_k + sigma e_k, x_{k+1} = phi x_k + gain e_k (e_k standard normal: the
    innovations form); inj_x[j] added to x at sample inj_at[j] (ascending). `lam` not None: phi
    is diagonal, `lam` its diagonal (modal coordinates: 2 multiplications a mode; numba compiles
    each case on its own)."""
    s0, s1, s2, s3 = ziggurat.load(state)
    m = x.shape[0]
    nxt = np.empty(m)
    j = 0
    for k in range(out.shape[0]):
        while j < inj_at.shape[0] and inj_at[j] == k:
            for a in range(m):
                x[a] += inj_x[j, a]
            j += 1
        e, s0, s1, s2, s3 = ziggurat.normal(s0, s1, s2, s3)
        y = sigma * e
        if lam is not None:
            for a in range(m):
                y += c[a] * x[a]
                x[a] = lam[a] * x[a] + gain[a] * e
        else:
            for a in range(m):
                y += c[a] * x[a]
                acc = gain[a] * e
                for b in range(m):
                    acc += phi[a, b] * x[b]
                nxt[a] = acc
            x[:] = nxt
        out[k] = y
    ziggurat.store(state, s0, s1, s2, s3)


@numba.njit(cache=True, nogil=True)
def _heads(out, t0, rate, t_a, epos, scale, table, dt_tab):  # pragma: no cover - numba
    """out[k] += scale[e] * table(energy position epos[e], t0 + k / rate - t_a[e]) for the
    samples within the table's span after each arrival."""
    n = out.shape[0]
    ne, nt = table.shape
    for e in range(t_a.shape[0]):
        k = max(0, int(np.ceil((t_a[e] - t0) * rate - 1e-9)))
        ie = min(int(epos[e]), ne - 2)
        fe = epos[e] - ie
        while k < n:
            u = (t0 + k / rate - t_a[e]) / dt_tab
            if u >= nt - 1:
                break
            iu = int(u)
            fu = u - iu
            lo = (1.0 - fu) * table[ie, iu] + fu * table[ie, iu + 1]
            hi = (1.0 - fu) * table[ie + 1, iu] + fu * table[ie + 1, iu + 1]
            out[k] += scale[e] * ((1.0 - fe) * lo + fe * hi)
            k += 1


class TesSignal:
    """Noise and pulses of one TES at one sampling rate (see the module); `block` continues
    seamlessly from the previous call."""

    def __init__(self, ss: TesSmallSignal, table: PulseTable, phi0_per_A: float, rate_hz: float,
                 rng: np.random.Generator) -> None:
        self.rate_hz = rate_hz
        a = system_matrix(ss)
        qc = sum(0.5 * s * np.outer(col, col) for src in noise_inputs(ss).values()
                 for col, s in src)
        cov = solve_continuous_lyapunov(a, -qc)
        self.unit = np.sqrt(np.diag(cov))  # physical units per state unit
        d, di = np.diag(1.0 / self.unit), np.diag(self.unit)
        sampled = sample_system(ss, 1.0 / rate_hz)
        q = d @ sum(sampled.q.values()) @ d
        q = 0.5 * (q + q.T)
        self.phi = np.ascontiguousarray(d @ sampled.phi @ di)
        self.c = -phi0_per_A * self.unit[0] * np.eye(ss.size)[0]
        floor = FLOOR * phi0_per_A**2 * float(cov[0, 0])
        p = solve_discrete_are(self.phi.T, self.c[:, None], q, np.array([[floor]]))
        var = float(self.c @ p @ self.c) + floor
        self.sigma = math.sqrt(var)
        self.gain = np.ascontiguousarray(self.phi @ p @ self.c / self.sigma)
        lam_d, vec_d = np.linalg.eig(self.phi)
        # Complex modes (an underdamped TES, e.g. design (a) at 200 nH) keep the full update.
        self._diagonal = bool(np.all(np.abs(lam_d.imag) < 1e-12)
                              and np.linalg.cond(vec_d) < 1e8)
        if self._diagonal:
            # Real modes: in modal coordinates the state update is diagonal (phi -> its
            # eigenvalues), the same process at a quarter of the multiplications.
            vec_d = vec_d.real
            inv = np.linalg.inv(vec_d)
            self._to_modal, self._from_modal = inv, vec_d
            self.phi = np.ascontiguousarray(np.diag(lam_d.real))
            self.gain = np.ascontiguousarray(inv @ self.gain)
            self.c = np.ascontiguousarray(self.c @ vec_d)
        else:
            self._to_modal = self._from_modal = np.eye(ss.size)
        self.lam = np.ascontiguousarray(np.diag(self.phi)) if self._diagonal else None
        lam, vec = np.linalg.eig(a)
        self._lam, self._vec, self._vec_inv = lam, vec, np.linalg.inv(vec)
        self.table = table
        self.flux_table = -phi0_per_A * table.current
        self.x = np.zeros(ss.size)
        self.no_states = np.zeros((0, ss.size))
        self.state = ziggurat.new_state(rng)

    def energy_position(self, energy_eV: np.ndarray) -> np.ndarray:
        """Fractional index of each energy on the table's grid."""
        e = self.table.energies_eV
        return np.clip(np.asarray(energy_eV, dtype=float) / (e[1] - e[0]), 0.0, e.size - 1.0)

    def tail_states(self, delay_s: np.ndarray, epos: np.ndarray, scale: np.ndarray) -> np.ndarray:
        """States (in state units) of pulses `delay_s` after their table's end."""
        st = self.table.state
        ie = np.minimum(epos.astype(int), st.shape[0] - 2)
        fe = (epos - ie)[:, None]
        x_end = (1.0 - fe) * st[ie] + fe * st[ie + 1]
        modal = (self._vec_inv @ x_end.T.astype(complex)) * np.exp(np.outer(self._lam, delay_s))
        scaled = (self._vec @ modal).real * (scale[None, :] / self.unit[:, None])
        return (self._to_modal @ scaled).T

    def physical_state(self) -> np.ndarray:
        """The generator's state as (dI, dT_0, ...) in SI units."""
        return self.unit * (self._from_modal @ self.x)

    def set_physical_state(self, x: np.ndarray) -> None:
        """Continue from the physical state `x` (SI units)."""
        self.x = self._to_modal @ (np.asarray(x, dtype=float) / self.unit)

    def _run(self, out: np.ndarray, at: np.ndarray, inj: np.ndarray) -> None:
        _noise_and_tails(out, self.x, self.phi, self.lam, self.gain, self.c, self.sigma,
                         at, inj, self.state)

    def block(self, t0: float, n: int, t_a: np.ndarray, epos: np.ndarray, scale: np.ndarray
              ) -> tuple[np.ndarray, np.ndarray]:
        """Flux (Phi0, baseline excluded) at t0 + k / rate, k < n, of the noise and the pulses
        arriving at `t_a` (energy positions `epos`, amplitudes `scale`: the energy in eV times
        any gain); returns it and
        the mask of the events whose tail is now in the state (done with)."""
        rate = self.rate_hz
        out = np.empty(n)
        if t_a.size == 0:
            self._run(out, NO_INJECTION, self.no_states)
            return out, np.zeros(0, dtype=bool)
        head = self.table.head_s
        k_tail = np.ceil((t_a + head - t0) * rate - 1e-9).astype(np.int64)
        done = k_tail < n
        if done.any():
            at = np.maximum(k_tail[done], 0)
            order = np.argsort(at, kind="stable")
            delay = t0 + at / rate - t_a[done] - head
            inj = np.ascontiguousarray(self.tail_states(delay, epos[done], scale[done])[order])
            at = at[order]
        else:
            at, inj = NO_INJECTION, self.no_states
        self._run(out, at, inj)
        _heads(out, t0, rate, t_a, epos, scale, self.flux_table, self.table.dt_s)
        return out, done
