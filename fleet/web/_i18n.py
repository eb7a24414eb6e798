"""Bokmål and English: one catalogue per language, flat keys -> ``str.format`` templates.

The catalogues are ``i18n/nb.json`` and ``i18n/en.json``; every string a page shows comes from
them (``fleet/tests/test_web.py`` checks that both have the same keys and placeholders and that
every key the code uses exists). The language of a request: ``?lang=`` (then remembered in a
cookie) > the cookie > ``Accept-Language`` > bokmål. Times a person reads are in Europe/Oslo.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime, timezone, tzinfo
from functools import lru_cache
from pathlib import Path
from typing import Any

LANGS = ("nb", "en")
DEFAULT_LANG = "nb"
# Norwegian in any written form reads bokmål; every English variant reads English
_PRIMARY = {"nb": "nb", "no": "nb", "nn": "nb", "en": "en"}
CATALOGUE_DIR = Path(__file__).resolve().parent / "i18n"


@lru_cache(maxsize=None)
def catalogue(lang: str) -> dict[str, str]:
    if lang not in LANGS:
        raise KeyError(f"no catalogue for language {lang!r}; languages: {', '.join(LANGS)}")
    return json.loads((CATALOGUE_DIR / f"{lang}.json").read_text(encoding="utf-8"))


def negotiate(accept_language: str | None) -> str | None:
    """The best of :data:`LANGS` for an ``Accept-Language`` header (q-values honoured), or None."""
    best: tuple[float, int, str] | None = None
    for pos, part in enumerate((accept_language or "").split(",")[:20]):
        tag, _, params = part.strip().partition(";")
        q = 1.0
        for p in params.split(";"):
            k, _, v = p.strip().partition("=")
            if k == "q":
                try:
                    q = float(v)
                except ValueError:
                    q = 0.0
        lang = _PRIMARY.get(tag.strip().lower().split("-")[0])
        if lang and q > 0 and (best is None or (q, -pos) > (best[0], best[1])):
            best = (q, -pos, lang)
    return best[2] if best else None


def pick(query: str | None, cookie: str | None, accept_language: str | None) -> str:
    for candidate in (query, cookie):
        if candidate in LANGS:
            return candidate  # type: ignore[return-value]
    return negotiate(accept_language) or DEFAULT_LANG


@lru_cache(maxsize=1)
def oslo() -> tzinfo:
    try:
        from zoneinfo import ZoneInfo

        return ZoneInfo("Europe/Oslo")
    except Exception:            # noqa: BLE001 - no zone database: UTC, and the format says so
        return timezone.utc


@dataclass(frozen=True)
class Translator:
    lang: str

    def __call__(self, key: str, **values: Any) -> str:
        text = catalogue(self.lang)[key]
        return text.format(**values) if values else text

    def maybe(self, key: str, default: str) -> str:
        """A catalogue entry that may not exist (a device role or status the catalogue does not know yet)."""
        return catalogue(self.lang).get(key, default)

    def other(self) -> str:
        """The language the switch offers."""
        return "en" if self.lang == "nb" else "nb"

    # -- times, in Europe/Oslo ---------------------------------------------------------
    def when(self, ts: float | None) -> str:
        """Date and time: ``17.11.2026 kl. 14:03`` / ``2026-11-17 14:03``."""
        if ts is None:
            return "—"
        d = datetime.fromtimestamp(ts, tz=oslo())
        return self("fmt.datetime", date=self.day(ts), time=d.strftime("%H:%M"))

    def clock(self, ts: float | None) -> str:
        """Time of day with seconds: ``14:03:12``."""
        return "—" if ts is None else datetime.fromtimestamp(ts, tz=oslo()).strftime("%H:%M:%S")

    def day(self, ts: float) -> str:
        d = datetime.fromtimestamp(ts, tz=oslo())
        return d.strftime("%d.%m.%Y") if self.lang == "nb" else d.strftime("%Y-%m-%d")

    def date_text(self, iso: str | None) -> str:
        """A stored ``YYYY-MM-DD`` as the reader writes dates (``20.11.2026`` in bokmål)."""
        if not iso:
            return "—"
        y, _, rest = iso.partition("-")
        m, _, d = rest.partition("-")
        return f"{d}.{m}.{y}" if self.lang == "nb" and d else iso

    def iso_day(self, ts: float) -> str:
        """``YYYY-MM-DD`` in Oslo (an ``<input type=date>`` value)."""
        return datetime.fromtimestamp(ts, tz=oslo()).strftime("%Y-%m-%d")
