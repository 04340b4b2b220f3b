"""Multi-board acquisition: one acquisition task per board (uMUX board or ADC) on Dask.

An `acquire` step with `boards: [...]` acquires its `source` and those boards at the same time.
Each board becomes one `BoardTask`, run by `acquire_board` on a Dask worker (a thread, a local
process or another machine). A task is self-contained, because a worker cannot share the
campaign's open instruments:

- it builds the rig from the same rig spec and opens its own connection to its board. For a
  simulated rig it builds the World from the same seed, brings it to the campaign's virtual
  time, and opens the rig's other instruments too (not the step's other boards). A board's
  detectors are random streams named after the board (`<board>.res<k>`), so the task's board
  sees the same detectors as the campaign's shared World would; the cryostat is integrated
  again under the settings of the moment (no detector model here depends on its history);
- it applies the instruments' settings as the campaign left them (`snapshot`, read back from
  the campaign's instruments at dispatch: rig settings, `set` and `tune` steps alike);
- it writes its own acquisition `<name>-part-<board>` (a resumed one `...-<k>`) of the run
  store through the store's `AcquisitionWriter` (same chunk and commit protocol, so the same
  crash safety; the run's records codec); channel numbers are offset per board (`offset` +
  the board's own number) so parts never share a channel. Only the campaign's `RunWriter`
  writes the run's root attributes: it lists a part (`RunWriter.adopt`) as soon as the
  task has created it;
- a failure (driver error, lost connection, store) ends that board's task with what it stored
  kept, and is returned, never raised, so the other boards run on.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryodaq.acquisition.clock import clock_for
from cryodaq.acquisition.errors import CryodaqError
from cryodaq.acquisition.rig import Rig, RigSpec
from cryodaq.acquisition.store.acquisition_writer import AcquisitionWriter
from cryodaq.acquisition.store.codecs import DEFAULT_RECORDS_CODEC
from cryodaq.acquisition.store.format import DEFAULT_BUFFER_BYTES, check_name, group_attrs
from cryodaq.acquisition.store.writer import RunWriter
from cryodaq.acquisition.stream.engine import Acquisition, AcquisitionError, AcquisitionResult
from cryodaq.drivers.base import Instrument
from cryodaq.drivers.errors import InstrumentError

log = logging.getLogger(__name__)

#: Per instrument: group -> channel -> setting name -> value ("" group: the instrument's own).
Snapshot = dict[str, dict[str, dict[str, Any]]]


def snapshot(inst: Instrument) -> dict[str, dict[str, Any]]:
    """Every writable setting of `inst` and of each of its channels, read back."""
    out = {"": _writable(inst, inst.settings())}
    for group, (ids, _) in inst.channel_groups().items():
        for ch in ids:
            node = inst.group_channel(group, ch)
            out[f"{group}:{ch}"] = _writable(node, node.settings())
    return out


def _writable(node: Any, values: dict[str, Any]) -> dict[str, Any]:
    declared = node.declared_settings()
    return {n: v for n, v in values.items() if not declared[n].readonly}


def restore(inst: Instrument, state: Mapping[str, Mapping[str, Any]]) -> None:
    """Apply a `snapshot`: the instrument's own settings, then channels switched off, then the
    channels' settings (so a channel budget is never exceeded on the way)."""
    declared = inst.declared_settings()
    for name, value in state.get("", {}).items():
        inst.set(declared[name], value)
    channels = [(key, values) for key, values in state.items() if key]
    for off_first in (True, False):
        for key, values in channels:
            group, _, ch = key.partition(":")
            ids = inst.channel_groups()[group][0]
            node = inst.group_channel(group, next(c for c in ids if str(c) == ch))
            node_declared = node.declared_settings()
            for name, value in values.items():
                if (name == "enabled" and value is False) == off_first:
                    node.set(node_declared[name], value)


class BoardStore:
    """The run store as a board task sees it: it creates and writes its own acquisition only
    (an `AcquisitionWriter`, the same chunk and commit protocol as in-process acquisitions);
    the campaign's `RunWriter` lists it in the run (`RunWriter.adopt`)."""

    def __init__(self, path: Path, **options: Any) -> None:
        self.path = Path(path)
        self._options = {
            "flush_interval_s": 0.5,
            "buffer_bytes": DEFAULT_BUFFER_BYTES,
            "compress_records": True,
            "background_flush": True,
            "records_codec": DEFAULT_RECORDS_CODEC,
            **options,
        }

    def acquisition(
        self,
        name: str,
        channels: Sequence[int],
        record_length: int,
        dtype: Any,
        sample_rate_hz: float,
        pretrigger: int,
        metadata: Mapping[str, Any] | None = None,
    ) -> AcquisitionWriter:
        check_name(name, f"{self.path}: acquisition name")
        if (self.path / "acquisitions" / name).exists():
            raise CryodaqError(f"{self.path}: acquisition {name!r} exists already")
        return AcquisitionWriter(
            self,
            name, channels, record_length, dtype, sample_rate_hz, pretrigger, metadata,
            **self._options,
        )  # fmt: skip

    def _acquisition_closed(self, acq: AcquisitionWriter) -> None:
        """Nothing to do: the campaign's RunWriter keeps the run's list."""


