"""What every page needs, prepared once per run by ``app.py``: the engine and the global filters.

The global filters live in the sidebar (so they are the same on every page), are kept in
``st.session_state`` by their widget keys and are mirrored in the URL's query parameters
(``bind="query-params"``), so a view can be shared as a link.
"""

from __future__ import annotations

from dataclasses import dataclass

import streamlit as st
from sqlalchemy import Engine

from analytics.filters import FilterOptions, Filters
from analytics.warehouse import DataSpan, WarehouseConfig
from ui.format import label

_CONTEXT_KEY = "_memberlens_context"
DATES_KEY = "dates"
CHANNEL_KEY = "channel"
TIER_KEY = "tier"
DEFAULT_DAYS = 90


@dataclass(frozen=True)
class PageContext:
    config: WarehouseConfig
    engine: Engine
    span: DataSpan
    options: FilterOptions
    filters: Filters

    @property
    def url(self) -> str:
        """The cache key for everything read from this warehouse."""
        return self.config.url


def set_page_context(context: PageContext) -> None:
    st.session_state[_CONTEXT_KEY] = context


def page_inputs() -> PageContext:
    """The context ``app.py`` prepared for this run (pages are only run through app.py)."""
    return st.session_state[_CONTEXT_KEY]


def sidebar_filters(span: DataSpan, options: FilterOptions) -> Filters:
    """Draw the global filters in the sidebar and return them as a Filters value."""
    default_start, default_end = span.last_days(DEFAULT_DAYS)
    with st.sidebar:
        st.subheader("Filters")
        picked = st.date_input(
            "Date range",
            value=(default_start, default_end),
            min_value=span.first_day,
            max_value=span.last_day,
            key=DATES_KEY,
            bind="query-params",
            format="YYYY-MM-DD",
            help=f"Days are inclusive. The default is the last {DEFAULT_DAYS} days of data "
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
            "Sales channel", options.channels, default=[], key=CHANNEL_KEY, bind="query-params", format_func=label,
            placeholder="All channels", help="Keeps orders placed in these channels. KPIs without a "
            "sales channel (new members, session conversion, points) are not affected.",
        )
        tiers = st.multiselect(
            "Member tier", options.tiers, default=[], key=TIER_KEY, bind="query-params", format_func=label,
            placeholder="All tiers", help="Keeps members whose current tier is one of these; guest "
            "orders and anonymous sessions drop out.",
        )
    return Filters(start, end, tuple(channels), tuple(tiers))
