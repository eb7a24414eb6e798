"""Fault scenarios: a noisy serial link, power cuts on the gateway and on a sensor, a dead battery."""
from __future__ import annotations

import time

import pytest

from gateway.testing.stimuli import button_presses
from gateway.testing.waiting import wait_until
from hil_tests.conftest import Transcript, device
from hil_tests.faults import FaultPolicy

pytestmark = pytest.mark.hil


def _seq(a) -> int:
    return int(a.event_id.rsplit("-", 1)[1], 16)


def test_noisy_serial_link_still_delivers_each_alarm_exactly_once(emulated_bench, hil_metrics, update_golden):
    """Bytes dropped, corrupted, duplicated and delayed (10 ms per chunk) in BOTH directions: CRC rejects, the device retransmits
    (lost ACKs → retransmission → ACK DUPLICATE), and each press is one alarm at the platform."""
    n = 8
    trace = button_presses(first_ms=2000, n=n, every_ms=500)
    bench = emulated_bench([device("button-1", pins={"button": trace}, cfg={"retry_ms": 300, "retry_max_ms": 1500})])
    proxy = bench.serial["button-1"]
    proxy.set_policy(up=FaultPolicy(drop=0.15, corrupt=0.15, duplicate=0.15, delay_s=0.01, seed=11),
                     down=FaultPolicy(drop=0.2, corrupt=0.1, duplicate=0.1, delay_s=0.01, seed=12))
    got = bench.platform.wait_for(lambda a: a.type == "button_press", timeout_s=45, count=n)
    assert len(got) == n, bench.debug()
    # keep the faults on a little longer so retransmissions of already-delivered events happen too
    time.sleep(2.0)
    proxy.set_policy(up=FaultPolicy(), down=FaultPolicy(seed=2))
    time.sleep(1.0)
    presses = [a for a in bench.platform.all_arrivals() if a.type == "button_press"]
    assert len(presses) == n and len({a.event_id for a in presses}) == n
    up, down = proxy.counters["up"], proxy.counters["down"]
    assert up.dropped + up.corrupted + up.duplicated > 0 and down.dropped + down.corrupted + down.duplicated > 0
    st = bench.gw.status()
    rejects = st["ingress"]["rejects"]
    hil_metrics.figure("faults_up", f"drop {up.dropped} corrupt {up.corrupted} dup {up.duplicated} of {up.chunks}")
    hil_metrics.figure("faults_down", f"drop {down.dropped} corrupt {down.corrupted} dup {down.duplicated} of {down.chunks}")
    hil_metrics.figure("gateway_rejects", rejects)
    hil_metrics.figure("gateway_duplicate_events_acked", st["ingress"]["duplicates"])
    hil_metrics.figure("platform_redeliveries", bench.platform.duplicates)
    Transcript(bench).arrivals(sorted(presses, key=_seq)).check("serial_faults", update_golden)


def test_gateway_power_cut_mid_burst_loses_nothing(emulated_bench, hil_metrics, update_golden):
    """kill -9 of the gateway daemon in the middle of a burst of 16 presses; restarted 1 s later."""
    n = 16
    trace = button_presses(first_ms=2000, n=n, every_ms=200, hold_ms=90)
    bench = emulated_bench([device("button-1", pins={"button": trace}, cfg={"retry_ms": 500, "retry_max_ms": 2000})])
    fw = bench.firmware["button-1"]
    # mid burst: 8 presses done, the 9th pressed
    wait_until(lambda: len(fw.input_edges("button")) >= n + 1, 20, "mid burst")
    bench.gw.power_cut()
    before = len([a for a in bench.platform.all_arrivals() if a.type == "button_press"])
    time.sleep(1.0)
    bench.gw.start()
    got = bench.platform.wait_for(lambda a: a.type == "button_press", timeout_s=40, count=n)
    assert len(got) == n, bench.debug()
    assert 0 < before < n, f"the cut was not mid burst ({before} of {n} delivered before it)"
    time.sleep(1.0)
    presses = [a for a in bench.platform.all_arrivals() if a.type == "button_press"]
    assert len({a.event_id for a in presses}) == n == len(presses)
    assert sorted(_seq(a) for a in presses) == list(range(_seq(min(presses, key=_seq)),
                                                           _seq(min(presses, key=_seq)) + n))
    hil_metrics.figure("delivered_before_cut", before)
    hil_metrics.figure("platform_redeliveries", bench.platform.duplicates)
    Transcript(bench).arrivals(sorted(presses, key=_seq)).check("gateway_power_cut", update_golden)


