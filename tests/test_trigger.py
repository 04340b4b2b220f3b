"""The trigger engine finds what was injected: times, counts, groups, coincidences, gaps."""

from __future__ import annotations

import numpy as np
import pytest

from cryodaq.acquisition.events import TriggerKind
from cryodaq.acquisition.stream.sources import ReplaySource
from cryodaq.acquisition.stream.trigger import (
    ChannelTrigger,
    TriggerConfig,
    TriggerConfigError,
    TriggerEngine,
)
from cryodaq.sim_instruments.pulse_source import PulseSource

RATE = 500e3


def pulses(
    channels: int,
    seconds: float,
    seed: int,
    rate_hz: float = 20.0,
    rise_s: float = 1e-6,
    noise: float = 0.05,
    polarity: int = 1,
) -> tuple[np.ndarray, list[np.ndarray]]:
    """Flux of independent detectors (units: 1.0 = a 1 keV pulse) and their true arrival times.

    The rise (1 us) is below the 2 us sample period, so arrival is resolvable to one sample;
    noise 0.05 rms against pulses of >= 1: SNR >= 20.
    """
    params = {
        "rate_hz": rate_hz,
        "rise_s": rise_s,
        "decay_s": 200e-6,
        "phi0_per_eV": 1e-3,
        "noise_phi0_per_rthz": noise / np.sqrt(RATE / 2),
        "lines": [{"energy_eV": 1000.0}, {"energy_eV": 3000.0}],
    }
    n = int(seconds * RATE)
    data, truth = [], []
    for c in range(channels):
        src = PulseSource(params, np.random.default_rng([seed, c]), "test")
        data.append(polarity * src.block(0.0, n, RATE))
        truth.append(np.array([t for t, _ in src.history]))
    return np.array(data, dtype=np.float32), truth


def expected(t: np.ndarray, n: int, pre: int, post: int, holdoff: int) -> np.ndarray:
    """Arrival times that must trigger: a pulse inside the holdoff of the last accepted one is
    deliberately not re-triggered (pile-up), and a record needs room in the stream."""
    kept, last = [], -np.inf
    for a in t:
        if np.ceil(a * RATE) - last >= holdoff:
            kept.append(a)
            last = np.ceil(a * RATE)
    s = np.array(kept) * RATE
    return np.array(kept)[(s > pre) & (s < n - post)]


def run(data: np.ndarray, config: TriggerConfig, block: int, **replay: object) -> list:
    source = ReplaySource(data, RATE, block, **replay)
    engine = TriggerEngine(config, source.channels, RATE)
    source.start()
    batches = []
    while (b := source.read()) is not None:
        batches.append(engine.process(b))
    return batches, engine


def cat(batches: list, field: str) -> np.ndarray:
    return np.concatenate([getattr(b, field) for b in batches])


#: The kernel sums 4 samples: noise 0.05 rms gives 0.1 rms; 0.8 is 8 sigma (no false trigger
#: in 1e7 samples) and below the smallest pulse (1.0).
EDGE = ChannelTrigger(edge_threshold=0.8)


@pytest.mark.parametrize("block", [997, 4096, 65536])
def test_edge_triggers_at_injected_times_across_block_boundaries(block: int) -> None:
    data, truth = pulses(3, 4.0, seed=1)
    config = TriggerConfig(256, 64, {c: EDGE for c in (1, 2, 3)}, holdoff=200)
    batches, engine = run(data, config, block)
    channel, index = cat(batches, "channel"), cat(batches, "sample_index")
    for c in (1, 2, 3):
        t = expected(truth[c - 1], data.shape[1], 64, 192, 200)
        got = np.sort(index[channel == c])
        assert got.size == t.size  # no double, no missed trigger
        arrival = np.ceil(t * RATE)  # first sample at or after the arrival
        assert np.abs(got - arrival).max() <= 1
    assert engine.records_lost_to_gaps == 0


def test_results_do_not_depend_on_block_size() -> None:
    data, _ = pulses(2, 2.0, seed=2)
    config = TriggerConfig(300, 100, {1: EDGE, 2: EDGE})
    small, _ = run(data, config, 1013)
    large, _ = run(data, config, 1 << 20)
    for field in ("channel", "sample_index", "trigger_kind", "records"):
        np.testing.assert_array_equal(cat(small, field), cat(large, field))
    np.testing.assert_array_equal(cat(small, "summaries"), cat(large, "summaries"))


