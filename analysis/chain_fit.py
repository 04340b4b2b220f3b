"""Calibration of a haloscope amplification chain from cavity-emitted radiation (Eqs 8-9).

`fit_chain` fits P_r = G' (P_c + k_B T_a' B) to several spectra taken at different attenuator,
cavity and mixing-plate temperatures, with P_c from Eq 8 (the input line's losses A1, A_cir,
A2 free), weights from the radiometer equation. `gain_ripple` turns the data/fit ratio into
the gain's frequency ripple r(f); `fit_chain_corrected` fits the ripple jointly with the chain
(a spline common to all spectra) and shows it as the paper does (Fig. 5). Given the spectra's
capture times, the fit also carries a linear gain drift in time;
`level_drift` is the regression of each spectrum's mean data/fit level against time.
`cryodaq.analysis.yfactor` is the switch-based method it replaces.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from scipy import interpolate, optimize, signal

from cryodaq.analysis.cavity import K_B, Cavity, effective_temperature, transmission_power
from cryodaq.analysis.cavity_chain import ChainLosses, Temperatures, cable_noise_temperature

#: Free parameters of `fit_chain`, in order.
PARAMETERS = ("gain_dB", "added_noise_K", "A1", "A_cir", "A2")
#: The extra free parameter of `fit_chain` when it is given the spectra's times.
DRIFT = "drift_percent_per_hour"
LOSSES = ("A1", "A_cir", "A2")
#: Frequencies at which the cable integrals are evaluated inside the fit (then interpolated).
_GRID_POINTS = 9
_A_MIN = 1e-3


@dataclass(frozen=True)
class SpectrumData:
    """One measured power spectrum (W per bin) and the temperatures it was taken at."""

    f_hz: np.ndarray
    power_W: np.ndarray
    bin_width_Hz: float
    integration_s: float
    temps: Temperatures

    @property
    def relative_sigma(self) -> float:
        """Radiometer scatter of one bin, 1 / sqrt(B tau)."""
        return 1.0 / float(np.sqrt(self.bin_width_Hz * self.integration_s))


class _Prepared:
    """The spectra's fixed ingredients, so that one model evaluation costs a few array ops.

    The cable integrals (Eq 5) are evaluated on a coarse frequency grid across the span and
    interpolated: over a few MHz at GHz frequencies T~ is linear in f to ~1e-6.
    """

    def __init__(self, spectra: Sequence[SpectrumData], cavity: Cavity, a3: float) -> None:
        self.spectra = list(spectra)
        self.cavity = cavity
        self.a3 = float(a3)
        f_all = np.concatenate([s.f_hz for s in self.spectra])
        lo, hi = float(f_all.min()), float(f_all.max())
        self.grid = np.linspace(lo, hi, _GRID_POINTS) if hi > lo else np.array([lo])
        col = (slice(None), None)
        self.t_att = np.array([s.temps.att_K for s in self.spectra])[col]
        self.t_cav = np.array([s.temps.cav_K for s in self.spectra])[col]
        self.t_mx = np.array([s.temps.mx_K for s in self.spectra])[col]
        self.t_hemt = np.array([s.temps.hemt_K for s in self.spectra])[col]
        self.att_eff = [effective_temperature(s.temps.att_K, s.f_hz) for s in self.spectra]
        self.mx_eff = [effective_temperature(s.temps.mx_K, s.f_hz) for s in self.spectra]
        self.mx_eff_grid = effective_temperature(self.t_mx, self.grid)
        self.st2 = [transmission_power(s.f_hz, cavity, s.bin_width_Hz) for s in self.spectra]
        self.cav_eff = [effective_temperature(s.temps.cav_K, s.f_hz) for s in self.spectra]
        # Cable 3 does not depend on the fitted parameters: T~3* on the grid, once.
        self.t3_grid = cable_noise_temperature(self.t_mx, self.t_hemt, self.a3, self.grid)

    def _interp(self, on_grid: np.ndarray) -> list[np.ndarray]:
        if self.grid.size == 1:
            return [
                np.full(s.f_hz.shape, row[0]) for s, row in zip(self.spectra, on_grid, strict=True)
            ]
        return [
            np.interp(s.f_hz, self.grid, row) for s, row in zip(self.spectra, on_grid, strict=True)
        ]

    def predict(
        self, p: np.ndarray, outward_noise: bool, varying_grid: np.ndarray | None = None
    ) -> list[np.ndarray]:
        """Eq 9 in its effective form for every spectrum, parameters `p` (see PARAMETERS);
        `varying_grid` overrides the temperature-following part of T_a' (on the grid)."""
        gain_dB, t_a, a1, ac, a2 = (float(v) for v in p)
        t1 = self._interp(cable_noise_temperature(self.t_att, self.t_mx, a1, self.grid))
        t2 = self._interp(cable_noise_temperature(self.t_mx, self.t_cav, a2, self.grid))
        varying: list[np.ndarray | float] = [0.0] * len(self.spectra)
        if varying_grid is not None:
            varying = self._interp(varying_grid)
        elif outward_noise:
            varying = self._interp(self.outward(ac, a2))
        gain = 10.0 ** (gain_dB / 10.0)
        out = []
        for i, s in enumerate(self.spectra):
            t_in = a2 * (ac * (a1 * self.att_eff[i] + t1[i]) + (1.0 - ac) * self.mx_eff[i]) + t2[i]
            st2 = self.st2[i]
            p_c = ((1.0 - st2) * t_in + st2 * self.cav_eff[i]) * K_B * s.bin_width_Hz
            out.append(gain * (p_c + K_B * (t_a + varying[i]) * s.bin_width_Hz))
        return out

    def outward(self, ac: float, a2: float) -> np.ndarray:
        """`_outward` of every spectrum minus its mean over the spectra (on the grid)."""
        g = self.outward_raw(ac, a2)
        return g - g.mean(axis=0)

    def outward_raw(self, ac: float, a2: float) -> np.ndarray:
        """The part of T^_r / A_r that follows the temperatures (K, on the grid):
        T~2*- / A2 + (1 - A_cir) T~_mx / (A_cir A2) + T~3* / A_r (Eq 9)."""
        t2_out = cable_noise_temperature(self.t_cav, self.t_mx, a2, self.grid)
        g = t2_out / a2 + (1.0 - ac) * self.mx_eff_grid / (ac * a2)
        return g + self.t3_grid / (self.a3 * ac * a2)