def test_sensor_power_cut_mid_write_loses_nothing(emulated_bench, hil_metrics, update_golden):
    """The link is cut (device → gateway bytes dropped) so presses queue in flash. The 12th press's
    event is being written when the power goes: the flash image tears that write half way (the
    host HAL's FileBlockDev power-cut seam, armed after the 12th release) and the process is killed
    at once. After power returns every press queued before the cut reaches the platform, once; the
    torn one does not (it never became durable) and the device boots cleanly."""
    n = 12
    trace = button_presses(first_ms=2000, n=n, every_ms=160, hold_ms=80)
    bench = emulated_bench([device("button-1", pins={"button": trace}, cut=f"button:{2 * n}:1",
                                   cfg={"retry_ms": 500, "retry_max_ms": 2000})])
    fw = bench.firmware["button-1"]
    proxy = bench.serial["button-1"]
    proxy.set_policy(up=FaultPolicy(drop=1.0, seed=3))
    wait_until(lambda: fw.powercut_at is not None, 20, "the power cut mid-write")
    assert fw.proc is not None and fw.proc.wait(5) is not None
    proxy.drain("up")      # what the device sent before the cut is dropped, not let through after it
    assert bench.platform.all_arrivals() == []
    proxy.set_policy(up=FaultPolicy(seed=4))
    fw2 = bench.restart_firmware("button-1", pins={}, cut=None)
    got = bench.platform.wait_for(lambda a: a.type == "button_press", timeout_s=40, count=n - 1)
    assert len(got) == n - 1, bench.debug()
    time.sleep(2.0)
    presses = sorted([a for a in bench.platform.all_arrivals() if a.type == "button_press"], key=_seq)
    assert len(presses) == n - 1 and len({a.event_id for a in presses}) == n - 1
    console = "\n".join(fw2.lines[fw2.lines.index("==== restart"):])
    assert fw2.boots == 1 and "Traceback" not in console, console
    hil_metrics.figure("powercut_at_ms", fw.powercut_at)
    hil_metrics.figure("delivered_after_power_back", len(presses))
    Transcript(bench).arrivals(presses).note(
        f"all {n - 1} presses queued before the cut delivered once; the one torn mid-write: not delivered").check(
        "sensor_power_cut", update_golden)


def test_dead_battery_raises_technical_alarm_within_supervision_window(emulated_bench, hil_metrics,
                                                                        update_golden):
    """A button on a failing battery reports low_battery, then dies (stops heartbeating): the gateway raises
    device_silent within the device's supervision window (8 s on this bench)."""
    silent_s = 8.0
    bench = emulated_bench([device("button-1", battery=(12, 3450, 4), cfg={"heartbeat_s": 10},
                                   gateway={"silent_after_s": silent_s})])
    low = bench.platform.wait_for(lambda a: a.type == "low_battery", timeout_s=15)
    assert low and low[0].payload["class"] == "technical" and low[0].payload["data"]["battery_pct"] == 12, \
        bench.debug()
    time.sleep(1.0)
    bench.firmware["button-1"].power_cut()
    t_dead = time.time()
    dev = bench.spec("button-1").device_id
    last_seen = max(d["last_seen"] for d in bench.gw.status()["devices"] if d["device"] == dev)
    got = bench.platform.wait_for(lambda a: a.type == "device_silent", timeout_s=silent_s + 15)
    assert got, bench.debug()
    a = got[0]
    assert a.payload["class"] == "technical" and a.payload["device"] == dev
    after_last_frame = a.arrived_at - (last_seen if isinstance(last_seen, (int, float)) else t_dead)
    hil_metrics.figure("silent_alarm_after_last_frame_s", round(after_last_frame, 2))
    hil_metrics.figure("silent_alarm_after_death_s", round(a.arrived_at - t_dead, 2))
    assert a.arrived_at - t_dead <= silent_s + 3.0, a.arrived_at - t_dead
    assert a.arrived_at > t_dead, "device_silent while the device was still alive"
    # one line per alarm type in order of first arrival: whether the device's own low_battery event
    # (sent at its next loop wake) or the gateway's battery rule reports first is a race, not a result
    first: dict[str, object] = {}
    for x in bench.platform.all_arrivals():
        if x.payload.get("class") != "event":
            first.setdefault(x.type, x)
    Transcript(bench).arrivals(list(first.values()),
                               volatile=("battery_mv", "source", "threshold_pct", "last_seen", "silent_for_s")).check(
        "battery_dies", update_golden)


