"""Flux-ramp demodulation of one uMUX tone per ramp period, from tabulated sums (numba).

`umux_demod.demodulate` forms the firmware's sums X = a - ib = sum_j w_j y_j (w = wa - i wb)
sample by sample: y_j = arg(r (z_j + leak_j - c) + noise_j), z_j the product of the notches
the tone sees at their fluxes, which are linear within the period. That costs ~30 ns per
channel sample, ~1 us per period; a 32-channel board at 500 kHz has 60 ns per period.

Here X is split into parts that each depend on few variables, tabulated once per channel
(u: the read resonator's flux at the period's mean kept sample, Delta: its change within the
period, Delta_k and u_k the same for another resonator k):

- the read resonator (the others at their flux-averaged transmission), exactly: a table
  over its flux at the period's start and Delta (|Delta| <= `D_MAX`), interpolated
  bilinearly (a rotating phasor interpolated linearly keeps its phase to third order in the
  grid step);
- each other resonator k: the change of X by its modulation L_k / <L_k> (to all orders in
  it), exp(2 pi i u) C_k(u, u_k - u), plus its first-order changes with Delta and Delta_k;
- the other tones leaking through the channel filter: the change of X they make (to all
  orders) and its first-order change with Delta, per phase of the DAC table at the period's
  start (the leak repeats with it), over u;
- the HEMT noise, linearised (y_j moves by Im(n_j / zeta_j)): a Gaussian (a, b) per period
  whose covariance sigma^2 sum_j (wa_j, wb_j)^2 / |zeta_j|^2 is tabulated over u.

Against the sample-by-sample sums (tests/test_umux.py) that leaves ~1e-6 Phi0 rms, at most
~1.5e-5 Phi0 (the readout noise is ~2e-4 Phi0 per sample), and the same noise and DAC-table
lines. Left out are products of two different perturbations (neighbour x neighbour,
neighbour x leak) and the noise's (sigma / |zeta|)^2: `period_tables` returns None where
those bounds exceed `PAIR_LIMIT` or `NOISE_LIMIT` (a tone far from every resonator,
colliding resonators, a weak tone) and the channel is demodulated sample by sample. A
period in which the read flux moves by more than `D_MAX` quanta or another by more than
`D_MAX_OTHER` (a pulse's rise, a slip) is computed sample by sample too, so slips above the
slew limit and the first samples of fast pulses are the firmware's own.
"""

from __future__ import annotations

import cmath
import math
from dataclasses import dataclass

import numba
import numpy as np

from cryodaq.sim_instruments import ziggurat
from cryodaq.sim_instruments.umux_demod import lut_at, period_sums, phase_angle

#: Largest change of the read resonator's flux within a ramp period (quanta) the tables
#: cover, and of another resonator's (whose part is ~1 % of the read one's).
D_MAX = 0.1
D_MAX_OTHER = 0.25
#: Grid of the read resonator's table: start flux points per quantum, Delta points.
MAIN_POINTS = 256
DELTA_POINTS = 33
#: Grid of a neighbour's table: read resonator's flux (nearest row), flux difference.
CROSS_START = 32
CROSS_POINTS = 128
#: Step (quanta per period) of the forward differences that give the slow parts' change
#: with each flux's movement within the period.
SLOPE_STEP = 0.01
#: Fluxes per quantum on which the leak's change of X is computed (its harmonics fall
#: below 1e-7 rad by the 16th) before Fourier interpolation onto the slow table.
LEAK_GRID = 64
#: Fluxes u per quantum of the slow table: exp(2 pi i u), the noise covariance's Cholesky
#: factors (l11, l21, l22) and the leak's change of X, one row per leak phase.
SLOW_POINTS = 256
#: Largest slow table (leak phases x SLOW_POINTS): with more phases (a finite
#: channel_isolation_dB with a long DAC table) the channel is demodulated sample by sample.
SLOW_ROWS = 1 << 16
#: Bound on the neglected products of two perturbations (rad per channel sample).
PAIR_LIMIT = 2e-3
#: Bound on sigma / |z - c| for the linearised noise (its variance is off by ~its square).
NOISE_LIMIT = 0.05