@dataclass(frozen=True)
class ChainFit:
    """Result of `fit_chain`: effective gain (dB) and added noise (K), input-line losses, with
    one-sigma errors from the covariance (scaled by sqrt(chi2/dof) when that exceeds 1).

    `added_noise_K` is T_a' averaged over the fitted spectra's temperatures (with
    `outward_noise`), or the one constant T_a' (without)."""

    gain_dB: float
    gain_dB_err: float
    added_noise_K: float
    added_noise_K_err: float
    A1: float
    A1_err: float
    A_cir: float
    A_cir_err: float
    A2: float
    A2_err: float
    chi2: float
    dof: int
    cavity: Cavity
    fixed: tuple[str, ...] = ()
    outward_noise: bool = True
    A3: float = 1.0
    temperatures: tuple[Temperatures, ...] = ()
    #: Linear gain drift (percent per hour) and its error, with `times_s`; 0 without.
    drift_percent_per_hour: float = 0.0
    drift_percent_per_hour_err: float = 0.0
    #: The time (s) at which the drift factor is 1: the mean of the spectra's times.
    time_origin_s: float = 0.0
    #: With a fitted ripple: its grid, r(f) there (mean 1) and the spline's knot spacing.
    ripple_f_hz: np.ndarray = field(default_factory=lambda: np.ones(0))
    ripple_r: np.ndarray = field(default_factory=lambda: np.ones(0))
    ripple_knot_Hz: float = 0.0

    def drift_factor(self, time_s: float) -> float:
        """The fitted gain at `time_s` relative to the gain at `time_origin_s`."""
        return 1.0 + self.drift_percent_per_hour / 100.0 * (time_s - self.time_origin_s) / 3600.0

    @property
    def parameters(self) -> np.ndarray:
        return np.array([self.gain_dB, self.added_noise_K, self.A1, self.A_cir, self.A2])

    def model(self, spectrum: SpectrumData) -> np.ndarray:
        """Fitted received power (W per bin) for `spectrum` (any temperatures), at the gain of
        `time_origin_s` (times `drift_factor(t)` for a spectrum taken at t)."""
        one = _Prepared([spectrum], self.cavity, self.A3)
        varying = None
        if self.outward_noise and self.temperatures:
            f_grid = one.grid
            refs = [SpectrumData(f_grid, f_grid, 1.0, 1.0, t) for t in self.temperatures]
            reference = _Prepared(refs, self.cavity, self.A3).outward_raw(self.A_cir, self.A2)
            varying = one.outward_raw(self.A_cir, self.A2) - reference.mean(axis=0)
        return one.predict(self.parameters, False, varying)[0]


