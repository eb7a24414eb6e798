"""Asynchronous front of the journal: one writer thread, group commit.

The event loop never waits for an fsync: it queues work with :meth:`JournalWriter.submit`
and friends, the writer thread drains everything queued (up to ``max_batch``) into ONE
transaction (one fsync), and the callbacks run afterwards, in submission order, through
the injected ``dispatch`` (``loop.call_soon_threadsafe`` in the daemon), i.e. on the loop.

Housekeeping (retention pruning, size budget, checkpoint, incremental vacuum:
gateway/adapters/journal/_retention.py) runs on the same thread, one bounded step at a
time: after each batch and while the queue is idle (the thread wakes every
``maintenance_poll_s`` to look whether a pass is due). A queued alarm therefore waits for
at most one step, never for a whole pass.
"""
from __future__ import annotations

import logging
import queue
import threading
from dataclasses import dataclass
from typing import Any, Callable

from gateway.domain.model import Event
from gateway.domain.ports import JournalDepth

from gateway.adapters.journal._errors import JournalClosed, JournalError
from gateway.adapters.journal._store import AppendOutcome, AppendResult, SqliteJournal

log = logging.getLogger(__name__)

Dispatch = Callable[[Callable[[], None]], None]
AppendCallback = Callable[[Event, AppendResult], None]


def _direct(fn: Callable[[], None]) -> None:
    fn()


@dataclass
class _Op:
    kind: str                     # "append" | "delivered" | "ack" | "state" | "call" | "stop"
    event: Event | None = None
    ids: list[str] | None = None
    ack: tuple[str, str] | None = None
    state: tuple[str, bytes] | None = None
    fn: Callable[[SqliteJournal], Any] | None = None
    callback: Callable[..., None] | None = None


