"""The compiled per-record kernels (`analysis.record_apply`) against the NumPy formulations the
pipelines used before them (kept here as references), and the run-store reader's direct chunk
path against Zarr's own reader."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import zarr

from cryodaq.acquisition.events import SUMMARY_DTYPE, EventBatch, TriggerKind
from cryodaq.acquisition.pipelines import pulses_channel
from cryodaq.acquisition.store.chunk_reader import read_rows
from cryodaq.acquisition.store.reader import RunReader
from cryodaq.acquisition.store.writer import RunStore
from cryodaq.analysis import record_apply as ra
from cryodaq.analysis.arrival_phase import rising_phase
from cryodaq.analysis.optimal_filter import average_pulse, noise_psd, optimal_filter
from cryodaq.analysis.record_cuts import noise_record_stats, rise_after_peak

L, PRE, FS = 512, 128, 1e6
RISE_S, DECAY_S = 3e-6, 60e-6
NOISE = 4.0  # ADC units rms, white


def pulse(t_s: np.ndarray) -> np.ndarray:
    """Two-exponential pulse of unit peak height's scale (zero before the arrival)."""
    t = np.clip(t_s, 0.0, None)
    return np.where(t_s > 0, np.exp(-t / DECAY_S) - np.exp(-t / RISE_S), 0.0)


