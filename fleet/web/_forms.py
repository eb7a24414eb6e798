"""Forms: the checklist of one device (the national guidance's questions), consent, deinstall.

Each form renders from the stored values or from what was posted (so a refused post keeps the
technician's typing), and each has a parser that turns the posted fields into what the
installation service takes. The service validates again; its refusal names the field.
"""
from __future__ import annotations

import re
from typing import Any, Sequence

from ..installations import QUESTIONS
from ._html import View, button, checkbox, e, error_summary, field, form, hidden, link_button, page, radios, select
from ._views import device_label

Form = dict[str, list[str]]
Errors = list[tuple[str | None, str]]
_WINDOW = re.compile(r"^([01]\d|2[0-3]):[0-5]\d-([01]\d|2[0-3]):[0-5]\d$")


def first(form: Form, name: str) -> str:
    return (form.get(name) or [""])[0].strip()


# -- checklist -----------------------------------------------------------------------------
def checklist_values(answers: dict[str, Any]) -> dict[str, str]:
    """Stored answers -> form field values."""
    out: dict[str, str] = {}
    for q in QUESTIONS:
        v = answers.get(q.key)
        if v is None:
            continue
        if q.kind == "settings":
            if isinstance(v, dict):
                out[f"{q.key}.window"] = str(v.get("window", ""))
                out[f"{q.key}.delay_min"] = "" if v.get("delay_min") is None else str(v.get("delay_min"))
            else:
                out[f"{q.key}.window"] = str(v)
        elif q.kind == "bool":
            out[q.key] = "yes" if v else "no"
        elif q.kind == "times":
            out[q.key] = ", ".join(v) if isinstance(v, list) else str(v)
        else:
            out[q.key] = str(v)
    return out


def parse_checklist(v: View, form: Form) -> tuple[dict[str, Any], Errors]:
    """Posted fields -> answers for the service (empty fields are left unanswered, not erased)."""
    t = v.t
    answers: dict[str, Any] = {}
    errors: Errors = []
    for q in QUESTIONS:
        if q.kind == "settings":
            window, delay = first(form, f"{q.key}.window"), first(form, f"{q.key}.delay_min")
            if not window and not delay:
                continue
            doc: dict[str, Any] = {}
            if window:
                if not _WINDOW.match(window):
                    errors.append((f"{q.key}.window", t("checklist.error.window")))
                doc["window"] = window
            if delay:
                if not delay.isdigit() or int(delay) > 24 * 60:
                    errors.append((f"{q.key}.delay_min", t("checklist.error.delay")))
                else:
                    doc["delay_min"] = int(delay)
            answers[q.key] = doc
        else:
            raw = first(form, q.key)
            if raw:
                answers[q.key] = raw
    return answers, errors


def checklist_page(v: View, inst: dict[str, Any], device: dict[str, Any], values: dict[str, str], *,
                   errors: Sequence[tuple[str | None, str]] = (), others: Sequence[dict[str, Any]] = (), apply_all: bool = False) -> str:
    t = v.t
    code = inst["code"]
    by_field = {name: msg for name, msg in errors if name}
    parts = []
    for q in QUESTIONS:
        label, hint = t(f"q.{q.key}"), t(f"q.{q.key}.hint")
        if q.kind == "settings":
            parts.append(f'<fieldset class="group"><legend>{e(label)}</legend><p class="hint">{e(hint)}</p>'
                         + field(f"{q.key}.window", t("q.technical_settings.window"), values.get(f"{q.key}.window", ""),
                                 hint=t("q.technical_settings.window.hint"), error=by_field.get(f"{q.key}.window"),
                                 inputmode="numeric", pattern=r"\d\d:\d\d-\d\d:\d\d", autocomplete="off")
                         + field(f"{q.key}.delay_min", t("q.technical_settings.delay"),
                                 values.get(f"{q.key}.delay_min", ""), type="number", min="0", max="1440",
                                 inputmode="numeric", error=by_field.get(f"{q.key}.delay_min"))
                         + "</fieldset>")
        elif q.kind == "bool":
            parts.append(radios(q.key, label, [("yes", t("answer.yes")), ("no", t("answer.no"))], values.get(q.key),
                                hint=hint, error=by_field.get(q.key)))
        elif q.kind == "int":
            parts.append(field(q.key, label, values.get(q.key, ""), type="number", min="0", max="48",
                               inputmode="numeric", hint=hint, error=by_field.get(q.key)))
        elif q.kind == "times":
            parts.append(field(q.key, label, values.get(q.key, ""), hint=hint, error=by_field.get(q.key),
                               inputmode="numeric", autocomplete="off"))
        else:
            parts.append(field(q.key, label, values.get(q.key, ""), hint=hint, error=by_field.get(q.key),
                               multiline=True))
    if others:
        names = ", ".join(device_label(v, d) for d in others)
        parts.append(checkbox("apply_all", t("checklist.apply_all"), checked=apply_all,
                              hint=t("checklist.apply_all.hint", devices=names)))
    inner = (error_summary(t, list(errors)) + hidden("version", inst["version"]) + "".join(parts)
             + button(t("form.save")))
    body = (f'<p>{e(t("checklist.intro"))}</p>'
            + form(f"/web/installations/{code}/checklist/{device['serial']}", inner, v, cls="stack")
            + link_button(f"/web/installations/{code}", t("form.back"), cls="btn btn-secondary"))
    return page(v, t("checklist.title", device=device_label(v, device)), body)


