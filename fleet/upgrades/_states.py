"""State machines as tables: one device update, one rollout.

Per unit (a gateway for gateway software, a sensor for firmware relayed by its gateway),
after Mender: Download -> Install -> Reboot -> Commit, or Rollback -> Failure. A unit is
``succeeded`` only when, after its ``committed``, the unit reports the new version
(``confirming`` -> ``version_reported``): a gateway in its wt.health/1 or wt.state/1, a
sensor through the gateway's OTA result (the gateway commits a sensor only after the
device's HELLO with the new version). A ``committed`` alone is not proof that the new
version runs.
A duplicate or late report of a phase already passed is a no-op (QoS 1 may redeliver),
so re-applying the same deployment never moves a unit backwards; a version report
outside ``confirming`` changes nothing (the engine remembers it).
"""
from __future__ import annotations

import enum

from fleet.errors import InvalidTransition


class UnitState(enum.Enum):
    QUEUED = "queued"
    DOWNLOADING = "downloading"     # command sent, gateway fetching + verifying the artifact
    INSTALLING = "installing"
    REBOOTING = "rebooting"
    COMMITTING = "committing"       # new image booted, health check running
    CONFIRMING = "confirming"       # committed; waiting for the unit to report the new version
    SUCCEEDED = "succeeded"
    ROLLING_BACK = "rolling_back"
    FAILED = "failed"
    CANCELLED = "cancelled"         # never sent (rollout halted/aborted first)
    CURRENT = "current"             # already ran the target version: nothing sent
    REVERTING = "reverting"         # rollout rolled back: previous release being reinstalled
    REVERTED = "reverted"

    @property
    def terminal(self) -> bool:
        return self in TERMINAL

    @property
    def in_flight(self) -> bool:
        return self in IN_FLIGHT


class UnitEvent(enum.Enum):
    SEND = "send"
    DOWNLOADED = "downloaded"
    INSTALLED = "installed"
    REBOOTED = "rebooted"
    COMMITTED = "committed"
    ERROR = "error"
    ROLLED_BACK = "rolled_back"
    CANCEL = "cancel"
    ALREADY_CURRENT = "already_current"
    REVERT = "revert"
    VERSION_REPORTED = "version_reported"   # health/state (or the OTA result) shows the release's version
    RETRY = "retry"                         # operator: `fleet rollout resume --retry-failed`


S, E = UnitState, UnitEvent
UNIT_TRANSITIONS: dict[tuple[UnitState, UnitEvent], UnitState] = {
    (S.QUEUED, E.SEND): S.DOWNLOADING,
    (S.QUEUED, E.CANCEL): S.CANCELLED,
    (S.QUEUED, E.ALREADY_CURRENT): S.CURRENT,
    (S.DOWNLOADING, E.DOWNLOADED): S.INSTALLING,
    (S.DOWNLOADING, E.ERROR): S.FAILED,          # nothing installed yet: nothing to roll back
    (S.INSTALLING, E.INSTALLED): S.REBOOTING,
    (S.INSTALLING, E.ERROR): S.ROLLING_BACK,
    (S.REBOOTING, E.REBOOTED): S.COMMITTING,
    (S.REBOOTING, E.ERROR): S.ROLLING_BACK,
    (S.COMMITTING, E.COMMITTED): S.CONFIRMING,
    (S.COMMITTING, E.ERROR): S.ROLLING_BACK,
    (S.CONFIRMING, E.VERSION_REPORTED): S.SUCCEEDED,
    (S.CONFIRMING, E.ERROR): S.FAILED,          # e.g. no report of the new version in time
    (S.CONFIRMING, E.ROLLED_BACK): S.FAILED,
    (S.ROLLING_BACK, E.ROLLED_BACK): S.FAILED,
    (S.ROLLING_BACK, E.ERROR): S.FAILED,
    (S.SUCCEEDED, E.REVERT): S.REVERTING,
    (S.REVERTING, E.COMMITTED): S.REVERTED,
    (S.REVERTING, E.ERROR): S.FAILED,
    (S.REVERTING, E.ROLLED_BACK): S.FAILED,
    # a gateway that reports the final outcome without every intermediate phase
    (S.DOWNLOADING, E.COMMITTED): S.CONFIRMING,
    (S.INSTALLING, E.COMMITTED): S.CONFIRMING,
    (S.REBOOTING, E.COMMITTED): S.CONFIRMING,
    (S.DOWNLOADING, E.ROLLED_BACK): S.FAILED,
    (S.INSTALLING, E.ROLLED_BACK): S.FAILED,
    (S.REBOOTING, E.ROLLED_BACK): S.FAILED,
    (S.COMMITTING, E.ROLLED_BACK): S.FAILED,
    (S.FAILED, E.RETRY): S.QUEUED,              # sent again with a new cmd_id (attempt n)
}
TERMINAL = frozenset({S.SUCCEEDED, S.FAILED, S.CANCELLED, S.CURRENT, S.REVERTED})
IN_FLIGHT = frozenset({S.DOWNLOADING, S.INSTALLING, S.REBOOTING, S.COMMITTING, S.CONFIRMING, S.ROLLING_BACK,
                       S.REVERTING})
