"""Durable event journal (SQLite in WAL mode) and its asynchronous writer front.

API (construct from config in the composition root)::

    journal = SqliteJournal(path, max_telemetry_rows=100_000, max_telemetry_bytes=64 << 20,
                            synchronous="FULL", counter_block=1000)
    if journal.recovery:            # the old file was corrupt and was quarantined
        ...                         # Forwarder(journal_recovery=journal.recovery) raises the alarm
    writer = JournalWriter(journal, dispatch=loop.call_soon_threadsafe).start()
    writer.submit(event, callback)  # callback(event, AppendResult) on the loop after the fsync
    writer.mark_delivered([event_id, ...]); writer.mark_acknowledged(event_id, "received")
    writer.set_state("downlink_seq/<dev>", b"..."); writer.get_state("downlink_seq/<dev>")
    writer.call(lambda j: j.undelivered(256, after_rowid), callback)   # reads, in queue order
    ...
    writer.stop(); journal.close()

``SqliteJournal`` implements :class:`gateway.domain.ports.Journal` (blocking; call it from the
writer thread or at start-up): ``append`` (durable on return, False on a duplicate
``event_id``), ``contains``, ``mark_delivered``, ``mark_acknowledged``, ``undelivered``,
``depth`` (``shed`` counts undelivered telemetry dropped oldest-first), ``next_gateway_counter``
(reserved in blocks in ``<path>.hwm``, never reused, also after quarantine),
``get_state``/``set_state`` (small KV for replay windows, downlink sequence numbers...).
Extra: ``apply`` (one transaction for a batch), ``undelivered_rows`` (undecoded, for
replay), ``pending_alarms``, ``max_rowid``.

Threading: writes hold a lock across each commit (fsync), so the event loop writes
through the writer: ``writer.submit``, ``writer.set_state(key, value)`` (queued,
group-committed; ``writer.get_state`` sees it at once), ``writer.mark_*``. Reads
(``contains``, ``get_state``, ``ack_status``) use a second, read-only connection and never
wait for a commit in progress (WAL), so they are safe on the loop; they see committed data
(``writer.get_state`` adds the queued state values). ``next_gateway_counter`` may write the
small ``.hwm`` file (once per 1000 values) — call it through ``writer.call`` on the loop.

Long runs (``retention=RetentionPolicy.from_config(cfg.journal)``): delivered telemetry older
than its retention and alarms delivered AND acknowledged by the platform older than theirs
are pruned; above the size budget delivered data goes first, then undelivered telemetry;
an undelivered or unacknowledged alarm is never removed. The writer thread runs the pass
one bounded step at a time, with the checkpoint and incremental-vacuum policy for SD-card
wear (``_retention`` module doc). ``journal.maintenance_stats()`` reports it.

Alarms are never evicted. Telemetry beyond the bound is deleted oldest first. On a full
disk a batch's telemetry is shed (``AppendOutcome.SHED``) and its alarms retried alone;
alarms that still cannot be stored come back ``AppendOutcome.FAILED`` and the forwarder
holds them in memory (and raises a technical alarm).
"""
from gateway.domain.journal_codec import decode_event, encode_event
from gateway.adapters.journal._errors import JournalClosed, JournalError, JournalFull
from gateway.adapters.journal._store import ACK_STATUSES, AppendOutcome, AppendResult, Recovery, SqliteJournal
from gateway.adapters.journal._retention import MaintenanceStats, RetentionPolicy
from gateway.adapters.journal._writer import JournalWriter

__all__ = [
    "ACK_STATUSES", "AppendOutcome", "decode_event", "encode_event", "AppendResult", "JournalClosed", "JournalError", "JournalFull",
    "JournalWriter", "MaintenanceStats", "Recovery", "RetentionPolicy", "SqliteJournal",
]
