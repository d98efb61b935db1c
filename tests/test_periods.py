"""Periods anchored to the data, not to today: the presets, year-over-year dates, typed ranges, links that reach
outside the data; as functions, and in the sidebar under AppTest."""

from __future__ import annotations

import tempfile
from datetime import date, timedelta

import pytest

from analytics.filters import (
    DEFAULT_PERIOD,
    PERIODS,
    Filters,
    clamp_range,
    cohort_range,
    parse_typed_range,
    period_of,
    period_range,
)
from analytics.storage.warehouse import data_span
from tests.conftest import PROJECT_ROOT

FIRST, LAST = date(2024, 11, 16), date(2026, 11, 15)


@pytest.mark.parametrize(("period", "expected"), [
    ("last_7_days", (date(2026, 11, 9), LAST)),
    ("last_30_days", (date(2026, 10, 17), LAST)),
    ("last_90_days", (date(2026, 8, 18), LAST)),
    ("this_month", (date(2026, 11, 1), LAST)),
    ("last_month", (date(2026, 10, 1), date(2026, 10, 31))),
    ("this_quarter", (date(2026, 10, 1), LAST)),
    ("last_quarter", (date(2026, 7, 1), date(2026, 9, 30))),
    ("year_to_date", (date(2026, 1, 1), LAST)),
    ("last_12_months", (date(2025, 11, 16), LAST)),
    ("all_data", (FIRST, LAST)),
])
def test_every_period_counts_back_from_the_last_day_of_data(period: str, expected: tuple[date, date]) -> None:
    assert period_range(period, FIRST, LAST) == expected
    assert period_of(*expected, FIRST, LAST, preferred=period) == period


def test_periods_never_reach_before_the_data_or_past_it() -> None:
    first, last = date(2026, 3, 20), date(2026, 4, 2)  # two weeks of data, across a quarter's end
    for period in PERIODS:
        if period == "custom":
            continue
        start, end = period_range(period, first, last)
        assert first <= start <= end <= last, period
    assert period_range("last_quarter", first, last) == (first, date(2026, 3, 31))
    assert period_range("last_month", date(2026, 4, 1), last) == (date(2026, 4, 1), date(2026, 4, 1))
    assert period_range(DEFAULT_PERIOD, FIRST, LAST) == (LAST - timedelta(days=89), LAST)
    with pytest.raises(ValueError, match="Unknown period"):
        period_range("next_year", FIRST, LAST)


def test_a_range_matching_no_preset_is_custom_and_ties_keep_the_choice() -> None:
    assert period_of(date(2026, 7, 2), date(2026, 9, 30), FIRST, LAST) == "custom"
    # on 31 March, this quarter and year to date are the same three months: the one picked stays
    first_quarter = (date(2026, 1, 1), date(2026, 3, 31))
    assert period_of(*first_quarter, FIRST, date(2026, 3, 31), preferred="year_to_date") == "year_to_date"
    assert period_of(*first_quarter, FIRST, date(2026, 3, 31), preferred="this_quarter") == "this_quarter"


def test_same_period_last_year() -> None:
    assert Filters(date(2026, 7, 1), date(2026, 9, 30)).year_ago() == Filters(date(2025, 7, 1), date(2025, 9, 30))
    leap = Filters(date(2024, 2, 1), date(2024, 2, 29), ("app",), ("gold",)).compared("year_ago")
    assert (leap.start, leap.end, leap.channels, leap.tiers) == (date(2023, 2, 1), date(2023, 2, 28), ("app",),
                                                                 ("gold",))
    with pytest.raises(ValueError, match="Unknown comparison"):
        Filters(FIRST, LAST).compared("last_week")  # type: ignore[arg-type]


@pytest.mark.parametrize(("text", "expected"), [
    ("2026-07-01 to 2026-09-30", (date(2026, 7, 1), date(2026, 9, 30))),
    ("  2026-09-30 – 2026-07-01 ", (date(2026, 7, 1), date(2026, 9, 30))),
    ("2026-7-1..2026-9-30", (date(2026, 7, 1), date(2026, 9, 30))),
    ("2026-07-01 - 2026-07-05", (date(2026, 7, 1), date(2026, 7, 5))),
    ("2026-07-01", (date(2026, 7, 1), date(2026, 7, 1))),
])
def test_typed_ranges(text: str, expected: tuple[date, date]) -> None:
    assert parse_typed_range(text) == expected


