"""Checks of streaming kinds: blocks read through the engine's own source, counters and gaps."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

from cryodaq.acquisition.conformance.core import (
    SIM_ONLY,
    Check,
    Outcome,
    Target,
    ensure,
    passed,
    refused,
    skipped,
)
from cryodaq.acquisition.stream.sources import Block, BlockSource
from cryodaq.drivers.errors import InstrumentError, SettingRangeError

#: Samples per channel in each block the checks read.
BLOCK = 1000
#: Readies a reset instrument to stream; returns the channels that must stream.
Prepare = Callable[[Any], tuple[int, ...]]
#: The acquisition engine's block source for an instrument of the kind.
SourceFor = Callable[[Any, int], BlockSource]


def _read(source: BlockSource, count: int) -> list[Block]:
    blocks = [source.read() for _ in range(count)]
    ensure(all(b is not None for b in blocks), "the source ran out of blocks")
    return [b for b in blocks if b is not None]


def fetch_refusals(prepare: Prepare) -> Check:
    """A fetch before `start()` is an instrument error; a count of 0 is refused client-side."""

    def run(t: Target) -> Outcome:
        t.inst.reset()
        prepare(t.inst)
        refused(lambda: t.inst.fetch(BLOCK), InstrumentError, "fetch before start()")
        refused(lambda: t.inst.fetch(0), SettingRangeError, "fetch(0)")
        return passed("fetch before start(): InstrumentError; fetch(0): SettingRangeError")

    return Check("fetch refusals", run)


def consecutive_blocks(prepare: Prepare, source_for: SourceFor) -> Check:
    """Blocks through the engine's source: counters from 0 on, consecutive, only the enabled
    channels, the source's dtype and the instrument's sample rate."""

    def run(t: Target) -> Outcome:
        t.inst.reset()
        channels = prepare(t.inst)
        source = source_for(t.inst, BLOCK)
        source.start()
        try:
            first, second = _read(source, 2)
        finally:
            source.stop()
        ensure(first.first_sample == 0, f"the first block starts at sample {first.first_sample}")
        ensure(second.first_sample == BLOCK, f"the second block starts at sample "
               f"{second.first_sample}, not {BLOCK} (right after the first)")
        ensure(first.channels == channels,
               f"streamed channels {first.channels}, enabled were {channels}")
        shape = (len(channels), BLOCK)
        ensure(first.data.shape == shape and first.data.dtype == source.dtype,
               f"block of {first.data.shape} {first.data.dtype}, want {shape} {source.dtype}")
        ensure(math.isclose(first.sample_rate_hz, source.sample_rate_hz, rel_tol=1e-9),
               f"blocks at {first.sample_rate_hz:g} Hz, the instrument says "
               f"{source.sample_rate_hz:g} Hz")
        return passed(f"2 blocks of {shape[0]} x {BLOCK} {source.dtype} at "
                      f"{source.sample_rate_hz:g} Hz, counters 0 and {BLOCK}")

    return Check("consecutive counted blocks", run)


def counted_gap(prepare: Prepare, source_for: SourceFor) -> Check:
    """Samples lost to a full on-board buffer show as a jump of the next block's counter."""

    def run(t: Target) -> Outcome:
        buffer = t.sim.buffer_samples() if t.sim is not None else None
        if t.sim is None or buffer is None:
            return skipped(SIM_ONLY.format("overflow the on-board buffer"))
        t.inst.reset()
        prepare(t.inst)
        source = source_for(t.inst, BLOCK)
        source.start()
        try:
            (first,) = _read(source, 1)
            t.sim.let_time_pass(2 * buffer / source.sample_rate_hz)
            (after,) = _read(source, 1)
        finally:
            source.stop()
        lost = after.first_sample - (first.first_sample + BLOCK)
        ensure(lost >= buffer // 2, f"{2 * buffer} samples came into a {buffer}-sample buffer "
               f"unread, yet the next block starts at {after.first_sample} (gap {lost})")
        return passed(f"an overflowed {buffer}-sample buffer shows as a gap of {lost} samples")

    return Check("lost samples are a counted gap", run)


def checks(prepare: Prepare, source_for: SourceFor) -> tuple[Check, ...]:
    """The streaming checks of a kind read by `source_for` once `prepare`d."""
    return (
        fetch_refusals(prepare),
        consecutive_blocks(prepare, source_for),
        counted_gap(prepare, source_for),
    )
