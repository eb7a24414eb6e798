"""How a fleet configuration push is applied — the whole story is in this file.

The fleet publishes ``wt.config/1`` (retained) on the gateway's ``…/config`` topic; its
``config`` object is a layer between the TOML file and the environment
(docs/gateway-config.md). The retained push comes back after every (re)connect.

0. **Authenticate** (:class:`~gateway.daemon._control.ControlGate`): the push must be the
   fleet's, signed (``wt.signed/1``: this gateway's id, a sequence above every one accepted
   before, an expiry) with the fleet key of ``[trust] fleet_key``. Anything else is refused,
   counted and logged, and never reaches step 1. The retained push handed out again after
   a reconnect is the same signed message: it goes on to step 1 as a repeat.

1. **Receive** (:class:`ConfigPushApplier`, one per running gateway, subscribed on the
   command routes — primary and fallback, not the alarm lane):

   - a body that is not ``wt.config/1`` is logged, counted and ignored;
   - a push that already failed on this gateway (set aside, see 3) is reported
     ``rejected`` again with its reason and never retried;
   - otherwise the pure decision of gateway/domain/config_push.py :func:`decide`: an older
     version is ignored; the applied version is reported ``applied`` again; a push that
     touches a key no push may carry (``gateway.id``, ``gateway.data_dir``,
     ``journal.path``, the trust anchors ``[trust]`` and ``upgrades.trusted_keys``), or does
     not validate (every issue with key, value and fix), is reported ``rejected`` and the
     running configuration stays; a valid push asks the main loop for a re-bootstrap.

2. **Apply** (:func:`serve`, the daemon's main loop): the running gateway is stopped; the
   push is saved as *pending* (``<data_dir>/fleet-config.json`` with ``"pending": true``;
   the layer it replaces is kept as ``fleet-config.previous.json``); a new gateway is built
   from it (``bootstrap``: every adapter, BLE, status server, zeroconf) and started.

3. **Trial and commit** (:func:`_async_trial`): the pushed configuration is committed only
   when, within ``upgrades.commit_deadline_s`` *of the configuration in force before the
   push*, the primary uplink has connected and a ``wt.health/1`` was acknowledged by the
   broker (PUBACK). Then the pending mark is cleared on disk and the push is reported
   ``applied``. Otherwise (a wrong host, port, password or CA: the gateway would never
   hear the corrective push) it is **rolled back**: the previous configuration is started
   again, restored on disk, the push is set aside and reported ``rejected``:
   ``configuration version N rolled back: no connection to the broker within D s (<the
   uplink's last error>)``. Pushes arriving during the trial wait for its end.

4. **Roll back on start failure** — applying a push never ends the daemon. Anything raised
   while building or starting the new gateway (a port in use, an adapter refusing its
   settings such as ``ble.adapter = "hci-0"``, any exception) stops what was started and
   starts the gateway on the previous configuration again. Once that runs, the previous
   layer is restored on disk too, the push is set aside (``fleet-config.rejected.json``,
   with the reason) and reported ``rejected``: ``configuration version N could not start:
   <reason>``.

5. **Start-up**: the saved layer is on trial the same way — the chain is the saved push,
   the one before it, the file alone. A saved push that no longer validates, carries a
   key no push may carry, or cannot start is set aside once a configuration further down
   the chain runs, and is reported ``rejected`` once connected: a bad push cannot make a
   crash loop. A saved push still marked pending (the power went while it was on trial)
   is on trial again, with a fresh deadline. When nothing in the chain starts, not even
   the file alone, the fault is not the push's (the machine, a port another process
   holds): nothing is set aside, the layer files stay as they are, and the daemon exits
   with code 2 and a message naming the key.

6. **Report**: ``wt.config-applied/1`` (retained) on ``…/config/applied``, on the first
   connected command route; a report that cannot go out now is retried on every rules
   tick.
"""
from __future__ import annotations

import asyncio
import dataclasses
import json
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Protocol

from contracts.control import Opened
from contracts.gateway_config import ConfigIssue
from contracts.payloads import CONFIG_SCHEMA, dumps, encode_applied
from contracts.topics import Topics
from gateway.adapters.status import health_payload
from gateway.config import ConfigError, GatewayConfig
from gateway.daemon._control import ControlGate
from gateway.daemon._errors import DaemonError
from gateway.daemon._routes import Routes
from gateway.domain.config_push import (ConfigPush, decide, decode_push, immutable_problems, read_layer,
                                        write_layer)
