"""An ingest worker: shared subscription in, batched transactional writes, ack after commit.

Several workers (threads or processes, one MQTT client and one Store each) subscribe
to ``$share/fleet/...`` so the broker splits the stream between them. A message is
PUBACKed only after the batch holding it is committed, so a crash before the commit
leaves it with the broker for redelivery (at-least-once); the tables de-duplicate.
"""
from __future__ import annotations

import logging
import threading
import time
from collections import deque
from dataclasses import dataclass
from typing import Callable

from fleet.clock import Clock
from fleet.errors import FleetError
from fleet.monitoring._ingest import SHARE_GROUP, TOPICS, MonitorSink, build_batch, shared

log = logging.getLogger(__name__)


@dataclass
class WorkerStats:
    received: int = 0
    written: int = 0
    batches: int = 0
    rejected: int = 0
    write_errors: int = 0
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

    def __init__(self, client, sink: MonitorSink | Callable[[], MonitorSink], *, clock: Clock, flush_s: float = 0.1, max_batch: int = 2000,
                 group: str = SHARE_GROUP, topics: tuple[str, ...] = TOPICS,
                 on_batch: Callable[[int], None] | None = None) -> None:
        self.client, self.clock = client, clock
        self._sink_arg = sink
        self.sink: MonitorSink = sink if hasattr(sink, "write") else _Unopened()
        self.flush_s, self.max_batch = flush_s, max_batch
        self.group, self.topics = group, topics
        self.on_batch = on_batch
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
            if owned and hasattr(self.sink, "close"):
                self.sink.close()              # same thread that opened it

    def _loop(self) -> None:
        backoff = 0.1
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
                    continue
                n = min(len(self._pending), self.max_batch)
                items = [self._pending.popleft() for _ in range(n)]
            c0 = time.thread_time()
            t0 = time.perf_counter()
            batch = build_batch((m.topic, m.payload, at) for m, at in items)
            t1 = time.perf_counter()
            self.stats.decode_s += t1 - t0
            while True:
                try:
                    self.sink.write(batch)
                    self.stats.write_s += time.perf_counter() - t1
                    backoff = 0.1
                    break
                except FleetError as exc:          # store down/busy: keep the batch, retry; broker keeps it too
                    self.stats.write_errors += 1
                    if self._stop:
                        log.warning("ingest write failed (%s) while stopping: %d messages left "
                                    "unacknowledged for redelivery", exc, n)
                        return
                    log.warning("ingest write failed (%s); retrying in %.1fs", exc, backoff)
                    with self._cond:
                        self._cond.wait(backoff)   # stop() wakes us
                    backoff = min(backoff * 2, 5.0)
            self.stats.writer_cpu_s += time.thread_time() - c0
            self.client.ack_many([m for m, _ in items])
            self.stats.written += n
            self.stats.batches += 1
            self.stats.rejected += sum(batch.rejected.values())
            if self.on_batch:
                self.on_batch(n)

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
