"""The test kit itself: fake clocks, stimuli (checked with the real codec), waiting helpers, fakes."""
from __future__ import annotations

import asyncio
import time

import pytest

from gateway.codec import EventPayload, decode_advert, decode_wire
from gateway.codec.bthome import DOOR, PACKET_ID
from gateway.domain.model import Event, EventCode
from gateway.domain.ports import Clock
from gateway.testing.clock import DEFAULT_EPOCH, DEFAULT_MONOTONIC, FakeClock, OffsetClock
from gateway.testing.stimuli import (TEST_DEVICE, TEST_KEY, bthome_plain, button_presses, device_event, event_frame,
                                     nmea_checksum, offset_position, releases, resample_mg)
from gateway.testing.waiting import async_wait_until, run_async, wait_until
from gateway.tests._kit import FakeJournal, FakeSink


# ------------------------------------------------------------------ clocks
def test_fake_clock_stands_still_until_moved():
    c: Clock = FakeClock()
    assert (c.time(), c.monotonic()) == (DEFAULT_EPOCH, DEFAULT_MONOTONIC)
    assert c.time() == c.time()


def test_fake_clock_advance_moves_both_and_set_steps_one():
    c = FakeClock(100.0, mono=5.0)
    c.advance(2.5)
    assert (c.time(), c.monotonic()) == (102.5, 7.5)
    c.set(50.0)                                   # an NTP step back: wall only
    assert (c.time(), c.monotonic()) == (50.0, 7.5)
    c.set(mono=9.0)
    assert (c.t, c.mono) == (50.0, 9.0)
    with pytest.raises(ValueError, match="backwards"):
        c.advance(-1)
    with pytest.raises(ValueError, match="never goes back"):
        c.set(mono=8.0)


def test_offset_clock_runs_and_jumps_wall_only_when_asked():
    c = OffsetClock(1_000_000.0)
    t0, m0 = c.time(), c.monotonic()
    assert abs(t0 - 1_000_000.0) < 1.0 and abs(m0 - time.monotonic()) < 1.0
    c.advance(600, monotonic=False)             # the demo's "fast-forward"
    assert 600 <= c.time() - t0 < 601 and c.monotonic() - m0 < 1
    c.advance(60)
    assert 660 <= c.time() - t0 < 661 and 60 <= c.monotonic() - m0 < 61
    with pytest.raises(ValueError):
        c.advance(-1)


# ------------------------------------------------------------------ stimuli
def test_event_frame_decodes_with_the_real_codec():
    f = decode_wire(event_frame(42, EventCode.FALL_DETECTED, age_ms=1500, data={"peak_cg": 300, "placement": 0}))
    assert f.device_id == TEST_DEVICE and f.seq == 42 and f.verify(TEST_KEY) and f.urgent
    assert f.decode_payload() == EventPayload(EventCode.FALL_DETECTED, 1500, {"peak_cg": 300, "placement": 0})
    motion = decode_wire(event_frame(1, EventCode.MOTION, key=None, device="0011223344aa"))
    assert not motion.urgent and not motion.authenticated and motion.device_id == "0011223344aa"


def test_bthome_plain_decodes_with_the_real_codec():
    adv = decode_advert(bthome_plain(7, (DOOR, 1)))
    assert not adv.encrypted
    assert [(o.object_id, o.value) for o in adv.objects] == [(PACKET_ID, 7), (DOOR, 1)]


def test_device_event_is_what_ingress_stores():
    e = device_event(0x2A, EventCode.BUTTON_PRESS, 1_795_413_600.0, data={"x": 1})
    assert e == Event("a4c1380a1b2c-0000002a", TEST_DEVICE, EventCode.BUTTON_PRESS, 1_795_413_600.0,
                      1_795_413_600.0, seq=42, data={"x": 1})


def test_device_side_stimuli():
    trace = button_presses(first_ms=1000, n=2, every_ms=500, hold_ms=100)
    assert trace == [(1000, 1), (1100, 0), (1500, 1), (1600, 0)] and releases(trace) == [1100, 1600]
    assert resample_mg([(0.0, 0.0, 1.0)] * 4 + [(1.0, 0.0, 1.0)] * 4, 200, 50) == [(0, 0, 1000), (1000, 0, 1000)]
    assert nmea_checksum("GPGGA,,,,,,0,,,,,,,,") == "66"
    lat, lon = offset_position(59.9, 10.7, 1113.2, 0.0)
    assert (round(lat, 4), lon) == (59.91, 10.7)


# ------------------------------------------------------------------ waiting
def test_wait_until_returns_the_value_or_names_what_it_waited_for():
    box = iter([0, 0, 5])
    assert wait_until(lambda: next(box), 1.0, step_s=0.001) == 5
    with pytest.raises(AssertionError, match="timed out after 0.1 s waiting for the answer"):
        wait_until(lambda: False, 0.1, "the answer", step_s=0.01)


def test_async_wait_until_runs_before_each_poll_and_run_async_limits_time():
    pumped: list[int] = []

    async def scenario() -> int:
        return await async_wait_until(lambda: len(pumped) >= 3 and len(pumped), 1.0, before=lambda: pumped.append(1),
                                      step_s=0.001)

    assert run_async(scenario, 5.0) == 3

    async def hangs() -> None:
        await asyncio.sleep(10)

    with pytest.raises(TimeoutError):
        run_async(hangs, 0.05)


# ------------------------------------------------------------------ fakes
def test_fake_journal_and_sink():
    j, sink = FakeJournal(counter=9), FakeSink()
    e = device_event(1)
    assert j.append(e) and not j.append(e) and j.contains(e.event_id) and j.appends == 2
    j.set_state("k", b"v")
    assert j.get_state("k") == b"v" and j.state_writes == 1 and j.next_gateway_counter() == 10
    j.counter_error = OSError(28, "No space left on device")
    with pytest.raises(OSError):
        j.next_gateway_counter()
    stored: list[tuple[str, bool]] = []
    sink.submit(e, lambda ev, new: stored.append((ev.event_id, new)))
    assert sink.events == [e] and stored == [(e.event_id, True)]
