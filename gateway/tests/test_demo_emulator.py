"""Emulated transport and devices speak the real protocol (checked with the real codec/ingress)."""
from __future__ import annotations

import asyncio

from gateway.codec import Ack, AckStatus, MsgType, StreamDecoder, encode_frame
from gateway.codec.frame import Frame
from gateway.codec.payloads import decode_payload
from gateway.testing.emulator import BedSensor, DoorSensor, EmulatedHome, SafetyButton, home_devices, key_for
from gateway.testing.emulator.proxy import UplinkCutter
from gateway.domain.ingress import Ingress
from gateway.adapters.journal import SqliteJournal
from gateway.domain.model import EventCode, Role
from gateway.adapters.transports import LinkState
from gateway.testing.clock import FakeClock
from gateway.testing.emulated_link import EmulatedAir, EmulatedLink

DEV = "e00000000001"


def test_frame_device_retransmits_until_acked_then_stops(tmp_path):
    async def run():
        loop = asyncio.get_running_loop()
        clock = FakeClock()
        journal = SqliteJournal(tmp_path / "j.sqlite")
        key = key_for(DEV)
        ingress = Ingress("gw-t", {DEV: key}, journal, clock)
        wire: list[bytes] = []
        link = EmulatedLink("emu:1", loop, lambda name, data: wire.append(data))
        link.start()
        dev = SafetyButton(DEV, key, clock, heartbeat_s=0, retry_s=2.0)
        dev.attach(link)
        rec = dev.press()
        await asyncio.sleep(0)
        clock.advance(1.0)
        dev.tick()                                    # too early: no resend
        clock.advance(1.5)
        dev.tick()                                    # resend with the same seq, older age
        await asyncio.sleep(0)
        frames = [f for chunk in wire for f in StreamDecoder().feed(chunk) if isinstance(f, Frame)]
        assert [f.seq for f in frames] == [1, 1] and all(f.urgent and f.verify(key) for f in frames)
        ages = [decode_payload(f.type, f.payload).age_ms for f in frames]
        assert ages == [0, 2500]
        res = ingress.feed("emu:1", wire[0])
        assert [e.event_id for e in res.events] == [rec.event_id] and res.events[0].code is EventCode.BUTTON_PRESS
        journal.append(res.events[0])
        link.send(ingress.ack_frame(res.events[0]))
        await asyncio.sleep(0)
        assert dev.outbox == {} and rec.ack_status == "stored"
        clock.advance(10)
        n = len(wire)
        dev.tick()
        await asyncio.sleep(0)
        assert len(wire) == n                         # acknowledged: no more resends
        # a forged ACK (wrong key) or a reflected uplink frame is rejected by the device
        rec2 = dev.press()
        forged = encode_frame(MsgType.ACK, DEV, 99, Ack(rec2_seq := dev.seq, AckStatus.STORED), key=bytes(16), downlink=True)
        reflected = encode_frame(MsgType.ACK, DEV, 99, Ack(rec2_seq, AckStatus.STORED), key=key)
        link.send(forged)
        link.send(reflected)
        await asyncio.sleep(0)
        assert dev.rejected_downlinks == 2 and rec2_seq in dev.outbox and rec2.ack_status is None
        journal.close()
    asyncio.run(run())


def test_link_cut_drops_both_directions():
    async def run():
        loop = asyncio.get_running_loop()
        got: list[bytes] = []
        states: list[LinkState] = []
        link = EmulatedLink("emu:x", loop, lambda n, d: got.append(d), on_state=lambda n, s: states.append(s))
        down: list[bytes] = []
        link.on_device_bytes = down.append
        link.start()
        assert link.device_write(b"a\x00")
        link.cut()
        assert not link.device_write(b"b\x00")
        link.send(b"c\x00")
        link.restore()
        link.send(b"d\x00")
        await asyncio.sleep(0)
        assert got == [b"a\x00"] and down == [b"d\x00"] and link.dropped == 2
        assert states == [LinkState.UP, LinkState.DOWN, LinkState.UP]
    asyncio.run(run())


def test_advert_devices_encrypt_and_ingress_decodes_with_matching_ids(tmp_path):
    async def run():
        loop = asyncio.get_running_loop()
        clock = FakeClock()
        journal = SqliteJournal(tmp_path / "j.sqlite")
        bed_id, door_id = "e00000000003", "e00000000004"
        ingress = Ingress("gw-t", {bed_id: key_for(bed_id), door_id: key_for(door_id)}, journal, clock)
        heard: list[tuple[str, bytes, int]] = []
        air = EmulatedAir(loop, lambda mac, sd, rssi: heard.append((mac, sd, rssi)))
        bed = BedSensor(bed_id, key_for(bed_id), clock, repeats=3, repeat_gap_s=0.01)
        door = DoorSensor(door_id, key_for(door_id), clock, repeats=1)
        bed.attach(air, loop)
        door.attach(air, loop)
        rec_bed = bed.out_of_bed()
        rec_door = door.open()
        await asyncio.sleep(0.1)
        assert len(heard) == 4 and heard[0][1][0] & 0x01       # encrypted BTHome (device-info bit0)
        events = [e for mac, sd, rssi in heard for e in ingress.advert(mac, sd, rssi).events]
        assert sorted((e.event_id, e.code) for e in events) == sorted(
            [(rec_bed.event_id, EventCode.BED_OUT), (rec_door.event_id, EventCode.DOOR_OPEN)])   # repeats deduped
        journal.close()
    asyncio.run(run())


def test_home_builds_every_demo_role_and_counts_unacked():
    async def run():
        loop = asyncio.get_running_loop()
        home = EmulatedHome(loop, FakeClock(), home_devices(12))
        assert {d.role for d in home} == {Role.BUTTON, Role.FALL, Role.BED, Role.DOOR, Role.DISPENSER, Role.GPS}
        assert len(home.links) == 8                            # frame devices get links; bed/door advertise
        for link in home.links.values():
            link.on_bytes = lambda n, d: None
            link.start()
        home.by_role(Role.BUTTON).press()
        home.by_role(Role.DISPENSER).dose_due(1, 480)
        assert home.unacked() == 2 and len(home.emitted()) == 2
    asyncio.run(run())


def test_uplink_cutter_cuts_and_restores():
    async def run():
        async def echo(r, w):
            while data := await r.read(100):
                w.write(data)
                await w.drain()
            w.close()
        srv = await asyncio.start_server(echo, "127.0.0.1", 0)
        cutter = UplinkCutter("127.0.0.1", srv.sockets[0].getsockname()[1])
        await cutter.async_start()
        r, w = await asyncio.open_connection("127.0.0.1", cutter.port)
        w.write(b"ping")
        assert await asyncio.wait_for(r.read(4), 5) == b"ping"
        cutter.cut()
        assert await asyncio.wait_for(r.read(4), 5) == b""     # connection closed
        r2, w2 = await asyncio.open_connection("127.0.0.1", cutter.port)
        assert await asyncio.wait_for(r2.read(4), 5) == b""    # refused while cut
        cutter.restore()
        r3, w3 = await asyncio.open_connection("127.0.0.1", cutter.port)
        w3.write(b"pong")
        assert await asyncio.wait_for(r3.read(4), 5) == b"pong"
        w3.close()
        await cutter.async_stop()
        srv.close()
        assert cutter.refused == 1
    asyncio.run(run())
