"""Device settings sync (gateway/domain/device_settings.py): the configuration's settings
for a device reach it in a CONFIG frame and stay in sync. A fake clock and a recording
``send``; the device side is played by the test (firmware/lib/cfgtool.py answers ACK with
the CONFIG's downlink seq, or ERROR 6 naming the key)."""
from __future__ import annotations

import json
import logging
from types import SimpleNamespace

import pytest

from gateway.codec.enums import AckStatus, ErrorCode, PowerFlag
from gateway.codec.payloads import Ack, Config, ConfigGet, Error, Heartbeat
from gateway.domain.device_settings import (
    MAX_SETTINGS_JSON,
    DeviceSettings,
    SettingsState,
    canonical_json,
    desired_settings,
    settings_version,
)
from gateway.domain.ingress_types import DeviceUpdate
from gateway.domain.model import Role
from gateway.testing.clock import FakeClock

DEV = "b0e1c4000010"
WRIST = {"placement": "wrist"}
V_WRIST = settings_version(WRIST)


class Sent:
    """The recording ``send``: every downlink (device, payload) with the seq it got."""

    def __init__(self) -> None:
        self.frames: list[tuple[str, object, int]] = []
        self._seq = 100

    def __call__(self, device: str, payload: object) -> int:
        self._seq += 1
        self.frames.append((device, payload, self._seq))
        return self._seq

    @property
    def last(self) -> tuple[str, object, int]:
        return self.frames[-1]

    def payloads(self) -> list[object]:
        return [p for _, p, _ in self.frames]


@pytest.fixture
def rig():
    clock = FakeClock()
    sent = Sent()
    ds = DeviceSettings({DEV: WRIST}, sent, clock, ack_timeout_s=5.0, retries=2, backoff=2.0)
    return SimpleNamespace(clock=clock, sent=sent, ds=ds)


def _tick_for(rig, seconds: float, step: float = 0.5) -> None:
    t = 0.0
    while t < seconds:
        rig.clock.advance(step)
        rig.ds.tick()
        t += step


# ---- version and desired settings ------------------------------------------------------------
def test_version_is_the_crc32_of_the_canonical_json_and_never_zero(monkeypatch):
    import zlib

    assert canonical_json({"placement": "wrist", "a": 1}) == b'{"a":1,"placement":"wrist"}'
    assert V_WRIST == zlib.crc32(b'{"placement":"wrist"}') and V_WRIST != 0
    assert settings_version({"placement": "waist"}) != V_WRIST
    assert settings_version({"b": 2, "a": 1}) == settings_version({"a": 1, "b": 2})     # key order does not matter
    monkeypatch.setattr(zlib, "crc32", lambda b: 0)
    assert settings_version(WRIST) == 0xFFFFFFFF          # 0 is a device nobody configured


def test_desired_settings_from_the_configuration_only_for_the_roles_they_apply_to():
    import enum

    class Placement(enum.Enum):     # the configuration's values are enum members (FallPlacement)
        WRIST = "wrist"
        PENDANT = "pendant"

    devices = [SimpleNamespace(id="a", role=Role.FALL, placement=Placement.WRIST),
               SimpleNamespace(id="b", role=Role.FALL, placement=None),
               SimpleNamespace(id="c", role=Role.BUTTON, placement=Placement.PENDANT),
               SimpleNamespace(id="d", role=Role.BUTTON)]
    desired, notes = desired_settings(devices)
    assert desired == {"a": {"placement": "wrist"}}
    assert len(notes) == 1 and "devices.c.placement" in notes[0] and "fall" in notes[0] and "button" in notes[0]


def test_desired_settings_from_a_loaded_configuration():
    from gateway.config import load_config

    cfg = load_config(None, env={}, overrides={"devices": {
        DEV: {"role": "fall", "placement": "pendant"}, "b0e1c4000011": {"role": "fall"}}})
    assert desired_settings(cfg.devices) == ({DEV: {"placement": "pendant"}}, [])


