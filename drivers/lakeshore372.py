"""Lake Shore Model 372 AC resistance bridge and temperature controller (its manual's commands).

Inputs: measurement channels 1-16 and the control input A (`INSET`, `INTYPE`, `INNAME`,
readings `KRDG?`, `RDGR?`, `RDGST?`). Outputs: 0 the sample heater and 1 the warm-up heater
(current sources: `OUTMODE`, `HTRSET`, `RANGE`, `SETP`, `PID`, `MOUT`, `RAMP`, `RAMPST?`),
2 the analog/still output (0-10 V; `ANALOG` sets its monitor-out scaling). Zone tables of
outputs 0 and 1 (`ZONE`, 10 zones each, used in mode ZONE), the warm-up heater's `WARMUP`
rule (mode WARM_UP), the scanner (`SCAN`; `RDGSTL?` tells whether the connected channel is
still settling after a switch), the rear monitor BNC (`MONITOR`). The 372's current ranges are
shown as the power they mean in the configured heater resistance (`HTRSET`). TCP port 7777,
CR LF line ends, errors from `*ESR?`, every setting read back after it is written.
"""

from __future__ import annotations

import math
from typing import Any

from cryodaq.drivers.base import Channel, OneOf, Range, SCPINode
from cryodaq.drivers.errors import InstrumentError, SettingRangeError
from cryodaq.drivers.lakeshore import Field, LakeShoreInstrument, ReadBack

TCP_PORT = 7777
INPUT_IDS: tuple[int | str, ...] = (*range(1, 17), "A")
HEATER_IDS = (0, 1)
ANALOG_IDS = (2,)
OUTPUT_MODES = ("OFF", "MONITOR_OUT", "OPEN_LOOP", "ZONE", "STILL", "CLOSED_LOOP", "WARM_UP")
#: Sample heater current ranges 1-8 (A): 31.6 uA ... 100 mA, half decades.
SAMPLE_RANGES_A = tuple(10.0 ** (-4.5 + 0.5 * k) for k in range(8))
#: Warm-up heater: resistance codes (ohm) and max current codes (A; 0 = the user's current).
WARMUP_OHMS = {1: 25.0, 2: 50.0}
WARMUP_MAX_A = {1: 0.45, 2: 0.63}
#: `RDGST?` bits that make a reading meaningless.
BAD_READING = {1: "CS OVL", 2: "VCM OVL", 4: "VMIX OVL", 8: "VDIF OVL", 16: "R. OVER",
               32: "R. UNDER", 64: "T. OVER", 128: "T. UNDER"}  # fmt: skip
INPUT_CHOICES = OneOf(("0", "A", *(str(i) for i in range(1, 17))))
ZONE_IDS = tuple(range(1, 11))
#: `RDGSTL?`: settle status of the control input and of the connected measurement channel.
SETTLE_STATES = ("VALID", "FILTER_SETTLING", "HARDWARE_SETTLING")
MONITOR_SOURCES = ("OFF", "CS_NEG", "CS_POS", "VCM_NEG", "VCM_POS", "VDIF", "VAD_MEASUREMENT",
                   "VAD_CONTROL")


class Input372(ReadBack, Channel):
    """A measurement channel (1-16) or the control input (A)."""

    enabled = Field("INSET", 0, 5, bool, doc="In the scan (channels) / measured (A)")
    dwell = Field("INSET", 1, 5, int, unit="s", allowed=Range(1, 200))
    pause = Field("INSET", 2, 5, int, unit="s", allowed=Range(3, 200))
    curve = Field("INSET", 3, 5, int, allowed=Range(0, 59), doc="0: none; 1-59")
    tempco = Field("INSET", 4, 5, names=("NONE", "NEGATIVE", "POSITIVE"))
    excitation_mode = Field("INTYPE", 0, 6, names=("VOLTAGE", "CURRENT"))
    excitation_range = Field("INTYPE", 1, 6, int, allowed=Range(1, 22))
    autorange = Field("INTYPE", 2, 6, names=("OFF", "CURRENT", "ROX102B"))
    resistance_range = Field("INTYPE", 3, 6, int, allowed=Range(1, 22))
    shunted = Field("INTYPE", 4, 6, bool, doc="Current source shunted (excitation off)")
    units = Field("INTYPE", 5, 6, names=("NONE", "KELVIN", "OHMS"))
    label = Field("INNAME", 0, 1, str, quoted=True, doc="Sensor name (15 characters)")
    temperature = Field("KRDG", unit="K", readonly=True, doc="Kelvin reading (0: none)")
    resistance = Field("RDGR", unit="ohm", readonly=True, doc="Resistance reading")
    sensor_reading = Field("SRDG", readonly=True, doc="Reading in the input's units")
    status = Field("RDGST", kind=int, readonly=True, doc="Reading status bits")

    def _label(self, setting: Any) -> str:
        return f"input {self.ch} {setting.name}"