_ORDER = [S.QUEUED, S.DOWNLOADING, S.INSTALLING, S.REBOOTING, S.COMMITTING, S.CONFIRMING, S.ROLLING_BACK]
_REACHES = {E.SEND: S.DOWNLOADING, E.DOWNLOADED: S.INSTALLING, E.INSTALLED: S.REBOOTING,
            E.REBOOTED: S.COMMITTING, E.COMMITTED: S.CONFIRMING}


def unit_step(state: UnitState, event: UnitEvent) -> UnitState:
    """Next state; a duplicate/late event is a no-op; anything else not in the table raises."""
    nxt = UNIT_TRANSITIONS.get((state, event))
    if nxt is not None:
        return nxt
    if event is E.VERSION_REPORTED:
        return state                      # only confirms a committed unit
    if state.terminal and event is not E.REVERT:
        return state                      # late report after the outcome is known
    if state is S.REVERTING and event in _REACHES:
        return state                      # progress of the reinstall of the previous release
    reach = _REACHES.get(event)
    if reach is not None and state in _ORDER and _ORDER.index(state) >= _ORDER.index(reach):
        return state                      # duplicate progress report
    raise InvalidTransition(f"update unit in state {state.value} cannot take event {event.value}",
                            state=state.value, event=event.value)


class RolloutState(enum.Enum):
    DRAFT = "draft"
    RUNNING = "running"
    PAUSED = "paused"
    HALTED = "halted"             # stopped automatically: error threshold exceeded
    COMPLETED = "completed"
    ABORTED = "aborted"
    ROLLING_BACK = "rolling_back"
    ROLLED_BACK = "rolled_back"


class RolloutEvent(enum.Enum):
    START = "start"
    PAUSE = "pause"
    RESUME = "resume"
    HALT = "halt"
    FINISH = "finish"
    ABORT = "abort"
    ROLLBACK = "rollback"
    ROLLBACK_DONE = "rollback_done"


R, RE = RolloutState, RolloutEvent
ROLLOUT_TRANSITIONS: dict[tuple[RolloutState, RolloutEvent], RolloutState] = {
    (R.DRAFT, RE.START): R.RUNNING,
    (R.DRAFT, RE.ABORT): R.ABORTED,
    (R.RUNNING, RE.PAUSE): R.PAUSED,
    (R.RUNNING, RE.HALT): R.HALTED,
    (R.RUNNING, RE.FINISH): R.COMPLETED,
    (R.RUNNING, RE.ABORT): R.ABORTED,
    (R.PAUSED, RE.RESUME): R.RUNNING,
    (R.PAUSED, RE.ABORT): R.ABORTED,
    (R.HALTED, RE.RESUME): R.RUNNING,     # operator reviewed the failures and continues
    (R.HALTED, RE.ABORT): R.ABORTED,
    (R.HALTED, RE.ROLLBACK): R.ROLLING_BACK,
    (R.ABORTED, RE.ROLLBACK): R.ROLLING_BACK,
    (R.COMPLETED, RE.ROLLBACK): R.ROLLING_BACK,
    (R.PAUSED, RE.ROLLBACK): R.ROLLING_BACK,
    (R.ROLLING_BACK, RE.ROLLBACK_DONE): R.ROLLED_BACK,
}
_NOOP = {(R.RUNNING, RE.START), (R.RUNNING, RE.RESUME), (R.PAUSED, RE.PAUSE), (R.HALTED, RE.HALT),
         (R.ABORTED, RE.ABORT), (R.COMPLETED, RE.FINISH), (R.ROLLING_BACK, RE.ROLLBACK),
         (R.ROLLED_BACK, RE.ROLLBACK)}


def rollout_step(state: RolloutState, event: RolloutEvent) -> RolloutState:
    nxt = ROLLOUT_TRANSITIONS.get((state, event))
    if nxt is not None:
        return nxt
    if (state, event) in _NOOP:
        return state
    allowed = sorted(e.value for (s, e) in ROLLOUT_TRANSITIONS if s is state)
    raise InvalidTransition(
        f"rollout is {state.value}; it cannot {event.value} (allowed now: {', '.join(allowed) or 'nothing'})",
        state=state.value, event=event.value)


def unit_table_markdown() -> str:
    """The unit transition table as docs/upgrades.md shows it (kept in sync by a test)."""
    rows = ["| from | event | to |", "| --- | --- | --- |"]
    for (st, ev), to in UNIT_TRANSITIONS.items():
        rows.append(f"| {st.value} | {ev.value} | {to.value} |")
    return "\n".join(rows)
