"""The channel budget measured from the resonators a sweep found: the pure computation
(`cryodaq.analysis.channel_budget`) on sets of known resonators, and the `tune` step on
simulated chips other than the default, against the chip's injected resonances."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml

from cryodaq.acquisition.campaign.steps.base import StepError
from cryodaq.acquisition.campaign.steps.context import RunContext
from cryodaq.acquisition.campaign.steps.tune import TuneHandler, TuneStep
from cryodaq.acquisition.clock import WorldClock
from cryodaq.acquisition.rig import Rig, load_rig
from cryodaq.acquisition.store.writer import RunStore
from cryodaq.analysis.channel_budget import collisions, measured_budget
from cryodaq.analysis.resonator import channel_budget

ROOT = Path(__file__).resolve().parents[1]


# -- the computation --------------------------------------------------------------------------


def test_regular_comb_gives_the_formula() -> None:
    centres = 4.9e9 + 10e6 * np.arange(25)
    widths = np.full(25, 1.25e6)
    b = measured_budget(centres, widths, 512e6, 250e3, 2)
    assert b.spacing_hz == pytest.approx(10e6) and b.bandwidth_hz == pytest.approx(1.25e6)
    assert b.guard == pytest.approx(8.0)
    assert b.channels == 64  # 512 MHz / (2 x 250 kHz x 2 x 8) = 64 exactly
    assert measured_budget(centres, widths, 512e6, 500e3, 3).channels == 21  # 21.3
    assert b.collisions == () and b.resonators == 25


def test_collisions_name_the_close_and_the_overlapping_pairs() -> None:
    # Shuffled order: pairs are found in frequency order but named by input index.
    centres = np.array([5.030e9, 5.000e9, 5.0095e9, 5.060e9, 5.0615e9])
    widths = np.array([2e6, 2e6, 3e6, 2e6, np.nan])  # the NaN counts as the median, 2 MHz
    found = {(min(c.first, c.second), max(c.first, c.second)): c
             for c in collisions(centres, widths, 5.0)}
    # 5.000-5.0095: 9.5 MHz / 2.5 MHz = 3.8 < 5; 5.0095-5.030: 20.5/2.5 = 8.2 ok;
    # 5.030-5.060: 15 ok; 5.060-5.0615: 1.5 MHz / 2 MHz = 0.75: overlapping.
    assert set(found) == {(1, 2), (3, 4)}
    assert found[(1, 2)].guard == pytest.approx(3.8) and not found[(1, 2)].overlap
    assert found[(3, 4)].guard == pytest.approx(0.75) and found[(3, 4)].overlap
    assert collisions(centres, widths, 3.0) == (found[(3, 4)],)
    b = measured_budget(centres, widths, 512e6, 500e3, 2, min_guard=5.0)
    assert b.spacing_hz == pytest.approx(np.median([9.5e6, 20.5e6, 30e6, 1.5e6]))
    assert b.bandwidth_hz == pytest.approx(2e6)  # median of the fitted widths


def test_bad_input_says_what_is_needed() -> None:
    with pytest.raises(ValueError, match="at least 2 resonators"):
        measured_budget(np.array([5e9]), np.array([1e6]), 512e6, 5e5, 2)
    with pytest.raises(ValueError, match="no resonator has a fitted width"):
        measured_budget(np.array([5e9, 5.01e9]), np.full(2, np.nan), 512e6, 5e5, 2)
    with pytest.raises(ValueError, match="1-D of one size"):
        collisions(np.zeros(3), np.zeros(2))
    with pytest.raises(ValueError, match="min_guard must be > 0"):
        collisions(np.zeros(2), np.ones(2), 0.0)


# -- the tune step on simulated chips --------------------------------------------------------


def _tune(tmp: Path, resonators: dict[str, Any], ramp: tuple[float, int],
          step: dict[str, Any]) -> tuple[dict[str, Any], Any, Path]:
    """Tune a HOLMES rig whose chip is `resonators`: the step's result, the board's model
    (its comb is the truth) and the run directory."""
    doc = yaml.safe_load((ROOT / "config" / "rigs" / "holmes_sim.yaml").read_text())
    doc["world"]["resonators"] = resonators
    doc["world"]["seed"] = 7
    doc["instruments"]["roach"]["settings"].update(
        {"ramp_frequency": ramp[0], "ramp_amplitude": ramp[1]})
    (tmp / "rig.yaml").write_text(yaml.safe_dump(doc))
    run_dir = tmp / "run"
    run_dir.mkdir()
    with Rig(load_rig(tmp / "rig.yaml")) as rig:
        store = RunStore.create(run_dir / "store", {"rig": rig.spec.doc.data})
        ctx = RunContext(rig, WorldClock(rig), store, run_dir)
        board = rig.open("roach")
        tune = TuneStep(instrument="roach", **step)
        result = TuneHandler().run(None, tune, "0", "", ctx)  # type: ignore[arg-type]
        assert board.ramp_on is True  # put back after the still sweep
        comb = _model(rig).comb
        store.close("completed")
    return result, comb, run_dir


def _model(rig: Rig) -> Any:
    assert rig.library is not None
    return next(d.model for d in rig.library.physics.values()
                if d.model is not None and d.model.name == "roach")


def _truth(comb: Any) -> tuple[np.ndarray, np.ndarray]:
    """Static-flux resonances and their widths f_r/Q_L, in frequency order."""
    f = comb.resonance_hz()
    w = f / (1.0 / (1.0 / comb.q_i + 1.0 / comb.q_c))
    order = np.argsort(f)
    return f[order], w[order]


def test_tune_measures_the_budget_of_a_wider_chip(tmp_path: Path) -> None:
    """20 resonators 10 MHz apart, 1.25 MHz wide (scattered Q), ramp 250 kHz x 2 Phi0: the
    budget is 512 MHz / (2 x 250 kHz x 2 x g_f) with g_f from the chip's own resonances."""
    chip = {"count": 20, "first_Hz": 4.9e9, "spacing_Hz": 10e6, "bandwidth_Hz": 1.25e6,
            "Qi": 1e5, "scatter": 0.15, "frequency_scatter_Hz": 0.5e6, "swing_Hz": 1e6}
    result, comb, run_dir = _tune(tmp_path, chip, (250e3, 2), {"points": 20001})
    f, w = _truth(comb)
    g_true = np.median(np.diff(f)) / np.median(w)
    assert result["resonators_found"] == 20
    # The widths come from Lorentzian fits of the still sweep (25 kHz steps, 50 per width):
    # the median to 2 % (the spacing is far better known).
    assert result["bandwidth_Hz"] == pytest.approx(np.median(w), rel=0.02)
    assert result["guard_factor"] == pytest.approx(g_true, rel=0.02)
    assert result["channel_budget"] == channel_budget(512e6, 250e3, 2, result["guard_factor"])
    assert abs(result["channel_budget"] - channel_budget(512e6, 250e3, 2, g_true)) <= 1
    # The board's own rule uses the nominal 10 / 1.25 = 8: 64; not what was measured.
    assert result["board_channel_budget"] == 64
    assert result["collisions"] == []
    saved = json.loads((run_dir / "data" / "tune.json").read_text())
    assert saved["budget"] == result["channel_budget"] and saved["guard_factor"] > 0


