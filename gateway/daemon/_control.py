"""The gate every control message passes: signature, target, expiry and sequence
(``wt.signed/1``, contracts/control.py; docs/mqtt.md "Signed control messages").

A configuration push (``…/config``) and a command (``…/cmd``) reach their handler only
through :meth:`ControlGate.submit`:

1. :func:`contracts.control.open_envelope` against the fleet's control key, the trust anchor
   ``[trust] fleet_key`` (a local file no push, command or update can change). Unsigned,
   malformed, unknown-key, bad-signature, other-gateway, wrong-kind, expired and
   too-long-lived messages are refused at once;
2. the sequence: a message is accepted only if its ``seq`` is above the highest ever
   accepted (``replayed`` otherwise). The one exception is a *repeat* — the very message
   accepted before (same signature digest): the retained push the broker hands out again
   after every reconnect. A repeated push goes to its handler (which answers it with the
   report it already gave: nothing is applied twice); a repeated command is dropped (its
   result was given; the fleet re-sends with a new ``seq``, answered by ``cmd_id``);
3. the new high-water mark is written durably (:class:`ControlState`, a small file in
   ``gateway.data_dir``: outside the journal, so a journal quarantine does not reset it;
   written on a worker thread, never with an fsync on the event loop) **before** the
   handler runs. If it cannot be written, the message is refused (``state_error``): never
   act on a message whose replay could not be refused later.

Accepted messages are handled in arrival order (one lock). Every refusal is counted by
reason (``gateway status --json`` → ``control``, and ``wt.health/1``) and logged, at most
:data:`LOG_BURST` lines per :data:`LOG_WINDOW_S` with a count of the rest.
"""
from __future__ import annotations

import asyncio
import json
import logging
import os
from pathlib import Path
from typing import Any, Callable

from contracts.control import ControlKeyError, ControlRejected, Opened, load_public_file, open_envelope
from contracts.payloads import rfc3339
from gateway.config import GatewayConfig
from gateway.domain.ports import Clock

log = logging.getLogger("gateway.daemon.control")

STATE_FILE = "control-state.json"
KEEP_DIGESTS = 16
LOG_BURST = 10
LOG_WINDOW_S = 60.0

Deliver = Callable[[Opened, bool], bool]       # (message, repeat) -> False: its body is unusable (counted)


class ControlState:
    """The highest accepted ``seq`` and the digests of the last accepted messages, durable."""

    def __init__(self, data_dir: str | os.PathLike[str]) -> None:
        self.path = Path(data_dir) / STATE_FILE
        self.highest = 0
        self.recent: list[str] = []
        try:
            doc = json.loads(self.path.read_text())
            self.highest = int(doc["highest"])
            self.recent = [str(d) for d in doc.get("recent", [])][-KEEP_DIGESTS:]
        except FileNotFoundError:
            pass
        except (OSError, ValueError, KeyError, TypeError) as exc:
            # written atomically (rename), so this is a damaged card: expiry still bounds an old message
            log.error("control state %s unreadable (%s): starting from seq 0; messages are still checked for "
                      "signature and expiry", self.path, exc)

    def advance(self, seq: int, digest: str) -> None:
        """Make ``seq`` the high-water mark, durably (tmp file, fsync, rename). Raises OSError."""
        recent = (self.recent + [digest])[-KEEP_DIGESTS:]
        tmp = self.path.with_suffix(".tmp")
        with open(tmp, "w") as f:
            json.dump({"highest": seq, "recent": recent}, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, self.path)
        self.highest, self.recent = seq, recent


