"""Rig files, `cryodaq instruments` and `cryodaq serve-sim` as a user meets them."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest
import pyvisa
from typer.testing import CliRunner

from cryodaq.acquisition.cli.main import app
from cryodaq.acquisition.errors import ConfigError
from cryodaq.acquisition.rig import Rig, load_rig
from cryodaq.drivers.adc import Adc16
from tests.served import serve_sim

ROOT = Path(__file__).resolve().parents[1]
RIGS = sorted((ROOT / "config" / "rigs").glob("*.yaml"))


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "rig.yaml"
    path.write_text(textwrap.dedent(text))
    return path


@pytest.mark.parametrize("rig", RIGS, ids=lambda p: p.stem)
def test_every_example_rig_opens_all_its_instruments(rig: Path) -> None:
    result = CliRunner().invoke(app, ["instruments", str(rig)])
    assert result.exit_code == 0, result.output
    assert "cryodaq," in result.output


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (
            """\
         instruments:
           a: {driver: adc, address: "TCPIP0::127.0.0.1::5025::SOCKET",
               settings: {sample_rat: 1 MHz}}
         """,
            r"rig.yaml:3:\d+ instruments.a.settings.sample_rat: "
            r"unknown key \(did you mean 'sample_rate'\?\)",
        ),
        (
            """\
         instruments:
           a: {driver: adc, address: "TCPIP0::127.0.0.1::5025::SOCKET",
               settings: {sample_rate: 20 mK}}
         """,
            r"rig.yaml:3:\d+ instruments.a.settings.sample_rate: .*temperature.*allowed: 1000 Hz",
        ),
        (
            """\
         instruments:
           a: {driver: adc, address: "TCPIP0::127.0.0.1::5025::SOCKET",
               settings: {channels: {"1-20": {enabled: true}}}}
         """,
            r"rig.yaml:3:\d+ .*channels.1-20: no channel 17",
        ),
        (
            """\
         instruments:
           a:
             driver: lab.drivers:MyAdc
             address: "TCPIP0::127.0.0.1::5025::SOCKET"
         """,
            r"rig.yaml:3:13 instruments.a.driver: unknown driver class 'lab.drivers:MyAdc'",
        ),
        (
            """\
         instruments:
           a: {driver: adc, adress: x}
         """,
            r"rig.yaml:2:\d+ instruments.a.adress: unknown key \(did you mean 'address'\?\)",
        ),
        (
            """\
         instruments:
           a: {driver: adc, address: x, backend: gpib}
         """,
            r"instruments.a.backend: 'gpib' is not one of sim, py, ivi",
        ),
        ("instruments: [\n", r"rig.yaml:2:1: invalid YAML"),
    ],
)
def test_bad_rig_files_give_one_line_at_the_right_place(
    tmp_path: Path, body: str, message: str
) -> None:
    path = write(tmp_path, body)
    with pytest.raises(ConfigError, match=message):
        load_rig(path)
    result = CliRunner().invoke(app, ["instruments", str(path)])
    assert result.exit_code == 2
    assert "Traceback" not in result.output


def test_unreachable_instrument_is_one_clear_line(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """\
        instruments:
          gone: {driver: adc, address: "TCPIP0::127.0.0.1::9::SOCKET", backend: py,
                 timeout: 300 ms}
          here: {driver: adc, address: "TCPIP0::127.0.0.1::5025::SOCKET"}
        """,
    )
    result = CliRunner().invoke(app, ["instruments", str(path)])
    assert result.exit_code == 1
    # The first thing an opened instrument is sent: `*CLS`, making it idle (Rig.open).
    assert "gone: '*CLS': connection to TCPIP0::127.0.0.1::9::SOCKET failed" in result.output
    assert "cryodaq,ADC16" in result.output  # the reachable one is still shown
    assert "Traceback" not in result.output


def test_instrument_refusing_an_initial_setting_names_the_rig_line(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """\
        instruments:
          fll:
            driver: squid
            address: "TCPIP0::127.0.0.1::5030::SOCKET"
            settings:
              channels: {"3": {mode: FLL}}
        """,
    )
    with Rig(load_rig(path)) as rig:
        fll = rig.open("fll")
        assert fll.channel(3).mode == "FLL"


def test_rig_settings_accept_unit_strings(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """\
        instruments:
          adc: {driver: adc, address: "TCPIP0::127.0.0.1::5025::SOCKET",
                settings: {sample_rate: 250 kHz, input_range: 500 mV}}
        """,
    )
    with Rig(load_rig(path)) as rig:
        adc = rig.open("adc")
        assert (adc.sample_rate, adc.input_range) == (250e3, 0.5)


def test_serve_sim_reaches_unchanged_drivers_over_tcp() -> None:
    rig = ROOT / "config" / "rigs" / "maxs30_sim.yaml"
    with serve_sim(rig, "--any-port") as served:
        rm = pyvisa.ResourceManager("@py")
        adc = Adc16.open(rm, served.addresses["adc1"], name="adc1", timeout_s=2.0)
        assert adc.idn.startswith("cryodaq,ADC16")
        adc.sample_rate = 100e3
        assert adc.sample_rate == 100e3
        with pytest.raises(Exception, match="-222"):
            adc.write("SAMP:RATE 9.9e+99")
        adc.start()
        # On a fresh checkout the first block also compiles the array simulator's numba
        # kernels (no cache yet), which takes seconds: that one fetch may wait longer.
        adc.resource.timeout = 120_000
        block = adc.fetch(5000)  # 50 ms of real time on a real-time served rig
        adc.resource.timeout = 2_000
        assert block.codes.shape == (16, 5000) and block.first_sample == 0
        assert adc.fetch(5000).first_sample == 5000
        adc.close()
        rm.close()


@pytest.mark.parametrize("rig_path", RIGS, ids=lambda p: p.stem)
def test_example_rigs_regulate_their_closed_loop_outputs(rig_path: Path) -> None:
    """Every 372 output a rig puts in closed loop holds its plate at the setpoint."""
    from cryodaq.drivers.lakeshore372 import LakeShore372

    with Rig(load_rig(rig_path)) as rig:
        controllers = [
            rig.open(name)
            for name, s in rig.spec.instruments.items()
            if s.driver is LakeShore372
        ]
        loops = [(tc, out) for tc in controllers for out in tc.loops
                 if out.mode == "CLOSED_LOOP"]
        assert rig.world is not None
        rig.world.advance(180.0)
        for tc, out in loops:
            readings = []
            for _ in range(60):
                rig.world.advance(1.0)
                readings.append(tc.temperature(out.input_channel))
            # Thermometer noise is 1e-4 relative; a stable loop holds well inside 0.5 mK.
            assert abs(sum(readings) / 60 - out.setpoint) < 0.2e-3
            assert max(readings) - min(readings) < 0.5e-3


def test_heater_outputs_are_set_from_the_rig_file(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """\
        world:
          thermal: {plates: {stage: {}, still: {}}}
        instruments:
          tc:
            driver: lakeshore372
            address: "TCPIP0::127.0.0.1::7777::SOCKET"
            settings:
              outputs: {"0": {heater_range: 100 uW, manual_output: 20, mode: OPEN_LOOP}}
              analog: {"2": {enabled: true, manual_output: 50, mode: STILL}}
            sim: {sensors: {1: stage, 2: still}, heaters: {0: stage, 2: still}}
        """,
    )
    with Rig(load_rig(path)) as rig:
        tc = rig.open("tc")
        assert (tc.loops[0].mode, tc.loops[0].manual_output) == ("OPEN_LOOP", 20.0)
        assert (tc.loops[2].mode, tc.loops[2].manual_output) == ("STILL", 50.0)
        assert tc.loops[1].mode == "OFF"
        # 20 % of 1 mA in the default 100 ohm heater; 5 V into the default 120 ohm still heater
        assert rig.world is not None
        assert rig.world.thermal.heater("stage") == pytest.approx((0.2e-3) ** 2 * 100.0)
        assert rig.world.thermal.heater("still") == pytest.approx(5.0**2 / 120.0)
    bad = write(
        tmp_path,
        """\
        instruments:
          tc:
            driver: lakeshore372
            address: "TCPIP0::127.0.0.1::7777::SOCKET"
            settings: {outputs: {"2": {mode: CLOSED_LOOP}}}
        """,
    )
    with pytest.raises(ConfigError, match=r"outputs.2: no channel 2"):
        load_rig(bad)


def test_a_labs_own_driver_class_can_be_named(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "mylab_drivers.py").write_text(
        textwrap.dedent("""\
        from cryodaq.drivers.adc import Adc16

        class LabAdc(Adc16):
            '''The lab's ADC: our firmware reports one more thing.'''

            def summary(self):
                return {**super().summary(), "lab": "yes"}
        """)
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    path = write(
        tmp_path,
        """\
        instruments:
          adc:
            driver: mylab_drivers:LabAdc
            address: "TCPIP0::127.0.0.1::5025::SOCKET"
            settings: {sample_rate: 2 MHz}
            sim: {kind: adc}
        """,
    )
    with Rig(load_rig(path)) as rig:
        adc = rig.open("adc")
        assert type(adc).__name__ == "LabAdc"
        assert adc.summary()["lab"] == "yes" and adc.sample_rate == 2e6
    missing_kind = write(
        tmp_path,
        """\
        instruments:
          adc: {driver: "mylab_drivers:LabAdc", address: "TCPIP0::127.0.0.1::5025::SOCKET"}
        """,
    )
    with pytest.raises(ConfigError, match="set sim.kind to one of"):
        load_rig(missing_kind)


def test_bad_world_parameter_is_a_config_error_not_a_traceback(tmp_path: Path) -> None:
    path = write(tmp_path, """\
        world: {seed: abc, thermal: {plates: {stage: {link_W_per_Kn: -1}}}}
        instruments:
          adc: {driver: adc, address: "TCPIP0::127.0.0.1::5025::SOCKET"}
        """)
    with pytest.raises(ConfigError, match=r"rig.yaml:1:\d+ world: world.seed must be an integer"):
        Rig(load_rig(path))
    result = CliRunner().invoke(app, ["instruments", str(path)])
    assert result.exit_code == 2 and "world.seed must be an integer" in result.output
