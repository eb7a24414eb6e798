"""Re-flashing and re-keying a device (issue 10 F12), end to end: the real firmware
(``main.boot`` compiled as deployed, on the MicroPython unix port, hil_tests/fw_runner.py with
its real-time clock) on a pseudo-terminal, against the real gateway ingress
(:class:`gateway.domain.ingress.Ingress`) driven as the daemon drives it: events stored in a
journal, ACK from the stored event, replies written at once, TIME answered to HELLO.

Before the fix, a device re-flashed and re-keyed restarted its seqs at 1, below the
gateway's window: its new alarm got the id of an old, journaled event and was answered
ACK DUPLICATE - the device deleted an alarm nobody had. Now the gateway binds its replay
state to the key, answers the old seqs ERROR 3 "seq=S highest=H", and the device
renumbers the alarm above H (the re-numbering path, appdl._on_error) - delivered once.
And a device re-keyed with its flash kept, talking to a replaced gateway whose downlink
seqs start again at 1, resets its downlink window (bound to the key): it takes the new
gateway's ACK instead of refusing it as a replay for ever."""
from __future__ import annotations

import os
import select
import threading
import time
from pathlib import Path

import pytest

from gateway.codec import Ack, Error, ErrorCode, MsgType, Time, decode_wire
from gateway.codec.frame import Frame
from gateway.domain.ingress import Ingress
from gateway.domain.ports import SystemClock

DEV = "0200000000f1"
K1 = "00112233445566778899aabbccddeeff"
K2 = "f0e1d2c3b4a5968778695a4b3c2d1e0f"


class Store:
    """The journal as ingress sees it (contains / get_state / set_state) plus the events."""

    def __init__(self) -> None:
        self.state: dict[str, bytes] = {}
        self.events: dict[str, int] = {}          # event id -> code

    def contains(self, event_id: str) -> bool:
        return event_id in self.events

    def get_state(self, key: str) -> bytes | None:
        return self.state.get(key)

    def set_state(self, key: str, value: bytes) -> None:
        self.state[key] = bytes(value)


class IngressGateway:
    """A pty and a thread: bytes -> Ingress.feed -> store, ACK after the store, replies."""

    def __init__(self, store: Store, key_hex: str, times_per_hello: int = 1) -> None:
        from hil_tests.faults import open_pty

        self.master, self._slave, self.path = open_pty()
        self.online = True                 # False: what the device sends is lost
        self.times_per_hello = times_per_hello
        self.stored: list[tuple[str, int]] = []   # (event id, code) in store order
        self.acks_sent: list[int] = []            # acked device seqs (STORED and DUPLICATE)
        self.errors: list[str] = []               # ERROR messages sent
        self.rejects: list[str] = []
        self._lock = threading.Lock()
        self.use(store, key_hex)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True, name="ingress-gw")
        self._thread.start()

    def use(self, store: Store, key_hex: str) -> None:
        """A (re)started gateway: a new Ingress over ``store`` with the device's key."""
        with self._lock:
            self.store = store
            self.ingress = Ingress("gw-rekey", {DEV: bytes.fromhex(key_hex)}, store, SystemClock())

    def _write(self, raw: bytes) -> None:
        f = decode_wire(raw)
        p = f.decode_payload() if isinstance(f, Frame) else f
        if isinstance(p, Error):
            self.errors.append(f"{int(p.code)} {p.msg}")
        elif isinstance(p, Ack):
            self.acks_sent.append(p.acked_seq)
        os.write(self.master, raw)

    def _run(self) -> None:
        while not self._stop.is_set():
            r, _, _ = select.select([self.master], [], [], 0.05)
            if not r:
                continue
            try:
                data = os.read(self.master, 4096)
            except OSError:
                return
            with self._lock:
                if not self.online:
                    continue
                ing = self.ingress
                res = ing.feed("pty", data)
                self.rejects += [x.reason.value for x in res.rejects]
                for _, raw in res.replies:
                    self._write(raw)
                for u in res.device_updates:
                    if u.fw_version is not None:          # HELLO: the daemon answers TIME
                        for _ in range(self.times_per_hello):
                            self._write(ing.downlink(DEV, MsgType.TIME, Time(int(time.time()))))
                for ev in res.events:
                    new = ev.event_id not in self.store.events
                    if new:
                        self.store.events[ev.event_id] = int(ev.code)
                        self.stored.append((ev.event_id, int(ev.code)))
                    self._write(ing.ack_frame(ev, duplicate=not new))

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(5)
        for fd in (self.master, self._slave):
            os.close(fd)


