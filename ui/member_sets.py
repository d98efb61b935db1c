"""Any set of members a page shows, the same way everywhere: how many, the first of them (masked), all of them as
CSV (masked and written to the audit log), the definition as JSON, and a button that opens Campaign targeting
with the audience already added as a condition.

Every page hands over a typed :class:`~analytics.audiences.Audience`; counts and rows are cached on its
definition, so two pages showing the same set run its query once.
"""

from __future__ import annotations

import re

import pandas as pd
import streamlit as st
from sqlalchemy import Engine

from analytics import audiences
from analytics.audiences import Audience
from analytics.filters import Filters
from analytics.member_rows import audience_rows, member_count, value_window
from ui.cached import cached
from ui.members import member_table

#: Rows shown on a page before the download.
PREVIEW_ROWS = 100
#: Where "Use in Campaign targeting" leaves audiences for the targeting page to pick up.
INBOX_KEY = "targeting_inbox"
#: Set by the button's callback; ``app.py`` switches to the targeting page on the next run.
GO_KEY = "_go_to_targeting"
TARGETING_PAGE = "pages/campaign_targeting.py"


@cached("Counting the members…", max_entries=64)
def cached_member_count(engine: Engine, audience: Audience) -> int:
    return member_count(engine, audience.member_ids())


@cached("Listing the members…", max_entries=32)
def cached_member_rows(engine: Engine, audience: Audience, limit: int, window: Filters | None = None) -> pd.DataFrame:
    """The first ``limit`` members by net sales in ``window`` (default: the audience's own), masked, with their value
    and the columns the audience adds (a campaign's arm, a prediction's scores)."""
    return _with_annotations(engine, audience, audience_rows(engine, audience, window, limit))


def _with_annotations(engine: Engine, audience: Audience, rows: pd.DataFrame) -> pd.DataFrame:
    extra = audience.annotations(engine)
    return rows if extra is None else rows.merge(extra, on="member_id", how="left")


def export_members(engine: Engine, audience: Audience, actor: str, page: str, window: Filters | None = None) -> bytes:
    """Every member of the audience as CSV (masked), with the preview's columns in the same order (by net sales in
    ``window``), for a download button; built only when clicked.

    Every export of member rows on every page goes through here, and each is written to the audit log first: an
    export that cannot be logged does not happen (the error is shown instead of a file)."""
    from ui.app_state import record

    rows = _with_annotations(engine, audience, audience_rows(engine, audience, window))
    record(actor, "export_members", {"page": page, "audience": audience.kind, "source": audience.describe(),
                                     "rows": len(rows), "masked": True})
    return rows.to_csv(index=False).encode()


def use_in_targeting(audience: Audience) -> None:
    """A button's callback: leave ``audience`` for Campaign targeting, which ``app.py`` opens on the run the click
    starts (a page switch cannot happen inside a callback; a click seen only in the page's own code would be lost
    when the run restarts)."""
    st.session_state.setdefault(INBOX_KEY, []).append(audience)
    st.session_state[GO_KEY] = True


def switch_if_asked() -> None:
    """Called by ``app.py`` once the navigation is known: open Campaign targeting after "Use in Campaign
    targeting" was clicked."""
    if st.session_state.pop(GO_KEY, False):
        st.switch_page(TARGETING_PAGE)


def slug(text: str) -> str:
    """A file-name part from any text."""
    return re.sub(r"[^0-9A-Za-z]+", "_", text).strip("_").lower()[:60] or "members"


def member_set(engine: Engine, audience: Audience, *, key: str, who: str, actor: str, page: str,
               count: int | None = None, targeting: bool = True,
               headline: str = "**{count} member{s}** {who}",
               csv_label: str = "Download all {count} member{s} (CSV, masked)",
               column_config: dict | None = None, window: Filters | None = None) -> None:
    """Draw a member set: its headline (``**N members** who``), the masked preview (by value, each id a link to
    Member 360), and the CSV, JSON and targeting buttons.

    ``count`` is the size when the page already knows it (a portrait's member count); otherwise it is counted.
    ``targeting``: offer "Use in Campaign targeting" (not on the targeting page itself). ``headline`` and
    ``csv_label`` may reword the page's text (``{count}`` is the formatted count, ``{s}`` the plural ending);
    ``column_config`` says how the audience's own columns look (see ``ui.members.member_table``). ``window``: the
    date range the members are valued over (net sales, orders, segment; default: the audience's own,
    ``analytics.member_rows.value_window``)."""
    total = cached_member_count(engine, audience) if count is None else count
    st.markdown(headline.format(count=f"{total:,}", s="" if total == 1 else "s", who=who))
    if not total:
        return
    valued = value_window(audience) if window is None else window
    member_table(cached_member_rows(engine, audience, PREVIEW_ROWS, window), column_config, valued)
    order = f"by net sales from {valued.start:%d %b %Y} to {valued.end:%d %b %Y}, highest first"
    shown = f"The first {PREVIEW_ROWS:,} {order}; the download holds all {total:,}. " if total > PREVIEW_ROWS \
        else f"Sorted {order}. "
    st.caption(shown + "Names, phones and emails are masked; a member id opens the member's Member 360 page.")
    name = slug(audience.describe())
    buttons = st.columns(3 if targeting else 2)
    plural = "" if total == 1 else "s"
    buttons[0].download_button(csv_label.format(count=f"{total:,}", s=plural),
                               lambda: export_members(engine, audience, actor, page, window),  # built on click
                               file_name=f"memberlens_{name}.csv", mime="text/csv", icon=":material/download:",
                               key=f"{key}_csv", on_click="ignore")
    buttons[1].download_button("Download the audience definition (JSON)", audiences.dumps(audience).encode(),
                               file_name=f"memberlens_audience_{name}.json", mime="application/json",
                               icon=":material/data_object:", key=f"{key}_json", on_click="ignore",
                               help="The definition as data, to share or keep: Campaign targeting and "
                                    "`python -m analytics audience` re-create exactly these members from it.")
    if targeting:
        buttons[2].button("Use in Campaign targeting", icon=":material/campaign:", key=f"{key}_target",
                          on_click=use_in_targeting, args=(audience,),
                          help="Opens Campaign targeting with these members as a condition of the audience.")