class HeaterRange(Field):
    """`RANGE` of a heater output, shown as the power it means (W).

    Sample heater: range k is current I_k, full power I_k^2 R with R the `HTRSET` resistance.
    Warm-up heater: on (1) gives its maximum current into its resistance; off (0) is 0 W."""

    def __init__(self) -> None:
        super().__init__("RANGE", unit="W", doc="Full-scale heater power (0: off)")

    def powers(self, node: SCPINode) -> tuple[float, ...]:
        """The power of each range index as the output is set up now."""
        setup = node._root().query(f"HTRSET? {node.ch}").split(",")
        if node.ch == 0:
            ohm = float(setup[0])
            return (0.0, *(i * i * ohm for i in SAMPLE_RANGES_A))
        ohm, code, user = WARMUP_OHMS[int(setup[0])], int(setup[1]), float(setup[2])
        amps = WARMUP_MAX_A.get(code, user)
        return (0.0, amps * amps * ohm)

    def decode(self, node: SCPINode, text: str) -> float:
        return self.powers(node)[int(text)]

    def encode(self, node: SCPINode, value: Any) -> str:
        powers = self.powers(node)
        for index, power in enumerate(powers):
            if math.isclose(power, float(value), rel_tol=1e-3, abs_tol=0.0) or power == value:
                return str(index)
        shown = ", ".join(f"{p:.3g} W" for p in powers)
        raise SettingRangeError(node._root().name, f"RANGE {node.ch}", f"output {node.ch} "
                                f"heater_range: {float(value):g} W is none of its ranges in "
                                f"the configured heater: {shown}")


class HeaterResistance(Field):
    """`HTRSET`'s heater resistance: the sample heater's in ohm (1-2000), the warm-up
    heater's as 25 or 50 ohm (sent as its codes 1 and 2)."""

    def __init__(self) -> None:
        super().__init__("HTRSET", 0, 4, unit="ohm", doc="Heater resistance (power display)")

    def decode(self, node: SCPINode, text: str) -> float:
        return float(text) if node.ch == 0 else WARMUP_OHMS[int(text)]

    def encode(self, node: SCPINode, value: Any) -> str:
        if node.ch == 0 and 1.0 <= float(value) <= 2000.0:
            return f"{float(value):.6g}"
        codes = {ohm: code for code, ohm in WARMUP_OHMS.items()}
        if node.ch == 1 and float(value) in codes:
            return str(codes[float(value)])
        allowed = "1 .. 2000 ohm" if node.ch == 0 else "25 or 50 ohm"
        raise SettingRangeError(node._root().name, f"HTRSET {node.ch}",
                                f"output {node.ch} heater_resistance: {value!r} is not {allowed}")


class HeaterOutputReading(Field):
    """How far the output drives its heater: `HTR?` (sample heater: % of the range's current,
    or W when `HTRSET` shows power), `AOUT?` for the others (%)."""

    def __init__(self) -> None:
        super().__init__("HTR", unit="%", readonly=True)

    def query_text(self, node: SCPINode) -> str:
        return "HTR?" if node.ch == 0 else f"AOUT? {node.ch}"


class LoopOutput(ReadBack, Channel):
    """What a control output shares: its mode, control input, setpoint, PID and manual output."""

    mode = Field("OUTMODE", 0, 6, names=OUTPUT_MODES)
    input_channel = Field("OUTMODE", 1, 6, str, allowed=INPUT_CHOICES, doc="Control input")
    powerup = Field("OUTMODE", 2, 6, bool, doc="Stays on after a power cycle")
    polarity = Field("OUTMODE", 3, 6, names=("UNIPOLAR", "BIPOLAR"))
    filtered = Field("OUTMODE", 4, 6, bool, doc="Controls on the filtered reading")
    delay = Field("OUTMODE", 5, 6, int, unit="s", allowed=Range(1, 255))
    setpoint = Field("SETP", unit="K", allowed=Range(0.0, 100.0))
    p = Field("PID", 0, 3, allowed=Range(0.0, 1000.0), doc="Gain")
    i = Field("PID", 1, 3, unit="s", allowed=Range(0.0, 10000.0), doc="Integral (reset) time")
    d = Field("PID", 2, 3, unit="s", allowed=Range(0.0, 2500.0), doc="Derivative (rate) time")
    manual_output = Field("MOUT", unit="%", allowed=Range(0.0, 100.0))
    output = HeaterOutputReading()

    def _label(self, setting: Any) -> str:
        return f"output {self.ch} {setting.name}"


