"""One reader of the run for every browser: looks at the run once a period while someone
watches, and keeps the latest page content per selection (channel, summed or not)."""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter

from cryodaq.acquisition.live.watcher import RunWatcher, UnknownChannel

log = logging.getLogger(__name__)

Selection = tuple[int | None, bool]


class LiveHub:
    """Looks at the run every `interval_s` while a selection is subscribed; never otherwise."""

    def __init__(self, watcher: RunWatcher, interval_s: float = 1.0) -> None:
        self.watcher = watcher
        self.interval_s = interval_s
        self._lock = threading.Lock()
        self._wanted: Counter[Selection] = Counter()
        self._views: dict[Selection, tuple[int, str]] = {}
        self._seen: dict[int, int] = {}  # subscriber id -> version it last got
        self.version = 0
        self.final = False
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="live-hub", daemon=True)
        self._thread.start()

    def subscribe(self, selection: Selection, subscriber: int) -> None:
        """A browser (`subscriber`) watches `selection` from now on."""
        with self._lock:
            self._wanted[selection] += 1
            self._seen[subscriber] = -1
        self._wake.set()

    def unsubscribe(self, selection: Selection, subscriber: int) -> None:
        """The browser left."""
        with self._lock:
            self._wanted[selection] -= 1
            if self._wanted[selection] <= 0:
                del self._wanted[selection]
            self._seen.pop(subscriber, None)

    def latest(self, selection: Selection, subscriber: int) -> tuple[int, str | None]:
        """The latest page content of `selection` and its version (marked as delivered)."""
        with self._lock:
            version, payload = self._views.get(selection, (-1, None))
            if payload is not None and subscriber in self._seen:
                self._seen[subscriber] = version
            return version, payload

    def now(self, selection: Selection) -> str:
        """Page content of `selection`, read now (for a single request)."""
        self.watcher.look()
        return self.watcher.payload(*selection)

    def _payload(self, selection: Selection) -> str:
        """Content of `selection`; of the first channel if a stream subscribed (before the
        acquisition existed) to a channel it does not have (`/api/events` refuses one after)."""
        try:
            return self.watcher.payload(*selection)
        except UnknownChannel:
            return self.watcher.payload(None, selection[1])

    def _update(self) -> None:
        with self._lock:
            wanted = list(self._wanted)
        if not wanted:
            return
        self.watcher.look()
        views = {s: self._payload(s) for s in wanted}
        with self._lock:
            self.version += 1
            for s, payload in views.items():
                self._views[s] = (self.version, payload)
            # A run that ended before (or while) it was watched: its browsers get the end.
            self.final = self.watcher.ended or self._stop.is_set()

    def ended_view(self, selection: Selection) -> None:
        """After the end: the final content of a selection nobody asked for before it."""
        payload = self._payload(selection)
        with self._lock:
            self._views.setdefault(selection, (self.version, payload))

    def _run(self) -> None:
        while not self._stop.is_set():
            t0 = time.monotonic()
            try:
                self._update()
            except Exception:  # a view that failed must not end the live view
                log.exception("live view: update failed")
            self._wake.wait(max(0.05, self.interval_s - (time.monotonic() - t0)))
            self._wake.clear()

    def finish(self, wait_s: float = 3.0) -> None:
        """The run ended: one last look, and up to `wait_s` for every browser to get it."""
        self._stop.set()
        self._wake.set()
        self._thread.join()
        try:
            self._update()
        except Exception:  # the run's outcome matters more than its last view
            log.exception("live view: the last update failed")
        with self._lock:
            final = self.version
            self.final = True
        deadline = time.monotonic() + wait_s
        while time.monotonic() < deadline:
            with self._lock:
                if all(v >= final for v in self._seen.values()):
                    return
            time.sleep(0.05)
