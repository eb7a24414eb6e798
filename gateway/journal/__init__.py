"""Durable event journal (SQLite in WAL mode) and its asynchronous writer front.

API (construct from config in the composition root)::

    journal = SqliteJournal(path, max_telemetry_rows=100_000, max_telemetry_bytes=64 << 20,
                            synchronous="FULL", counter_block=1000)
    if journal.recovery:            # the old file was corrupt and was quarantined
        ...                         # Forwarder(journal_recovery=journal.recovery) raises the alarm
    writer = JournalWriter(journal, dispatch=loop.call_soon_threadsafe).start()
    writer.submit(event, callback)  # callback(event, AppendResult) on the loop after the fsync
    writer.mark_delivered([event_id, ...]); writer.mark_acknowledged(event_id, "received")
    writer.call(lambda j: j.undelivered(256, after_rowid), callback)   # reads, in queue order
    ...
    writer.stop(); journal.close()

``SqliteJournal`` implements :class:`gateway.ports.Journal` (blocking; call it from the
writer thread or at start-up): ``append`` (durable on return, False on a duplicate
``event_id``), ``contains``, ``mark_delivered``, ``mark_acknowledged``, ``undelivered``,
``depth`` (``shed`` counts undelivered telemetry dropped oldest-first), ``next_gateway_counter``
(reserved in blocks in ``<path>.hwm``, never reused, also after quarantine),
``get_state``/``set_state`` (small KV for replay windows, downlink sequence numbers...).
Extra: ``apply`` (one transaction for a batch), ``undelivered_rows`` (undecoded, for
replay), ``pending_alarms``, ``max_rowid``.

Threading: ``SqliteJournal`` holds a lock across each commit (fsync); code on the event
loop reads and writes through the writer (``writer.call(lambda j: j.get_state(k), cb)``),
never directly, so the loop never waits for the disk.

Alarms are never evicted. Telemetry beyond the bound is deleted oldest first. On a full
disk a batch's telemetry is shed (``AppendOutcome.SHED``) and its alarms retried alone;
alarms that still cannot be stored come back ``AppendOutcome.FAILED`` and the forwarder
holds them in memory (and raises a technical alarm).
"""
from ._codec import decode_event, encode_event
from ._errors import JournalClosed, JournalError, JournalFull
from ._store import ACK_STATUSES, AppendOutcome, AppendResult, Recovery, SqliteJournal
from ._writer import JournalWriter

__all__ = [
    "ACK_STATUSES", "AppendOutcome", "decode_event", "encode_event", "AppendResult", "JournalClosed", "JournalError", "JournalFull",
    "JournalWriter", "Recovery", "SqliteJournal",
]