from gateway.domain.uplink_errors import UplinkError

if TYPE_CHECKING:
    from gateway.daemon._runtime import GatewayRuntime

log = logging.getLogger("gateway.daemon")

PREVIOUS_FILE = "fleet-config.previous.json"
REJECTED_FILE = "fleet-config.rejected.json"
KEEP_REJECTED = 16

PushKey = tuple[int, "str | None"]
Report = tuple[ConfigPush, str, "str | None"]          # (push, "applied" | "rejected", error)


def _key(push: ConfigPush) -> PushKey:
    return (push.version, push.hash)


# ---------------------------------------------------------------- on disk

class LayerFiles:
    """The fleet layer in ``gateway.data_dir``: the applied push, the one before it, and the
    pushes set aside because they could not start (never applied again)."""

    def __init__(self, data_dir: str | os.PathLike[str]) -> None:
        self.dir = Path(data_dir)

    def applied(self) -> ConfigPush | None:
        return read_layer(self.dir)

    def previous(self) -> ConfigPush | None:
        try:
            obj = json.loads((self.dir / PREVIOUS_FILE).read_text())
            return ConfigPush(int(obj["version"]), dict(obj["config"]), obj.get("hash"))
        except FileNotFoundError:
            return None
        except (OSError, ValueError, KeyError, TypeError) as exc:
            log.error("ignoring unreadable %s (%s)", self.dir / PREVIOUS_FILE, exc)
            return None

    def save(self, push: ConfigPush, *, previous: ConfigPush | None) -> None:
        """``push`` becomes the layer, pending until :meth:`commit`; ``previous`` is kept
        (written first: a power cut in between leaves the old layer in force)."""
        if previous is None:
            (self.dir / PREVIOUS_FILE).unlink(missing_ok=True)
        else:
            _write_json(self.dir / PREVIOUS_FILE, _push_doc(previous))
        write_layer(self.dir, dataclasses.replace(push, pending=True))

    def commit(self, push: ConfigPush) -> None:
        """The trial of ``push`` succeeded: it is the layer, no longer pending."""
        write_layer(self.dir, dataclasses.replace(push, pending=False))

    def restore(self, push: ConfigPush | None) -> None:
        """``push`` (None: no fleet layer) is the layer again; there is no "previous" now."""
        write_layer(self.dir, push)
        (self.dir / PREVIOUS_FILE).unlink(missing_ok=True)

    def set_aside(self, push: ConfigPush, reason: str) -> None:
        records = [r for r in self._rejected_records() if (r.get("version"), r.get("hash")) != _key(push)]
        records.append({**_push_doc(push), "error": reason})
        _write_json(self.dir / REJECTED_FILE, records[-KEEP_REJECTED:])

    def rejected(self) -> dict[PushKey, str]:
        return {(int(r["version"]), r.get("hash")): str(r.get("error") or "")
                for r in self._rejected_records() if isinstance(r.get("version"), int)}

    def _rejected_records(self) -> list[dict[str, Any]]:
        try:
            records = json.loads((self.dir / REJECTED_FILE).read_text())
        except FileNotFoundError:
            return []
        except (OSError, ValueError) as exc:
            log.error("ignoring unreadable %s (%s)", self.dir / REJECTED_FILE, exc)
            return []
        return [r for r in records if isinstance(r, dict)] if isinstance(records, list) else []


def _push_doc(push: ConfigPush) -> dict[str, Any]:
    return {"version": push.version, "hash": push.hash, "config": push.config}


def _write_json(path: Path, doc: Any) -> None:
    tmp = path.with_suffix(".tmp")
    with open(tmp, "w") as f:
        json.dump(doc, f, sort_keys=True)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


# ---------------------------------------------------------------- what survives a re-bootstrap

@dataclass
class PushState:
    """Shared by the main loop and each runtime's applier. ``load(layer)`` builds the
    effective configuration from file, environment and command line with that fleet layer;
    None when the gateway was started without a reloadable configuration."""

    load: Callable[[dict[str, Any] | None], GatewayConfig] | None = None
    applied: ConfigPush | None = None
    failed: dict[PushKey, str] = field(default_factory=dict)       # set aside: never applied again
    pending: list[Report] = field(default_factory=list)             # reports not yet published
    requested: tuple[GatewayConfig, ConfigPush] | None = None       # the re-bootstrap asked for
    reload: asyncio.Event = field(default_factory=asyncio.Event)
    trial: ConfigPush | None = None                                 # applied, not yet committed
    deferred: Opened | None = None                                  # the latest push that came during a trial
    gate: ControlGate | None = None                                 # one per process: survives re-bootstraps

    def control_gate(self, cfg: GatewayConfig, clock: Any) -> ControlGate:
        """The process's control gate (made on first use; the trust anchors never change in a process)."""
        if self.gate is None or self.gate.gateway_id != cfg.gateway.id:
            self.gate = ControlGate.from_config(cfg, clock)
        return self.gate

    def applied_version(self) -> int:
        """The version of the fleet layer in effect (0: none), for the status snapshot."""
        return self.applied.version if self.applied is not None else 0

    def queue_report(self, push: ConfigPush, status: str, error: str | None) -> None:
        self.pending = [r for r in self.pending if _key(r[0]) != _key(push)] + [(push, status, error)]