def test_negative_pulses_and_level_trigger() -> None:
    # 2 Hz: no pulse lands on another's tail, where a level trigger cannot re-arm.
    data, truth = pulses(2, 4.0, seed=3, polarity=-1, rate_hz=2.0)
    config = TriggerConfig(
        256,
        64,
        {
            1: ChannelTrigger(polarity=-1, edge_threshold=0.5),
            2: ChannelTrigger(polarity=-1, level=-0.5),
        },
        holdoff=400,
    )
    batches, _ = run(data, config, 5000)
    channel, index, kind = (
        cat(batches, "channel"),
        cat(batches, "sample_index"),
        cat(batches, "trigger_kind"),
    )
    for c, expected_kind in ((1, TriggerKind.EDGE), (2, TriggerKind.LEVEL)):
        t = expected(truth[c - 1], data.shape[1], 64, 192, 400)
        assert (index[channel == c].size, set(kind[channel == c])) == (t.size, {expected_kind})
        # A level crossing at half a 1 keV pulse lags the arrival by at most the rise: 1 sample.
        assert np.abs(np.sort(index[channel == c]) - np.ceil(t * RATE)).max() <= 1
    peaks = cat(batches, "summaries")["peak_value"]
    assert peaks.min() > 0.9  # pulses are reported positive whatever their polarity


def test_summaries_measure_the_pulse() -> None:
    rise, decay, amp, sigma = 20e-6, 400e-6, 2.0, 0.01
    n = int(0.2 * RATE)
    t = np.arange(n) / RATE
    rng = np.random.default_rng(4)
    x = 0.3 + sigma * rng.standard_normal(n)
    arrivals = [0.02, 0.09, 0.15]
    from cryodaq.analysis.pulse_shapes import unit_pulse

    for a in arrivals:
        x += amp * unit_pulse(t - a, rise, decay)
    # The kernel's noise is 2 sigma = 0.02 rms; the pulse's onset gives ~0.8: threshold 0.2.
    config = TriggerConfig(1000, 200, {1: ChannelTrigger(edge_threshold=0.2)})
    batches, _ = run(x[None, :].astype(np.float64), config, 7000)
    s = cat(batches, "summaries")
    assert s.size == 3
    # Pretrigger: baseline 0.3, rms sigma (200 samples: ~5 % scatter of the rms).
    np.testing.assert_allclose(s["pretrig_mean"], 0.3, atol=4 * sigma / np.sqrt(200))
    np.testing.assert_allclose(s["pretrig_rms"], sigma, rtol=0.2)
    np.testing.assert_allclose(s["peak_value"], amp, atol=4 * sigma)
    # 10-90 % rise of a two-exponential pulse, computed from the shape itself (1-sample grid).
    fine = np.arange(0, 200e-6, 1e-8)
    shape = unit_pulse(fine, rise, decay)
    top = fine[np.argmax(shape)]
    rise_1090 = fine[np.argmax(shape >= 0.9)] - fine[np.argmax(shape >= 0.1)]
    assert top > 0
    np.testing.assert_allclose(s["rise_time_s"], rise_1090, atol=1.5 / RATE)
    # Mean excursion over the 800 post-trigger samples equals the pulse's mean over them.
    post = np.arange(800) / RATE
    for row, idx in zip(s, cat(batches, "sample_index"), strict=True):
        offset = idx / RATE - min(arrivals, key=lambda a: abs(a - idx / RATE))
        expected = amp * unit_pulse(post + offset, rise, decay).mean()
        assert row["pulse_average"] == pytest.approx(expected, abs=4 * sigma / np.sqrt(800) + 0.01)


def test_auto_and_external_triggers() -> None:
    data, _ = pulses(2, 1.0, seed=5, rate_hz=0.0)
    config = TriggerConfig(100, 20, {1: ChannelTrigger(auto_period=10_000), 2: ChannelTrigger()})
    ext = [1234, 250_000, 499_950]  # the last has no room for its record
    source = ReplaySource(data, RATE, 3001)
    engine = TriggerEngine(config, source.channels, RATE)
    batches = []
    while (b := source.read()) is not None:
        batches.append(engine.process(b, external={2: ext}))
    channel, index, kind = (cat(batches, f) for f in ("channel", "sample_index", "trigger_kind"))
    auto = index[channel == 1]
    assert set(kind[channel == 1]) == {TriggerKind.AUTO}
    # The first record needs its full pretrigger (20) and one sample of the edge look-back.
    assert np.all(np.diff(auto) == 10_000) and auto[0] == 21 and auto.size == 50
    assert list(index[channel == 2]) == [1234, 250_000]
    assert set(kind[channel == 2]) == {TriggerKind.EXTERNAL}


def test_fanout_records_the_group() -> None:
    data, truth = pulses(3, 1.0, seed=6)
    config = TriggerConfig(256, 64, {1: EDGE}, fanout={1: (2, 3)}, holdoff=200)
    batches, _ = run(data, config, 4096)
    channel, index, kind = (cat(batches, f) for f in ("channel", "sample_index", "trigger_kind"))
    primary = index[channel == 1]
    assert primary.size > 5
    for c in (2, 3):
        np.testing.assert_array_equal(index[channel == c], primary)
        assert set(kind[channel == c]) == {TriggerKind.GROUP}


