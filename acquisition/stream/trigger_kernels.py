"""numba kernels of the trigger engine: the scan for triggers and the record extraction.

Both work on `work`, a `channels x W` array: the tail kept from the previous block followed by
the new block. They release the GIL, and run channels (scan) or records (extraction) in
parallel.
"""

from __future__ import annotations

import math

import numba
import numpy as np
from numba import prange

EDGE, LEVEL, AUTO = 1, 2, 3

#: Samples the derivative kernel d[i] = x[i] + x[i-1] - x[i-2] - x[i-3] and its previous
#: value need behind sample i.
KERNEL_HISTORY = 4


@numba.njit(nogil=True, cache=True, parallel=True)
def scan(
    work,
    scan_from,
    scan_to,
    work_abs0,
    edge_on,
    threshold,
    polarity,
    level_on,
    level,
    auto_period,
    holdoff,
    last_trigger,
    next_auto,
    out_index,
    out_kind,
    out_count,
):  # pragma: no cover - numba
    """Find edge, level and auto triggers in `work[c, scan_from[c]:scan_to]` for every channel.

    An edge trigger fires where the derivative kernel (times polarity; polarity 0: its
    absolute value, for channels with pulses of both signs) reaches `threshold`
    after being below it; its sample is the largest one-sample step among the crossing sample
    and its two neighbours: the pulse's arrival (so `scan_to` must leave one sample after).
    A level trigger fires where polarity * x crosses polarity * level upwards. Both respect
    `holdoff` samples after the channel's last trigger. Auto triggers fire every `auto_period`
    samples (0: off). Absolute indices go to `out_index[c, :out_count[c]]`; `last_trigger` and
    `next_auto` carry state to the next block.
    """
    channels, width = work.shape
    cap = out_index.shape[1]
    for c in prange(channels):
        n = 0
        last = last_trigger[c]
        pol = polarity[c]
        thr = threshold[c]
        lev = pol * level[c]
        start = scan_from[c]
        if edge_on[c] or level_on[c]:
            for i in range(start, scan_to):
                a = work_abs0 + i
                if a - last < holdoff:
                    continue
                kind = 0
                if edge_on[c]:
                    d = (np.float64(work[c, i]) + work[c, i - 1]) - (
                        np.float64(work[c, i - 2]) + work[c, i - 3]
                    )
                    s = pol
                    if pol == 0.0:  # both polarities: the sign of this step decides
                        s = 1.0 if d >= 0 else -1.0
                    if s * d >= thr:
                        dp = s * (
                            (np.float64(work[c, i - 1]) + work[c, i - 2])
                            - (np.float64(work[c, i - 3]) + work[c, i - 4])
                        )
                        if dp < thr:
                            kind = EDGE
                            best = s * (np.float64(work[c, i - 1]) - work[c, i - 2])
                            at = i - 1
                            for j in (i, i + 1):
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
        out_count[c] = n


@numba.njit(nogil=True, cache=True, parallel=True)
def extract(
    work, rows, starts, pretrigger, polarity, dt, records, summaries_f, summaries_i
):  # pragma: no cover - numba
    """Copy record r = work[rows[r], starts[r]:starts[r] + L] and summarise it.

    summaries_f[r] = pretrig_mean, pretrig_rms, peak_value, rise_time_s, postpeak_deriv,
    pulse_average; summaries_i[r] = peak_index (see `cryodaq.acquisition.events.SUMMARY_DTYPE`).
    """
    n_rec, length = records.shape
    for r in prange(n_rec):
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
