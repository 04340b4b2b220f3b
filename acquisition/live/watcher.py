"""A run directory watched as it grows: what the live page shows, read from the run's files
(progress, summary, run store, data, filters) and never from the acquisition itself."""

from __future__ import annotations

import json
import logging
import math
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from cryodaq.acquisition.live.acquisition_view import AcquisitionView
from cryodaq.acquisition.live.campaign_view import CampaignView
from cryodaq.acquisition.live.instruments_view import DataFiles, Thermometry, step_temperatures
from cryodaq.acquisition.store.format import RunStoreError
from cryodaq.acquisition.store.layout import STORE
from cryodaq.acquisition.store.reader import RunReader
from cryodaq.acquisition.stream.online_analysis import StoredFilter, StoredFilterError

log = logging.getLogger(__name__)

#: Where a pulses analysis leaves its stored filters (`StoredFilter`) in a run directory.
FILTERS = "filters"


def _finite(value: Any) -> Any:
    """`value` with every non-finite float made None (JSON has no NaN)."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(v) for v in value]
    return value


def to_json(value: Any) -> str:
    """Compact JSON of `value`, non-finite floats as null."""
    try:
        return json.dumps(value, separators=(",", ":"), allow_nan=False)
    except ValueError:
        return json.dumps(_finite(value), separators=(",", ":"))


def _committed(reader: RunReader, acq: str) -> bool:
    """Whether acquisition `acq` has its arrays and a commit (it is listed a moment before)."""
    try:
        reader.commit(acq)
    except RunStoreError:
        return False
    return True


class UnknownChannel(LookupError):
    """A page asked for a channel the acquisition does not have; the message says which."""


class RunWatcher:
    """Reads a run directory incrementally; thread-safe."""

    def __init__(self, run_dir: Path, budget_s: float = 0.2) -> None:
        self.run_dir = Path(run_dir)
        self.budget_s = budget_s
        self.campaign = CampaignView(self.run_dir)
        self.data = DataFiles(self.run_dir)
        self.thermometry = Thermometry(self.run_dir)
        self._lock = threading.Lock()
        self._reader: RunReader | None = None
        self._acq: AcquisitionView | None = None
        self._filters: dict[Path, float] = {}
        self._problem: str | None = None
        self._shared: str | None = None
        self._pieces: dict[tuple, str] = {}
        #: Whether the run had ended (completed, interrupted, failed) at the last look.
        self.ended = False

    def look(self) -> None:
        """Read what is new in the run directory, and make the content every page shares."""
        with self._lock:
            try:
                self.thermometry.look()
                self._look_store()
                self._problem = None
            except (RunStoreError, OSError, KeyError, ValueError) as exc:
                self._problem = f"run store: {exc}"
                log.debug("live view: %s", exc)
            self._shared = self._shared_content()

    def _shared_content(self) -> str:
        """The page content of every selection, as the inside of a JSON object."""
        acq = self._acq
        totals = acq.totals() if acq else None
        stream = acq.stream_time_s if acq and not totals["closed"] else 0.0
        campaign = self.campaign.snapshot(stream)
        campaign["lines_ev"] = self.campaign.lines_ev
        self.ended = campaign["end"] is not None
        shared = {
            "campaign": campaign,
            "problem": self._problem,
            "acquisition": totals,
            "channels": acq.channel_rows() if acq else [],
            "temperatures": self.thermometry.merged(self.campaign.derived(step_temperatures)),
            "haloscope": self.data.haloscope(),
            "umux": self.data.umux(),
        }
        return to_json(shared)[1:-1]

    def _look_store(self) -> None:
        if self._reader is None:
            if not (self.run_dir / STORE / "zarr.json").exists():
                return
            self._reader = RunReader(self.run_dir / STORE)
        latest = next(
            (n for n in reversed(self._reader.acquisitions()) if _committed(self._reader, n)), None
        )
        if latest is None:
            return
        if self._acq is None or self._acq.name != latest:
            self._acq = AcquisitionView(self._reader, latest)
            self._filters = {}
        self._load_filters()
        self._acq.look(self.budget_s)

    def _load_filters(self) -> None:
        """Stored filters (a pulses analysis's) give live energies for the channels they cover."""
        folder = self.run_dir / FILTERS
        if not folder.is_dir():
            return
        for path in sorted(folder.glob("*.npz")):
            mtime = path.stat().st_mtime
            if self._filters.get(path) == mtime:
                continue
            self._filters[path] = mtime
            try:
                stored = StoredFilter.load(path)
            except StoredFilterError as exc:
                log.warning("live view: %s", exc)
                continue
            for ch, f in stored.filters.items():
                if ch in self._acq.state and f.weights.size == self._acq.record_length:
                    self._acq.filters.setdefault(ch, f)

    def check_channel(self, channel: int | None) -> None:
        """`UnknownChannel` if the acquisition seen so far has no `channel` (None: the first)."""
        with self._lock:
            acq = self._acq
            if channel is not None and acq is not None and channel not in acq.state:
                raise UnknownChannel(
                    f"channel {channel}: acquisition {acq.name} has channels "
                    f"{', '.join(map(str, acq.channels))}"
                )

    def payload(self, channel: int | None = None, summed: bool = True) -> str:
        """Everything the page shows as JSON, for pulses of `channel` (None: the first) and
        the spectrum of that channel or `summed` over all; as of the last `look`.
        `UnknownChannel` if the acquisition has no `channel`."""
        self.check_channel(channel)
        with self._lock:
            if self._shared is None:
                self._shared = self._shared_content()
            acq = self._acq
            pulses = spectrum = "null"
            if acq is not None:
                if channel not in acq.state:
                    channel = acq.channels[0]
                read = sum(st.read + st.energies_read for st in acq.state.values())
                pulses = self._cached(
                    ("pulses", acq.name, channel, acq.state[channel].read),
                    lambda: acq.pulses(channel),
                )
                chosen = None if summed else channel
                spectrum = self._cached(
                    ("spectrum", acq.name, chosen, read), lambda: acq.spectrum(chosen)
                )
            return f'{{{self._shared},"pulses":{pulses},"spectrum":{spectrum}}}'

    def _cached(self, key: tuple, make: Callable[[], Any]) -> str:
        """JSON of `make()`, made again only when `key` (what it depends on) changes."""
        if key not in self._pieces:
            if len(self._pieces) > 256:
                self._pieces.clear()
            self._pieces[key] = to_json(make())
        return self._pieces[key]

    def view(self, channel: int | None = None, summed: bool = True) -> dict[str, Any]:
        """`payload` as a dict."""
        return json.loads(self.payload(channel, summed))
