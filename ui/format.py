"""How numbers look in the UI: money, counts, points, shares and their changes, in the reader's locale.

Every figure a page shows goes through one of these functions, so a figure reads the same on every page.
Numbers are formatted by Babel (the CLDR's rules: grouping, decimal signs, compact units), in the locale of
the session (:data:`LOCALE`; English by default):

* **compact** notation keeps three or four significant figures: ``12,345`` reads ``12.3K`` in English
  (K = thousand, M = million, B = billion, T = trillion) and ``1.2万`` in Chinese (万 = 10⁴, 亿 = 10⁸).
  It promises the value to within half a unit of its last digit (``12.3K``: within 50).
* **money** is exact to the cent below 10,000 (``¥1,234.50``) and compact from there (``¥12.3K``); the sign
  goes before the currency symbol (``-¥12.3K``).
* **counts** are whole numbers with grouping, compact from a million; **points** are compact from 10,000.
* **shares** are percentages with one decimal; **changes** are signed percentages, or percentage points
  (``+1.2 pp``) for ratios.
"""

from __future__ import annotations

import decimal
import math
import re
from contextvars import ContextVar
from functools import lru_cache

from babel import Locale
from babel.numbers import format_compact_decimal, format_decimal, format_percent

from analytics.i18n import LANGUAGE, _, code_label
from analytics.kpis import KpiValue
from analytics.programme import CURRENCY_SYMBOL

#: The theme's primary colour (.streamlit/config.toml), used for single-series charts.
ACCENT = "#C2185B"

#: The locale figures are written in, for the script run at hand: the run's language (each Streamlit session runs
#: in its own thread, so one session's choice never leaks into another's). Babel's names: ``en``, ``zh_CN``.
LOCALE: ContextVar[str] = LANGUAGE

#: Shown for a missing figure (no value, not zero).
MISSING = "—"
#: Money below this is written to the cent; from here on, compact.
MONEY_COMPACT_FROM = 10_000
#: Counts below this are written in full; from here on, compact.
COUNT_COMPACT_FROM = 1_000_000
#: Points below this are written in full; from here on, compact.
POINTS_COMPACT_FROM = 10_000


def _missing(value: float | None) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def _locale(locale: str | None) -> str:
    return locale or LOCALE.get()


