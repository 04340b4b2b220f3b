"""Per-record numbers of pulse and noise records, compiled, record after record.

Records are (n, L) arrays of any numeric dtype (int16 as stored, or float64), holding no NaN;
nothing is copied to float64 as a whole: each record is read from memory once and all its
numbers are taken while it is in the cache (`record_features`; the other functions give one
number each, for the learning steps). The definitions are those of the NumPy formulations
they replace (tests/test_record_apply.py keeps those): sums are taken in another order, so
results agree to floating-point rounding; maxima, steps and comparisons agree exactly.

- baseline: mean of the record's first `pretrigger` samples;
- amplitude: `record @ weights` (an optimal filter's weights, float64);
- rms, max_dev: rms about the record's mean, and its largest |deviation| from that mean;
- rise_after_peak: largest one-sample rise of `sign * record` after its (first) peak
  (-inf when the peak is the last sample);
- residual: rms of the baseline-subtracted record minus the template scaled to it by least
  squares, (x @ t / t @ t) t;
- phase: fractional sample index where `sign * (record - baseline)` first reaches half its
  peak after the pretrigger (linear interpolation between the samples around the crossing).
"""

from __future__ import annotations

from dataclasses import dataclass

import numba
import numpy as np

#: Sums, minima and maxima may be reordered (vectorised); records hold no NaN.
_FAST = {"reassoc", "contract", "nnan", "nsz"}
#: Samples counted at once when looking for the first sample that passes a test.
_BLOCK = 64


@dataclass(frozen=True)
class RecordFeatures:
    """The numbers of each record of a chunk (see module docstring), float64 (n,) each."""

    baseline: np.ndarray
    amplitude: np.ndarray
    rms: np.ndarray
    max_dev: np.ndarray
    rise_after_peak: np.ndarray
    residual: np.ndarray
    phase: np.ndarray


def _records(records: np.ndarray) -> np.ndarray:
    x = np.asarray(records)
    if x.ndim != 2 or x.shape[1] < 1:
        raise ValueError(f"records must be (n, L) with L >= 1, got shape {x.shape}")
    if x.dtype.kind not in "iuf":
        raise ValueError(f"records must be numeric, got dtype {x.dtype}")
    return np.ascontiguousarray(x)


def _narrow(rec: np.ndarray) -> bool:
    return rec.dtype.kind in "iu" and rec.dtype.itemsize <= 2


def _weights(weights: np.ndarray, length: int, what: str) -> np.ndarray:
    w = np.ascontiguousarray(weights, dtype=np.float64)
    if w.shape != (length,):
        raise ValueError(f"{what} must have {length} samples (the record length), got {w.shape}")
    return w


def _per_record(values: np.ndarray, n: int, what: str, dtype: type = np.float64) -> np.ndarray:
    """One value per record, contiguous (the kernels do not check bounds)."""
    v = np.ascontiguousarray(values, dtype=dtype)
    if v.shape != (n,):
        raise ValueError(f"{what} must have one value per record ({n}), got shape {v.shape}")
    return v


@numba.njit(cache=True, fastmath=_FAST)
def _dot(x, w):  # noqa: ANN001, ANN202 - numba kernel
    s = 0.0
    for j in range(x.size):
        s += x[j] * w[j]
    return s


@numba.njit(cache=True, fastmath=_FAST)
def _mean(x, start, stop):  # noqa: ANN001, ANN202
    y = x[start:stop]  # views here and below: loops from 0 are vectorised, others not
    s = 0.0
    for j in range(y.size):
        s += y[j]
    return s / (stop - start)


@numba.njit(cache=True, fastmath=_FAST)
def _extremes(x, start):  # noqa: ANN001, ANN202
    """(min, max) of x[start:] in x's own dtype (vectorised for integer records)."""
    y = x[start:]  # a view: the loop then runs from 0, which LLVM vectorises
    lo = hi = y[0]
    for j in range(y.size):
        v = y[j]
        lo = v if v < lo else lo
        hi = v if v > hi else hi
    return lo, hi