class HeaterOutput(LoopOutput):
    """Output 0 (sample heater) or 1 (warm-up heater): current sources with setpoint ramps."""

    heater_range = HeaterRange()
    heater_resistance = HeaterResistance()
    heater_display = Field("HTRSET", 3, 4, names=("NONE", "CURRENT", "POWER"),
                           doc="HTR?/AOUT? show current (%) or power")
    ramp_enabled = Field("RAMP", 0, 2, bool)
    ramp_rate = Field("RAMP", 1, 2, unit="K/min", allowed=Range(0.001, 100.0))
    ramping = Field("RAMPST", kind=bool, readonly=True)


class AnalogOutput(LoopOutput):
    """Output 2, the analog/still output (0-10 V): on or off; in MONITOR_OUT mode it follows
    its control input between `monitor_low` (0 V, or -10 V bipolar) and `monitor_high` (10 V).
    `ANALOG`'s polarity, mode and input are `OUTMODE`'s (set them there)."""

    enabled = Field("RANGE", kind=bool, doc="Output on (RANGE 2,1)")
    monitor_units = Field("ANALOG", 3, 7, names=("NONE", "KELVIN", "OHMS"),
                          doc="The input's data monitored (KELVIN or OHMS)")
    monitor_high = Field("ANALOG", 4, 7, doc="Input data at +100 % output")
    monitor_low = Field("ANALOG", 5, 7, doc="Input data at 0 % (unipolar) or -100 % output")
    analog_manual = Field("ANALOG", 6, 7, unit="%", allowed=Range(-100.0, 100.0),
                          doc="ANALOG's manual value")


class Zone(ReadBack, Channel):
    """A zone (1-10) of an output's zone table (`ZONE out,zone,...`): in ZONE mode the zone
    whose range holds the setpoint supplies the output's PID, manual output, range and ramp
    rate."""

    output = 0

    upper_bound = Field("ZONE", 0, 9, unit="K", allowed=Range(0.0, 100.0),
                        doc="Upper setpoint bound of the zone")
    p = Field("ZONE", 1, 9, allowed=Range(0.0, 1000.0), doc="Gain")
    i = Field("ZONE", 2, 9, unit="s", allowed=Range(0.0, 10000.0), doc="Integral (reset) time")
    d = Field("ZONE", 3, 9, unit="s", allowed=Range(0.0, 2500.0), doc="Derivative (rate) time")
    manual_output = Field("ZONE", 4, 9, unit="%", allowed=Range(0.0, 100.0))
    range_index = Field("ZONE", 5, 9, int, allowed=Range(0, 8),
                        doc="RANGE index: sample heater 1-8 (31.6 uA .. 100 mA), warm-up 0/1")
    ramp_rate = Field("ZONE", 6, 9, unit="K/min", allowed=Range(0.0, 100.0))
    relay_1 = Field("ZONE", 7, 9, bool, doc="Relay 1 on (relay in this output's zone mode)")
    relay_2 = Field("ZONE", 8, 9, bool, doc="Relay 2 on (relay in this output's zone mode)")

    @property
    def command_address(self) -> str:
        return f"{self.output},{self.ch}"

    def _label(self, setting: Any) -> str:
        return f"output {self.output} zone {self.ch} {setting.name}"


class WarmupZone(Zone):
    """A zone of the warm-up heater's (output 1) zone table; its range is off (0) or on (1)."""

    output = 1
    range_index = Field("ZONE", 5, 9, int, allowed=Range(0, 1), doc="RANGE: 0 off, 1 on")