@lru_cache(maxsize=8)
def _units(locale: str) -> tuple[tuple[int, int], ...]:
    """The compact units of a locale as ``(magnitude, divisor)``, largest first: where a pattern starts, and
    what the number is divided by there (``100000: 000K`` -> divide by 1,000)."""
    patterns = Locale.parse(locale).compact_decimal_formats["short"]["other"]
    units = []
    for magnitude, pattern in patterns.items():
        zeros = pattern.pattern.count("0")
        if pattern.pattern != "0":
            units.append((int(magnitude), int(magnitude) // 10 ** (zeros - 1)))
    return tuple(sorted(units, reverse=True))


def compact(value: float, decimals: int = 1, locale: str | None = None) -> str:
    """``value`` in compact notation with at most ``decimals`` decimals: 12345 -> ``12.3K`` (``1.2万`` in
    Chinese); below the locale's first unit, the number itself, grouped (with at most ``decimals`` decimals).

    Babel picks the unit from the unrounded value, so 999,950 would read ``1000K``; the value is rounded in its
    unit first and formatted again, which moves it to the next unit (``1M``).
    """
    loc = _locale(locale)
    rounded = round(float(value), decimals)  # 999.95 -> 1000.0: already in the first unit
    for magnitude, divisor in _units(loc):
        if abs(rounded) >= magnitude:
            step = decimal.Decimal(divisor).scaleb(-decimals)
            rounded = float((decimal.Decimal(repr(float(value))) / step).quantize(0, decimal.ROUND_HALF_EVEN) * step)
            break
    text = format_compact_decimal(rounded, format_type="short", locale=loc, fraction_digits=decimals)
    if abs(rounded) < min(m for m, _ in _units(loc)):  # Babel leaves small numbers ungrouped in some locales
        text = format_decimal(round(rounded, decimals), f"#,##0.{'#' * decimals}" if decimals else "#,##0",
                              locale=loc)
    return _no_negative_zero(text)


def _no_negative_zero(text: str) -> str:
    return text[1:] if text.startswith("-") and not re.search(r"[1-9]", text) else text


def money(value: float | None, locale: str | None = None, symbol: str = CURRENCY_SYMBOL) -> str:
    """An amount in the shop currency: ``¥1,234.50``, ``¥12.3K``, ``-¥12.3K``."""
    if _missing(value):
        return MISSING
    loc = _locale(locale)
    number = (compact(abs(value), locale=loc) if abs(value) >= MONEY_COMPACT_FROM
              else format_decimal(round(abs(value), 2), "#,##0.00", locale=loc))
    sign = "-" if value < 0 and re.search(r"[1-9]", number) else ""
    return f"{sign}{symbol}{number}"


def _whole(value: float | None, compact_from: float, locale: str | None) -> str:
    if _missing(value):
        return MISSING
    if abs(value) >= compact_from:
        return compact(value, locale=locale)
    return _no_negative_zero(format_decimal(round(value), "#,##0", locale=_locale(locale)))


def count(value: float | None, locale: str | None = None) -> str:
    """A count of things: ``12,345``, ``1.2M``."""
    return _whole(value, COUNT_COMPACT_FROM, locale)


def exact_count(value: float | None, locale: str | None = None) -> str:
    """A count written in full, never compact, for sizes a reader acts on (an audience of ``1,234,567``)."""
    return _whole(value, math.inf, locale)


def points(value: float | None, locale: str | None = None) -> str:
    """A number of loyalty points: ``9,876``, ``12.3K``."""
    return _whole(value, POINTS_COMPACT_FROM, locale)


def share(value: float | None, decimals: int = 1, locale: str | None = None) -> str:
    """A share as a percentage: ``12.3%``."""
    if _missing(value):
        return MISSING
    pattern = f"#,##0.{'0' * decimals}%" if decimals else "#,##0%"
    return _no_negative_zero(format_percent(value, pattern, locale=_locale(locale)))


def _signed(number: str) -> str:
    """A formatted change with its sign: ``+`` before a positive one; none before one that reads as zero."""
    return number if number.startswith("-") or reads_as_zero(number) else f"+{number}"


def reads_as_zero(text: str | None) -> bool:
    """Whether a formatted figure shows no change at all (``0.0 pp``, ``0.0%``, ``0``: no digit but zeros)."""
    return text is not None and re.search(r"[1-9]", text) is None


def change_pct(value: float | None, decimals: int = 1, locale: str | None = None) -> str | None:
    """A relative change, signed: ``+12.3%``, ``-4.0%``, ``0.0%`` when it rounds to nothing; None when there is
    none."""
    if _missing(value):
        return None
    return _signed(share(value, decimals, locale))


def change_pp(value: float | None, decimals: int = 1, locale: str | None = None) -> str | None:
    """A change of a ratio in percentage points, signed: ``+1.2 pp``, ``0.0 pp`` when it rounds to nothing; None
    when there is none."""
    if _missing(value):
        return None
    number = _no_negative_zero(format_decimal(round(value * 100, decimals),
                                              f"#,##0.{'0' * decimals}" if decimals else "#,##0",
                                              locale=_locale(locale)))
    return f"{_signed(number)} pp"


def delta_style(shown: str | None, *, significant: bool | None = None, good: str | None = "up") -> dict[str, str]:
    """How ``st.metric`` draws a change already formatted as ``shown``: keyword arguments ``delta_color`` and
    ``delta_arrow``, to pass with ``delta=shown``.

    Neutral (grey, no arrow) when the change reads as zero (``0.0 pp``: Streamlit would draw a green up-arrow for any
    text that does not start with a minus) or is known not to be significant (``significant=False``). Otherwise the
    arrow follows the sign and the colour says whether that is good news: ``good="up"`` (more is better: green up),
    ``"down"`` (less is better: a fall is green) or None (neither: grey)."""
    if shown is None:
        return {}
    if reads_as_zero(shown) or significant is False:
        return {"delta_color": "off", "delta_arrow": "off"}
    colour = {"up": "normal", "down": "inverse"}.get(good or "", "off")
    return {"delta_color": colour, "delta_arrow": "auto"}


def times(value: float | None, decimals: int = 1, locale: str | None = None) -> str:
    """A ratio of two amounts as a multiple: ``3.9×``."""
    if _missing(value):
        return MISSING
    number = format_decimal(round(value, decimals), f"#,##0.{'0' * decimals}" if decimals else "#,##0",
                            locale=_locale(locale))
    return f"{_no_negative_zero(number)}×"


def format_value(value: float | None, unit: str, locale: str | None = None) -> str:
    """A KPI's value by its unit: ``currency``, ``ratio``, ``points`` or ``count``."""
    if unit == "currency":
        return money(value, locale)
    if unit == "ratio":
        return share(value, locale=locale)
    if unit == "points":
        return points(value, locale)
    return count(value, locale)


def label(value: str) -> str:
    """A warehouse code as a reader would write it, in the session's language: ``mini_program`` -> ``Mini program``
    (``小程序``)."""
    return code_label(value)


def kpi_delta(kpi: KpiValue, *, good: str | None = "up", significant: bool | None = None) -> dict[str, str | None]:
    """``st.metric`` keyword arguments for a KPI's change: ``delta`` (:func:`format_change`) with its
    :func:`delta_style` (a change of 0.0 pp, or one known not to be significant, is neutral)."""
    shown = format_change(kpi)
    return {"delta": shown, **delta_style(shown, significant=significant, good=good)}


def format_change(kpi: KpiValue) -> str | None:
    """Change against the previous period: percentage points for ratios, percent otherwise; ``new`` when
    there was nothing before."""
    if kpi.definition.is_ratio:
        return change_pp(kpi.change)
    if kpi.change_pct is None:
        return None if kpi.change is None or kpi.change == 0 else _("new")
    return change_pct(kpi.change_pct)


_MARKDOWN_SPECIAL = re.compile(r"([\\`*_{}\[\]()#+\-.!<>|~$:])")


def plain_text(text: str) -> str:
    """``text`` escaped for Streamlit Markdown, so text a user typed (or a link carried) shows as typed and
    never turns into a link, formatting or an icon."""
    return _MARKDOWN_SPECIAL.sub(r"\\\1", text)
