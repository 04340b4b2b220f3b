"""What a resumed run's store must hold, for the tests that interrupt runs and resume them."""

from __future__ import annotations

import numpy as np

from cryodaq.acquisition.store.reader import RunReader


def assert_parts_exact(reader: RunReader, parts: list[str], duration_s: float) -> list[np.ndarray]:
    """The parts of one acquisition hold exactly `duration_s` of samples and their records run
    in time order, never overlapping; returns each non-empty part's record timestamps (ns)."""
    rate = reader.info(parts[0])["sample_rate_hz"]
    samples = sum(reader.commit(p).processed_samples for p in parts)
    assert samples == round(duration_s * rate), (samples, duration_s * rate)
    times = [reader.read(p, 1, ["timestamp_ns"])["timestamp_ns"] for p in parts]
    times = [t for t in times if t.size]
    for earlier, later in zip(times, times[1:], strict=False):
        assert later.min() > earlier.max()
    assert all(np.all(np.diff(t) > 0) for t in times)
    return times
