"""One home per wire contract, shared by gateway, fleet, hil_tests and bench.

- ``contracts.topics``: the MQTT topic tree (builders and parsers).
- ``contracts.payloads``: schema ids and encode/decode of the JSON payloads
  (``wt.alarm/1``, ``wt.event/1``, ``wt.ack/1``, ``wt.state/1``, ``wt.health/1``,
  ``wt.config/1``, ``wt.config-applied/1``, ``wt.cmd/1``, ``wt.cmd-result/1``).
- ``contracts.discovery``: the zeroconf service type.
- ``contracts.vectors``: where the shared protocol vectors live.

Pure standard library: this package imports neither ``gateway`` nor ``fleet`` nor any
I/O library, so both sides (and MicroPython-adjacent tooling) can depend on it; a test
checks that in a fresh interpreter. Decoders never raise on garbage: they return a
:class:`contracts.payloads.Rejected`.
"""