# ---- the state machine --------------------------------------------------------------------------
def test_hello_with_another_version_sends_config_and_the_ack_of_its_seq_syncs(rig, caplog):
    assert rig.ds.state_of(DEV) is SettingsState.UNKNOWN
    rig.ds.heard(DEV, downlink=True, hello_version=0)
    dev, payload, seq = rig.sent.last
    assert dev == DEV and payload == Config(V_WRIST, {"placement": "wrist"})
    assert rig.ds.state_of(DEV) is SettingsState.SENDING
    rig.ds.on_message(DEV, Ack(seq - 1, AckStatus.STORED))          # an ACK of another seq: ignored
    assert rig.ds.state_of(DEV) is SettingsState.SENDING
    with caplog.at_level(logging.INFO, logger="gateway.domain.device_settings"):
        rig.ds.on_message(DEV, Ack(seq, AckStatus.STORED))
    assert rig.ds.state_of(DEV) is SettingsState.SYNCED
    st = rig.ds.status()
    assert st["counters"] == {"sent": 1, "queried": 0, "resent": 0, "acked": 1, "refused": 0, "failed": 0}
    assert st["devices"][DEV]["reported_version"] == V_WRIST and st["devices"][DEV]["settings"] == WRIST
    assert "in sync" in caplog.text
    _tick_for(rig, 120)                                              # nothing more to send
    assert len(rig.sent.frames) == 1
    rig.ds.heard(DEV, downlink=True, hello_version=V_WRIST)          # its next boot: still in sync
    rig.ds.heard(DEV, downlink=True)
    assert len(rig.sent.frames) == 1 and rig.ds.state_of(DEV) is SettingsState.SYNCED


def test_hello_with_the_same_version_sends_nothing(rig):
    rig.ds.heard(DEV, downlink=True, hello_version=V_WRIST)
    assert rig.sent.frames == [] and rig.ds.state_of(DEV) is SettingsState.SYNCED


def test_another_frame_first_queries_the_version_and_the_report_decides(rig):
    rig.ds.heard(DEV, downlink=True)                                 # a heartbeat: version unknown
    assert rig.sent.payloads() == [ConfigGet()] and rig.ds.state_of(DEV) is SettingsState.QUERYING
    rig.ds.heard(DEV, downlink=True)                                 # more frames: no second query
    assert len(rig.sent.frames) == 1
    rig.ds.on_message(DEV, Config(V_WRIST, {"role": "fall", "placement": "wrist"}))
    assert rig.ds.state_of(DEV) is SettingsState.SYNCED and len(rig.sent.frames) == 1
    # a device that reports an older version gets the settings
    ds2 = DeviceSettings({DEV: WRIST}, rig.sent, rig.clock)
    ds2.heard(DEV, downlink=True)
    ds2.on_message(DEV, Config(7, {"role": "fall"}))
    assert rig.sent.payloads()[-1] == Config(V_WRIST, WRIST) and ds2.state_of(DEV) is SettingsState.SENDING


def test_error_6_refuses_keeps_the_reason_logs_it_and_is_not_retried(rig, caplog):
    rig.ds.heard(DEV, downlink=True, hello_version=0)
    with caplog.at_level(logging.WARNING, logger="gateway.domain.device_settings"):
        rig.ds.on_message(DEV, Error(ErrorCode.BAD_CONFIG, "placement='wrist': unknown key; known keys: confirm_s"))
    assert rig.ds.state_of(DEV) is SettingsState.REFUSED
    st = rig.ds.status()
    assert st["devices"][DEV]["reason"].startswith("placement='wrist': unknown key")
    assert st["counters"]["refused"] == 1 and st["devices"][DEV]["refused"] == 1
    assert "refused its settings" in caplog.text and "ERROR 6 placement='wrist'" in caplog.text
    _tick_for(rig, 300)
    rig.ds.heard(DEV, downlink=True, hello_version=0)               # its next boot: still not sent again
    rig.ds.heard(DEV, downlink=True)
    assert len(rig.sent.frames) == 1 and rig.ds.state_of(DEV) is SettingsState.REFUSED
    # ... until the settings change
    assert rig.ds.set_desired({DEV: {"placement": "pendant"}}) == [DEV]
    rig.ds.heard(DEV, downlink=True, hello_version=0)
    assert rig.sent.payloads()[-1] == Config(settings_version({"placement": "pendant"}), {"placement": "pendant"})


