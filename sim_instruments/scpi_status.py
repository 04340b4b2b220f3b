"""IEEE 488.2 status of a simulated instrument: error queue, *ESR/*ESE, *STB/*SRE, *OPC."""

from __future__ import annotations

from collections import deque

from cryodaq.sim_instruments.scpi import SCPIError

NO_ERROR = '0,"No error"'
#: Entries the error queue holds, the last one kept for -350 "Queue overflow".
ERROR_QUEUE_DEPTH = 32

#: Standard event status register bits.
OPC, QUERY_ERROR, DEVICE_ERROR, EXECUTION_ERROR, COMMAND_ERROR = 1, 4, 8, 16, 32
#: Status byte bits: error/event queue not empty, message available, event summary, MSS.
STB_EAV, STB_MAV, STB_ESB, STB_MSS = 4, 16, 32, 64


def esr_bit(code: int) -> int:
    """The *ESR bit an error of this code sets (SCPI-99 error classes)."""
    if -199 <= code <= -100:
        return COMMAND_ERROR
    if -299 <= code <= -200:
        return EXECUTION_ERROR
    if -499 <= code <= -400:
        return QUERY_ERROR
    return DEVICE_ERROR if code else 0


def _register_value(params: tuple[str, ...], name: str) -> int:
    if not params:
        raise SCPIError.standard(-109, f"{name} needs a value 0..255")
    if len(params) > 1:
        raise SCPIError.standard(-108, f"{name} takes one value")
    try:
        value = float(params[0])
    except ValueError:
        raise SCPIError.standard(-104, f"{name} {params[0][:20]!r} is not a number") from None
    if not 0 <= value <= 255:
        raise SCPIError.standard(-222, f"{name} {params[0]} is not 0..255")
    return round(value)


class Status:
    """Error queue and status registers, as `SYST:ERR?` and the common commands see them."""

    #: Common commands this class answers (the device file declares `*IDN?`, `*OPT?`, ...).
    COMMANDS = frozenset(
        {"*CLS", "*ESE", "*ESE?", "*ESR?", "*OPC", "*OPC?", "*SRE", "*SRE?", "*STB?", "*WAI"}
    )

    def __init__(self) -> None:
        self.errors: deque[str] = deque()
        self.esr = 0
        self.ese = 0
        self.sre = 0

    def push(self, code: int, message: str) -> None:
        """Queue an error and set its *ESR bit; as SCPI says, a full queue keeps its entries
        and its last slot says -350 (later errors are lost, their bits still set)."""
        self.esr |= esr_bit(code)
        text = message.encode("ascii", "backslashreplace").decode().replace('"', '""')
        if len(self.errors) < ERROR_QUEUE_DEPTH - 1:
            self.errors.append(f'{code},"{text}"')
        elif len(self.errors) == ERROR_QUEUE_DEPTH - 1:
            self.errors.append('-350,"Queue overflow"')
            self.esr |= DEVICE_ERROR

    def next_error(self) -> str:
        """`SYST:ERR?`: the oldest entry, or `0,"No error"`."""
        return self.errors.popleft() if self.errors else NO_ERROR

    def stb(self, message_available: bool) -> int:
        value = STB_EAV if self.errors else 0
        value |= STB_MAV if message_available else 0
        value |= STB_ESB if self.esr & self.ese else 0
        return value | (STB_MSS if value & self.sre else 0)

    def common(self, name: str, params: tuple[str, ...], message_available: bool) -> str | None:
        """Answer one of `COMMANDS`; None for no reply."""
        if name in ("*ESE", "*SRE"):
            value = _register_value(params, name)
            if name == "*ESE":
                self.ese = value
            else:
                self.sre = value & ~STB_MSS
            return None
        if params:
            raise SCPIError.standard(-108, f"{name} takes no parameter")
        if name == "*CLS":
            self.errors.clear()
            self.esr = 0
        elif name == "*OPC":
            self.esr |= OPC  # every operation of this instrument completes before the next
        elif name == "*OPC?":
            return "1"
        elif name == "*ESR?":
            value, self.esr = self.esr, 0
            return str(value)
        elif name == "*ESE?":
            return str(self.ese)
        elif name == "*SRE?":
            return str(self.sre)
        elif name == "*STB?":
            return str(self.stb(message_available))
        return None
