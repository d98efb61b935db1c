"""RFM segments: who our buyers are by recency, frequency and value, what each group is worth, and who moved."""

from __future__ import annotations

import pandas as pd
import plotly.express as px
import plotly.graph_objects as go
import streamlit as st

from analytics.errors import InputError
from analytics.rfm import DEFAULT_GRID, NO_PURCHASE, SEGMENT_HELP, SEGMENTS, check_grid, segment_audience
from ui.app_state import default_author
from ui.cached import cached_score_grid, cached_segment_migration, cached_segment_summary
from ui.context import page_inputs
from ui.format import format_value
from ui.member_sets import member_set

SCALE = "RdPu"
GRID_KEY = "rfm_grid_cells"
ctx = page_inputs("rfm_segments")
filters = ctx.filters

st.title("RFM segments")
st.caption(f"Members with a completed order from {filters.start:%d %b %Y} to {filters.end:%d %b %Y}, scored 1–5 on "
           "recency (days since the last order, to the range's last day), frequency (orders) and monetary value "
           "(net sales). Scores are quintiles; members with equal values share a score.")

# The R x FM grid that names the segments: editable, kept for the session.
with st.expander("Segment grid (R score × FM score)", icon=":material/grid_view:"):
    saved = st.session_state.get(GRID_KEY, DEFAULT_GRID)
    table = pd.DataFrame({f"FM {fm}": [saved[(r, fm)] for r in range(5, 0, -1)] for fm in range(1, 6)},
                         index=[f"R {r}" for r in range(5, 0, -1)])
    edited = st.data_editor(table, key="rfm_grid_editor", column_config={
        c: st.column_config.SelectboxColumn(c, options=list(SEGMENTS), required=True) for c in table.columns})
    st.caption("FM score = the mean of the F and M scores, rounded half up. Change a cell to rename where a group of "
               "members falls; every figure on the page follows.")
    try:
        grid = check_grid({(int(r[2:]), int(c[3:])): edited.loc[r, c] for r in edited.index for c in edited.columns})
        st.session_state[GRID_KEY] = grid
    except InputError as problem:
        st.error(str(problem), icon=":material/grid_off:")
        grid = saved
    if st.button("Back to the standard grid", key="rfm_grid_reset"):
        st.session_state.pop(GRID_KEY, None)
        st.session_state.pop("rfm_grid_editor", None)
        st.rerun()
grid_key = tuple((r, fm, s) for (r, fm), s in sorted(grid.items()))

summary = cached_segment_summary(ctx.engine, filters, grid_key)
scored = int(summary["members"].sum())
if scored == 0:
    st.info("No member completed an order in this date range with these filters.", icon=":material/search_off:")
    st.stop()

cards = st.columns(4)
cards[0].metric("Members scored", f"{scored:,}", border=True, help="Members with a completed order in the range.")
cards[1].metric("Their net sales", format_value(float(summary["sales"].sum()), "currency"), border=True)
best = summary.set_index("segment").loc[["Champions", "Loyal"]]
cards[2].metric("Champions + Loyal", f"{best['member_share'].sum():.1%}", border=True,
                delta=f"{best['sales_share'].sum():.1%} of sales", delta_color="off", delta_arrow="off",
                help="Share of the scored members in the two best segments, and their share of the net sales. "
                     + SEGMENT_HELP["Champions"])
risk = summary.set_index("segment").loc[["At Risk", "Can't Lose Them"]]
cards[3].metric("At risk", f"{int(risk['members'].sum()):,}", border=True,
                delta=f"{risk['sales_share'].sum():.1%} of sales", delta_color="off", delta_arrow="off",
                help=f"At Risk and Can't Lose Them: {risk['sales_share'].sum():.1%} of the net sales. "
                     + SEGMENT_HELP["Can't Lose Them"])

left, right = st.columns([3, 2])
with left:
    size_by = st.segmented_control("Size by", ["members", "sales"], default="members", key="rfm_size_by",
                                   required=True, format_func={"members": "Members", "sales": "Net sales"}.get)
    shown = summary[summary["members"] > 0]
    treemap = px.treemap(shown, path=["segment"], values=size_by, color="sales_share", color_continuous_scale=SCALE,
                         custom_data=["members", "member_share", "sales_share", "aov", "avg_recency_days"])
    treemap.update_traces(texttemplate="<b>%{label}</b><br>%{customdata[0]:,} members<br>%{customdata[2]:.1%} of sales",
                          hovertemplate="<b>%{label}</b><br>%{customdata[0]:,} members (%{customdata[1]:.1%})<br>"
                                        "%{customdata[2]:.1%} of net sales<br>AOV %{customdata[3]:,.0f}<br>"
                                        "last order %{customdata[4]:.0f} days ago on average<extra></extra>")
    treemap.update_layout(height=420, margin={"l": 0, "r": 0, "t": 10, "b": 0}, coloraxis_colorbar_title="Sales share")
    st.plotly_chart(treemap, key="rfm_treemap")
