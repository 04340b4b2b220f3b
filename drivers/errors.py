"""Exceptions raised by cryodaq drivers: each names the instrument, the command and the reason."""

from __future__ import annotations


class InstrumentError(Exception):
    """An instrument refused a command, reported an error or could not be reached."""

    def __init__(self, instrument: str, command: str, reason: str) -> None:
        self.instrument = instrument
        self.command = command
        self.reason = reason
        super().__init__(f"{instrument}: {command!r}: {reason}")


class InstrumentTimeout(InstrumentError):
    """The instrument did not answer within its timeout."""


class SettingRangeError(InstrumentError, ValueError):
    """A value was refused before it was sent: outside the instrument's allowed range."""
