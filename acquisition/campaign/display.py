"""What `cryodaq run` shows while a campaign runs: the step, the clocks, rates and drops."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from rich.console import Console, Group
from rich.live import Live
from rich.markup import escape
from rich.text import Text

from cryodaq.acquisition.stream.live_monitor import LiveMonitor


class Display:
    """A rich live view on a terminal; plain step lines elsewhere (logs, CI)."""

    def __init__(self, live: bool = True, console: Console | None = None) -> None:
        self.console = console or Console(stderr=True)
        self.live = live and self.console.is_terminal
        self._step = ""
        self._monitor: LiveMonitor | None = None
        self._drops: Callable[[], dict[str, int]] | None = None
        self._wall0 = time.monotonic()
        self._live: Live | None = None

    def __enter__(self) -> Display:
        if self.live:
            self._live = Live(self, console=self.console, refresh_per_second=4, transient=True)
            self._live.__enter__()
        return self

    def __exit__(self, *exc_info: Any) -> None:
        if self._live is not None:
            self._live.__exit__(*exc_info)
            self._live = None

    def step(self, sid: str, label: str) -> None:
        self._step = f"step {sid}: {label}"
        if not self.live:
            self.console.print(escape(self._step), highlight=False)

    def monitor(
        self, monitor: LiveMonitor | None, drops: Callable[[], dict[str, int]] | None = None
    ) -> None:
        """Show (or stop showing) an acquisition's live monitor and its sinks' drops."""
        self._monitor = monitor
        self._drops = drops

    def __rich__(self) -> Group:
        wall = time.monotonic() - self._wall0
        parts: list[Any] = [Text(f"{self._step}    wall {wall:7.1f} s", style="bold")]
        monitor = self._monitor
        if monitor is not None:
            snap = monitor.snapshot()
            speed = snap["speed"] or 0.0
            drops = self._drops() if self._drops else {}
            parts.append(
                Text(
                    f"stream {snap['stream_time_s']:.1f} s ({speed:.1f}x its wall time)  "
                    f"records {snap['records']}  gaps {snap['gaps']}  "
                    f"drops {sum(drops.values())}"
                )
            )
            parts.append(monitor.table())
        return Group(*parts)