def _fill(directory, tag: str) -> int:
    """Write filler files until the filesystem is full (ENOSPC); returns the bytes written."""
    import errno

    written = 0
    chunk = b"\xa5" * 65536
    with open(directory / f"filler-{tag}", "wb", buffering=0) as f:
        while True:
            try:
                n = f.write(chunk)
            except OSError as exc:
                if exc.errno != errno.ENOSPC:
                    raise
                chunk = chunk[: len(chunk) // 2]
                if len(chunk) < 512:
                    return written
                continue
            written += n or 0


@pytest.fixture
def tiny_fs(tmp_path):
    import os
    import shutil
    import subprocess

    mnt = tmp_path / "tinyfs"
    mnt.mkdir()
    if os.geteuid() != 0 or not shutil.which("mount") or subprocess.run(
            ["mount", "-t", "tmpfs", "-o", "size=3m", "tmpfs", str(mnt)], capture_output=True).returncode:
        pytest.skip("needs root to mount a 3 MB tmpfs for the journal (a real full filesystem); "
                    "gateway/tests/test_faults.py covers the injected-ENOSPC variant")
    yield mnt
    subprocess.run(["umount", "-l", str(mnt)], check=False)


def test_full_disk_under_the_journal_still_delivers_every_alarm(emulated_bench, tiny_fs, hil_metrics, update_golden):
    """The gateway's journal lives on a 3 MB filesystem that the bench fills up (ENOSPC) before each
    of two bursts of 3 presses: every alarm still reaches the platform once and the device gets its ACKs."""
    from gateway.codec import Ack

    trace = button_presses(first_ms=4000, n=3, every_ms=500) + button_presses(first_ms=8000, n=3, every_ms=500)
    bench = emulated_bench([device("button-1", pins={"button": trace}, cfg={"retry_ms": 500, "retry_max_ms": 2000})],
                           gateway={"journal": {"path": str(tiny_fs / "journal.sqlite")}})
    fw = bench.firmware["button-1"]
    filled = [_fill(tiny_fs, "1")]
    assert time.time() < fw.wall(4000), "the disk was not full before the first press"
    first = bench.platform.wait_for(lambda a: a.type == "button_press", timeout_s=20, count=3)
    assert len(first) == 3, bench.debug()
    filled.append(_fill(tiny_fs, "2"))      # whatever the journal freed (its ballast) is gone again
    assert time.time() < fw.wall(8000), "the disk was not full again before the second burst"
    got = bench.platform.wait_for(lambda a: a.type == "button_press", timeout_s=25, count=6)
    assert len(got) == 6, bench.debug()
    seqs = {int(a.event_id.rsplit("-", 1)[1], 16) for a in got}
    wait_until(lambda: seqs <= {p.acked_seq for _, p in bench.downlink_payloads("button-1", Ack)}, 20,
               "the device's ACK for every alarm")
    time.sleep(1.0)
    presses = [a for a in bench.platform.all_arrivals() if a.type == "button_press"]
    assert len(presses) == 6 == len({a.event_id for a in presses})
    st = bench.gw.status()
    assert st is not None, "the gateway stopped answering on a full disk"
    hil_metrics.figure("filler_bytes", filled)
    hil_metrics.figure("journal", {k: st["journal"][k] for k in ("total", "undelivered", "shed")})
    hil_metrics.figure("technical_alarms", sorted({a.type for a in bench.alarms() if a.type != "button_press"}))
    Transcript(bench).arrivals(sorted(presses, key=_seq)).note(
        "disk full before each burst: every alarm delivered once, every event ACKed").check("disk_full", update_golden)


def test_slow_broker_path_delays_but_delivers_each_alarm_once(emulated_bench, hil_metrics, update_golden):
    """Every chunk on the gateway ↔ broker path is held 250 ms (a congested 4G link): 6 presses are each
    delivered once, within 3 s, in order."""
    n = 6
    trace = button_presses(first_ms=3000, n=n, every_ms=700)
    bench = emulated_bench([device("button-1", pins={"button": trace})])
    fw = bench.firmware["button-1"]
    bench.uplink.set_mode("slow", delay_s=0.25)
    got = bench.platform.wait_for(lambda a: a.type == "button_press", timeout_s=25, count=n)
    assert len(got) == n, bench.debug()
    lat = [(a.arrived_at - fw.wall(t)) for t, a in zip(fw.input_edges("button", 0), sorted(got, key=_seq))]
    hil_metrics.figure("slow_path_press_to_platform_s", [round(x, 2) for x in lat])
    assert all(0.25 <= x <= 3.0 for x in lat), lat
    time.sleep(1.0)
    presses = [a for a in bench.platform.all_arrivals() if a.type == "button_press"]
    assert len(presses) == n == len({a.event_id for a in presses})
    Transcript(bench).arrivals(sorted(presses, key=_seq)).check("slow_uplink", update_golden)
