"""numba kernels of the trigger engine: the scan for triggers and the record extraction.

Both work on `work`, a `channels x W` array: the tail kept from the previous block followed by
the new block. They release the GIL and run serially: a board's whole stream needs a few per
cent of one core, boards run in parallel as tasks of their own, and numba's parallel loops cost
more than they saved (on a shared two-core host its OpenMP threads spinning between the short
loops of each block made the engine 5-7x dearer per CPU second: `benchmarks/scale.py`).
"""

from __future__ import annotations

import math

import numba
import numpy as np

EDGE, LEVEL, AUTO = 1, 2, 3
#: After an edge trigger, the kernel must fall below this fraction of the threshold (once the
#: holdoff has passed) before the edge trigger fires again.
REARM = 0.25

#: Width (samples) of each half of the default edge kernel: d[i] = x[i] + x[i-1] - x[i-2] -
#: x[i-3].
DEFAULT_EDGE_WIDTH = 2


def kernel_history(width: int) -> int:
    """Samples the edge kernel of half-width `width` and its previous value need behind a
    sample: 2 * width."""
    return 2 * int(width)


@numba.njit(nogil=True, cache=True)
def _edge_at(work, c, i, w):  # pragma: no cover - numba
    """d_w[i] = sum(x[i-w+1 .. i]) - sum(x[i-2w+1 .. i-w]) of channel c."""
    d = 0.0
    for k in range(w):
        d += np.float64(work[c, i - k]) - np.float64(work[c, i - w - k])
    return d


@numba.njit(nogil=True, cache=True)
def scan(
    work,
    scan_from,
    scan_to,
    work_abs0,
    edge_on,
    threshold,
    width,
    polarity,
    level_on,
    level,
    auto_period,
    holdoff,
    last_trigger,
    next_auto,
    armed,
    out_index,
    out_kind,
    out_count,
):  # pragma: no cover - numba
    """Find edge, level and auto triggers in `work[c, scan_from[c]:scan_to]` for every channel.

    The edge kernel of channel c, half-width w = width[c], is the sum of the last w samples
    minus the sum of the w before: d_w[i] = sum(x[i-w+1 .. i]) - sum(x[i-2w+1 .. i-w])
    (w = 2: x[i] + x[i-1] - x[i-2] - x[i-3]), kept as a running sum. An edge trigger fires
    where d_w (times polarity; polarity 0: its absolute value, for channels with pulses of
    both signs) reaches `threshold` after being below it; its sample is the largest one-sample
    step among samples i-w+1 .. i+1 of the crossing sample i: the pulse's arrival (so
    `scan_to` must leave one sample after). A level trigger fires where polarity * x crosses
    polarity * level upwards. Both respect `holdoff` samples after the channel's last trigger;
    after an edge trigger the edge trigger re-arms only once, after the holdoff, the kernel
    (times polarity, or its absolute value) has fallen below REARM x threshold: the slow kernel
    values of a large pulse's decaying tail, which may hover about the threshold when the
    holdoff ends, never trigger (`armed` carries this to the next block).
    Auto triggers fire every `auto_period` samples (0: off). Absolute indices go to
    `out_index[c, :out_count[c]]`; `last_trigger` and `next_auto` carry state to the next
    block. `scan_from[c]` must be >= 2 * width[c].
    """
    channels, width_all = work.shape
    cap = out_index.shape[1]
    for c in range(channels):
        n = 0
        last = last_trigger[c]
        pol = polarity[c]
        thr = threshold[c]
        lev = pol * level[c]
        w = width[c]
        arm = armed[c]
        start = scan_from[c]
        if edge_on[c] or level_on[c]:
            d = _edge_at(work, c, start - 1, w) if edge_on[c] else 0.0
            for i in range(start, scan_to):
                dp = d
                if edge_on[c]:  # running sum: d_w[i] from d_w[i-1]
                    d = dp + (np.float64(work[c, i]) - 2.0 * np.float64(work[c, i - w])
                              + np.float64(work[c, i - 2 * w]))
                a = work_abs0 + i
                if a - last < holdoff:
                    continue
                kind = 0
                if edge_on[c]:
                    s = pol
                    if pol == 0.0:  # both polarities: the sign of this step decides
                        s = 1.0 if d >= 0 else -1.0
                    if not arm and s * d < REARM * thr:
                        arm = True
                    if arm and s * d >= thr and s * dp < thr:
                        kind = EDGE
                        arm = False
                        best = -np.inf
                        at = i
                        for j in range(i - w + 1, i + 2):
                            step = s * (np.float64(work[c, j]) - work[c, j - 1])
                            if step > best:
                                best = step
                                at = j
                        a = work_abs0 + at
                if (
                    kind == 0
                    and level_on[c]
                    and pol * np.float64(work[c, i]) >= lev
                    and pol * np.float64(work[c, i - 1]) < lev
                ):
                    kind = LEVEL
                if kind != 0 and n < cap:
                    out_index[c, n] = a
                    out_kind[c, n] = kind
                    n += 1
                    last = a
        if auto_period[c] > 0:
            first_abs = work_abs0 + start
            end_abs = work_abs0 + scan_to
            if next_auto[c] < first_abs:
                next_auto[c] = first_abs
            while next_auto[c] < end_abs and n < cap:
                out_index[c, n] = next_auto[c]
                out_kind[c, n] = AUTO
                n += 1
                next_auto[c] += auto_period[c]
        last_trigger[c] = last
        armed[c] = arm
        out_count[c] = n


