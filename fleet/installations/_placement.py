"""Does a fall sensor run the detector its checklist chose? Pure comparison and messages.

The checklist's ``placement`` answer (pendant, wrist, waist, pocket) reaches the device through
its gateway's configuration and a ``CONFIG`` frame (docs/gateway.md "Device settings"). The
device's ``fall_detected`` alarm says which detector it actually runs: ``data.placement`` —
0 wrist, 1 chest (= pendant), 2 waist (= waist or pocket) (docs/protocol.md §2). A commissioning
test fall carries it, so the platform can confirm the setting arrived; an alarm without it
(older firmware, or a test alarm that was not a fall) is "placement not reported".
"""
from __future__ import annotations

from typing import Any

# the checklist's answer -> the placement byte a device running that detector reports
EXPECTED: dict[str, int] = {"wrist": 0, "pendant": 1, "waist": 2, "pocket": 2}
# the placement byte -> the detector's name as technicians say it
DETECTOR: dict[int, str] = {0: "wrist", 1: "pendant/chest", 2: "waist/pocket"}

CONFIRMED, MISMATCH, NOT_REPORTED, NOT_ANSWERED = "confirmed", "mismatch", "not_reported", "not_answered"


def reported_placement(data: Any) -> int | None:
    """``data.placement`` of a ``fall_detected`` alarm if it is 0, 1 or 2; None otherwise (never raises)."""
    p = data.get("placement") if isinstance(data, dict) else None
    return p if isinstance(p, int) and not isinstance(p, bool) and p in DETECTOR else None


def expected_placement(answer: Any) -> int | None:
    """The placement byte the checklist answer selects (None: unanswered)."""
    return EXPECTED.get(answer) if isinstance(answer, str) else None


def placement_status(answer: Any, reported: int | None) -> str:
    if reported is None:
        return NOT_REPORTED
    expected = expected_placement(answer)
    if expected is None:
        return NOT_ANSWERED
    return CONFIRMED if expected == reported else MISMATCH


def mismatch_message(*, code: str, serial: str, hw_id: str, gateway_id: str | None, answer: str,
                     reported: int) -> str:
    """What is wrong and what to do, naming the device and both placements."""
    gw = gateway_id or "the installation's gateway"
    # "<what is wrong>; <how to fix it>" (one "; ": the API's problem details split there)
    return (f"fall sensor {serial} ({hw_id}) runs the {DETECTOR[reported]} detector (placement {reported} in its "
            f"test fall), but the checklist says {answer} (placement {EXPECTED[answer]}): the device has not "
            f"taken its setting; check `gateway status --json` on {gw} (device_settings of {hw_id}: `synced` is "
            "done, `no_downlink` is an advert-only link that cannot be sent settings, `refused` or `failed` give "
            "the reason) or wait for the device to restart and resync, or, if the checklist answer is wrong, "
            f"answer it again (fleet install checklist {code} {serial} placement=...), then trigger the test "
            "fall again")


def check(*, code: str, device: dict[str, Any], answer: Any, alarm: dict[str, Any] | None,
          gateway_id: str | None) -> dict[str, Any] | None:
    """The placement check of one device (None unless it is a fall sensor whose test alarm was seen).

    ``device``: ``serial``, ``hw_id``, ``role``; ``alarm``: its latest test alarm row
    (``placement``: what it reported, or None). The result names the checklist answer, the
    byte it selects, the byte reported, the status and, for a mismatch, the message.
    """
    if device.get("role") != "fall" or alarm is None:
        return None
    reported = alarm.get("placement")
    status = placement_status(answer, reported)
    out: dict[str, Any] = {
        "serial": device["serial"], "hw_id": device["hw_id"], "status": status,
        "checklist": answer if isinstance(answer, str) else None, "expected": expected_placement(answer),
        "reported": reported, "detector": DETECTOR.get(reported) if reported is not None else None, "message": None}
    if status == MISMATCH:
        out["message"] = mismatch_message(code=code, serial=device["serial"], hw_id=device["hw_id"],
                                          gateway_id=gateway_id, answer=answer, reported=reported)
    return out


def fall_sensors(inst: dict[str, Any]) -> list[tuple[dict[str, Any], Any, dict[str, Any] | None]]:
    """(device, checklist answer, check or None without a test alarm) per fall sensor of
    :meth:`InstallationService.show` output (the answer needs the personal fields)."""
    seen = {a["device_id"]: a for a in inst.get("test_alarms") or []}
    checklist = inst.get("checklist") or {}
    out = []
    for d in inst["devices"]:
        if d["role"] == "fall":
            answer = (checklist.get(d["serial"]) or {}).get("placement")
            out.append((d, answer, check(code=inst["code"], device=d, answer=answer, alarm=seen.get(d["hw_id"]),
                                         gateway_id=inst.get("gateway_id"))))
    return out
