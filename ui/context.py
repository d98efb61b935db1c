"""What every page needs, prepared once per run by ``app.py``: the engine and the global filters.

The global filters live in the sidebar (so they are the same on every page), are kept in
``st.session_state`` by their widget keys and are mirrored in the URL's query parameters
(``bind="query-params"``), so a view can be shared as a link. The period presets count back from the
warehouse's last day with data (:func:`analytics.filters.period_range`), never from today.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field, replace
from datetime import date, timedelta

import streamlit as st
from sqlalchemy import Engine

from analytics.access import AccessDenied, Principal, page_rule, require_page
from analytics.errors import InputError
from analytics.filters import (
    DEFAULT_PERIOD,
    DEFAULT_RANGE_DAYS,
    MAX_TYPED_RANGE,
    PERIODS,
    ClampedRange,
    FilterOptions,
    Filters,
    Scope,
    clamp_range,
    parse_typed_range,
    period_of,
    period_range,
)
from analytics.i18n import LANGUAGES, _, code_label, format_day, using
from analytics.storage.databases import DatabaseConfig
from analytics.storage.privacy_store import Suppression
from analytics.storage.warehouse import DataSpan
from ui.format import label
from ui.language import CARRIED_KEYS

_CONTEXT_KEY = "_memberlens_context"
DATES_KEY = "dates"
CHANNEL_KEY = "channel"
TIER_KEY = "tier"
CARRIED_KEYS.extend([CHANNEL_KEY, TIER_KEY])  # their selections survive a language switch
RESET_KEY = "_reset_filters"


@dataclass(frozen=True)
class PageContext:
    """What a page gets: the warehouse, its span and filter options, the global filters (with the user's scope for
    this page), who is signed in, which page this is, and who is suppressed."""

    config: DatabaseConfig
    engine: Engine
    span: DataSpan
    options: FilterOptions
    filters: Filters
    principal: Principal | None = None
    page: str | None = None
    suppression: Suppression = field(default_factory=Suppression)

    @property
    def url(self) -> str:
        """The cache key for everything read from this warehouse."""
        return self.config.url

    @property
    def listing_scope(self) -> Scope:
        """Whom member lists, counts and exports may show: the user's restriction, without erased members and
        members who objected to profiling (every list can become a campaign audience)."""
        return self.principal.scope(self.suppression.excluded(profiling=True)) if self.principal else Scope()

    @property
    def lookup_scope(self) -> Scope:
        """Whom Member 360 may show: the user's restriction, without erased members."""
        return self.principal.scope(self.suppression.erased) if self.principal else Scope()


def scoped(filters: Filters, principal: Principal, suppression: Suppression, page: str | None) -> Filters:
    """The global filters with the user's scope for ``page``: their restriction, erased members left out, and on
    profiling pages (segments, models, targeting) members who objected too."""
    profiling = page_rule(page).profiling if page else True
    return replace(filters, scope=principal.scope(suppression.excluded(profiling)))


_current = threading.local()


def set_page_context(context: PageContext) -> None:
    """Hand this run's context to the page that ``app.py`` is about to run."""
    st.session_state[_CONTEXT_KEY] = context


def current_context() -> PageContext | None:
    """The context of the page running in this thread (set by :func:`page_inputs`), for helpers such as member
    sets that act for the signed-in user."""
    return getattr(_current, "context", None)


def page_inputs(page: str | None = None) -> PageContext:
    """The context ``app.py`` prepared for this run; call it once, at the top of a page, with the page's key.

    The signed-in user must be allowed to open the page (:func:`analytics.access.require_page`): a hand-typed URL,
    a stale link or a widget message for a page the role does not open gets a refusal and nothing else (and the
    refusal is written to the audit log).

    Streamlit runs a file of ``pages/`` directly, without ``app.py``, when the very first request
    to a freshly started server asks for a page other than the home page (its legacy ``pages/``
    directory mode, which ends once any run has called ``st.navigation``). The context is taken,
    not read, so such a run finds none: it then leaves that mode and reruns through ``app.py``,
    which routes to the same page by its URL.
    """
    context = st.session_state.pop(_CONTEXT_KEY, None)
    _current.context = None
    if context is None:
        from streamlit.runtime.pages_manager import PagesManager  # no public switch for this mode

        PagesManager.uses_pages_directory = False
        st.rerun()
    key = page or context.page
    try:
        if page is not None and context.page is not None and context.page != page:
            raise AccessDenied(f"This run was prepared for the page {context.page}, not {page}.")
        require_page(context.principal, key or "")
    except AccessDenied as refused:
        _refuse(context, key, refused)
    _current.context = context
    _log_member_level_view(context, key)
    return context


