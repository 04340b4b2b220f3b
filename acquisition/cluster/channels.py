"""Channel numbers of board parts: each board's channels shifted so parts never share one."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from typing import Any

from cryodaq.acquisition.pipelines import PART_SEPARATOR
from cryodaq.acquisition.rig import RigSpec
from cryodaq.acquisition.stream.sources import Block, BlockSource
from cryodaq.acquisition.stream.trigger import TriggerConfig


def part_name(name: str, board: str, part: int) -> str:
    """The store acquisition of `board`'s `part`-th piece (1, 2, ...) of acquisition `name`."""
    base = f"{name}{PART_SEPARATOR}-{board}"
    return base if part == 1 else f"{base}-{part}"


def channel_offsets(spec: RigSpec, boards: Sequence[str]) -> dict[str, int]:
    """Per board, the number added to its channel numbers: the channels of the boards before."""
    offsets, total = {}, 0
    for board in boards:
        offsets[board] = total
        total += max(int(c) for c in spec.instruments[board].driver.channel_ids)
    return offsets


class OffsetSource:
    """A block source whose channel numbers are shifted by `offset` (board parts of a run)."""

    def __init__(self, source: BlockSource, offset: int) -> None:
        self.source = source
        self.offset = offset

    def __getattr__(self, name: str) -> Any:
        return getattr(self.source, name)

    @property
    def channels(self) -> tuple[int, ...]:
        return tuple(c + self.offset for c in self.source.channels)

    def read(self) -> Block | None:
        block = self.source.read()
        if block is None:
            return None
        return replace(block, channels=tuple(c + self.offset for c in block.channels))


def shifted(config: TriggerConfig, offset: int) -> TriggerConfig:
    """`config` with every channel number shifted by `offset`."""
    return replace(
        config,
        channels={c + offset: t for c, t in config.channels.items()},
        fanout={c + offset: [t + offset for t in ts] for c, ts in config.fanout.items()},
    )
