"""Commissioning, live: pairing progress and a test alarm per device, and why "installed" is not
possible yet; the handover report. Pure rendering.

The page and the event stream render the same regions (:func:`regions`) from the same state
(:func:`fleet.api.routers.events.commissioning_state`): without JavaScript the page refreshes
itself every 10 s and shows exactly what the stream would have pushed.
"""
from __future__ import annotations

import json
from typing import Any

from ..installations import QUESTIONS
from ..installations._placement import fall_sensors
from ._html import View, asset, asset_url, button, e, form, link_button, notice, page
from ._views import device_label, role_name, status_name

REFRESH_S = 10


def _blocker_text(v: View, b: dict[str, Any], labels: dict[str, str]) -> str:
    t = v.t
    if b["kind"] == "status":
        return t("blocker.status", status=status_name(v, b["status"]))
    if b["kind"] == "test_alarm":
        return t("blocker.test_alarm", device=labels.get(b["serial"], b["serial"]))
    if b["kind"] == "placement":
        return t("blocker.placement", device=labels.get(b["serial"], b["serial"]),
                 detector=detector_name(v, b["reported"]), placement=placement_name(v, b["checklist"]))
    if b["kind"] == "checklist":
        return t("blocker.checklist", device=labels.get(b["serial"], b["serial"]), n=len(b["keys"]))
    return t("blocker.consent")


def placement_name(v: View, answer: Any) -> str:
    """The checklist's answer (pendant, wrist, waist, pocket) in the reader's language."""
    return v.t.maybe(f"placement.{answer}", str(answer)) if answer else "—"


def detector_name(v: View, reported: Any) -> str:
    """The detector a fall alarm's placement byte names (0 wrist, 1 pendant/chest, 2 waist/pocket)."""
    return v.t.maybe(f"detector.{reported}", str(reported))


def placement_line(v: View, p: dict[str, Any] | None) -> tuple[str, str] | None:
    """(css class, text) for a fall sensor's placement check (events.commissioning_state), None if none."""
    if p is None:
        return None
    t = v.t
    if p["status"] == "confirmed":
        return "ok", t("live.placement.ok", placement=placement_name(v, p["checklist"]),
                       detector=detector_name(v, p["reported"]))
    if p["status"] == "mismatch":
        return "bad", t("live.placement.wrong", detector=detector_name(v, p["reported"]),
                        placement=placement_name(v, p["checklist"]))
    if p["status"] == "not_reported":
        return "wait", t("live.placement.not_reported")
    return "wait", t("live.placement.not_answered", detector=detector_name(v, p["reported"]))


def regions(v: View, st: dict[str, Any]) -> dict[str, str]:
    """id -> inner HTML of each live region of the commissioning page."""
    t = v.t
    total = st["total"] or 1
    summary = (
        f'<p id="p-paired">{e(t("live.paired", n=st["paired"], total=st["total"]))}</p>'
        f'<progress max="{total}" value="{st["paired"]}" aria-labelledby="p-paired"></progress>'
        f'<p id="p-seen">{e(t("live.seen", n=st["seen"], total=st["total"]))}</p>'
        f'<progress max="{total}" value="{st["seen"]}" aria-labelledby="p-seen"></progress>')
    cards = []
    for d in st["devices"]:
        if d["paired"]:
            pair = t("live.pair.ok", fw=d["fw"]) if d["fw"] else t("live.pair.ok_nofw")
        else:
            pair = t("live.pair.wait")
        alarm = d["test_alarm"]
        if alarm:
            ms = alarm["latency_ms"]
            seen = (t("live.alarm.ok_ms", at=t.clock(alarm["seen_at"]), ms=f"{ms:.0f}") if ms is not None
                    else t("live.alarm.ok", at=t.clock(alarm["seen_at"])))
        else:
            seen = t("live.alarm.wait")
        pl = placement_line(v, d.get("placement"))
        placement = "" if pl is None else (
            f'<p class="{pl[0]} placement" data-placement="{e(d["placement"]["status"])}"><span aria-hidden="true">'
            f'{ {"ok": "✓", "bad": "✗"}.get(pl[0], "…") }</span> {e(pl[1])}</p>')
        cards.append(
            f'<li class="device" data-serial="{e(d["serial"])}" data-seen="{"yes" if alarm else "no"}">'
            f'<h3>{e(device_label(v, d))}</h3><p class="muted">{e(t("live.device_id", id=d["hw_id"] or "—"))}</p>'
            f'<p class="{"ok" if d["paired"] else "wait"}"><span aria-hidden="true">{"✓" if d["paired"] else "…"}</span> '
            f'{e(pair)}</p><p class="{"ok" if alarm else "wait"}"><span aria-hidden="true">{"✓" if alarm else "…"}</span> '
            f'{e(seen)}</p>{placement}</li>')
    labels = {d["serial"]: device_label(v, d) for d in st["devices"]}
    if st["can_complete"]:
        blockers = f'<p class="ok">{e(t("live.ready"))}</p>'
    elif st["blockers"]:
        items = "".join(f"<li>{e(_blocker_text(v, b, labels))}</li>" for b in st["blockers"])
        blockers = f'<p>{e(t("live.blocked"))}</p><ul>{items}</ul>'
    else:
        blockers = f'<p>{e(t("live.no_permission"))}</p>'
    return {"live-summary": summary, "live-devices": "".join(cards), "live-blockers": blockers}


