"""The UI's formatters: a figure read back gives the value within the rounding its format promises, with the
right sign and the right unit, in English and in Chinese."""

from __future__ import annotations

import math

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from analytics.programme import CURRENCY_SYMBOL
from tests.figures import read_figure
from ui import format as fmt

LOCALES = ("en", "zh_CN")
#: The largest unit step of each locale: a mantissa never reaches it (``1000K`` must read ``1M``).
NEXT_UNIT = {"en": 1_000, "zh_CN": 10_000}
FIRST_UNIT = {"en": 1_000, "zh_CN": 10_000}
values = st.floats(min_value=-1e12, max_value=1e12, allow_nan=False, allow_infinity=False)
# values just below a unit's boundary are where rounding carries into the next unit
boundaries = st.sampled_from([999.95, 9_999.95, 99_999.95, 999_950.0, 999_999.0, 9_999_500.0, 99_995_000.0,
                              999_950_000.0, 999_999_999.0, 99_999_999.0])


def _unit_is_right(figure, value: float, locale: str) -> bool:
    """A unit is used from the locale's first unit on, and its mantissa stays below the next unit."""
    if abs(figure.value) < FIRST_UNIT[locale] * (1 - 1e-12):
        return figure.unit == ""
    return figure.unit != "" and (1 <= figure.mantissa < NEXT_UNIT[locale] or figure.unit in ("T", "万亿"))


@pytest.mark.parametrize("locale", LOCALES)
@given(value=values | boundaries | boundaries.map(lambda v: -v))
@example(value=12_345.0).via("the defect: 12,345 read 1.2K")
@example(value=999_999.0).via("the defect: 999,999 read 100.0K")
@example(value=-0.001).via("no negative zero")
def test_compact_reads_back_within_its_rounding(locale: str, value: float) -> None:
    text = fmt.compact(value, locale=locale)
    figure = read_figure(text)
    assert figure.close_to(value), (value, text)
    assert figure.value == 0 or math.copysign(1, figure.value) == math.copysign(1, value), (value, text)
    assert _unit_is_right(figure, value, locale), (value, text)


@pytest.mark.parametrize("locale", LOCALES)
@given(value=values | boundaries)
@example(value=22_799.54).via("Member 360's M00000028: ten orders adding up to ¥22,799.54")
def test_money_reads_back_with_its_symbol(locale: str, value: float) -> None:
    text = fmt.money(value, locale=locale)
    figure = read_figure(text)
    assert figure.symbol == CURRENCY_SYMBOL.strip()
    assert figure.close_to(value), (value, text)
    if abs(value) < fmt.MONEY_COMPACT_FROM - 0.005:
        assert figure.unit == "" and len(text.split(".")[-1]) == 2, text
    else:
        assert _unit_is_right(figure, value, locale), (value, text)
    assert (text.startswith("-")) == (value < 0 and figure.value != 0), (value, text)


@pytest.mark.parametrize("locale", LOCALES)
@given(value=values)
def test_counts_and_points_read_back(locale: str, value: float) -> None:
    for formatter, compact_from in ((fmt.count, fmt.COUNT_COMPACT_FROM), (fmt.points, fmt.POINTS_COMPACT_FROM)):
        text = formatter(value, locale=locale)
        figure = read_figure(text)
        assert figure.close_to(value), (formatter.__name__, value, text)
        if abs(value) < compact_from - 0.5:
            assert figure.unit == "" and "." not in text, text


@pytest.mark.parametrize("locale", LOCALES)
@given(value=st.floats(min_value=-1e6, max_value=1e6, allow_nan=False))
def test_shares_and_changes_read_back(locale: str, value: float) -> None:
    share = read_figure(fmt.share(value, locale=locale))
    assert share.close_to(value)
    change = fmt.change_pct(value, locale=locale)
    assert read_figure(change).close_to(value)
    assert change[0] in "+-" or (fmt.reads_as_zero(change) and change[0] == "0"), change  # no sign on no change
    points = fmt.change_pp(value, locale=locale)
    assert points.endswith(" pp") and (points[0] in "+-" or (fmt.reads_as_zero(points) and points[0] == "0"))
    assert read_figure(points).close_to(value)