def test_other_errors_and_a_busy_ack_wait_for_the_timeout(rig):
    rig.ds.heard(DEV, downlink=True, hello_version=0)
    _, _, seq = rig.sent.last
    rig.ds.on_message(DEV, Error(ErrorCode.STORAGE_FULL, "config not saved"))
    rig.ds.on_message(DEV, Ack(seq, AckStatus.BUSY))
    assert rig.ds.state_of(DEV) is SettingsState.SENDING
    _tick_for(rig, 5)
    assert len(rig.sent.frames) == 2 and isinstance(rig.sent.last[1], Config)


def test_no_answer_resends_with_backoff_then_fails_and_the_next_hello_tries_again(rig, caplog):
    rig.ds.heard(DEV, downlink=True, hello_version=0)
    t0 = rig.clock.monotonic()
    times = []
    with caplog.at_level(logging.WARNING, logger="gateway.domain.device_settings"):
        for _ in range(200):
            rig.clock.advance(0.5)
            n = len(rig.sent.frames)
            rig.ds.tick()
            if len(rig.sent.frames) > n:
                times.append(rig.clock.monotonic() - t0)
            if rig.ds.state_of(DEV) is SettingsState.FAILED:
                break
    assert times == [5.0, 15.0]                       # 5 s, then 10 s (×2); retries=2 → 3 tries
    assert rig.ds.state_of(DEV) is SettingsState.FAILED
    assert rig.clock.monotonic() - t0 == 35.0         # the last try waited 20 s
    seqs = [s for _, _, s in rig.sent.frames]
    assert len(set(seqs)) == 3                        # each try is a new downlink frame (new seq)
    st = rig.ds.status()
    assert st["counters"] == {"sent": 1, "queried": 0, "resent": 2, "acked": 0, "refused": 0, "failed": 1}
    assert "no answer to CONFIG after 3 tries" in st["devices"][DEV]["reason"] and "not delivered" in caplog.text
    rig.ds.on_message(DEV, Ack(seqs[0], AckStatus.STORED))      # a late ACK after failing: ignored
    assert rig.ds.state_of(DEV) is SettingsState.FAILED
    _tick_for(rig, 300)
    rig.ds.heard(DEV, downlink=True)                             # a heartbeat: no retry
    assert len(rig.sent.frames) == 3
    rig.ds.heard(DEV, downlink=True, hello_version=0)            # a HELLO: tried again
    assert len(rig.sent.frames) == 4 and rig.ds.state_of(DEV) is SettingsState.SENDING
    rig.ds.on_message(DEV, Ack(seqs[-1], AckStatus.STORED))     # the ACK of an earlier try: not this one
    assert rig.ds.state_of(DEV) is SettingsState.SENDING
    rig.ds.on_message(DEV, Ack(rig.sent.last[2], AckStatus.STORED))
    assert rig.ds.state_of(DEV) is SettingsState.SYNCED


def test_an_unanswered_query_is_resent_then_fails(rig):
    rig.ds.heard(DEV, downlink=True)
    _tick_for(rig, 40)
    assert rig.sent.payloads() == [ConfigGet()] * 3 and rig.ds.state_of(DEV) is SettingsState.FAILED
    assert "CONFIG_GET" in rig.ds.status()["devices"][DEV]["reason"]


def test_an_ack_of_the_resent_frame_syncs(rig):
    rig.ds.heard(DEV, downlink=True, hello_version=0)
    _tick_for(rig, 5)
    first, second = [s for _, _, s in rig.sent.frames]
    rig.ds.on_message(DEV, Ack(first, AckStatus.STORED))        # only the frame awaited now counts
    assert rig.ds.state_of(DEV) is SettingsState.SENDING
    rig.ds.on_message(DEV, Ack(second, AckStatus.STORED))
    assert rig.ds.state_of(DEV) is SettingsState.SYNCED


def test_a_send_that_cannot_go_out_is_retried_like_an_unanswered_one():
    clock = FakeClock()
    calls = []

    def send(device, payload):
        calls.append(payload)
        return None if len(calls) == 1 else 7

    ds = DeviceSettings({DEV: WRIST}, send, clock, ack_timeout_s=5.0)
    ds.heard(DEV, downlink=True, hello_version=0)
    clock.advance(5)
    ds.tick()
    ds.on_message(DEV, Ack(7, AckStatus.STORED))
    assert len(calls) == 2 and ds.state_of(DEV) is SettingsState.SYNCED