# ---------------------------------------------------------------- the running gateway's end

class ConfigPushApplier:
    """``…/config`` in (through the control gate), ``…/config/applied`` out (steps 0, 1 and 6)."""

    def __init__(self, *, gateway_id: str, current: GatewayConfig, state: PushState, routes: Routes,
                 gate: ControlGate) -> None:
        self._current = current
        self._state = state
        self._routes = routes
        self._gate = gate
        self.topic = Topics(gateway_id).config
        self._applied_topic = Topics(gateway_id).config_applied

    def on_config_message(self, topic: str, payload: bytes) -> None:
        """Whatever arrives on ``…/config``: only a message the gate accepts reaches :meth:`on_verified`."""
        self._gate.submit(CONFIG_SCHEMA, topic, payload, self.on_verified)

    def on_verified(self, msg: Opened, repeat: bool = False) -> bool:
        """The fleet's push (signature, target, expiry, seq checked); False if its body is unusable."""
        push = decode_push(msg.body)
        if isinstance(push, str):
            log.warning("wt.config ignored: %s", push)
            return False
        st = self._state
        if st.load is None:
            self.report(push, "rejected", "this gateway was started without a reloadable configuration")
            return True
        if st.requested is not None:
            return True   # already re-bootstrapping; the retained message comes back after it
        if st.trial is not None:
            if _key(push) != _key(st.trial):
                st.deferred = msg          # handled when the trial is over
            return True                    # the push on trial itself: reported when it commits or rolls back
        failed = st.failed.get(_key(push))
        if failed is not None:   # tried and could not start: never re-apply it (no restart loop)
            self.report(push, "rejected", failed)
            return True
        d = decide(push, self._current, st.applied, st.load)
        if d.action == "ignore":
            log.info("wt.config version %d ignored (applied version is %d)", push.version,
                     st.applied.version if st.applied else -1)
        elif d.action == "report":
            self.report(push, "applied", None)
        elif d.action == "reject":
            log.warning("wt.config version %d rejected: %s", push.version, d.error)
            self.report(push, "rejected", d.error)
        else:
            assert d.config is not None
            log.info("wt.config version %d valid: applying (re-bootstrap, on trial)", push.version)
            st.requested = (d.config, push)
            st.reload.set()
        return True

    def take_deferred(self) -> None:
        """After a trial: handle the push that arrived during it (if any)."""
        msg, self._state.deferred = self._state.deferred, None
        if msg is not None:
            self.on_verified(msg, True)

    def report(self, push: ConfigPush, status: str, error: str | None) -> None:
        self._state.queue_report(push, status, error)
        self.flush_pending()

    def flush_pending(self) -> None:
        """Publish queued reports in order; stop at the first that cannot go out (retried later)."""
        while self._state.pending:
            push, status, error = self._state.pending[0]
            data = encode_applied(version=push.version, status=status, error=error, hash=push.hash)
            if not self._routes.reply(self._applied_topic, data, retain=True, what="config report"):
                return
            self._state.pending.pop(0)


# ---------------------------------------------------------------- the main loop (steps 2-4)

class Build(Protocol):
    def __call__(self, cfg: GatewayConfig, *, pushes: PushState) -> "GatewayRuntime": ...


@dataclass
class _Candidate:
    """A configuration to try: ``push`` None is the file alone; ``cfg`` if already loaded."""

    push: ConfigPush | None
    cfg: GatewayConfig | None = None
    fresh: bool = False            # pushed just now: on trial, report "applied" once it commits
    deadline_s: float | None = None   # the trial's deadline (the configuration in force before it)


