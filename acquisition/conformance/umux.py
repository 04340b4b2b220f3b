"""The uMUX board's contract: the session, settings, tones, sweeps, budget and counted blocks."""

from __future__ import annotations

import numpy as np

from cryodaq.acquisition.conformance import session, settings, streaming
from cryodaq.acquisition.conformance.core import (
    Check,
    Contract,
    Outcome,
    Target,
    ensure,
    passed,
    refused,
)
from cryodaq.acquisition.stream.sources import UmuxSource
from cryodaq.drivers.errors import SettingRangeError
from cryodaq.drivers.kinds import UmuxKind

#: Baseband tone frequencies the checks place (within any board's band).
TONES_HZ = (1.0e6, -3.0e6)
SWEEP_POINTS = 11


def prepare(inst: UmuxKind) -> tuple[int, ...]:
    """Tones on the first two channels, flux ramp on."""
    chosen = tuple(inst.channel_ids[: len(TONES_HZ)])
    for ch, f in zip(chosen, TONES_HZ, strict=True):
        inst.set_tone(ch, f)
    inst.ramp_on = True
    return chosen


def tones(t: Target) -> Outcome:
    """`set_tone` enables the channel and returns the frequency the channel then reads."""
    t.inst.reset()
    ch = t.inst.channel_ids[-1]
    held = t.inst.set_tone(ch, TONES_HZ[0])
    channel = t.inst.channel(ch)
    ensure(channel.enabled is True, f"set_tone({ch}, ...) left channel {ch} disabled")
    ensure(settings.same(held, channel.frequency),
           f"set_tone returned {held!r} Hz, channel {ch} reads {channel.frequency!r} Hz")
    ensure(settings.same(held, TONES_HZ[0]), f"asked {TONES_HZ[0]:g} Hz, holds {held:g} Hz")
    budget = t.inst.channel_budget
    ensure(isinstance(budget, int) and 1 <= budget <= len(t.inst.channel_ids),
           f"channel_budget {budget!r} is not 1 .. {len(t.inst.channel_ids)}")
    return passed(f"channel {ch} holds {held:g} Hz, enabled; budget {budget} channels")


def sweep(t: Target) -> Outcome:
    """A sweep gives complex S21 at the points asked, around the LO it reports."""
    t.inst.reset()
    result = t.inst.sweep(-1e6, 1e6, SWEEP_POINTS)
    ensure(result.s21.shape == (SWEEP_POINTS,) and np.iscomplexobj(result.s21),
           f"S21 of shape {result.s21.shape} {result.s21.dtype}, want ({SWEEP_POINTS},) complex")
    ensure(bool(np.all(np.isfinite(result.s21))), "S21 holds non-finite values")
    ensure(np.allclose(result.baseband_hz, np.linspace(-1e6, 1e6, SWEEP_POINTS)),
           "the sweep's frequencies are not the points asked")
    lo = t.inst.lo_frequency
    ensure(settings.same(result.lo_hz, lo), f"sweep at LO {result.lo_hz:g} Hz, board {lo:g} Hz")
    refused(lambda: t.inst.sweep(-1e6, 1e6, 1), SettingRangeError, "a sweep of 1 point")
    return passed(f"{SWEEP_POINTS} complex S21 points around {lo:g} Hz; 1 point refused")


CONTRACT = Contract(
    "umux",
    (
        *session.CHECKS,
        *settings.checks(UmuxKind),
        Check("tones and budget", tones),
        Check("sweep", sweep),
        *streaming.checks(prepare, UmuxSource),
    ),
)