def test_tune_names_the_resonators_that_collide(tmp_path: Path,
                                                caplog: pytest.LogCaptureFixture) -> None:
    """A crowded chip (6 MHz apart, 1.5 MHz wide, positions scattered by 0.75 MHz): every pair
    the chip's own resonances put clearly below `min_guard` widths is reported, and nothing
    clearly above it (10 % margin either side for the fitted widths)."""
    chip = {"count": 24, "first_Hz": 4.93e9, "spacing_Hz": 6e6, "bandwidth_Hz": 1.5e6,
            "Qi": 1e5, "scatter": 0.1, "frequency_scatter_Hz": 0.75e6, "swing_Hz": 1e6}
    with caplog.at_level(logging.WARNING):
        result, comb, _ = _tune(tmp_path, chip, (250e3, 2),
                                {"points": 40001, "min_guard": 4.0, "channels": 10})
    f, w = _truth(comb)
    g = np.diff(f) / (0.5 * (w[1:] + w[:-1]))
    clearly_in = {i for i in range(g.size) if g[i] < 0.9 * 4.0}
    possibly = {i for i in range(g.size) if g[i] < 1.1 * 4.0}
    assert clearly_in, "the chip must hold collisions for this test to mean anything"
    # The collisions name RF frequencies (LO + baseband); match their lower member.
    reported = {int(np.argmin(np.abs(f - c["f1_GHz"] * 1e9))) for c in result["collisions"]}
    assert clearly_in <= reported <= possibly
    assert len(caplog.records) >= len(result["collisions"])
    assert "collide" in caplog.text
    # Tones went on the first 10 dips; the collisions name their channels where they sit.
    assert any(ch is not None for c in result["collisions"] for ch in c["channels"])


def test_tune_refuses_more_tones_than_the_measured_budget(tmp_path: Path) -> None:
    """4 Phi0 per ramp at 500 kHz: 512 MHz/(2 x 500 kHz x 4 x ~8) = 16 channels; 18 asked."""
    chip = {"count": 20, "first_Hz": 4.9e9, "spacing_Hz": 10e6, "bandwidth_Hz": 1.25e6,
            "Qi": 1e5, "scatter": 0.05, "frequency_scatter_Hz": 0.2e6}
    with pytest.raises(StepError, match=r"18 tones exceed the channel budget 1[56]: "
                                        r"f_ADC/\(2 f_ramp n_Phi0 g_f\) = 512 MHz/\(2 x 500 kHz "
                                        r"x 4 x [\d.]+\), g_f = [\d.]+ MHz / [\d.]+ MHz measured"):
        _tune(tmp_path, chip, (500e3, 4), {"points": 20001, "channels": 18})
