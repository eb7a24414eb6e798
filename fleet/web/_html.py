"""HTML building blocks: escaping, the page shell, accessible form fields.

Every dynamic value goes through :func:`e`; helpers return HTML strings. Each input has a
``<label>`` (or a ``<fieldset>``/``<legend>`` for radio groups), hints and errors are tied to it
with ``aria-describedby``, and an error summary links to the fields at fault. No inline script
or style (the Content-Security-Policy forbids both); the stylesheet makes every control at
least 44 px tall.
"""
from __future__ import annotations

import hashlib
import html
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Iterable, Sequence

from ._i18n import Translator

STATIC_DIR = Path(__file__).resolve().parent / "static"
# The only files /web/static/ serves (a fixed table, so no path reaches anything else)
ASSETS = {"app.css": "text/css; charset=utf-8", "app.js": "text/javascript; charset=utf-8"}


def e(value: object) -> str:
    return html.escape("" if value is None else str(value), quote=True)


@lru_cache(maxsize=None)
def asset(name: str) -> bytes:
    if name not in ASSETS:
        raise KeyError(name)
    return (STATIC_DIR / name).read_bytes()


def asset_url(name: str) -> str:
    return f"/web/static/{name}?v={hashlib.sha256(asset(name)).hexdigest()[:12]}"


@dataclass(frozen=True)
class View:
    """What every page needs: the language, who is logged in, the form token, this page's path."""

    t: Translator
    user: str | None
    csrf: str
    here: str


def _id(name: str) -> str:
    return "f-" + "".join(c if c.isalnum() else "-" for c in name)


def page(v: View, title: str, main: str, *, refresh_s: int | None = None, wide: bool = False) -> str:
    t = v.t
    other = t.other()
    nav = [f'<a href="/web/jobs">{e(t("nav.jobs"))}</a>']
    nav.append(f'<a href="{e(v.here)}?lang={other}" lang="{other}" hreflang="{other}">{e(t("lang.switch"))}</a>')
    if v.user:
        nav.append(form("/web/logout", button(t("nav.logout"), cls="btn-link"), v, cls="inline"))
    who = f'<p class="who">{e(t("nav.logged_in_as", user=v.user))}</p>' if v.user else ""
    refresh = f'<noscript><meta http-equiv="refresh" content="{int(refresh_s)}"></noscript>' if refresh_s else ""
    return (
        "<!doctype html>\n"
        f'<html lang="{e(t.lang)}"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{e(title)} – {e(t('app.name'))}</title>"
        f'<link rel="stylesheet" href="{asset_url("app.css")}">'
        f'<script src="{asset_url("app.js")}" defer></script>{refresh}</head>\n'
        f'<body><a class="skip" href="#main">{e(t("nav.skip"))}</a>'
        f'<header class="top"><a class="brand" href="/web/jobs">{e(t("app.name"))}</a>'
        f'<nav aria-label="{e(t("nav.label"))}">{"".join(nav)}</nav>{who}</header>\n'
        f'<main id="main" tabindex="-1" class="{"wide" if wide else ""}"><h1>{e(title)}</h1>\n{main}\n</main>'
        "</body></html>\n")


def form(action: str, inner: str, v: View, *, cls: str = "", method: str = "post") -> str:
    token = f'<input type="hidden" name="csrf" value="{e(v.csrf)}">' if method == "post" else ""
    return f'<form method="{method}" action="{e(action)}" class="{e(cls)}">{token}{inner}</form>'


def hidden(name: str, value: object) -> str:
    return f'<input type="hidden" name="{e(name)}" value="{e(value)}">'


def button(label: str, *, cls: str = "btn", disabled: bool = False, describedby: str | None = None,
           id: str | None = None) -> str:
    attrs = f' id="{e(id)}"' if id else ""
    attrs += " disabled" if disabled else ""
    attrs += f' aria-describedby="{e(describedby)}"' if describedby else ""
    return f'<button type="submit" class="{e(cls)}"{attrs}>{e(label)}</button>'


def link_button(href: str, label: str, *, cls: str = "btn") -> str:
    return f'<a class="{e(cls)}" href="{e(href)}">{e(label)}</a>'