with right:
    across = st.segmented_control("R score against", ["f_score", "m_score", "fm_score"], default="f_score",
                                  key="rfm_grid_across", required=True,
                                  format_func={"f_score": "F", "m_score": "M", "fm_score": "FM"}.get)
    counts = cached_score_grid(ctx.engine, filters, across)
    letter = {"f_score": "F", "m_score": "M", "fm_score": "FM"}[across]
    heat = px.imshow(counts.pivot(index="r_score", columns="score", values="members").sort_index(ascending=False),
                     color_continuous_scale=SCALE, text_auto=",d", aspect="auto",
                     labels={"x": f"{letter} score", "y": "R score", "color": "Members"})
    heat.update_layout(height=420, margin={"l": 0, "r": 0, "t": 10, "b": 0})
    heat.update_xaxes(dtick=1)
    heat.update_yaxes(dtick=1)
    st.plotly_chart(heat, key="rfm_score_grid")

st.dataframe(summary.assign(meaning=summary["segment"].map(SEGMENT_HELP)), hide_index=True, column_config={
    "segment": "Segment",
    "members": st.column_config.NumberColumn("Members", format="localized"),
    "member_share": st.column_config.NumberColumn("Share of members", format="percent"),
    "sales": st.column_config.NumberColumn("Net sales", format="localized"),
    "sales_share": st.column_config.NumberColumn("Share of sales", format="percent"),
    "orders": st.column_config.NumberColumn("Orders", format="localized"),
    "aov": st.column_config.NumberColumn("AOV", format="%.0f", help="Net sales / orders."),
    "avg_recency_days": st.column_config.NumberColumn("Days since last order", format="%.0f",
                                                      help="Average over the segment's members."),
    "meaning": st.column_config.TextColumn("Who they are", width="large"),
})

migration_tab, members_tab = st.tabs(["Migration", "Members of a segment"])
with migration_tab:
    before = filters.previous()
    moved = cached_segment_migration(ctx.engine, before, filters, grid_key)
    st.caption(f"Segments in the previous period of equal length ({before.start:%d %b %Y} – {before.end:%d %b %Y}) "
               f"against this one. {NO_PURCHASE}: no completed order in that period.")
    order = [*SEGMENTS, NO_PURCHASE]
    view = st.segmented_control("Show as", ["sankey", "matrix"], default="sankey", key="rfm_migration_view",
                                required=True, format_func={"sankey": "Flows", "matrix": "Transition matrix"}.get)
    if view == "sankey":
        names = [f"{s} (before)" for s in order] + [f"{s} (now)" for s in order]
        flows = moved[moved["members"] > 0]
        sankey = go.Figure(go.Sankey(
            node={"label": names, "pad": 12, "thickness": 14},
            link={"source": flows["before"].map(order.index), "target": flows["after"].map(order.index) + len(order),
                  "value": flows["members"],
                  "hovertemplate": "%{source.label} → %{target.label}<br>%{value:,} members<extra></extra>"}))
        sankey.update_layout(height=620, margin={"l": 0, "r": 0, "t": 10, "b": 10})
        st.plotly_chart(sankey, key="rfm_sankey")
    else:
        matrix = moved.pivot(index="before", columns="after", values="members").reindex(index=order, columns=order)
        figure = px.imshow(matrix.fillna(0), color_continuous_scale=SCALE, text_auto=",d", aspect="auto",
                           labels={"x": "Now", "y": "Before", "color": "Members"})
        figure.update_layout(height=560, margin={"l": 0, "r": 0, "t": 10, "b": 0})
        st.plotly_chart(figure, key="rfm_matrix")

with members_tab:
    segment = st.selectbox("Segment", [s for s in SEGMENTS if s in set(shown["segment"])], key="rfm_members_segment",
                           help="Its members in this date range, names, phones and emails masked.")
    member_set(ctx.engine, segment_audience(filters, (segment,), grid), key="rfm_members",
               who=f"in {segment}: {SEGMENT_HELP[segment].lower()}", actor=default_author(), page="rfm_segments")