@numba.njit(cache=True)
def _first_peak(x, sign):  # noqa: ANN001, ANN202
    lo, hi = _extremes(x, 0)
    top = hi if sign > 0 else lo
    for j0 in range(0, x.size, _BLOCK):
        y = x[j0 : j0 + _BLOCK]
        hits = 0
        for j in range(y.size):
            hits += y[j] == top
        if hits:
            for j in range(y.size):
                if y[j] == top:
                    return j0 + j
    return 0  # NaN records: NumPy's argmax gives the first NaN; a record of NaN rises by NaN


@numba.njit(cache=True, fastmath=_FAST)
def _step_extremes(x, start, narrow):  # noqa: ANN001, ANN202
    """(min, max) of the one-sample steps x[j + 1] - x[j], j >= start (start < x.size - 1);
    `narrow`: x holds integers of 16 bits or fewer (their steps fit int32: vectorised)."""
    a, b = x[start + 1 :], x[start:-1]
    if narrow:
        lo = hi = np.int32(np.int32(a[0]) - np.int32(b[0]))
        for j in range(a.size):
            d = np.int32(np.int32(a[j]) - np.int32(b[j]))
            lo = d if d < lo else lo
            hi = d if d > hi else hi
        return float(lo), float(hi)
    flo = fhi = float(a[0]) - float(b[0])
    for j in range(a.size):
        fd = float(a[j]) - float(b[j])
        flo = fd if fd < flo else flo
        fhi = fd if fd > fhi else fhi
    return flo, fhi


@numba.njit(cache=True)
def _rise_after_peak(x, sign, narrow):  # noqa: ANN001, ANN202
    k = _first_peak(x, sign)
    if k >= x.size - 1:
        return -np.inf
    lo, hi = _step_extremes(x, k, narrow)
    return sign * hi if sign > 0 else sign * lo


@numba.njit(cache=True, fastmath=_FAST)
def _noise_stats(x):  # noqa: ANN001, ANN202
    m = _mean(x, 0, x.size)
    ss = 0.0
    for j in range(x.size):
        d = x[j] - m
        ss += d * d
    lo, hi = _extremes(x, 0)
    return np.sqrt(ss / x.size), max(hi - m, m - lo)


@numba.njit(cache=True, fastmath=_FAST)
def _residual(x, base, t, tt):  # noqa: ANN001, ANN202
    xt = 0.0
    for j in range(x.size):
        xt += (x[j] - base) * t[j]
    a = xt / tt
    ss = 0.0
    for j in range(x.size):
        r = (x[j] - base) - a * t[j]
        ss += r * r
    return np.sqrt(ss / x.size)


@numba.njit(cache=True)
def _half_crossing(x, base, sign, start):  # noqa: ANN001, ANN202
    """(first index >= start where sign * (x - base) >= half its max after start, the half
    value, the max); the index is -1 if none is."""
    lo, hi = _extremes(x, start)
    peak = hi - base if sign > 0 else base - lo
    half = 0.5 * peak
    for j0 in range(start, x.size, _BLOCK):
        y = x[j0 : j0 + _BLOCK]
        hits = 0
        for j in range(y.size):
            hits += sign * (y[j] - base) >= half
        if hits:
            for j in range(y.size):
                if sign * (y[j] - base) >= half:
                    return j0 + j, half, peak
    return -1, half, peak


@numba.njit(cache=True)
def _phase(x, base, sign, pre):  # noqa: ANN001, ANN202
    i, half, _ = _half_crossing(x, base, sign, pre)
    if i < 0:  # no sample reaches half a NaN peak; NumPy's argmax then picks the first
        i = pre
    lo, hi = sign * (x[i - 1] - base), sign * (x[i] - base)
    step = hi - lo if hi > lo else np.inf
    return i - 1 + min(max((half - lo) / step, 0.0), 1.0)