@pytest.mark.parametrize(("text", "message"), [
    ("last quarter", "is not a date range. Write dates as year-month-day"),
    ("01/07/2026", "Write dates as year-month-day"),
    ("2026-02-30", "2026-02-30 is not a date in the calendar"),
    ("2026-07-01 to soon", "is not a date range"),
    ("2026-07-01 to 2026-09-30 and a very long tail", "at most 40"),
])
def test_typed_nonsense_is_refused_with_a_reason(text: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse_typed_range(text)


def test_clamping() -> None:
    inside = clamp_range(date(2025, 1, 1), date(2025, 2, 1), FIRST, LAST)
    assert not inside.moved and (inside.start, inside.end) == (date(2025, 1, 1), date(2025, 2, 1))
    wide = clamp_range(date(2027, 1, 1), date(2020, 1, 1), FIRST, LAST)  # either order
    assert wide.moved and (wide.start, wide.end) == (FIRST, LAST) and wide.requested == (date(2020, 1, 1),
                                                                                          date(2027, 1, 1))
    future = clamp_range(date(2030, 1, 1), date(2030, 2, 1), FIRST, LAST)
    assert (future.start, future.end) == (LAST, LAST)


def test_cohort_range_holds_twelve_cohorts() -> None:
    assert cohort_range("month", FIRST, LAST) == (date(2025, 12, 1), LAST)
    assert cohort_range("week", FIRST, LAST) == (date(2026, 8, 24), LAST)  # a Monday, 11 weeks before the last's
    assert cohort_range("month", date(2026, 6, 3), LAST) == (date(2026, 6, 3), LAST)
    with pytest.raises(ValueError, match="Unknown cohort period"):
        cohort_range("year", FIRST, LAST)


# --- the sidebar under AppTest -------------------------------------------------------------------

def _app(url: str, monkeypatch, query: dict[str, list[str]] | None = None):
    from streamlit.testing.v1 import AppTest

    monkeypatch.setenv("MEMBERLENS_WAREHOUSE_URL", url)
    monkeypatch.setenv("MEMBERLENS_STATE_URL", f"sqlite:///{tempfile.mkdtemp(prefix='memberlens_state_')}/s.sqlite")
    at = AppTest.from_file(str(PROJECT_ROOT / "app.py"), default_timeout=120)
    for key, values in (query or {}).items():
        at.query_params[key] = values
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def test_picking_a_period_sets_dates_counted_from_the_data(duck_warehouse, monkeypatch) -> None:
    span = data_span(duck_warehouse.engine)
    at = _app(duck_warehouse.url, monkeypatch)
    assert at.sidebar.selectbox(key="period").value == "last_90_days"
    assert at.sidebar.date_input(key="dates").value == span.last_days(90)
    for period in ("last_quarter", "year_to_date", "last_30_days"):
        at.sidebar.selectbox(key="period").set_value(period).run()
        assert not at.exception, [e.value for e in at.exception]
        assert at.sidebar.date_input(key="dates").value == period_range(period, span.first_day, span.last_day)
        assert at.sidebar.selectbox(key="period").value == period
    # dates picked in the calendar that match no preset make the period custom; the KPI page names the period
    at.sidebar.date_input(key="dates").set_value((span.last_day - timedelta(days=10), span.last_day)).run()
    assert at.sidebar.selectbox(key="period").value == "custom"
    at.sidebar.selectbox(key="period").set_value("last_quarter").run()
    quarter = period_range("last_quarter", span.first_day, span.last_day)
    assert any(c.value.startswith(f"Last quarter: {quarter[0].day} {quarter[0]:%b %Y} – ") for c in at.caption)
    help_text = at.sidebar.selectbox(key="period").help
    assert f"{span.last_day.day} {span.last_day:%b %Y}, the newest order in the warehouse (not from today)" \
        in help_text


def test_typed_dates_apply_on_enter_and_nonsense_says_why(duck_warehouse, monkeypatch) -> None:
    """The text box commits on Enter (AppTest's input + run is that commit), unlike Streamlit's date field."""
    span = data_span(duck_warehouse.engine)
    at = _app(duck_warehouse.url, monkeypatch)
    start, end = span.last_day - timedelta(days=40), span.last_day - timedelta(days=5)
    at.sidebar.text_input(key="typed_dates").input(f"{start} to {end}").run()
    assert not at.exception
    assert at.sidebar.date_input(key="dates").value == (start, end)
    assert at.sidebar.text_input(key="typed_dates").value == ""
    assert at.sidebar.selectbox(key="period").value == "custom"
    at.sidebar.text_input(key="typed_dates").input("last summer").run()
    assert at.sidebar.date_input(key="dates").value == (start, end)  # unchanged
    assert any("'last summer' is not a date range" in e.value for e in at.sidebar.error)
    far = span.last_day + timedelta(days=400)
    at.sidebar.text_input(key="typed_dates").input(f"{span.last_day - timedelta(days=6)} to {far}").run()
    assert at.sidebar.date_input(key="dates").value == (span.last_day - timedelta(days=6), span.last_day)
    assert not at.sidebar.error
    assert any(w.value.startswith("You typed ") and "so the range was narrowed to" in w.value
               for w in at.sidebar.warning)


def test_a_link_reaching_outside_the_data_is_narrowed_and_says_so(duck_warehouse, monkeypatch) -> None:
    span = data_span(duck_warehouse.engine)
    asked = (span.first_day - timedelta(days=30), span.last_day + timedelta(days=45))
    at = _app(duck_warehouse.url, monkeypatch, {"dates": [d.isoformat() for d in asked]})
    # the first run already computes the narrowed range; Streamlit has dropped the link's value meanwhile
    assert at.caption[0].value.startswith(f"All data: {span.first_day.day} {span.first_day:%b %Y} – ")
    at.run()  # in a browser a fragment timer runs the app again at once: the widget takes the narrowed dates
    assert at.sidebar.date_input(key="dates").value == (span.first_day, span.last_day)
    assert at.sidebar.selectbox(key="period").value == "all_data"
    warnings = [w.value for w in at.sidebar.warning]
    assert any(w.startswith(f"The link asked for {asked[0].day} {asked[0]:%b %Y} – {asked[1].day} {asked[1]:%b %Y}, "
                            f"but the warehouse has data from") for w in warnings), warnings
    assert not any("not understood" in w for w in warnings)
    assert at.query_params["dates"] == [span.first_day.isoformat(), span.last_day.isoformat()]  # shareable again
    # a link inside the data is taken as it is, and silently
    inside = (span.last_day - timedelta(days=20), span.last_day - timedelta(days=10))
    at = _app(duck_warehouse.url, monkeypatch, {"dates": [d.isoformat() for d in inside]})
    assert at.sidebar.date_input(key="dates").value == inside
    assert not at.sidebar.warning
    # and a value that is no date at all is reported as not understood
    at = _app(duck_warehouse.url, monkeypatch, {"dates": ["yesterday"]})
    assert at.sidebar.date_input(key="dates").value == span.last_days(90)
    assert any("not understood and is ignored: dates=yesterday" in w.value for w in at.sidebar.warning)