def _described(name: str, hint: str | None, error: str | None) -> tuple[str, str]:
    """(the hint/error paragraphs, the aria attributes of the control)."""
    fid = _id(name)
    parts, ids = [], []
    if hint:
        parts.append(f'<p class="hint" id="{fid}-hint">{e(hint)}</p>')
        ids.append(f"{fid}-hint")
    if error:
        parts.append(f'<p class="field-error" id="{fid}-error">{e(error)}</p>')
        ids.append(f"{fid}-error")
    aria = (f' aria-describedby="{" ".join(ids)}"' if ids else "") + (' aria-invalid="true"' if error else "")
    return "".join(parts), aria


def field(name: str, label: str, value: object = "", *, type: str = "text", hint: str | None = None,
          error: str | None = None, required: bool = False, multiline: bool = False, **attrs: object) -> str:
    fid = _id(name)
    described, aria = _described(name, hint, error)
    extra = "".join(f' {k.replace("_", "-")}="{e(v)}"' for k, v in attrs.items() if v is not None)
    extra += " required" if required else ""
    if multiline:
        control = f'<textarea id="{fid}" name="{e(name)}" rows="2"{aria}{extra}>{e(value)}</textarea>'
    else:
        control = f'<input id="{fid}" name="{e(name)}" type="{e(type)}" value="{e(value)}"{aria}{extra}>'
    cls = "field has-error" if error else "field"
    return f'<div class="{cls}"><label for="{fid}">{e(label)}</label>{described}{control}</div>'


def radios(name: str, legend: str, options: Iterable[tuple[str, str]], checked: str | None, *,
           hint: str | None = None, error: str | None = None, required: bool = False) -> str:
    fid = _id(name)
    described, aria = _described(name, hint, error)
    items = []
    for i, (value, label) in enumerate(options):
        rid = f"{fid}-{i}"
        on = " checked" if checked == value else ""
        req = " required" if required else ""
        items.append(f'<div class="choice"><input type="radio" id="{rid}" name="{e(name)}" value="{e(value)}"'
                     f'{on}{req}{aria}><label for="{rid}">{e(label)}</label></div>')
    cls = "field has-error" if error else "field"
    return (f'<fieldset class="{cls}" id="{fid}"><legend>{e(legend)}</legend>{described}'
            f'<div class="choices">{"".join(items)}</div></fieldset>')


def checkbox(name: str, label: str, *, checked: bool = False, error: str | None = None, required: bool = False,
             hint: str | None = None) -> str:
    fid = _id(name)
    described, aria = _described(name, hint, error)
    on = (" checked" if checked else "") + (" required" if required else "")
    cls = "field choice has-error" if error else "field choice"
    return (f'<div class="{cls}"><input type="checkbox" id="{fid}" name="{e(name)}" value="yes"{on}{aria}>'
            f'<label for="{fid}">{e(label)}</label>{described}</div>')


def select(name: str, label: str, options: Iterable[tuple[str, str]], selected: str | None, *,
           error: str | None = None, hint: str | None = None, required: bool = False) -> str:
    fid = _id(name)
    described, aria = _described(name, hint, error)
    opts = "".join(f'<option value="{e(v)}"{" selected" if v == selected else ""}>{e(lab)}</option>'
                   for v, lab in options)
    req = " required" if required else ""
    cls = "field has-error" if error else "field"
    return (f'<div class="{cls}"><label for="{fid}">{e(label)}</label>{described}'
            f'<select id="{fid}" name="{e(name)}"{aria}{req}>{opts}</select></div>')


def notice(text: str, kind: str = "info") -> str:
    role = "alert" if kind == "error" else "status"
    return f'<div class="notice notice-{e(kind)}" role="{role}">{e(text)}</div>'


def error_summary(t: Translator, errors: Sequence[tuple[str | None, str]]) -> str:
    """Errors at the top of a form; each links to its field."""
    if not errors:
        return ""
    items = "".join(f'<li><a href="#{_id(name)}">{e(msg)}</a></li>' if name else f"<li>{e(msg)}</li>"
                    for name, msg in errors)
    return (f'<div class="error-summary" role="alert" tabindex="-1"><h2>{e(t("form.errors"))}</h2>'
            f"<ul>{items}</ul></div>")


def field_id(name: str) -> str:
    return _id(name)
