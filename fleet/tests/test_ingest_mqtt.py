"""Two ingest workers on one shared subscription split a stream on a real Mosquitto:
every message stored once, none lost, none delivered to both."""
from __future__ import annotations

import json
import time

from fleet.clock import SystemClock
from fleet.errors import StoreBusy
from fleet.monitoring import IngestWorker, SqlMonitorSink
from fleet.mqtt import MqttClient
from fleet.store import open_store

N = 1500



class FlakySink:
    """Fails the first write like a locked/unreachable database would."""

    def __init__(self, inner):
        self.inner, self.failures = inner, 1

    def close(self):
        self.inner.close()

    def write(self, batch):
        if self.failures:
            self.failures -= 1
            raise StoreBusy("database is locked (test)")
        self.inner.write(batch)


def test_two_workers_split_a_stream_without_loss_or_duplicates(mosquitto, store_url):
    setup = open_store(store_url)                 # migrate once
    def sink(i):
        def make():                                   # runs on the worker's writer thread
            inner = SqlMonitorSink(open_store(store_url, migrate=False), close_store=True)
            return FlakySink(inner) if i == 0 else inner
        return make

    sinks = [sink(0), sink(1)]
    workers = [IngestWorker(MqttClient(mosquitto.host, mosquitto.port, client_id=f"ingest-{i}", manual_ack=True),
                            sinks[i], clock=SystemClock(), flush_s=0.05, max_batch=300).start() for i in range(2)]
    pub = MqttClient(mosquitto.host, mosquitto.port, client_id="load").connect()
    try:
        for k in range(N):
            gw = f"gw-{k % 50:03d}"
            at = f"2026-11-23T06:{(k // 50) // 60:02d}:{(k // 50) % 60:02d}.{k % 1000:03d}Z"
            pub.publish_nowait(f"wt/v1/gw/{gw}/health", json.dumps(
                {"schema": "wt.health/1", "gateway": gw, "at": at, "devices": []}).encode(), qos=1)
        deadline = time.monotonic() + 60
        while sum(w.stats.written for w in workers) < N and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        pub.close()
        stats = [w.stop() for w in workers]
    with setup.transaction(write=False) as tx:
        rows = tx.scalar("SELECT count(*) FROM gateway_health")
        distinct = tx.scalar("SELECT count(*) FROM (SELECT DISTINCT gateway_id, at FROM gateway_health) x")
        gws = tx.scalar("SELECT count(*) FROM gateway_status")
    received = [s.received for s in stats]
    assert rows == distinct == N                      # nothing lost
    assert sum(received) == N                         # nothing delivered twice
    assert min(received) > 0                          # the broker really split the stream
    assert stats[0].write_errors == 1                 # the failed batch was retried, not dropped
    assert gws == 50
    setup.close()


class DeadSink:
    """A database that never accepts the batch (the worker 'crashes' before committing)."""

    def write(self, batch):
        raise StoreBusy("database unreachable (test)")


def test_unacknowledged_batch_is_redelivered_after_worker_restart(mosquitto, sqlite_url):
    """PUBACK only after commit + a persistent session: a worker that dies before its
    commit loses nothing; its successor (same client id) receives the batch again."""
    setup = open_store(sqlite_url)

    def client():
        return MqttClient(mosquitto.host, mosquitto.port, client_id="ingest-stable", manual_ack=True,
                          session_expiry_s=300)

    first = IngestWorker(client(), DeadSink(), clock=SystemClock(), flush_s=0.05).start()
    pub = MqttClient(mosquitto.host, mosquitto.port, client_id="load2").connect()
    for k in range(40):
        pub.publish(f"wt/v1/gw/gw-{k % 4}/health", json.dumps(
            {"schema": "wt.health/1", "gateway": f"gw-{k % 4}", "at": f"2026-11-23T07:00:{k:02d}.000Z",
             "devices": []}).encode(), qos=1)
    deadline = time.monotonic() + 10
    while first.stats.received < 40 and time.monotonic() < deadline:
        time.sleep(0.02)
    assert first.stats.received == 40 and first.stats.written == 0
    first.stop(drain_s=0.2)                          # gives up without acknowledging anything
    second = IngestWorker(client(), lambda: SqlMonitorSink(open_store(sqlite_url, migrate=False), close_store=True),
                          clock=SystemClock(), flush_s=0.05).start()
    deadline = time.monotonic() + 15
    while second.stats.written < 40 and time.monotonic() < deadline:
        time.sleep(0.05)
    st = second.stop()
    assert st.received == 40
    pub.close()
    with setup.transaction(write=False) as tx:
        assert tx.scalar("SELECT count(*) FROM gateway_health") == 40
    setup.close()
