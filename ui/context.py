"""What every page needs, prepared once per run by ``app.py``: the engine and the global filters.

The global filters live in the sidebar (so they are the same on every page), are kept in
``st.session_state`` by their widget keys and are mirrored in the URL's query parameters
(``bind="query-params"``), so a view can be shared as a link.
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
from analytics.filters import DEFAULT_RANGE_DAYS, FilterOptions, Filters, Scope
from analytics.storage.databases import DatabaseConfig
from analytics.storage.privacy_store import Suppression
from analytics.storage.warehouse import DataSpan
from ui.format import label

_CONTEXT_KEY = "_memberlens_context"
DATES_KEY = "dates"
CHANNEL_KEY = "channel"
TIER_KEY = "tier"
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
        st.warning(f"Part of the link was not understood and is ignored: {', '.join(ignored)}.",
                   icon=":material/link_off:")


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


def sidebar_filters(span: DataSpan, options: FilterOptions) -> Filters:
    """Draw the global filters in the sidebar and return them as a Filters value."""
    default_start, default_end = span.last_days(DEFAULT_RANGE_DAYS)
    picked_before = st.session_state.get(DATES_KEY)
    outside = isinstance(picked_before, (tuple, list)) and any(
        d is not None and not span.first_day <= d <= span.last_day for d in picked_before)
    if st.session_state.pop(RESET_KEY, False) or outside:  # new data: start again from the defaults
        st.session_state[DATES_KEY] = (default_start, default_end)
        st.session_state[CHANNEL_KEY] = []
        st.session_state[TIER_KEY] = []
    with st.sidebar:
        st.subheader("Filters")
        warn_about_ignored_link_values({
            DATES_KEY: _valid_dates(span),
            CHANNEL_KEY: {label(c) for c in options.channels},
            TIER_KEY: {label(t) for t in options.tiers},
        })
        # Defaults only for widgets without state: Streamlit warns when both are given.
        given = {"value": (default_start, default_end)} if DATES_KEY not in st.session_state else {}
        picked = st.date_input(
            "Date range",
            **given,
            min_value=span.first_day,
            max_value=span.last_day,
            key=DATES_KEY,
            bind="query-params",
            format="YYYY-MM-DD",
            help=f"Days are inclusive. The default is the last {DEFAULT_RANGE_DAYS} days of data "
                 f"(up to {span.last_day:%d %b %Y}, the newest order in the warehouse). "
                 "Changes are compared with the previous period of the same length.",
        )
        dates = [d for d in (picked if isinstance(picked, (tuple, list)) else (picked,)) if d is not None]
        if not dates:
            start, end = default_start, default_end
        elif len(dates) == 1:
            start = end = dates[0]
            st.caption("Showing a single day: pick an end date for a range.")
        else:
            start, end = min(dates), max(dates)
        channels = st.multiselect(
            "Sales channel", options.channels, key=CHANNEL_KEY, bind="query-params", format_func=label,
            placeholder="All channels", help="Keeps orders placed in these channels. KPIs without a "
            "sales channel (new members, session conversion, points) are not affected.",
        )
        tiers = st.multiselect(
            "Member tier", options.tiers, key=TIER_KEY, bind="query-params", format_func=label,
            placeholder="All tiers", help="Keeps members whose current tier is one of these; guest "
            "orders and anonymous sessions drop out.",
        )
    return Filters(start, end, tuple(channels), tuple(tiers))


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
