"""Installations: resident pseudonym, location, kit, checklist, consent, alarm routing,
commissioning with a test alarm per device, handover report, room moves, deinstallation
and verified deletion of personal data.

Service over a repository port (the fleet/config pattern): :class:`InstallationService`
over an :class:`InstallationRepo` plus the inventory service of the same transaction; SQL
adapter in :mod:`fleet.installations._sql`, in-memory fake :class:`MemoryInstallationRepo`.
Commissioning (:func:`commission`) runs over its own ports; MQTT and mDNS adapters are in
``_adapters``.
"""
from ._checklist import KEYS as CHECKLIST_KEYS
from ._checklist import QUESTIONS, missing_answers, validate_answers
from ._commission import (AlarmSeen, CommissioningReport, GatewayChannel, GatewayEndpoint, GatewayFinder, commission,
                          decode_alarm)
from ._memory import MemoryInstallationRepo
from ._model import ACTIVE_STATUSES, PERSONAL_COLUMNS, InstallationRepo
from ._privacy import check_no_personal_data, contains_national_id, fnr_checksum_ok, validate_resident_ref
from ._report import render_html, render_markdown
from ._routing import validate_routing
from ._service import DEFAULT_RETENTION_S, InstallationService, validate_consent

__all__ = [
    "ACTIVE_STATUSES", "AlarmSeen", "CHECKLIST_KEYS", "CommissioningReport", "DEFAULT_RETENTION_S", "GatewayChannel",
    "GatewayEndpoint", "GatewayFinder", "InstallationRepo", "InstallationService", "MemoryInstallationRepo",
    "PERSONAL_COLUMNS", "QUESTIONS", "check_no_personal_data", "commission", "contains_national_id", "decode_alarm",
    "fnr_checksum_ok", "missing_answers", "render_html", "render_markdown", "validate_answers", "validate_consent",
    "validate_resident_ref", "validate_routing",
]