def records(
    n: int, sign: float, seed: int, pileup: int = 10
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """int16 records of pulses (heights 200-2000 units, arrival phase uniform in a sample) on
    a baseline of 1000 units with white noise; `pileup` of them carry a second pulse; the
    injected heights (peak of the pulse shape times the height factor) and arrival phases
    (samples after the pretrigger)."""
    rng = np.random.default_rng(seed)
    t = (np.arange(L) - PRE) / FS
    height = rng.uniform(200.0, 2000.0, n)
    phase = rng.uniform(0.0, 1.0, n) / FS
    x = height[:, None] * pulse(t[None, :] - phase[:, None])
    x[:pileup] += 0.7 * height[:pileup, None] * pulse(t[None, :] - 150e-6)
    x = 1000.0 + sign * x + rng.normal(0.0, NOISE, (n, L))
    peak = pulse(np.linspace(0, 5 * DECAY_S, 20001)).max()
    return np.round(x).astype(np.int16), height * peak, phase * FS


def half_height_time() -> float:
    """Time (samples) from the arrival until the pulse shape first reaches half its peak."""
    t = np.linspace(0.0, 5 * DECAY_S, 500001)
    p = pulse(t)
    return float(t[np.argmax(p >= 0.5 * p.max())] * FS)


# The NumPy formulations of the pipelines before the kernels (references).
def ref_noise_stats(r: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    x = r.astype(np.float64)
    x = x - x.mean(axis=1, keepdims=True)
    return np.sqrt((x * x).mean(axis=1)), np.abs(x).max(axis=1)


def ref_rise_after_peak(r: np.ndarray, sign: float) -> np.ndarray:
    x = sign * r.astype(np.float64)
    steps = np.diff(x, axis=1)
    after = np.arange(steps.shape[1])[None, :] >= np.argmax(x, axis=1)[:, None]
    return np.where(after, steps, -np.inf).max(axis=1)


def ref_residual(r: np.ndarray, template: np.ndarray) -> np.ndarray:
    x = r.astype(np.float64)
    x -= x[:, :PRE].mean(axis=1, keepdims=True)
    resid = x - np.outer(x @ template / (template @ template), template)
    return np.sqrt((resid**2).mean(axis=1))


def ref_phase(r: np.ndarray, sign: float) -> np.ndarray:
    x = sign * r.astype(np.float64)
    x = x - x[:, :PRE].mean(axis=1, keepdims=True)
    half = 0.5 * x[:, PRE:].max(axis=1)
    i = np.argmax(x[:, PRE:] >= half[:, None], axis=1) + PRE
    rows = np.arange(x.shape[0])
    lo, hi = x[rows, i - 1], x[rows, i]
    return i - 1 + np.clip((half - lo) / np.where(hi > lo, hi - lo, np.inf), 0.0, 1.0)


def ref_average(r: np.ndarray, max_shift: int = 3) -> tuple[np.ndarray, np.ndarray]:
    x = r.astype(np.float64)
    x -= x[:, :PRE].mean(axis=1, keepdims=True)
    sign = 1.0 if np.median(x[:, PRE:].mean(axis=1)) >= 0 else -1.0
    seg = sign * x[:, PRE - max_shift :]
    above = seg >= 0.5 * seg.max(axis=1, keepdims=True)
    edge = np.where(above.any(axis=1) & (seg.max(axis=1) > 0), np.argmax(above, axis=1), -1)
    ok = edge >= 0
    keep = ok & (np.abs(edge - np.median(edge[ok])) <= max_shift)
    avg = x[keep].mean(axis=0)
    return avg / np.max(sign * avg), keep


@pytest.fixture(scope="module", params=[1.0, -1.0], ids=["positive", "negative"])
def data(request: pytest.FixtureRequest) -> dict[str, object]:
    sign = request.param
    rec, heights, phases = records(400, sign, seed=11 if sign > 0 else 12)
    noise = np.round(1000.0 + np.random.default_rng(5).normal(0, NOISE, (300, L))).astype(np.int16)
    avg = average_pulse(rec[10:], PRE, FS)
    filt = optimal_filter(avg.template, noise_psd(noise, FS))
    return {"sign": sign, "rec": rec, "heights": heights, "phases": phases, "noise": noise,
            "avg": avg, "filt": filt}  # fmt: skip


@pytest.mark.parametrize("scale", [None, 0.37], ids=["int16", "float64"])
def test_kernels_equal_the_numpy_formulations(data: dict, scale: float | None) -> None:
    sign, filt, avg = data["sign"], data["filt"], data["avg"]
    rec = data["rec"] if scale is None else data["rec"] * scale
    feat = ra.record_features(rec, filt.weights, avg.template, PRE, sign)
    x = rec.astype(np.float64)
    # Sums in another order: equal to ~1e-15 of the sum of |terms|.
    amp_ref = x @ filt.weights
    for got in (feat.amplitude, filt.apply(rec), ra.amplitudes(rec, filt.weights)):
        assert np.max(np.abs(got - amp_ref) / (np.abs(x) @ np.abs(filt.weights))) < 1e-13
    np.testing.assert_allclose(feat.baseline, x[:, :PRE].mean(axis=1), rtol=1e-13)
    rms, dev = ref_noise_stats(rec)
    for got in (feat, noise_record_stats(rec)):
        got_rms, got_dev = (got.rms, got.max_dev) if hasattr(got, "rms") else got
        np.testing.assert_allclose(got_rms, rms, rtol=1e-10)
        np.testing.assert_allclose(got_dev, dev, rtol=1e-10)
    # Differences of stored values and comparisons: exact.
    assert np.array_equal(feat.rise_after_peak, ref_rise_after_peak(rec, sign))
    assert np.array_equal(rise_after_peak(rec, sign), ref_rise_after_peak(rec, sign))
    np.testing.assert_allclose(feat.phase, ref_phase(rec, sign), rtol=0, atol=1e-9)
    np.testing.assert_allclose(rising_phase(rec, PRE, sign), ref_phase(rec, sign), atol=1e-9)
    # The one-pass residual takes the template's share by sums over the raw record.
    s = 1.0 if scale is None else scale
    np.testing.assert_allclose(feat.residual, ref_residual(rec, avg.template), rtol=1e-9,
                               atol=1e-12 * s)  # fmt: skip
    base = ra.row_means(rec, 0, PRE)
    np.testing.assert_allclose(ra.template_residuals(rec, base, avg.template),
                               ref_residual(rec, avg.template), rtol=1e-12)  # fmt: skip


def test_average_pulse_equals_the_numpy_formulation(data: dict) -> None:
    rec = data["rec"][10:]
    template, used = ref_average(rec)
    avg = average_pulse(rec, PRE, FS)
    assert np.array_equal(avg.used, used)
    np.testing.assert_allclose(avg.template, template, rtol=0, atol=1e-13)
    assert avg.sign == data["sign"]


def test_features_recover_the_physics(data: dict) -> None:
    """Filtered heights of the clean pulses are the injected ones within the filter's noise
    (and the template's bias); pile-up stands out in the rise after the peak and the residual;
    the half-height crossing is the injected arrival plus the pulse shape's time to half
    height, to a fraction of a sample (a kernel a sample early or late fails)."""
    sign, filt, avg = data["sign"], data["filt"], data["avg"]
    feat = ra.record_features(data["rec"], filt.weights, avg.template, PRE, sign)
    clean = slice(10, None)
    gain = np.median(feat.amplitude[clean] / data["heights"][clean])
    spread = feat.amplitude[clean] - gain * data["heights"][clean]
    # the average pulse's sampled peak vs the shape's: 1 us samples on a 9 us wide top, and
    # arrival phases averaged: ~0.06 % low
    assert abs(gain - 1.0) < 0.005
    assert np.std(spread) < 1.5 * filt.predicted_sigma
    assert np.all(np.abs(feat.baseline - 1000.0) < 5 * NOISE / np.sqrt(PRE) + 0.5)
    assert feat.residual[:10].min() > np.max(feat.residual[clean])
    assert feat.rise_after_peak[:10].min() > np.max(feat.rise_after_peak[clean])
    # Bias of the linear interpolation on the concave rise and of the noisy peak: ~0.04
    # sample; noise on the crossing ~0.04 sample rms (0.15 at the lowest heights): a record
    # a whole sample off stands out.
    late = feat.phase[clean] - (PRE + data["phases"][clean] + half_height_time())
    assert abs(np.median(late)) < 0.1 and np.std(late) < 0.1 and np.max(np.abs(late)) < 0.75
    n = ra.noise_stats(data["noise"])[0]
    assert abs(np.median(n) - NOISE) < 0.1 * NOISE


@pytest.mark.parametrize("sign", [1.0, -1.0], ids=["positive", "negative"])
def test_kernels_pin_every_sample_index(sign: float) -> None:
    """Records worked by hand, whose answers move if a kernel starts or ends a sample early or
    late: a peak whose largest later step is the one leaving it, a second equal peak after a
    rise (the first peak counts), a half-height crossing on the first sample after the
    pretrigger and one between two samples."""
    pre = 2  # the third record's baseline is 3: its rise 0, its half height 3 at sample 3
    shapes = np.array([[0, 0, 10, 9, 7, 4, 2, 0],  # rise: step leaving the peak, -1
                       [0, 0, 4, 10, 3, 10, 9, 8],  # first peak at 3: rise 7
                       [2, 4, 3, 9, 8, 8, 8, 0]])  # fmt: skip
    records = (100 + sign * shapes).astype(np.int16)
    base = np.array([0.0, 0.0, 3.0])
    rise = np.array([-1.0, 7.0, 0.0])
    # Crossing at sample i between lo (i - 1) and hi (i), relative to the baseline, half h:
    # i - 1 + (h - lo) / (hi - lo).
    phase = np.array([1 + (5 - 0) / 10, 2 + (5 - 4) / 6, 2 + (3 - 0) / 6])
    template = np.linspace(1.0, 0.2, 8)
    feat = ra.record_features(records, np.ones(8), template, pre, sign)
    for got in (feat.baseline, ra.row_means(records, 0, pre)):
        np.testing.assert_allclose(got, 100 + sign * base, rtol=1e-15)
    for got in (feat.rise_after_peak, ra.rises_after_peak(records, sign),
                ref_rise_after_peak(records, sign)):  # fmt: skip
        assert np.array_equal(got, rise)
    for got in (feat.phase, ra.rising_phases(records, pre, sign)):
        np.testing.assert_allclose(got, phase, rtol=0, atol=1e-12)
    assert np.array_equal(feat.amplitude, records.sum(axis=1).astype(np.float64))


@pytest.mark.parametrize("sign", [1.0, -1.0], ids=["positive", "negative"])
def test_a_slow_rise_crosses_half_height_blocks_later(sign: float) -> None:
    """A ramp 3 units a sample from the pretrigger (10) to the end (299): half height 433.5
    between samples 154 (432) and 155 (435), two scan blocks past the pretrigger; the peak is
    the last sample, so nothing rises after it."""
    pre, ramp = 10, 3 * np.clip(np.arange(300) - 10, 0, None)
    records = (100 + sign * np.stack([ramp, ramp])).astype(np.int16)
    base = np.full(2, 100.0)
    assert np.array_equal(ra.rising_edges(records, base, sign, 0), [155, 155])
    assert np.array_equal(ra.rising_edges(records, base, sign, 200), [200, 200])  # above already
    feat = ra.record_features(records, np.ones(300), np.ones(300), pre, sign)
    for got in (feat.phase, ra.rising_phases(records, pre, sign)):
        np.testing.assert_allclose(got, 154.5, rtol=0, atol=1e-12)
    assert np.all(feat.rise_after_peak == -np.inf)


def test_kernels_refuse_bad_shapes() -> None:
    with pytest.raises(ValueError, match="records must be"):
        ra.amplitudes(np.zeros(5), np.zeros(5))
    with pytest.raises(ValueError, match="records must be"):
        ra.noise_stats(np.zeros((3, 0)))  # the kernels read a record's first sample
    with pytest.raises(ValueError, match="weights must have 8 samples"):
        ra.amplitudes(np.zeros((2, 8)), np.zeros(7))
    with pytest.raises(ValueError, match="pretrigger must be"):
        ra.record_features(np.zeros((2, 8)), np.zeros(8), np.ones(8), 7, 1.0)
    with pytest.raises(ValueError, match=r"base must have one value per record \(2\)"):
        ra.template_residuals(np.zeros((2, 8)), np.zeros(1), np.ones(8))
    with pytest.raises(ValueError, match="keep must have one value per record"):
        ra.baseline_subtracted_sum(np.zeros((2, 8)), np.zeros(2), np.ones(3, bool))
    with pytest.raises(ValueError, match="start must be in 0 .. 7"):
        ra.rising_edges(np.zeros((2, 8)), np.zeros(2), 1.0, 8)


def write_run(
    path: Path, compress: bool, kinds: dict[str, np.ndarray] | None = None
) -> tuple[RunReader, np.ndarray]:
    """A run of 5000 random int16 records of channel 1 in acquisition "a" (edge triggers), or
    in the acquisitions of `kinds` with those trigger kinds (records numbered across them)."""
    rng = np.random.default_rng(3)
    rec = rng.integers(-3000, 3000, (5000, 96)).astype(np.int16)
    kinds = kinds or {"a": np.full(5000, TriggerKind.EDGE, np.uint8)}
    with RunStore.create(path, compress_records=compress) as run:
        done = 0
        for name, kind in kinds.items():
            acq = run.acquisition(name, [1], 96, np.int16, 1e5, 10)
            for first in range(0, kind.size, 777):
                n = min(777, kind.size - first)
                si = np.arange(first, first + n, dtype=np.int64) * 100
                acq.append(EventBatch(
                    name, 1e5, int(si[0]), int(si[-1]) + 96, 10, np.ones(n, np.int32), si,
                    si + 7, kind[first : first + n], np.ones(n, np.uint16),
                    rec[done + first : done + first + n], np.zeros(n, SUMMARY_DTYPE),
                ))  # fmt: skip
            done += kind.size
            acq.close()
    return RunReader(path), rec


@pytest.mark.parametrize("compress", [True, False], ids=["zstd", "raw"])
def test_reader_reads_chunks_as_zarr_does(tmp_path: Path, compress: bool) -> None:
    reader, rec = write_run(tmp_path / "run", compress)
    for field in ("records", "sample_index", "timestamp_ns", "trigger_kind", "peak_value"):
        path = reader._array_path("a", 1, field)
        whole = np.asarray(zarr.open_array(store=str(path), mode="r")[:5000])
        for start, stop in ((0, 5000), (1, 4097), (4095, 4096), (333, 333), (4999, 5000)):
            got = read_rows(path, start, stop)
            assert got is not None and got.dtype == whole.dtype
            assert np.array_equal(got, whole[start:stop])
    assert np.array_equal(reader.read("a", 1, ["records"])["records"], rec)
    blocks = list(reader.iter_rows("a", 1, ["records", "sample_index"], rows=1000, start=10))
    assert [first for first, _ in blocks] == [10, 1010, 2010, 3010, 4010]
    assert np.array_equal(np.concatenate([b["records"] for _, b in blocks]), rec[10:])


def test_reader_leaves_other_layouts_to_zarr(tmp_path: Path) -> None:
    arr = zarr.create_array(store=str(tmp_path / "gz"), shape=(10, 4), chunks=(3, 4),
                            dtype="int16", compressors=[zarr.codecs.GzipCodec()])  # fmt: skip
    arr[:] = np.arange(40, dtype=np.int16).reshape(10, 4)
    assert read_rows(tmp_path / "gz", 0, 10) is None
    sparse = zarr.create_array(store=str(tmp_path / "fill"), shape=(10,), chunks=(3,),
                               dtype="int64", fill_value=-1, compressors=None)  # fmt: skip
    sparse[:3] = 5
    assert read_rows(tmp_path / "fill", 0, 10) is None  # a chunk never written: a fill value


def test_read_stream_sorts_records_across_blocks_and_parts(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The pulses pipeline's block-wise reader gives each part's edge and auto records, in
    order, as selecting them from the whole arrays does (blocks of 97 rows: many boundaries)."""
    rng = np.random.default_rng(8)
    kinds = {name: rng.choice([TriggerKind.EDGE, TriggerKind.AUTO, TriggerKind.LEVEL], size=n)
             .astype(np.uint8) for name, n in (("a", 3000), ("a.1", 2000))}  # fmt: skip
    reader, rec = write_run(tmp_path / "run", True, kinds)
    monkeypatch.setattr(pulses_channel, "BLOCK_ROWS", 97)
    stream = pulses_channel.read_stream(reader, ["a", "a.1"], 1)
    kind = np.concatenate(list(kinds.values()))
    assert np.array_equal(stream.pulses, rec[kind == TriggerKind.EDGE])
    assert np.array_equal(stream.noise, rec[kind == TriggerKind.AUTO])
    assert stream.edge_triggers == int(np.sum(kind == TriggerKind.EDGE))
    for got, k in zip(stream.pulse_at, kinds.values(), strict=True):
        assert np.array_equal(got, 100 * np.flatnonzero(k == TriggerKind.EDGE))