def _chain(*pushes: ConfigPush | None) -> list[_Candidate]:
    """Candidates best first, ending with the file alone; no push twice."""
    out: list[_Candidate] = []
    for p in pushes:
        if p is not None and all(c.push is None or _key(c.push) != _key(p) for c in out):
            out.append(_Candidate(p))
    return out + [_Candidate(None)]


async def serve(cfg: GatewayConfig, *, load: Callable[[dict[str, Any] | None], GatewayConfig] | None,
                build: Build, stop: asyncio.Event,
                ready: Callable[["GatewayRuntime"], None] | None = None) -> int:
    """Run gateways until ``stop``; re-bootstrap on a valid push, which stays on trial until
    the uplink is back with an acknowledged health (else the previous configuration returns).
    ``cfg`` is the configuration without a fleet layer; ``load`` (None: pushes are refused)
    adds one. Returns the exit code: 0 on stop, 2 when even the file configuration cannot start."""
    files = LayerFiles(cfg.gateway.data_dir) if load is not None else None
    state = PushState(load=load)
    if files is not None:
        state.failed = files.rejected()
        chain = _chain(files.applied(), files.previous())
        if chain[0].push is not None and chain[0].push.pending:      # the power went during its trial
            chain[0].deadline_s = cfg.upgrades.commit_deadline_s
            log.warning("fleet configuration version %d was on trial at the last stop: on trial again",
                        chain[0].push.version)
    else:
        chain = _chain()
    chain[-1].cfg = cfg
    # pushes that failed on the way down the chain: blamed (set aside, reported) only once a
    # later candidate runs — if nothing runs, the fault is not theirs and the files stay as they are
    failed_here: list[tuple[ConfigPush, str]] = []
    while True:
        cand = chain[0]
        rt = await _start(cand, state, build)
        if isinstance(rt, Exception):
            if cand.push is None:
                if isinstance(rt, DaemonError):
                    log.error("%s", rt)
                    return 2
                raise rt          # not a configuration problem: a bug, let it show
            reason = _reason(cand.push, rt)
            log.error("fleet %s; falling back to %s", reason,
                      f"version {chain[1].push.version}" if chain[1].push else "the configuration file alone")
            failed_here.append((cand.push, reason))
            chain = chain[1:]
            continue
        if failed_here:
            assert files is not None
            _blame(state, files, failed_here, cand.push)
        if cand.push is not None:
            log.info("fleet configuration version %d in effect%s", cand.push.version,
                     " (on trial)" if cand.deadline_s is not None else "")
        rt.config_push.flush_pending()
        if ready is not None:
            ready(rt)
        trial = None
        if cand.push is not None and cand.deadline_s is not None:
            state.trial = cand.push
            trial = asyncio.ensure_future(_async_trial(rt, cand.deadline_s))
        rolled_back: str | None = None
        try:
            while True:
                waiters = [asyncio.ensure_future(stop.wait()), asyncio.ensure_future(state.reload.wait())]
                try:
                    await asyncio.wait(waiters + ([trial] if trial is not None else []),
                                       return_when=asyncio.FIRST_COMPLETED)
                finally:
                    for w in waiters:
                        w.cancel()
                if trial is None or not trial.done() or stop.is_set():
                    break
                problem, trial = trial.result(), None
                assert cand.push is not None
                if problem is not None:
                    rolled_back = (f"configuration version {cand.push.version} rolled back: {problem} within "
                                   f"{cand.deadline_s:g} s (upgrades.commit_deadline_s); the previous configuration "
                                   "is running again")
                    break
                state.trial = None
                if files is not None:
                    _on_disk("commit the push", files.commit, cand.push)
                log.info("fleet configuration version %d committed: uplink connected, health acknowledged",
                         cand.push.version)
                state.queue_report(cand.push, "applied", None)     # fresh, or on trial again after a restart
                rt.config_push.flush_pending()
                rt.config_push.take_deferred()          # a push that came during the trial
        finally:
            if trial is not None:
                trial.cancel()
            await rt.async_stop()
        if rolled_back is not None:
            assert files is not None and cand.push is not None
            log.error("fleet %s", rolled_back)
            failed_here.append((cand.push, rolled_back))
            state.trial = None
            state.deferred = None
            chain = chain[1:] if len(chain) > 1 else [_Candidate(None, cfg)]
            continue
        state.trial = None
        if stop.is_set() or state.requested is None:
            return 0
        new_cfg, push = state.requested
        assert files is not None
        if _on_disk("save the push", files.save, push, previous=state.applied):
            chain = ([_Candidate(push, new_cfg, fresh=True, deadline_s=rt.cfg.upgrades.commit_deadline_s)]
                     + _chain(state.applied))
            chain[1].cfg = rt.cfg if chain[1].push is not None else chain[1].cfg
            chain[-1].cfg = cfg
            log.info("re-bootstrapping with fleet configuration version %d", push.version)
        else:
            state.queue_report(push, "rejected", f"configuration version {push.version} could not be saved "
                                                 f"in {files.dir}; free some space and push again")
            chain = [_Candidate(state.applied, rt.cfg)] + ([_Candidate(None, cfg)] if state.applied else [])