@numba.njit(cache=True, fastmath=_FAST)
def _sums(x, w, t, pre):  # noqa: ANN001, ANN202
    """(sum of the first `pre` samples, of all, x @ w, x @ t): one pass, and one over the
    pretrigger."""
    s_pre = 0.0
    for j in range(pre):
        s_pre += x[j]
    s_all, xw, xt = 0.0, 0.0, 0.0
    for j in range(x.size):
        v = float(x[j])
        s_all += v
        xw += v * w[j]
        xt += v * t[j]
    return s_pre, s_all, xw, xt


@numba.njit(cache=True, fastmath=_FAST)
def _squares(x, m, base, a, t):  # noqa: ANN001, ANN202
    """One pass: sum (x - m)^2 and sum ((x - base) - a t)^2."""
    ss, rr = 0.0, 0.0
    for j in range(x.size):
        d = x[j] - m
        r = (x[j] - base) - a * t[j]
        ss += d * d
        rr += r * r
    return ss, rr


@numba.njit(cache=True)
def _features(rec, w, t, pre, sign, narrow, out):  # noqa: ANN001, ANN202
    tt, t_sum, n = _dot(t, t), np.sum(t), rec.shape[1]
    for i in range(rec.shape[0]):
        x = rec[i]
        s_pre, s_all, xw, xt = _sums(x, w, t, pre)
        base, m = s_pre / pre, s_all / n
        a = (xt - base * t_sum) / tt
        ss, rr = _squares(x, m, base, a, t)
        lo, hi = _extremes(x, 0)
        out[0, i] = base
        out[1, i] = xw
        out[2, i] = np.sqrt(ss / n)
        out[3, i] = max(hi - m, m - lo)
        out[4, i] = _rise_after_peak(x, sign, narrow)
        out[5, i] = np.sqrt(rr / n)
        out[6, i] = _phase(x, base, sign, pre)


def record_features(
    records: np.ndarray, weights: np.ndarray, template: np.ndarray, pretrigger: int, sign: float
) -> RecordFeatures:
    """Every number of the module docstring for each record, in one pass over the records."""
    rec = _records(records)
    length = rec.shape[1]
    if not 1 <= pretrigger < length - 1:
        raise ValueError(f"pretrigger must be in 1 .. {length - 2}, got {pretrigger}")
    w = _weights(weights, length, "weights")
    t = _weights(template, length, "template")
    out = np.empty((7, rec.shape[0]))
    _features(rec, w, t, int(pretrigger), float(sign), _narrow(rec), out)
    return RecordFeatures(*out)


@numba.njit(cache=True)
def _amplitudes(rec, w, out):  # noqa: ANN001, ANN202
    for i in range(rec.shape[0]):
        out[i] = _dot(rec[i], w)