def test_coincidences_are_flagged_with_their_multiplicity() -> None:
    n = int(2.0 * RATE)
    rng = np.random.default_rng(7)
    data = (0.02 * rng.standard_normal((4, n))).astype(np.float32)
    step = np.concatenate([np.zeros(1), np.exp(-np.arange(400) / 100.0)])
    # Showers: channels 1-3 within 1 us (<= 0 samples apart at 2 us... use 2 samples) ...
    showers = [100_000, 300_001, 500_000 + 4095]  # the last straddles a 4096 block boundary
    for a in showers:
        for c, lag in ((0, 0), (1, 1), (2, 2)):
            data[c, a + lag : a + lag + 401] += step
    lonely = [200_000, 700_000]
    for a in lonely:
        data[3, a : a + 401] += step
    config = TriggerConfig(
        256, 64, {c: ChannelTrigger(edge_threshold=0.5) for c in range(1, 5)}, coincidence_window=3
    )
    batches, _ = run(data, config, 4096)
    channel, index, mult = (cat(batches, f) for f in ("channel", "sample_index", "coincidence"))
    for a in showers:
        hits = (index >= a) & (index <= a + 3)
        assert sorted(channel[hits]) == [1, 2, 3] and set(mult[hits]) == {3}
    assert set(mult[channel == 4]) == {1} and (channel == 4).sum() == 2


def test_gaps_are_recorded_and_cut_records_counted() -> None:
    data, truth = pulses(1, 2.0, seed=8, rate_hz=50.0)
    # 1000 samples go missing at counter 300_000: records touching the gap must vanish.
    batches, engine = run(
        data, TriggerConfig(512, 128, {1: EDGE}, holdoff=400), 5000, gaps=((300_000, 1000),)
    )
    gaps = [g for b in batches for g in b.gaps]
    assert [(g.first, g.stop) for g in gaps] == [(300_000, 301_000)]
    index = cat(batches, "sample_index")
    starts, ends = index - 128, index - 128 + 512
    assert not np.any((starts < 301_000) & (ends > 300_000))  # nothing straddles the gap
    # Counter values after the gap are shifted by 1000 relative to the data array.
    t = expected(truth[0], data.shape[1], 128, 384, 400) * RATE
    before = t[t + 384 <= 300_000]
    after = t[t >= 300_000 + 128] + 1000
    assert index.size == before.size + after.size
    assert sum(b.records_lost_to_gaps for b in batches) == engine.records_lost_to_gaps


def test_bad_configurations_are_refused_with_the_range() -> None:
    with pytest.raises(TriggerConfigError, match="pretrigger must be in 1 .. record_length-1"):
        TriggerEngine(TriggerConfig(100, 100, {}), (1,), RATE)
    with pytest.raises(TriggerConfigError, match="coincidence_window must be in 0 .. "):
        TriggerEngine(TriggerConfig(100, 50, {}, coincidence_window=60), (1,), RATE)
    with pytest.raises(TriggerConfigError, match="channel 9"):
        TriggerEngine(TriggerConfig(100, 50, {9: EDGE}), (1, 2), RATE)
    with pytest.raises(TriggerConfigError, match="polarity"):
        TriggerEngine(TriggerConfig(100, 50, {1: ChannelTrigger(polarity=2)}), (1,), RATE)


def test_both_polarities_on_one_channel() -> None:
    # A double meander: pulses of one pixel positive, of the other negative, on one channel
    # (noise 0.035 each: 0.05 rms summed, as in the other tests).
    pos, t_pos = pulses(1, 4.0, seed=11, rate_hz=3.0, noise=0.035)
    neg, t_neg = pulses(1, 4.0, seed=12, rate_hz=3.0, polarity=-1, noise=0.035)
    data = (pos + neg).astype(np.float32)
    config = TriggerConfig(256, 64, {1: ChannelTrigger(polarity=0, edge_threshold=0.5)})
    batches, _ = run(data, config, 5000)
    index = cat(batches, "sample_index")
    arrivals = np.sort(np.concatenate([t_pos[0], t_neg[0]]))
    t = expected(arrivals, data.shape[1], 64, 192, 256)
    assert index.size == t.size
    assert np.abs(np.sort(index) - np.ceil(t * RATE)).max() <= 1
    summ = cat(batches, "summaries")
    assert summ["peak_value"].min() > 0.9  # each record summarised with its own sign
    records = cat(batches, "records")
    signs = np.sign(records[:, 64:].astype(float).sum(axis=1) - 192 * summ["pretrig_mean"])
    from_pos = np.abs(index[:, None] - np.ceil(t_pos[0] * RATE)[None, :]).min(axis=1) <= 1
    np.testing.assert_array_equal(signs > 0, from_pos)  # each record has its pixel's sign
    with pytest.raises(TriggerConfigError, match="level"):
        config = TriggerConfig(100, 50, {1: ChannelTrigger(polarity=0, level=1.0)})
        TriggerEngine(config, (1,), RATE)