def _blame(state: PushState, files: LayerFiles, failed: list[tuple[ConfigPush, str]], running: ConfigPush | None) -> None:
    """Pushes that failed (could not start, or rolled back) now that ``running`` runs: set aside,
    reported, and the layer on disk is ``running`` again."""
    for push, reason in failed:
        state.failed[_key(push)] = reason
        state.queue_report(push, "rejected", reason)
        _on_disk("set aside the failed push", files.set_aside, push, reason)
    _on_disk("restore the previous fleet layer", files.restore, running)
    failed.clear()


async def _async_trial(rt: "GatewayRuntime", deadline_s: float) -> str | None:
    """None once the primary uplink is connected and a health report was PUBACKed within
    ``deadline_s``; else what failed last (with the uplink's own error when it has one)."""
    clock = rt.clock
    t_end = clock.monotonic() + deadline_s
    primary = rt.routes.primary
    if primary is None:
        return "the configuration has no MQTT uplink, so the fleet could not reach this gateway"
    topic = Topics(rt.cfg.gateway.id).health
    problem: str | None = "no connection to the broker"
    while (left := t_end - clock.monotonic()) > 0:
        if primary.connected:
            problem = await _publish_acked(primary, topic, dumps(health_payload(rt.reporter.snapshot())),
                                           min(left, 10.0))
            if problem is None:
                return None
        else:
            err = getattr(primary, "last_error", None)
            problem = "no connection to the broker" + (f" ({err})" if err else "")
        await asyncio.sleep(min(0.2, max(0.01, left)))
    return problem


async def _publish_acked(route: Any, topic: str, payload: bytes, timeout_s: float) -> str | None:
    loop = asyncio.get_running_loop()
    fut: asyncio.Future[bool] = loop.create_future()

    def on_puback(ok: bool, _at: float) -> None:
        def done() -> None:
            if not fut.done():
                fut.set_result(ok)
        loop.call_soon_threadsafe(done)
    try:
        route.publish(topic, payload, qos=1, on_puback=on_puback)
    except UplinkError as exc:
        return f"health not published ({exc})"
    try:
        ok = await asyncio.wait_for(fut, timeout_s)
    except asyncio.TimeoutError:
        return "health not acknowledged by the broker"
    return None if ok else "health refused by the broker"


async def _start(cand: _Candidate, state: PushState, build: Build) -> "GatewayRuntime | Exception":
    """Build and start a gateway for ``cand``; on any failure stop what started, return the error."""
    state.applied = cand.push
    state.requested = None
    state.reload = asyncio.Event()
    rt = None
    try:
        cfg = cand.cfg
        if cand.push is not None and not cand.fresh:
            anchors = immutable_problems(cand.push.config)
            if anchors:       # a layer saved before the rule (or by hand): never start with it
                raise ConfigError([ConfigIssue(a.split(" ", 1)[0], None, *a.split(" ", 1)[1].rsplit("; ", 1))
                                   for a in anchors])
        if cfg is None:
            assert state.load is not None
            cfg = state.load(cand.push.config if cand.push else None)
        rt = build(cfg, pushes=state)
        await rt.async_start()
        return rt
    except Exception as exc:  # a push must never end the daemon: the caller rolls back
        if rt is not None:
            try:
                await rt.async_stop()
            except Exception:
                log.exception("stopping the gateway that could not start failed")
        return exc


def _on_disk(what: str, fn: Callable[..., None], *args: Any, **kwargs: Any) -> bool:
    """A layer file operation; a failing disk is logged, the daemon goes on with what it has in memory."""
    try:
        fn(*args, **kwargs)
        return True
    except OSError as exc:
        log.error("cannot %s: %s", what, exc)
        return False


def _reason(push: ConfigPush, exc: BaseException) -> str:
    if isinstance(exc, ConfigError):
        return f"configuration version {push.version} is no longer valid: " + "; ".join(str(i) for i in exc.issues)
    return f"configuration version {push.version} could not start: {exc}"
