"""What the trigger engine hands to sinks: one `EventBatch` per processed block."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import IntEnum

import numpy as np


class TriggerKind(IntEnum):
    """Why a record was taken."""

    EDGE = 1  # derivative kernel crossed the threshold
    LEVEL = 2  # the signal crossed a level
    AUTO = 3  # periodic, for noise records
    EXTERNAL = 4  # at given sample indices
    GROUP = 5  # fan-out: another channel of the group triggered


#: Per-record summaries computed in the trigger pass; pulse quantities are baseline-subtracted
#: and multiplied by the channel's polarity (so pulses are positive).
SUMMARY_DTYPE = np.dtype(
    [
        ("pretrig_mean", "f4"),  # mean of the pretrigger samples
        ("pretrig_rms", "f4"),  # rms of the pretrigger samples about their mean
        ("peak_value", "f4"),  # largest excursion after the pretrigger
        ("peak_index", "i4"),  # its sample within the record
        ("rise_time_s", "f4"),  # 10 % -> 90 % of the peak on the rising edge
        ("postpeak_deriv", "f4"),  # largest rise per sample after the peak (pile-up)
        ("pulse_average", "f4"),  # mean excursion after the pretrigger
    ]
)


@dataclass(frozen=True)
class Gap:
    """Samples [first, stop) that never arrived (the source's counter jumped)."""

    first: int
    stop: int

    @property
    def samples(self) -> int:
        return self.stop - self.first


@dataclass(frozen=True)
class EventBatch:
    """Records triggered in one block of a continuous multi-channel stream.

    Row i is one record: `channel[i]` triggered (`trigger_kind[i]`) at absolute sample
    `sample_index[i]` (the record starts `pretrigger` samples earlier); `coincidence[i]` counts
    the channels that triggered within the coincidence window of it (1: alone).
    """

    acquisition: str
    sample_rate_hz: float
    block_first_sample: int
    block_samples: int
    pretrigger: int
    channel: np.ndarray  # int32 (n,)
    sample_index: np.ndarray  # int64 (n,)
    timestamp_ns: np.ndarray  # int64 (n,), wall/virtual time of the trigger sample
    trigger_kind: np.ndarray  # uint8 (n,)
    coincidence: np.ndarray  # uint16 (n,)
    records: np.ndarray  # (n, record_length), the source's dtype
    summaries: np.ndarray  # (n,) SUMMARY_DTYPE
    gaps: tuple[Gap, ...] = ()  # gaps found just before this block
    records_lost_to_gaps: int = 0  # records that a gap cut (never stored, counted)
    extra: dict[str, np.ndarray] = field(default_factory=dict)  # columns sinks may add

    def __len__(self) -> int:
        return int(self.channel.size)

    @property
    def record_length(self) -> int:
        return int(self.records.shape[1])

    def for_channel(self, ch: int) -> np.ndarray:
        """Row indices of channel `ch`."""
        return np.flatnonzero(self.channel == ch)
