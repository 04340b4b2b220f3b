"""Several block sources on one sample clock read as one: one trigger engine sees every channel.

Boards that share a sample clock and start together (two ADCs of one rig fed by one clock,
their acquisitions started at the same instant) number their samples alike: sample i of
every board is the same instant. A `JoinedSource` reads a block from each and hands on the
samples they all have, the rows stacked in source order; each source's channels are shifted
by `offsets` (the channels of the sources before it), so channel numbers stay unique
(`channel_sources` maps them back). Counters that disagree (a board lost samples) are
aligned on the latest one: the stretch only some boards have becomes a gap of the joined
stream, as the engine records it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from cryodaq.acquisition.errors import CryodaqError
from cryodaq.acquisition.stream.sources import Block, BlockSource


class JoinedSourceError(CryodaqError, ValueError):
    """The sources cannot be read as one stream; the message names them and why."""


@dataclass
class _Pending:
    first: int
    data: np.ndarray  # channels x samples not yet handed on
    channels: tuple[int, ...]


class JoinedSource:
    """Sources sharing one sample clock as one `BlockSource` (see module docstring)."""

    def __init__(self, sources: Sequence[BlockSource], offsets: Sequence[int]) -> None:
        if len(sources) < 2 or len(offsets) != len(sources):
            raise JoinedSourceError("a joined source needs >= 2 sources and one offset each")
        self.sources = tuple(sources)
        self.offsets = tuple(int(o) for o in offsets)
        self.name = "+".join(s.name for s in self.sources)
        first = self.sources[0]
        for s in self.sources[1:]:
            for attr in ("dtype", "unit", "units_per_value", "sample_rate_hz"):
                if getattr(s, attr) != getattr(first, attr):
                    raise JoinedSourceError(
                        f"{self.name}: {s.name} has {attr} {getattr(s, attr)!r}, {first.name} "
                        f"{getattr(first, attr)!r}; sources acquired at once must share the "
                        "sample clock and data format (set them alike)"
                    )
        self.dtype = first.dtype
        self.unit = first.unit
        self.units_per_value = first.units_per_value
        self.sample_rate_hz = first.sample_rate_hz
        self.start_time_ns = 0
        self.channels: tuple[int, ...] = ()
        self._pending: list[_Pending | None] = [None] * len(self.sources)

    @property
    def channel_sources(self) -> dict[int, tuple[str, int]]:
        """Joined channel -> (source name, the source's own channel number)."""
        return {
            ch + off: (s.name, ch)
            for s, off in zip(self.sources, self.offsets, strict=True)
            for ch in s.channels
        }

    def start(self) -> None:
        """Start every source (in order, with nothing in between: on a shared clock their
        counters then count the same instants); sample 0's time is the first source's."""
        started: list[BlockSource] = []
        try:
            for s in self.sources:
                s.start()
                started.append(s)
        except BaseException:
            for s in started:
                s.stop()
            raise
        self.start_time_ns = self.sources[0].start_time_ns
        self.sample_rate_hz = self.sources[0].sample_rate_hz
        self._pending = [None] * len(self.sources)

    def _fill(self, k: int) -> bool:
        """Make source k's pending data non-empty; False when it ran dry."""
        p = self._pending[k]
        while p is None or p.data.shape[1] == 0:
            b = self.sources[k].read()
            if b is None:
                return False
            if b.sample_rate_hz != self.sample_rate_hz:
                raise JoinedSourceError(
                    f"{self.name}: {self.sources[k].name} streams at {b.sample_rate_hz:g} Hz, "
                    f"the others at {self.sample_rate_hz:g} Hz"
                )
            p = self._pending[k] = _Pending(b.first_sample, b.data, b.channels)
        return True

    def read(self) -> Block | None:
        while True:
            if not all(self._fill(k) for k in range(len(self.sources))):
                return None
            pend = [p for p in self._pending if p is not None]
            first = max(p.first for p in pend)
            behind = False
            for p in pend:  # drop what only this source has (the others lost it)
                skip = min(first - p.first, p.data.shape[1])
                p.first, p.data = p.first + skip, p.data[:, skip:]
                behind |= p.data.shape[1] == 0
            if not behind:
                break
        n = min(p.data.shape[1] for p in pend)
        rows = [p.data[:, :n] for p in pend]
        channels = tuple(
            ch + off for p, off in zip(pend, self.offsets, strict=True) for ch in p.channels
        )
        for p in pend:
            p.first, p.data = p.first + n, p.data[:, n:]
        self.channels = channels
        return Block(first, self.sample_rate_hz, channels, np.concatenate(rows, axis=0))

    def stop(self) -> None:
        """Stop every source (all of them, even if one fails; the first failure is raised)."""
        failure: BaseException | None = None
        for s in self.sources:
            try:
                s.stop()
            except Exception as exc:  # noqa: BLE001 - the others must stop too
                failure = failure or exc
        if failure is not None:
            raise failure
