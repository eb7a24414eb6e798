"""F11 (issue 10): on a full disk, telemetry shed in the same batch as an alarm was still
answered ACK STORED - the device deleted it and the gateway had dropped it: lost on both
sides. Now a shed event is never reported stored: ``on_stored`` (the device ACK) is not
called, the device keeps it and retransmits later. The protocol has no "not stored" ACK
status (docs/protocol.md AckStatus: STORED, DUPLICATE), so no wire change."""
from __future__ import annotations

import errno

import pytest

from gateway.domain.model import EventCode
from gateway.tests.test_uplink_forwarder import rig

pytestmark = pytest.mark.security


def test_F11_telemetry_shed_on_a_full_disk_is_not_acked_as_stored(tmp_path):
    calls = {"n": 0}

    def enospc_once() -> None:   # the batch's commit hits a full disk; the alarms' retry fits
        calls["n"] += 1
        if calls["n"] == 1:
            raise OSError(errno.ENOSPC, "No space left on device")

    r = rig(tmp_path, before_commit=None)
    r.journal._before_commit = enospc_once
    alarm, tele = r.ev(1, EventCode.BUTTON_PRESS), r.ev(2, EventCode.MOTION)
    r.submit(alarm)
    r.submit(tele)
    r.pump()
    acked = dict(r.stored)
    assert acked.get(alarm.event_id) is True          # the alarm was stored alone and ACKed
    assert tele.event_id not in acked, "shed telemetry was ACKed to the device as stored"
    assert r.journal.depth().shed >= 1 and not r.journal.contains(tele.event_id)
