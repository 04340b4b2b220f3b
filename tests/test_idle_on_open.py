"""Opening a rig makes every instrument idle first, so a crashed run never wedges the next one.

A session that dies leaves a TCP ADC acquiring and its error queue full of a refusal; the next
`Rig.open` of a rig on pyvisa-py (as at the lab) stops the acquisition, clears the status and
applies the rig's settings, where it used to fail with -221 "stop acquisition first".
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import pyvisa
import yaml

from cryodaq.acquisition.rig import Rig, load_rig
from cryodaq.drivers.adc import Adc16
from tests.served import serve_instrument

RIG = Path(__file__).resolve().parents[1] / "config" / "rigs" / "maxs30_sim.yaml"


@pytest.fixture()
def served_adc() -> Iterator[int]:
    """adc1 of the simulated maXs30 rig on a TCP port."""
    with Rig(load_rig(RIG)) as rig, serve_instrument(rig, "adc1") as port:
        yield port


def test_a_rig_opens_an_adc_a_dead_session_left_acquiring(served_adc: int, tmp_path: Path) -> None:
    address = f"TCPIP::127.0.0.1::{served_adc}::SOCKET"
    rm = pyvisa.ResourceManager("@py")
    crashed = Adc16.open(rm, address, name="crashed", timeout_s=2.0)
    crashed.start()
    crashed.resource.write("SAMP:RATE 9.9e+99")  # a refusal left in its error queue
    crashed.resource.close()  # the session dies without stopping anything
    with pytest.raises(Exception, match="-221"):  # what the next session met before
        probe = Adc16.open(rm, address, name="probe", timeout_s=2.0)
        try:
            probe.sample_rate = 100e3
        finally:
            probe.close()

    rig_file = tmp_path / "lab.yaml"
    rig_file.write_text(yaml.safe_dump({"name": "lab", "instruments": {"adc1": {
        "driver": "adc", "address": address, "backend": "py", "timeout": "2 s",
        "settings": {"sample_rate": "100 kHz"},
    }}}))  # fmt: skip
    with Rig(load_rig(rig_file)) as rig:
        adc = rig.open("adc1")
        assert not adc.running
        assert adc.sample_rate == 100e3
        adc.check_errors("after opening")  # nothing left in the queue
