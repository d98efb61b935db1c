"""RFM segments: who our buyers are by recency, frequency and value, what each group is worth, and who moved."""

from __future__ import annotations

import pandas as pd
import plotly.express as px
import plotly.graph_objects as go
import streamlit as st

from analytics.errors import InputError
from analytics.i18n import _, format_day
from analytics.rfm import (
    COMBINED,
    DEFAULT_GRID,
    LAPSED,
    LAPSED_HELP,
    NO_PURCHASE,
    SEGMENTS,
    check_grid,
    migration_audience,
    segment_audience,
    segment_label,
    segment_meaning,
    with_lapsed,
)
from ui.app_state import default_author
from ui.cached import cached_lapsed_summary, cached_score_grid, cached_segment_migration, cached_segment_summary
from ui.context import page_inputs
from ui.format import ACCENT, count, format_value, share
from ui.look import show_chart
from ui.member_sets import member_set
from ui.segment_colours import SEGMENT_COLOURS, text_on, translucent

SCALE = "RdPu"
GRID_KEY = "rfm_grid_cells"
CLICK_KEY = "_rfm_move_clicked"


def migration_matrix(moved: pd.DataFrame, order: list[str]) -> tuple[str, str] | None:
    """The transition matrix; returns the (before, after) of the cell clicked. Streamlit receives no selection from
    a click on a heatmap trace (streamlit#8760), so an invisible marker on every cell takes the click (as on the
    Heatmaps page) and carries the cell's segments."""
    matrix = moved.pivot(index="before", columns="after", values="members").reindex(index=order, columns=order)
    shown_as = [segment_label(s) for s in order]  # axes in the reader's words; the clicks carry the names
    matrix.index, matrix.columns = shown_as, shown_as
    figure = px.imshow(matrix.fillna(0), color_continuous_scale=SCALE, text_auto=",d", aspect="auto",
                       labels={"x": _("Now"), "y": _("Before"), "color": _("Members")})
    figure.update_traces(hoverinfo="skip", hovertemplate=None)
    cells = [(b, a) for b in order for a in order]
    sizes = moved.set_index(["before", "after"])["members"]
    figure.add_trace(go.Scatter(
        x=[segment_label(a) for _b, a in cells], y=[segment_label(b) for b, _a in cells], mode="markers",
        showlegend=False, hoverinfo="text",
        hovertext=[_("{before} → {after}<br>{count} members<br>click for the list").format(
            before=segment_label(b), after=segment_label(a), count=count(int(sizes.get((b, a), 0))))
            for b, a in cells],
        customdata=[[b, a] for b, a in cells],
        marker={"size": 18, "symbol": "square-open", "color": ACCENT, "opacity": 0, "line": {"width": 2}},
        selected={"marker": {"opacity": 1}}, unselected={"marker": {"opacity": 0}}))
    figure.update_layout(height=560, margin={"l": 0, "r": 0, "t": 10, "b": 0}, hoverdistance=-1)
    event = show_chart(figure, key="rfm_matrix", on_select="rerun", selection_mode="points")
    points = [p for p in (event or {}).get("selection", {}).get("points", []) if p.get("customdata")]
    if not points:
        return None
    before, after = points[0]["customdata"]
    return (before, after) if before in order and after in order else None


ctx = page_inputs("rfm_segments")
filters = ctx.filters

st.title(_("RFM segments"))
st.caption(_("Members with a completed order from {start} to {end}, scored 1–5 on recency (days since the last order, "
             "to the range's last day), frequency (orders) and monetary value (net sales). Scores are quintiles; "
             "members with equal values share a score.").format(start=format_day(filters.start),
                                                                 end=format_day(filters.end)))

