"""Member 360: one member's profile (masked), value, segment, cluster, tags and history on one page.

Every look-up is written to the audit log (once per member per session); contact details are unmasked only for
roles allowed to, with a reason, and the unmasking is written to the audit log before anything is shown."""

from __future__ import annotations

from dataclasses import replace

import plotly.express as px
import streamlit as st

from analytics.access import MEMBER_360, UNMASK, allowed
from analytics.clustering import ALGORITHMS, ClusterSettings
from analytics.errors import InputError
from analytics.i18n import _, format_day
from analytics.member360 import MAX_SEARCH_TEXT, member_profile
from analytics.rfm import LAPSED, LAPSED_HELP, segment_label, segment_meaning
from ui.app_state import record
from ui.cached import (
    CLUSTER_SETTINGS_KEY,
    cached_clusters,
    cached_find_members,
    cached_member_360,
    cached_top_members,
)
from ui.context import link_to_page, page_inputs
from ui.format import format_value, label, plain_text
from ui.look import show_chart
from ui.members import member_table

SEARCH_LIMIT = 20
MIN_REASON_CHARS = 10
SUGGESTED = 10
FOUND_BY = {"id": _("The id"), "number": _("Its number"), "prefix": _("Start of the id"),
            "ends": _("End of the number"), "contains": _("Part of the id")}
FOUND_COLUMN = {"match": st.column_config.TextColumn(_("Found by"), help=_("How the id matches what you typed."))}
#: Order statuses' colours on the timeline, by the status's label (the chart shows labels).
STATUS_COLOURS = {"completed": "#1b9e77", "returned": "#d95f02", "cancelled": "#7570b3"}


def unmask(principal, member: str, reason: str) -> None:
    """The Unmask button's callback: written to the audit log first (a failure raises, and nothing is unmasked),
    then the next run shows the member's contact details."""
    record(principal, "unmask", {"page": "member_360", "member": member, "reason": reason, "rows": 1})
    st.session_state["_m360_unmasked"] = member


ctx = page_inputs("member_360")
filters = ctx.filters
if not allowed(ctx.principal, MEMBER_360):
    st.error(_("Your role does not look up members one by one."), icon=":material/block:")
    st.stop()

st.title(_("Member 360"))
text = st.text_input(_("Member id"), value=st.query_params.get("member", "")[:MAX_SEARCH_TEXT], key="m360_search",
                     placeholder=_("e.g. M00000028, m28 or just 28"), max_chars=MAX_SEARCH_TEXT,
                     help=_("Finds members by id in any case, by its number alone (28 finds M00000028), or by part "
                            "of the id.")).strip()
if not text:
    st.caption(_("Type a member id (or its number) to see the member's profile, value, segment, cluster, tags and "
                 "history. Names, phones and emails are masked."))
    top = cached_top_members(ctx.engine, filters, SUGGESTED, ctx.listing_scope)
    if top.empty:
        st.info(_("No member completed an order from {start} to {end}.").format(start=format_day(filters.start),
                                                                                end=format_day(filters.end)),
                icon=":material/person_search:")
    else:
        st.subheader(_("Top members of the range"), help=_("By net sales of completed orders in the date range."))
        st.caption(_("The {n} members with the largest net sales from {start} to {end}: open one by its id.").format(
            n=len(top), start=format_day(filters.start), end=format_day(filters.end)))
        member_table(top, window=filters)
    st.stop()
found = cached_find_members(ctx.engine, text, SEARCH_LIMIT + 1, filters, ctx.lookup_scope)  # one more: "more than 20"
if found.empty:
    st.info(_("No member id is, starts with or contains “{text}”.").format(text=plain_text(text[:60])),
            icon=":material/person_search:")
    st.stop()
