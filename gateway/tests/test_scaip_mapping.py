"""SCAIP mapping: every EventCode has exactly one row; the rows the issue names; requests
built from events are valid SCAIP; positions travel as WGS84 + GGA."""
from __future__ import annotations

import re

import pytest

from gateway.domain.model import EVENT_CLASS, Event, EventClass, EventCode, Role, is_alarm
from gateway.domain.scaip import (
    EVENT_MAP,
    ROLE_DTY,
    DeviceType,
    MessageType,
    ReportKind,
    ScaipRequest,
    StatusCode,
    build_request,
    decode_request,
    encode_request,
    gga_sentence,
    heartbeat_request,
    nmea_checksum,
    ref_for,
)

T0 = 1_790_000_000.0


def _event(code: EventCode, *, role: Role | None = None, data: dict | None = None, device: str = "a4c1380a1b2c",
           test: bool = False) -> Event:
    return Event(f"{device}-00000007", device, code, T0, T0, role, 7, data or {}, test)


def test_every_event_code_has_one_row():
    assert set(EVENT_MAP) == set(EventCode), set(EventCode) ^ set(EVENT_MAP)


def test_alarm_rows_are_exactly_the_alarm_codes():
    for code, row in EVENT_MAP.items():
        assert (row.kind is ReportKind.ALARM) == is_alarm(code), code
        assert (row.mty is MessageType.ALARM) == (row.kind is not ReportKind.INFO), code


def test_every_role_has_a_device_type():
    assert set(ROLE_DTY) == set(Role)


@pytest.mark.parametrize("code, dty, stc", [
    (EventCode.BUTTON_PRESS, "0003", "0010"),
    (EventCode.FALL_DETECTED, "0005", "0009"),
    (EventCode.BED_NOT_RETURNED, "0012", None),
    (EventCode.DOOR_AT_NIGHT, "0014", None),
    (EventCode.GEOFENCE_EXIT, "0051", None),
    (EventCode.DOSE_MISSED, "0011", "0081"),
    (EventCode.DEVICE_SILENT, None, "0123"),
    (EventCode.LOW_BATTERY, None, "0016"),
    (EventCode.MAINS_LOST, None, "0085"),
    (EventCode.MAINS_RESTORED, None, "0086"),
    (EventCode.DEVICE_RECOVERED, None, "0124"),
    (EventCode.BLE_RECEIVER_RESTORED, None, "0094"),
])
def test_rows_named_by_the_issue(code, dty, stc):
    row = EVENT_MAP[code]
    if dty is not None:
        assert row.dty is not None and row.dty.value == dty
    if stc is not None:
        assert row.stc.value == stc


def test_button_press_request():
    req = build_request(_event(EventCode.BUTTON_PRESS, role=Role.BUTTON), cid="4700112233")
    assert (req.mty, req.dty, req.stc, req.dco, req.cid) == ("ME", "0003", "0010", "002", "4700112233")
    assert req.ref == ref_for("a4c1380a1b2c-00000007") and re.fullmatch(r"[0-9a-f]{16}", req.ref)
    assert req.did == "380a1b2c" and req.dte == "a4c1380a1b2c"
    assert req.stt == "button_press"


def test_ref_is_stable_and_unique_per_event():
    assert ref_for("a-00000001") == ref_for("a-00000001")
    refs = {ref_for(f"a4c1380a1b2c-{i:08x}") for i in range(5000)}
    assert len(refs) == 5000


def test_technical_alarm_takes_the_device_type_from_the_role():
    low = build_request(_event(EventCode.LOW_BATTERY, role=Role.FALL, data={"battery_pct": 9}), cid="1")
    assert (low.dty, low.stc) == (DeviceType.FALL_DETECTOR.value, StatusCode.BATTERY_LOW.value)
    silent = build_request(_event(EventCode.DEVICE_SILENT, role=Role.BUTTON), cid="1")
    assert (silent.dty, silent.stc) == ("0003", "0123")
    unknown = build_request(_event(EventCode.DEVICE_SILENT, role=None), cid="1")
    assert unknown.dty == DeviceType.SYSTEM_MONITOR.value


def test_geofence_exit_carries_wgs84_and_gga():
    data = {"lat": 59.9138688, "lon": 10.7522454, "alt_m": 23, "fix_quality": 1, "sats": 7, "zone": "home"}
    req = build_request(_event(EventCode.GEOFENCE_EXIT, role=Role.GPS, data=data), cid="1")
    assert (req.dty, req.lco, req.lte) == ("0051", "019", "zone home")
    assert req.lge is not None
    assert req.lge.geo == "59.913869,10.752245"
    assert req.lge.tim == "2026-09-21T14:13:20Z"
    gga = req.lge.gga
    assert gga == "$GPGGA,141320.00,5954.8321,N,01045.1347,E,1,07,,23.0,M,,M,,*" + nmea_checksum(gga[1:-3])
    assert len(gga) <= 81
    assert decode_request(encode_request(req)) == req


