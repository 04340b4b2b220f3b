"""The commit of an acquisition: what of it is on disk and safe to read (docs/run_store.md)."""

from __future__ import annotations

import copy
import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from cryodaq.acquisition.store.format import channel_group


@dataclass(frozen=True)
class Commit:
    """An acquisition's last published commit, as stored under "commit" in its `zarr.json`.

    Each field is stored under its own name. The dicts are the commit's own: treat them as
    read-only (the writer publishes a new `Commit` rather than changing one).
    """

    #: Commits published so far (0: the empty commit made with the acquisition).
    sequence: int
    #: When it was published (`time.time_ns()`); None for the empty commit.
    time_ns: int | None
    #: Committed rows per channel group (`ch003` -> rows).
    rows: dict[str, int]
    #: Gaps committed, and the samples they span.
    gaps: int
    gap_samples: int
    #: Samples of the stream processed (live time = processed_samples / sample rate).
    processed_samples: int
    #: First and one-past-last sample of the blocks committed (None before the first).
    first_sample: int | None
    next_sample: int | None
    #: Batches committed, and records the gaps cost.
    batches: int
    records_lost_to_gaps: int
    #: Per sink: records and batches it dropped.
    drops: dict[str, dict[str, int]]
    #: Extra columns by name: dtype and row shape.
    extra_columns: dict[str, dict[str, Any]]
    #: Whether the acquisition is closed (nothing more will be committed).
    closed: bool

    @classmethod
    def empty(cls, channels: Sequence[int]) -> Commit:
        """The commit of a new acquisition: no rows in any of its channels."""
        return cls(
            sequence=0,
            time_ns=None,
            rows={channel_group(ch): 0 for ch in channels},
            gaps=0,
            gap_samples=0,
            processed_samples=0,
            first_sample=None,
            next_sample=None,
            batches=0,
            records_lost_to_gaps=0,
            drops={},
            extra_columns={},
            closed=False,
        )

    @classmethod
    def from_json(cls, obj: Mapping[str, Any]) -> Commit:
        """A commit as stored (a copy: it shares nothing with `obj`)."""
        return cls(**{f.name: copy.deepcopy(obj[f.name]) for f in dataclasses.fields(cls)})

    def to_json(self) -> dict[str, Any]:
        """The stored form: a JSON object with one key per field, in field order."""
        return dataclasses.asdict(self)

    @property
    def total_rows(self) -> int:
        """Committed rows of all channels."""
        return sum(self.rows.values())