def event_payload(v: View, st: dict[str, Any]) -> dict[str, Any]:
    """What the web stream sends: the rendered regions and whether the complete button may be pressed."""
    return {"regions": regions(v, st), "can_complete": st["can_complete"], "status": st["status"]}


def commissioning_page(v: View, st: dict[str, Any], *, error: str | None = None) -> str:
    t = v.t
    code = st["code"]
    base = f"/web/installations/{code}"
    r = regions(v, st)
    gw = st.get("gateway") or {}
    gw_text = t("live.gateway", id=gw.get("id") or "—") + (
        " " + t("live.gateway_version", version=gw["version"]) if gw.get("version") else "")
    parts = [notice(error, "error") if error else "",
             f'<p class="meta"><span class="tag tag-status">{e(status_name(v, st["status"]))}</span> {e(gw_text)}</p>',
             f'<p>{e(t("live.intro"))}</p>',
             f'<p class="hint">{e(t("live.tool", code=code))}</p>',
             f'<p id="live-note" class="muted" hidden>{e(t("live.note"))}</p>',
             f'<section aria-labelledby="h-progress"><h2 id="h-progress">{e(t("live.progress"))}</h2>'
             f'<div id="live-summary" aria-live="polite">{r["live-summary"]}</div></section>',
             f'<section aria-labelledby="h-devices"><h2 id="h-devices">{e(t("live.devices"))}</h2>'
             f'<ul id="live-devices" class="devices" aria-live="polite">{r["live-devices"]}</ul></section>']
    complete = ""
    if st["status"] == "commissioning":
        complete = form(f"{base}/complete", button(t("complete.submit"), disabled=not st["can_complete"],
                                                   describedby="live-blockers", id="complete"), v)
    parts.append(f'<section aria-labelledby="h-complete"><h2 id="h-complete">{e(t("step.complete"))}</h2>'
                 f'<div id="live-blockers" aria-live="polite">{r["live-blockers"]}</div>{complete}</section>')
    parts.append(f'<p class="actions">{link_button(base + "/commissioning", t("live.reload"), cls="btn btn-secondary")}'
                 f'{link_button(base, t("form.back"), cls="btn btn-secondary")}</p>')
    live = f' data-events="{e(base)}/events"' if st["status"] == "commissioning" else ""
    main = f'<div{live}>{"".join(parts)}</div>'
    return page(v, t("live.title", code=code), main, refresh_s=REFRESH_S if st["status"] == "commissioning" else None)


# -- handover report -----------------------------------------------------------------------
def _answer(v: View, value: Any) -> str:
    if value is None:
        return v.t("report.missing")
    if isinstance(value, bool):
        return v.t("answer.yes") if value else v.t("answer.no")
    if isinstance(value, dict):
        parts = []
        if value.get("window"):
            parts.append(v.t("report.window", window=value["window"]))
        if value.get("delay_min") is not None:
            parts.append(v.t("report.delay", n=value["delay_min"]))
        rest = {k: x for k, x in value.items() if k not in ("window", "delay_min")}
        if rest:
            parts.append(json.dumps(rest, ensure_ascii=False))
        return ", ".join(parts)
    if isinstance(value, list):
        return ", ".join(str(x) for x in value)
    return str(value)


def _kv(rows: list[tuple[str, str]]) -> str:
    return "<table>" + "".join(f'<tr><th scope="row">{e(k)}</th><td>{e(x)}</td></tr>' for k, x in rows) + "</table>"


def _grid(header: list[str], rows: list[list[str]]) -> str:
    head = "".join(f'<th scope="col">{e(h)}</th>' for h in header)
    body = "".join("<tr>" + "".join(f"<td>{e(c)}</td>" for c in r) + "</tr>" for r in rows)
    return f'<div class="table-wrap"><table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table></div>'