def amplitudes(records: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """`records @ weights` in float64, each record converted as it is read."""
    rec = _records(records)
    out = np.empty(rec.shape[0])
    _amplitudes(rec, _weights(weights, rec.shape[1], "weights"), out)
    return out


@numba.njit(cache=True)
def _noise_rows(rec, out):  # noqa: ANN001, ANN202
    for i in range(rec.shape[0]):
        out[0, i], out[1, i] = _noise_stats(rec[i])


def noise_stats(records: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(rms about the mean, largest |deviation| from the mean) of each record."""
    rec = _records(records)
    out = np.empty((2, rec.shape[0]))
    _noise_rows(rec, out)
    return out[0], out[1]


@numba.njit(cache=True)
def _rise_rows(rec, sign, narrow, out):  # noqa: ANN001, ANN202
    for i in range(rec.shape[0]):
        out[i] = _rise_after_peak(rec[i], sign, narrow)


def rises_after_peak(records: np.ndarray, sign: float = 1.0) -> np.ndarray:
    """Largest one-sample rise of `sign * record` after its first peak, per record."""
    rec = _records(records)
    out = np.empty(rec.shape[0])
    _rise_rows(rec, float(sign), _narrow(rec), out)
    return out


@numba.njit(cache=True)
def _row_means(rec, start, stop, out):  # noqa: ANN001, ANN202
    for i in range(rec.shape[0]):
        out[i] = _mean(rec[i], start, stop)


def row_means(records: np.ndarray, start: int, stop: int) -> np.ndarray:
    """Mean of samples [start, stop) of each record (the baseline: 0, pretrigger)."""
    rec = _records(records)
    if not 0 <= start < stop <= rec.shape[1]:
        raise ValueError(f"need 0 <= start < stop <= {rec.shape[1]}, got {start}, {stop}")
    out = np.empty(rec.shape[0])
    _row_means(rec, int(start), int(stop), out)
    return out


@numba.njit(cache=True)
def _edges(rec, base, sign, start, out):  # noqa: ANN001, ANN202
    for i in range(rec.shape[0]):
        j, _, peak = _half_crossing(rec[i], base[i], sign, start)
        out[i] = j if peak > 0 else -1


def rising_edges(records: np.ndarray, base: np.ndarray, sign: float, start: int) -> np.ndarray:
    """First index >= start where `sign * (record - base)` reaches half its maximum after
    `start`, per record; -1 where that maximum is not > 0."""
    rec = _records(records)
    if not 0 <= start < rec.shape[1]:
        raise ValueError(f"start must be in 0 .. {rec.shape[1] - 1}, got {start}")
    out = np.empty(rec.shape[0], np.int64)
    _edges(rec, _per_record(base, rec.shape[0], "base"), float(sign), int(start), out)
    return out


@numba.njit(cache=True)
def _sum_rows(rec, base, keep, out):  # noqa: ANN001, ANN202
    for i in range(rec.shape[0]):
        if keep[i]:
            x = rec[i]
            b = base[i]
            for j in range(x.size):
                out[j] += x[j] - b
    return out


def baseline_subtracted_sum(records: np.ndarray, base: np.ndarray, keep: np.ndarray) -> np.ndarray:
    """Sum over the records with `keep` of `record - base`, float64 (L,), row after row."""
    rec = _records(records)
    out = np.zeros(rec.shape[1])
    n = rec.shape[0]
    return _sum_rows(rec, _per_record(base, n, "base"), _per_record(keep, n, "keep", np.bool_), out)


@numba.njit(cache=True)
def _residual_rows(rec, base, t, out):  # noqa: ANN001, ANN202
    tt = _dot(t, t)
    for i in range(rec.shape[0]):
        out[i] = _residual(rec[i], base[i], t, tt)


def template_residuals(records: np.ndarray, base: np.ndarray, template: np.ndarray) -> np.ndarray:
    """rms of `record - base` minus the template scaled to it by least squares, per record."""
    rec = _records(records)
    out = np.empty(rec.shape[0])
    t = _weights(template, rec.shape[1], "template")
    _residual_rows(rec, _per_record(base, rec.shape[0], "base"), t, out)
    return out


@numba.njit(cache=True)
def _phase_rows(rec, pre, sign, out):  # noqa: ANN001, ANN202
    for i in range(rec.shape[0]):
        x = rec[i]
        out[i] = _phase(x, _mean(x, 0, pre), sign, pre)


def rising_phases(records: np.ndarray, pretrigger: int, sign: float = 1.0) -> np.ndarray:
    """The `phase` of the module docstring, per record."""
    rec = _records(records)
    if not 1 <= pretrigger < rec.shape[1] - 1:
        raise ValueError(f"need records (n, L) and 1 <= pretrigger < L - 1, got {rec.shape}")
    out = np.empty(rec.shape[0])
    _phase_rows(rec, int(pretrigger), float(sign), out)
    return out
