"""The simulator's noise and pulses have the statistics they are configured with."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.signal import welch

from cryodaq.analysis.noise_models import white_plus_one_over_f
from cryodaq.analysis.pulse_shapes import unit_pulse
from cryodaq.sim_instruments.noise import ColoredNoise
from cryodaq.sim_instruments.pulse_source import PulseSource


@pytest.mark.parametrize(("white", "knee", "rate"), [(1e-6, 10.0, 1e5), (3e-7, 200.0, 5e5)])
def test_noise_psd_follows_white_plus_one_over_f(white: float, knee: float, rate: float) -> None:
    noise = ColoredNoise(white, knee, rate, np.random.default_rng(7))
    x = np.concatenate([noise.block(50_000) for _ in range(80)])
    f, psd = welch(x, rate, nperseg=2**16)
    model = white_plus_one_over_f(f, white, knee)
    for band in (3 * rate / 2**16, knee, 10 * knee, rate / 10):
        sel = (f > band / 1.5) & (f < band * 1.5)
        # Welch averages ~120 segments x a few bins: ~5 % scatter; 1/f synthesis ripple ~3 %.
        assert np.mean(psd[sel] / model[sel]) == pytest.approx(1.0, abs=0.12), band


def test_white_noise_rms() -> None:
    noise = ColoredNoise(2e-6, 0.0, 1e6, np.random.default_rng(1))
    x = noise.block(400_000)
    # One-sided density w over bandwidth fs/2: rms = w sqrt(fs/2); 400k samples: 0.2 % error.
    assert x.std() == pytest.approx(2e-6 * np.sqrt(5e5), rel=0.01)


PARAMS = {
    "rate_hz": 30.0,
    "rise_s": 15e-6,
    "decay_s": 400e-6,
    "phi0_per_eV": 1e-4,
    "noise_phi0_per_rthz": 0.0,
    "lines": [{"energy_eV": 1000.0, "weight": 3}, {"energy_eV": 2000.0, "weight": 1}],
}


def test_pulses_arrive_as_poisson_with_configured_lines() -> None:
    source = PulseSource(PARAMS, np.random.default_rng(3), "test")
    for i in range(100):
        source.block(i * 1.0, 1000, 1e3)
    times = np.array([t for t, _ in source.history])
    energies = np.array([e for _, e in source.history])
    # 100 s at 30 Hz: 3000 +- 55 events; intervals exponential with mean 1/30 s.
    assert len(times) == pytest.approx(3000, abs=4 * 55)
    gaps = np.diff(times)
    assert gaps.mean() == pytest.approx(1 / 30, rel=0.05)
    assert gaps.std() == pytest.approx(1 / 30, rel=0.08)
    assert set(np.round(energies)) == {1000.0, 2000.0}
    assert np.mean(energies == 1000.0) == pytest.approx(0.75, abs=0.03)


def test_pulse_shape_and_height_match_the_model() -> None:
    source = PulseSource({**PARAMS, "rate_hz": 0.5}, np.random.default_rng(9), "test")
    rate = 1e6
    x = np.concatenate([source.block(i * 0.01, 10_000, rate) for i in range(400)])
    t_arrival, energy = source.history[0]
    i0 = int(np.ceil(t_arrival * rate))
    t = (i0 + np.arange(3000)) / rate - t_arrival
    expected = energy * 1e-4 * unit_pulse(t, 15e-6, 400e-6)
    np.testing.assert_allclose(x[i0 : i0 + 3000], expected, atol=1e-9)