def fit_chain(
    spectra: Sequence[SpectrumData],
    cavity: Cavity,
    *,
    fixed: Mapping[str, float] | None = None,
    outward_noise: bool = True,
    A3: float = 0.9,
    initial: Mapping[str, float] | None = None,
    times_s: Sequence[float] | None = None,
    ripple_knot_Hz: float | None = None,
) -> ChainFit:
    """Global least-squares fit of Eq 9, P_r = G' (P_c + k_B T_a' B), to all spectra at once.

    P_c is Eq 8 with the incoming noise of Eq 6; free parameters are G' (dB), T_a' (K) and the
    input line's transmissions A1, A_cir, A2 in (0, 1]; `fixed` pins any of A1/A_cir/A2.
    Each bin is weighted by its radiometer scatter, model / sqrt(B tau) (a first pass weighted
    by the data sets the weights of the second).

    T_a' = (T^_r + T_a) / A_r follows the temperatures a little: cable 2's outward noise and
    the circulator's follow T_c and T_mx, cable 3's follows T_mx. With `outward_noise`
    (default) that part is carried along (cable 3 with the assumed transmission `A3`, a spec
    value: it only scales how T^_r follows T_mx), and T_a' is the effective added noise averaged
    over the spectra's temperatures. With `outward_noise=False`, T_a' is one constant, as in the
    paper's fit.

    With `times_s` (each spectrum's capture time, s), the gain drifts linearly in time: the
    model of a spectrum taken at t is multiplied by 1 + d (t - t_mean) / 1 h, d (percent per
    hour) a sixth free parameter. Without time information a drift is mostly absorbed by the
    other parameters (the temperatures change in time too), so it cannot be recovered from the
    residual levels afterwards.

    With `ripple_knot_Hz`, the gain also carries a frequency ripple common to all spectra,
    G'(f) = r(f) G', r a cubic B-spline with knots this far apart and mean 1 over the bins (so
    G' stays the mean gain), fitted jointly: for given chain parameters the spline is the
    linear least-squares solution (variable projection), so the chain parameters' errors
    include their correlation with the ripple. The spectra must share one frequency grid.
    """
    spectra = list(spectra)
    if not spectra:
        raise ValueError("fit_chain needs at least one spectrum")
    drifting = times_s is not None
    times = np.zeros(len(spectra))
    if times_s is not None:
        times = np.asarray(times_s, dtype=float)
        if times.shape != (len(spectra),):
            raise ValueError(f"times_s needs one time per spectrum ({len(spectra)})")
        if len(spectra) < 2 or np.ptp(times) <= 0:
            raise ValueError("times_s needs at least two different times")
    origin = float(times.mean())
    dt_h = (times - origin) / 3600.0
    fixed = {k: float(v) for k, v in (fixed or {}).items()}
    unknown = set(fixed) - set(LOSSES)
    if unknown:
        raise ValueError(f"fixed may pin only {', '.join(LOSSES)}; got {sorted(unknown)}")
    for name, value in fixed.items():
        if not (0.0 < value <= 1.0):
            raise ValueError(f"fixed {name} must be in (0, 1], got {value!r}")
    if not (0.0 < A3 <= 1.0):
        raise ValueError(f"A3 must be in (0, 1], got {A3!r}")
    prepared = _Prepared(spectra, cavity, A3)
    ripple = None if ripple_knot_Hz is None else _RippleBasis(spectra, float(ripple_knot_Hz))
    free = [name for name in PARAMETERS if name not in fixed]
    n_chain = len(free)

    # Starting point: losses 0.95; gain and added noise from a straight line of the wings'
    # power (off resonance P_r ~ G' k_B B (T_in + T_a')) against T_in.
    start = {"A1": 0.95, "A_cir": 0.95, "A2": 0.95, DRIFT: 0.0, **fixed, **(initial or {})}
    if "gain_dB" not in start or "added_noise_K" not in start:
        trial = np.array([0.0, 0.0, start["A1"], start["A_cir"], start["A2"]])
        no_gain = prepared.predict(trial, False)  # k_B B T_in off resonance, gain 1, T_a' 0
        x, y = [], []
        for s, m in zip(spectra, no_gain, strict=True):
            wing = np.abs(s.f_hz - cavity.fc_Hz) > 3.0 * cavity.linewidth_Hz
            if not np.any(wing):
                wing = np.ones_like(s.f_hz, dtype=bool)
            x.append(m[wing].mean() / (K_B * s.bin_width_Hz))
            y.append(s.power_W[wing].mean() / (K_B * s.bin_width_Hz))
        if len(spectra) > 1 and np.ptp(x) > 0:
            slope, intercept = np.polyfit(x, y, 1)
        else:
            slope, intercept = y[0] / (x[0] + 5.0), 5.0 * y[0] / (x[0] + 5.0)
        slope = max(float(slope), 1e-30)
        start.setdefault("gain_dB", 10.0 * np.log10(slope))
        start.setdefault("added_noise_K", max(intercept / slope, 0.01))

    def full(q: np.ndarray) -> np.ndarray:
        values = dict(fixed)
        values.update(zip(free[:n_chain], q[:n_chain], strict=True))
        return np.array([values[name] for name in PARAMETERS], dtype=float)

    def physics(q: np.ndarray) -> list[np.ndarray]:
        model = prepared.predict(full(q), outward_noise)
        if not drifting:
            return model
        factor = 1.0 + q[n_chain] / 100.0 * dt_h
        return [m * f for m, f in zip(model, factor, strict=True)]

    def predict(q: np.ndarray) -> list[np.ndarray]:
        model = physics(q)
        if ripple is None:
            return model
        r = ripple.solve(power, model, sigmas)
        return [m * r for m in model]

    if drifting:
        free = [*free, DRIFT]

    power = [s.power_W for s in spectra]
    sigmas = [s.power_W * s.relative_sigma for s in spectra]

    def residuals(q: np.ndarray) -> np.ndarray:
        model = predict(q)
        return np.concatenate([(d - m) / sg for d, m, sg in zip(power, model, sigmas, strict=True)])

    lower = [
        -np.inf if n in ("gain_dB", DRIFT) else (0.0 if n == "added_noise_K" else _A_MIN)
        for n in free
    ]
    upper = [np.inf if n in ("gain_dB", "added_noise_K", DRIFT) else 1.0 for n in free]
    q = np.array([min(max(start[n], lo), hi) for n, lo, hi in zip(free, lower, upper, strict=True)])
    for _ in range(2):  # second pass: weights from the first pass' model
        result = optimize.least_squares(
            residuals,
            q,
            bounds=(lower, upper),
            method="trf",
            x_scale="jac",
            xtol=1e-10,
            ftol=1e-10,
            gtol=1e-10,
        )
        q = result.x
        model = predict(q)
        sigmas = [m * s.relative_sigma for s, m in zip(spectra, model, strict=True)]
    res = residuals(q)
    jac = result.jac
    chi2 = float(res @ res)
    dof = max(res.size - len(free) - (0 if ripple is None else ripple.size), 1)
    cov = np.linalg.pinv(jac.T @ jac) * max(1.0, chi2 / dof)
    err = dict(zip(free, np.sqrt(np.clip(np.diag(cov), 0.0, None)), strict=True))
    values = dict(zip(PARAMETERS, full(q), strict=True))
    drift = float(q[n_chain]) if drifting else 0.0
    ripple_r = np.ones(0)
    if ripple is not None:
        ripple_r = ripple.solve(power, physics(q), sigmas)
    return ChainFit(
        gain_dB=float(values["gain_dB"]),
        gain_dB_err=float(err.get("gain_dB", 0.0)),
        added_noise_K=float(values["added_noise_K"]),
        added_noise_K_err=float(err.get("added_noise_K", 0.0)),
        A1=float(values["A1"]),
        A1_err=float(err.get("A1", 0.0)),
        A_cir=float(values["A_cir"]),
        A_cir_err=float(err.get("A_cir", 0.0)),
        A2=float(values["A2"]),
        A2_err=float(err.get("A2", 0.0)),
        chi2=chi2,
        dof=int(dof),
        cavity=cavity,
        fixed=tuple(sorted(fixed)),
        outward_noise=outward_noise,
        A3=float(A3),
        temperatures=tuple(s.temps for s in spectra),
        drift_percent_per_hour=drift,
        drift_percent_per_hour_err=float(err.get(DRIFT, 0.0)),
        time_origin_s=origin,
        ripple_f_hz=spectra[0].f_hz.copy() if ripple is not None else np.ones(0),
        ripple_r=ripple_r,
        ripple_knot_Hz=float(ripple_knot_Hz) if ripple is not None else 0.0,
    )


