"""Multi-channel SQUID flux-locked-loop electronics (Magnicon-like)."""

from __future__ import annotations

from cryodaq.drivers.base import Channel, Instrument, OneOf, Range, Setting

FEEDBACK_RESISTORS_OHM = (700.0, 1e3, 3e3, 10e3, 30e3, 100e3)
GAIN_BANDWIDTH_HZ = (0.23e9, 0.46e9, 0.92e9, 1.85e9, 3.7e9, 7.4e9)


class SquidChannel(Channel):
    """One SQUID and its FLL."""

    mode = Setting(
        "CH{ch}:MODE",
        str,
        allowed=OneOf(("AMP", "FLL")),
        doc="AMP: open loop (V-Phi curve); FLL: flux-locked loop",
    )
    bias_current = Setting("CH{ch}:IB", float, unit="A", allowed=Range(0.0, 180e-6))
    voltage_bias = Setting("CH{ch}:VB", float, unit="V", allowed=Range(-2e-3, 2e-3))
    flux_bias = Setting("CH{ch}:PHIB", float, unit="A", allowed=Range(-100e-6, 100e-6))
    feedback_resistor = Setting(
        "CH{ch}:RF", float, unit="ohm", allowed=OneOf(FEEDBACK_RESISTORS_OHM)
    )
    gain_bandwidth = Setting("CH{ch}:GBP", float, unit="Hz", allowed=OneOf(GAIN_BANDWIDTH_HZ))

    @property
    def locked(self) -> bool:
        """Whether the flux-locked loop holds its working point."""
        return self.parent.query(f"CH{self.ch}:LOCK?") == "1"

    def relock(self) -> None:
        """Reset the FLL integrator and lock again at the present working point."""
        self.parent.write(f"CH{self.ch}:RES")


class SquidElectronics(Instrument):
    """32-channel FLL electronics; `channel(n)` gives a `SquidChannel`."""

    channel_ids = tuple(range(1, 33))
    channel_class = SquidChannel

    def channel(self, ch: int | str) -> SquidChannel:
        return super().channel(ch)  # type: ignore[return-value]

    def summary(self) -> dict[str, object]:
        locked = sum(1 for c in self.channels if self.channel(c.ch).locked)
        modes = {self.channel(c.ch).mode for c in self.channels}
        return {
            "channels": len(self.channels),
            "locked": f"{locked}/32",
            "modes": ",".join(sorted(modes)),
        }