def _refuse(context: PageContext, page: str | None, refused: AccessDenied) -> None:
    from ui.app_state import record_quietly

    if context.principal is not None:
        record_quietly(context.principal, "access_denied", {"page": page, "reason": refused.problem})
    st.error(refused.problem, icon=":material/block:")
    if refused.fix:
        st.info(refused.fix, icon=":material/admin_panel_settings:")
    st.stop()


_VIEWED_KEY = "_memberlens_viewed_page"


def _log_member_level_view(context: PageContext, page: str | None) -> None:
    """Write an opening of a page that shows member-level data to the audit log, once per visit (reruns of the
    same page in a session are one visit)."""
    if not page or not page_rule(page).member_level or context.principal is None:
        st.session_state.pop(_VIEWED_KEY, None)  # the next member-level page opened is a new visit
        return
    if st.session_state.get(_VIEWED_KEY) == page:
        return
    from ui.app_state import record

    record(context.principal, "view_page", {"page": page})
    st.session_state[_VIEWED_KEY] = page


def warn_about_ignored_link_values(allowed: Mapping[str, Collection[str]]) -> None:
    """Say which values of a shared link's query parameters will be ignored (Streamlit drops them
    silently), e.g. ``tier=gold`` where the link expects the label ``Gold``."""
    ignored = [f"{key}={value}" for key, valid in allowed.items()
               for value in st.query_params.get_all(key) if value not in valid]
    if ignored:
        st.warning(_("Part of the link was not understood and is ignored: {values}.").format(
            values=", ".join(ignored)), icon=":material/link_off:")


class _DaysIn(Collection[str]):
    """The ISO dates of a data span, as a container (a set of every day would cost a string per day per run)."""

    def __init__(self, span: DataSpan) -> None:
        self.span = span

    def __contains__(self, value: object) -> bool:
        text = str(value)
        try:
            day = date.fromisoformat(text)
        except ValueError:
            return False
        if len(text) != 10:  # YYYY-MM-DD only, as the link writes it
            return False
        return self.span.first_day <= day <= self.span.last_day

    def __iter__(self):
        return (str(self.span.first_day + timedelta(days=i)) for i in range(len(self)))

    def __len__(self) -> int:
        return (self.span.last_day - self.span.first_day).days + 1


def _valid_dates(span: DataSpan) -> Collection[str]:
    return _DaysIn(span)


PERIOD_KEY = "period"
TYPED_KEY = "typed_dates"
_NOTICE_KEY = "_dates_notice"  # (shown range, message) of the last clamped link or typed range
_TYPED_ERROR_KEY = "_typed_dates_error"
_CUSTOM_KEY = "_custom_dates"  # the dates "Custom range" was picked for
_RESYNC_KEY = "_dates_resync"
_ARMED_KEY = "_dates_resync_armed"
#: Streamlit's own quick picks in the date range calendar count back from today; the sidebar's periods count back
#: from the data, so the calendar's are hidden (one set of periods, all anchored to the data).
_HIDE_TODAY_PRESETS = "<style>[data-testid='stDateInputQuickSelect']{display:none !important}</style>"


def _day(value: date) -> str:
    return format_day(value)


def _link_dates() -> tuple[list[date], list[str]]:
    """The ``dates`` values of the page's link: those that are dates, and those that are not."""
    parsed, bad = [], []
    for text in st.query_params.get_all(DATES_KEY):
        try:
            parsed.append(date.fromisoformat(text))
        except ValueError:
            bad.append(text)
    return parsed, bad


def _apply_period(first: date, last: date) -> None:
    """A period was picked: set the dates to it (a callback, before the run draws the date widget)."""
    period = st.session_state.get(PERIOD_KEY)
    if period and period != "custom":
        st.session_state[DATES_KEY] = period_range(period, first, last)
        st.session_state.pop(_CUSTOM_KEY, None)
    elif period == "custom":
        dates = st.session_state.get(DATES_KEY)
        st.session_state[_CUSTOM_KEY] = tuple(dates) if isinstance(dates, (tuple, list)) else None


def _apply_typed(first: date, last: date) -> None:
    """Typed dates were entered (Enter or leaving the box): apply them, moved inside the data if need be."""
    text = str(st.session_state.get(TYPED_KEY) or "").strip()
    st.session_state.pop(_TYPED_ERROR_KEY, None)
    if not text:
        return
    try:
        start, end = parse_typed_range(text)
    except InputError as exc:
        st.session_state[_TYPED_ERROR_KEY] = str(exc)
        return
    clamped = clamp_range(start, end, first, last)
    st.session_state[DATES_KEY] = (clamped.start, clamped.end)
    st.session_state[TYPED_KEY] = ""
    if clamped.moved:
        message = _moved_message(_("You typed {start} – {end}"), clamped, first, last)
        st.session_state[_NOTICE_KEY] = ((clamped.start, clamped.end), message)