more = len(found) > SEARCH_LIMIT
found = found.head(SEARCH_LIMIT)
best = found[found["match"].isin(["id", "number"])]
ids = found["member_id"].tolist()
listed = found.assign(match=found["match"].map(FOUND_BY))
if len(best) == 1 or len(found) == 1:  # the member typed: open them, and say who else matches
    member_id = (best if len(best) == 1 else found)["member_id"].iloc[0]
    if len(found) > 1:
        others = len(found) - 1
        heading = (_("More than {n} other members match “{text}”") if more
                   else _("{n} other member match “{text}”") if others == 1
                   else _("{n} other members match “{text}”"))
        with st.expander(heading.format(n=others, text=plain_text(text[:60])), icon=":material/group:"):
            member_table(listed[listed["member_id"] != member_id], FOUND_COLUMN, filters)
else:
    st.caption(_("More than {limit} members match; the best {limit} are listed, type more of the id to narrow them "
                 "down.").format(limit=SEARCH_LIMIT) if more
               else _("{n} members match: pick one.").format(n=len(ids)))
    member_table(listed, FOUND_COLUMN, filters)
    member_id = st.selectbox(_("Member"), ids, key="m360_pick")
st.query_params["member"] = member_id

view = cached_member_360(ctx.engine, filters, member_id, ctx.lookup_scope, ctx.listing_scope)
if view is None:  # deleted (or erased) between the search and now
    st.info(_("Member {member} is no longer in the warehouse.").format(member=member_id), icon=":material/person_off:")
    st.stop()
looked_up = st.session_state.setdefault("_m360_looked_up", set())
if member_id not in looked_up:  # one audit row per member looked up in a session (reruns show the same member)
    record(ctx.principal, "member_360", {"page": "member_360", "member": member_id, "rows": 1})
    looked_up.add(member_id)
profile, rfm_row, tags = dict(view["profile"]), view["rfm"], view["tags"]
objected = member_id in ctx.suppression.objected
unmasked_for = st.session_state.get("_m360_unmasked")
if unmasked_for == member_id and allowed(ctx.principal, UNMASK):
    plain = member_profile(ctx.engine, member_id, unmasked=True, scope=ctx.lookup_scope)
    if plain is not None:
        profile.update({k: plain[k] for k in ("name", "phone", "email")})  # never the birth date

with st.container(border=True):
    head, contact = st.columns([3, 2])
    head.subheader(f"{profile['name'] or _('(no name)')} · {member_id}")
    facts = [_("**{tier} tier**").format(tier=label(profile["tier"])) if profile["tier"] else _("**No tier**"),
             _("{points} points").format(points=f"{profile['points_balance'] or 0:,}"),
             _("registered {day}").format(day=format_day(profile["registered_at"])) if profile["registered_at"]
             else None,
             _("via {channel}").format(channel=label(profile["acquisition_channel"]))
             if profile["acquisition_channel"] else None,
             label(profile["gender"]) if profile["gender"] else None,
             _("aged {band}").format(band=profile["age_band"]) if profile["age_band"] else None,
             ", ".join(p for p in (profile["city"], profile["region"]) if p)]
    head.markdown(" · ".join(str(f) for f in facts if f))
    consent = {c: profile[f"consent_{c}"] for c in ("email", "sms", "push")}
    contact.markdown(f":material/mail: {profile['email'] or '–'}  \n:material/call: {profile['phone'] or '–'}  \n"
                     + " ".join(f":{'green' if ok else 'gray'}-badge[{'✓' if ok else '✗'} {label(c)}]"
                                for c, ok in consent.items()),
                     help=_("Contact details (masked unless unmasked below). Badges: consent to be contacted on "
                            "each channel."))
    if allowed(ctx.principal, UNMASK) and unmasked_for != member_id:
        with contact.popover(_("Unmask contact details"), icon=":material/visibility:"):
            reason = st.text_input(_("Reason"), key="m360_unmask_reason", max_chars=300,
                                   placeholder=_("e.g. the member called about order O123 and asked to be called "
                                                 "back"),
                                   help=_("Written to the audit log with your identity before anything is shown."))
            st.button(_("Unmask"), key="m360_unmask", type="primary", on_click=unmask,
                      args=(ctx.principal, member_id, reason.strip()), disabled=len(reason.strip()) < MIN_REASON_CHARS)
    elif unmasked_for == member_id:
        contact.caption(":material/visibility: " + _("Unmasked; written to the audit log."))
