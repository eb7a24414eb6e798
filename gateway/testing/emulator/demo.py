"""`gateway demo`: broker + gateway daemon + emulated home + response console, scripted.

Everything runs on one event loop in one process (paho and the journal writer in their
own threads), sharing one :class:`~gateway.testing.clock.OffsetClock`: real time, plus an
offset the script can advance ("fast-forward 31 minutes") so the bed and dose rules fire
within a short demo. Wall and monotonic time jump together (the rules measure durations on
the monotonic clock, so a wall-only jump would rightly change nothing); in the same loop
callback every emulated device speaks (its heartbeat is due after the jump), so its frame
is ingested before the next supervision tick and no device looks silent.

The summary compares what the emulated devices and the gateway's rules emitted with what
the console (the platform side) received: lost, duplicated, acknowledged.

With ``scaip`` (``gateway demo --scaip``) a SIPp alarm receiving centre answers ``snu`` 0
to every SCAIP report, behind a UDP relay the outage cuts too; the gateway sends alarms to
the centre first (``[scaip] role = "primary"``) and everything else over MQTT to the
console, and the demo prints each alarm's press → centre reply latency as it happens. An
alarm counts as delivered when the centre or the console has it.
"""
from __future__ import annotations

import asyncio
import datetime as _dt
import statistics
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, TextIO
from zoneinfo import ZoneInfo

from gateway.config import GatewayConfig, load_config
from gateway.testing.emulator.devices import GpsTracker
from gateway.testing.emulator.home import EmulatedHome, home_devices
from gateway.testing.emulator.proxy import UplinkCutter
from gateway.adapters.mains import EmulatedMainsInput, MainsState
from gateway.domain.model import Event, Role
from gateway.domain.ports import Clock
from gateway.testing.clock import OffsetClock

GPS_HOME = (59.9139, 10.7522)


@dataclass
class DemoOptions:
    duration_s: float = 40.0
    outage_s: float = 0.0
    broker: str | None = None          # "host:port" of a broker to reuse; None = start one
    data_dir: str | None = None
    settle_s: float = 30.0             # max wait for the backlog / ACKs at the end
    status_port: int = 0
    discovery: bool = True
    scaip: bool = False                # a SIPp alarm receiving centre as the alarms' primary route


@dataclass
class DemoSummary:
    device_events: int = 0
    gateway_events: int = 0
    delivered: int = 0
    lost: int = 0
    lost_ids: list[str] = field(default_factory=list)
    duplicate_deliveries: int = 0
    duplicates_shown: int = 0
    alarms: int = 0
    alarms_acknowledged: int = 0
    device_acks_missing: int = 0
    journal_events: int = 0
    backlog_at_restore: int = 0
    outage_s: float = 0.0
    latency_ms_median: float | None = None     # device alarms raised while the uplink was up
    latency_ms_max: float | None = None
    outage_alarms: int = 0                     # device alarms raised during the outage (delivered late)
    centre_alarms: int = 0                     # --scaip: alarms the centre answered snu 0
    centre_latency_ms_median: float | None = None   # --scaip: press -> the centre's snu 0 (uplink up)
    centre_latency_ms_max: float | None = None
    ok: bool = False

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def demo_config(data_dir: str, broker_port: int, clock: Clock, devices: list[tuple[str, Role, bytes]],
                status_port: int = 0, discovery: bool = True, scaip_centre: str | None = None) -> GatewayConfig:
    """Embedded demo config: night windows around 'now', short supervision, GPS zone at home;
    with ``scaip_centre`` (a SIP URI) a SCAIP centre as the alarms' primary route."""
    scaip = ({"enabled": True, "centre": scaip_centre, "cid": "4700000001", "t1_ms": 100, "heartbeat_interval_s": 10,
              "escalate_after_s": 10, "reply_timeout_s": 3} if scaip_centre else {})
    local = _dt.datetime.fromtimestamp(clock.time(), ZoneInfo("Europe/Oslo"))
    start = (local - _dt.timedelta(hours=1)).strftime("%H:%M")
    end = (local + _dt.timedelta(hours=3)).strftime("%H:%M")
    return load_config(None, env={}, overrides={
        "gateway": {"id": "gw-demo", "data_dir": data_dir},
        "uplink": {"host": "127.0.0.1", "port": broker_port, "ack_timeout_s": 10, "health_interval_s": 5,
                   "keepalive_s": 5},
        "status": {"port": status_port},
        "discovery": {"enabled": discovery, "interfaces": ["127.0.0.1"]},
        "mains": {"source": "emulated", "debounce_s": 1},
        "supervision": {"silent_after_s": 10, "tick_s": 0.5, "uplink_lost_after_s": 2},
        "rules": {"bed": {"window_start": start, "window_end": end, "max_out_min": 30},
                  "door": {"window_start": start, "window_end": end},
                  "dose": {"delay_min": 30},
                  "geofence": {"zones": [{"id": "home", "lat": GPS_HOME[0], "lon": GPS_HOME[1], "radius_m": 200}]}},
        "devices": {dev: {"role": role.name.lower(), "key": key.hex()} for dev, role, key in devices},
        "scaip": scaip,
    })


