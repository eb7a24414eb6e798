"""Pages: log in, today's jobs, one installation (the steps), error pages. Pure rendering."""
from __future__ import annotations

from typing import Any

from ..installations import missing_answers
from ._html import View, button, e, error_summary, field, form, link_button, notice, page

# ?saved=<key> after a successful post (Post/Redirect/Get): only these keys are shown
SAVED = ("checklist", "consent", "completed", "deinstalled", "started")


def role_name(v: View, role: str) -> str:
    return v.t.maybe(f"role.{role}", role)


def status_name(v: View, status: str) -> str:
    return v.t.maybe(f"status.{status}", status)


def device_label(v: View, d: dict[str, Any]) -> str:
    return f"{role_name(v, d['role'])} {d['serial']}"


def login_page(v: View, *, user: str = "", error: str | None = None, next_url: str = "/web/jobs") -> str:
    t = v.t
    errors = [("user", error)] if error else []
    inner = (error_summary(t, errors)
             + field("user", t("login.user"), user, required=True, autocomplete="username", autocapitalize="none",
                     spellcheck="false")
             + field("password", t("login.password"), type="password", required=True,
                     autocomplete="current-password")
             + f'<input type="hidden" name="next" value="{e(next_url)}">'
             + button(t("login.submit")))
    body = f'<p>{e(t("login.intro"))}</p>' + form("/web/login", inner, v, cls="stack")
    return page(v, t("login.title"), body)


def jobs_page(v: View, jobs: list[dict[str, Any]], *, today: float, code_error: str | None = None,
              code: str = "") -> str:
    t = v.t
    items = []
    for j in jobs:
        items.append(
            f'<li><a class="card" href="/web/installations/{e(j["code"])}">'
            f'<span class="card-title">{e(j["code"])}</span>'
            f'<span>{e(t("jobs.where", location=j["location"] or "—", kit=j["kit"] or "—"))}</span>'
            f'<span class="muted">{e(t("jobs.changed", when=t.when(j["updated_at"])))}</span></a></li>')
    listing = f'<ul class="cards">{"".join(items)}</ul>' if items else f'<p>{e(t("jobs.none"))}</p>'
    lookup = form("/web/installations", field("code", t("jobs.lookup.label"), code, hint=t("jobs.lookup.hint"),
                                              error=code_error, required=True, autocapitalize="characters",
                                              spellcheck="false")
                  + button(t("jobs.lookup.submit"), cls="btn btn-secondary"), v, method="get", cls="stack")
    body = (f'<p class="muted">{e(t("jobs.today", day=t.day(today)))}</p>'
            f'<section aria-labelledby="h-open"><h2 id="h-open">{e(t("jobs.open", n=len(jobs)))}</h2>{listing}</section>'
            f'<section aria-labelledby="h-find"><h2 id="h-find">{e(t("jobs.lookup.title"))}</h2>{lookup}</section>')
    return page(v, t("jobs.title"), body)


def _step(n: int, title: str, done: bool, body: str, v: View) -> str:
    mark = v.t("step.done") if done else v.t("step.todo")
    cls = "step done" if done else "step"
    return (f'<li class="{cls}"><h2><span class="step-n">{n}</span> {e(title)} '
            f'<span class="tag {"tag-ok" if done else "tag-todo"}">{e(mark)}</span></h2>{body}</li>')


