"""Translations: every text a person reads, in English or Simplified Chinese, from one gettext catalog.

* **Where texts are written, they are marked**: ``_("...")`` translates now (in the language of the run at hand),
  ``N_("...")`` only marks a text that is defined once at import time (a KPI's definition, a tag's rule) and is
  translated where it is shown, with ``_(text)``. ``ngettext`` chooses the plural form (Chinese has one).
  ``pybabel extract`` collects the marked texts (``babel.cfg``, ``python -m analytics.i18n extract``).
* **The catalog** is ``locale/zh_CN/LC_MESSAGES/memberlens.po`` in the repository, compiled in memory the first
  time a language is used (no build step anyone must remember, nothing written to disk). English is the source
  language: its "translation" is the text itself.
* **One language per run, never per process**: the language is a context variable (:data:`LANGUAGE`), set at the
  start of each Streamlit script run from the session's choice, or once by the command line from ``--lang`` or
  ``LANG``. Streamlit serves all sessions from one process, each in its own thread, so ``gettext.install()``
  (one process-wide language) would leak one user's choice into everyone's pages.
* **Numbers, money and dates** follow the same language through Babel (:mod:`ui.format` for figures,
  :func:`format_day` here for dates).
"""

from __future__ import annotations

import gettext
import io
import os
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from datetime import date
from functools import cache
from pathlib import Path

from babel.dates import format_date

#: Languages offered, by Babel locale name, with their own name for the selector.
LANGUAGES: dict[str, str] = {"en": "English", "zh_CN": "简体中文"}
DEFAULT_LANGUAGE = "en"
DOMAIN = "memberlens"
LOCALE_DIR = Path(__file__).resolve().parent.parent / "locale"

#: The language of the run at hand (a Streamlit script run, a command-line call, a test).
LANGUAGE: ContextVar[str] = ContextVar("memberlens_language", default=DEFAULT_LANGUAGE)


def language_of(tag: str | None) -> str:
    """The offered language closest to a browser or system locale tag: ``zh``, ``zh-CN``, ``zh_Hans_CN.UTF-8``,
    ``zh-TW`` -> ``zh_CN`` (the only Chinese offered); anything else -> English."""
    if not tag:
        return DEFAULT_LANGUAGE
    base = tag.replace("-", "_").split(".")[0].split("@")[0]
    if base in LANGUAGES:
        return base
    return "zh_CN" if base.lower().startswith("zh") else DEFAULT_LANGUAGE


def language() -> str:
    return LANGUAGE.get()


def set_language(lang: str) -> None:
    """Use ``lang`` (a key of :data:`LANGUAGES`, or a tag :func:`language_of` understands) for the rest of this
    run."""
    LANGUAGE.set(lang if lang in LANGUAGES else language_of(lang))


@contextmanager
def using(lang: str) -> Iterator[None]:
    """Texts in ``lang`` inside the block (tests, exports made for someone else)."""
    token = LANGUAGE.set(lang if lang in LANGUAGES else language_of(lang))
    try:
        yield
    finally:
        LANGUAGE.reset(token)


def system_language() -> str:
    """The command line's language: ``MEMBERLENS_LANG``, else the POSIX locale variables (``LC_ALL``,
    ``LC_MESSAGES``, ``LANG``)."""
    for name in ("MEMBERLENS_LANG", "LC_ALL", "LC_MESSAGES", "LANG"):
        if os.environ.get(name):
            return language_of(os.environ[name])
    return DEFAULT_LANGUAGE


@cache
def translations(lang: str) -> gettext.NullTranslations:
    """The compiled catalog of ``lang`` (English: none needed). A missing catalog falls back to English rather
    than failing: the completeness test is what guards the catalog."""
    po = LOCALE_DIR / lang / "LC_MESSAGES" / f"{DOMAIN}.po"
    if lang == DEFAULT_LANGUAGE or not po.exists():
        return gettext.NullTranslations()
    from babel.messages.mofile import write_mo
    from babel.messages.pofile import read_po

    with po.open("rb") as handle:
        catalog = read_po(handle, locale=lang)
    compiled = io.BytesIO()
    write_mo(compiled, catalog, use_fuzzy=False)
    compiled.seek(0)
    return gettext.GNUTranslations(compiled)


def _(message: str) -> str:
    """``message`` in the run's language."""
    return translations(LANGUAGE.get()).gettext(message) if message else message


def ngettext(singular: str, plural: str, n: int) -> str:
    """The singular or plural form for ``n``, in the run's language."""
    return translations(LANGUAGE.get()).ngettext(singular, plural, n)


def pgettext(context: str, message: str) -> str:
    """``message`` translated in a context, for a word that reads differently in two places."""
    return translations(LANGUAGE.get()).pgettext(context, message)


def N_(message: str) -> str:
    """Mark ``message`` for the catalog without translating it now: it is translated where it is shown."""
    return message


def format_day(day: date, length: str = "long") -> str:
    """A date in the run's language: ``15 Nov 2026`` / ``2026年11月15日`` (``long``), or ``2026-11-15`` (``iso``)."""
    if length == "iso":
        return day.isoformat()
    lang = LANGUAGE.get()
    if lang == DEFAULT_LANGUAGE:
        return day.strftime("%-d %b %Y")
    return format_date(day, format="long", locale=lang)