@dataclass(frozen=True)
class PeriodTables:
    """A channel's tables (see the module), as real arrays with the complex parts last:
    `main` (DELTA_POINTS x MAIN_POINTS + 1 x 2), `cross` (other resonators x CROSS_START + 1
    x CROSS_POINTS + 1 x 6: the change, its slopes with the read and the other flux's
    movement), `slow` (leak phases x SLOW_POINTS + 1 x 9: exp(2 pi i u), l11, l21, l22, the
    leak's change and its slope), `leak_stride` (channel samples between the leak phases),
    `centre_of_mass` (mean kept sample / ratio)."""

    main: np.ndarray
    cross: np.ndarray
    slow: np.ndarray
    leak_stride: int
    centre_of_mass: float


@numba.njit(inline="always")
def _arg(z, centre, rot):  # pragma: no cover - numba
    """The demodulator's phase of a channel sample z."""
    zz = (z - centre) * rot
    return phase_angle(zz.imag, zz.real)


@numba.njit(inline="always")
def _turn(dy):  # pragma: no cover - numba
    return dy - 2.0 * math.pi * math.floor((dy + math.pi) / (2.0 * math.pi))


@numba.njit(cache=True, nogil=True)
def _main_table(lut, mean, centre, rot, ratio, n_phi0, wa, wb, drop, d_max,
                out):  # pragma: no cover - numba
    n_d, n_u = out.shape[0], out.shape[1] - 1
    for r in range(n_d):
        step = (-d_max + 2.0 * d_max * r / (n_d - 1) + n_phi0) / ratio
        for i in range(n_u + 1):
            a = 0.0
            b = 0.0
            for j in range(drop, ratio):
                y = _arg(lut_at(lut, i / n_u + j * step) * mean, centre, rot)
                a += y * wa[j]
                b += y * wb[j]
            out[r, i, 0] = a
            out[r, i, 1] = -b


@numba.njit(cache=True, nogil=True)
def _cross_sums(lut, mean, other, other_mean, centre, rot, ratio, n_phi0, wa, wb, drop, com,
                ue, d, d0, dk):  # pragma: no cover - numba
    """Change of X = a - ib by resonator `other` (its modulation L / <L>), the read one at
    effective flux ue moving by d0 within the period, the other at ue + d moving by dk."""
    s0 = (n_phi0 + d0) / ratio
    sk = (n_phi0 + dk) / ratio
    u0 = ue - d0 * com
    uk = ue + d - dk * com
    a = 0.0
    b = 0.0
    for j in range(drop, ratio):
        z = lut_at(lut, u0 + j * s0) * mean
        zk = z * lut_at(other, uk + j * sk) / other_mean
        dy = _turn(_arg(zk, centre, rot) - _arg(z, centre, rot))
        a += dy * wa[j]
        b += dy * wb[j]
    return complex(a, -b)


@numba.njit(cache=True, nogil=True)
def _cross_table(lut, mean, other, other_mean, centre, rot, ratio, n_phi0, wa, wb, drop, com,
                 out):  # pragma: no cover - numba
    """out[i, r] = the change at ue = i / n_u, d = r / n_c and its first-order change with
    each flux's movement (forward differences), all times exp(-2 pi i ue)."""
    n_u, n_c = out.shape[0] - 1, out.shape[1] - 1
    h = SLOPE_STEP
    for i in range(n_u + 1):
        ue = i / n_u
        turn = cmath.exp(-2j * math.pi * ue)
        for r in range(n_c + 1):
            args = (lut, mean, other, other_mean, centre, rot, ratio, n_phi0, wa, wb, drop,
                    com, ue, r / n_c)
            x = _cross_sums(*args, 0.0, 0.0)
            x0 = (_cross_sums(*args, h, 0.0) - x) / h
            xk = (_cross_sums(*args, 0.0, h) - x) / h
            for c, v in enumerate((x * turn, x0 * turn, xk * turn)):
                out[i, r, 2 * c] = v.real
                out[i, r, 2 * c + 1] = v.imag