@numba.njit(nogil=True, cache=True)
def extract(
    work, rows, starts, pretrigger, polarity, dt, records, summaries_f, summaries_i
):  # pragma: no cover - numba
    """Copy record r = work[rows[r], starts[r]:starts[r] + L] and summarise it.

    summaries_f[r] = pretrig_mean, pretrig_rms, peak_value, rise_time_s, postpeak_deriv,
    pulse_average; summaries_i[r] = peak_index (see `cryodaq.acquisition.events.SUMMARY_DTYPE`).
    """
    n_rec, length = records.shape
    for r in range(n_rec):
        row = rows[r]
        s0 = starts[r]
        pol = polarity[r]
        total = 0.0
        total2 = 0.0
        for j in range(length):
            v = work[row, s0 + j]
            records[r, j] = v
            if j < pretrigger:
                total += v
                total2 += np.float64(v) * v
        mean = total / pretrigger if pretrigger > 0 else np.float64(work[row, s0])
        var = total2 / pretrigger - mean * mean if pretrigger > 0 else 0.0
        if pol == 0.0:  # both polarities: the sign of the larger excursion
            hi_ex = 0.0
            lo_ex = 0.0
            for j in range(pretrigger, length):
                y = np.float64(records[r, j]) - mean
                hi_ex = max(hi_ex, y)
                lo_ex = min(lo_ex, y)
            pol = 1.0 if hi_ex >= -lo_ex else -1.0
        peak = -np.inf
        peak_j = pretrigger
        pulse_sum = 0.0
        for j in range(pretrigger, length):
            y = pol * (np.float64(records[r, j]) - mean)
            pulse_sum += y
            if y > peak:
                peak = y
                peak_j = j
        lo = 0.1 * peak
        hi = 0.9 * peak
        j90 = peak_j
        while j90 > pretrigger and pol * (np.float64(records[r, j90 - 1]) - mean) >= hi:
            j90 -= 1
        j10 = j90
        while j10 > pretrigger and pol * (np.float64(records[r, j10 - 1]) - mean) >= lo:
            j10 -= 1
        deriv = -np.inf
        for j in range(peak_j + 1, length - 1):
            step = pol * (np.float64(records[r, j + 1]) - records[r, j])
            if step > deriv:
                deriv = step
        if deriv == -np.inf:
            deriv = 0.0
        summaries_f[r, 0] = mean
        summaries_f[r, 1] = math.sqrt(max(var, 0.0))
        summaries_f[r, 2] = peak
        summaries_f[r, 3] = (j90 - j10) * dt
        summaries_f[r, 4] = deriv
        summaries_f[r, 5] = pulse_sum / max(length - pretrigger, 1)
        summaries_i[r] = peak_j
