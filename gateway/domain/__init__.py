"""Gateway domain layer: the model, ingress, alarm lifecycle, rules, device registry,
config-push decisions and remote commands.

Invariant: nothing under ``gateway.domain`` imports an I/O library (paho, bleak,
pyserial, zeroconf, sqlite3, sockets) — it talks to the world only through the ports in
:mod:`gateway.domain.ports` and :mod:`gateway.domain.uplink_ports`, so every rule about
alarms can be tested with fakes and an injected clock. ``gateway/tests/test_layers.py``
checks this in a fresh interpreter.
"""
