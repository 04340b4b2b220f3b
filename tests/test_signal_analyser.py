"""The Keysight X-Series signal analyser driver: its exact dialect as a table, and against its
simulated twin over pyvisa-py TCP (the haloscope chain's noise at the radiometer scatter)."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pytest

from cryodaq.analysis.cavity_chain import received_spectrum
from cryodaq.drivers.errors import InstrumentError
from cryodaq.drivers.signal_analyser import SignalAnalyser
from cryodaq.sim_instruments.library import SimInstrument
from cryodaq.sim_instruments.signal_analyser_model import SignalAnalyserModel
from cryodaq.sim_instruments.world import World
from tests.conftest import ADDRESS
from tests.protocol import block, expected_protocol, writes
from tests.served import driver_over_tcp

LOSSLESS = {
    "seed": 5, "thermal": {"plates": {"attenuator": {}, "cavity": {}}},
    "chain": {"ripple_percent": 0.0, "drift_percent_per_hour": 0.0},
}  # fmt: skip
TRACE = [1.0e-10, 2.0e-10, 3.0e-10]
#: A 2-kHz spectrum at RBW 1 kHz, integrated 4 ms: FFT sweeps of 2 ms, 2 averages, one trace.
SPECTRUM = [
    *writes(":SENS:FREQ:CENT 5.000000000e+09"),
    *writes(":SENS:FREQ:SPAN 2.000000000e+03"),
    *writes(":SENS:BAND:RES 1.000000000e+03"),
    *writes(":INST:SEL SA"),
    *writes(":INIT:CONT 0"),
    *writes(":SENS:SWE:TYPE FFT"),
    *writes(":SENS:BAND:TYPE NOIS"),
    *writes(":SENS:DET:TRAC AVER"),
    *writes(":SENS:AVER:TYPE RMS"),
    *writes(":SENS:AVER 1"),
    *writes(":FORM:DATA REAL,64"),
    *writes(":FORM:BORD SWAP"),
    *writes(":UNIT:POW W"),
    (":SENS:FREQ:SPAN?", "+2.00000000E+03"),
    (":SENS:BAND:RES?", "+1.00000000E+03"),
    *writes(":SENS:SWE:POIN 3"),
    (":SENS:FREQ:SPAN?", "+2.00000000E+03"),
    (":SENS:BAND:RES?", "+1.00000000E+03"),
    (":SENS:SWE:POIN?", "3"),
    (":SENS:SWE:TIME?", "+2.00000000E-03"),
    *writes(":SENS:AVER:COUN 2"),
    (":SENS:AVER:COUN?", "2"),
    *writes(":INIT:IMM"),
    ("*OPC?", "1"),
    (":FORM:DATA?", "REAL,64"),
    (":FORM:BORD?", "SWAP"),
    (":TRAC:DATA? TRACE1", block(TRACE, "<f8")),
    (":UNIT:POW?", "W"),
    (":SENS:FREQ:STAR?", "+4.99999900E+09"),
    (":SENS:FREQ:STOP?", "+5.00000100E+09"),
    (":SENS:AVER:COUN?", "2"),
]


def test_connect_queries_of_a_client() -> None:
    table = [("*IDN?", "Keysight Technologies,N9020B,MY12345678,A.33.03"),
             ("*OPT?", '"526,B25,P26"'), (":INST:CAT?", '"SA 1,PNOISE 14"')]  # fmt: skip
    with expected_protocol(SignalAnalyser, table) as sa:
        assert sa.idn.startswith("Keysight Technologies,N9020B")
        assert sa.options() == ["526", "B25", "P26"]
        assert sa.modes() == ["SA", "PNOISE"]


def test_spectrum_exchange_is_the_x_series_dialect() -> None:
    with expected_protocol(SignalAnalyser, SPECTRUM) as sa:
        sa.configure_spectrum(centre=5e9, span=2e3, rbw=1e3, integration=4e-3)
        spectrum = sa.spectrum()
    assert spectrum.power_W == pytest.approx(TRACE)
    assert spectrum.frequencies_Hz == pytest.approx([4.999999e9, 5e9, 5.000001e9])
    assert (spectrum.bin_width_Hz, spectrum.integration_s) == (1e3, pytest.approx(4e-3))


@pytest.mark.parametrize(("form", "order", "dtype", "unit"), [
    ("REAL,32", "NORM", ">f4", "W"), ("REAL,64", "NORM", ">f8", "DBM"),
])  # fmt: skip
def test_trace_formats_and_units(form: str, order: str, dtype: str, unit: str) -> None:
    values = [-70.0, -69.0] if unit == "DBM" else [1e-10, 2e-10]
    table = [*writes(":INIT:IMM"), ("*OPC?", "1"), (":FORM:DATA?", form),
             (":FORM:BORD?", order), (":TRAC:DATA? TRACE1", block(values, dtype)),
             (":UNIT:POW?", unit)]  # fmt: skip
    with expected_protocol(SignalAnalyser, table) as sa:
        trace = sa.trace()
    expected = [1e-10, 1e-3 * 10 ** (-6.9)] if unit == "DBM" else values
    assert trace == pytest.approx(expected, rel=1e-6)


def test_ascii_trace() -> None:
    table = [*writes(":INIT:IMM"), ("*OPC?", "1"), (":FORM:DATA?", "ASC,8"),
             (":TRAC:DATA? TRACE1", "+1.00000E-10,+2.50000E-10"), (":UNIT:POW?", "W")]  # fmt: skip
    with expected_protocol(SignalAnalyser, table) as sa:
        assert sa.trace() == pytest.approx([1e-10, 2.5e-10])


@pytest.fixture
def served() -> Iterator[tuple[SignalAnalyser, World]]:
    """The simulated analyser on a TCP socket, reached through pyvisa-py."""
    world = World(LOSSLESS)
    model = SignalAnalyserModel(world, "sa", {"thermal_sample_s": 10.0})
    with driver_over_tcp(SignalAnalyser, SimInstrument(ADDRESS, "signal_analyser", model),
                         "sa") as sa:  # fmt: skip
        yield sa, world


def test_spectrum_over_tcp_is_the_chain_noise_at_the_radiometer_scatter(
    served: tuple[SignalAnalyser, World],
) -> None:
    sa, world = served
    assert sa.idn.startswith("cryodaq,N9020B")
    assert "SA" in sa.modes()
    sa.configure_spectrum(centre=4.944458e9, span=4e6, rbw=1e3, integration=60.0)
    spectrum = sa.spectrum()
    assert spectrum.power_W.size == 4001 and spectrum.integration_s == pytest.approx(60.0)
    assert world.now() == pytest.approx(60.0)  # three traces of 10000 sweeps of 2 ms
    # The physics the trace follows: Eqs 5-9 at the plates' (unheated, constant) temperatures.
    device_model = SignalAnalyserModel(World(LOSSLESS), "ref")
    temps = device_model.temperatures()
    expected = received_spectrum(spectrum.frequencies_Hz, device_model.cavity, temps,
                                 device_model.losses, device_model.chain.gain_dB,
                                 device_model.chain.added_noise_K, 1e3)  # fmt: skip
    ratio = spectrum.power_W / expected
    assert ratio.mean() == pytest.approx(1.0, abs=3 * spectrum.relative_scatter / 60)
    assert ratio.std() == pytest.approx(spectrum.relative_scatter, rel=0.05)


def test_log_averaging_and_3db_bandwidth_read_noise_as_the_manual_says(
    served: tuple[SignalAnalyser, World],
) -> None:
    sa, _ = served
    sa.configure_spectrum(centre=4.9e9, span=1e5, rbw=1e3, integration=1.0)
    fair = sa.spectrum().power_W.mean()
    sa.prepare_spectrum()
    sa.average_type, sa.rbw_type = "LOG", "DB3"
    biased = sa.trace(1.0).mean()
    expected_dB = -2.507 + 10 * np.log10(np.sqrt(np.pi / (4 * np.log(2))))  # -2.51 dB, +0.27 dB
    assert 10 * np.log10(biased / fair) == pytest.approx(expected_dB, abs=0.05)


def test_spans_beyond_one_fft_and_bad_settings_are_refused(
    served: tuple[SignalAnalyser, World],
) -> None:
    sa, _ = served
    sa.configure_spectrum(centre=4.9e9, span=20e6, rbw=1e3, integration=1.0)
    with pytest.raises(InstrumentError, match="exceeds one FFT"):
        sa.spectrum()
    with pytest.raises(InstrumentError, match="-222"):
        sa.write(":SENS:AVER:COUN 20000")
    with pytest.raises(InstrumentError, match="-224"):
        sa.write(":FORM:DATA INT,48")
