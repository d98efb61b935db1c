"""Translations: every text a person reads, in English or Simplified Chinese, from one gettext catalog.

* **Where texts are written, they are marked**: ``_("...")`` translates now (in the language of the run at hand),
  ``N_("...")`` only marks a text that is defined once at import time (a KPI's definition, a tag's rule) and is
  translated where it is shown, with ``_(text)``. ``ngettext`` chooses the plural form (Chinese has one).
  ``pybabel extract`` collects the marked texts (``babel.cfg``, ``python -m analytics.i18n extract``).
* **The catalog** is ``locale/zh_CN/LC_MESSAGES/*.po`` in the repository (``memberlens.po`` for the shell, one
  file per part of the product), merged and compiled in memory the first time a language is used (no build step
  anyone must remember, nothing written to disk). English is the source language: its "translation" is the text
  itself.
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


def catalog_files(lang: str) -> list[Path]:
    """The catalog files of ``lang``: ``memberlens.po`` (the shell) first, then one per part of the product
    (``kpis.po``, ``marketing.po`` ...), so each part's texts are kept, reviewed and merged apart."""
    folder = LOCALE_DIR / lang / "LC_MESSAGES"
    if not folder.is_dir():
        return []
    return sorted(folder.glob("*.po"), key=lambda p: (p.stem != DOMAIN, p.name))


def read_catalog(lang: str):  # -> babel.messages.catalog.Catalog
    """Every catalog file of ``lang`` merged into one Babel catalog (the first translation of a text wins; the
    completeness test insists they agree)."""
    from babel.messages.catalog import Catalog
    from babel.messages.pofile import read_po

    merged = Catalog(locale=lang, domain=DOMAIN)
    for po in catalog_files(lang):
        with po.open("rb") as handle:
            part = read_po(handle, locale=lang)
        for message in part:
            if message.id and message.id not in merged:
                merged[message.id] = message
    return merged


@cache
def translations(lang: str) -> gettext.NullTranslations:
    """The compiled catalog of ``lang`` (English: none needed). A missing catalog falls back to English rather
    than failing: the completeness test is what guards the catalog."""
    if lang == DEFAULT_LANGUAGE or not catalog_files(lang):
        return gettext.NullTranslations()
    from babel.messages.mofile import write_mo

    compiled = io.BytesIO()
    write_mo(compiled, read_catalog(lang), use_fuzzy=False)
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
    """A date in the run's language: ``15 Nov 2026`` / ``2026年11月15日`` (``long``), without the year where the
    year is said next to it (``short_same_year``: ``15 Nov`` / ``11月15日``), or ``2026-11-15`` (``iso``)."""
    if length == "iso":
        return day.isoformat()
    lang = LANGUAGE.get()
    if lang == DEFAULT_LANGUAGE:
        return day.strftime("%-d %b" if length == "short_same_year" else "%-d %b %Y")
    return format_date(day, format="M月d日" if length == "short_same_year" else "long", locale=lang)


#: Codes the warehouse contract defines (channels, tiers, event types, statuses, campaign types, devices, traffic
#: sources, points reasons, arms, genders), by code, with the words a reader sees. Data values that are names
#: (products, categories, regions, cities) are shown as stored and are not here.
CODE_LABELS: dict[str, str] = {
    "app": N_("App"), "live_stream": N_("Live stream"), "mini_program": N_("Mini program"), "web": N_("Web"),
    "basic": N_("Basic"), "silver": N_("Silver"), "gold": N_("Gold"), "diamond": N_("Diamond"),
    "add_to_cart": N_("Add to cart"), "checkout": N_("Checkout"), "page_view": N_("Page view"),
    "product_view": N_("Product view"), "purchase": N_("Purchase"), "search": N_("Search"),
    "session_start": N_("Session start"),
    "cancelled": N_("Cancelled"), "completed": N_("Completed"), "returned": N_("Returned"),
    "birthday": N_("Birthday"), "coupon": N_("Coupon"), "flash_sale": N_("Flash sale"),
    "full_reduction": N_("Full reduction"), "member_day": N_("Member day"), "win_back": N_("Win back"),
    "email": N_("Email"), "push": N_("Push"), "sms": N_("SMS"),
    "android": N_("Android"), "harmonyos": N_("HarmonyOS"), "ios": N_("iOS"),
    "direct": N_("Direct"), "organic_search": N_("Organic search"), "paid_search": N_("Paid search"),
    "referral": N_("Referral"), "social": N_("Social"), "app_store": N_("App store"),
    "offline_store": N_("Offline store"), "social_media": N_("Social media"),
    "bonus": N_("Bonus"), "earn": N_("Earn"), "expire": N_("Expire"), "redeem": N_("Redeem"),
    "control": N_("Control"), "treatment": N_("Treatment"), "female": N_("Female"), "male": N_("Male"),
}


