"""An ingest worker: shared subscription in, batched transactional writes, ack after commit.

Several workers (threads or processes, one MQTT client and one Store each) subscribe
to ``$share/fleet/...`` so the broker splits the stream between them. A message is
PUBACKed only after the batch holding it is committed, so a crash before the commit
leaves it with the broker for redelivery (at-least-once); the tables de-duplicate.

Poison never stalls a worker. Known poison is quarantined while the batch is built
(``_screen``). If the store still refuses a batch, the worker asks it whether it is
reachable at all (``sink.ping()``): a dead or busy database keeps the batch and retries
with back-off (the broker keeps the messages too); a healthy database that refuses the
batch means one message in it is bad — the batch is split in halves until the message
that fails alone is found, quarantined (reason ``store_rejected``) and acknowledged.
A write error of any type is handled this way: the writer thread never dies.
"""
from __future__ import annotations

import logging
import socket
import threading
import time
from collections import deque
from dataclasses import dataclass
from typing import Any, Callable

from fleet.clock import Clock
from fleet.errors import StoreBusy
from fleet.monitoring._ingest import SHARE_GROUP, TOPICS, Batch, MonitorSink, build_batch, shared
from fleet.monitoring._screen import Origin, Reason

log = logging.getLogger(__name__)


@dataclass
class WorkerStats:
    received: int = 0
    written: int = 0
    batches: int = 0
    rejected: int = 0             # messages quarantined (poison, not owned, store refused)
    write_errors: int = 0
    split_writes: int = 0         # batches split to find a message the store refused
    write_s: float = 0.0          # wall time spent in sink.write (DB round trips + commit)
    decode_s: float = 0.0
    writer_cpu_s: float = 0.0     # CPU time of the writer thread (decode + SQL building + driver)


class _Unopened:
    def write(self, batch) -> None:
        raise RuntimeError("sink not opened yet (it is created on the writer thread)")