def _moved_message(asked_text: str, clamped: ClampedRange, first: date, last: date) -> str:
    """``asked_text`` (translated, with ``{start}`` and ``{end}``) and how the range was narrowed to the data."""
    asked = clamped.requested
    return asked_text.format(start=_day(asked[0]), end=_day(asked[1])) + _(
        ", but the warehouse has data from {first} to {last}, so the range was narrowed to {start} – {end}.").format(
        first=_day(first), last=_day(last), start=_day(clamped.start), end=_day(clamped.end))


def sidebar_filters(span: DataSpan, options: FilterOptions) -> Filters:
    """Draw the global filters in the sidebar and return them as a Filters value.

    The period (last 90 days, last quarter, year to date ...) counts back from the last day with data, like the
    default range; picking one sets the dates, and the period shown is always the one the dates match (``Custom
    range`` otherwise), so a link carries only the dates. Dates can be picked in the calendar or typed in the box
    below it, which applies on Enter (Streamlit's date field applies typed dates only when its calendar closes).
    A link or typed range reaching outside the data is narrowed to it, and the sidebar says so.
    """
    first, last = span.first_day, span.last_day
    default_start, default_end = period_range(DEFAULT_PERIOD, first, last)
    picked_before = st.session_state.get(DATES_KEY)
    outside = isinstance(picked_before, (tuple, list)) and any(
        d is not None and not first <= d <= last for d in picked_before)
    if st.session_state.pop(RESET_KEY, False) or outside:  # new data: start again from the defaults
        st.session_state[DATES_KEY] = (default_start, default_end)
        st.session_state[CHANNEL_KEY] = []
        st.session_state[TIER_KEY] = []
    if _RESYNC_KEY in st.session_state:  # put the narrowed dates of a link back into the link
        st.session_state[DATES_KEY] = st.session_state.pop(_RESYNC_KEY)
    widget_default = (default_start, default_end)
    link_dates, bad_link_dates = _link_dates()
    if DATES_KEY not in st.session_state and link_dates:  # a link opened: its dates reach outside the data?
        clamped = clamp_range(min(link_dates), max(link_dates), first, last)
        if clamped.moved:
            # Streamlit drops a linked value outside min/max (from the link too) and shows the widget's default:
            # this run uses the narrowed range, and the run right after it sets the widget to it, which puts it
            # back into the link (see finish_run)
            narrowed = (clamped.start, clamped.end)
            asked = _("The link asked for {start} – {end}")
            st.session_state[_NOTICE_KEY] = (narrowed, _moved_message(asked, clamped, first, last))
            st.session_state[_RESYNC_KEY] = narrowed
    current = st.session_state.get(_RESYNC_KEY, st.session_state.get(DATES_KEY, widget_default))
    current = tuple(current) if isinstance(current, (tuple, list)) else (current,)
    with st.sidebar:
        st.html(_HIDE_TODAY_PRESETS)
        st.subheader(_("Filters"))
        warn_about_ignored_link_values({
            CHANNEL_KEY: {label(c) for c in options.channels},
            TIER_KEY: {label(t) for t in options.tiers},
        })
        if bad_link_dates:
            st.warning(_("Part of the link was not understood and is ignored: {values}.").format(
                values=", ".join(f"{DATES_KEY}={v}" for v in bad_link_dates)), icon=":material/link_off:")
        shown = [d for d in current if d is not None]
        custom = st.session_state.get(_CUSTOM_KEY) == tuple(current)
        st.session_state[PERIOD_KEY] = ("custom" if custom or len(shown) != 2 else
                                        period_of(shown[0], shown[1], first, last, st.session_state.get(PERIOD_KEY)))
        st.selectbox(
            _("Period"), list(PERIODS), key=PERIOD_KEY, on_change=_apply_period, args=(first, last),
            format_func={p: _(PERIODS[p]) if p == "custom" else f"{_(PERIODS[p])} · {_span_text(p, first, last)}"
                         for p in PERIODS}.__getitem__,  # labels made in this run, in its language
            help=_("Periods count back from {last}, the newest order in the warehouse (not from today), like the "
                   "default range. \"This\" month, quarter or year runs up to that day; \"last\" month or quarter is "
                   "the whole one before it.").format(last=_day(last)),
        )
        picked = st.date_input(
            _("Date range"),
            value=widget_default,
            min_value=first,
            max_value=last,
            key=DATES_KEY,
            bind="query-params",
            format="YYYY-MM-DD",
            help=_("Days are inclusive, from {first} to {last} (the data). The default is the last {days} days of "
                   "data. Dates typed here apply when the calendar closes (Esc or a click outside); the box below "
                   "applies them on Enter.").format(first=_day(first), last=_day(last), days=DEFAULT_RANGE_DAYS),
        )
        st.text_input(_("Type dates"), key=TYPED_KEY, on_change=_apply_typed, args=(first, last),
                      max_chars=MAX_TYPED_RANGE, placeholder=_("2026-07-01 to 2026-09-30"),
                      help=_("One date, or two (year-month-day) with 'to' between them. Enter applies them."))
        if _TYPED_ERROR_KEY in st.session_state:
            st.error(st.session_state[_TYPED_ERROR_KEY], icon=":material/event_busy:")
        dates = [d for d in (picked if isinstance(picked, (tuple, list)) else (picked,)) if d is not None]
        if _RESYNC_KEY in st.session_state:  # a narrowed link, until the next run sets the widget to it
            dates = list(st.session_state[_RESYNC_KEY])
        notice = st.session_state.get(_NOTICE_KEY)
        if notice and tuple(notice[0]) == tuple(dates):
            st.warning(notice[1], icon=":material/date_range:")
        elif notice:
            st.session_state.pop(_NOTICE_KEY, None)
        if not dates:
            start, end = default_start, default_end
        elif len(dates) == 1:
            start = end = dates[0]
            st.caption(_("Showing a single day: pick an end date for a range."))
        else:
            start, end = min(dates), max(dates)
        channels = st.multiselect(
            _("Sales channel"), options.channels, key=CHANNEL_KEY, bind="query-params", format_func=label,
            placeholder=_("All channels"), help=_("Keeps orders placed in these channels. KPIs without a sales "
                                                  "channel (new members, session conversion, points) are not "
                                                  "affected."),
        )
        tiers = st.multiselect(
            _("Member tier"), options.tiers, key=TIER_KEY, bind="query-params", format_func=label,
            placeholder=_("All tiers"), help=_("Keeps members whose current tier is one of these; guest orders "
                                               "and anonymous sessions drop out."),
        )
    return Filters(start, end, _codes(channels, options.channels), _codes(tiers, options.tiers))


