"""Member tags: rule-based labels (high value, dormant, night owl …), how many members carry each, and who."""

from __future__ import annotations

import json

import plotly.express as px
import streamlit as st

from analytics.portraits import tag_audience_spec
from ui.cached import cached_tag_coverage, cached_tag_members, tag_members_csv
from ui.context import page_inputs
from ui.members import member_table

PREVIEW_ROWS = 100
ctx = page_inputs()
filters = ctx.filters

st.title("Member tags")
st.caption(f"Tags as of {filters.end:%d %b %Y}, the last day of the date range; tags about buying look at the "
           f"completed orders from {filters.start:%d %b %Y}. Each tag's rule is shown beside it.")

coverage = cached_tag_coverage(ctx.engine, ctx.url, filters)
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
st.markdown(f"**{int(row['members']):,} members** are tagged *{row['label']}*: {row['rule']}")
member_table(cached_tag_members(ctx.engine, ctx.url, filters, tag, PREVIEW_ROWS))
st.caption(f"The first {min(int(row['members']), PREVIEW_ROWS):,} by member id. Names, phones and emails are masked.")
slug = tag.replace(":", "_").replace(" ", "_").replace("&", "and").lower()
buttons = st.columns(2)
buttons[0].download_button(f"Download all {int(row['members']):,} members (CSV, masked)",
                           lambda: tag_members_csv(ctx.engine, filters, tag), file_name=f"memberlens_tag_{slug}.csv",
                           mime="text/csv", icon=":material/download:", key="tag_members_download")
buttons[1].download_button(
    "Download the audience definition (JSON)",
    json.dumps(tag_audience_spec(filters, tag), indent=2, ensure_ascii=False).encode(),
    file_name=f"memberlens_audience_tag_{slug}.json", mime="application/json", icon=":material/groups:",
    key="tag_audience_download", help="The tag, date range and filters as data: targeting re-creates the audience "
                                      "from it.")
