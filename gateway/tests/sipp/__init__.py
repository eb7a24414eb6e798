"""Real SIP peers for the SCAIP/SIP tests: SIPp scenarios (``*.xml`` here) and Kamailio.

See :mod:`gateway.tests.sipp.peers`.
"""
from pathlib import Path

SCENARIOS = Path(__file__).resolve().parent