def _codes(picked: list[str], codes: tuple[str, ...]) -> tuple[str, ...]:
    """The codes of the picked options: a label the browser kept from another language (a link shared across a
    language switch) is read back as its code in either language; anything else is dropped."""
    by_label = {code_label_in(lang, code): code for code in codes for lang in LANGUAGES}
    return tuple(dict.fromkeys(p if p in codes else by_label[p] for p in picked if p in codes or p in by_label))


def code_label_in(lang: str, code: str) -> str:
    with using(lang):
        return code_label(code)


def _span_text(period: str, first: date, last: date) -> str:
    start, end = period_range(period, first, last)
    if start.year == end.year:
        return f"{format_day(start, 'short_same_year')} – {_day(end)}"
    return f"{_day(start)} – {_day(end)}"


def finish_run() -> None:
    """At the end of a run (``app.py``): when a link's dates were narrowed, run the app once more right after this
    run, which sets the date widget to them; the browser then writes them into the link. (Streamlit drops from
    the URL a linked value it refuses. The widget cannot be set in the run that binds it to the link, nor in a
    run cut short by ``st.rerun``, whose widgets are not kept: so the rerun comes from a fragment timer, after
    this run has finished.)"""
    if _RESYNC_KEY in st.session_state:
        st.session_state[_ARMED_KEY] = False
        _rerun_after_this_run()


@st.fragment(run_every=0.3)
def _rerun_after_this_run() -> None:
    """Called in the full run, it only arms itself; its first timed run (after the full run) reruns the app."""
    if _RESYNC_KEY not in st.session_state:
        return
    if st.session_state.get(_ARMED_KEY):
        st.rerun(scope="app")
    st.session_state[_ARMED_KEY] = True


def current_period_label() -> str | None:
    """The sidebar's period as a reader names it (``Last quarter``), or None for a custom range."""
    period = st.session_state.get(PERIOD_KEY)
    return _(PERIODS[period]) if period in PERIODS and period != "custom" else None


def reset_filters() -> None:
    """Put the sidebar filters back to their defaults on the next run: after an import the data's
    dates change. (Removing the widgets' state is not enough: the browser would keep showing them.)"""
    st.session_state[RESET_KEY] = True


def link_to_page(key: str, label_text: str, icon: str, query_params: Mapping[str, str] | None = None) -> None:
    """A link to another page (``pages/<key>.py``), drawn only when the signed-in user may open it and the page is
    in this run's navigation (a page run on its own, as tests do, has no other pages to link to)."""
    from streamlit.errors import StreamlitPageNotFoundError

    from analytics.access import may_open

    context = current_context()
    if context is None or context.principal is None or not may_open(context.principal, key):
        return
    with contextlib.suppress(StreamlitPageNotFoundError):
        st.page_link(f"pages/{key}.py", label=label_text, icon=icon, query_params=query_params)


def current_principal() -> Principal | None:
    """The signed-in user of this run (None outside a page run)."""
    context = current_context()
    return context.principal if context is not None else None