@pytest.mark.parametrize(("value", "pp", "pct"), [(0.0, "0.0 pp", "0.0%"), (0.0004, "0.0 pp", "0.0%"),
                                                  (-0.0004, "0.0 pp", "0.0%"), (0.0006, "+0.1 pp", "+0.1%"),
                                                  (-0.012, "-1.2 pp", "-1.2%")])
def test_a_change_that_rounds_to_nothing_has_no_sign(value: float, pp: str, pct: str) -> None:
    assert (fmt.change_pp(value, locale="en"), fmt.change_pct(value, locale="en")) == (pp, pct)


@pytest.mark.parametrize(("shown", "significant", "good", "expected"), [
    ("0.0 pp", None, "up", ("off", "off")),          # the defect: +0.0 pp drew a green up-arrow
    ("0.0%", True, "up", ("off", "off")),
    ("+1.2 pp", False, "up", ("off", "off")),        # known not to be significant: neutral
    ("-3.4%", False, "down", ("off", "off")),
    ("+1.2 pp", True, "up", ("normal", "auto")),
    ("+1.2 pp", None, "up", ("normal", "auto")),
    ("-1.2%", None, "down", ("inverse", "auto")),    # less is better (costs)
    ("+5.0%", None, None, ("off", "auto")),           # neither good nor bad (points liability)
])
def test_delta_style(shown: str, significant: bool | None, good: str | None, expected: tuple[str, str]) -> None:
    style = fmt.delta_style(shown, significant=significant, good=good)
    assert (style["delta_color"], style["delta_arrow"]) == expected
    assert fmt.delta_style(None) == {}


def test_a_kpi_without_change_is_drawn_neutral() -> None:
    from analytics.kpis import KPIS, KpiValue

    ratio = next(d for d in KPIS if d.is_ratio)
    flat = KpiValue(ratio, 0.501, 0.50098)
    assert fmt.kpi_delta(flat) == {"delta": "0.0 pp", "delta_color": "off", "delta_arrow": "off"}
    rising = KpiValue(ratio, 0.52, 0.50)
    assert fmt.kpi_delta(rising) == {"delta": "+2.0 pp", "delta_color": "normal", "delta_arrow": "auto"}


@pytest.mark.parametrize(("value", "unit", "locale", "expected"), [
    (12_345, "currency", "en", f"{CURRENCY_SYMBOL}12.3K"),
    (123_456, "currency", "en", f"{CURRENCY_SYMBOL}123.5K"),
    (999_999, "currency", "en", f"{CURRENCY_SYMBOL}1M"),
    (1_234.5, "currency", "en", f"{CURRENCY_SYMBOL}1,234.50"),
    (-12_345, "currency", "en", f"-{CURRENCY_SYMBOL}12.3K"),
    (12_345, "currency", "zh_CN", f"{CURRENCY_SYMBOL}1.2万"),
    (345_000_000, "currency", "zh_CN", f"{CURRENCY_SYMBOL}3.4亿"),
    (12_345_678, "count", "en", "12.3M"),
    (12_345, "count", "en", "12,345"),
    (12_345, "points", "en", "12.3K"),
    (0.1234, "ratio", "en", "12.3%"),
    (None, "currency", "en", fmt.MISSING),
    (float("nan"), "count", "en", fmt.MISSING),
])
def test_format_value_examples(value, unit: str, locale: str, expected: str) -> None:
    assert fmt.format_value(value, unit, locale) == expected


def test_the_session_locale_is_the_default() -> None:
    token = fmt.LOCALE.set("zh_CN")
    try:
        assert fmt.compact(12_345) == "1.2万"
    finally:
        fmt.LOCALE.reset(token)
    assert fmt.compact(12_345) == "12.3K"
