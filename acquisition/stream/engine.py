"""One acquisition: read blocks from a source, trigger them, hand every batch to the sinks.

The run store, when given, is fed with back-pressure (a stored run never loses a batch to a
slow disk: the loop waits). Other sinks choose back-pressure or counted drops. The loop ends
when the requested stream time has been processed, the source runs dry, a stop is requested
(Ctrl-C: after the current block), or the instrument fails; in every case the sinks are
drained, the drops are written to the store, and the store is committed and closed, so what
was acquired is kept.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import signal
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from cryodaq.acquisition.errors import CryodaqError
from cryodaq.acquisition.events import EventBatch
from cryodaq.acquisition.store.acquisition_writer import AcquisitionWriter
from cryodaq.acquisition.store.commit import Commit
from cryodaq.acquisition.store.format import RunStoreError
from cryodaq.acquisition.store.writer import RunWriter
from cryodaq.acquisition.stream.sinks import CallbackSink, Fanout, Sink, SinkError
from cryodaq.acquisition.stream.sources import Block, BlockSource
from cryodaq.acquisition.stream.trigger import TriggerConfig, TriggerEngine
from cryodaq.drivers.errors import InstrumentError

log = logging.getLogger(__name__)

STORE_SINK = "store"
#: The acquisition fails when the run store has taken no batch for this long (a stalled disk
#: or network file system): waiting on would hang the run with nothing stored.
STORE_STALL_S = 120.0


class AcquisitionError(CryodaqError):
    """An acquisition stopped on a fault (source or run store); what was committed before is
    kept, and `result` says how much."""

    result: AcquisitionResult | None = None
    #: What to do before `cryodaq run --resume` (e.g. "free space"), when the fault says.
    resume_hint: str | None = None


class StoreFailed(CryodaqError):
    """The run store could not take a batch (disk full, ...): the acquisition must stop."""


@dataclass(frozen=True)
class SinkSpec:
    """A sink to subscribe: `policy` "block" (back-pressure) or "drop" (counted drops)."""

    sink: Sink
    policy: str = "block"
    maxsize: int = 64


@dataclass
class AcquisitionResult:
    """What an acquisition did, for the run summary."""

    name: str
    source: str
    sample_rate_hz: float
    channels: tuple[int, ...] = ()
    blocks: int = 0
    samples_processed: int = 0
    records: int = 0
    records_lost_to_gaps: int = 0
    records_incomplete_at_stop: int = 0
    gaps: int = 0
    gap_samples: int = 0
    drops: dict[str, dict[str, int]] = field(default_factory=dict)
    wall_time_s: float = 0.0
    end_reason: str = "completed"

    @property
    def live_time_s(self) -> float:
        """Stream time actually processed (gaps excluded)."""
        return self.samples_processed / self.sample_rate_hz if self.sample_rate_hz else 0.0

    def as_dict(self) -> dict[str, Any]:
        out = {k: v for k, v in vars(self).items() if k != "channels"}
        out["channels"] = list(self.channels)
        out["live_time_s"] = self.live_time_s
        return out


class StopFlag:
    """Set by Ctrl-C (or by another thread) to end the acquisition after the current block."""

    def __init__(self) -> None:
        self._event = threading.Event()
        self.reason = ""

    def set(self, reason: str = "stopped") -> None:
        self.reason = self.reason or reason
        self._event.set()

    def __bool__(self) -> bool:
        return self._event.is_set()


@contextlib.contextmanager
def stop_on_sigint(flag: StopFlag) -> Iterator[None]:
    """While active, the first Ctrl-C sets `flag`; a second one interrupts at once."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum: int, frame: object) -> None:
        if flag:
            raise KeyboardInterrupt
        log.warning("Ctrl-C: stopping after the current block (again to abort)")
        flag.set("interrupted")

    previous = signal.signal(signal.SIGINT, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


class Acquisition:
    """Runs one source through a trigger engine to the run store and other sinks."""

    def __init__(
        self,
        source: BlockSource,
        trigger: TriggerConfig,
        *,
        name: str = "acquisition",
        store: RunWriter | None = None,
        sinks: Mapping[str, SinkSpec] | None = None,
        duration_s: float | None = None,
        external: Mapping[int, Sequence[int]] | None = None,
        metadata: Mapping[str, Any] | None = None,
    ) -> None:
        if duration_s is not None and not duration_s > 0:
            raise ValueError(f"{name}: duration_s must be > 0, got {duration_s}")
        if sinks and STORE_SINK in sinks:
            raise ValueError(f"{name}: sink name {STORE_SINK!r} is reserved for the run store")
        self.source = source
        self.trigger = trigger
        self.name = name
        self.store = store
        self.sinks = dict(sinks or {})
        self.duration_s = duration_s
        self.external = external
        self.metadata = dict(metadata or {})
        self.stop = StopFlag()

    def drops(self) -> dict[str, int]:
        """Records dropped so far, per sink (readable from another thread)."""
        fanout = getattr(self, "_fanout", None)
        if fanout is None:
            return {}
        return {name: d.records for name, d in fanout.drops().items()}

    def run(self) -> AcquisitionResult:
        """Acquire until done; raises `AcquisitionError` (after storing) if the source fails."""
        result = AcquisitionResult(self.name, self.source.name, 0.0)
        start = time.monotonic()
        failure: BaseException | None = None
        with stop_on_sigint(self.stop):
            self.source.start()
            try:
                self._loop(result)
            except (InstrumentError, CryodaqError, OSError) as exc:
                failure = exc
                result.end_reason = f"error: {exc}"
            except KeyboardInterrupt as exc:
                result.end_reason = "aborted"
                failure = exc
            finally:
                with contextlib.suppress(InstrumentError, OSError):
                    self.source.stop()
                unstored = self._finish(result)
                result.wall_time_s = time.monotonic() - start
        if failure is None and unstored is not None:  # the last flush failed: less was stored
            failure = StoreFailed(f"{type(unstored).__name__}: {unstored}")
            failure.__cause__ = unstored
            result.end_reason = f"error: {failure}"
        if isinstance(failure, KeyboardInterrupt):
            failure.result = result  # type: ignore[attr-defined]
            raise failure
        if failure is not None:
            raise self._error(failure, result) from failure
        return result

    def _error(self, failure: BaseException, result: AcquisitionResult) -> AcquisitionError:
        """The one-line error of a failed acquisition, with `result` as stored."""
        kept = f"{result.records} records ({result.live_time_s:.6g} s) stored"
        os_error = _os_error(failure)
        if isinstance(failure, StoreFailed | RunStoreError) and os_error is not None:
            writer = getattr(self, "_writer", None)
            where = self.store.path if writer is None else writer.directory  # type: ignore[union-attr]
            reason = (
                "no space left on device" if os_error.errno == errno.ENOSPC else os_error.strerror
            )
            error = AcquisitionError(
                f"{self.name}: could not write {os_error.filename or where}: {reason}; {kept}"
            )
            error.resume_hint = "free space" if os_error.errno == errno.ENOSPC else "fix that"
        else:
            if isinstance(failure, StoreFailed | RunStoreError):
                culprit = "the run store"
            elif isinstance(failure, SinkError):
                culprit = "a sink"
            else:
                culprit = f"source {self.source.name!r}"
            error = AcquisitionError(
                f"{self.name}: {culprit} failed after {result.live_time_s:.6g} s of data "
                f"({result.records} records kept): {failure}"
            )
            if isinstance(failure, InstrumentError):  # lost, hung or refusing: it can come back
                error.resume_hint = f"get {self.source.name!r} answering again"
        error.result = result
        return error

    # -- the loop --------------------------------------------------------------------------

    def _loop(self, result: AcquisitionResult) -> None:
        block = self.source.read()
        if block is None:
            result.end_reason = "source empty"
            return
        self._begin(result, block)
        limit = None if self.duration_s is None else round(self.duration_s * result.sample_rate_hz)
        while block is not None:
            if limit is not None:
                left = limit - self._engine.samples_processed
                if block.data.shape[1] > left:
                    block = Block(
                        block.first_sample,
                        block.sample_rate_hz,
                        block.channels,
                        block.data[:, :left],
                    )
            self._publish(self._engine.process(block, self.external), result)
            if limit is not None and self._engine.samples_processed >= limit:
                break
            if self.stop:
                result.end_reason = self.stop.reason
                return
            block = self.source.read()
        if block is None:
            result.end_reason = "source empty"

    def _begin(self, result: AcquisitionResult, first: Block) -> None:
        result.sample_rate_hz = first.sample_rate_hz
        result.channels = first.channels
        self._engine = TriggerEngine(
            self.trigger,
            first.channels,
            first.sample_rate_hz,
            self.source.start_time_ns,
            acquisition=self.name,
        )
        self._fanout = Fanout()
        self._writer: AcquisitionWriter | None = None
        if self.store is not None:
            self._writer = self.store.acquisition(
                self.name,
                list(first.channels),
                self.trigger.record_length,
                self.source.dtype,
                first.sample_rate_hz,
                self.trigger.pretrigger,
                {
                    "source": self.source.name,
                    "unit": self.source.unit,
                    "units_per_value": self.source.units_per_value,
                    "start_time_ns": self.source.start_time_ns,
                    **self.metadata,
                },
            )
            self._fanout.subscribe(STORE_SINK, CallbackSink(self._writer.append), policy="block",
                                   block_timeout_s=STORE_STALL_S)
        for sink_name, spec in self.sinks.items():
            self._fanout.subscribe(sink_name, spec.sink, maxsize=spec.maxsize, policy=spec.policy)

    def _publish(self, batch: EventBatch, result: AcquisitionResult) -> None:
        try:
            self._fanout.publish(batch)
        except SinkError as exc:
            if STORE_SINK in exc.failures:
                raise StoreFailed(
                    f"it took no batch for {STORE_STALL_S:g} s (stalled disk or file system?)"
                ) from None
            raise
        result.blocks += 1
        failed = self._fanout.failures().get(STORE_SINK)
        if failed is not None:  # nothing more would be stored: stop rather than run on
            raise StoreFailed(f"{type(failed).__name__}: {failed}") from failed

    def _finish(self, result: AcquisitionResult) -> BaseException | None:
        """Drain and close the sinks and the store; the store's close error, if it failed."""
        engine = getattr(self, "_engine", None)
        if engine is None:
            return None
        result.samples_processed = engine.samples_processed
        result.records = engine.records_emitted
        result.records_lost_to_gaps = engine.records_lost_to_gaps
        result.records_incomplete_at_stop = engine.records_pending
        result.gaps = len(engine.gaps)
        result.gap_samples = sum(g.samples for g in engine.gaps)
        sink_error: BaseException | None = None
        try:
            self._fanout.close()
        except CryodaqError as exc:  # a failed sink: reported, the rest is kept
            sink_error = exc
            log.error("%s", exc)
        for sink_name, drops in self._fanout.drops().items():
            if drops.batches or drops.records:
                result.drops[sink_name] = {"batches": drops.batches, "records": drops.records}
                if self._writer is not None:
                    self._writer.add_drops(sink_name, drops.records, drops.batches)
        unstored = None
        if self._writer is not None:
            try:
                self._writer.close()
            except (CryodaqError, OSError) as exc:
                unstored = exc
                self._writer.abandon()  # what it committed is all it will ever hold
            _as_committed(result, self._writer.commit)
        if sink_error is not None and result.end_reason == "completed":
            result.end_reason = f"sink failed: {sink_error}"
        return unstored


def _as_committed(result: AcquisitionResult, commit: Commit) -> None:
    """Make `result` say what the store committed (the truth, whatever the engine processed)."""
    result.samples_processed = commit.processed_samples
    result.records = commit.total_rows
    result.records_lost_to_gaps = commit.records_lost_to_gaps
    result.gaps = commit.gaps
    result.gap_samples = commit.gap_samples


def _os_error(exc: BaseException | None) -> OSError | None:
    """The OSError that caused `exc` (itself, or along its causes), if any."""
    seen = set()
    while exc is not None and id(exc) not in seen:
        if isinstance(exc, OSError):
            return exc
        seen.add(id(exc))
        exc = exc.__cause__ or exc.__context__
    return None