def code_label(code: str) -> str:
    """A warehouse code as a reader writes it, in the run's language: ``mini_program`` -> ``Mini program`` /
    ``小程序``. A code the contract does not list reads as itself with spaces (``new_code`` -> ``New code``)."""
    known = CODE_LABELS.get(code)
    return _(known) if known else code.replace("_", " ").capitalize()


def translated(lang: str, message: str) -> str:
    """``message`` in ``lang``, whatever the run's language (texts fixed once per language, such as spinners)."""
    with using(lang):
        return _(message)


#: How texts are marked for the catalog (Babel's keyword specifications): the translation functions here, and
#: ``ui.cached``'s decorators, whose first argument is the spinner shown while a result is computed.
KEYWORDS: dict[str, object] = {"_": None, "N_": None, "ngettext": (1, 2), "pgettext": ((1, "c"), 2),
                               "cached": None, "shared": None}
#: Where texts are marked: the app, its pages and the analytics (not tests, benchmarks or tools).
SOURCE_DIRS = ("analytics", "ui", "pages")
SOURCE_FILES = ("app.py",)


def marked_texts(root: Path = LOCALE_DIR.parent) -> dict[str, list[str]]:
    """Every text marked for translation in the sources, with where it is marked (``file:line``): what
    ``pybabel extract -F babel.cfg`` collects, read without writing a template."""
    from babel.messages.extract import extract_from_file

    found: dict[str, list[str]] = {}
    files = [root / f for f in SOURCE_FILES] + [p for d in SOURCE_DIRS for p in sorted((root / d).rglob("*.py"))]
    for path in files:
        for line, message, _comments, _context in extract_from_file("python", str(path), keywords=KEYWORDS):
            ids = message if isinstance(message, tuple) else (message,)
            for text in ids:
                if text:
                    found.setdefault(text, []).append(f"{path.relative_to(root)}:{line}")
    return found


def untranslated(lang: str = "zh_CN", prefix: str = "") -> dict[str, list[str]]:
    """The marked texts (in files under ``prefix``) that ``lang``'s catalog does not translate yet."""
    catalog = read_catalog(lang)
    missing = {}
    for text, places in marked_texts().items():
        message = catalog.get(text)
        lacking = message is None or not message.string or message.fuzzy
        if lacking and any(place.startswith(prefix) for place in places):
            missing[text] = places
    return missing


def _main(argv: list[str] | None = None) -> int:
    """``python -m analytics.i18n missing [PREFIX]``: the texts still to translate, as .po entries to fill in."""
    import sys

    args = sys.argv[1:] if argv is None else argv
    if not args or args[0] != "missing":
        print("usage: python -m analytics.i18n missing [PATH_PREFIX]", file=sys.stderr)
        return 2
    for text, places in untranslated("zh_CN", args[1] if len(args) > 1 else "").items():
        print(f"#: {' '.join(places)}")
        escaped = text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
        print(f'msgid "{escaped}"\nmsgstr ""\n')
    return 0


if __name__ == "__main__":
    raise SystemExit(_main())