if objected:
    st.info(_("This member objected to profiling: no segment, cluster or tags are computed for them."),
            icon=":material/do_not_disturb_on:")

link_to_page("recommendations", _("Recommendations for this member"), ":material/recommend:", {"member": member_id})
if filters.tiers and profile["tier"] not in filters.tiers:
    st.info(_("This member's tier ({tier}) is outside the tier filter, so segment, cluster and tags are not computed "
              "for them; clear the filter to see them.").format(
                  tier=label(profile["tier"]) if profile["tier"] else _("none")),
            icon=":material/filter_alt_off:")
cards = st.columns(4)
if rfm_row is None:
    cards[0].metric(_("RFM segment"), segment_label(LAPSED) if view["lapsed"] else _("Not scored"), border=True,
                    help=(_(LAPSED_HELP) + " " if view["lapsed"] else "")
                    + _("No completed order from {start} to {end}, so RFM does not score the member.").format(
                        start=format_day(filters.start), end=format_day(filters.end)))
    cards[1].metric(_("Net sales in the range"), format_value(0.0, "currency"), border=True,
                    delta=_("no order in the range"), delta_color="off", delta_arrow="off")
else:
    cards[0].metric(_("RFM segment"), segment_label(rfm_row["segment"]), border=True,
                    delta=f"R{rfm_row['r_score']} F{rfm_row['f_score']} M{rfm_row['m_score']}", delta_color="off",
                    delta_arrow="off", help=segment_meaning(rfm_row["segment"]))
    cards[1].metric(_("Net sales in the range"), format_value(rfm_row["monetary"], "currency"), border=True,
                    delta=(_("{n} order · last {days} d") if rfm_row["frequency"] == 1
                           else _("{n} orders · last {days} d")).format(n=rfm_row["frequency"],
                                                                        days=rfm_row["recency_days"]),
                    delta_color="off", delta_arrow="off",
                    help=_("Completed orders in the date range; 'last … d': the last one, this many days before "
                           "the range's last day."))
cluster_slot = cards[2].empty()  # filled last: clustering may take a few seconds on a large warehouse
cards[3].metric(_("Tags"), len(tags), border=True, help=_("Rule-based tags as of the range's last day."))
badges_slot = st.empty()

orders_tab, points_tab, tier_tab = st.tabs([_("Orders"), _("Points"), _("Tier history")], key="member360_tab")
with orders_tab:
    timeline = view["orders"]
    if timeline.empty:
        st.info(_("No orders yet."), icon=":material/shopping_cart_off:")
    else:
        shown = timeline.assign(status=timeline["status"].map(label), channel=timeline["channel"].map(label))
        dots = px.scatter(shown, x="ordered_at", y="net", color="status", size=timeline["items"].clip(lower=1),
                          hover_data={"order_id": True, "channel": True, "top_category": True, "items": True},
                          color_discrete_map={label(s): colour for s, colour in STATUS_COLOURS.items()},
                          labels={"ordered_at": "", "net": _("Net amount"), "status": _("Status"),
                                  "order_id": _("Order id"), "channel": _("Channel"),
                                  "top_category": _("Main category"), "items": _("Lines")})
        dots.add_vrect(x0=filters.start_ts, x1=filters.end_ts, fillcolor="grey", opacity=0.08, line_width=0)
        dots.update_layout(height=320, margin={"l": 0, "r": 0, "t": 10, "b": 0})
        show_chart(dots, key="m360_orders")
        caption = (_("{n} orders (the latest 200)") if len(timeline) == 200
                   else _("{n} order") if len(timeline) == 1 else _("{n} orders"))
        st.caption(_("{orders}; dot size = lines in the order; the shaded band is the date range.").format(
            orders=caption.format(n=f"{len(timeline):,}")))
        st.dataframe(shown, hide_index=True, column_config={
            "order_id": _("Order id"),
            "ordered_at": st.column_config.DatetimeColumn(_("Placed"), format="YYYY-MM-DD HH:mm"),
            "channel": _("Channel"), "status": _("Status"),
            "gross": st.column_config.NumberColumn(_("Gross"), format="%.2f"),
            "discount": st.column_config.NumberColumn(_("Discount"), format="%.2f"),
            "net": st.column_config.NumberColumn(_("Net"), format="%.2f"),
            "points_earned": _("Points earned"), "points_redeemed": _("Points redeemed"), "campaign_id": _("Campaign"),
            "items": _("Lines"), "top_category": _("Main category")})
