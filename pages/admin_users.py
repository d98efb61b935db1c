"""Admin → Users and roles: who may use MemberLens, with which role, restricted to which regions and channels."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from analytics.access import MANAGE_USERS, ROLE_HELP, ROLE_LABELS, ROLES, matrix, require
from analytics.errors import MemberLensError
from analytics.storage.users import grant, list_users, revoke
from ui.app_state import state_engine
from ui.cached import cached_regions
from ui.context import page_inputs
from ui.format import format_value
from ui.identity import auth_configured

ctx = page_inputs("admin_users")
admin = require(ctx.principal, MANAGE_USERS)
state = state_engine()

st.title("Users and roles")
if not auth_configured():
    st.info("Sign-in is not configured, so MemberLens runs as a single-user local tool and you are admin. The users "
            "below take effect once sign-in is configured (`[auth]` in `.streamlit/secrets.toml`).",
            icon=":material/computer:")
st.caption("A user is the identity their sign-in provider vouches for (their email address). Every change is "
           "written to the audit log under your identity. A user may be restricted to regions and sales channels: "
           "every analysis they run then reads only those members and orders.")

users = list_users(state)
cards = st.columns(len(ROLES) + 1)
cards[0].metric("Users", format_value(len(users), "count"), border=True)
for column, role in zip(cards[1:], ROLES, strict=True):
    column.metric(ROLE_LABELS[role], format_value(int((users["role"] == role).sum()), "count"), border=True,
                  help=ROLE_HELP[role])
if users.empty:
    st.caption("No users yet: the first admin comes from `admins = [...]` under `[memberlens]` in "
               "`.streamlit/secrets.toml` (or `MEMBERLENS_ADMINS`) at their first sign-in.")
else:
    shown = users.assign(role=users["role"].map(lambda r: ROLE_LABELS.get(r, "no role") if r else "no role"))
    st.dataframe(shown, hide_index=True, column_config={
        "identity": "User", "name": "Name", "role": "Role", "regions": "Only regions", "channels": "Only channels",
        "created_at": st.column_config.DatetimeColumn("Added (UTC)", format="YYYY-MM-DD HH:mm"),
        "updated_at": st.column_config.DatetimeColumn("Changed (UTC)", format="YYYY-MM-DD HH:mm"),
        "updated_by": "Changed by"})

st.subheader("Give a role")
with st.form("admin_grant", border=True):
    left, right = st.columns(2)
    identity = left.text_input("User (sign-in email)", max_chars=320, key="admin_identity",
                               placeholder="name@example.com")
    role = right.selectbox("Role", ROLES, format_func=ROLE_LABELS.get, key="admin_role",
                           help="\n\n".join(f"**{ROLE_LABELS[r]}**: {ROLE_HELP[r]}" for r in ROLES))
    regions = left.multiselect("Only these regions (empty: all)", cached_regions(ctx.engine), key="admin_regions",
                               max_selections=100)
    channels = right.multiselect("Only these sales channels (empty: all)", ctx.options.channels,
                                 key="admin_channels", max_selections=100)
    name = left.text_input("Name (optional)", max_chars=200, key="admin_name")
    if st.form_submit_button("Save the role", icon=":material/how_to_reg:", type="primary"):
        try:
            user = grant(state, admin, identity, role, name=name or None, regions=regions, channels=channels)
        except MemberLensError as problem:
            st.error(problem.message, icon=":material/error:")
        else:
            st.success(f"{user.identity} is now {ROLE_LABELS[role]}"
                       + (f", restricted to {', '.join(user.regions + user.channels)}" if user.regions or user.channels
                          else "") + ".", icon=":material/check:")

if not users.empty:
    st.subheader("Take a role away")
    left, right = st.columns([3, 1], vertical_alignment="bottom")
    who = left.selectbox("User", users.loc[users["role"].notna(), "identity"].tolist(), key="admin_revoke_who",
                         index=None, placeholder="choose a user")
    sure = left.checkbox("They will see nothing in MemberLens until given a role again.", key="admin_revoke_sure")
    if right.button("Take the role away", icon=":material/person_remove:", disabled=not (who and sure),
                    key="admin_revoke"):
        try:
            revoke(state, admin, who)
        except MemberLensError as problem:
            st.error(problem.message, icon=":material/error:")
        else:
            st.success(f"{who} has no role now.", icon=":material/check:")

with st.expander("What each role may do", icon=":material/table_view:"):
    table = pd.DataFrame(matrix())
    st.dataframe(table.rename(columns={"kind": "Kind", "what": "Page or action", **ROLE_LABELS}).drop(columns="key"),
                 hide_index=True, column_config={ROLE_LABELS[r]: st.column_config.CheckboxColumn(ROLE_LABELS[r])
                                                 for r in ROLES})
    st.caption("Defined once in analytics/access.py; the navigation, every page and every action check it.")