class _RippleBasis:
    """r(f) = 1 + sum_k c_k (B_k(f) - <B_k>): cubic B-splines with uniform knots over the
    shared grid, each minus its mean over the bins, so that <r> = 1 whatever the c_k."""

    def __init__(self, spectra: Sequence[SpectrumData], knot_Hz: float) -> None:
        f = spectra[0].f_hz
        for s in spectra[1:]:
            if s.f_hz.shape != f.shape or not np.allclose(s.f_hz, f, rtol=0, atol=1e-6):
                raise ValueError("a fitted ripple needs spectra on one frequency grid")
        span = float(f.max() - f.min())
        if not (knot_Hz > 0.0) or span <= 0.0:
            raise ValueError(f"ripple_knot_Hz must be > 0 Hz, got {knot_Hz!r}")
        n_inner = int(np.ceil(span / knot_Hz))
        if n_inner + 3 >= f.size:
            raise ValueError(
                f"ripple_knot_Hz {knot_Hz:g} gives {n_inner + 3} spline coefficients for "
                f"{f.size} bins; it must be more than {span / max(f.size - 4, 1):g} Hz"
            )
        inner = np.linspace(f.min(), f.max(), n_inner + 1)
        knots = np.concatenate([[inner[0]] * 3, inner, [inner[-1]] * 3])
        basis = interpolate.BSpline.design_matrix(np.clip(f, inner[0], inner[-1]), knots, 3)
        basis = basis.toarray()
        self.basis = basis - basis.mean(axis=0)
        self.size = self.basis.shape[1]

    def solve(
        self, power: Sequence[np.ndarray], model: Sequence[np.ndarray], sigmas: Sequence[np.ndarray]
    ) -> np.ndarray:
        """The ripple r(f) that best scales `model` to `power` (weighted linear least squares)."""
        weight = np.zeros(self.basis.shape[0])
        target = np.zeros(self.basis.shape[0])
        for d, m, sg in zip(power, model, sigmas, strict=True):  # the basis is shared
            w = (m / sg) ** 2
            weight += w
            target += w * (d - m) / m
        normal = self.basis.T @ (self.basis * weight[:, None])
        coef = np.linalg.lstsq(normal, self.basis.T @ target, rcond=None)[0]
        return 1.0 + self.basis @ coef


