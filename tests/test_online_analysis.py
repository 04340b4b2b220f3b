"""Online analysis: a stored filter and calibration recover the energies pulses were made with."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from cryodaq.acquisition.events import SUMMARY_DTYPE, EventBatch, TriggerKind
from cryodaq.acquisition.stream.online_analysis import (
    ChannelFilter,
    OnlineAnalysisSink,
    StoredFilter,
    StoredFilterError,
)
from cryodaq.acquisition.stream.sinks import Fanout, SinkError
from cryodaq.analysis.online_filter import calibrate, filter_amplitudes, matched_filter_weights
from cryodaq.analysis.pulse_shapes import unit_pulse

FS = 1e5
LENGTH, PRETRIG = 256, 64
NOISE_ADU = 5.0  # white noise rms per sample
TEMPLATE = unit_pulse((np.arange(LENGTH) - PRETRIG) / FS, 20e-6, 300e-6)
WEIGHTS = matched_filter_weights(TEMPLATE)
# amplitude (ADU) -> eV, numpy order: ch 1 slightly non-linear, ch 2 (negative pulses) linear
CAL = {1: np.array([1e-4, 2.5, 0.0]), 2: np.array([3.0, 5.0])}
POLARITY = {1: 1.0, 2: -1.0}
BASELINE = {1: 1000.0, 2: 30000.0}
LINES_EV = (5898.75, 6490.45)  # Mn K-alpha, K-beta


def amplitude_for(ch: int, energy: np.ndarray) -> np.ndarray:
    """Invert the calibration polynomial of `ch` (quadratic or linear)."""
    c = CAL[ch]
    if c.size == 3:
        a2, a1, a0 = c
        return (-a1 + np.sqrt(a1**2 - 4 * a2 * (a0 - energy))) / (2 * a2)
    return (energy - c[1]) / c[0]


def make_batch(
    channel: np.ndarray,
    records: np.ndarray,
    *,
    first: int = 0,
    kind: np.ndarray | int = TriggerKind.EDGE,
) -> EventBatch:
    """A batch of the given raw records, one per 1000 samples from `first`, with summaries."""
    n = channel.size
    idx = first + PRETRIG + 1000 * np.arange(n, dtype=np.int64)
    summaries = np.zeros(n, SUMMARY_DTYPE)
    summaries["pretrig_mean"] = records[:, :PRETRIG].mean(axis=1)
    return EventBatch(
        acquisition="online-test",
        sample_rate_hz=FS,
        block_first_sample=first,
        block_samples=1000 * max(n, 1),
        pretrigger=PRETRIG,
        channel=channel.astype(np.int32),
        sample_index=idx,
        timestamp_ns=(idx * 1e4).astype(np.int64),
        trigger_kind=np.broadcast_to(np.asarray(kind, np.uint8), (n,)).copy(),
        coincidence=np.ones(n, np.uint16),
        records=records,
        summaries=summaries,
    )


def pulses(
    channel: np.ndarray, energy: np.ndarray, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """int16 records of template x amplitude(energy) on a drifting baseline, plus noise."""
    amp = np.zeros(channel.size)
    rec = np.empty((channel.size, LENGTH))
    for ch in (1, 2):
        sel = channel == ch
        amp[sel] = amplitude_for(ch, energy[sel])
        base = BASELINE[ch] + rng.uniform(-50, 50, sel.sum())[:, None]
        rec[sel] = base + POLARITY[ch] * amp[sel, None] * TEMPLATE
    rec += rng.normal(0, NOISE_ADU, rec.shape)
    return np.round(rec).astype(np.int16), amp


def stored_filter() -> StoredFilter:
    return StoredFilter({ch: ChannelFilter(WEIGHTS, CAL[ch], POLARITY[ch]) for ch in (1, 2)})


def test_filter_amplitudes_is_exact_without_noise() -> None:
    rng = np.random.default_rng(0)
    amp, base = rng.uniform(10, 3000, 40), rng.uniform(-500, 500, 40)
    rec = base[:, None] + amp[:, None] * TEMPLATE
    assert float(WEIGHTS @ TEMPLATE) == pytest.approx(1.0)
    got = filter_amplitudes(rec, rec[:, :PRETRIG].mean(axis=1), WEIGHTS)
    np.testing.assert_allclose(got, amp, rtol=1e-12)
    assert calibrate(np.array([2.0]), [1.0, 2.0, 3.0]) == pytest.approx(11.0)
    with pytest.raises(ValueError, match="weights have shape"):
        filter_amplitudes(rec, base, WEIGHTS[:-1])
    with pytest.raises(ValueError, match="pretrig_mean has shape"):
        filter_amplitudes(rec, base[:-1], WEIGHTS)
    assert filter_amplitudes(rec[:0], base[:0], WEIGHTS).shape == (0,)


def test_sink_recovers_energies_and_fills_the_spectrum() -> None:
    rng = np.random.default_rng(42)
    n_batches, per_batch = 25, 120
    edges = np.arange(-100.0, 10000.0 + 1, 5.0)
    sink = OnlineAnalysisSink(stored_filter(), edges)
    truth: dict[int, list[np.ndarray]] = {1: [], 2: []}
    amps: dict[int, list[np.ndarray]] = {1: [], 2: []}
    n_autos = {1: 0, 2: 0}
    n_over, n_unfiltered = 0, 0
    for b in range(n_batches):
        ch = rng.choice([1, 2, 7], per_batch, p=[0.6, 0.35, 0.05])
        energy = rng.choice(LINES_EV, per_batch, p=[0.88, 0.12])
        kind = np.full(per_batch, TriggerKind.EDGE)
        energy[:4], kind[:4] = 0.0, TriggerKind.AUTO  # noise records: zero energy
        energy[4:6] = 12_000.0  # above the last bin edge
        rec, amp = pulses(np.where(ch == 7, 1, ch), energy, rng)
        sink.consume(make_batch(ch, rec, first=b * 10**6, kind=kind))
        for c in (1, 2):
            sel = (ch == c) & (energy > 0)
            truth[c].append(energy[sel])
            amps[c].append(amp[sel])
            n_autos[c] += int(np.count_nonzero((ch == c) & (energy == 0)))
        n_over += int(np.count_nonzero((ch != 7) & (energy == 12_000.0)))
        n_unfiltered += int(np.count_nonzero(ch == 7))
    # expected amplitude noise: white noise (+ int16 rounding) through w, and through the
    # pretrigger mean times sum(w); the pretrigger part of w is zero, so no cross term
    sigma = np.hypot(NOISE_ADU, np.sqrt(1 / 12))
    sigma_a = sigma * np.sqrt(WEIGHTS @ WEIGHTS + WEIGHTS.sum() ** 2 / PRETRIG)
    for c in (1, 2):
        live = sink.energies(c)
        live = live[live["energy_ev"] > 1000]  # pulses only
        e_true, a_true = np.concatenate(truth[c]), np.concatenate(amps[c])
        in_range = e_true < 10_000
        got_e, got_a = live["energy_ev"], live["amplitude"]
        resid_a = got_a - a_true
        slope = np.polyval(np.polyder(CAL[c]), a_true)
        assert np.all(np.abs(got_e - e_true) < 5 * slope * sigma_a)
        assert resid_a.std() == pytest.approx(sigma_a, rel=0.1)
        assert abs(resid_a.mean()) < 4 * sigma_a / np.sqrt(resid_a.size)
        spec = sink.spectrum(c)
        ka = (spec.edges_ev[:-1] >= 5850) & (spec.edges_ev[1:] <= 5950)
        kb = (spec.edges_ev[:-1] >= 6440) & (spec.edges_ev[1:] <= 6540)
        zero = (spec.edges_ev[:-1] >= -100) & (spec.edges_ev[1:] <= 100)
        assert spec.counts[ka].sum() == np.count_nonzero(e_true == LINES_EV[0])
        assert spec.counts[kb].sum() == np.count_nonzero(e_true == LINES_EV[1])
        assert spec.counts[zero].sum() == n_autos[c]
        assert spec.counts.sum() == np.count_nonzero(in_range) + n_autos[c]
        assert spec.underflow == 0 and spec.invalid == 0
    total = sink.spectrum()
    np.testing.assert_array_equal(total.counts, sink.spectrum(1).counts + sink.spectrum(2).counts)
    assert total.overflow == n_over
    snap = sink.snapshot()
    assert snap["unfiltered"] == {7: n_unfiltered}
    assert sum(snap["analysed"].values()) == total.total
    assert total.total + n_unfiltered == n_batches * per_batch


def test_kinds_select_what_enters_the_spectrum_and_the_rest_is_counted() -> None:
    rng = np.random.default_rng(3)
    ch = np.ones(50, int)
    energy = np.full(50, LINES_EV[0])
    energy[:10] = 0.0
    rec, _ = pulses(ch, energy, rng)
    kind = np.where(energy == 0, TriggerKind.AUTO, TriggerKind.EDGE)
    sink = OnlineAnalysisSink(stored_filter(), np.linspace(-100, 10000, 2021), kinds=[1])
    sink.consume(make_batch(ch, rec, kind=kind))
    assert sink.spectrum(1).total == 40 and sink.snapshot()["skipped_kind"] == 10
    assert np.all(np.abs(sink.energies(1)["energy_ev"] - LINES_EV[0]) < 30)


def test_energies_keep_the_most_recent_records() -> None:
    rng = np.random.default_rng(4)
    sink = OnlineAnalysisSink(stored_filter(), np.linspace(0, 1e4, 11), keep_last=100)
    for b in range(10):
        ch = np.ones(30, int)
        rec, _ = pulses(ch, np.full(30, 2000.0), rng)
        sink.consume(make_batch(ch, rec, first=b * 10**6))
    kept = sink.energies(1)
    assert 100 <= kept.size < 130
    assert kept["sample_index"][-1] == 9 * 10**6 + PRETRIG + 1000 * 29
    assert np.all(np.diff(kept["sample_index"]) > 0)
    assert sink.spectrum(1).total == 300


def test_stored_filter_round_trip(tmp_path: Path) -> None:
    rng = np.random.default_rng(8)
    ch = rng.choice([1, 2], 200)
    rec, _ = pulses(ch, rng.choice(LINES_EV, 200), rng)
    batch = make_batch(ch, rec)
    path = stored_filter().save(tmp_path / "mn.filter")  # no .npz suffix appended
    assert path == tmp_path / "mn.filter" and path.exists()
    loaded = StoredFilter.load(path, channels=[2, 1])
    for c in (1, 2):
        np.testing.assert_array_equal(loaded.filters[c].weights, WEIGHTS)
        np.testing.assert_array_equal(loaded.filters[c].calibration, CAL[c])
        assert loaded.filters[c].polarity == POLARITY[c]
    edges = np.linspace(0, 1e4, 101)
    a, b = OnlineAnalysisSink(stored_filter(), edges), OnlineAnalysisSink(loaded, edges)
    a.consume(batch)
    b.consume(batch)
    for c in (1, 2):
        np.testing.assert_array_equal(a.energies(c), b.energies(c))
    assert set(StoredFilter.load(path, channels=[2]).filters) == {2}


def test_stored_filter_errors_name_the_file(tmp_path: Path) -> None:
    path = stored_filter().save(tmp_path / "two.npz")
    with pytest.raises(StoredFilterError, match=r"two\.npz: no filter for channel\(s\) \[3\]"):
        StoredFilter.load(path, channels=[1, 3])
    with pytest.raises(StoredFilterError, match=r"absent\.npz: no such file"):
        StoredFilter.load(tmp_path / "absent.npz")
    junk = tmp_path / "junk.npz"
    junk.write_bytes(b"this is not a zip archive")
    with pytest.raises(StoredFilterError, match=r"junk\.npz: not a readable"):
        StoredFilter.load(junk)
    bare = tmp_path / "bare.npy"
    np.save(bare, WEIGHTS)
    with pytest.raises(StoredFilterError, match=r"bare\.npy: holds a single \.npy array"):
        StoredFilter.load(bare)
    partial = tmp_path / "partial.npz"
    np.savez(partial, format=1, channels=[1, 2], polarity=[1.0, -1.0], weights_1=WEIGHTS,
             calibration_1=CAL[1], weights_2=WEIGHTS)  # fmt: skip
    with pytest.raises(StoredFilterError, match=r"partial\.npz: has no array 'calibration_2'"):
        StoredFilter.load(partial)
    with pytest.raises(StoredFilterError, match=r"cannot write"):
        stored_filter().save(tmp_path / "no-dir" / "f.npz")


def test_bad_filters_and_mismatched_records_are_rejected() -> None:
    with pytest.raises(ValueError, match="polarity must be"):
        ChannelFilter(WEIGHTS, CAL[1], 0.5)
    with pytest.raises(ValueError, match="weights must be"):
        ChannelFilter(np.array([np.nan, 1.0]))
    with pytest.raises(ValueError, match="strictly increasing"):
        OnlineAnalysisSink(stored_filter(), np.array([1.0, 1.0, 2.0]))
    rng = np.random.default_rng(1)
    rec, _ = pulses(np.ones(3, int), np.full(3, 1000.0), rng)
    batch = make_batch(np.ones(3, int), rec)
    short = replace(batch, records=rec[:, :200])
    fan = Fanout()
    fan.subscribe("online", OnlineAnalysisSink(stored_filter(), np.linspace(0, 1e4, 11)))
    fan.publish(short)
    with pytest.raises(SinkError, match="'online'.*channel 1: records have 200 samples"):
        fan.close(5.0)