def _wait(pred, timeout_s: float, what: str, fw=None) -> None:
    deadline = time.monotonic() + timeout_s
    while not pred():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not within {timeout_s} s" + (f"\n{fw.log()}" if fw else ""))
        time.sleep(0.05)


def _device(tmp_path: Path, gw: IngressGateway, key: str, press_ms: int):
    from hil_tests.emulated import DeviceSpec, FirmwareProcess

    spec = DeviceSpec(name="btn", role="button", device_id=DEV, key=key, cfg={"heartbeat_s": 600},
                      pins={"button": [(press_ms, 1), (press_ms + 150, 0)]})
    return FirmwareProcess(spec, gw.path, tmp_path).start()


@pytest.mark.security
@pytest.mark.slow
@pytest.mark.timeout(180)
def test_F12_reflashed_and_rekeyed_device_renumbers_its_alarm_on_error_3_and_it_arrives(tmp_path, micropython_bin):
    store = Store()
    gw = IngressGateway(store, K1)
    try:
        fw = _device(tmp_path, gw, K1, 2500)
        _wait(lambda: len(gw.stored) == 1 and gw.acks_sent, 40, "first alarm stored and acked", fw)
        time.sleep(0.5)
        fw.stop()
        (old_id, _), = gw.stored
        old_seq = int(old_id.split("-")[1], 16)

        # re-flashed (flash erased: counters, queue, windows gone) and re-keyed; the gateway
        # restarts with the new key. It is "away" for the device's HELLO, so the first
        # thing it hears is the alarm, with a seq at or below the old one.
        (tmp_path / "btn.img").unlink()
        gw.online = False
        gw.use(store, K2)
        fw = _device(tmp_path, gw, K2, 5000)
        time.sleep(3.0)
        gw.online = True
        _wait(lambda: len(gw.stored) == 2, 60, "the re-keyed device's alarm stored", fw)
        time.sleep(1.0)
        fw.stop()
    finally:
        gw.stop()
    new_id, code = gw.stored[1]
    new_seq = int(new_id.split("-")[1], 16)
    assert code == 0x01 and new_id != old_id
    assert new_seq > old_seq                              # renumbered above the old key's seqs
    refused = [e for e in gw.errors if e.startswith(f"{int(ErrorCode.REPLAY)} ")]
    assert refused, gw.errors                             # the ERROR 3 path ran ...
    assert all(int(e.rsplit("highest=", 1)[1]) >= old_seq for e in refused)   # where to continue
    assert gw.acks_sent[-1] == new_seq                    # ... and the renumbered alarm was ACKed
    assert "replay" in gw.rejects


@pytest.mark.slow
@pytest.mark.timeout(180)
def test_rekeyed_device_takes_a_new_gateways_downlinks(tmp_path, micropython_bin):
    gw = IngressGateway(Store(), K1, times_per_hello=100)   # the device saves a dlseq > 64
    try:
        fw = _device(tmp_path, gw, K1, 2500)
        _wait(lambda: len(gw.stored) == 1 and gw.acks_sent, 40, "first alarm stored and acked", fw)
        time.sleep(0.5)
        fw.stop()
        # a replaced gateway (new journal: its downlink seqs start at 1 again) and a new key;
        # the device keeps its flash (queue, counters, the saved downlink window)
        gw.times_per_hello = 1
        gw.use(Store(), K2)
        fw = _device(tmp_path, gw, K2, 4000)
        _wait(lambda: len(gw.stored) == 2, 40, "the re-keyed device's alarm stored", fw)
        time.sleep(4.0)   # the device re-sends an alarm whose ACK it refused (retry_ms)
        fw.stop()
    finally:
        gw.stop()
    second = gw.acks_sent[1:]
    assert len(second) == 1, f"the alarm was re-sent: the device refused the new gateway's ACK {gw.acks_sent}"
