"""Physics behind the simulated Lake Shore Model 372.

Inputs read RuO2 sensors on the World's plates (`thermometry.Sensor`): `KRDG?` a noisy
resistance through the controller's calibration curve, `RDGR?` the resistance; an input with no
sensor reads 0 with `RDGST?` flagging R. OVER. The measurement channels: with `scanner: ideal`
(default) every enabled channel reads at once; with `scanner: "3716"` one channel at a time
with its pause and dwell times (`lakeshore372_scanner`). Outputs drive plate heaters: output 0
the sample heater (a current source: range k gives I_k, 31.6 uA .. 100 mA), output 1 the
warm-up heater (up to its maximum current), output 2 the analog/still output (0-10 V). An
output's level u (0..1 of its full current or voltage) is set by its mode: OPEN_LOOP or STILL
take `MOUT` (%), CLOSED_LOOP runs the PID loop on its control input (`MOUT` added to the PID
output, as the manual says), ZONE the same with the
zone table's settings, WARM_UP and MONITOR_OUT follow `lakeshore372_outputs`; the heater gets
P = (u I)^2 R, or (u 10 V)^2 / R for output 2, with R the heater's true resistance (a sim
parameter; `HTRSET`'s is only for display).

params: `sensors` (input -> plate or {plate, r_inf_ohm, t0_K, calibration_error, noise_rel}),
`heaters` (output -> plate or {plate, resistance_ohm}), `loop_period_s`, `scanner`, `serial`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from cryodaq.sim_instruments.lakeshore372_commands import (
    ANALOG_SHARES_OUTMODE,
    NONE,
    OUTPUTS,
    STORED,
    WARMUP_HTRSET,
    WARMUP_HTRSET_DEFAULTS,
    Stored,
)
from cryodaq.sim_instruments.lakeshore372_outputs import monitor_level, warmup_level, zone_for
from cryodaq.sim_instruments.lakeshore372_scanner import (
    HARDWARE_SETTLING,
    NO_READING,
    VALID,
    Reading,
    Scanner,
)
from cryodaq.sim_instruments.lakeshore_device import (
    COMMAND_ERROR,
    EXECUTION_ERROR,
    LakeShoreDevice,
    LakeShoreError,
)
from cryodaq.sim_instruments.model import SimModel
from cryodaq.sim_instruments.params import number
from cryodaq.sim_instruments.thermometry import HeaterLoop, Sensor, plate_name
from cryodaq.sim_instruments.world import World

SAMPLE_RANGES_A = tuple(10.0 ** (-4.5 + 0.5 * k) for k in range(8))
WARMUP_MAX_A = {1: 0.45, 2: 0.63}
ANALOG_FULL_SCALE_V = 10.0
DEFAULT_HEATER_OHM = {"0": 100.0, "1": 25.0, "2": 120.0}
MONITOR_OUT, OPEN_LOOP, ZONE, STILL, CLOSED_LOOP, WARM_UP = 1, 2, 3, 4, 5, 6
#: The outputs each mode exists on (OFF and OPEN_LOOP: all).
MODE_OUTPUTS = {MONITOR_OUT: ("1", "2"), ZONE: ("0", "1"), STILL: ("2",), WARM_UP: ("1",)}
#: Modes that read the control input every loop period.
INPUT_MODES = {MONITOR_OUT, ZONE, CLOSED_LOOP, WARM_UP}
R_OVER = 16
SCANNERS = ("ideal", "3716")


class LakeShore372Model(SimModel):
    """Inputs, heater outputs and control loops of a simulated Model 372 (see module doc)."""

    device_name = "model372"
    device_class = LakeShoreDevice

    def __init__(self, world: World, name: str, params: Mapping[str, Any] | None = None) -> None:
        super().__init__(world, name, params)
        self.sensors = {
            str(ch).upper(): Sensor.from_params(spec, world, f"{name}.sensors.{ch}")
            for ch, spec in dict(self.params.get("sensors") or {}).items()
        }
        self.heaters: dict[str, tuple[str, float]] = {}
        for out, spec in dict(self.params.get("heaters") or {}).items():
            spec = {"plate": spec} if isinstance(spec, str) else dict(spec)
            where = f"{name}.heaters.{out}"
            if str(out) not in DEFAULT_HEATER_OHM:
                raise ValueError(f"{where}: the 372's outputs are 0, 1 and 2")
            plate = plate_name(spec.get("plate"), world, f"{where}.plate")
            ohm = number(spec, "resistance_ohm", DEFAULT_HEATER_OHM[str(out)], where, 1.0, 1e8)
            self.heaters[str(out)] = (plate, ohm)
        domains = {"sensors": STORED["INSET"].addresses, "heaters": tuple(DEFAULT_HEATER_OHM)}
        for key, domain in domains.items():
            unknown = {str(k).upper() for k in dict(self.params.get(key) or {})} - set(domain)
            if unknown:
                raise ValueError(f"{name}.{key}: no input or output {sorted(unknown)}")
        self.loop_period_s = number(self.params, "loop_period_s", 0.1, name, 1e-3, 10.0)
        self.loops = {out: HeaterLoop() for out in DEFAULT_HEATER_OHM}
        self.scanner_kind = str(self.params.get("scanner", "ideal"))
        if self.scanner_kind not in SCANNERS:
            raise ValueError(f"{name}.scanner: {self.scanner_kind!r} is not one of {SCANNERS}")
        self._readout_rng = world.rng(f"{name}.readout")
        self._loop_rng = world.rng(f"{name}.loop")
        self._t = world.now()
        self.on_reset()
        world.add_dynamic(self, first=True)

    # -- commands ---------------------------------------------------------------------------

    def execute(self, mnemonic: str, args: list[str], query: bool) -> str | None:
        """One command or query (`KRDG`, ["1"], True for `KRDG? 1`); its reply or None."""
        reading = self._readings().get(mnemonic)
        if reading is not None:
            if not query:
                raise LakeShoreError(COMMAND_ERROR, f"{mnemonic} is a query only ({mnemonic}?)")
            return reading(self._one_address(mnemonic, args))
        stored = STORED.get(mnemonic)
        if stored is None:
            raise LakeShoreError(COMMAND_ERROR, f"unknown command {mnemonic}")
        if query:
            return ",".join(self._fields(mnemonic, self._address(mnemonic, args, stored)))
        return self._store(mnemonic, args)

    def _readings(self) -> dict[str, Any]:
        return {
            "KRDG": lambda a: self._read(a, kelvin=True),
            "RDGK": lambda a: self._read(a, kelvin=True),  # the manual's name; KRDG? the client's
            "RDGR": lambda a: self._read(a, kelvin=False),
            "SRDG": lambda a: self._read(a, kelvin=self._units(a) == "1"),
            "RDGST": lambda a: f"{self._status(a):03d}",
            "RDGSTL": lambda a: f"{VALID},{self._measurement_settle()}",
            "HTR": lambda a: self._sample_heater_output(),
            "AOUT": lambda a: f"{100.0 * self.loops[a].level:+.3f}",
            "RAMPST": lambda a: "1" if self._ramping(a) else "0",
        }

    def _one_address(self, mnemonic: str, args: list[str]) -> str:
        # `HTR?` is the sample heater's; Lake Shore's own client sends it as `HTR? 0`.
        domains = {"HTR": ("", "0"), "AOUT": ("1", "2"), "RAMPST": ("0", "1"), "RDGSTL": ("",)}
        address = (args[0] if args else "").strip().upper()
        if address not in domains.get(mnemonic, STORED["INSET"].addresses):
            raise LakeShoreError(EXECUTION_ERROR, f"{mnemonic}: no input or output {address!r}")
        return address

    @staticmethod
    def _address(mnemonic: str, args: list[str], stored: Stored) -> str:
        """The address a stored command's arguments start with ("" for `NONE`)."""
        if stored.addresses == NONE:
            return ""
        address = ",".join(a.strip().upper() for a in args[: stored.address_fields])
        if address not in stored.addresses:
            first, last = stored.addresses[0], stored.addresses[-1]
            raise LakeShoreError(EXECUTION_ERROR, f"{mnemonic}: no address {address!r} (has "
                                 f"{first} .. {last})")
        return address

    def _fields(self, mnemonic: str, address: str) -> tuple[str, ...]:
        """A stored command's fields; `ANALOG`'s polarity, mode and input are `OUTMODE`'s."""
        fields = self.state[mnemonic][address]
        if mnemonic == "ANALOG":
            outmode = self.state["OUTMODE"][address]
            shared = {k: outmode[j] for k, j in ANALOG_SHARES_OUTMODE.items()}
            fields = tuple(shared.get(k, f) for k, f in enumerate(fields))
        return fields

    def _store(self, mnemonic: str, args: list[str]) -> None:
        stored = STORED[mnemonic]
        address = self._address(mnemonic, args, stored)
        values = args[stored.address_fields:] if address else args
        checks = WARMUP_HTRSET if (mnemonic, address) == ("HTRSET", "1") else stored.checks
        if len(values) != len(checks):
            raise LakeShoreError(COMMAND_ERROR, f"{mnemonic} takes {len(checks)} values after "
                                 f"its address, got {len(values)}")
        fields = tuple(check(v) for check, v in zip(checks, values, strict=True))
        self._check_state(mnemonic, address, fields)
        if mnemonic == "ANALOG":
            outmode = list(self.state["OUTMODE"][address])
            for k, j in ANALOG_SHARES_OUTMODE.items():
                outmode[j] = fields[k]
            self._check_state("OUTMODE", address, tuple(outmode))
            self.state["OUTMODE"][address] = tuple(outmode)
        if mnemonic == "SCAN":
            self._switch(fields[0], fields[1] == "1")
        self.state[mnemonic][address] = fields
        output = {"ZONE": address[:1], "WARMUP": "1"}.get(mnemonic, address)
        self._apply(output if output in self.loops else None, mnemonic)
        return None

    def _check_state(self, mnemonic: str, address: str, fields: tuple[str, ...]) -> None:
        heater_range = {"RANGE": 0, "ZONE": 5}.get(mnemonic)
        if heater_range is not None and address[:1] != "0" and int(fields[heater_range]) > 1:
            raise LakeShoreError(EXECUTION_ERROR, f"output {address[:1]}'s range is 0 or 1")
        if mnemonic == "OUTMODE":
            mode, source = int(fields[0]), fields[1]
            if address not in MODE_OUTPUTS.get(mode, OUTPUTS):
                raise LakeShoreError(EXECUTION_ERROR, f"output {address} has no mode {mode}")
            if mode and address not in self.heaters:
                raise LakeShoreError(EXECUTION_ERROR, f"output {address} drives no heater")
            if mode in INPUT_MODES:
                self._check_input(address, source)
        if mnemonic == "INSET" and fields[0] == "0":
            for out, setup in self.state["OUTMODE"].items():
                if int(setup[0]) in INPUT_MODES and setup[1] == address:
                    raise LakeShoreError(EXECUTION_ERROR, f"input {address} is the control "
                                         f"input of output {out}")

    def _check_input(self, out: str, source: str) -> None:
        if source not in self.sensors:
            raise LakeShoreError(EXECUTION_ERROR, f"output {out}: input {source} has no sensor")
        if self.state["INSET"][source][0] != "1":
            raise LakeShoreError(EXECUTION_ERROR, f"output {out}: input {source} is disabled")

    # -- readings and the scanner -----------------------------------------------------------

    def _units(self, address: str) -> str:
        return self.state["INTYPE"][address][5]

    def _read(self, address: str, kelvin: bool) -> str:
        held = self._held(address)
        if held is not None:
            return held.kelvin if kelvin else held.ohm
        return self._live(address, kelvin)

    def _status(self, address: str) -> int:
        held = self._held(address)
        if held is not None:
            return held.status
        return 0 if address in self.sensors else R_OVER

    def _live(self, address: str, kelvin: bool) -> str:
        self.world.now()
        return self._sample(address, kelvin)

    def _sample(self, address: str, kelvin: bool) -> str:
        """A reading of the input at the World's present time (no time passes)."""
        sensor = self.sensors.get(address)
        if sensor is None or self.state["INSET"][address][0] != "1":
            return "+0.00000E+00"
        if kelvin:
            return f"{sensor.temperature(self.world, self._readout_rng):+.5E}"
        return f"{sensor.resistance(self.world, self._readout_rng):+.5E}"

    def _measured(self, address: str) -> Reading:
        """The connected channel's reading now, to hold when the scanner leaves it."""
        live_status = 0 if address in self.sensors else R_OVER
        return Reading(self._sample(address, True), self._sample(address, False), live_status)

    def _held(self, address: str) -> Reading | None:
        """What a channel the 3716 scanner is not measuring now reads (None: it is measured)."""
        if self.scanner_kind != "3716" or address == "A":
            return None
        if address == self.scanner.channel and self._settled():
            return None
        return self.scanner.held.get(address, NO_READING)

    def _inset(self, ch: str) -> tuple[float, float]:
        """(pause, dwell) of a channel, s."""
        fields = self.state["INSET"][ch]
        return float(fields[2]), float(fields[1])

    def _settled(self) -> bool:
        return self.scanner.settled(self.world.now(), self._inset(self.scanner.channel)[0])

    def _measurement_settle(self) -> int:
        unsettled = self.scanner_kind == "3716" and not self._settled()
        return HARDWARE_SETTLING if unsettled else VALID

    def _enabled(self) -> dict[str, bool]:
        return {ch: self.state["INSET"][ch][0] == "1" for ch in self.state["INSET"] if ch != "A"}

    def _switch(self, channel: str, autoscan: bool) -> None:
        left = self.scanner.channel
        reading = self._measured(left) if self._settled() else None
        self.scanner.switch(self.world.now(), channel, autoscan, reading)

    def _next_move_s(self) -> float:
        if self.scanner_kind != "3716":
            return math.inf
        return self.scanner.next_move_s(*self._inset(self.scanner.channel), self._enabled())

    def _sample_heater_output(self) -> str:
        self.world.now()
        level = self.loops["0"].level
        if self.state["HTRSET"]["0"][3] == "2":  # power display: W in the configured resistance
            shown_ohm = float(self.state["HTRSET"]["0"][0])
            return f"{(level * self._full_current('0')) ** 2 * shown_ohm:+.5E}"
        return f"{100.0 * level:+.3f}"

    def _ramping(self, out: str) -> bool:
        self.world.now()
        return self.loops[out].ramping(self._ramp_on(out))

    def _ramp_on(self, out: str) -> bool:
        return out in self.state["RAMP"] and self.state["RAMP"][out][0] == "1"

    # -- outputs ----------------------------------------------------------------------------

    def _full_current(self, out: str) -> float:
        """Full-scale current (A) of a current-source output at its present range."""
        k = int(self.state["RANGE"][out][0])
        if k == 0:
            return 0.0
        if out == "0":
            return SAMPLE_RANGES_A[k - 1]
        _, code, user, _ = self.state["HTRSET"]["1"]
        return WARMUP_MAX_A.get(int(code), float(user))

    def _power(self, out: str) -> float:
        """Heater power (W) at the output's present level."""
        ohm = self.heaters[out][1]
        if out == "2":
            on = self.state["RANGE"]["2"][0] == "1"
            volts = self.loops[out].level * ANALOG_FULL_SCALE_V if on else 0.0
            return volts * volts / ohm
        return (self.loops[out].level * self._full_current(out)) ** 2 * ohm

    def _loop_settings(self, out: str) -> dict[str, Any]:
        p, i, d = (float(v) for v in self.state["PID"][out])
        rate = float(self.state["RAMP"][out][1]) if out in self.state["RAMP"] else 0.1
        manual = float(self.state["MOUT"][out][0]) / 100.0  # added to the PID output
        return {"p": p, "i": i, "d": d, "ramp_rate": rate, "ramp_enabled": self._ramp_on(out),
                "manual": manual}

    def _zone_setpoint(self, out: str) -> float:
        """The setpoint that picks the zone: the ramping one while the loop ramps (as of its
        last cycle, at most one loop period old), else `SETP`'s."""
        loop = self.loops[out]
        return loop.ramped_K if loop.active and self._ramp_on(out) else float(
            self.state["SETP"][out][0])

    def _take_zone(self, out: str, force: bool) -> None:
        """Zone mode: when the setpoint crosses into another zone (or `force`), that zone sets
        PID, manual output, range and ramp rate; settings changed by hand stay until then."""
        table = {int(a.split(",")[1]): f for a, f in self.state["ZONE"].items() if a[0] == out}
        k, (_, p, i, d, mout, heater_range, rate, _, _) = zone_for(self._zone_setpoint(out),
                                                                   table)
        if k == self._zones[out] and not force:
            return
        self._zones[out] = k
        self.state["PID"][out] = (p, i, d)
        self.state["MOUT"][out] = (mout,)
        self.state["RANGE"][out] = (heater_range,)
        self.state["RAMP"][out] = (self.state["RAMP"][out][0], rate)

    def _apply(self, out: str | None, mnemonic: str) -> None:
        """After a stored command changed: outputs' modes, levels and heater powers."""
        for o in [out] if out is not None else list(self.loops):
            loop = self.loops[o]
            mode, source = int(self.state["OUTMODE"][o][0]), self.state["OUTMODE"][o][1]
            if mode == ZONE:
                self._take_zone(o, force=self._loop_modes[o] != mode or mnemonic == "ZONE")
            if self._loop_modes[o] != mode:
                loop.stop()
                self._loop_modes[o] = mode
            setpoint = float(self.state["SETP"][o][0])
            t = self.world.now()
            if mode not in INPUT_MODES:
                loop.stop()
                manual = float(self.state["MOUT"][o][0]) / 100.0
                loop.level = manual if mode in (OPEN_LOOP, STILL) else 0.0
            elif not loop.active:
                reading = self.sensors[source].temperature(self.world, self._loop_rng)
                loop.start(t, setpoint, reading, self._ramp_on(o) and mode in (ZONE, CLOSED_LOOP))
            elif mnemonic == "SETP":
                rate = self._loop_settings(o)["ramp_rate"] / 60.0
                loop.retarget(t, setpoint, rate, self._ramp_on(o))
            if o in self.heaters:
                self.world.thermal.set_heater(self.heaters[o][0], self._power(o))

    def _level(self, out: str, t: float) -> float:
        """One loop period of an output in a mode that reads its control input."""
        mode, source = int(self.state["OUTMODE"][out][0]), self.state["OUTMODE"][out][1]
        sensor, loop = self.sensors[source], self.loops[out]
        if mode == MONITOR_OUT:
            _, _, _, units, high, low, _ = self.state["ANALOG"][out]
            value = (sensor.temperature if units == "1" else sensor.resistance)(
                self.world, self._loop_rng)
            bipolar = self.state["OUTMODE"][out][3] == "1"
            return monitor_level(value, float(low), float(high), bipolar)
        if mode == ZONE:
            self._take_zone(out, force=False)
        reading = sensor.temperature(self.world, self._loop_rng)
        if mode != WARM_UP:
            return loop.update(t, reading, self._loop_settings(out))
        control, percent = self.state["WARMUP"][""]
        level = warmup_level(reading, float(self.state["SETP"][out][0]), float(percent))
        if level == 0.0 and control == "0":  # auto off: the output switches itself off
            self.state["OUTMODE"][out] = ("0", *self.state["OUTMODE"][out][1:])
            self._loop_modes[out] = 0
            loop.stop()
        return level

    def on_reset(self) -> None:
        """Power-on state: every stored command at its default, heaters off, scanner on 1."""
        self.state = {
            mnemonic: {a: stored.defaults for a in stored.addresses}
            for mnemonic, stored in STORED.items()
        }
        self.state["HTRSET"]["1"] = WARMUP_HTRSET_DEFAULTS
        for address in self.state["INSET"]:
            enabled = "1" if address in self.sensors else "0"
            self.state["INSET"][address] = (enabled, *self.state["INSET"][address][1:])
        self.scanner = Scanner(since_s=self.world.now())
        self._loop_modes = dict.fromkeys(self.loops, 0)
        self._zones: dict[str, int | None] = dict.fromkeys(self.loops)
        for loop in self.loops.values():
            loop.stop()
            loop.level = 0.0
        for plate, _ in self.heaters.values():
            self.world.thermal.set_heater(plate, 0.0)

    # -- World dynamic ----------------------------------------------------------------------

    @property
    def max_step_s(self) -> float:
        """Time to the next loop update or scanner move (steps land on it); unbounded with
        neither pending."""
        pending = [loop.next_update_s - self._t for loop in self.loops.values() if loop.active]
        pending.append(self._next_move_s() - self._t)
        ahead = min(pending)
        if ahead == math.inf:
            return math.inf
        return ahead if ahead > 1e-9 else self.loop_period_s

    def step(self, t: float, dt: float) -> None:
        """Scanner moves and loop cycles due at `t` (before the plant integrates [t, t + dt])."""
        if t >= self._next_move_s() - 1e-9:
            self.scanner.move(t, self._enabled(), self._measured)
            self.state["SCAN"][""] = (self.scanner.channel, "1")
        for out, loop in self.loops.items():
            if loop.active and t >= loop.next_update_s - 1e-9:
                loop.level = self._level(out, t)
                self.world.thermal.set_heater(self.heaters[out][0], self._power(out))
                loop.next_update_s += self.loop_period_s
                if loop.next_update_s <= t:  # fell off the grid: restart it from now
                    loop.next_update_s = t + self.loop_period_s
        self._t = t + dt