@numba.njit(cache=True, nogil=True)
def _leak_sums(lut, mean, centre, rot, leak, start, ratio, n_phi0, wa, wb, drop, com, ue,
               d0):  # pragma: no cover - numba
    """Change of X by the leak from channel sample `start` on, the read resonator at
    effective flux ue moving by d0 within the period."""
    s0 = (n_phi0 + d0) / ratio
    u0 = ue - d0 * com
    a = 0.0
    b = 0.0
    for j in range(drop, ratio):
        z = lut_at(lut, u0 + j * s0) * mean
        dy = _turn(_arg(z + leak[(start + j) % leak.shape[0]], centre, rot)
                   - _arg(z, centre, rot))
        a += dy * wa[j]
        b += dy * wb[j]
    return complex(a, -b)


@numba.njit(cache=True, nogil=True)
def _leak_grid(lut, mean, centre, rot, leak, stride, ratio, n_phi0, wa, wb, drop, com,
               out, slope):  # pragma: no cover - numba
    n_f = out.shape[1]
    h = SLOPE_STEP
    for p in range(out.shape[0]):
        for i in range(n_f):
            args = (lut, mean, centre, rot, leak, p * stride, ratio, n_phi0, wa, wb, drop,
                    com, i / n_f)
            out[p, i] = _leak_sums(*args, 0.0)
            slope[p, i] = (_leak_sums(*args, h) - out[p, i]) / h


@numba.njit(cache=True, nogil=True)
def _noise_table(lut, mean, centre, ratio, n_phi0, wa, wb, drop, sigma,
                 out):  # pragma: no cover - numba
    """Cholesky factors of the (a, b) noise covariance into out[:, 2:5]."""
    n_u = out.shape[0] - 1
    step = n_phi0 / ratio
    for i in range(n_u + 1):
        saa = 0.0
        sab = 0.0
        sbb = 0.0
        for j in range(drop, ratio):
            rho2 = abs(lut_at(lut, i / n_u + j * step) * mean - centre) ** 2
            saa += wa[j] * wa[j] / rho2
            sab += wa[j] * wb[j] / rho2
            sbb += wb[j] * wb[j] / rho2
        l11 = sigma * math.sqrt(saa)
        l21 = sigma * sab / math.sqrt(saa)
        out[i, 2] = l11
        out[i, 3] = l21
        out[i, 4] = math.sqrt(max(sigma * sigma * sbb - l21 * l21, 0.0))