class JournalWriter:
    """Writer thread in front of a :class:`SqliteJournal`.

    Keyword arguments: ``dispatch`` runs each callback (default: directly on the writer
    thread; the daemon passes ``loop.call_soon_threadsafe``); ``max_batch`` (1024) caps
    the operations per transaction; ``maintenance_poll_s`` (1.0) is how often an idle
    writer looks whether a maintenance pass is due (``None``: no maintenance on this
    writer, e.g. a tool that only reads).
    """

    def __init__(self, journal: SqliteJournal, *, dispatch: Dispatch | None = None, max_batch: int = 1024,
                 maintenance_poll_s: float | None = 1.0) -> None:
        self.journal = journal
        self._dispatch = dispatch or _direct
        self._max_batch = max_batch
        self._maintenance_poll_s = maintenance_poll_s
        self._maintaining = False
        self._q: queue.SimpleQueue[_Op] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._closed = False
        self._pending_state: dict[str, bytes] = {}
        self._state_retry: list[tuple[str, bytes]] = []
        self._state_lock = threading.Lock()
        self._counter_refill = False
        self.batches = 0
        self.state_failures = 0
        self.last_error: str | None = None

    # ---- lifecycle -------------------------------------------------------------
    def start(self) -> "JournalWriter":
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="journal-writer", daemon=True)
            self._thread.start()
        return self

    def stop(self, timeout_s: float = 10.0) -> None:
        """Finish queued work, then stop the thread (the journal stays open)."""
        if self._thread is None:
            return
        self._closed = True
        self._q.put(_Op("stop"))
        self._thread.join(timeout_s)
        self._thread = None

    # ---- operations (thread-safe, non-blocking) ----------------------------------
    def submit(self, event: Event, callback: AppendCallback | None = None) -> None:
        """Queue an append; ``callback(event, AppendResult)`` after the commit."""
        self._put(_Op("append", event=event, callback=callback))

    def mark_delivered(self, event_ids: list[str]) -> None:
        if event_ids:
            self._put(_Op("delivered", ids=list(event_ids)))

    def mark_acknowledged(self, event_id: str, status: str) -> None:
        self._put(_Op("ack", ack=(event_id, status)))

    def set_state(self, key: str, value: bytes) -> None:
        """Queue a state write (group-committed with the next batch). :meth:`get_state`
        sees it at once; it is durable after the batch's commit."""
        value = bytes(value)
        with self._state_lock:
            self._pending_state[key] = value
        self._put(_Op("state", state=(key, value)))

    def get_state(self, key: str) -> bytes | None:
        """Latest value: a queued :meth:`set_state`, else the committed one. Never waits
        for a commit (reads on the journal's read connection); safe on the event loop."""
        with self._state_lock:
            if key in self._pending_state:
                return self._pending_state[key]
        return self.journal.get_state(key)

    def contains(self, event_id: str) -> bool:
        """Committed state (the journal's read connection); never waits for a commit."""
        return self.journal.contains(event_id)

    def next_gateway_counter(self) -> int:
        """Next durable gateway counter, from the block already reserved in ``<path>.hwm``
        (memory only: safe on the event loop). When less than half a block is left the next
        block is reserved on the writer thread, so the loop does not wait for the hwm file's
        fsync; only if that failed and the block is used up does this call write the file
        itself (and may raise :class:`JournalError`)."""
        value = self.journal.next_gateway_counter()
        if not self._counter_refill and self.journal.counters_left() < self.journal.counter_block // 2:
            self._counter_refill = True

            def done(_left: object = None) -> None:
                self._counter_refill = False

            def failed(exc: BaseException) -> None:
                self._counter_refill = False
                log.error("reserving gateway counters ahead failed: %s", exc)
            try:
                self.call(lambda j: j.reserve_counters_ahead(), done, on_error=failed)
            except JournalClosed:
                self._counter_refill = False
        return value

    def call(self, fn: Callable[[SqliteJournal], Any], callback: Callable[[Any], None] | None = None,
             on_error: Callable[[BaseException], None] | None = None) -> None:
        """Run ``fn(journal)`` on the writer thread after the queued writes; ``callback(result)``."""
        def cb(result: Any, error: BaseException | None = None) -> None:
            if error is not None:
                if on_error is not None:
                    on_error(error)
                else:
                    log.error("journal call %r failed: %s", fn, error)
            elif callback is not None:
                callback(result)
        self._put(_Op("call", fn=fn, callback=cb))

    def depth(self) -> JournalDepth:
        return self.journal.depth()

    def _put(self, op: _Op) -> None:
        if self._closed:
            raise JournalClosed("journal writer is stopped", path=self.journal.path)
        self._q.put(op)

    def run_pending(self) -> int:
        """Single-threaded use (tests, tools): process everything queued on THIS thread.

        Only valid while the thread is not started. Returns the number of operations run.
        """
        if self._thread is not None:
            raise JournalError("run_pending() is for a writer whose thread is not started", path=self.journal.path)
        n = 0
        while True:
            ops = []
            while len(ops) < self._max_batch:
                try:
                    ops.append(self._q.get_nowait())
                except queue.Empty:
                    break
            if not ops:
                return n
            n += len(ops)
            self._process([op for op in ops if op.kind != "stop"])

    # ---- thread ------------------------------------------------------------------
    def _run(self) -> None:
        while True:
            try:
                if self._maintaining:              # a pass is under way: next step unless work is queued
                    first = self._q.get_nowait()
                elif self._maintenance_poll_s is None:
                    first = self._q.get()
                else:
                    first = self._q.get(timeout=self._maintenance_poll_s)
            except queue.Empty:
                self._maintain()
                continue
            ops = [first]
            while len(ops) < self._max_batch:
                try:
                    ops.append(self._q.get_nowait())
                except queue.Empty:
                    break
            stop = any(op.kind == "stop" for op in ops)
            try:
                self._process([op for op in ops if op.kind != "stop"])
            except Exception:  # noqa: BLE001 - the writer must survive; failure is logged and reported
                log.exception("journal writer batch failed")
            if stop:
                return
            self._maintain()

    def _maintain(self) -> None:
        """One maintenance step if a pass is due or under way (never raises)."""
        if self._maintenance_poll_s is None:
            return
        try:
            self._maintaining = self.journal.maintain_step()
        except JournalClosed:
            self._maintaining = False
        except Exception:  # noqa: BLE001 - the writer must survive; the pass is retried at its next interval
            self._maintaining = False
            log.exception("journal maintenance step failed")

    def _process(self, ops: list[_Op]) -> None:
        if not ops:
            return
        appends = [op for op in ops if op.kind == "append"]
        delivered = [i for op in ops if op.kind == "delivered" for i in (op.ids or [])]
        acks = [op.ack for op in ops if op.kind == "ack" and op.ack is not None]
        states = self._state_retry + [op.state for op in ops if op.kind == "state" and op.state is not None]
        self._state_retry = []
        results: list[AppendResult] = []
        if appends or delivered or acks or states:
            try:
                results = self.journal.apply([op.event for op in appends], delivered, acks,  # type: ignore[misc]
                                             states)
                self.batches += 1
                self.last_error = None
                if states:
                    with self._state_lock:
                        for key, value in states:
                            if self._pending_state.get(key) is value:
                                del self._pending_state[key]
            except JournalError as exc:
                # Delivery/ack marks are lost and will be re-delivered (receivers
                # de-duplicate on event_id); state values stay visible through get_state
                # and are written with the next batch; appends come back FAILED.
                self.last_error = str(exc)
                if states:
                    self.state_failures += 1
                log.error("journal write failed: %s", exc)
                results = [AppendResult(AppendOutcome.FAILED, error=str(exc)) for _ in appends]
                with self._state_lock:   # retried with the next batch (no busy loop on a full disk)
                    self._state_retry = [(k, v) for k, v in states if self._pending_state.get(k) is v]
            if any(r.outcome is AppendOutcome.FAILED for r in results):
                self.last_error = next(r.error for r in results if r.outcome is AppendOutcome.FAILED)
        todo: list[Callable[[], None]] = []
        for op, r in zip(appends, results):
            if op.callback is not None:
                todo.append(lambda cb=op.callback, e=op.event, r=r: cb(e, r))
        for op in ops:
            if op.kind == "call" and op.callback is not None:
                try:
                    res = op.fn(self.journal)  # type: ignore[misc]
                    err = None
                except Exception as exc:  # noqa: BLE001 - handed to the caller's on_error
                    res, err = None, exc
                todo.append(lambda cb=op.callback, res=res, err=err: cb(res, err))
        if todo:
            # one hand-over (one loop wake-up) per batch; callbacks keep their order
            self._dispatch(lambda: self._run_all(todo))

    @staticmethod
    def _run_all(todo: list[Callable[[], None]]) -> None:
        for fn in todo:
            try:
                fn()
            except Exception:  # noqa: BLE001 - one failing callback must not starve the rest
                log.exception("journal callback failed")
