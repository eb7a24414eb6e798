"""Handover report for the installation (Markdown and HTML) — pure rendering."""
from __future__ import annotations

import html
import json
from datetime import datetime, timezone
from typing import Any

from ._checklist import QUESTIONS
from ._placement import EXPECTED, fall_sensors


def _t(ts: float | None) -> str:
    """Europe/Oslo, as every time a person reads (UTC if the zone database lacks it)."""
    if ts is None:
        return "—"
    try:
        from zoneinfo import ZoneInfo

        tz: Any = ZoneInfo("Europe/Oslo")
    except Exception:            # noqa: BLE001 - no zone database: UTC, labelled
        tz = timezone.utc
    return datetime.fromtimestamp(ts, tz=tz).strftime("%Y-%m-%d %H:%M %Z")


def _answer(v: Any) -> str:
    if v is None:
        return "— (missing)"
    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, (list, dict)):
        return json.dumps(v, ensure_ascii=False)
    return str(v)


def _firmware(d: dict[str, Any]) -> str:
    """``wt-sensor 1.2.0``: the family and the version the device (or gateway) reported running."""
    v = d.get("fw_version")
    return f"{d['firmware_family']} {v}" if v else f"{d['firmware_family']} (version not reported yet)"


_PLACEMENT_RESULT = {"confirmed": "confirmed", "mismatch": "DOES NOT MATCH the checklist (device not configured)",
                     "not_reported": "placement not reported (older firmware)",
                     "not_answered": "not confirmed: checklist unanswered", "no_alarm": "NOT SEEN (no test alarm)"}


def sections(inst: dict[str, Any]) -> list[tuple[str, list[tuple[str, str]] | list[list[str]], list[str] | None]]:
    """(title, rows, header) — header None means key/value rows."""
    out: list[tuple[str, Any, Any]] = []
    out.append(("Installation", [
        ("Installation", inst["code"]), ("Status", inst["status"]), ("Municipality", inst["municipality"]),
        ("Location", f"{inst['location']} ({inst['location_kind']})"), ("Kit", inst["kit"] or "—"),
        ("Gateway", inst["gateway_id"] or "—"), ("Resident (pseudonymous)", inst.get("resident_ref") or "—"),
        ("Commissioned", _t(inst["commissioned_at"])), ("Installed by", inst["created_by"]),
    ], None))
    seen = {a["device_id"]: a for a in inst["test_alarms"]}
    out.append(("Devices and test alarms", [
        [d["role"], d["serial"], d["hw_id"] or "—", _firmware(d),
         ("seen " + _t(seen[d["hw_id"]]["seen_at"]) +
          (f", {seen[d['hw_id']]['latency_ms']:.0f} ms" if seen[d["hw_id"]]["latency_ms"] is not None else ""))
         if d["hw_id"] in seen else ("n/a (gateway)" if d["role"] == "gateway" else "NOT SEEN")]
        for d in inst["devices"]], ["Role", "Serial", "Device id", "Firmware (running)", "Test alarm at platform"]))
    falls = fall_sensors(inst)
    if falls:
        out.append(("Fall sensors: placement (the detector its test fall reported)", [
            [d["serial"], f"{answer} ({EXPECTED[answer]})" if answer in EXPECTED else "— (missing)",
             "—" if c is None or c["reported"] is None else f"{c['detector']} ({c['reported']})",
             _PLACEMENT_RESULT[c["status"] if c else "no_alarm"]] for d, answer, c in falls],
            ["Serial", "Checklist", "Test fall reported", "Confirmed placement"]))
    consent = inst.get("consent") or {}
    out.append(("Consent", [("Basis", {"consent": "consent from the resident",
                                       "capacity_assessment": "documented capacity assessment"}.get(str(consent.get("kind")), "—")),
                            ("Reference", consent.get("ref") or "—"), ("Date", consent.get("date") or "—")], None))
    routing = inst.get("routing") or {}
    chain = [["1", "response centre", routing.get("response_centre", "—"), "immediately"]]
    esc = routing.get("escalation_s", [])
    steps = [("staff group", routing.get("staff_group", "—"))] + [
        ("relative", r.get("relation", "?") + (f" ({r['phone']})" if r.get("phone") else "")) for r in routing.get("relatives", [])]
    for i, (kind, who) in enumerate(steps):
        chain.append([str(i + 2), kind, who, f"after {esc[i]:.0f} s unacknowledged" if i < len(esc) else "—"])
    out.append(("Alarm routing", chain, ["Step", "Who", "Recipient", "When"]))
    checklist = inst.get("checklist") or {}
    for d in inst["devices"]:
        if d["role"] == "gateway":
            continue
        answers = checklist.get(d["serial"], {})
        out.append((f"Checklist: {d['role']} {d['serial']}", [(q.text, _answer(answers.get(q.key))) for q in QUESTIONS],
                    None))
    return out


def render_markdown(inst: dict[str, Any]) -> str:
    lines = [f"# Handover report — installation {inst['code']}", ""]
    for title, rows, header in sections(inst):
        lines += [f"## {title}", ""]
        if header is None:
            lines += ["| | |", "| --- | --- |"] + [f"| {k} | {v.replace('|', '/')} |" for k, v in rows]
        else:
            lines += ["| " + " | ".join(header) + " |", "|" + " --- |" * len(header)]
            lines += ["| " + " | ".join(c.replace("|", "/") for c in r) + " |" for r in rows]
        lines.append("")
    return "\n".join(lines)


def render_html(inst: dict[str, Any]) -> str:
    e = html.escape
    parts = ["<!doctype html>", '<html lang="en"><head><meta charset="utf-8">',
             f"<title>Handover report {e(inst['code'])}</title>",
             "<style>body{font-family:sans-serif;max-width:50em;margin:2em auto}"
             "table{border-collapse:collapse;width:100%;margin-bottom:1.5em}"
             "td,th{border:1px solid #999;padding:.3em .5em;text-align:left}</style></head><body>",
             f"<h1>Handover report — installation {e(inst['code'])}</h1>"]
    for title, rows, header in sections(inst):
        parts.append(f"<h2>{e(title)}</h2><table>")
        if header is not None:
            parts.append("<tr>" + "".join(f"<th>{e(h)}</th>" for h in header) + "</tr>")
            parts += ["<tr>" + "".join(f"<td>{e(c)}</td>" for c in r) + "</tr>" for r in rows]
        else:
            parts += [f"<tr><th>{e(k)}</th><td>{e(v)}</td></tr>" for k, v in rows]
        parts.append("</table>")
    parts.append("</body></html>")
    return "\n".join(parts)
