"""The private Mosquitto of the gateway's demo and tests: :mod:`testkit.broker`.

The broker runner is shared by every package's tests (the root conftest's ``mosquitto``
fixture serves gateway, fleet and HIL tests alike), so it lives in the neutral ``testkit``
package, which imports neither ``gateway`` nor ``fleet``. Re-exported here for the
gateway's demo, benches and tests.
"""
from testkit.broker import BrokerError, MosquittoProcess, find_mosquitto, free_port, port_open

__all__ = ["BrokerError", "MosquittoProcess", "find_mosquitto", "free_port", "port_open"]
