"""Privacy requests: members' rights under PIPL (access, correction, erasure, objection to profiling) and retention.

Each request is recorded with the signed-in privacy officer's identity and written to the audit log; erasure and
objection are honoured from the moment they are recorded (the suppression list every analysis reads)."""

from __future__ import annotations

from datetime import date

import streamlit as st

from analytics.access import ERASE_MEMBER, PRIVACY_REQUESTS, PURGE, allowed, require
from analytics.errors import MemberLensError
from analytics.i18n import N_, _
from analytics.privacy import safe_csv
from analytics.privacy_rights import (
    CORRECTABLE,
    CORRECTABLE_LABELS,
    access_package,
    correct_member,
    erase_member,
    is_embedded,
    member_tables,
    object_to_profiling,
    pending_for_owner,
    purge,
    retention_policy,
    withdraw_objection,
)
from analytics.storage.privacy_store import requests, suppression_rows
from ui.app_state import state_engine
from ui.cached import cached_retention_report
from ui.context import page_inputs
from ui.format import format_value
from ui.warehouse import forget_warehouse

ctx = page_inputs("privacy_requests")
officer = require(ctx.principal, PRIVACY_REQUESTS)
state = state_engine()
embedded = is_embedded(ctx.config.url)
session = st.session_state
#: The request kinds and statuses as the reader names them (the table and its download keep the codes).
KINDS = {"access": N_("Access (copy)"), "correction": N_("Correction"), "erasure": N_("Erasure"),
         "objection": N_("Objection to profiling"), "withdrawal": N_("Withdrawal of the objection")}
STATUSES = {"done": N_("Done"), "pending_owner": N_("Pending for the owner"), "refused": N_("Refused")}


def _named(codes, names: dict[str, str]):
    """A column of codes as the reader names them (an unknown code as it is)."""
    return codes.map(lambda code: _(names[code]) if code in names else code)


tables = ", ".join(table.name for table, _column, _via in member_tables())

st.title(_("Privacy requests"))
st.caption(_("A member's rights under PIPL: a copy of their data, correction, erasure, and objection to profiling. "
             "Each request is recorded under your identity and written to the audit log.") + " "
           + (_("This is the embedded warehouse: erasures and corrections are applied to it.")
              if embedded else _("This warehouse is external: MemberLens honours erasures and corrections at once "
                                 "and lists them for the warehouse's owner to apply (Requests → pending changes).")))

suppressed = suppression_rows(state)
cards = st.columns(4)
cards[0].metric(_("Erased members"), format_value(int((suppressed["reason"] == "erased").sum()), "count"),
                border=True,
                help=_("On the suppression list: left out of every analysis, list, audience, export and model."))
cards[1].metric(_("Objected to profiling"), format_value(int((suppressed["reason"] == "objected").sum()), "count"),
                border=True, help=_("Left out of segments, clusters, tags, rules, targeting and member lists."))
pending = pending_for_owner(state)
cards[2].metric(_("Pending for the owner"), format_value(len(pending), "count"), border=True,
                help=_("Erasures and corrections an external warehouse's owner must still apply."))
cards[3].metric(_("Requests recorded"), format_value(len(requests(state, limit=100_000)), "count"), border=True)

member_id = st.text_input(_("Member id"), key="privacy_member", max_chars=200,
                          placeholder=_("e.g. M00000007 (as the member's records name them)")).strip()
reference = st.text_input(_("The member's reference (optional)"), key="privacy_reference", max_chars=200,
                          help=_("How the request reached you (a ticket number): kept with the request.")).strip()

access_tab, correction_tab, erasure_tab, objection_tab, list_tab, retention_tab = st.tabs(
    [_("Access (copy)"), _("Correction"), _("Erasure"), _("Objection to profiling"), _("Requests"),
     _("Retention periods")], key="privacy_tab")