#: Makes a step's acquisition on one opened board: called as `build(inst, store_name,
#: duration_s, store, clock, offset=..., metadata=...)`; picklable (it travels with the task).
AcquisitionBuilder = Callable[..., Acquisition]


@dataclass(frozen=True)
class BoardTask:
    """Everything one board's acquisition needs, picklable (sent to a Dask worker)."""

    rig: RigSpec
    board: str
    others: tuple[str, ...]  # the step's other boards: not opened by this task
    offset: int
    state: Snapshot
    start_s: float  # the campaign's virtual time at dispatch (simulated rigs)
    build: AcquisitionBuilder  # the step's acquisition on this board
    store: Path
    store_name: str
    duration_s: float
    stop_event: str | None = None  # name of a distributed.Event that stops the acquisition
    epoch_ns: int = 0  # the campaign's clock epoch (a simulated rig's time stamps)
    records_codec: str = DEFAULT_RECORDS_CODEC  # the run's (`RunWriter.records_codec`)
    buffer_bytes: int = DEFAULT_BUFFER_BYTES  # the run's (`RunWriter.buffer_bytes`)


@dataclass(frozen=True)
class BoardOutcome:
    """What a board task did: its result (also after a failure: what it kept) and the error."""

    board: str
    store_name: str
    result: AcquisitionResult | None
    error: str | None = None


def acquire_board(task: BoardTask) -> BoardOutcome:
    """Run one board's acquisition (see the module docstring); never raises a board fault."""
    try:
        return BoardOutcome(task.board, task.store_name, _acquire(task))
    except (AcquisitionError, CryodaqError, InstrumentError, OSError) as exc:
        return BoardOutcome(task.board, task.store_name, getattr(exc, "result", None), str(exc))


def _acquire(task: BoardTask) -> AcquisitionResult:
    with Rig(task.rig) as rig:
        if rig.world is not None:
            rig.world.advance_to(task.start_s)
            names = [n for n in task.rig.instruments if n not in task.others]
        else:
            names = [task.board]
        clock = clock_for(rig, task.epoch_ns)
        for name in names:
            inst = rig.open(name)
            if name in task.state:
                restore(inst, task.state[name])
        acquisition = task.build(
            rig.instruments[task.board],
            task.store_name,
            task.duration_s,
            BoardStore(
                task.store, records_codec=task.records_codec, buffer_bytes=task.buffer_bytes
            ),
            clock,
            offset=task.offset,
            metadata={"board": task.board, "channel_offset": task.offset},
        )
        with _stopped_by(task.stop_event, acquisition.stop.set):
            return acquisition.run()


@contextlib.contextmanager
def _stopped_by(event_name: str | None, stop: Callable[[str], None]) -> Any:
    """While active, the cluster-wide event `event_name` being set stops the acquisition."""
    if event_name is None:
        yield
        return
    from distributed import Event, get_client

    event, done = Event(event_name, client=get_client()), threading.Event()

    def watch() -> None:
        while not done.is_set():
            try:
                if event.wait(0.5):
                    stop("interrupted")
                    return
            except TimeoutError:
                continue
            except Exception as exc:  # the scheduler is gone: nobody can ask for a stop
                log.warning("board task: stop event unavailable (%r)", exc)
                return

    watcher = threading.Thread(target=watch, name="board-stop", daemon=True)
    watcher.start()
    try:
        yield
    finally:
        done.set()
        watcher.join(2.0)


def run_tasks(
    client: Any, tasks: Sequence[BoardTask], store: RunWriter, poll_s: float = 0.2
) -> tuple[list[BoardOutcome], bool]:
    """Run the board tasks on `client`'s cluster and wait for all; each part is listed in the
    run as soon as its task created it. Ctrl-C stops every board after its current block (their
    parts are kept); returns the outcomes and whether Ctrl-C came."""
    from distributed import Event, wait

    futures = client.map(acquire_board, list(tasks), pure=False)
    pending = [t.store_name for t in tasks]
    interrupted = False
    while True:
        try:
            done = wait(futures, timeout=poll_s, return_when="ALL_COMPLETED")
            finished = not done.not_done
        except TimeoutError:
            finished = False
        except KeyboardInterrupt:
            interrupted = True
            for t in tasks:
                if t.stop_event is not None:
                    Event(t.stop_event).set()
            continue
        adopted = _adopt_created(store, pending)
        pending = [n for n in pending if n not in adopted]
        if finished:
            break
    outcomes = []
    for task, future in zip(tasks, futures, strict=True):
        try:
            outcomes.append(future.result())
        except Exception as exc:  # the worker died: what the part committed stays readable
            outcomes.append(BoardOutcome(task.board, task.store_name, None, f"{exc!r}"))
    _adopt_created(store, pending)
    return outcomes, interrupted


def _adopt_created(store: RunWriter, names: Sequence[str]) -> set[str]:
    """List in the run every part in `names` whose task has created it (its first commit)."""
    adopted = set()
    for name in names:
        with contextlib.suppress(OSError, ValueError, KeyError):
            if group_attrs(store.path / "acquisitions" / name).get("commit") is None:
                continue
            store.adopt(name)
            adopted.add(name)
    return adopted