def _leak_rows(luts: np.ndarray, mean: complex, centre: complex, rot: complex,
               leak: np.ndarray, ratio: int, n_phi0: int, wa: np.ndarray, wb: np.ndarray,
               drop: int, com: float, stride: int) -> tuple[np.ndarray, np.ndarray]:
    """The leak's change of X and its first-order change with the read flux's movement
    (leak phases at a period's start x SLOW_POINTS + 1 effective fluxes): exact sums on
    LEAK_GRID fluxes, Fourier-interpolated."""
    grids = [np.empty((leak.size // stride, LEAK_GRID), dtype=complex) for _ in range(2)]
    _leak_grid(luts[0], mean, centre, rot, leak, stride, ratio, n_phi0, wa, wb, drop, com,
               *grids)
    rows = []
    for grid in grids:
        coef = np.fft.fft(grid, axis=1)
        half = LEAK_GRID // 2
        fine = np.zeros((grid.shape[0], SLOW_POINTS), dtype=complex)
        fine[:, :half] = coef[:, :half]
        fine[:, -half:] = coef[:, -half:]
        table = np.fft.ifft(fine, axis=1) * (SLOW_POINTS / LEAK_GRID)
        rows.append(np.concatenate([table, table[:, :1]], axis=1))
    return rows[0], rows[1]


def period_tables(luts: np.ndarray, centre: complex, rot: complex, sigma: float,
                  leak: np.ndarray, ratio: int, n_phi0: int, drop: int,
                  weights: tuple[np.ndarray, np.ndarray]) -> PeriodTables | None:
    """The tables of a channel (the arguments as `umux_demod.demodulate` takes them), or None
    where the per-period split does not hold to `PAIR_LIMIT` / `NOISE_LIMIT` or the leak
    has more phases than `SLOW_ROWS` allows."""
    if luts.shape[0] == 0:
        return None
    wa, wb = weights
    means = luts[:, :-1].mean(axis=1)
    mean = complex(np.prod(means[1:]))
    z = luts[0, :-1] * mean
    rho = float(np.min(np.abs(z - centre)))
    if sigma / rho > NOISE_LIMIT:
        return None
    gain = float(np.max(np.abs(z))) / rho  # |d arg / d (relative change of z)|
    sizes = [gain * float(np.max(np.abs(luts[k] / means[k] - 1.0)))
             for k in range(1, luts.shape[0])]
    sizes.append(float(np.max(np.abs(leak))) / rho)
    pairs = (sum(sizes) ** 2 - sum(s * s for s in sizes)) / 2.0
    stride = math.gcd(ratio, leak.size) if np.any(leak) else leak.size
    if pairs > PAIR_LIMIT or leak.size // stride > SLOW_ROWS // SLOW_POINTS:
        return None
    com = (drop + ratio - 1) / (2.0 * ratio)
    main = np.empty((DELTA_POINTS, MAIN_POINTS + 1, 2))
    _main_table(luts[0], mean, centre, rot, ratio, n_phi0, wa, wb, drop, D_MAX, main)
    cross = np.empty((luts.shape[0] - 1, CROSS_START + 1, CROSS_POINTS + 1, 6))
    for k in range(1, luts.shape[0]):
        _cross_table(luts[0], mean, luts[k], means[k], centre, rot, ratio, n_phi0, wa, wb,
                     drop, com, cross[k - 1])
    slow = np.zeros((leak.size // stride, SLOW_POINTS + 1, 9))
    turn = np.exp(2j * np.pi * np.arange(SLOW_POINTS + 1) / SLOW_POINTS)
    slow[:, :, 0], slow[:, :, 1] = turn.real, turn.imag
    _noise_table(luts[0], mean, centre, ratio, n_phi0, wa, wb, drop, sigma, slow[0])
    slow[1:, :, 2:5] = slow[0, :, 2:5]
    if np.any(leak):
        rows, slopes = _leak_rows(luts, mean, centre, rot, leak, ratio, n_phi0, wa, wb, drop,
                                  com, stride)
        slow[:, :, 5], slow[:, :, 6] = rows.real, rows.imag
        slow[:, :, 7], slow[:, :, 8] = slopes.real, slopes.imag
    return PeriodTables(main, cross, slow, stride, com)


@numba.njit(inline="always")
def _cell(x, n):  # pragma: no cover - numba
    """Cell i and position w within it of fraction x (any real, periodic) on n cells."""
    f = (x - math.floor(x)) * n
    i = int(f)
    if i >= n:
        i = n - 1
    return i, f - i


@numba.njit(cache=True, nogil=True, error_model="numpy", fastmath={"contract"})
def demodulate_periods(first_period, main, cross, slow, leak_stride, com, luts, static,
                       signal, ratio, n_phi0, wa, wb, drop, centre, rot, leak, sigma, state,
                       last, out):  # pragma: no cover - numba
    """As `umux_demod.demodulate` (the same arguments after those of `PeriodTables`), one
    ramp period at a time from the tables; a period in which a flux moves by more than
    D_MAX (another resonator's: D_MAX_OTHER) quanta is computed sample by sample. The sums of
    all periods first, then their phases and the unwrapping (loops that vectorise)."""
    s0, s1, s2, s3 = ziggurat.load(state)
    m = luts.shape[0]
    u = np.empty(m)
    du = np.empty(m)
    n_d, n_u = main.shape[0], main.shape[1] - 1
    n_cu, n_c = cross.shape[1] - 1, cross.shape[2] - 1
    n_s = slow.shape[1] - 1
    per_d = (n_d - 1) / (2.0 * D_MAX)
    n_leak = leak.shape[0]
    n = out.shape[0]
    sums_b = np.empty(n)
    for q in range(n):  # from the tables (a period outside them is redone below)
        delta = min(max(signal[0, q + 1] - signal[0, q], -D_MAX), D_MAX)
        flux = static[0] + signal[0, q]
        i, w = _cell(flux, n_u)
        g = (delta + D_MAX) * per_d
        r = min(int(g), n_d - 2)
        v = g - r
        lo = main[r, i]
        hi = main[r + 1, i]
        lo1 = main[r, i + 1]
        hi1 = main[r + 1, i + 1]
        xr = (1.0 - v) * (lo[0] + (lo1[0] - lo[0]) * w) + v * (hi[0] + (hi1[0] - hi[0]) * w)
        xi = (1.0 - v) * (lo[1] + (lo1[1] - lo[1]) * w) + v * (hi[1] + (hi1[1] - hi[1]) * w)
        ue = flux + delta * com
        i, w = _cell(ue, n_s)
        row = slow[((first_period + q) * ratio % n_leak) // leak_stride]
        e0 = row[i]
        e1 = row[i + 1]
        er = e0[0] + (e1[0] - e0[0]) * w
        ei = e0[1] + (e1[1] - e0[1]) * w
        l11 = e0[2] + (e1[2] - e0[2]) * w
        l21 = e0[3] + (e1[3] - e0[3]) * w
        l22 = e0[4] + (e1[4] - e0[4]) * w
        xr += e0[5] + (e1[5] - e0[5]) * w + delta * (e0[7] + (e1[7] - e0[7]) * w)
        xi += e0[6] + (e1[6] - e0[6]) * w + delta * (e0[8] + (e1[8] - e0[8]) * w)
        near = int((ue - math.floor(ue)) * n_cu + 0.5)
        for k in range(1, m):
            dk = signal[k, q + 1] - signal[k, q]
            j, w = _cell(static[k] + signal[k, q] + dk * com - ue, n_c)
            c0 = cross[k - 1, near, j]
            c1 = cross[k - 1, near, j + 1]
            cr = (c0[0] + (c1[0] - c0[0]) * w + delta * (c0[2] + (c1[2] - c0[2]) * w)
                  + dk * (c0[4] + (c1[4] - c0[4]) * w))
            ci = (c0[1] + (c1[1] - c0[1]) * w + delta * (c0[3] + (c1[3] - c0[3]) * w)
                  + dk * (c0[5] + (c1[5] - c0[5]) * w))
            xr += er * cr - ei * ci
            xi += er * ci + ei * cr
        g1, g2, s0, s1, s2, s3 = ziggurat.normal_pair(s0, s1, s2, s3)
        out[q] = xr + l11 * g1
        sums_b[q] = -xi + l21 * g1 + l22 * g2
    for q in range(n):  # sample by sample where a flux moves too fast for the tables
        tabulated = abs(signal[0, q + 1] - signal[0, q]) <= D_MAX
        for k in range(1, m):
            tabulated &= abs(signal[k, q + 1] - signal[k, q]) <= D_MAX_OTHER
        if not tabulated:
            out[q], sums_b[q], s0, s1, s2, s3 = period_sums(
                (first_period + q) * ratio, luts, static, signal, q, ratio, n_phi0, wa, wb,
                drop, centre, rot, leak, sigma, u, du, s0, s1, s2, s3)
    ziggurat.store(state, s0, s1, s2, s3)
    for q in range(n):
        out[q] = phase_angle(-sums_b[q], out[q])
    turn = 2.0 * math.pi
    step = out[0] - last if last == last else 0.0  # NaN: the stream's first output
    sums_b[0] = step - turn * math.floor(step / turn + 0.5)
    for q in range(1, n):
        step = out[q] - out[q - 1]
        sums_b[q] = step - turn * math.floor(step / turn + 0.5)
    prev = last if last == last else out[0]
    for q in range(n):
        prev += sums_b[q]
        out[q] = prev
    return prev


@numba.njit(cache=True, nogil=True)
def quanta_changes(phase, flux, reference, quanta, steps, counts):  # pragma: no cover - numba
    """Whole quanta between the demodulated phase (rad) of each period and the true flux
    (`flux` at the periods' boundaries: their mean), minus `reference` (Phi0): the periods
    at which that count changes from `quanta` go into `steps`, the new counts into `counts`;
    returns how many changed."""
    changed = 0
    for q in range(phase.shape[0]):
        n = int(np.rint(phase[q] / (2.0 * math.pi) - 0.5 * (flux[q] + flux[q + 1]) - reference))
        if n != quanta:
            steps[changed] = q
            counts[changed] = n
            changed += 1
            quanta = n
    return changed