class ControlGate:
    """Verifies, orders and records control messages; one per gateway process (kept across
    the re-bootstraps of a config push, so its counters are too)."""

    def __init__(self, *, gateway_id: str, fleet_key: str, state: ControlState, clock: Clock) -> None:
        self.gateway_id = gateway_id
        self._clock = clock
        self._state = state
        self._keys = []
        self.key_problem: str | None = None
        if not fleet_key:
            self.key_problem = "no fleet control key configured ([trust] fleet_key): every push and command is refused"
        else:
            try:
                self._keys = [load_public_file(fleet_key)]
            except ControlKeyError as exc:
                self.key_problem = f"[trust] fleet_key: {exc}; every push and command is refused"
        if self.key_problem:
            log.error("%s", self.key_problem)
        self.rejected: dict[str, int] = {}
        self.accepted = 0
        self.repeats = 0
        self.last_rejected: dict[str, Any] | None = None
        self._lock: asyncio.Lock | None = None
        self._log_window_start = clock.monotonic()
        self._log_lines = 0
        self._log_suppressed = 0

    @classmethod
    def from_config(cls, cfg: GatewayConfig, clock: Clock) -> "ControlGate":
        return cls(gateway_id=cfg.gateway.id, fleet_key=cfg.trust.fleet_key,
                   state=ControlState(cfg.gateway.data_dir), clock=clock)

    @property
    def highest_seq(self) -> int:
        return self._state.highest

    # ------------------------------------------------------------ the entry
    def submit(self, kind: str, topic: str, payload: bytes, deliver: Deliver) -> None:
        """One message from ``topic`` (expected ``kind``); ``deliver`` runs on the loop if accepted."""
        o = open_envelope(payload, gateway_id=self.gateway_id, keys=self._keys, now=self._clock.time(), kind=kind)
        if isinstance(o, ControlRejected):
            self._refuse(o.reason, topic, o.detail)
            return
        if self._is_repeat(o):
            self._repeat(o, deliver)
            return
        if o.seq <= self._state.highest:
            self._refuse("replayed", topic, f"seq {o.seq} is not above the highest accepted {self._state.highest}")
            return
        asyncio.get_running_loop().create_task(self._accept(o, topic, deliver), name="control-accept")

    def _is_repeat(self, o: Opened) -> bool:
        return o.seq <= self._state.highest and o.digest in self._state.recent

    def _repeat(self, o: Opened, deliver: Deliver) -> None:
        self.repeats += 1
        if o.kind.startswith("wt.config"):
            self._deliver(o, True, deliver)
        else:
            log.info("control: command seq %d delivered again by the broker; already handled", o.seq)

    async def _accept(self, o: Opened, topic: str, deliver: Deliver) -> None:
        if self._lock is None:
            self._lock = asyncio.Lock()
        async with self._lock:                 # FIFO: messages are handled in arrival order
            if self._is_repeat(o):
                self._repeat(o, deliver)
                return
            if o.seq <= self._state.highest:   # a message accepted while this one waited
                self._refuse("replayed", topic, f"seq {o.seq} is not above the highest accepted "
                                                f"{self._state.highest}")
                return
            try:
                await asyncio.to_thread(self._state.advance, o.seq, o.digest)
            except OSError as exc:
                self._refuse("state_error", topic, f"cannot record seq {o.seq} in {self._state.path}: {exc}")
                return
            self.accepted += 1
            self._deliver(o, False, deliver)

    def _deliver(self, o: Opened, repeat: bool, deliver: Deliver) -> None:
        try:
            usable = deliver(o, repeat)
        except Exception:    # a handler bug must not end the gate; the seq stays used (never re-applied)
            self.rejected["handler_error"] = self.rejected.get("handler_error", 0) + 1
            log.exception("control message seq %d: handler failed", o.seq)
            return
        if not usable:     # signed by the fleet, but not a usable wt.cmd/1 / wt.config/1
            self.rejected["bad_body"] = self.rejected.get("bad_body", 0) + 1

    # ------------------------------------------------------------ refusals
    def _refuse(self, reason: str, topic: str, detail: str) -> None:
        self.rejected[reason] = self.rejected.get(reason, 0) + 1
        self.last_rejected = {"reason": reason, "topic": topic, "detail": detail[:200],
                              "at": rfc3339(self._clock.time())}
        now = self._clock.monotonic()
        if now - self._log_window_start >= LOG_WINDOW_S:
            if self._log_suppressed:
                log.warning("control: %d more refused message(s) not logged in the last %.0f s (counts in "
                            "gateway status)", self._log_suppressed, now - self._log_window_start)
            self._log_window_start, self._log_lines, self._log_suppressed = now, 0, 0
        if self._log_lines < LOG_BURST:
            self._log_lines += 1
            log.warning("control message on %s refused (%s): %s", topic, reason, detail)
        else:
            self._log_suppressed += 1

    def status(self) -> dict[str, Any]:
        """``control`` in the status snapshot and ``wt.health/1``."""
        return {"key": "missing" if self.key_problem else "ok", "accepted": self.accepted, "repeats": self.repeats,
                "highest_seq": self._state.highest, "rejected": dict(sorted(self.rejected.items())),
                "rejected_total": sum(self.rejected.values()), "last_rejected": self.last_rejected}