# The R x FM grid that names the segments: editable, kept for the session.
with st.expander(_("Segment grid (R score × FM score)"), icon=":material/grid_view:"):
    saved = st.session_state.get(GRID_KEY, DEFAULT_GRID)
    table = pd.DataFrame({f"FM {fm}": [saved[(r, fm)] for r in range(5, 0, -1)] for fm in range(1, 6)},
                         index=[f"R {r}" for r in range(5, 0, -1)])
    edited = st.data_editor(table, key="rfm_grid_editor", column_config={
        c: st.column_config.SelectboxColumn(c, options=list(SEGMENTS), required=True,
                                            format_func={s: segment_label(s) for s in SEGMENTS}.__getitem__)
        for c in table.columns})
    st.caption(_("FM score = the mean of the F and M scores, rounded half up. Change a cell to rename where a group "
                 "of members falls; every figure on the page follows."))
    try:
        grid = check_grid({(int(r[2:]), int(c[3:])): edited.loc[r, c] for r in edited.index for c in edited.columns})
        st.session_state[GRID_KEY] = grid
    except InputError as problem:
        st.error(str(problem), icon=":material/grid_off:")
        grid = saved
    if st.button(_("Back to the standard grid"), key="rfm_grid_reset"):
        st.session_state.pop(GRID_KEY, None)
        st.session_state.pop("rfm_grid_editor", None)
        st.rerun()
grid_key = tuple((r, fm, s) for (r, fm), s in sorted(grid.items()))

summary = cached_segment_summary(ctx.engine, filters, grid_key)
scored = int(summary["members"].sum())
if scored == 0:
    st.info(_("No member completed an order in this date range with these filters: widen the range or clear the "
              "channel and tier filters."), icon=":material/search_off:")
    st.stop()

lapsed = cached_lapsed_summary(ctx.engine, filters)
by_segment = summary.set_index("segment")
cards = [*st.columns(3), *st.columns(2)]  # two rows: the groups' names are long, and they are the point
cards[0].metric(_("Members scored"), count(scored), border=True,
                help=_("Members with a completed order in the range."))
cards[1].metric(_("Their net sales"), format_value(float(summary["sales"].sum()), "currency"), border=True)
for column, (name, parts) in zip(cards[3:5], COMBINED.items(), strict=True):
    group = by_segment.loc[list(parts)]
    column.metric(segment_label(name), count(int(group["members"].sum())), border=True,
                  delta=_("{members} of members · {sales} of sales").format(
                      members=share(group["member_share"].sum()), sales=share(group["sales_share"].sum())),
                  delta_color="off", delta_arrow="off",
                  help=_("The {first} and {second} segments together: {sizes}. {meanings}").format(
                      first=segment_label(parts[0]), second=segment_label(parts[1]),
                      sizes="; ".join(f"{segment_label(p)} {count(int(by_segment.loc[p, 'members']))}"
                                        for p in parts),
                      meanings=" ".join(f"**{segment_label(p)}**: {segment_meaning(p)}" for p in parts)))
cards[2].metric(segment_label(LAPSED), count(lapsed.members), border=True,
                delta=(_("last order {days} days ago on average").format(
                    days=f"{lapsed.avg_days_since_last_order:.0f}")
                       if lapsed.avg_days_since_last_order is not None else None), delta_color="off", delta_arrow="off",
                help=_("{meaning} Not scored, so in none of the segments; they spent {sales} before the range. Over a "
                       "90-day range they are the members tagged Dormant 90 days.").format(
                    meaning=_(LAPSED_HELP), sales=format_value(lapsed.sales_before, "currency")))