class LakeShore372(ReadBack, LakeShoreInstrument):
    """Lake Shore Model 372: inputs 1-16 and A (`channels`), outputs 0 and 1 (`outputs`) and
    the analog/still output 2 (`analog`)."""

    default_timeout_s = 2.0
    scan_channel = Field("SCAN", 0, 2, int, allowed=Range(1, 16), doc="Channel measured now")
    autoscan = Field("SCAN", 1, 2, bool, doc="Step through the enabled channels")
    control_settle = Field("RDGSTL", 0, 2, names=SETTLE_STATES, readonly=True,
                           doc="Control input A: VALID or settling")
    scan_settle = Field("RDGSTL", 1, 2, names=SETTLE_STATES, readonly=True,
                        doc="The connected channel: HARDWARE_SETTLING during its pause time")
    warmup_control = Field("WARMUP", 0, 2, names=("AUTO_OFF", "CONTINUOUS"),
                           doc="Warm-up mode: off for good at the setpoint, or on/off around it")
    warmup_current = Field("WARMUP", 1, 2, unit="%", allowed=Range(0.0, 100.0),
                           doc="Warm-up heater current below the setpoint (% of its maximum)")
    monitor_source = Field("MONITOR", names=MONITOR_SOURCES, doc="Rear-panel monitor BNC")
    channel_ids = INPUT_IDS
    channel_class = Input372
    extra_channel_groups = {"outputs": (HEATER_IDS, HeaterOutput),
                            "analog": (ANALOG_IDS, AnalogOutput),
                            "sample_zones": (ZONE_IDS, Zone),
                            "warmup_zones": (ZONE_IDS, WarmupZone)}

    @property
    def loops(self) -> list[LoopOutput]:
        """Every output that can run a control loop (0, 1 and 2)."""
        outputs = [self.group_channel("outputs", ch) for ch in HEATER_IDS]
        return [*outputs, *(self.group_channel("analog", ch) for ch in ANALOG_IDS)]  # type: ignore[list-item]

    @property
    def outputs(self) -> list[LoopOutput]:
        return self.loops

    def input(self, ch: int | str) -> Input372:
        """Input `ch` (1-16 or "A")."""
        channel = self.channel(ch if ch == "A" else int(ch))
        assert isinstance(channel, Input372)
        return channel

    @property
    def analog_output(self) -> AnalogOutput:
        """Output 2, the analog/still output."""
        output = self.group_channel("analog", ANALOG_IDS[0])
        assert isinstance(output, AnalogOutput)
        return output

    def zone(self, out: int, k: int) -> Zone:
        """Zone `k` (1-10) of output `out` (0 or 1)."""
        groups = {0: "sample_zones", 1: "warmup_zones"}
        if out not in groups or k not in ZONE_IDS:
            raise InstrumentError(self.name, f"ZONE {out},{k}", "only outputs 0 and 1 have "
                                  "zone tables, of zones 1-10")
        zone = self.group_channel(groups[out], k)
        assert isinstance(zone, Zone)
        return zone

    def warm_up(self, setpoint_K: float, current_pct: float, continuous: bool = False,
                input_channel: int | str | None = None) -> None:
        """Warm-up heater (output 1) on at `current_pct` of its maximum current until the
        control input reaches `setpoint_K` (then off for good, or on/off around it); its range
        is switched on (`RANGE 1,1`: without it the output sources nothing)."""
        heater = self.loops[1]
        self.warmup_control = "CONTINUOUS" if continuous else "AUTO_OFF"
        self.warmup_current = current_pct
        if input_channel is not None:
            heater.input_channel = str(input_channel)
        heater.setpoint = setpoint_K
        heater.mode = "WARM_UP"
        self.write("RANGE 1,1")

    def temperature(self, ch: int | str) -> float:
        """Kelvin reading of input `ch`; nan when flagged (open, overload) or not measured."""
        return self._reading(ch, self.input(ch).temperature)

    def resistance(self, ch: int | str) -> float:
        """Resistance reading (ohm) of input `ch`; nan when flagged or not measured."""
        return self._reading(ch, self.input(ch).resistance)

    def _reading(self, ch: int | str, value: float) -> float:
        """A reading, or nan for the 0 a flagged or disabled input reads (not a value)."""
        if value <= 0.0 and (self._flags(ch) or not self.input(ch).enabled):
            return math.nan
        return float(value)

    def _flags(self, ch: int | str) -> list[str]:
        status = self.input(ch).status
        return [text for bit, text in BAD_READING.items() if status & bit]

    def heater_power(self, out: int) -> float:
        """Power (W) the sample or warm-up heater applies now, from its output and setup."""
        if out not in HEATER_IDS:
            raise InstrumentError(self.name, f"HTRSET? {out}", "only outputs 0 and 1 are "
                                  "current sources of known resistance")
        heater = self.group_channel("outputs", out)
        setup = self.query(f"HTRSET? {out}").split(",")
        shows_power = int(setup[-1]) == 2
        level = float(heater.output)
        if out == 0 and shows_power:
            return level
        full = heater.heater_range  # type: ignore[attr-defined]
        return full * (level / 100.0) ** 2

    def regulate(self, out: int, setpoint_K: float, input_channel: int | str | None = None) -> None:
        """Closed-loop control of output `out` at `setpoint_K` (ramped if its ramp is on)."""
        loop = self.loops[out]
        if input_channel is not None:
            loop.input_channel = str(input_channel)
        loop.setpoint = setpoint_K
        loop.mode = "CLOSED_LOOP"

    def summary(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for channel in self.channels:
            if channel.enabled:
                t = self.temperature(channel.ch)
                out[f"in{channel.ch}"] = "no reading" if math.isnan(t) else f"{t * 1e3:.3f} mK"
        for loop in self.loops:
            mode = loop.mode
            text = f"{mode}, output {loop.output:.3g} %"
            if mode == "CLOSED_LOOP":
                text += f", {loop.setpoint * 1e3:g} mK on input {loop.input_channel}"
            out[f"out{loop.ch}"] = text
        return out