# -- consent -------------------------------------------------------------------------------
def consent_page(v: View, inst: dict[str, Any], values: dict[str, str], *, today: str, errors: Sequence[tuple[str | None, str]] = ()) -> str:
    t = v.t
    by_field = {name: msg for name, msg in errors if name}
    inner = (error_summary(t, list(errors)) + hidden("version", inst["version"])
             + radios("kind", t("consent.kind"), [("consent", t("consent.kind.consent")),
                                                  ("capacity_assessment", t("consent.kind.capacity_assessment"))],
                      values.get("kind"), hint=t("consent.kind.hint"), error=by_field.get("kind"), required=True)
             + field("date", t("consent.date"), values.get("date") or today, type="date", required=True,
                     error=by_field.get("date"))
             + field("ref", t("consent.ref"), values.get("ref", ""), hint=t("consent.ref.hint"),
                     error=by_field.get("ref"), autocomplete="off", spellcheck="false")
             + button(t("form.save")))
    body = (f'<p>{e(t("consent.intro"))}</p>' + form(f"/web/installations/{inst['code']}/consent", inner, v, cls="stack")
            + link_button(f"/web/installations/{inst['code']}", t("form.back"), cls="btn btn-secondary"))
    return page(v, t("consent.title", code=inst["code"]), body)


def consent_values(inst: dict[str, Any]) -> dict[str, str]:
    c = inst.get("consent") or {}
    return {"kind": c.get("kind") or "", "date": c.get("date") or "", "ref": c.get("ref") or ""}


# -- deinstall -----------------------------------------------------------------------------
def deinstall_page(v: View, inst: dict[str, Any], places: list[dict[str, Any]], values: dict[str, str], *,
                   errors: Sequence[tuple[str | None, str]] = ()) -> str:
    t = v.t
    by_field = {name: msg for name, msg in errors if name}
    options = [("", t("deinstall.to.choose"))] + [
        (p["code"], f"{p['code']} — {p['name']}" if p.get("name") and p["name"] != p["code"] else p["code"])
        for p in places]
    devices = "".join(f"<li>{e(device_label(v, d))}</li>" for d in inst["devices"])
    inner = (error_summary(t, list(errors)) + hidden("version", inst["version"])
             + select("to", t("deinstall.to"), options, values.get("to"), hint=t("deinstall.to.hint"),
                      error=by_field.get("to"), required=True)
             + field("retention_days", t("deinstall.retention"), values.get("retention_days") or "30", type="number",
                     min="0", max="3650", inputmode="numeric", hint=t("deinstall.retention.hint"),
                     error=by_field.get("retention_days"), required=True)
             + checkbox("confirm", t("deinstall.confirm"), checked=values.get("confirm") == "yes",
                        error=by_field.get("confirm"), required=True)
             + button(t("deinstall.submit"), cls="btn btn-danger"))
    body = (f'<p>{e(t("deinstall.explain"))}</p><h2>{e(t("deinstall.devices"))}</h2><ul class="rows">{devices}</ul>'
            + form(f"/web/installations/{inst['code']}/deinstall", inner, v, cls="stack")
            + link_button(f"/web/installations/{inst['code']}", t("form.back"), cls="btn btn-secondary"))
    return page(v, t("deinstall.page_title", code=inst["code"]), body)


def parse_deinstall(v: View, form: Form, places: list[dict[str, Any]]) -> tuple[dict[str, Any], Errors]:
    t = v.t
    errors: Errors = []
    to = first(form, "to")
    if to not in {p["code"] for p in places}:
        errors.append(("to", t("deinstall.error.to")))
    days_raw = first(form, "retention_days") or "30"
    try:
        days = float(days_raw)
        if not 0 <= days <= 3650:
            raise ValueError
    except ValueError:
        errors.append(("retention_days", t("deinstall.error.retention")))
        days = 30.0
    if first(form, "confirm") != "yes":
        errors.append(("confirm", t("deinstall.error.confirm")))
    return {"to": to, "retention_days": days}, errors
