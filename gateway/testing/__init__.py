"""Gateway testing kit: emulated devices and homes, the platform simulator (the response
centre / fleet side of the MQTT contract), a private Mosquitto, the response console and
the fake clock. Production code (domain, adapters, daemon) never imports this package;
the ``gateway demo`` and ``gateway console`` commands do, lazily.
"""
