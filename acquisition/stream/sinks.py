"""Fan-out of event batches to sinks, each in its own thread behind a bounded queue.

A sink subscribes with a policy: `"block"` (the producer waits for queue space: back-pressure)
or `"drop"` (a batch that finds the queue full is dropped and counted). A sink that raises is
logged, removed from delivery (later batches are counted as dropped for it) and reported by
`Fanout.close`, which first drains and closes every other sink.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any, Literal, Protocol, runtime_checkable

from cryodaq.acquisition.errors import CryodaqError
from cryodaq.acquisition.events import EventBatch

log = logging.getLogger(__name__)

Policy = Literal["block", "drop"]
POLICIES: tuple[Policy, ...] = ("block", "drop")
_STOP = object()


@runtime_checkable
class Sink(Protocol):
    """Receives every batch (in order) in its own thread; `close` is called once at the end."""

    def consume(self, batch: EventBatch) -> None: ...

    def close(self) -> None: ...


@dataclass(frozen=True)
class Drops:
    """Batches (and the records in them) a sink was offered but never consumed."""

    batches: int = 0
    records: int = 0


@dataclass(frozen=True)
class SinkStats:
    """Delivery figures of one sink; `published == consumed + dropped.batches` once closed."""

    name: str
    policy: Policy
    published: int
    consumed: int
    dropped: Drops
    error: str | None

    def as_dict(self) -> dict[str, Any]:
        """Plain dict for a run summary."""
        return asdict(self)


class SinkError(CryodaqError):
    """One or more sinks failed (raised, or did not finish in time); `failures` names them."""

    def __init__(self, failures: dict[str, BaseException]) -> None:
        self.failures = dict(failures)
        super().__init__(
            "; ".join(f"sink {n!r} failed: {type(e).__name__}: {e}" for n, e in failures.items())
        )


class CallbackSink:
    """A sink that calls a user function with every batch (and `on_close` at the end)."""

    def __init__(
        self,
        fn: Callable[[EventBatch], object],
        on_close: Callable[[], object] | None = None,
    ) -> None:
        self._fn = fn
        self._on_close = on_close

    def consume(self, batch: EventBatch) -> None:
        self._fn(batch)

    def close(self) -> None:
        if self._on_close is not None:
            self._on_close()


class _Worker:
    """One subscribed sink: its queue, thread and counters."""

    def __init__(
        self, name: str, sink: Sink, maxsize: int, policy: Policy, block_timeout_s: float | None
    ) -> None:
        self.name = name
        self.sink = sink
        self.policy = policy
        self.block_timeout_s = block_timeout_s
        self.queue: queue.Queue[Any] = queue.Queue(maxsize)
        self.lock = threading.Lock()
        self.published = 0
        self.consumed = 0
        self.dropped_batches = 0
        self.dropped_records = 0
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, name=f"sink-{name}", daemon=True)
        self.thread.start()

    def _drop(self, batch: EventBatch) -> None:
        with self.lock:
            self.dropped_batches += 1
            self.dropped_records += len(batch)

    def offer(self, batch: EventBatch) -> None:
        """Called by the producer: enqueue, wait, or drop and count according to policy."""
        with self.lock:
            self.published += 1
        if self.error is not None:  # removed: count, never deliver
            self._drop(batch)
        elif self.policy == "drop":
            try:
                self.queue.put_nowait(batch)
            except queue.Full:
                self._drop(batch)
        else:
            try:
                self.queue.put(batch, timeout=self.block_timeout_s)
            except queue.Full:
                self._drop(batch)
                raise SinkError(
                    {self.name: TimeoutError(f"queue full for {self.block_timeout_s} s")}
                ) from None

    def _run(self) -> None:
        while True:
            item = self.queue.get()
            if item is _STOP:
                break
            if self.error is not None:  # keep draining so a blocked producer goes on
                self._drop(item)
                continue
            try:
                self.sink.consume(item)
            except Exception as exc:
                self.error = exc
                self._drop(item)
                log.error("sink %r failed and was removed: %r", self.name, exc, exc_info=exc)
            else:
                with self.lock:
                    self.consumed += 1
        try:
            self.sink.close()
        except Exception as exc:
            log.error("sink %r failed to close: %r", self.name, exc, exc_info=exc)
            if self.error is None:
                self.error = exc

    def stats(self) -> SinkStats:
        with self.lock:
            return SinkStats(
                name=self.name,
                policy=self.policy,
                published=self.published,
                consumed=self.consumed,
                dropped=Drops(self.dropped_batches, self.dropped_records),
                error=None if self.error is None else repr(self.error),
            )


class Fanout:
    """Hands every published `EventBatch` to each subscribed sink through its own queue."""

    def __init__(self) -> None:
        self._workers: dict[str, _Worker] = {}
        self._closed = False

    def subscribe(
        self,
        name: str,
        sink: Sink,
        *,
        maxsize: int = 64,
        policy: Policy = "block",
        block_timeout_s: float | None = None,
    ) -> None:
        """Start delivering to `sink` under `name`.

        `maxsize` bounds its queue (batches). With policy `"block"`, `publish` waits for space,
        at most `block_timeout_s` (None: as long as it takes), then raises `SinkError`.
        """
        if self._closed:
            raise RuntimeError("fan-out is closed")
        if name in self._workers:
            raise ValueError(f"a sink named {name!r} is already subscribed")
        if policy not in POLICIES:
            raise ValueError(f"sink {name!r}: policy must be one of {POLICIES}, got {policy!r}")
        if maxsize < 1:
            raise ValueError(f"sink {name!r}: maxsize must be >= 1, got {maxsize}")
        if not isinstance(sink, Sink):
            raise TypeError(f"sink {name!r} has no consume(batch) and close() methods")
        self._workers[name] = _Worker(name, sink, maxsize, policy, block_timeout_s)

    @property
    def names(self) -> list[str]:
        """Subscribed sink names, in subscription order."""
        return list(self._workers)

    def publish(self, batch: EventBatch) -> None:
        """Offer `batch` to every sink (may wait on `"block"` sinks whose queue is full).

        Raises `SinkError` if a `"block"` sink's queue stayed full for its `block_timeout_s`;
        that sink counts the batch as dropped, the other sinks still got it.
        """
        if self._closed:
            raise RuntimeError("publish after close")
        timeouts: dict[str, BaseException] = {}
        for worker in self._workers.values():  # every sink is offered the batch, then raise
            try:
                worker.offer(batch)
            except SinkError as exc:
                timeouts.update(exc.failures)
        if timeouts:
            raise SinkError(timeouts)

    def drops(self) -> dict[str, Drops]:
        """Per sink: batches and records offered but not consumed (so far)."""
        return {name: w.stats().dropped for name, w in self._workers.items()}

    def failures(self) -> dict[str, BaseException]:
        """Sinks that raised (so far), with the exception."""
        return {n: w.error for n, w in self._workers.items() if w.error is not None}

    def stats(self) -> dict[str, SinkStats]:
        """Per sink delivery figures, for the store and the run summary."""
        return {name: w.stats() for name, w in self._workers.items()}

    def close(self, timeout: float = 30.0) -> None:
        """Let every sink drain its queue, close it and join its thread (within `timeout` s).

        Raises `SinkError` naming every sink that raised or did not finish in time, after all
        the others were drained and closed. A second call does nothing.
        """
        if self._closed:
            return
        self._closed = True
        deadline = time.monotonic() + timeout
        failures: dict[str, BaseException] = {}
        stuck = TimeoutError(f"did not drain and close within {timeout} s")
        for name, w in self._workers.items():
            try:
                w.queue.put(_STOP, timeout=max(0.0, deadline - time.monotonic()))
            except queue.Full:
                failures[name] = stuck
        for name, w in self._workers.items():
            w.thread.join(max(0.0, deadline - time.monotonic()))
            if w.thread.is_alive():
                failures[name] = stuck
            elif w.error is not None:
                failures[name] = w.error
        if failures:
            raise SinkError(failures) from next(iter(failures.values()))

    def __enter__(self) -> Fanout:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()