class IngestWorker:
    """``client`` is a fleet.mqtt.MqttClient created with ``manual_ack=True`` (not yet connected).

    ``sink`` is a MonitorSink, or a zero-argument factory returning one: the factory runs on
    the writer thread, which SQLite connections require (one Store per thread).
    """

    HEARTBEAT_S = 5.0             # counters to the store at most this often (and on stop)

    def __init__(self, client, sink: MonitorSink | Callable[[], MonitorSink], *, clock: Clock, flush_s: float = 0.1, max_batch: int = 2000,
                 group: str = SHARE_GROUP, topics: tuple[str, ...] = TOPICS,
                 on_batch: Callable[[int], None] | None = None, name: str | None = None,
                 max_backoff_s: float = 5.0) -> None:
        self.client, self.clock = client, clock
        self._sink_arg = sink
        self.sink: MonitorSink = sink if hasattr(sink, "write") else _Unopened()
        self.flush_s, self.max_batch = flush_s, max_batch
        self.group, self.topics = group, topics
        self.on_batch = on_batch
        self.name = name or getattr(client, "client_id", None) or "ingest"
        self.max_backoff_s = max_backoff_s
        self.started_at = clock.time()
        self._beat_at = 0.0
        self.stats = WorkerStats()
        self._pending: deque = deque()
        self._cond = threading.Condition()
        self._stop = False
        self._thread: threading.Thread | None = None

    def start(self) -> "IngestWorker":
        self._thread = threading.Thread(target=self._run, name="ingest-writer", daemon=True)
        self._thread.start()
        for t in self.topics:                      # handlers first: a resumed session redelivers at once
            self.client.route(shared(t, self.group), self._on_message, raw=True)
        self.client.connect()
        for t in self.topics:
            self.client.subscribe_raw(shared(t, self.group), self._on_message, qos=1)
        return self

    def _on_message(self, msg) -> None:           # paho network thread: queue only
        now = self.clock.time()
        with self._cond:
            self._pending.append((msg, now))
            self.stats.received += 1
            if len(self._pending) >= self.max_batch:
                self._cond.notify()

    def _run(self) -> None:
        owned = not hasattr(self._sink_arg, "write")
        if owned:
            self.sink = self._sink_arg()       # type: ignore[operator]
        try:
            self._loop()
        finally:
            self._heartbeat(stopped=True)
            if owned and hasattr(self.sink, "close"):
                self.sink.close()              # same thread that opened it

    def _loop(self) -> None:
        while True:
            with self._cond:
                deadline = time.monotonic() + self.flush_s    # let a batch fill up for at most flush_s
                while len(self._pending) < self.max_batch and not self._stop:
                    remaining = deadline - time.monotonic()
                    if remaining <= 0:
                        break
                    self._cond.wait(remaining)
                if not self._pending:
                    if self._stop:
                        return
                    self._heartbeat()
                    continue
                n = min(len(self._pending), self.max_batch)
                items = [self._pending.popleft() for _ in range(n)]
            c0 = time.thread_time()
            t0 = time.perf_counter()
            batch = build_batch((m.topic, m.payload, at) for m, at in items)
            t1 = time.perf_counter()
            self.stats.decode_s += t1 - t0
            stored = self._store(items, batch)
            if stored is None:                 # stopping with the store down: left for redelivery
                log.warning("ingest stopped while the store refused writes: %d messages left unacknowledged "
                            "for redelivery", n)
                return
            self.stats.write_s += time.perf_counter() - t1
            self.stats.writer_cpu_s += time.thread_time() - c0
            self.client.ack_many([m for m, _ in items])
            self.stats.written += n
            self.stats.batches += 1
            self.stats.rejected += stored
            self._heartbeat()
            if self.on_batch:
                self.on_batch(n)

    # -- writing -----------------------------------------------------------------
    def _write(self, batch: Batch) -> int:
        """One sink write; the number of messages it quarantined."""
        out = self.sink.write(batch)
        return sum((out if isinstance(out, Batch) else batch).rejected.values())

    def _wait(self, backoff: float) -> float:
        with self._cond:
            self._cond.wait(backoff)           # stop() wakes us
        return min(backoff * 2, self.max_backoff_s)

    def _store_reachable(self) -> bool:
        ping = getattr(self.sink, "ping", None)
        if ping is None:
            return False                       # cannot tell: treat every failure as the store's
        try:
            ping()
            return True
        except Exception:
            return False

    def _store(self, items: list, batch: Batch) -> int | None:
        """Write ``batch`` (built from ``items``) until it is stored; the count quarantined, or
        None when stopping while the store is unavailable."""
        backoff = 0.1
        while True:
            try:
                return self._write(batch)
            except Exception as exc:           # noqa: BLE001 - any failure: never let the writer die
                self.stats.write_errors += 1
                poison = not isinstance(exc, StoreBusy) and self._store_reachable()
                if poison:
                    log.warning("the store refused a batch of %d while it is reachable (%s); looking for the "
                                "message it refuses", len(items), exc)
                    return self._split(items)
                if self._stop:
                    return None
                log.warning("ingest write failed (%s); retrying in %.1fs", exc, backoff)
                backoff = self._wait(backoff)

    def _split(self, items: list) -> int | None:
        """Halve until the refused message(s) are alone; quarantine those, store the rest."""
        self.stats.split_writes += 1
        if len(items) == 1:
            m, at = items[0]
            return self._quarantine_alone(m, at)
        mid = len(items) // 2
        total = 0
        for part in (items[:mid], items[mid:]):
            batch = build_batch((m.topic, m.payload, at) for m, at in part)
            try:
                total += self._write(batch)
            except Exception:                  # noqa: BLE001
                self.stats.write_errors += 1
                if not self._store_reachable():
                    got = self._store(part, batch)     # back to retrying the (smaller) batch
                else:
                    got = self._split(part)
                if got is None:
                    return None
                total += got
        return total

    def _quarantine_alone(self, m: Any, at: float) -> int | None:
        from fleet.monitoring._codec import topic_parts

        parts = topic_parts(m.topic)
        b = Batch(messages=1)
        b.quarantine_add(Reason.STORE_REJECTED, Origin(m.topic, parts[1] if parts else "", bytes(m.payload), at),
                         "the database refused this message on its own")
        log.error("quarantined a message on %s that the store refuses (%d bytes)", m.topic, len(m.payload))
        backoff = 0.1
        while True:
            try:
                return self._write(b)
            except Exception as exc:           # noqa: BLE001
                self.stats.write_errors += 1
                if self._store_reachable():    # not even its evidence fits: drop it, counted
                    log.error("could not store the quarantine row either (%s); message dropped", exc)
                    return 1
                if self._stop:
                    return None
                backoff = self._wait(backoff)

    def _heartbeat(self, *, stopped: bool = False) -> None:
        beat = getattr(self.sink, "heartbeat", None)
        now = time.monotonic()
        if beat is None or (not stopped and now - self._beat_at < self.HEARTBEAT_S):
            return
        self._beat_at = now
        try:
            beat(worker=self.name, host=socket.gethostname(), started_at=self.started_at, at=self.clock.time(),
                 stats=self.stats, stopped=stopped)
        except Exception as exc:               # noqa: BLE001 - counters are best effort
            log.debug("heartbeat failed: %s", exc)

    def stop(self, *, drain_s: float = 5.0) -> WorkerStats:
        """Flush what is pending (up to ``drain_s``), then disconnect."""
        deadline = time.monotonic() + drain_s
        while time.monotonic() < deadline:
            with self._cond:
                if not self._pending:
                    break
            time.sleep(0.02)
        with self._cond:
            self._stop = True
            self._cond.notify()
        if self._thread:
            self._thread.join(drain_s)
        self.client.close()
        return self.stats
