"""The Model 372's measurement scanner (the 3716 option) on the World's clock.

One of the measurement channels 1-16 is connected at a time. After a switch (`SCAN`, or autoscan
moving on) the channel settles for its pause time (`INSET`'s third field, 3-200 s): no new
reading, the settle status (`RDGSTL?`) says hardware settling. Then it is measured; with
autoscan on, after its dwell time (`INSET`'s second field) the scanner moves to the next enabled
channel (in order 1..16, wrapping). A channel not connected keeps the last reading and status it
had when the scanner left it (`RDGST?`: "the last state prior to the channel change").
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

#: `RDGSTL?` settle status of an input.
VALID, HARDWARE_SETTLING = 0, 2
CHANNELS = tuple(str(i) for i in range(1, 17))


@dataclass(frozen=True)
class Reading:
    """What a channel read: Kelvin and ohm texts and its `RDGST?` bits."""

    kelvin: str
    ohm: str
    status: int


NO_READING = Reading("+0.00000E+00", "+0.00000E+00", 0)


@dataclass
class Scanner:
    """Which channel is connected since when, and the readings the others hold."""

    channel: str = "1"
    autoscan: bool = False
    since_s: float = 0.0
    held: dict[str, Reading] = field(default_factory=dict)

    def switch(self, t: float, channel: str, autoscan: bool, reading: Reading | None) -> None:
        """`SCAN channel,autoscan` at `t`; `reading`: the left channel's, if it had settled."""
        if channel != self.channel:
            if reading is not None:
                self.held[self.channel] = reading
            self.channel, self.since_s = channel, t
        self.autoscan = autoscan

    def settled(self, t: float, pause_s: float) -> bool:
        return t >= self.since_s + pause_s - 1e-9

    def next_channel(self, enabled: Mapping[str, bool]) -> str | None:
        """The enabled channel after the connected one (None: no other)."""
        start = CHANNELS.index(self.channel)
        for k in range(1, len(CHANNELS)):
            ch = CHANNELS[(start + k) % len(CHANNELS)]
            if enabled.get(ch):
                return ch
        return None

    def next_move_s(self, pause_s: float, dwell_s: float, enabled: Mapping[str, bool]) -> float:
        """When autoscan moves on (inf: it does not)."""
        if not self.autoscan or self.next_channel(enabled) is None:
            return math.inf
        return self.since_s + pause_s + dwell_s

    def move(self, t: float, enabled: Mapping[str, bool], read: Callable[[str], Reading]) -> None:
        """Autoscan's move at `t`: hold the connected channel's reading, connect the next."""
        following = self.next_channel(enabled)
        if following is not None:
            self.switch(t, following, True, read(self.channel))
