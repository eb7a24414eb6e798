"""BTHome v2 known answers (bthome.io examples) and the object table."""
from __future__ import annotations

import pytest

from gateway.codec import Rejection, RejectReason, decode_advert, encode_advert
from gateway.codec.bthome import OBJECTS, advert_events
from gateway.domain.model import EventCode

BT_KEY = bytes.fromhex("231d39c1d7cc1ab1aee224cd096db932")
BT_MAC = "54:48:E6:8F:80:A5"


def values(adv):
    return {o.name: o.value for o in adv.objects}


def test_bthome_io_unencrypted_example():
    adv = decode_advert(bytes.fromhex("4002ca0903bf13"))
    assert values(adv) == {"temperature": 25.06, "humidity": 50.55}
    assert not adv.encrypted and not adv.trigger_based and adv.counter is None


def test_bthome_io_encryption_example():
    data = bytes.fromhex("41e445f3c9962b332211006c7c4519")
    adv = decode_advert(data, mac=BT_MAC, key=BT_KEY)
    assert values(adv) == {"temperature": 25.06, "humidity": 50.55} and adv.counter == 0x00112233
    assert encode_advert([(0x02, 25.06), (0x03, 50.55)], key=BT_KEY, mac=BT_MAC, counter=0x00112233) == data


def test_text_trigger_firmware_dimmer():
    adv = decode_advert(bytes.fromhex("44530c48656c6c6f20576f726c6421"))
    assert adv.trigger_based and values(adv) == {"text": "Hello World!"}
    assert values(decode_advert(bytes.fromhex("40f2000102"))) == {"firmware_version": "2.1.0"}
    assert values(decode_advert(bytes.fromhex("40f100010204"))) == {"firmware_version_u32": "4.2.1.0"}
    assert decode_advert(bytes.fromhex("403c0103")).objects[0].raw == 0x0301


@pytest.mark.parametrize("oid,size,signed", [
    (0x00, 1, False), (0x01, 1, False), (0x02, 2, True), (0x04, 3, False), (0x0C, 2, False), (0x1A, 1, False),
    (0x21, 1, False), (0x23, 1, False), (0x2B, 1, False), (0x3A, 1, False), (0x3C, 2, False), (0x3E, 4, False),
    (0x3F, 2, True), (0x42, 3, False), (0x45, 2, True), (0x50, 4, False), (0x53, 0, False), (0x54, 0, False),
    (0x57, 1, True), (0x5B, 4, True), (0x5C, 4, True), (0xF0, 2, False), (0xF1, 4, False), (0xF2, 3, False),
])
def test_object_sizes_per_spec(oid, size, signed):
    assert (OBJECTS[oid].size, OBJECTS[oid].signed) == (size, signed)


def test_negative_and_factor_values():
    adv = decode_advert(bytes.fromhex("4002" + (-425).to_bytes(2, "little", signed=True).hex() + "580a"))
    assert values(adv) == {"temperature": -4.25, "temperature_035": 3.5}


def test_rejections():
    assert decode_advert(b"").reason is RejectReason.EMPTY
    assert decode_advert(bytes.fromhex("2002ca09")).reason is RejectReason.VERSION
    assert decode_advert(bytes.fromhex("4002ca")).reason is RejectReason.SHORT
    assert decode_advert(bytes.fromhex("4001509900")).reason is RejectReason.UNKNOWN_OBJECT
    assert decode_advert(bytes.fromhex("4054050102")).reason is RejectReason.SHORT
    data = bytes.fromhex("41e445f3c9962b332211006c7c4519")
    assert decode_advert(data).reason is RejectReason.BAD_AUTH                            # no key
    assert decode_advert(data, mac=BT_MAC, key=bytes(16)).reason is RejectReason.BAD_AUTH  # wrong key
    assert decode_advert(data, mac="54:48:E6:8F:80:A6", key=BT_KEY).reason is RejectReason.BAD_AUTH
    changed_counter = data[:-8] + bytes([0x34]) + data[-7:]
    assert decode_advert(changed_counter, mac=BT_MAC, key=BT_KEY).reason is RejectReason.BAD_AUTH


def test_event_mapping():
    adv = decode_advert(bytes.fromhex("40" + "1a01" + "2101" + "2300" + "2b01" + "3a04"))
    assert [e.code for e in advert_events(adv).events] == [EventCode.DOOR_OPEN, EventCode.MOTION, EventCode.BED_OUT,
                                                          EventCode.TAMPER, EventCode.BUTTON_CANCEL]
    adv = decode_advert(bytes.fromhex("40" + "1a00" + "2100" + "2b00" + "3a02"))
    assert [e.code for e in advert_events(adv).events] == [EventCode.DOOR_CLOSED]
    bad = advert_events(decode_advert(bytes.fromhex("4054027e00")))
    assert not bad.events and [r.reason for r in bad.rejects] == [RejectReason.UNKNOWN_CODE]
    empty = advert_events(decode_advert(bytes.fromhex("405400")))
    assert [r.reason for r in empty.rejects] == [RejectReason.BAD_PAYLOAD]
    assert isinstance(decode_advert(b"\x40", mac="nothex"), Rejection)


def test_mac_included_bit():
    """Info bit1: the MAC follows, least significant byte first (also used in the nonce)."""
    adv = decode_advert(bytes.fromhex("42b2188d38c1a404138a01"))
    assert adv.mac == "a4c1388d18b2" and adv.mac_included and values(adv) == {"pressure": 1008.83}
    enc = bytes.fromhex("43a5808fe64854f196c06ffb4900112233f08ecbde")
    adv = decode_advert(enc, key=BT_KEY)
    assert adv.mac == "5448e68f80a5" and values(adv) == {"temperature": 25.06, "humidity": 50.55}
    assert encode_advert([(0x02, 25.06), (0x03, 50.55)], key=BT_KEY, mac=BT_MAC, counter=0x33221100, mac_included=True) == enc
    assert decode_advert(bytes.fromhex("4201020304")).reason is RejectReason.SHORT