def test_southern_western_position_and_no_fix():
    data = {"lat": -33.8688197, "lon": -151.2092955, "alt_m": -5, "fix_quality": 0, "sats": 0}
    req = build_request(_event(EventCode.GPS_POSITION, role=Role.GPS, data=data), cid="1")
    assert req.lge.geo == f"-33.868820,{-151.2092955:.6f}"
    assert req.lge.gga is None           # no fix: no GGA sentence, the last position as text only
    g = gga_sentence(-33.8688197, -151.2092955, at_epoch=T0, alt_m=-5, fix_quality=2, sats=11)
    assert ",3352.1292,S,15112.5577,W,2,11,,-5.0,M," in g


def test_minutes_round_up_into_the_next_degree():
    g = gga_sentence(59.99999999, 10.99999999, at_epoch=T0)
    assert ",6000.0000,N,01100.0000,E," in g


def test_nmea_checksum_of_the_textbook_sentence():
    assert nmea_checksum("GPGGA,123519,4807.038,N,01131.000,E,1,08,0.9,545.4,M,46.9,M,,") == "47"


def test_geo_row_without_a_position_sends_no_lge():
    req = build_request(_event(EventCode.GEOFENCE_EXIT, role=Role.GPS, data={"zone": 3}), cid="1")
    assert req.lge is None and req.lte == "zone 3"
    bad = build_request(_event(EventCode.GEOFENCE_EXIT, role=Role.GPS, data={"lat": 200.0, "lon": 1.0}), cid="1")
    assert bad.lge is None


def test_texts_are_clipped_to_their_limits():
    long_id = "gw-" + "x" * 60
    req = build_request(_event(EventCode.MAINS_LOST, role=Role.GATEWAY, device=long_id, test=True), cid="1")
    assert len(req.dte) == 32 and len(req.did) == 8
    assert req.stt == "TEST mains_lost"
    encode_request(req)     # valid on the wire


@pytest.mark.parametrize("code", list(EventCode))
def test_every_row_encodes_to_a_valid_request(code):
    data = {"lat": 1.5, "lon": 2.5, "fix_quality": 1, "sats": 5, "zone": 1, "battery_pct": 5}
    req = build_request(_event(code, role=Role.GPS, data=data), cid="123")
    assert decode_request(encode_request(req)) == req


def test_heartbeat_request():
    req = heartbeat_request(cid="99", ref="hb00000000000001", adjustable=True)
    assert (req.mty, req.dty, req.hbo) == ("PI", "0002", "1")
    assert heartbeat_request(cid="99", ref="hb1", adjustable=False).hbo == "0"


def test_care_and_technical_classes_unchanged_assumption():
    # the mapping's ALARM kind relies on EventClass; a new class would need a decision here
    assert set(EVENT_CLASS.values()) <= {EventClass.CARE_ALARM, EventClass.TECHNICAL_ALARM, EventClass.EVENT}
    assert isinstance(build_request(_event(EventCode.BUTTON_PRESS), cid="1"), ScaipRequest)


def test_fall_alarm_status_text_carries_placement_and_confidence():
    fall = build_request(_event(EventCode.FALL_DETECTED, role=Role.FALL,
                                data={"peak_cg": 352, "placement": 0, "confidence": 92}), cid="1")
    assert (fall.dty, fall.stt) == (DeviceType.FALL_DETECTOR.value, "fall_detected wrist 92%")
    test = build_request(_event(EventCode.FALL_DETECTED, role=Role.FALL, test=True,
                                data={"peak_cg": 352, "placement": 1, "confidence": 100}), cid="1")
    assert test.stt == "TEST fall_detected chest 100%" and len(test.stt) <= 32
    cancelled = build_request(_event(EventCode.FALL_CANCELLED, role=Role.FALL,
                                     data={"peak_cg": 300, "placement": 2}), cid="1")
    assert cancelled.stt == "fall_cancelled waist"
    # older firmware (no confidence), odd values: the plain event type, never a made-up figure
    old = build_request(_event(EventCode.FALL_DETECTED, role=Role.FALL, data={"peak_cg": 352}), cid="1")
    assert old.stt == "fall_detected"
    odd = build_request(_event(EventCode.FALL_DETECTED, role=Role.FALL,
                               data={"placement": 9, "confidence": float("nan")}), cid="1")
    assert odd.stt == "fall_detected"
    odd = build_request(_event(EventCode.FALL_DETECTED, role=Role.FALL, data={"placement": True}), cid="1")
    assert odd.stt == "fall_detected"
    assert decode_request(encode_request(fall)) == fall
