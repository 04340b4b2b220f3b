"""Slew rate of flux-ramp demodulated signals and the flux-quantum slips it causes.

The demodulator measures the SQUID flux once per ramp period, modulo one flux quantum, and
unwraps by taking each step within +-Phi0/2. A signal that moves more than half a quantum per
sample (0.25 Phi0/us at 500 kHz, HOLMES) is unwrapped onto the wrong branch: the record loses
(or gains) a whole quantum from that sample on, so after the pulse it settles a multiple of
Phi0 away from its pretrigger baseline. Such events cannot be reconstructed (seed paper,
Table 2 for design c); they are flagged by that offset, never calibrated.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

#: The unwrapper takes each step within +-MAX_STEP_PHI0 (flux quanta per sample).
MAX_STEP_PHI0 = 0.5


def slew_limit(sample_rate_hz: float, max_step_phi0: float = MAX_STEP_PHI0) -> float:
    """Largest slew rate (Phi0/s) the demodulated readout follows: half a quantum per sample."""
    if not sample_rate_hz > 0:
        raise ValueError(f"sample_rate_hz must be > 0, got {sample_rate_hz}")
    return max_step_phi0 * sample_rate_hz


def max_slew(records: np.ndarray, sample_rate_hz: float, sign: float = 1.0) -> np.ndarray:
    """Largest rise per unit time (units/s, times `sign`) between consecutive samples of each
    record (n, L)."""
    x = sign * np.asarray(records, dtype=np.float64)
    if x.ndim != 2 or x.shape[1] < 2:
        raise ValueError(f"records must be (n, L >= 2), got shape {x.shape}")
    return np.diff(x, axis=1).max(axis=1) * sample_rate_hz


@dataclass(frozen=True)
class Slips:
    """Per record: the settled offset from the baseline after the pulse (Phi0), the whole
    quanta it amounts to, and the pulses' polarity. `slipped` where quanta were lost against
    the pulse's direction: a rise too fast for the unwrapper always loses them, while a second
    pulse piled up in the record's tail (not triggered: the trigger holds off) leaves an
    offset along it."""

    offset_phi0: np.ndarray
    quanta: np.ndarray
    sign: float

    @property
    def slipped(self) -> np.ndarray:
        return self.quanta * self.sign < 0


def find_slips(
    records_phi0: np.ndarray, pretrigger: int, template: np.ndarray, *, tail: int | None = None
) -> Slips:
    """Flux-quantum slips of pulse records (n, L) in Phi0.

    The offset is the mean of the last `tail` samples (default L/8) minus the pretrigger mean,
    minus what the pulse itself still holds there: the unit-peak `template`'s tail times the
    record's height (its largest excursion from the baseline in the template's direction).
    Rounded to whole quanta; a pulse's own tail, noise and drift stay far below half a quantum.
    The template must come from pulses that did not slip (e.g. the smaller ones).
    """
    x = np.asarray(records_phi0, dtype=np.float64)
    tmpl = np.asarray(template, dtype=np.float64)
    if x.ndim != 2 or x.shape[1] != tmpl.size or not 1 <= pretrigger < x.shape[1]:
        raise ValueError(
            f"need records (n, {tmpl.size}) and 1 <= pretrigger < {tmpl.size}, got {x.shape}, "
            f"{pretrigger}"
        )
    m = tail or max(x.shape[1] // 8, 1)
    sign = 1.0 if tmpl[np.argmax(np.abs(tmpl))] > 0 else -1.0
    base = x[:, :pretrigger].mean(axis=1)
    height = (sign * (x[:, pretrigger:] - base[:, None])).max(axis=1)
    offset = x[:, -m:].mean(axis=1) - base - height * tmpl[-m:].mean()
    return Slips(offset, np.rint(offset).astype(np.int64), sign)


def unwrap_quanta(baselines: np.ndarray) -> np.ndarray:
    """Baselines (Phi0) moved by whole quanta to the nearest of their circular mean: each slip
    moves the demodulated baseline by one quantum for good, while the bath moves it by far less
    than half of one over a run. (Undoing the steps between consecutive records instead
    would turn a record caught halfway through a slip into a lasting error of one quantum.)"""
    b = np.asarray(baselines, dtype=np.float64)
    if b.size == 0:
        return b
    ref = np.angle(np.mean(np.exp(2j * np.pi * b))) / (2.0 * np.pi)
    return b - np.rint(b - ref)