class Demo:
    def __init__(self, opts: DemoOptions, out: TextIO | None = None) -> None:
        self.opts = opts
        self.out = out or sys.stdout
        self.clock = OffsetClock()
        self.t0 = time.monotonic()
        self.gateway_events: list[Event] = []
        self.summary = DemoSummary(outage_s=opts.outage_s)
        self._cleanup: list[Callable[[], Any]] = []
        self._outage_window: tuple[float, float] | None = None
        self._centre: Any = None           # --scaip: the SIPp centre and the relay the outage cuts
        self._relay: Any = None
        self._centre_acked: dict[str, float] = {}     # event id -> press -> centre reply (ms)

    def say(self, text: str) -> None:
        print(f"[{time.monotonic() - self.t0:5.1f}s] {text}", file=self.out, flush=True)

    async def run(self) -> DemoSummary:
        try:
            await self._run()
        finally:
            for fn in reversed(self._cleanup):
                try:
                    res = fn()
                    if asyncio.iscoroutine(res):
                        await res
                except Exception as exc:  # cleanup must continue
                    print(f"cleanup: {exc}", file=sys.stderr)
        return self.summary

    async def _run(self) -> None:
        from gateway.testing.broker import MosquittoProcess
        from gateway.testing.console import ResponseConsole, make_console_link
        from gateway.daemon import bootstrap

        loop = asyncio.get_running_loop()
        o = self.opts
        scaip_uri = await self._start_centre() if o.scaip else None
        # 1. broker
        if o.broker:
            host, _, port_s = o.broker.rpartition(":")
            host, port = host or "127.0.0.1", int(port_s)
            self.say(f"reusing the MQTT broker at {host}:{port}")
        else:
            broker = MosquittoProcess(workdir=Path(tempfile.mkdtemp(prefix="wt-demo-mosq-")))
            await asyncio.to_thread(broker.start)
            self._cleanup.append(lambda: asyncio.to_thread(broker.stop))
            host, port = broker.host, broker.port
            self.say(f"started Mosquitto on {host}:{port}")
        cutter = UplinkCutter(host, port)
        await cutter.async_start()
        self._cleanup.append(cutter.async_stop)
        # 2. gateway
        data_dir = o.data_dir or tempfile.mkdtemp(prefix="wt-demo-gw-")
        devices = home_devices()
        cfg = demo_config(data_dir, cutter.port, self.clock, devices, o.status_port, o.discovery, scaip_uri)
        mains = EmulatedMainsInput(MainsState.ON)
        rt = bootstrap(cfg, clock=self.clock, loop=loop, mains=mains, advertise=o.discovery)
        rt.engine.on_raised = self.gateway_events.append
        home = EmulatedHome(loop, self.clock, devices, heartbeat_s=3.0, retry_s=2.0)
        rt.attach_emulated(home)
        await rt.async_start()
        self._cleanup.append(rt.async_stop)
        self.say(f"gateway {cfg.gateway.id} up (journal {cfg.journal_path}, status "
                 f"http://127.0.0.1:{rt.status_server.port if rt.status_server else '-'}/status)")
        # 3. console (platform side), straight to the broker
        clink = make_console_link(host, port, client_id="wt-demo-console", dispatch=loop.call_soon_threadsafe)
        console = ResponseConsole(clink, clock=self.clock, out=self.out).start()
        await asyncio.to_thread(clink.start)
        self._cleanup.append(lambda: asyncio.to_thread(clink.stop))
        await self._wait(lambda: clink.connected and rt.uplink_connected(), 15.0)
        # 4. the emulated home
        home.start(interval_s=0.1)
        self._cleanup.append(home.stop)
        if o.scaip:
            watcher = loop.create_task(self._watch_centre(rt))
            self._cleanup.append(watcher.cancel)
        names = ", ".join(f"{d.role.name.lower()} {d.device_id}" for d in home)
        self.say(f"emulated home: {names}")
        await self._scenario(rt, home, mains, cutter)
        # 5. settle and summarise
        await self._settle(rt, home, console)
        self._summarise(rt, home, console)

    async def _start_centre(self) -> str:
        """SIPp as the alarm receiving centre (snu 0 to everything) behind a cuttable UDP relay.
        Raises SipToolMissing (with the package to install) when sipp is not there."""
        from gateway.testing.sip_centre import CENTRE_OK, SippCentre, UdpRelay, find_tool

        find_tool("sipp")
        centre = SippCentre("centre_ok.xml", Path(tempfile.mkdtemp(prefix="wt-demo-sipp-")), calls=0, timeout_s=0,
                            scenario_text=CENTRE_OK)
        await asyncio.to_thread(centre.start)
        self._cleanup.append(lambda: asyncio.to_thread(centre.stop))
        relay = UdpRelay(("127.0.0.1", centre.port))
        host, port = await relay.async_start()
        self._cleanup.append(relay.close)
        self._centre, self._relay = centre, relay
        self.say(f"started the SIPp alarm centre on udp 127.0.0.1:{centre.port} (SCAIP, snu 0 to every report)")
        return f"sip:arc@{host}:{port}"

    async def _watch_centre(self, rt: Any) -> None:
        """Print each alarm's press -> centre reply latency once the centre answered snu 0."""
        while True:
            for r in rt.forwarder.status().last_alarms:
                if r.centre_latency_ms is not None and r.event_id not in self._centre_acked:
                    self._centre_acked[r.event_id] = r.centre_latency_ms
                    self.say(f"centre snu 0  {r.type:<22} {r.event_id}  press -> centre reply "
                             f"{r.centre_latency_ms:.1f} ms")
            await asyncio.sleep(0.1)

    def _centre_ids(self, ids: set[str]) -> set[str]:
        """The ids among ``ids`` whose SCAIP report reached the centre (its message trace)."""
        if self._centre is None:
            return set()
        from gateway.domain.scaip import ref_for

        refs = set(self._centre.refs())
        return {i for i in ids if ref_for(i) in refs}

    async def _wait(self, pred: Callable[[], bool], timeout_s: float) -> bool:
        deadline = time.monotonic() + timeout_s
        while not pred():
            if time.monotonic() > deadline:
                return False
            await asyncio.sleep(0.05)
        return True

    async def _at(self, t: float) -> None:
        delay = self.t0 + t - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)

    async def _scenario(self, rt: Any, home: EmulatedHome, mains: EmulatedMainsInput, cutter: UplinkCutter) -> None:
        button, fall = home.by_role(Role.BUTTON), home.by_role(Role.FALL)
        bed, door = home.by_role(Role.BED), home.by_role(Role.DOOR)
        disp, gps = home.by_role(Role.DISPENSER), home.by_role(Role.GPS)
        assert isinstance(gps, GpsTracker)
        base = time.monotonic() - self.t0
        k = max(0.3, self.opts.duration_s / 40.0)   # scale the 40 s script to --duration

        async def step(t: float, text: str, fn: Callable[[], Any]) -> None:
            await self._at(base + t * k)
            self.say(text)
            fn()

        await step(1, "resident presses the safety alarm button", button.press)
        await step(3, "fall sensor detects a fall", lambda: fall.fall(peak_cg=431))
        await step(5, "front door opens inside the night window", door.open)
        await step(6, "door closes", door.close)
        await step(7, "resident leaves the bed (night window)", bed.out_of_bed)
        await step(8, "dispenser: dose 1 due (08:00)", lambda: disp.dose_due(1, 480))
        await step(9, "GPS tracker reports a position at home", gps.position)
        await step(11, "GPS tracker: resident walks 600 m away", lambda: self._walk(gps, 600))
        await step(13, "dispenser: dose 2 due and taken", lambda: (disp.dose_due(2, 720), disp.dose_taken(2, 720)))
        await step(15, "fast-forward the demo clock 31 minutes (bed not returned, dose 1 not taken)",
                   lambda: (self.clock.advance(31 * 60), home.tick()))
        await step(18, "fall sensor battery drops to 12 %", lambda: setattr(fall, "battery_pct", 12))
        await step(20, "mains power to the gateway is lost", lambda: mains.set(MainsState.OFF))
        await step(25, "mains power is back", lambda: mains.set(MainsState.ON))
        if self.opts.duration_s >= 30:   # supervision needs ≥ 10 s of silence
            await step(22.5, "GPS tracker goes quiet (flat battery)", lambda: self._quiet(gps, True))
            await step(36, "GPS tracker is charged and back", lambda: self._quiet(gps, False, home))
        await step(38, "resident is back in bed", bed.in_bed)
        if self.opts.outage_s > 0:
            await self._outage(rt, home, cutter)
        await self._at(base + 40 * k)

    @staticmethod
    def _walk(gps: GpsTracker, north_m: float) -> None:
        gps.walk(north_m, 0)
        gps.position()

    @staticmethod
    def _quiet(dev: Any, quiet: bool, home: EmulatedHome | None = None) -> None:
        if quiet:
            dev.write, dev.heartbeat_s = None, 0.0
        else:
            assert home is not None
            dev.attach(home.links[f"emu:{dev.device_id}"])
            dev.heartbeat_s = 3.0
            dev.heartbeat()

    async def _outage(self, rt: Any, home: EmulatedHome, cutter: UplinkCutter) -> None:
        o = self.opts
        self.say(f"UPLINK CUT for {o.outage_s:g} s (broker unreachable; alarms go to the journal)"
                 + ("; the alarm centre is unreachable too" if self._relay is not None else ""))
        cutter.cut()
        if self._relay is not None:
            self._relay.cut()
        t_cut = time.monotonic()
        cut_at = self.clock.monotonic()     # the devices stamp events with the demo clock (fast-forwarded)
        button, fall, door = home.by_role(Role.BUTTON), home.by_role(Role.FALL), home.by_role(Role.DOOR)
        actions = [("button press during the outage", button.press),
                   ("fall during the outage", lambda: fall.fall(peak_cg=388)),
                   ("door closes during the outage", door.close)]
        gap = o.outage_s / (len(actions) + 1)
        for i, (text, fn) in enumerate(actions, 1):
            await asyncio.sleep(max(0.0, t_cut + i * gap - time.monotonic()))
            self.say(text)
            fn()
        await asyncio.sleep(max(0.0, t_cut + o.outage_s - time.monotonic()))
        self._outage_window = (cut_at, self.clock.monotonic())
        depth = rt.writer.depth()
        self.summary.backlog_at_restore = depth.undelivered
        self.say(f"UPLINK RESTORED: backlog {depth.undelivered} undelivered event(s), "
                 f"{rt.forwarder.status().alarms_unacknowledged} alarm(s) awaiting platform ack")
        cutter.restore()
        if self._relay is not None:
            self._relay.restore()

    async def _settle(self, rt: Any, home: EmulatedHome, console: Any) -> None:
        def expected() -> set[str]:
            return {e.event_id for e in home.emitted()} | {e.event_id for e in self.gateway_events}

        def done() -> bool:
            got = console.stats.events | console.stats.alarms.keys()
            if self._centre is not None:
                got = got | self._centre_ids(expected() - got)
            st = rt.forwarder.status()
            return (expected() <= got and home.unacked() == 0 and st.alarms_unacknowledged == 0
                    and st.backlog == 0)
        timeout = self.opts.settle_s + (self.opts.outage_s and 30.0)
        if not done():
            self.say("waiting for the backlog and acknowledgements ...")
        ok = await self._wait(done, timeout)
        if not ok:
            self.say(f"gave up waiting after {timeout:g} s")

    def _summarise(self, rt: Any, home: EmulatedHome, console: Any) -> None:
        s = self.summary
        stats = console.stats
        device_ids = {e.event_id for e in home.emitted()}
        gw_ids = {e.event_id for e in self.gateway_events}
        got = stats.events | stats.alarms.keys()
        at_centre = self._centre_ids(device_ids | gw_ids)
        got = got | at_centre
        s.device_events = len(device_ids)
        s.gateway_events = len(gw_ids)
        s.delivered = len((device_ids | gw_ids) & got)
        s.lost_ids = sorted((device_ids | gw_ids) - got)
        s.lost = len(s.lost_ids)
        s.duplicate_deliveries = stats.duplicate_deliveries
        s.duplicates_shown = 0  # the console shows each event_id once (by construction: a dict)
        st = rt.forwarder.status()
        for r in st.last_alarms:                       # (the watcher may not have seen the last ones)
            if r.centre_latency_ms is not None:
                self._centre_acked.setdefault(r.event_id, r.centre_latency_ms)
        centre_acked = set(self._centre_acked)
        s.alarms = len(set(stats.alarms) | centre_acked)
        s.centre_alarms = len(centre_acked)
        s.alarms_acknowledged = s.alarms - st.alarms_unacknowledged
        s.device_acks_missing = home.unacked()
        s.journal_events = rt.writer.depth().total
        w = self._outage_window
        during = {e.event_id for e in home.emitted() if w is not None and w[0] <= e.at_mono <= w[1]}
        s.outage_alarms = len(during & (stats.alarms.keys() | self._centre_acked.keys()))
        lat = [a.latency_ms for a in stats.alarms.values()
               if a.event_id in device_ids and a.event_id not in during]  # device alarms: press → console
        if lat:
            s.latency_ms_median = round(statistics.median(lat), 1)
            s.latency_ms_max = round(max(lat), 1)
        clat = [ms for eid, ms in self._centre_acked.items() if eid in device_ids and eid not in during]
        if clat:
            s.centre_latency_ms_median = round(statistics.median(clat), 1)
            s.centre_latency_ms_max = round(max(clat), 1)
        s.ok = s.lost == 0 and s.device_acks_missing == 0 and st.alarms_unacknowledged == 0 and s.alarms > 0
        def p(text: str) -> None:
            print(text, file=self.out, flush=True)
        p("")
        p("summary")
        p(f"  events emitted     {s.device_events} by devices + {s.gateway_events} raised by gateway rules")
        p(f"  delivered          {s.delivered} unique to the platform"
          + (" or the centre" if self.opts.scaip else "") + f"   lost {s.lost}"
          + (f" {s.lost_ids}" if s.lost_ids else ""))
        p(f"  duplicates         {s.duplicate_deliveries} re-deliveries dropped by event_id, "
          f"{s.duplicates_shown} shown twice")
        p(f"  alarms             {s.alarms} shown, {s.alarms_acknowledged} acknowledged"
          + (f" ({s.centre_alarms} by the SCAIP centre)" if self.opts.scaip else " by the platform"))
        p(f"  device ACKs        {s.device_acks_missing} event(s) still unacknowledged on devices")
        if self.opts.outage_s:
            p(f"  outage             {s.outage_s:g} s, backlog at restore {s.backlog_at_restore}, "
              f"{s.outage_alarms} alarm(s) raised during it, all delivered afterwards")
        if s.latency_ms_median is not None:
            p(f"  alarm latency      median {s.latency_ms_median} ms, max {s.latency_ms_max} ms "
              f"(device alarm → console, uplink up)")
        if s.centre_latency_ms_median is not None:
            p(f"  centre latency     median {s.centre_latency_ms_median} ms, max {s.centre_latency_ms_max} ms "
              f"(press → the centre's snu 0, uplink up)")
        p(f"  result             {'OK' if s.ok else 'PROBLEM'}")
