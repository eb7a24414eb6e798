"""Drive a RolloutEngine over a transport until it completes, halts, or is aborted.

Transports: :class:`InProcessTransport` (emulated gateways called directly — bench and
unit tests) and :class:`MqttTransport` (real broker via fleet.mqtt). Both carry the same
encoded wt.cmd/1 and wt.cmd-result/1 bytes, so the in-process path exercises the codec,
every command signed by the fleet's control key (``signer``; default: the key named by
``FLEET_CONTROL_KEY_FILE``, fleet/control),
plus the gateways' wt.health/1 and wt.state/1: a unit succeeds only once it reports the
release's version (``RolloutEngine.observe_version``), not on its ``committed`` alone.
"""
from __future__ import annotations

import queue
from collections import deque
from dataclasses import dataclass, field
from typing import Callable, Mapping, Protocol

from contracts.topics import Kind, all_gateways, parse_gateway
from fleet.control import ControlSigner
from fleet.upgrades._emulated import EmulatedGateway
from fleet.upgrades._protocol import (Rejected, decode_result, decode_version_report, encode_result, encode_update,
                                      result_topic)
from fleet.upgrades._rollout import RolloutEngine
from fleet.upgrades._signing import SignedManifest
from fleet.upgrades._states import RolloutEvent, RolloutState


class Transport(Protocol):
    def send(self, topic: str, payload: bytes) -> None: ...
    def poll(self, timeout_s: float) -> list[tuple[str, bytes]]: ...


@dataclass
class InProcessTransport:
    """Emulated gateways answer synchronously; results wait in an inbox until polled."""

    gateways: Mapping[str, EmulatedGateway]
    inbox: deque = field(default_factory=deque)
    sent: int = 0

    def send(self, topic: str, payload: bytes) -> None:
        self.sent += 1
        gw = parse_gateway(topic, Kind.CMD)
        g = self.gateways.get(gw) if gw is not None else None
        if gw is None or g is None:
            return                                  # offline gateway: the unit times out
        for cid, status, detail in g.handle(payload):
            self.inbox.append((result_topic(gw), encode_result(cid, status, detail)))
        self.inbox.extend(g.take_outbox())

    def poll(self, timeout_s: float) -> list[tuple[str, bytes]]:
        out = list(self.inbox)
        self.inbox.clear()
        return out


class MqttTransport:
    """Commands out over MQTT (QoS 1); results, health and state in through (non-shared) subscriptions."""

    def __init__(self, client) -> None:
        self._client = client
        self._q: queue.Queue[tuple[str, bytes]] = queue.Queue()
        for kind in (Kind.CMD_RESULT, Kind.HEALTH, Kind.STATE):
            client.subscribe(all_gateways(kind), lambda t, p: self._q.put((t, p)), qos=1)

    def send(self, topic: str, payload: bytes) -> None:
        self._client.publish_nowait(topic, payload, qos=1)

    def poll(self, timeout_s: float) -> list[tuple[str, bytes]]:
        out: list[tuple[str, bytes]] = []
        try:
            out.append(self._q.get(timeout=timeout_s) if timeout_s > 0 else self._q.get_nowait())
            while True:
                out.append(self._q.get_nowait())
        except queue.Empty:
            return out


@dataclass
class RunStats:
    sent: int = 0
    reports: int = 0
    rejected: int = 0
    foreign: int = 0
    version_reports: int = 0


def run_rollout(engine: RolloutEngine, transport: Transport, *, release: SignedManifest,
                artifact_url: str, revert_release: SignedManifest | None = None, revert_url: str = "",
                inline_artifact: bytes | None = None,
                control: Callable[[], RolloutEvent | None] | None = None,
                persist: Callable[[RolloutEngine], None] | None = None,
                on_progress: Callable[[dict], None] | None = None,
                poll_s: float = 0.05, drain_s: float = 5.0, stop_when_paused: bool = False,
                monotonic: Callable[[], float] | None = None, signer: ControlSigner | None = None) -> RunStats:
    """Loop: apply operator control, send due commands (signed), feed reports, tick timeouts, persist."""
    import time

    mono = monotonic or time.monotonic
    signer = signer if signer is not None else ControlSigner.from_env()     # before anything is sent
    stats = RunStats()
    engine.target_version = release.manifest.version
    finished_at: float | None = None
    while True:
        ev = control() if control else None
        if ev is not None:
            engine.control(ev)
        for unit, kind in engine.due():
            if kind == "revert":
                if revert_release is None:
                    raise ValueError("rollback needs the previous release")
                topic, payload = encode_update(engine.rollout_id, unit, revert_release, revert_url, kind=kind)
            else:
                topic, payload = encode_update(engine.rollout_id, unit, release, artifact_url,
                                               artifact=inline_artifact, attempt=engine.units[unit].attempts)
            transport.send(topic, signer.wrap(unit.gateway_id, payload))
            stats.sent += 1
        for topic, payload in transport.poll(poll_s):
            if parse_gateway(topic, Kind.CMD_RESULT) is None:
                vr = decode_version_report(topic, payload, engine.clock.time())
                if vr is not None:
                    stats.version_reports += 1
                    engine.observe_version(vr.gateway_id, vr.version)
                    for device_id, fw in vr.devices:
                        engine.observe_version(vr.gateway_id, fw, device_id=device_id)
                continue
            rep = decode_result(topic, payload)
            if isinstance(rep, Rejected):
                stats.rejected += 1
                continue
            if rep.deployment != engine.rollout_id:
                stats.foreign += 1
                continue
            stats.reports += 1
            for e in rep.events:
                engine.report(rep.unit, e, rep.error)
        engine.tick()
        if persist:
            persist(engine)
        if on_progress:
            on_progress(engine.progress())
        in_flight = engine.in_flight > 0
        if engine.finished:
            finished_at = finished_at if finished_at is not None else mono()
            if not in_flight or mono() - finished_at > drain_s:
                return stats
        elif engine.state is RolloutState.PAUSED and stop_when_paused and not in_flight:
            return stats
        else:
            finished_at = None
