"""Test infrastructure shared by every package of the repository (gateway, fleet, hil_tests, bench).

- ``testkit.broker``: a private Mosquitto on a free loopback port (the root conftest's
  ``mosquitto`` / ``mosquitto_factory`` fixtures, the gateway demo, the benches), plus
  ``free_port`` / ``port_open``.

Neutral ground: imports neither ``gateway`` nor ``fleet`` (checked by
contracts/tests/test_boundaries.py), so fleet tests can use a real broker without loading
the gateway. Gateway-specific test kit (emulator, platform simulator, fake clock) stays in
``gateway.testing``.
"""