def report_page(v: View, inst: dict[str, Any], *, now: float, standalone: bool = False) -> str:
    """The handover report, print-friendly, in the reader's language. ``standalone``: the download
    (the stylesheet inside, no script, no links back into the app)."""
    t = v.t
    code = inst["code"]
    seen = {a["device_id"]: a for a in inst["test_alarms"]}
    sec = [("report.installation", _kv([
        (t("report.code"), code), (t("report.status"), status_name(v, inst["status"])),
        (t("inst.municipality"), inst["municipality"]),
        (t("report.location"), f"{inst['location']} ({t.maybe('kind.' + str(inst['location_kind']), str(inst['location_kind']))})"),
        (t("report.kit"), inst["kit"] or "—"), (t("inst.gateway"), inst["gateway_id"] or "—"),
        (t("inst.resident"), inst.get("resident_ref") or "—"),
        (t("report.commissioned"), t.when(inst["commissioned_at"])), (t("report.installed_by"), inst["created_by"])]))]
    rows = []
    for d in inst["devices"]:
        fw = d.get("fw_version")
        fw_text = f"{d['firmware_family']} {fw}" if fw else t("report.fw_unknown", family=d["firmware_family"])
        a = seen.get(d["hw_id"])
        if d["role"] == "gateway":
            alarm = t("report.alarm_gateway")
        elif a:
            alarm = t("report.alarm_seen", when=t.when(a["seen_at"]), at=t.clock(a["seen_at"])) + (
                f", {a['latency_ms']:.0f} ms" if a["latency_ms"] is not None else "")
        else:
            alarm = t("report.alarm_missing")
        rows.append([role_name(v, d["role"]), d["serial"], d["hw_id"] or "—", fw_text, alarm])
    sec.append(("report.devices", _grid([t("col.role"), t("col.serial"), t("col.device_id"), t("col.firmware"),
                                         t("col.test_alarm")], rows)))
    falls = fall_sensors(inst)
    if falls:
        sec.append(("report.placement", _grid(
            [t("col.serial"), t("report.placement.checklist"), t("report.placement.reported"),
             t("report.placement.result")],
            [[d["serial"], placement_name(v, answer) if answer else t("report.missing"),
              "—" if c is None or c["reported"] is None else detector_name(v, c["reported"]),
              t(f"report.placement.{c['status'] if c else 'no_alarm'}")] for d, answer, c in falls])))
    consent = inst.get("consent") or {}
    sec.append(("report.consent", _kv([
        (t("report.basis"), t(f"consent.kind.{consent['kind']}") if consent.get("kind") else "—"),
        (t("consent.ref"), consent.get("ref") or "—"), (t("consent.date"), t.date_text(consent.get("date")))])))
    routing = inst.get("routing") or {}
    esc = routing.get("escalation_s") or []
    chain = [["1", t("report.route.centre"), str(routing.get("response_centre", "—")), t("report.route.now")]]
    steps = [(t("report.route.staff"), str(routing.get("staff_group", "—")))] + [
        (t("report.route.relative"), str(r.get("relation", "?"))) for r in routing.get("relatives", [])]
    for i, (who, rec) in enumerate(steps):
        when = t("report.route.after", s=f"{esc[i]:.0f}") if i < len(esc) else "—"
        chain.append([str(i + 2), who, rec, when])
    sec.append(("report.routing", _grid([t("report.route.step"), t("report.route.who"), t("report.route.recipient"),
                                         t("report.route.when")], chain)))
    checklist = inst.get("checklist") or {}
    for d in inst["devices"]:
        if d["role"] != "gateway":
            answers = checklist.get(d["serial"], {})
            sec.append((t("report.checklist", device=device_label(v, d)),
                        _kv([(t(f"q.{q.key}"), _answer(v, answers.get(q.key))) for q in QUESTIONS])))
    body = "".join(f"<section><h2>{e(t(title) if title.startswith('report.') else title)}</h2>{html}</section>"
                   for title, html in sec)
    tools = (f'<p class="no-print actions"><button type="button" class="btn" data-print hidden>'
             f'{e(t("report.print"))}</button>'
             f'{link_button(f"/web/installations/{code}/report?download=1", t("report.download"), cls="btn btn-secondary")}'
             f'{link_button(f"/web/installations/{code}", t("form.back"), cls="btn btn-secondary")}</p>')
    title = t("report.title", code=code)
    if standalone:
        tools = ""
        head = f"<style>{asset('app.css').decode()}</style>"
    else:
        head = (f'<link rel="stylesheet" href="{asset_url("app.css")}">'
                f'<script src="{asset_url("app.js")}" defer></script>')
    return ("<!doctype html>\n"
            f'<html lang="{e(t.lang)}"><head><meta charset="utf-8">'
            '<meta name="viewport" content="width=device-width, initial-scale=1">'
            f'<title>{e(title)}</title>{head}</head>'
            f'<body class="report"><main id="main"><h1>{e(title)}</h1>{tools}{body}'
            f'<p class="muted">{e(t("report.generated", when=t.when(now), user=v.user or "—"))}</p>'
            "</main></body></html>\n")
