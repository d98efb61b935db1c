"""Programme: the membership programme itself: tiers, a threshold what-if, points, and what members are worth."""

from __future__ import annotations

import streamlit as st

from analytics.i18n import _, format_day
from ui.context import page_inputs
from ui.programme_views import points_tab, tiers_tab, value_tab, whatif_tab

ctx = page_inputs("programme")
filters = ctx.filters

st.title(_("Programme"))
st.caption(_("{start} – {end}. Tiers as the programme evaluates them (monthly, on the previous twelve months' gross "
             "spend); the tier filter applies to points and member value, the channel filter to orders.").format(
    start=format_day(filters.start), end=format_day(filters.end)))

# Only the open tab runs (on_change="rerun"): each reads its own rows at 1M members.
tiers, whatif, points, value = st.tabs([_("Tiers"), _("Threshold what-if"), _("Points"), _("Member value")],
                                       key="programme_tab", on_change="rerun")
if tiers.open:
    with tiers:
        tiers_tab(ctx)
if whatif.open:
    with whatif:
        whatif_tab(ctx)
if points.open:
    with points:
        points_tab(ctx)
if value.open:
    with value:
        value_tab(ctx)