left, right = st.columns([3, 2])
with left:
    size_by = st.segmented_control(_("Size by"), ["members", "sales"], default="members", key="rfm_size_by",
                                   required=True, format_func={"members": _("Members"), "sales": _("Net sales")}.get)
    shown = summary[summary["members"] > 0]
    colours = {segment_label(s): colour for s, colour in SEGMENT_COLOURS.items()}  # by the name the reader sees
    treemap = px.treemap(shown.assign(label=shown["segment"].map(segment_label)), path=["label"], values=size_by,
                         color="label", color_discrete_map=colours,
                         custom_data=["members", "member_share", "sales_share", "aov", "avg_recency_days"])
    treemap.update_traces(texttemplate=_("<b>%{label}</b><br>%{customdata[0]:,} members<br>%{customdata[2]:.1%} of "
                                         "sales"),
                          hovertemplate=_("<b>%{label}</b><br>%{customdata[0]:,} members (%{customdata[1]:.1%})<br>"
                                          "%{customdata[2]:.1%} of net sales<br>AOV %{customdata[3]:,.0f}<br>"
                                          "last order %{customdata[4]:.0f} days ago on average<extra></extra>"))
    treemap.update_traces(insidetextfont={"color": [text_on(colours[str(label)])  # in the trace's order
                                                    for label in treemap.data[0].labels]})
    treemap.update_layout(height=420, margin={"l": 0, "r": 0, "t": 10, "b": 0})
    show_chart(treemap, key="rfm_treemap")
    st.caption(_("Each segment keeps its colour on every chart. Not in the treemap: the {count} lapsed members (no "
                 "order in the range, so not scored).").format(count=count(lapsed.members)))
with right:
    across = st.segmented_control(_("R score against"), ["f_score", "m_score", "fm_score"], default="f_score",
                                  key="rfm_grid_across", required=True,
                                  format_func={"f_score": "F", "m_score": "M", "fm_score": "FM"}.get)
    counts = cached_score_grid(ctx.engine, filters, across)
    letter = {"f_score": "F", "m_score": "M", "fm_score": "FM"}[across]
    heat = px.imshow(counts.pivot(index="r_score", columns="score", values="members").sort_index(ascending=False),
                     color_continuous_scale=SCALE, text_auto=",d", aspect="auto",
                     labels={"x": _("{letter} score").format(letter=letter), "y": _("R score"),
                             "color": _("Members")})
    heat.update_layout(height=420, margin={"l": 0, "r": 0, "t": 10, "b": 0})
    heat.update_xaxes(dtick=1)
    heat.update_yaxes(dtick=1)
    show_chart(heat, key="rfm_score_grid")

table = with_lapsed(summary, lapsed)
st.dataframe(table.assign(segment=table["segment"].map(segment_label),
                          meaning=table["segment"].map(segment_meaning)), hide_index=True,
             column_config={
    "segment": _("Segment"),
    "members": st.column_config.NumberColumn(_("Members"), format="localized"),
    "member_share": st.column_config.NumberColumn(_("Share of members"), format="percent",
                                                  help=_("Of the members scored (the lapsed are not scored).")),
    "sales": st.column_config.NumberColumn(_("Net sales"), format="localized"),
    "sales_share": st.column_config.NumberColumn(_("Share of sales"), format="percent"),
    "orders": st.column_config.NumberColumn(_("Orders"), format="localized"),
    "aov": st.column_config.NumberColumn("AOV", format="%.0f", help=_("Net sales / orders.")),
    "avg_recency_days": st.column_config.NumberColumn(_("Days since last order"), format="%.0f",
                                                      help=_("Average over the segment's members, to the range's last "
                                                             "day (the lapsed: their last order before the range).")),
    "meaning": st.column_config.TextColumn(_("Who they are"), width="large"),
})

migration_tab, members_tab = st.tabs([_("Migration"), _("Members of a segment")], key="rfm_tab",
                                     on_change="rerun")  # only the open tab is computed and drawn (below)


