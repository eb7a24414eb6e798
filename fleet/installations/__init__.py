"""Installations: resident pseudonym, location, kit, checklist, consent, alarm routing,
commissioning with a test alarm per device, handover report, room moves, deinstallation
and verified deletion of personal data."""
from ._checklist import KEYS as CHECKLIST_KEYS
from ._checklist import QUESTIONS, missing_answers, validate_answers
from ._commission import (AlarmSeen, CommissioningReport, GatewayChannel, GatewayEndpoint, GatewayFinder, commission,
                          decode_alarm)
from ._privacy import check_no_personal_data, contains_national_id, fnr_checksum_ok, validate_resident_ref
from ._report import render_html, render_markdown
from ._routing import validate_routing
from ._service import (DEFAULT_RETENTION_S, PERSONAL_COLUMNS, complete, create, deinstall, devices,
                       list_installations, missing_test_alarms, move_room, purge, record_test_alarm, sensor_devices,
                       set_checklist, set_consent, set_routing, show, verify_purged)

__all__ = [
    "AlarmSeen", "CHECKLIST_KEYS", "CommissioningReport", "DEFAULT_RETENTION_S", "GatewayChannel", "GatewayEndpoint",
    "GatewayFinder", "PERSONAL_COLUMNS", "QUESTIONS", "check_no_personal_data", "commission", "complete",
    "contains_national_id", "create", "decode_alarm", "deinstall", "devices", "fnr_checksum_ok",
    "list_installations", "missing_answers", "missing_test_alarms", "move_room", "purge", "record_test_alarm",
    "render_html", "render_markdown", "sensor_devices", "set_checklist", "set_consent", "set_routing", "show",
    "validate_answers", "validate_resident_ref", "validate_routing", "verify_purged",
]
