"""Member tags: rule-based labels (high value, dormant, night owl …), how many members carry each, and who."""

from __future__ import annotations

import plotly.express as px
import streamlit as st

from analytics.i18n import _, format_day
from analytics.tags import tag_audience
from ui.app_state import default_author
from ui.cached import cached_tag_coverage
from ui.context import page_inputs
from ui.look import show_chart
from ui.member_sets import member_set

ctx = page_inputs("member_tags")
filters = ctx.filters

st.title(_("Member tags"))
st.caption(_("Tags as of {end}, the last day of the date range; tags about buying look at the completed orders from "
             "{start}. Each tag's rule is shown beside it.").format(end=format_day(filters.end),
                                                                    start=format_day(filters.start)))

coverage = cached_tag_coverage(ctx.engine, filters)
scope = _("members in the chosen tiers") if filters.tiers else _("all members")
chart = px.bar(coverage.sort_values("members"), x="members", y="label", orientation="h", custom_data=["share", "rule"],
               labels={"members": _("Members"), "label": ""}, color_discrete_sequence=["#7b3294"])
chart.update_traces(texttemplate="%{x:,} (%{customdata[0]:.1%})", textposition="outside",
                    hovertemplate=_("<b>%{y}</b><br>%{x:,} members, %{customdata[0]:.1%} of {scope}<extra></extra>")
                    .replace("{scope}", scope))
chart.update_layout(height=120 + 26 * len(coverage), margin={"l": 0, "r": 40, "t": 10, "b": 0})
st.subheader(_("Coverage"), help=_("Members carrying each tag, and their share of {scope}.").format(scope=scope))
show_chart(chart, key="tag_coverage")

st.dataframe(coverage, hide_index=True, column_config={
    "tag": st.column_config.TextColumn(_("Key"), help=_("Stable key, used in audience definitions.")),
    "label": _("Tag"),
    "rule": st.column_config.TextColumn(_("Rule"), width="large"),
    "members": st.column_config.NumberColumn(_("Members"), format="localized"),
    "share": st.column_config.NumberColumn(_("Share of {scope}").format(scope=scope), format="percent"),
})

st.subheader(_("Members with a tag"))
shown = coverage[coverage["members"] > 0]
if shown.empty:
    st.info(_("No member carries any tag with these filters."), icon=":material/search_off:")
    st.stop()
labels = dict(zip(shown["tag"], shown["label"], strict=True))
tag = st.selectbox(_("Tag"), list(labels), format_func=labels.get, key="tag_members_pick",
                   help=_("Its members, names, phones and emails masked."))
row = shown.set_index("tag").loc[tag]
member_set(ctx.engine, tag_audience(filters, tag), key="tag_members",
           who=_("are tagged *{tag}*: {rule}").format(tag=row["label"], rule=row["rule"]),
           actor=default_author(), page="member_tags", count=int(row["members"]))