def migration() -> None:
    """The migration tab: segments before against now (flows or the transition matrix), and who made a move."""
    before = filters.previous()
    moved = cached_segment_migration(ctx.engine, before, filters, grid_key)
    st.caption(_("Segments in the previous period of equal length ({start} – {end}) against this one. {no_purchase}: "
                 "no completed order in that period. Click a cell of the transition matrix, or pick a move below, to "
                 "see who made it.").format(start=format_day(before.start), end=format_day(before.end),
                                            no_purchase=segment_label(NO_PURCHASE)))
    order = [*SEGMENTS, NO_PURCHASE]
    view = st.segmented_control(_("Show as"), ["sankey", "matrix"], default="sankey", key="rfm_migration_view",
                                required=True,
                                format_func={"sankey": _("Flows"), "matrix": _("Transition matrix")}.get)
    clicked = None
    if view == "sankey":
        names = ([_("{segment} (before)").format(segment=segment_label(s)) for s in order]
                 + [_("{segment} (now)").format(segment=segment_label(s)) for s in order])
        flows = moved[moved["members"] > 0]
        sankey = go.Figure(go.Sankey(
            node={"label": names, "pad": 12, "thickness": 14, "color": [SEGMENT_COLOURS[s] for s in order] * 2},
            link={"source": flows["before"].map(order.index), "target": flows["after"].map(order.index) + len(order),
                  "value": flows["members"], "color": [translucent(SEGMENT_COLOURS[s], 0.35) for s in flows["before"]],
                  "hovertemplate": _("%{source.label} → %{target.label}<br>%{value:,} members<extra></extra>")}))
        sankey.update_layout(height=620, margin={"l": 0, "r": 0, "t": 10, "b": 10})
        show_chart(sankey, key="rfm_sankey")
    else:
        clicked = migration_matrix(moved, order)
    moves = moved[moved["members"] > 0]
    pairs = list(zip(moves["before"], moves["after"], strict=True))
    if pairs:
        if clicked is not None and clicked in pairs and clicked != st.session_state.get(CLICK_KEY):
            st.session_state[CLICK_KEY] = clicked  # a new click picks its move below
            st.session_state["rfm_move"] = clicked
        default = (("Champions", NO_PURCHASE) if ("Champions", NO_PURCHASE) in pairs
                   else max(pairs, key=lambda p: int(moved.set_index(["before", "after"]).loc[p, "members"])))
        if st.session_state.get("rfm_move") not in pairs:
            st.session_state["rfm_move"] = default
        sizes = moved.set_index(["before", "after"])["members"]
        # options' texts made now, in this run's language (a format_func may be called outside the run)
        move_texts = {p: f"{segment_label(p[0])} → {segment_label(p[1])} ({count(int(sizes.loc[p]))})"
                      for p in pairs}
        move = st.selectbox(_("Members who moved"), pairs, key="rfm_move", format_func=move_texts.__getitem__,
                            help=_("Their segment in the previous period → in this one."))
        member_set(ctx.engine, migration_audience(filters, move[0], move[1], grid), key="rfm_move_members",
                   who=_("moved from {before} to {after}").format(before=segment_label(move[0]),
                                                                  after=segment_label(move[1])),
                   actor=default_author(), page="rfm_segments")


def segment_members() -> None:
    """The members tab: the members of a segment (or a group of segments, or the lapsed)."""
    present = [s for s in SEGMENTS if s in set(shown["segment"])]
    choices = [*present, *(name for name, parts in COMBINED.items() if set(parts) & set(present))]
    choices += [LAPSED] if lapsed.members else []
    segment_texts = {c: segment_label(c) for c in choices}  # made in this run's language
    segment = st.selectbox(_("Segment"), choices, key="rfm_members_segment", format_func=segment_texts.__getitem__,
                           help=_("Its members in this date range, names, phones and emails masked; the groups on "
                                  "the cards are listed too."))
    parts = COMBINED.get(segment, (segment,))
    meaning = " ".join(segment_meaning(p) for p in parts)
    member_set(ctx.engine, segment_audience(filters, parts, grid), key="rfm_members",
               who=_("in {segment}: {meaning}").format(segment=segment_label(segment),
                                                       meaning=meaning[0].lower() + meaning[1:]),
               actor=default_author(), page="rfm_segments")


for tab, show_tab in ((migration_tab, migration), (members_tab, segment_members)):
    if tab.open:
        with tab:
            show_tab()
