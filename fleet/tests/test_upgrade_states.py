"""The update and rollout state machines are tables; every pair not in them is refused;
docs/upgrades.md shows the unit table exactly as the code has it."""
from __future__ import annotations

from pathlib import Path

import pytest

from fleet.errors import InvalidTransition
from fleet.upgrades import (ROLLOUT_TRANSITIONS, UNIT_TRANSITIONS, RolloutEvent, RolloutState, UnitEvent, UnitState,
                            rollout_step, unit_step)


def run(events, start=UnitState.QUEUED):
    s = start
    for e in events:
        s = unit_step(s, e)
    return s


def test_happy_path_download_install_reboot_commit_then_the_new_version_reported():
    E = UnitEvent
    committed = run([E.SEND, E.DOWNLOADED, E.INSTALLED, E.REBOOTED, E.COMMITTED])
    assert committed is UnitState.CONFIRMING                 # "committed" alone is not success
    assert unit_step(committed, E.VERSION_REPORTED) is UnitState.SUCCEEDED


def test_a_version_report_changes_nothing_outside_confirming():
    E = UnitEvent
    for s in UnitState:
        if s is not UnitState.CONFIRMING:
            assert unit_step(s, E.VERSION_REPORTED) is s
    # a committed unit that never shows the version fails on its error (the engine's timeout)
    assert run([E.SEND, E.COMMITTED, E.ERROR]) is UnitState.FAILED
    assert run([E.SEND, E.COMMITTED, E.COMMITTED]) is UnitState.CONFIRMING      # duplicate: no-op


def test_docs_show_the_unit_table_of_the_code():
    from fleet.upgrades._states import unit_table_markdown

    doc = (Path(__file__).resolve().parents[2] / "docs" / "upgrades.md").read_text(encoding="utf-8")
    assert unit_table_markdown() in doc


@pytest.mark.parametrize("events, end", [
    ([UnitEvent.SEND, UnitEvent.ERROR], UnitState.FAILED),                            # download failed: no rollback
    ([UnitEvent.SEND, UnitEvent.DOWNLOADED, UnitEvent.ERROR], UnitState.ROLLING_BACK),
    ([UnitEvent.SEND, UnitEvent.DOWNLOADED, UnitEvent.INSTALLED, UnitEvent.REBOOTED, UnitEvent.ERROR,
      UnitEvent.ROLLED_BACK], UnitState.FAILED),
])
def test_failure_paths(events, end):
    assert run(events) is end


def test_duplicates_and_late_reports_are_noops():
    E = UnitEvent
    s = run([E.SEND, E.DOWNLOADED, E.INSTALLED])
    assert unit_step(s, E.DOWNLOADED) is s                   # redelivered progress
    done = run([E.SEND, E.COMMITTED, E.VERSION_REPORTED])
    for e in (E.DOWNLOADED, E.COMMITTED, E.ERROR, E.SEND, E.VERSION_REPORTED):
        assert unit_step(done, e) is UnitState.SUCCEEDED     # re-applying the same deployment changes nothing


def test_disallowed_unit_transitions_raise():
    with pytest.raises(InvalidTransition):
        unit_step(UnitState.QUEUED, UnitEvent.COMMITTED)
    with pytest.raises(InvalidTransition):
        unit_step(UnitState.QUEUED, UnitEvent.ERROR)


def test_every_table_target_is_a_state_and_terminal_states_have_no_exit_except_revert():
    for (s, e), t in UNIT_TRANSITIONS.items():
        assert isinstance(t, UnitState)
        if s.terminal:
            assert (s, e) in ((UnitState.SUCCEEDED, UnitEvent.REVERT), (UnitState.FAILED, UnitEvent.RETRY))


def test_rollout_table_and_errors_name_allowed_events():
    R, E = RolloutState, RolloutEvent
    s = rollout_step(R.DRAFT, E.START)
    assert rollout_step(s, E.PAUSE) is R.PAUSED
    assert rollout_step(R.PAUSED, E.RESUME) is R.RUNNING
    assert rollout_step(R.RUNNING, E.START) is R.RUNNING    # no-op
    with pytest.raises(InvalidTransition, match="allowed now: rollback"):
        rollout_step(R.COMPLETED, E.RESUME)
    assert (R.ROLLED_BACK, E.RESUME) not in ROLLOUT_TRANSITIONS
