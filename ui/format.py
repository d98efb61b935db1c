"""How numbers look in the UI: currency, counts, shares and their changes."""

from __future__ import annotations

import math
import re

from analytics.kpis import KpiValue
from analytics.programme import CURRENCY_SYMBOL

#: The theme's primary colour (.streamlit/config.toml), used for single-series charts.
ACCENT = "#C2185B"


def _missing(value: float | None) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def compact(value: float, decimals: int = 1) -> str:
    """1234567 -> 1.2M; keeps small numbers exact with thousands separators."""
    magnitude = abs(value)
    for threshold, suffix in ((1e9, "B"), (1e6, "M"), (1e4, "K")):
        if magnitude >= threshold:
            return f"{value / threshold:,.{decimals}f}{suffix}"
    return f"{value:,.0f}" if float(value).is_integer() else f"{value:,.2f}"


def format_value(value: float | None, unit: str) -> str:
    if _missing(value):
        return "–"
    if unit == "currency":
        return f"{CURRENCY_SYMBOL}{compact(value) if abs(value) >= 1e4 else f'{value:,.2f}'}"
    if unit == "ratio":
        return f"{value:.1%}"
    if unit == "points":
        return compact(value)
    return compact(value) if abs(value) >= 1e6 else f"{value:,.0f}"


def label(value: str) -> str:
    """A warehouse code as a reader would write it: ``mini_program`` -> ``Mini program``."""
    return value.replace("_", " ").capitalize()


def format_change(kpi: KpiValue) -> str | None:
    """Change against the previous period: percentage points for ratios, percent otherwise."""
    if kpi.definition.is_ratio:
        return None if kpi.change is None else f"{kpi.change * 100:+.1f} pp"
    if kpi.change_pct is None:
        return None if kpi.change is None or kpi.change == 0 else "new"
    return f"{kpi.change_pct:+.1%}"


_MARKDOWN_SPECIAL = re.compile(r"([\\`*_{}\[\]()#+\-.!<>|~$:])")


def plain_text(text: str) -> str:
    """``text`` escaped for Streamlit Markdown, so text a user typed (or a link carried) shows as typed and
    never turns into a link, formatting or an icon."""
    return _MARKDOWN_SPECIAL.sub(r"\\\1", text)