def test_settings_change_sends_again_and_unchanged_devices_stay(rig):
    other = "b0e1c4000011"
    ds = DeviceSettings({DEV: WRIST, other: {"placement": "pendant"}}, rig.sent, rig.clock)
    ds.heard(DEV, downlink=True, hello_version=V_WRIST)
    ds.heard(other, downlink=True, hello_version=settings_version({"placement": "pendant"}))
    assert rig.sent.frames == []
    changed = ds.set_desired({DEV: {"placement": "waist"}, other: {"placement": "pendant"}})
    assert changed == [DEV]
    assert ds.state_of(DEV) is SettingsState.UNKNOWN and ds.state_of(other) is SettingsState.SYNCED
    ds.heard(DEV, downlink=True)                                 # its next frame: what does it hold?
    assert rig.sent.payloads() == [ConfigGet()]
    ds.on_message(DEV, Config(V_WRIST, WRIST))                   # the old settings
    v = settings_version({"placement": "waist"})
    assert rig.sent.payloads()[-1] == Config(v, {"placement": "waist"})
    ds.on_message(DEV, Ack(rig.sent.last[2], AckStatus.STORED))
    assert ds.state_of(DEV) is SettingsState.SYNCED
    assert ds.set_desired({DEV: {"placement": "waist"}}) == [] and not ds.managed(other)   # no settings: forgotten


def test_a_device_without_settings_is_left_alone(rig):
    rig.ds.heard("b0e1c4000099", downlink=True, hello_version=0)
    rig.ds.on_message("b0e1c4000099", Error(ErrorCode.BAD_CONFIG, "x"))
    assert rig.sent.frames == [] and rig.ds.state_of("b0e1c4000099") is None


def test_a_device_heard_only_on_ble_adverts_is_never_configured(rig):
    rig.ds.heard(DEV, downlink=False)
    _tick_for(rig, 60)
    assert rig.sent.frames == [] and rig.ds.state_of(DEV) is SettingsState.NO_DOWNLINK
    assert "BLE adverts" in rig.ds.status()["devices"][DEV]["reason"]
    rig.ds.heard(DEV, downlink=True)                             # later on a GATT / serial link: queried
    assert rig.sent.payloads() == [ConfigGet()]


def test_messages_that_are_not_about_settings_change_nothing(rig):
    rig.ds.heard(DEV, downlink=True, hello_version=V_WRIST)
    rig.ds.on_message(DEV, Heartbeat(50, 3900, PowerFlag(0), 10, 0, 0, None))
    rig.ds.on_message(DEV, Error(ErrorCode.BAD_CONFIG, "not ours"))   # not waiting for an answer
    rig.ds.on_message(DEV, Ack(1, AckStatus.STORED))
    assert rig.ds.state_of(DEV) is SettingsState.SYNCED and rig.sent.frames == []


def test_settings_too_large_for_one_frame_are_refused_by_the_gateway():
    clock, sent = FakeClock(), Sent()
    big = {"placement": "x" * MAX_SETTINGS_JSON}
    ds = DeviceSettings({DEV: big}, sent, clock)
    ds.heard(DEV, downlink=True, hello_version=0)
    assert sent.frames == [] and ds.state_of(DEV) is SettingsState.REFUSED
    assert ds.status()["devices"][DEV]["reason"].startswith("gateway: the settings take")


