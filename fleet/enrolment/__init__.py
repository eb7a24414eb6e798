"""Gateway enrolment (issue 10, deliverable 1): a one-time code a technician gets from the fleet,
redeemed by ``gateway enrol`` for the gateway's identity — a client certificate signed by the
fleet's gateway CA (its key made on the gateway), a broker password, and the trust anchors
(broker CA, the fleet's control key, the release keys) the gateway writes as local files.

Service over a repository port (the fleet/config pattern): :class:`EnrolmentService` over an
:class:`EnrolmentRepo`; SQL adapter :mod:`fleet.enrolment._sql`, in-memory fake
:class:`MemoryEnrolmentRepo`; the CA in :mod:`fleet.enrolment._ca`; codes and password hashes
in :mod:`fleet.enrolment._secrets`.
"""
from fleet.enrolment._ca import GatewayCa, IssuedCert
from fleet.enrolment._memory import MemoryEnrolmentRepo
from fleet.enrolment._model import (REASONS, CodeRecord, CodeRefused, EnrolmentRepo, EnrolmentSettings,
                                    GatewayIdentity)
from fleet.enrolment._secrets import code_hash, mosquitto_hash, new_code, normalise
from fleet.enrolment._service import EnrolmentService

__all__ = ["CodeRecord", "CodeRefused", "EnrolmentRepo", "EnrolmentService", "EnrolmentSettings", "GatewayCa",
           "GatewayIdentity", "IssuedCert", "MemoryEnrolmentRepo", "REASONS", "code_hash", "mosquitto_hash",
           "new_code", "normalise"]