def overview_page(v: View, inst: dict[str, Any], saved: str | None, returned_to: str | None = None) -> str:
    t = v.t
    code, status = inst["code"], inst["status"]
    base = f"/web/installations/{code}"
    sensors = [d for d in inst["devices"] if d["role"] != "gateway"]
    seen = {a["device_id"] for a in inst["test_alarms"]}
    open_ = status == "commissioning"
    parts = []
    if saved in SAVED:
        parts.append(notice(t(f"saved.{saved}"), "ok"))
    if saved == "deinstalled" and returned_to:
        parts.append(f'<p>{e(t("deinstall.returned_to", place=returned_to))}</p>')
    parts.append(f'<p class="meta"><span class="tag tag-status">{e(status_name(v, status))}</span> '
                 f'{e(t("inst.where", location=inst["location"] or "—", kit=inst["kit"] or "—"))}</p>')
    steps = []
    if "checklist" in inst:
        todo = missing_answers(inst.get("checklist") or {}, {d["serial"]: d["role"] for d in sensors})
        rows = []
        for d in sensors:
            miss = todo.get(d["serial"], [])
            state = t("checklist.complete") if not miss else t("checklist.missing", n=len(miss))
            label = f'{device_label(v, d)} — {state}'
            rows.append(f'<li><a class="row-link" href="{base}/checklist/{e(d["serial"])}">{e(label)}</a></li>'
                        if open_ else f"<li>{e(label)}</li>")
        steps.append(_step(1, t("step.checklist"), not todo, f'<ul class="rows">{"".join(rows)}</ul>', v))
        consent = inst.get("consent")
        text = (t("consent.recorded", kind=t(f"consent.kind.{consent['kind']}"), date=t.date_text(consent["date"]))
                if consent else t("consent.none"))
        link = link_button(f"{base}/consent", t("consent.edit"), cls="btn btn-secondary") if open_ else ""
        steps.append(_step(2, t("step.consent"), bool(consent), f"<p>{e(text)}</p>{link}", v))
    else:
        steps.append(_step(1, t("step.checklist"), False, f'<p>{e(t("personal.no_access"))}</p>', v))
    n_seen = sum(1 for d in sensors if d["hw_id"] in seen)
    body = f'<p>{e(t("commission.progress", seen=n_seen, total=len(sensors)))}</p>'
    if open_:
        body += form(f"{base}/commissioning/start", button(t("commission.start")), v)
    steps.append(_step(3, t("step.commissioning"), status != "commissioning" and n_seen == len(sensors), body, v))
    if status == "commissioning":
        done_body = f'<p>{e(t("complete.where"))}</p>'
    else:
        done_body = f'<p>{e(t("complete.done_at", when=t.when(inst["commissioned_at"])))}</p>' \
            if inst["commissioned_at"] else ""
    steps.append(_step(4, t("step.complete"), status != "commissioning" and bool(inst["commissioned_at"]),
                       done_body, v))
    report = link_button(f"{base}/report", t("report.open"), cls="btn btn-secondary")
    steps.append(_step(5, t("step.report"), status == "active", report, v))
    parts.append(f'<ol class="steps">{"".join(steps)}</ol>')
    parts.append(_devices_section(v, inst))
    if status in ("commissioning", "active"):
        parts.append(f'<section aria-labelledby="h-end"><h2 id="h-end">{e(t("deinstall.title"))}</h2>'
                     f'<p>{e(t("deinstall.intro"))}</p>'
                     f'{link_button(f"{base}/deinstall", t("deinstall.open"), cls="btn btn-danger")}</section>')
    elif status in ("deinstalled", "purged"):
        parts.append(notice(t("deinstall.done", when=t.when(inst["deinstalled_at"]),
                              purge=t.when(inst["purge_due_at"])), "info"))
    return page(v, t("inst.title", code=code), "".join(parts))


def _devices_section(v: View, inst: dict[str, Any]) -> str:
    t = v.t
    rows = "".join(
        f"<tr><td>{e(role_name(v, d['role']))}</td><td>{e(d['serial'])}</td><td>{e(d['hw_id'] or '—')}</td>"
        f"<td>{e(t.maybe('item.' + d['state'], d['state']))}</td></tr>" for d in inst["devices"])
    ref = inst.get("resident_ref")
    facts = [(t("inst.gateway"), inst["gateway_id"] or "—"), (t("inst.municipality"), inst["municipality"])]
    if ref:
        facts.append((t("inst.resident"), ref))
    facts.append((t("inst.created"), t("inst.created_by", when=t.when(inst["created_at"]), user=inst["created_by"])))
    dl = "".join(f"<dt>{e(k)}</dt><dd>{e(val)}</dd>" for k, val in facts)
    return (f'<section aria-labelledby="h-dev"><h2 id="h-dev">{e(t("inst.devices"))}</h2>'
            f'<div class="table-wrap"><table><thead><tr><th scope="col">{e(t("col.role"))}</th>'
            f'<th scope="col">{e(t("col.serial"))}</th><th scope="col">{e(t("col.device_id"))}</th>'
            f'<th scope="col">{e(t("col.state"))}</th></tr></thead><tbody>{rows}</tbody></table></div>'
            f"<dl class=\"facts\">{dl}</dl></section>")


def error_page(v: View, status: int, detail: str, *, back: str | None = None, hint: str | None = None) -> str:
    """``hint`` None: the status's own hint from the catalogue; "" for none."""
    t = v.t
    title = t.maybe(f"error.{status}", t("error.other"))
    hint = t.maybe(f"error.{status}.hint", "") if hint is None else hint
    body = f'<p class="lead">{e(detail)}</p>' + (f"<p>{e(hint)}</p>" if hint else "")
    body += link_button(back or "/web/jobs", t("error.back"), cls="btn btn-secondary")
    return page(v, title, body)
