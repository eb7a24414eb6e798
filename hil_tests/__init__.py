"""Hardware-in-the-loop benches: the same scenarios on emulated and on real devices.

Run the scenario library with ``python -m hil_tests --report out/`` (or plain pytest on
``hil_tests/``). ``--bench FILE`` selects a bench description (docs/hil.md); the default
is the emulated bench: firmware on the real MicroPython interpreter behind
pseudo-terminals, the real gateway daemon, a real Mosquitto and a response-platform stub.
"""
