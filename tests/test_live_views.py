"""What the live view makes of a run's files besides the run store: the haloscope model fitted to
the latest power spectrum, the resonator sweep's tones, the thermometry log read as it grows;
and what it reads of a growing run store: rates, a stopped channel, a noise jump, spectra."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from cryodaq.acquisition.events import SUMMARY_DTYPE, EventBatch, TriggerKind
from cryodaq.acquisition.live.acquisition_view import AcquisitionView
from cryodaq.acquisition.live.instruments_view import DataFiles, Thermometry, step_temperatures
from cryodaq.acquisition.store.reader import RunReader
from cryodaq.acquisition.store.writer import RunStore
from cryodaq.analysis.cavity import Cavity, line_reflection, transmission_power


def _save(run: Path, name: str, attrs: dict, **arrays: np.ndarray) -> None:
    (run / "data").mkdir(exist_ok=True)
    np.savez(run / "data" / f"{name}.npz", **arrays)
    (run / "data" / f"{name}.json").write_text(json.dumps(attrs))


@pytest.mark.parametrize(("fc", "k0", "ke"), [(5.31e9, 2.0e5, 3.5e5), (7.02e9, 6.0e5, 2.0e5)])
def test_haloscope_model_recovers_level_and_cavity_power(tmp_path: Path, fc, k0, ke) -> None:
    rng = np.random.default_rng(3)
    cavity = Cavity(kappa0_Hz=k0, kappae_Hz=ke, fc_Hz=fc)
    f = np.linspace(fc - 4e6, fc + 4e6, 1601)
    s11 = line_reflection(f, cavity, 0.8 - 0.3j, 2e-8, fc)
    _save(tmp_path, "s11", {}, frequencies_Hz=f, s11=s11 + 1e-4 * rng.standard_normal(f.size))
    level, bump, bin_width = 2.0e-10, 6.0e-12, 1e3
    fs = np.linspace(fc - 2e6, fc + 2e6, 4001)
    power = level + bump * transmission_power(fs, cavity, bin_width)
    # a 1 kHz bin integrated for 5 min: relative scatter 1/sqrt(300 s x 1 kHz)
    noisy = power * (1 + rng.standard_normal(fs.size) / np.sqrt(300 * bin_width))
    _save(tmp_path, "spec", {"bin_width_Hz": bin_width}, frequencies_Hz=fs, power_W=noisy)
    view = DataFiles(tmp_path).haloscope()
    assert view["name"] == "spec"
    assert view["level_W"] == pytest.approx(level, rel=1e-3)
    assert view["cavity_W"] == pytest.approx(bump, rel=0.03)
    assert np.abs(np.array(view["model"]) - power).max() < 0.01 * bump
    assert DataFiles(tmp_path).umux() is None


def test_haloscope_without_reflection_says_so(tmp_path: Path) -> None:
    _save(tmp_path, "spec", {}, frequencies_Hz=np.arange(10.0), power_W=np.ones(10))
    view = DataFiles(tmp_path).haloscope()
    assert view["model"] is None and "no reflection sweep" in view["model_note"]
    assert DataFiles(tmp_path / "elsewhere").haloscope() is None


def test_umux_sweep_and_tones(tmp_path: Path) -> None:
    f = np.linspace(-250e6, 250e6, 1001)
    s21 = np.where(np.abs(f - 12e6) < 1e5, 0.1, 1.0) + 0j
    _save(tmp_path, "tune", {}, baseband_hz=f, s21=s21, dips_hz=np.array([12e6]),
          tones_hz=np.array([12.003e6]))  # fmt: skip
    view = DataFiles(tmp_path).umux()
    assert view["tones_Hz"] == [12.003e6]
    assert min(view["s21_dB"]) == pytest.approx(-20.0) and max(view["s21_dB"]) == 0.0


def test_thermometry_log_read_as_it_grows(tmp_path: Path) -> None:
    (tmp_path / "data").mkdir()
    log = tmp_path / "data" / "thermometry.jsonl"
    lines = [
        {"t_s": 1.0, "sensor": "tc.1", "K": 0.0195, "target_K": 0.02, "heater_W": {"tc.0": 1e-8}},
        {"t_s": 2.0, "sensor": "tc.1", "K": None, "target_K": 0.02, "heater_W": {}},
        {"t_s": 3.0, "sensor": "tc.1", "K": 0.0199, "target_K": 0.02, "heater_W": {"tc.0": 2e-8}},
    ]
    text = "".join(json.dumps(e) + "\n" for e in lines)
    cut = len(text) - 20
    log.write_text(text[:cut])  # the last line is still being written
    thermometry = Thermometry(tmp_path)
    thermometry.look()
    steps = step_temperatures([
        {"kind": "set", "virtual_time_s": 0.0,
         "result": {"set": {"tc.outputs.0.setpoint": "20 mK"}}},
        {"kind": "wait_stable", "virtual_time_s": 5.0,
         "result": {"sensor": "tc.1", "reading_K": 0.0199, "target_K": 0.02}},
        {"kind": "spectrum", "virtual_time_s": 7.0, "result": {"temperatures_K": {"tc.2": 0.1}}},
    ])  # fmt: skip
    assert steps["setpoints"]["tc.outputs.0"] == [[0.0, pytest.approx(0.02)]]
    merged = thermometry.merged(steps)
    assert merged["readings"]["tc.1"] == [[1.0, 0.0195]]  # the log's, not the step's
    assert merged["readings"]["tc.2"] == [[12.0, 0.1]]  # the step's: the log lacks it
    with log.open("a") as f:
        f.write(text[cut:])
    thermometry.look()
    merged = thermometry.merged(steps)
    assert merged["readings"]["tc.1"] == [[1.0, 0.0195], [3.0, 0.0199]]
    assert merged["heaters"]["tc.0"] == [[1.0, 1e-8], [3.0, 2e-8]]
    assert [p[0] for p in merged["setpoints"]["tc.1"]] == [1.0, 2.0, 3.0]


RATE, LENGTH, PRE = 10_000.0, 64, 16


def _batch(first: int, rng: np.random.Generator, stopped: bool, noise_jump: bool) -> EventBatch:
    """One second of stream: channel 1 pulses at ~20 Hz, channel 2 too unless `stopped`,
    channel 3 too with its noise x3 if `noise_jump`; every channel a noise record each 0.1 s."""
    rows = []
    for ch in (1, 2, 3):
        n = 0 if (ch == 2 and stopped) else rng.poisson(20)
        pulses = np.sort(rng.integers(first, first + int(RATE), n))
        autos = np.arange(first, first + int(RATE), int(RATE) // 10)
        rms = 3.0 if (ch == 3 and noise_jump) else 1.0
        for kind, idx in ((TriggerKind.EDGE, pulses), (TriggerKind.AUTO, autos)):
            rows += [(ch, int(i), int(kind), rms) for i in idx]
    rows.sort(key=lambda r: r[1])
    ch, si, kind, rms = (np.array(c) for c in zip(*rows, strict=True))
    summaries = np.zeros(si.size, SUMMARY_DTYPE)
    summaries["pretrig_rms"] = rms * (1 + 0.05 * rng.standard_normal(si.size))
    summaries["peak_value"] = np.where(kind == TriggerKind.EDGE, 500.0, 2.0)
    return EventBatch(
        acquisition="acq", sample_rate_hz=RATE, block_first_sample=first,
        block_samples=int(RATE), pretrigger=PRE, channel=ch.astype(np.int32),
        sample_index=si.astype(np.int64), timestamp_ns=si.astype(np.int64) * 100_000,
        trigger_kind=kind.astype(np.uint8), coincidence=np.ones(si.size, np.uint16),
        records=np.zeros((si.size, LENGTH), np.int16), summaries=summaries,
    )  # fmt: skip


def test_a_stopped_channel_and_a_noise_jump_stand_out(tmp_path: Path) -> None:
    rng = np.random.default_rng(11)
    run = RunStore.create(tmp_path / "store", {"campaign": {"name": "flags"}},
                          background_flush=False, flush_interval_s=1e9)  # fmt: skip
    acq = run.acquisition("acq", [1, 2, 3], LENGTH, "int16", RATE, PRE, {"unit": "V"})
    view = None
    for second in range(20):
        acq.append(_batch(second * int(RATE), rng, stopped=second >= 10, noise_jump=second >= 14))
        acq.flush()
        if second == 8:
            view = AcquisitionView(RunReader(tmp_path / "store"), "acq")
            view.look()
            assert not any(r["stopped"] or r["noise_jumped"] for r in view.channel_rows())
    view.look()
    rows = {r["channel"]: r for r in view.channel_rows()}
    assert rows[1]["rate_hz"] == pytest.approx(20, rel=0.25)  # 100 pulses expected in 5 s
    assert rows[2]["stopped"] and rows[2]["rate_hz"] == 0 and not rows[2]["noise_jumped"]
    assert rows[3]["noise_jumped"] and rows[3]["noise"] == pytest.approx(3.0, rel=0.05)
    assert not rows[1]["stopped"] and not rows[1]["noise_jumped"] and not rows[3]["stopped"]
    spectrum = view.spectrum(None)
    assert spectrum["kind"] == "height" and spectrum["entries"] == sum(
        r["pulses"] for r in rows.values()
    )
    assert spectrum["x"][int(np.argmax(spectrum["counts"]))] == pytest.approx(500, rel=0.01)
    acq.close()
    view.look()
    rows = {r["channel"]: r for r in view.channel_rows()}
    assert not rows[2]["stopped"]  # it had pulses, and the acquisition is over
