"""Any set of members a page shows, the same way everywhere: how many, the first of them (masked), all of them as
CSV (masked and written to the audit log), the definition as JSON, and a button that opens Campaign targeting
with the audience already added as a condition.

Every page hands over a typed :class:`~analytics.audiences.Audience`; counts and rows are cached on its
definition and the signed-in user's scope, so two pages showing the same set run its query once. What the user
may see is decided by their role (:mod:`analytics.access`): the count always, the rows with ``view_members``, the
download with ``export_members`` (real member ids with ``export_ids``, else a pseudonym per export). Showing the
rows and every download are written to the audit log under the signed-in identity.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

import pandas as pd
import streamlit as st
from sqlalchemy import Engine

from analytics import audiences
from analytics.access import EXPORT_IDS, EXPORT_MEMBERS, VIEW_MEMBERS, Principal, allowed, require
from analytics.audiences import Audience
from analytics.exports import bulk_export_rows, member_export, reader_headers
from analytics.filters import OPEN_SCOPE, Filters, Scope
from analytics.i18n import N_, _, format_day
from analytics.member_rows import audience_rows, member_count, value_window
from ui.cached import cached
from ui.format import exact_count as count_text
from ui.members import member_table

if TYPE_CHECKING:
    from analytics.recommend_store import RecommendationExport

#: Rows shown on a page before the download.
PREVIEW_ROWS = 100
#: Where "Use in Campaign targeting" leaves audiences for the targeting page to pick up.
INBOX_KEY = "targeting_inbox"
#: Set by the button's callback; ``app.py`` switches to the targeting page on the next run.
GO_KEY = "_go_to_targeting"
TARGETING_PAGE = "pages/campaign_targeting.py"


@cached("Counting the members…", max_entries=64)
def cached_member_count(engine: Engine, audience: Audience, scope: Scope = OPEN_SCOPE) -> int:
    return member_count(engine, audience.member_ids(), scope)


@cached("Listing the members…", max_entries=32)
def cached_member_rows(engine: Engine, audience: Audience, limit: int, window: Filters | None = None,
                       scope: Scope = OPEN_SCOPE) -> tuple[pd.DataFrame, int]:
    """The first ``limit`` (1 or more) members that ``scope`` allows by net sales in ``window`` (default: the
    audience's own), masked, with their value and the columns the audience adds (a campaign's arm, a prediction's
    scores); and how many there are in all, counted by the same statement."""
    rows = audience_rows(engine, audience, window, limit, scope=scope)
    return _with_annotations(engine, audience, rows), rows.attrs["total"]


def _with_annotations(engine: Engine, audience: Audience, rows: pd.DataFrame) -> pd.DataFrame:
    extra = audience.annotations(engine)
    return rows if extra is None else rows.merge(extra, on="member_id", how="left")


def _principal_and_scope(actor: object) -> tuple[Principal | None, Scope]:
    from ui.context import current_context


    context = current_context()
    principal = actor if isinstance(actor, Principal) else (context.principal if context else None)
    return principal, (context.listing_scope if context is not None else OPEN_SCOPE)


def export_members(engine: Engine, audience: Audience, actor: Principal | object, page: str,
                   scope: Scope | None = None, recommendations: RecommendationExport | None = None,
                   window: Filters | None = None) -> bytes:
    """Every member of the audience the user may see as CSV (masked, formulas neutralised, ids pseudonymised unless
    the role may export ids), for a download button; built only when clicked.

    ``actor`` is the signed-in :class:`~analytics.access.Principal` (anything else is replaced by the user of the
    running page). Every export of member rows on every page goes through here, and each is written to the audit log
    first: an export that cannot be logged does not happen (the error is shown instead of a file). Past the day's
    bulk-export threshold an alert is written to the audit log too. ``recommendations``: each member's stored top N
    instead, one row per member and rank (the campaign link is recorded too). ``window``: the date range the members
    are valued over (default: the audience's own), as in the preview."""
    from ui.app_state import record

    principal, page_scope = _principal_and_scope(actor)
    if recommendations is not None:
        from analytics.recommend_store import export_recommendations

        export = export_recommendations(engine, audience, recommendations, require(principal, EXPORT_MEMBERS), page,
                                        record, page_scope if scope is None else scope)
        _bulk_export_alert(principal, page)
        return export.csv()
    export = member_export(engine, audience, require(principal, EXPORT_MEMBERS), page_scope if scope is None else scope,
                           window)
    record(principal, "export_members", export.audit_detail(audience, page), rows=export.rows)
    _bulk_export_alert(principal, page)
    return export.csv(reader_headers())


def _bulk_export_alert(principal: Principal, page: str) -> None:
    """Write a ``bulk_export_alert`` when the user has now exported more member rows today (UTC) than the threshold
    (once a day per user)."""
    from analytics.storage.appstate import audit_events, exported_rows
    from ui.app_state import record, state_engine

    state = state_engine()
    day = datetime.now(UTC).replace(tzinfo=None, hour=0, minute=0, second=0, microsecond=0)
    totals = exported_rows(state, day, day + timedelta(days=1))
    mine = totals.loc[totals["actor"] == principal.identity, "rows"] if not totals.empty else pd.Series(dtype="int64")
    limit = bulk_export_rows()
    if mine.empty or int(mine.iloc[0]) <= limit:
        return
    if not audit_events(state, 1, actor=principal.identity, action="bulk_export_alert", since=day).empty:
        return
    record(principal, "bulk_export_alert", {"page": page, "rows_today": int(mine.iloc[0]), "threshold": limit})


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


_SHOWN_KEY = "_memberlens_shown_sets"


def _log_view(principal: Principal, audience: Audience, page: str, rows: int) -> None:
    """Write the first showing of a member set's rows in this session to the audit log (reruns show it again)."""
    from ui.app_state import record

    shown = st.session_state.setdefault(_SHOWN_KEY, set())
    token = (page, audience.fingerprint())
    if token in shown:
        return
    record(principal, "view_members", {"page": page, "audience": audience.kind, "source": audience.describe(),
                                       "rows": rows}, rows=rows)
    shown.add(token)


def member_set(engine: Engine, audience: Audience, *, key: str, who: str, page: str, actor: object = None,
               count: int | None = None, targeting: bool = True,
               headline: str = N_("**{count} member{s}** {who}"),
               csv_label: str = N_("Download all {count} member{s} (CSV, masked)"),
               column_config: dict | None = None, window: Filters | None = None) -> None:
    """Draw a member set: its headline (``**N members** who``), the masked preview (by value, each id a link to
    Member 360), and the CSV, JSON and targeting buttons, as far as the signed-in user's role allows.

    ``count`` is the size when the page already knows it (a portrait's member count); otherwise it is counted (of
    the members the user may see). ``targeting``: offer "Use in Campaign targeting" (not on the targeting page
    itself). ``headline`` and ``csv_label`` may reword the page's text (``{count}`` is the formatted count, ``{s}``
    the plural ending); ``column_config`` says how the audience's own columns look (see ``ui.members.member_table``).
    ``window``: the date range the members are valued over (net sales, orders, segment; default: the audience's
    own, ``analytics.member_rows.value_window``). ``actor`` is ignored (kept for older callers): the signed-in user
    acts."""
    principal, scope = _principal_and_scope(None)
    viewer = allowed(principal, VIEW_MEMBERS)
    if viewer:  # one statement lists the first rows and counts them all
        rows, listed = cached_member_rows(engine, audience, PREVIEW_ROWS, window, scope)
    total = count if count is not None and scope.is_open else (
        listed if viewer else cached_member_count(engine, audience, scope))
    st.markdown(_(headline).format(count=count_text(total), s="" if total == 1 else "s", who=who))
    if not total:
        return
    if not viewer:
        st.caption(":material/visibility_off: " + _("Member-level rows are not shown to your role; the count is "
                                                     "all."))
        return
    valued = value_window(audience) if window is None else window
    _log_view(principal, audience, page, len(rows))
    member_table(rows, column_config, valued)
    order = _("by net sales from {start} to {end}, highest first").format(start=format_day(valued.start),
                                                                          end=format_day(valued.end))
    shown = (_("The first {rows} {order}; the download holds all {total}. ").format(
        rows=count_text(PREVIEW_ROWS), order=order, total=count_text(total)) if total > PREVIEW_ROWS
        else _("Sorted {order}. ").format(order=order))
    ids = "" if allowed(principal, EXPORT_IDS) else " " + _("The download replaces member ids by a pseudonym.")
    st.caption(shown + _("Names, phones and emails are masked; a member id opens the member's Member 360 page.")
               + ids)
    name = slug(audience.describe())
    buttons = st.columns(3 if targeting else 2)
    plural = "" if total == 1 else "s"
    if allowed(principal, EXPORT_MEMBERS):
        buttons[0].download_button(_(csv_label).format(count=count_text(total), s=plural),
                                   lambda: export_members(engine, audience, principal, page, scope, window=window),
                                   file_name=f"memberlens_{name}.csv", mime="text/csv", icon=":material/download:",
                                   key=f"{key}_csv", on_click="ignore")
    buttons[1].download_button(_("Download the audience definition (JSON)"), audiences.dumps(audience).encode(),
                               file_name=f"memberlens_audience_{name}.json", mime="application/json",
                               icon=":material/data_object:", key=f"{key}_json", on_click="ignore",
                               help=_("The definition as data, to share or keep: Campaign targeting and "
                                      "`python -m analytics audience` re-create exactly these members from it."))
    if targeting:
        buttons[2].button(_("Use in Campaign targeting"), icon=":material/campaign:", key=f"{key}_target",
                          on_click=use_in_targeting, args=(audience,),
                          help=_("Opens Campaign targeting with these members as a condition of the audience."))
