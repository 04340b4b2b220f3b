"""The `mmc` pipeline's passes over every pulse record of a pixel's channel, streamed from the
run store in blocks: in the calibration acquisitions, each record's pixel (its sign), largest
rise after the peak and shape parameters, and the calibration pulses' rise cut learned on the
records held; in the background acquisitions, the pixel's records' amplitudes and shape
parameters through the filter learned on the calibration."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from cryodaq.acquisition.pipelines.pulses_apply import pulse_blocks
from cryodaq.acquisition.pipelines.pulses_channel import (
    CUT_SIGMAS,
    ChannelSkipped,
    Learned,
    Stream,
    joined,
)
from cryodaq.acquisition.store.reader import RunReader
from cryodaq.analysis.mmc_shape import ShapeParameters, shape_parameters
from cryodaq.analysis.optimal_filter import AveragePulse, OptimalFilter
from cryodaq.analysis.record_cuts import Band, rise_after_peak, robust_band


def record_signs(records: np.ndarray, pretrigger: int) -> np.ndarray:
    """+1 or -1 per record: the sign of its larger excursion from the pretrigger mean."""
    x = np.asarray(records, dtype=np.float64)
    x = x - x[:, :pretrigger].mean(axis=1, keepdims=True)
    post = x[:, pretrigger:]
    return np.where(post.max(axis=1) >= -post.min(axis=1), 1, -1)


@dataclass(frozen=True)
class RiseCut:
    """The calibration pulses' isolation (`guard` samples, record geometry) and their upper
    cut on the largest rise after the peak, learned on the records held."""

    guard: int
    pre: int
    length: int
    band: Band


def calibration_rise_cut(stream: Stream, ln: Learned, geo: dict[str, Any], opts: dict[str, Any],
                          mine: np.ndarray) -> RiseCut:  # fmt: skip
    """The pixel's pulses for the energy calibration, at any energy: isolated as `learn_filter`
    isolates them and without a second pulse in the record (no step after the peak), but with
    no cut on the residual from the template, which grows with the amplitude: the cut learned
    on the held pulses."""
    length, pre = geo["length"], geo["pre"]
    guard = max(length, int(np.ceil(opts["isolation_decays"] * ln.fit.decay_s * geo["fs"])))
    ok, _ = stream.isolation(guard, pre, length)
    ok &= mine
    if not ok.any():
        raise ChannelSkipped("no pulse of the pixel is isolated for the calibration")
    rise = rise_after_peak(stream.pulses[ok], ln.avg.sign)
    return RiseCut(guard, pre, length, robust_band(rise, CUT_SIGMAS, upper_only=True))


def calibration_pulses(stream: Stream, cut: RiseCut, rise: np.ndarray, mine: np.ndarray
                        ) -> np.ndarray:  # fmt: skip
    """Every pulse of the pixel (`mine`, `rise` per pulse record) the calibration uses."""
    ok, _ = stream.every_isolation(cut.guard, cut.pre, cut.length)
    return ok & mine & cut.band.contains(rise)


class PixelPulses:
    """Per pulse record, block after block (`pulses_apply.apply_pass`'s `also`): whether it is
    the pixel's (its `sign`), its largest rise after the peak, and for the pixel's records
    their shape parameters (NaN for the other pixel's)."""

    def __init__(self, sign: int, ln: Learned, avg: AveragePulse, pre: int) -> None:
        self._sign, self._ln, self._avg, self._pre = sign, ln, avg, pre
        self._mine: list[np.ndarray] = []
        self._rise: list[np.ndarray] = []
        self._shapes: list[ShapeParameters] = []

    def __call__(self, rec: np.ndarray) -> None:
        pre, ln = self._pre, self._ln
        m = record_signs(rec, pre) == self._sign if len(rec) else np.zeros(0, bool)
        self._mine.append(m)
        self._rise.append(rise_after_peak(rec, ln.avg.sign))
        own = shape_parameters(rec[m], self._avg.template, pre, ln.noise_rms**2)
        every = ShapeParameters(*(np.full(len(rec), np.nan) for _ in range(3)))
        for field in ("amplitude", "chi2", "zeta"):
            getattr(every, field)[m] = getattr(own, field)
        self._shapes.append(every)

    def result(self) -> tuple[np.ndarray, np.ndarray, ShapeParameters]:
        """(mine, rise after the peak, shape parameters) of every pulse record seen."""
        return (joined(self._mine, bool), joined(self._rise, float),
                _joined_shapes(self._shapes))  # fmt: skip


def background_pulses(
    reader: RunReader, stream: Stream, ch: int, sign: int, noise_variance: float,
    filt: OptimalFilter, avg: AveragePulse, pre: int,
) -> tuple[np.ndarray, np.ndarray, ShapeParameters]:
    """Every pulse record of `stream` streamed from the store: which are this pixel's (its
    sign), and their filtered amplitudes and shape parameters."""
    mine, amp, shapes = [], [], []
    for rec in pulse_blocks(reader, stream, ch):
        m = record_signs(rec, pre) == sign if len(rec) else np.zeros(0, bool)
        mine.append(m)
        amp.append(filt.apply(rec[m]))
        shapes.append(shape_parameters(rec[m], avg.template, pre, noise_variance))
    return joined(mine, bool), joined(amp, float), _joined_shapes(shapes)


def _joined_shapes(shapes: list[ShapeParameters]) -> ShapeParameters:
    return ShapeParameters(*(joined([getattr(p, f) for p in shapes], float)
                             for f in ("amplitude", "chi2", "zeta")))  # fmt: skip
