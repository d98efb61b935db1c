"""Member tags: rule-based labels (high value, dormant, night owl …), how many members carry each, and who."""

from __future__ import annotations

import plotly.express as px
import streamlit as st

from analytics.tags import tag_audience
from ui.app_state import default_author
from ui.cached import cached_tag_coverage
from ui.context import page_inputs
from ui.member_sets import member_set

ctx = page_inputs("member_tags")
filters = ctx.filters

st.title("Member tags")
st.caption(f"Tags as of {filters.end:%d %b %Y}, the last day of the date range; tags about buying look at the "
           f"completed orders from {filters.start:%d %b %Y}. Each tag's rule is shown beside it.")

coverage = cached_tag_coverage(ctx.engine, filters)
scope = "members in the chosen tiers" if filters.tiers else "all members"
chart = px.bar(coverage.sort_values("members"), x="members", y="label", orientation="h", custom_data=["share", "rule"],
               labels={"members": "Members", "label": ""}, color_discrete_sequence=["#7b3294"])
chart.update_traces(texttemplate="%{x:,} (%{customdata[0]:.1%})", textposition="outside",
                    hovertemplate="<b>%{y}</b><br>%{x:,} members, %{customdata[0]:.1%} of " + scope
                                  + "<extra></extra>")
chart.update_layout(height=120 + 26 * len(coverage), margin={"l": 0, "r": 40, "t": 10, "b": 0})
st.subheader("Coverage", help=f"Members carrying each tag, and their share of {scope}.")
st.plotly_chart(chart, key="tag_coverage")

st.dataframe(coverage, hide_index=True, column_config={
    "tag": st.column_config.TextColumn("Key", help="Stable key, used in audience definitions."),
    "label": "Tag",
    "rule": st.column_config.TextColumn("Rule", width="large"),
    "members": st.column_config.NumberColumn("Members", format="localized"),
    "share": st.column_config.NumberColumn(f"Share of {scope}", format="percent"),
})

st.subheader("Members with a tag")
shown = coverage[coverage["members"] > 0]
if shown.empty:
    st.info("No member carries any tag with these filters.", icon=":material/search_off:")
    st.stop()
labels = dict(zip(shown["tag"], shown["label"], strict=True))
tag = st.selectbox("Tag", list(labels), format_func=labels.get, key="tag_members_pick",
                   help="Its members, names, phones and emails masked.")
row = shown.set_index("tag").loc[tag]
member_set(ctx.engine, tag_audience(filters, tag), key="tag_members", who=f"are tagged *{row['label']}*: {row['rule']}",
           actor=default_author(), page="member_tags", count=int(row["members"]))
