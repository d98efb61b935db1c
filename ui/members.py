"""How member rows (always masked) look wherever a page lists them: one column configuration, value first, and each
member id a link to their Member 360 page."""

from __future__ import annotations

from urllib.parse import quote, urlencode

import pandas as pd
import streamlit as st

from analytics.filters import Filters
from analytics.i18n import _
from analytics.member_rows import MEMBER_ROW_COLUMNS
from analytics.programme import CURRENCY_SYMBOL
from ui.context import CHANNEL_KEY, DATES_KEY, TIER_KEY
from ui.format import MISSING, label

#: The Member 360 page's URL path (``app.py``) and the query parameter it opens a member by.
MEMBER_360_PATH = "member_360"
MEMBER_PARAM = "member"
#: The global filters' query parameters (``ui.context``), carried into the link so Member 360 opens on the same view.
FILTER_PARAMS = (DATES_KEY, CHANNEL_KEY, TIER_KEY)
#: The column holding each member's link (the id column itself stays as it is, for exports and tests).
LINK_COLUMN = "profile"
#: Whole cents: the amounts add up to the figures on the pages.
MONEY_CELL = CURRENCY_SYMBOL + "%.2f"

def member_column_config() -> dict:
    """How the member rows' columns look, labelled in the run's language."""
    return {
        LINK_COLUMN: st.column_config.LinkColumn(_("Member"), display_text=rf"[?&]{MEMBER_PARAM}=([^&]+)$",
                                                 help=_("Opens the member's Member 360 page (in a new tab).")),
        "net_sales": st.column_config.NumberColumn(_("Net sales"), format=MONEY_CELL,
                                                   help=_("Completed orders in the date range, after discounts; the "
                                                          "list is sorted by it, highest first.")),
        "orders": st.column_config.NumberColumn(_("Orders"), format="localized",
                                                help=_("Completed orders in the date range.")),
        "last_order": st.column_config.DateColumn(_("Last order"), format="YYYY-MM-DD",
                                                  help=_("The last completed order up to the range's last day "
                                                         "(before the range for members without an order in it).")),
        "tier": _("Tier"),
        "segment": st.column_config.TextColumn(_("RFM segment"),
                                               help=_("The member's RFM segment in the date range; Lapsed: bought "
                                                      "before the range but not in it.")),
        "name": _("Name"), "phone": _("Phone"), "email": _("Email"), "region": _("Region"), "city": _("City"),
        "registered_at": st.column_config.DatetimeColumn(_("Registered"), format="YYYY-MM-DD"),
        "points_balance": st.column_config.NumberColumn(_("Points"), format="localized"),
        "arm": st.column_config.TextColumn(_("Arm"), help=_("Treatment: gets the message; control: held out to "
                                                            "measure it.")),
    }


def member_link_prefix(window: Filters | None = None) -> str:
    """The start of a member's Member 360 link (relative, so it works under any base path; append the member id),
    opening on ``window``'s date range, channels and tiers as the sidebar's link parameters, so the figures there
    are the ones the list shows; with no window, the view's own parameters."""
    if window is None:
        carried = [(key, value) for key in FILTER_PARAMS for value in st.query_params.get_all(key)]
    else:
        carried = [(DATES_KEY, window.start.isoformat()), (DATES_KEY, window.end.isoformat()),
                   *((CHANNEL_KEY, label(c)) for c in window.channels), *((TIER_KEY, label(t)) for t in window.tiers)]
    return f"{MEMBER_360_PATH}?{urlencode([*carried, (MEMBER_PARAM, '')])}"


def with_links(rows: pd.DataFrame, window: Filters | None = None) -> pd.DataFrame:
    """``rows`` with the :data:`LINK_COLUMN` of each member's Member 360 link (see :func:`member_link_prefix`)."""
    prefix = member_link_prefix(window)
    return rows.assign(**{LINK_COLUMN: [prefix + quote(str(i), safe="") for i in rows["member_id"]]})


def member_table(preview: pd.DataFrame, column_config: dict | None = None, window: Filters | None = None) -> None:
    """A masked preview of members (from ``analytics.member_rows``), at most ten rows tall: each id links to Member
    360, an audience's own columns (scores, reasons, the arm: any beyond the member rows'; ``column_config`` says
    how they look) come first, then the value columns and who they are. Missing values (a segment, an email)
    read as a dash. ``window``: the range the rows were valued over, which the links open Member 360 on."""
    own = [c for c in preview.columns if c not in MEMBER_ROW_COLUMNS and c != LINK_COLUMN]
    rest = [c for c in MEMBER_ROW_COLUMNS if c in preview.columns and c != "member_id"]
    shown = with_links(preview, window)
    if "tier" in shown.columns:  # tier codes as the reader names them
        shown["tier"] = shown["tier"].map(lambda v: label(v) if isinstance(v, str) else MISSING)
    if "segment" in shown.columns:  # segment names in the reader's language
        shown["segment"] = shown["segment"].map(lambda v: _(v) if isinstance(v, str) else MISSING)
    st.dataframe(shown, hide_index=True, height=min(38 + 35 * len(preview), 388), placeholder=MISSING,
                 column_order=[LINK_COLUMN, *own, *rest],
                 column_config={**member_column_config(), **(column_config or {})})