@dataclass(frozen=True)
class Ripple:
    """Gain ripple r(f): mean data/fit ratio over the spectra, its Savitzky-Golay smoothing,
    the rms of the smoothed ripple about its mean (percent), and each spectrum's mean ratio
    (`levels`, in time order of the spectra given: their spread is the gain drift)."""

    f_hz: np.ndarray
    ratio: np.ndarray
    smoothed: np.ndarray
    rms_percent: float
    levels: np.ndarray


def gain_ripple(
    spectra: Sequence[SpectrumData],
    fit: ChainFit,
    window_bins: int,
    polyorder: int = 2,
    times_s: Sequence[float] | None = None,
) -> Ripple:
    """r(f) = mean over spectra of data / fit, smoothed by a Savitzky-Golay filter of
    `window_bins` (odd, made odd if even) and `polyorder`; all spectra must share one grid.
    With `times_s`, the fit's model of each spectrum includes the fit's drift factor."""
    spectra = list(spectra)
    if not spectra:
        raise ValueError("gain_ripple needs at least one spectrum")
    f = spectra[0].f_hz
    for s in spectra[1:]:
        if s.f_hz.shape != f.shape or not np.allclose(s.f_hz, f, rtol=0, atol=1e-6):
            raise ValueError("gain_ripple needs spectra on one frequency grid")
    factors = np.ones(len(spectra))
    if times_s is not None:
        factors = np.array([fit.drift_factor(float(t)) for t in times_s])
        if factors.shape != (len(spectra),):
            raise ValueError(f"times_s needs one time per spectrum ({len(spectra)})")
    ratios = np.array(
        [s.power_W / (fit.model(s) * k) for s, k in zip(spectra, factors, strict=True)]
    )
    ratio = ratios.mean(axis=0)
    window = int(window_bins) | 1
    window = min(window, f.size if f.size % 2 else f.size - 1)
    if window <= polyorder:
        raise ValueError(f"window_bins {window_bins} must exceed polyorder {polyorder}")
    smoothed = signal.savgol_filter(ratio, window, polyorder, mode="interp")
    rms = float(100.0 * np.sqrt(np.mean((smoothed - smoothed.mean()) ** 2)))
    return Ripple(f, ratio, smoothed, rms, ratios.mean(axis=1))