with access_tab:
    st.write(_("Everything MemberLens holds about the member: their rows in {tables}, and MemberLens's own records "
               "(their requests, the suppression list, audit events naming them).").format(
        tables=", ".join(f"`{table.name}`" for table, _column, _via in member_tables())))
    if st.button(_("Prepare the package"), icon=":material/folder_zip:", disabled=not member_id, key="privacy_access"):
        try:
            package = access_package(ctx.engine, state, officer, member_id)
        except MemberLensError as problem:
            st.error(problem.message, icon=":material/error:")
        else:
            session["privacy_package"] = package
    package = session.get("privacy_package")
    if package is not None and package.member_id == member_id:
        st.success(_("{rows} rows about {member} (recorded in the audit log). Hand the files to the member through "
                     "your verified channel.").format(rows=format_value(package.rows, "count"),
                                                      member=package.member_id), icon=":material/check:")
        left, right = st.columns(2)
        left.download_button(_("Download as JSON"), package.to_json(), file_name=f"memberlens_{member_id}.json",
                             mime="application/json", icon=":material/data_object:", key="privacy_json",
                             on_click="ignore")
        right.download_button(_("Download as ZIP (JSON and CSV)"), package.to_zip(),
                              file_name=f"memberlens_{member_id}.zip", mime="application/zip",
                              icon=":material/folder_zip:", key="privacy_zip", on_click="ignore")

with correction_tab:
    left, right = st.columns(2)
    column = left.selectbox(_("What to correct"), CORRECTABLE, key="privacy_correct_column",
                            format_func=lambda c: _(CORRECTABLE_LABELS[c]))
    value = right.text_input(_("Correct value (empty: remove it)"), key="privacy_correct_value", max_chars=200,
                             help=_("Dates as YYYY-MM-DD; consents as yes or no."))
    if st.button(_("Record the correction"), icon=":material/edit_note:", disabled=not member_id,
                 key="privacy_correct"):
        try:
            if embedded:
                forget_warehouse()  # DuckDB allows one writer: release the app's read-only connections first
            result = correct_member(ctx.config.url, state, officer, member_id, {column: value}, reference)
        except MemberLensError as problem:
            st.error(problem.message, icon=":material/error:")
        else:
            outcome = (_("applied to the warehouse.") if result.status == "done" else
                       _("listed for the warehouse's owner.") if result.status == "pending_owner" else
                       _("no such member in the warehouse."))
            st.success(_("Correction recorded (request {request}): {outcome}").format(
                request=result.request_id, outcome=outcome), icon=":material/check:")

with erasure_tab:
    if not allowed(ctx.principal, ERASE_MEMBER):
        st.info(_("Your role does not erase members."), icon=":material/block:")
    else:
        st.warning(_("Erasure takes the member out of every analysis, list, audience, export and model at once, and "
                     "deletes their rows from the warehouse: it cannot be undone.") if embedded else
                   _("Erasure takes the member out of every analysis, list, audience, export and model at once; "
                     "their rows stay in the external warehouse until its owner deletes them."),
                   icon=":material/warning:")
        typed = st.text_input(_("Type the member id again to confirm"), key="privacy_erase_confirm", max_chars=200)
        if st.button(_("Erase the member"), icon=":material/delete_forever:", type="primary", key="privacy_erase",
                     disabled=not member_id or typed.strip() != member_id):
            try:
                if embedded:
                    forget_warehouse()
                result = erase_member(ctx.config.url, state, officer, member_id, reference)
            except MemberLensError as problem:
                st.error(problem.message, icon=":material/error:")
            else:
                deleted = sum(result.changed.values())
                outcome = (_("{rows} rows deleted.").format(rows=format_value(deleted, "count"))
                           if result.status == "done" else _("suppressed now, listed for the warehouse's owner."))
                st.success(_("{member} is erased (request {request}): {outcome}").format(
                    member=member_id, request=result.request_id, outcome=outcome), icon=":material/check:")

