"""ADC driver against the simulated digitizer: settings, errors, blocks and gaps."""

from __future__ import annotations

import numpy as np
import pytest

from conftest import open_simulated
from cryodaq.drivers.adc import Adc16
from cryodaq.drivers.errors import InstrumentError, SettingRangeError
from cryodaq.sim_instruments.adc_model import AdcModel
from cryodaq.sim_instruments.world import World


class Ramp:
    """A known analog input: a linear ramp in time, so every sample's time is checkable."""

    def __init__(self, volts_per_s: float) -> None:
        self.slope = volts_per_s

    def block(self, t0: float, n: int, rate_hz: float) -> np.ndarray:
        return self.slope * (t0 + np.arange(n) / rate_hz)


@pytest.fixture
def world() -> World:
    return World({"seed": 11})


@pytest.fixture
def adc(world: World, closing: list) -> Adc16:
    world.register_signal("ramp", Ramp(0.5))
    inst = open_simulated(
        Adc16, "adc", AdcModel(world, "adc1", {"inputs": {2: "ramp"}, "noise_lsb": 0.0})
    )
    closing.append(inst)
    return inst


def test_settings_round_trip(adc: Adc16) -> None:
    adc.sample_rate = 250e3
    adc.input_range = 2.0
    adc.channel(5).enabled = False
    assert adc.sample_rate == 250e3
    assert adc.input_range == 2.0
    assert adc.channel(5).enabled is False
    assert adc.channel(6).enabled is True
    adc.reset()
    assert adc.sample_rate == 1e6 and adc.channel(5).enabled is True


def test_block_samples_are_at_their_counter_times(adc: Adc16) -> None:
    adc.sample_rate = 100e3
    adc.input_range = 1.0
    adc.start()
    first = adc.fetch(1000)
    second = adc.fetch(1000)
    assert (first.first_sample, second.first_sample) == (0, 1000)
    assert first.channels == tuple(range(1, 17))
    row = first.channels.index(2)
    for block in (first, second):
        t = (block.first_sample + np.arange(1000)) / 100e3
        # Quantisation of 1 V / 32767 per code: half a code of tolerance.
        np.testing.assert_allclose(block.volts()[row], 0.5 * t, atol=0.51 / 32767)
    assert np.all(first.codes[0] == 0)  # unwired channel, noise switched off


def test_overflow_is_a_visible_gap(adc: Adc16, world: World) -> None:
    adc.sample_rate = 1e6
    adc.start()
    adc.fetch(100)
    world.advance(60.0)  # 6e7 samples digitised, buffer holds 2**24
    block = adc.fetch(100)
    # The oldest kept sample is the one 2**24 before the newest digitised one (60.0001 s).
    assert block.first_sample == pytest.approx(60_000_100 - 2**24, abs=2)


def test_disabled_channels_are_not_streamed(adc: Adc16) -> None:
    for ch in range(3, 17):
        adc.channel(ch).enabled = False
    adc.start()
    block = adc.fetch(10)
    assert block.channels == (1, 2) and block.codes.shape == (2, 10)


def test_client_side_range_error_names_the_range(adc: Adc16) -> None:
    with pytest.raises(SettingRangeError, match=r"1000 Hz \.\. 1e\+07 Hz"):
        adc.sample_rate = 5e7
    with pytest.raises(SettingRangeError, match="allowed values"):
        adc.input_range = 3.0
    with pytest.raises(InstrumentError, match="no such channel"):
        adc.channel(17)


def test_instrument_side_refusals_carry_the_instrument_text(adc: Adc16) -> None:
    with pytest.raises(InstrumentError, match="-222"):
        adc.write("SAMP:RATE 9.9e+99")
    adc.start()
    with pytest.raises(InstrumentError, match="-221.*ACQ:RUN 0"):
        adc.write("SAMP:RATE 2.0e+05")
    with pytest.raises(InstrumentError, match="-222"):
        adc.query_block("FETC? 0")


def test_fetch_before_start_is_refused(adc: Adc16) -> None:
    with pytest.raises(InstrumentError, match="not running"):
        adc.fetch(10)


def test_plain_pyvisa_sim_opens_the_device_file() -> None:
    import pyvisa

    from cryodaq.sim_instruments.library import device_file

    rm = pyvisa.ResourceManager(f"{device_file('adc')}@sim")
    inst = rm.open_resource(
        "TCPIP0::127.0.0.1::5025::SOCKET", read_termination="\n", write_termination="\n"
    )
    assert inst.query("*IDN?").startswith("cryodaq,ADC16")
    inst.write("SAMP:RATE 2.000000000e+05")
    assert float(inst.query("SAMP:RATE?")) == 2e5
    rm.close()


def test_malformed_stream_block_is_an_instrument_error() -> None:
    from cryodaq.drivers.streaming import STREAM_PREAMBLE, parse_stream_block

    raw = np.frombuffer(STREAM_PREAMBLE.pack(0, 1, 1, 2) + b"\x01\x02\x03", dtype=np.uint8)
    with pytest.raises(InstrumentError, match="3 bytes is not whole i2 values"):
        parse_stream_block(raw, "i2", "adc1", "FETC? 2")


def test_allowed_values_match_relatively_not_absolutely() -> None:
    from cryodaq.drivers.base import OneOf

    tiny = OneOf((1e-9, 2e-9))
    assert tiny.check(2e-9, "A") == 2e-9  # atol would have matched 1e-9 first
    with pytest.raises(ValueError):
        tiny.check(1.5e-9, "A")


def test_declared_settings_list_the_drivers_settings_bases_first() -> None:
    from cryodaq.drivers.adc import AdcChannel

    declared = Adc16.declared_settings()
    assert list(declared) == ["running", "sample_rate", "input_range"]
    assert declared["sample_rate"] is Adc16.sample_rate
    assert list(AdcChannel.declared_settings()) == ["enabled"]
