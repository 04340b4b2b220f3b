"""cryodaq's own exceptions above the drivers."""

from __future__ import annotations

import difflib


class CryodaqError(Exception):
    """A problem the user must fix; the message says where and what is allowed."""


class ConfigError(CryodaqError):
    """A rig or campaign file is wrong at a given place."""

    def __init__(self, where: str, key: str, message: str) -> None:
        self.where = where
        self.key = key
        self.message = message
        super().__init__(f"{where} {key}: {message}" if key else f"{where}: {message}")


def did_you_mean(word: str, options: list[str]) -> str:
    """` (did you mean 'x'?)` for the option closest to a misspelt `word`, else ''."""
    close = difflib.get_close_matches(word, options, n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""