with objection_tab:
    st.write(_("A member who objects to profiling is left out of RFM segments, clusters, tags, basket rules, "
               "campaign targeting and every member list; aggregates (KPIs, heatmaps, funnels) still count them."))
    left, right = st.columns(2)
    if left.button(_("Record the objection"), icon=":material/do_not_disturb_on:", disabled=not member_id,
                   key="privacy_object"):
        result = object_to_profiling(state, officer, member_id, reference)
        st.success(_("{member} is left out of profiling from now on (request {request}).").format(
            member=member_id, request=result.request_id), icon=":material/check:")
    if right.button(_("Record a withdrawal of the objection"), icon=":material/undo:", disabled=not member_id,
                    key="privacy_withdraw"):
        result = withdraw_objection(state, officer, member_id, reference)
        st.success(_("{member} is profiled again (request {request}).").format(member=member_id,
                                                                               request=result.request_id),
                   icon=":material/check:")

with list_tab:
    recorded = requests(state, member_id=member_id or None, limit=1_000)
    st.dataframe(recorded.assign(kind=_named(recorded["kind"], KINDS), status=_named(recorded["status"], STATUSES)),
                 hide_index=True, column_config={
        "request_id": _("Request"), "member_id": _("Member"), "kind": _("Kind"), "status": _("Status"),
        "recorded_at": st.column_config.DatetimeColumn(_("Recorded (UTC)"), format="YYYY-MM-DD HH:mm"),
        "recorded_by": _("By"),
        "completed_at": st.column_config.DatetimeColumn(_("Done (UTC)"), format="YYYY-MM-DD HH:mm"),
        "detail": st.column_config.TextColumn(_("Detail"), width="large")})
    if not pending.empty:
        st.download_button(_("Download the {n:,} pending changes for the warehouse's owner (CSV)").format(
                               n=len(pending)),
                           safe_csv(pending), file_name="memberlens_pending_privacy_changes.csv", mime="text/csv",
                           icon=":material/download:", key="privacy_pending", on_click="ignore",
                           help=_("Erasure: delete the member's rows from {tables}. Correction: set the values "
                                  "given.").format(tables=tables))

with retention_tab:
    policy = retention_policy()
    report = cached_retention_report(ctx.engine, policy, date.today())
    st.dataframe(report.assign(item=report["item"].map(_), purge=report["purge"].map(_)), hide_index=True,
                 column_config={
        "item": _("What"), "period_days": st.column_config.NumberColumn(_("Kept (days)"), format="localized"),
        "past_period": st.column_config.NumberColumn(_("Past the period"), format="localized"),
        "oldest": st.column_config.DatetimeColumn(_("Oldest"), format="YYYY-MM-DD"), "purge": _("Purging")},
                 placeholder="")
    st.caption(_("Periods are configured with MEMBERLENS_RETENTION_* or [memberlens.retention] in secrets.toml; "
                 "{command} does the same as the button.").format(command="`python -m analytics privacy purge`"))
    if allowed(ctx.principal, PURGE):
        sure = st.checkbox(_("Purge what is past its period now (personal data anonymised, rows and files deleted)."),
                           key="privacy_purge_sure")
        if st.button(_("Purge"), icon=":material/auto_delete:",
                     disabled=not sure or not int(report["past_period"].sum()), key="privacy_purge"):
            if embedded:
                forget_warehouse()
            done = purge(ctx.config.url, ctx.engine, state, ctx.principal, policy, date.today())
            cached_retention_report.clear()
            st.success(_("Purged: {members:,} members anonymised, {audit:,} audit rows, {audiences:,} saved "
                         "audience versions, {files:,} files.").format(
                members=done.anonymised_members, audit=done.audit_rows, audiences=done.saved_audiences,
                files=done.uploads), icon=":material/check:")
            if not done.members_for_owner.empty:
                st.download_button(_("Inactive members for the warehouse's owner to anonymise (CSV)"),
                                   safe_csv(done.members_for_owner), file_name="memberlens_inactive_members.csv",
                                   mime="text/csv", key="privacy_purge_owner", on_click="ignore")