# ---- in the daemon: ingest pipeline → CONFIG on the device's link → ACK → status ---------------
class _Link:
    """A byte link that records what the gateway sends (decoded frames)."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.frames: list = []

    def send(self, data: bytes) -> None:
        from gateway.codec.frame import Frame
        from gateway.codec.stream import StreamDecoder

        self.frames += [f for f in StreamDecoder().feed(data) if isinstance(f, Frame)]

    def start(self) -> None: ...

    def stop(self) -> None: ...

    def status(self) -> dict:
        return {"name": self.name, "kind": "test", "state": "up"}


def test_daemon_sends_config_at_hello_takes_the_ack_and_shows_it_in_the_status(offline_gateway):
    from gateway.adapters.status import render_table
    from gateway.codec.enums import MsgType, ResetCause
    from gateway.codec.frame import encode_payload_frame
    from gateway.codec.payloads import Hello

    other = "b0e1c4000011"
    gw = offline_gateway(devices={DEV: {"role": "fall", "placement": "wrist"},
                                  other: {"role": "fall", "placement": "pendant"},
                                  "b0e1c4000012": {"role": "fall"}})       # no placement: left alone
    link = _Link("test:0")
    gw.rt.links.add(link)
    sync = gw.rt.pipeline.settings
    gw.rt.on_link_bytes(link.name, encode_payload_frame(Hello(Role.FALL, ResetCause.POWER_ON, 0, "1.0.0"), DEV, 1))
    gw.settle()
    types = [f.type for f in link.frames]
    assert types == [MsgType.TIME, MsgType.CONFIG]                      # TIME first, then the settings
    cfg_frame = link.frames[1]
    assert cfg_frame.downlink and cfg_frame.decode_payload() == Config(V_WRIST, WRIST)
    # the device's ACK names the CONFIG's downlink seq
    gw.rt.on_link_bytes(link.name, encode_payload_frame(Ack(cfg_frame.seq, AckStatus.STORED), DEV, 2))
    gw.settle()
    assert sync.state_of(DEV) == "synced"
    # the other device is heard first on a heartbeat: asked for its version, then refuses
    gw.rt.on_link_bytes(link.name, encode_payload_frame(Heartbeat(80, 3900, PowerFlag(0), 5, 0, 0, None), other, 1))
    gw.settle()
    assert link.frames[-1].type is MsgType.CONFIG_GET and link.frames[-1].device_id == other
    gw.rt.on_link_bytes(link.name, encode_payload_frame(Config(0, {"role": "fall"}), other, 2))
    gw.settle()
    assert link.frames[-1].type is MsgType.CONFIG
    gw.rt.on_link_bytes(link.name, encode_payload_frame(
        Error(ErrorCode.BAD_CONFIG, "placement='pendant': must be one of wrist, waist"), other, 3))
    gw.settle()
    snap = gw.rt.reporter.snapshot()
    ds = snap["device_settings"]
    assert ds["counters"] == {"sent": 2, "queried": 1, "resent": 0, "acked": 1, "refused": 1, "failed": 0}
    assert ds["devices"][DEV]["state"] == "synced" and ds["devices"][other]["state"] == "refused"
    assert set(ds["devices"]) == {DEV, other}
    by_dev = {d["device"]: d["settings"] for d in snap["devices"]}
    assert by_dev == {DEV: "synced", other: "refused", "b0e1c4000012": None}
    table = render_table(snap)
    assert "settings synced" in table and "settings REFUSED" in table
    assert f"settings of {other} REFUSED: placement='pendant': must be one of" in table
    json.dumps(snap)                                                     # the status endpoint serves it


def test_daemon_resends_on_the_rules_tick_and_a_device_on_ble_adverts_is_not_configured(offline_gateway):
    from gateway.codec.enums import MsgType, ResetCause
    from gateway.codec.frame import encode_payload_frame
    from gateway.codec.payloads import Hello

    gw = offline_gateway(devices={DEV: {"role": "fall", "placement": "wrist"}})
    link = _Link("test:0")
    gw.rt.links.add(link)
    gw.rt.on_link_bytes(link.name, encode_payload_frame(Hello(Role.FALL, ResetCause.POWER_ON, 0, "1.0.0"), DEV, 1))
    gw.settle()
    for _ in range(3):
        gw.clock.advance(60)
        for step in gw.rt.periodic[0].steps:       # the rules tick (engine, OTA, settings, pushes)
            step()
    configs = [f for f in link.frames if f.type is MsgType.CONFIG]
    assert len(configs) == 4 and len({f.seq for f in configs}) == 4     # re-sent, each a new downlink seq
    st = gw.rt.reporter.snapshot()["device_settings"]["devices"][DEV]
    assert st["resent"] == 3 and st["state"] == "sending"
    # its link is gone (an unplugged port): the pipeline hears it only on adverts now
    gw.rt.links.remove(link.name)
    sync = gw.rt.pipeline.settings
    sync.settings.set_desired({DEV: {"placement": "pendant"}})          # back to unknown
    sync.on_update(DeviceUpdate(DEV, gw.clock.time(), "ble"))
    assert sync.state_of(DEV) == "no_downlink"

