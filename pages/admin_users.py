"""Admin → Users and roles: who may use MemberLens, with which role, restricted to which regions and channels."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from analytics.access import MANAGE_USERS, ROLES, action_text, matrix, require, role_help, role_label
from analytics.errors import MemberLensError
from analytics.i18n import N_, _
from analytics.storage.users import grant, list_users, revoke
from ui import format as fmt
from ui.app_state import state_engine
from ui.cached import cached_regions
from ui.context import page_inputs
from ui.format import format_value
from ui.identity import auth_configured

#: The pages of the role matrix by key, as the navigation names them (app.py's titles).
PAGE_TITLES: dict[str, str] = {
    "kpis": N_("Executive KPIs"), "rfm_segments": N_("RFM segments"), "clusters": N_("Member clusters"),
    "member_tags": N_("Member tags"), "member_360": N_("Member 360"), "predictions": N_("Predictions"),
    "heatmaps": N_("Heatmaps"), "programme": N_("Programme"), "funnels": N_("Funnels"),
    "basket_rules": N_("Basket rules"), "recommendations": N_("Recommendations"),
    "campaign_targeting": N_("Campaign targeting"), "experiments": N_("Experiment read-out"),
    "campaign_results": N_("Campaign results"), "warehouse": N_("Warehouse"), "import_data": N_("Import data"),
    "data_quality": N_("Data quality"), "privacy_requests": N_("Privacy requests"), "audit_log": N_("Audit log"),
    "admin_users": N_("Users and roles"),
}


def page_title(key: str) -> str:
    return _(PAGE_TITLES[key]) if key in PAGE_TITLES else key.replace("_", " ")


ctx = page_inputs("admin_users")
admin = require(ctx.principal, MANAGE_USERS)
state = state_engine()

st.title(_("Users and roles"))
if not auth_configured():
    st.info(_("Sign-in is not configured, so MemberLens runs as a single-user local tool and you are admin. The "
              "users below take effect once sign-in is configured ({section} in {file}).").format(
        section="`[auth]`", file="`.streamlit/secrets.toml`"), icon=":material/computer:")
st.caption(_("A user is the identity their sign-in provider vouches for (their email address). Every change is "
             "written to the audit log under your identity. A user may be restricted to regions and sales channels: "
             "every analysis they run then reads only those members and orders."))

users = list_users(state)
cards = st.columns(len(ROLES) + 1)
cards[0].metric(_("Users"), format_value(len(users), "count"), border=True)
for column, role in zip(cards[1:], ROLES, strict=True):
    column.metric(role_label(role), format_value(int((users["role"] == role).sum()), "count"), border=True,
                  help=role_help(role))
if users.empty:
    st.caption(_("No users yet: the first admin comes from {setting} under {section} in {file} (or {variable}) at "
                 "their first sign-in.").format(setting="`admins = [...]`", section="`[memberlens]`",
                                                file="`.streamlit/secrets.toml`", variable="`MEMBERLENS_ADMINS`"))
else:
    shown = users.assign(role=users["role"].map(lambda r: role_label(r) if r else role_label(None)))
    st.dataframe(shown, hide_index=True, column_config={
        "identity": _("User"), "name": _("Name"), "role": _("Role"), "regions": _("Only regions"),
        "channels": _("Only channels"),
        "created_at": st.column_config.DatetimeColumn(_("Added (UTC)"), format="YYYY-MM-DD HH:mm"),
        "updated_at": st.column_config.DatetimeColumn(_("Changed (UTC)"), format="YYYY-MM-DD HH:mm"),
        "updated_by": _("Changed by")})

st.subheader(_("Give a role"))
with st.form("admin_grant", border=True):
    left, right = st.columns(2)
    identity = left.text_input(_("User (sign-in email)"), max_chars=320, key="admin_identity",
                               placeholder="name@example.com")
    role = right.selectbox(_("Role"), ROLES, format_func=role_label, key="admin_role",
                           help="\n\n".join(f"**{role_label(r)}**: {role_help(r)}" for r in ROLES))
    regions = left.multiselect(_("Only these regions (empty: all)"), cached_regions(ctx.engine), key="admin_regions",
                               max_selections=100)
    channels = right.multiselect(_("Only these sales channels (empty: all)"), ctx.options.channels,
                                 key="admin_channels", max_selections=100, format_func=fmt.label)
    name = left.text_input(_("Name (optional)"), max_chars=200, key="admin_name")
    if st.form_submit_button(_("Save the role"), icon=":material/how_to_reg:", type="primary"):
        try:
            user = grant(state, admin, identity, role, name=name or None, regions=regions, channels=channels)
        except MemberLensError as problem:
            st.error(problem.message, icon=":material/error:")
        else:
            restricted = ", ".join(user.regions + user.channels)
            st.success((_("{user} is now {role}, restricted to {only}.") if restricted else
                        _("{user} is now {role}.")).format(user=user.identity, role=role_label(role), only=restricted),
                       icon=":material/check:")

if not users.empty:
    st.subheader(_("Take a role away"))
    left, right = st.columns([3, 1], vertical_alignment="bottom")
    who = left.selectbox(_("User"), users.loc[users["role"].notna(), "identity"].tolist(), key="admin_revoke_who",
                         index=None, placeholder=_("choose a user"))
    sure = left.checkbox(_("They will see nothing in MemberLens until given a role again."), key="admin_revoke_sure")
    if right.button(_("Take the role away"), icon=":material/person_remove:", disabled=not (who and sure),
                    key="admin_revoke"):
        try:
            revoke(state, admin, who)
        except MemberLensError as problem:
            st.error(problem.message, icon=":material/error:")
        else:
            st.success(_("{user} has no role now.").format(user=who), icon=":material/check:")

with st.expander(_("What each role may do"), icon=":material/table_view:"):
    table = pd.DataFrame(matrix())
    table = table.assign(
        what=[page_title(key) if kind == "page" else action_text(key)
              for kind, key in zip(table["kind"], table["key"], strict=True)],
        kind=table["kind"].map({"page": _("Page"), "action": _("Action")}))
    st.dataframe(table.drop(columns="key"), hide_index=True, column_config={
        "kind": _("Kind"), "what": _("Page or action"),
        **{r: st.column_config.CheckboxColumn(role_label(r)) for r in ROLES}})
    st.caption(_("Defined once in analytics/access.py; the navigation, every page and every action check it."))
