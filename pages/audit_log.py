"""Audit log: who did what, when, with which parameters and how many member rows, as recorded (append-only)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, time, timedelta

import streamlit as st

from analytics.access import VIEW_AUDIT, require
from analytics.exports import bulk_export_rows
from analytics.i18n import N_, _
from analytics.privacy import safe_csv
from analytics.storage.appstate import MIN_AUDIT_RETENTION_DAYS, audit_events, exported_rows
from ui.app_state import record, state_engine
from ui.context import page_inputs
from ui.format import format_value

#: The actions MemberLens writes, for the filter (the log may hold others written by later versions).
ACTIONS = ("view_page", "view_members", "member_360", "unmask", "export_members", "access_package", "import",
           "import_committed", "replace_data", "save_audience", "role_change", "privacy_request",
           "privacy_request_update", "retention_purge", "bulk_export_alert", "access_denied", "export_audit")
#: How the reader names each action (the table's download keeps the codes).
ACTION_LABELS: dict[str, str] = {
    "view_page": N_("Page view of member data"), "view_members": N_("Member list viewed"),
    "member_360": N_("Member 360 look-up"), "unmask": N_("Unmasking"), "export_members": N_("Member export"),
    "access_package": N_("Access package"), "import": N_("Import"), "import_committed": N_("Import committed"),
    "replace_data": N_("All data replaced"), "save_audience": N_("Audience saved"),
    "role_change": N_("Role change"), "privacy_request": N_("Privacy request"),
    "privacy_request_update": N_("Privacy request update"), "retention_purge": N_("Retention purge"),
    "bulk_export_alert": N_("Bulk export alert"), "access_denied": N_("Access denied"),
    "export_audit": N_("Audit log export"),
}
SHOWN = 5_000


def action_label(action: str) -> str:
    """An action as the reader names it (one a later version wrote: its code)."""
    return _(ACTION_LABELS[action]) if action in ACTION_LABELS else action


ctx = page_inputs("audit_log")
viewer = require(ctx.principal, VIEW_AUDIT)
state = state_engine()

st.title(_("Audit log"))
st.caption(_("Every page view of member-level data, Member 360 look-up, member export, unmasking, import, saved "
             "audience, role change and privacy request, under the signed-in identity that did it. Times are UTC. "
             "The log is append-only: the database refuses changes, and deletion of rows younger than {days} days "
             "(retention purges older ones).").format(days=MIN_AUDIT_RETENTION_DAYS))

today = datetime.now(UTC).date()
threshold = bulk_export_rows()
day_start = datetime.combine(today, time())
heavy = exported_rows(state, day_start, day_start + timedelta(days=1))
heavy = heavy[heavy["rows"] > threshold] if not heavy.empty else heavy
if not heavy.empty:
    st.warning(_("**Bulk exports today**: {exports} (alert above {threshold} rows a day).").format(
        exports="; ".join(_("{actor} exported {rows} member rows in {files} file(s)").format(
            actor=row.actor, rows=format_value(int(row.rows), "count"), files=row.exports)
            for row in heavy.itertuples()),
        threshold=format_value(threshold, "count")), icon=":material/notification_important:")

left, middle, right = st.columns([2, 2, 3])
days = left.date_input(_("Days (UTC)"), value=(today - timedelta(days=6), today), max_value=today, key="audit_days",
                       format="YYYY-MM-DD")
picked = [d for d in (days if isinstance(days, (tuple, list)) else (days,)) if d is not None]
start, end = (min(picked), max(picked)) if picked else (today, today)
actor = middle.text_input(_("User (exact identity)"), key="audit_actor", max_chars=320).strip().lower() or None
actions = right.multiselect(_("Actions"), ACTIONS, key="audit_actions", placeholder=_("all actions"),
                            format_func=action_label)
events = audit_events(state, SHOWN, actor=actor, action=actions or None, since=datetime.combine(start, time()),
                      until=datetime.combine(end + timedelta(days=1), time()))

cards = st.columns(3)
cards[0].metric(_("Events shown"), format_value(len(events), "count"), border=True,
                help=_("The newest {n:,} matching events at most.").format(n=SHOWN))
exported = events.loc[events["action"].isin(["export_members", "access_package"]), "rows"].fillna(0)
cards[1].metric(_("Member rows exported"), format_value(int(exported.sum()), "count"), border=True,
                help=_("In the events shown: member exports and access packages."))
cards[2].metric(_("Users"), format_value(events["actor"].nunique(), "count"), border=True)

if events.empty:
    st.info(_("No event matches these filters."), icon=":material/search_off:")
    st.stop()
shown = events.assign(detail=events["detail"].map(
    lambda text: ", ".join(f"{k}: {v}" for k, v in json.loads(text).items()) if text else ""),
    action=events["action"].map(action_label))
st.dataframe(shown, hide_index=True, column_config={
    "event_id": _("Event"), "at": st.column_config.DatetimeColumn(_("When (UTC)"), format="YYYY-MM-DD HH:mm:ss"),
    "actor": _("Who"), "action": _("What"), "detail": st.column_config.TextColumn(_("Parameters"), width="large"),
    "page": _("Page"), "rows": st.column_config.NumberColumn(_("Member rows"), format="localized")})


def _export() -> bytes:
    record(viewer, "export_audit", {"page": "audit_log", "events": len(events), "since": str(start),
                                    "until": str(end)})
    return safe_csv(events)


st.download_button(_("Download these events (CSV)"), _export, file_name=f"memberlens_audit_{start}_{end}.csv",
                   mime="text/csv", icon=":material/download:", key="audit_csv", on_click="ignore")