def fit_chain_corrected(
    spectra: Sequence[SpectrumData],
    cavity: Cavity,
    *,
    window_bins: int,
    knot_Hz: float,
    polyorder: int = 2,
    fixed: Mapping[str, float] | None = None,
    outward_noise: bool = True,
    A3: float = 0.9,
    times_s: Sequence[float] | None = None,
) -> tuple[ChainFit, Ripple]:
    """`fit_chain` with the gain ripple fitted jointly (a spline with knots `knot_Hz` apart),
    and the ripple as the paper shows it (Fig. 5): the mean ratio of the data to that fit's
    ripple-free model, smoothed by a Savitzky-Golay filter (`gain_ripple`)."""
    kwargs: dict[str, Any] = {"fixed": fixed, "outward_noise": outward_noise, "A3": A3}
    fit = fit_chain(spectra, cavity, times_s=times_s, ripple_knot_Hz=knot_Hz, **kwargs)
    return fit, gain_ripple(spectra, fit, window_bins, polyorder, times_s=times_s)


def level_drift(
    levels: Sequence[float], times_s: Sequence[float], level_errors: Sequence[float] | float
) -> tuple[float, float]:
    """Weighted straight line of the spectra's mean data/fit levels against their times: the
    slope relative to the mean level in percent per hour, and its error (scaled by
    sqrt(chi2/dof) when that exceeds 1). Only meaningful against a fit that knew the times:
    a fit without them absorbs most of a drift into its other parameters."""
    y = np.asarray(levels, dtype=float)
    t_h = np.asarray(times_s, dtype=float) / 3600.0
    sig = np.broadcast_to(np.asarray(level_errors, dtype=float), y.shape)
    if y.size < 2 or np.ptp(t_h) <= 0:
        raise ValueError("level_drift needs at least two different times")
    (slope, intercept), cov = np.polyfit(t_h, y, 1, w=1.0 / sig, cov="unscaled")
    dof = y.size - 2
    chi2 = float(np.sum(((y - (slope * t_h + intercept)) / sig) ** 2))
    scale = max(1.0, chi2 / dof) if dof > 0 else 1.0
    mean = float(np.mean(y))
    return float(100.0 * slope / mean), float(100.0 * np.sqrt(cov[0, 0] * scale) / mean)


__all__ = [
    "ChainFit",
    "ChainLosses",
    "Ripple",
    "SpectrumData",
    "Temperatures",
    "fit_chain",
    "fit_chain_corrected",
    "gain_ripple",
    "level_drift",
]