with points_tab:
    points = view["points"]
    if points.empty:
        st.info(_("No points activity."), icon=":material/toll:")
    else:
        points = points.assign(reason=points["reason"].map(label))
        line = px.line(points, x="occurred_at", y="balance", line_shape="hv", markers=True,
                       hover_data={"delta": True, "reason": True, "order_id": True},
                       labels={"occurred_at": "", "balance": _("Points balance"), "delta": _("Points"),
                               "reason": _("Reason"), "order_id": _("Order id")})
        line.update_layout(height=300, margin={"l": 0, "r": 0, "t": 10, "b": 0})
        show_chart(line, key="m360_points")
        st.dataframe(points.iloc[::-1], hide_index=True, column_config={
            "occurred_at": st.column_config.DatetimeColumn(_("When"), format="YYYY-MM-DD HH:mm"),
            "delta": _("Points"), "reason": _("Reason"), "order_id": _("Order id"), "balance": _("Balance after"),
            "entry_id": _("Entry")})
with tier_tab:
    tiers = view["tiers"]
    if tiers.empty:
        st.info((_("Always {tier} tier: no tier change recorded.").format(tier=label(profile["tier"]))
                 if profile["tier"] else _("Always without a tier: no tier change recorded.")),
                icon=":material/stairs:")
    else:
        tiers = tiers.assign(**{c: tiers[c].map(lambda t: label(t) if isinstance(t, str) else t)
                                for c in ("from_tier", "to_tier")})
        st.dataframe(tiers, hide_index=True, column_config={
            "changed_at": st.column_config.DatetimeColumn(_("Changed"), format="YYYY-MM-DD"),
            "from_tier": _("From tier"), "to_tier": _("To tier")})

# the member's cluster under the settings chosen on Member clusters, or the default ones: computed on demand (cached
# for every page), after the rest of the page is drawn
custom = st.session_state.get(CLUSTER_SETTINGS_KEY)
settings = custom if custom is not None else ClusterSettings()
chosen_where = _("with the settings chosen on the Member clusters page") if custom is not None else (
    _("with the default settings ({k} clusters, {algorithm}, every feature)").format(
        k=settings.k, algorithm=_(ALGORITHMS[settings.algorithm])))
cluster_text, badges = "–", []
try:
    # the clusters page's filters (its scope leaves out members who objected to profiling): the same result
    result = cached_clusters(ctx.engine, replace(filters, scope=ctx.listing_scope), settings)
except InputError as problem:
    cluster_help = str(problem)
else:
    match = result.members.loc[result.members["member_id"] == member_id, ["cluster", "cluster_name"]]
    if match.empty:
        cluster_help = _("Not clustered: fewer than {n} completed order(s) in the range ({where}).").format(
            n=settings.min_orders, where=chosen_where)
    else:
        cluster_text = _("{cluster} of {k}").format(cluster=match.iloc[0]["cluster"], k=settings.k)
        badges.append(f":blue-badge[:material/bubble_chart: {match.iloc[0]['cluster_name']}]")
        cluster_help = _("{name}: cluster {cluster} of {k}, {where}.").format(
            name=match.iloc[0]["cluster_name"], cluster=match.iloc[0]["cluster"], k=settings.k, where=chosen_where)
cluster_slot.metric(_("Cluster"), cluster_text, border=True, help=cluster_help)
badges += [f":violet-badge[:material/sell: {label}]" for label in tags["label"]]
if badges:
    badges_slot.markdown(" ".join(badges),
                         help="\n\n".join(f"**{label}**: {rule}" for label, rule in zip(tags["label"], tags["rule"],
                                                                                          strict=True)))
