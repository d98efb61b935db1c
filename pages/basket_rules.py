"""Basket rules: which items are bought together, for bundles, cross-sell campaigns and shelf placement."""

from __future__ import annotations

from dataclasses import replace

import plotly.express as px
import plotly.graph_objects as go
import streamlit as st

from analytics.privacy import safe_csv
from analytics.rule_views import bought_together, compare_rules, rule_audience, rule_network
from analytics.rules import (
    ALGORITHMS,
    ITEM_SEPARATOR,
    LEVELS,
    METRICS,
    RuleSpec,
    RulesRefused,
    RulesTimeout,
    with_readings,
)
from ui.app_state import default_author
from ui.cached import RULES_TIME_LIMIT, cached_baskets, cached_item_names, cached_rules
from ui.context import page_inputs
from ui.format import ACCENT, count, label
from ui.member_sets import member_set

PLURAL = {"product": "Products", "subcategory": "Subcategories", "category": "Categories"}
SHOWN_RULES = 500
NETWORK_RULES = 30
ctx = page_inputs("basket_rules")
filters = ctx.filters

st.title("Basket rules")
st.caption(f"Association rules of the completed orders from {filters.start:%d %b %Y} to {filters.end:%d %b %Y}"
           + (f", channels {', '.join(map(label, filters.channels))}" if filters.channels else "")
           + (f", tiers {', '.join(map(label, filters.tiers))}" if filters.tiers else "")
           + ". A rule A → B says that baskets holding A also hold B more often than usual.")

with st.container(border=True):
    level = st.segmented_control("Items", LEVELS, default="subcategory", format_func=label, key="rules_level",
                                     bind="query-params", required=True,
                                     help="Mine products, or their subcategories or categories (coarser items "
                                          "find broader patterns with fewer baskets).")
    top = st.columns(5)
    support = top[0].number_input("Min support %", 0.01, 100.0, 0.5, step=0.1, format="%.2f", key="rules_support",
                                  help=METRICS["support"])
    confidence = top[1].number_input("Min confidence %", 0.0, 100.0, 20.0, step=5.0, format="%.0f",
                                     key="rules_confidence", help=METRICS["confidence"])
    lift = top[2].number_input("Min lift", 0.0, 1000.0, 1.0, step=0.5, key="rules_lift", help=METRICS["lift"])
    max_len = top[3].number_input("Max items", 2, 10, 3, key="rules_max_len",
                                  help="Most items in a rule, antecedents and consequent together.")
    algorithm = top[4].selectbox("Algorithm", ALGORITHMS, key="rules_algorithm", format_func=
                                 {"fpgrowth": "FP-growth", "apriori": "Apriori"}.get,
                                 help="Both find the same rules; FP-growth is usually faster.")
spec = RuleSpec(level=level, min_support=support / 100, min_confidence=confidence / 100, min_lift=lift,
                max_len=int(max_len), algorithm=algorithm)

try:
    with st.spinner(f"Mining rules (stopped after {RULES_TIME_LIMIT:.0f} s)…"):
        result = cached_rules(ctx.engine, filters, spec)
except RulesRefused as refused:
    st.error(refused.problem, icon=":material/block:")
    st.info(refused.fix, icon=":material/lightbulb:")
    st.stop()
except RulesTimeout as stopped:
    st.error(f"{stopped} Nothing is running any more.", icon=":material/timer_off:")
    st.info("Raise the minimum support, lower the maximum number of items, or mine a coarser level.",
            icon=":material/lightbulb:")
    st.stop()

baskets = cached_baskets(ctx.engine, filters, level)
rules = result.rules
cards = st.columns(4)
cards[0].metric("Baskets", f"{baskets.count:,}", help="Completed orders in the period with at least one item.",
                border=True)
cards[1].metric(PLURAL[level], f"{len(baskets.labels):,}", help="Distinct items in those baskets.", border=True)
cards[2].metric("Frequent items", f"{result.estimate.frequent_items:,}",
                help=f"Items in at least {result.estimate.min_count:,} baskets (the minimum support).", border=True)
cards[3].metric("Rules", f"{len(rules):,}", border=True,
                help="Rules with one item in the consequent meeting the minimum support, confidence and lift.")
for note in result.notes:
    st.caption(note)
if rules.empty:
    st.info("No rule reaches these thresholds. Lower the minimum support or confidence, or mine a coarser level.",
            icon=":material/search_off:")
    st.stop()

names = cached_item_names(ctx.engine, level, tuple(sorted(
    set(rules["consequents"]) | {i for a in rules["antecedents"] for i in a.split(ITEM_SEPARATOR)})))


def named(items: str) -> str:
    return ITEM_SEPARATOR.join(names.get(i, i) for i in items.split(ITEM_SEPARATOR))


shown = with_readings(rules.head(SHOWN_RULES).assign(antecedents=lambda f: f["antecedents"].map(named),
                                                      consequents=lambda f: f["consequents"].map(named)))
st.subheader("Rules")
st.dataframe(shown, hide_index=True, height=380, column_order=[
    "antecedents", "consequents", "support", "confidence", "lift", "leverage", "conviction", "zhangs_metric",
    "baskets", "reading"], column_config={
    "antecedents": st.column_config.TextColumn("If a basket holds (A)"),
    "consequents": st.column_config.TextColumn("it also holds (B)"),
    "support": st.column_config.NumberColumn("Support", format="percent", help=METRICS["support"]),
    "confidence": st.column_config.NumberColumn("Confidence", format="percent", help=METRICS["confidence"]),
    "lift": st.column_config.NumberColumn("Lift", format="%.2f", help=METRICS["lift"]),
    "leverage": st.column_config.NumberColumn("Leverage", format="%.4f", help=METRICS["leverage"]),
    "conviction": st.column_config.NumberColumn("Conviction", format="%.2f", help=METRICS["conviction"]),
    "zhangs_metric": st.column_config.NumberColumn("Zhang", format="%.2f", help=METRICS["zhangs_metric"]),
    "baskets": st.column_config.NumberColumn("Baskets", format="localized", help="Baskets holding A and B."),
    "reading": st.column_config.TextColumn("In plain words", width="large"),
})
more = f" The first {SHOWN_RULES:,} of {len(rules):,} rules; the download has all." if len(rules) > SHOWN_RULES else ""
st.caption(f"Sorted by lift; click a column to sort by it.{more}")
st.download_button("Download all rules (CSV)", lambda: safe_csv(with_readings(rules)),  # on click
                   file_name=f"memberlens_rules_{level}_{filters.start}_{filters.end}.csv", mime="text/csv",
                   icon=":material/download:", key="rules_download")

left, right = st.columns(2)
with left:
    st.markdown("**Support × confidence**, coloured by lift")
    scatter = px.scatter(shown, x="support", y="confidence", color="lift", color_continuous_scale="RdPu",
                         hover_data={"antecedents": True, "consequents": True, "lift": ":.2f"},
                         labels={"support": "Support", "confidence": "Confidence", "lift": "Lift"})
    scatter.update_xaxes(tickformat=".1%")
    scatter.update_yaxes(tickformat=".0%")
    scatter.update_layout(height=380, margin={"l": 10, "r": 10, "t": 10, "b": 10})
    st.plotly_chart(scatter, key="rules_scatter")
with right:
    st.markdown(f"**The top {min(NETWORK_RULES, len(rules))} rules as a network** (arrows A → B, wider = higher lift)")
    nodes, edges = rule_network(rules, NETWORK_RULES)
    network = go.Figure()
    for edge in edges.itertuples():
        network.add_annotation(x=edge.x1, y=edge.y1, ax=edge.x0, ay=edge.y0, xref="x", yref="y", axref="x",
                               ayref="y", showarrow=True, arrowhead=2, arrowsize=1,
                               arrowwidth=1 + min(edge.lift, 10) / 3, arrowcolor="rgba(194,24,91,0.45)")
    network.add_trace(go.Scatter(
        x=nodes["x"], y=nodes["y"], mode="markers+text", text=[names.get(i, i)[:28] for i in nodes["item"]],
        textposition="top center", marker={"size": 10 + 3 * nodes["rules"], "color": ACCENT},
        hovertext=[f"{names.get(i, i)}: in {n} of the top rules" for i, n in zip(nodes["item"], nodes["rules"],
                                                                                     strict=True)],
        hoverinfo="text"))
    network.update_xaxes(visible=False, range=[-1.5, 1.5])
    network.update_yaxes(visible=False, range=[-1.3, 1.3])
    network.update_layout(height=380, margin={"l": 10, "r": 10, "t": 10, "b": 10}, showlegend=False)
    st.plotly_chart(network, key="rules_network")

st.subheader("Frequently bought together")
popular = baskets.most_common(2_000)
lookup_names = cached_item_names(ctx.engine, level, tuple(sorted(popular)))
item = st.selectbox(f"{label(level)}", popular, format_func=lambda i: lookup_names.get(i, i), key="rules_lookup",
                    help="The 2,000 items in the most baskets, most bought first.")
show_all = st.toggle("Also show items bought with it less often than chance (lift below 1)",
                     key="rules_lookup_below_chance",
                     help="A lift below 1 means baskets holding this item hold the other less often than baskets do "
                          "on average: no reason to bundle or recommend them together.")
together = bought_together(baskets, item, include_below_chance=show_all)
together_names = cached_item_names(ctx.engine, level, tuple(together["item"]))
shown_together = together.assign(item=together["item"].map(lambda i: together_names.get(i, i)),
                                 reading=together["below_chance"].map({True: "⚠ less often than chance",
                                                                       False: "more often than chance"}))
st.dataframe(shown_together, hide_index=True,
             column_order=["item", "baskets", "support", "confidence", "lift", "reading"],
             column_config={
                 "item": st.column_config.TextColumn("Bought with it"),
                 "baskets": st.column_config.NumberColumn("Baskets with both", format="localized"),
                 "support": st.column_config.NumberColumn("Support", format="percent", help=METRICS["support"]),
                 "confidence": st.column_config.NumberColumn("Confidence", format="percent",
                                                             help=METRICS["confidence"]),
                 "lift": st.column_config.NumberColumn("Lift", format="%.2f", help=METRICS["lift"]),
                 "reading": st.column_config.TextColumn("Together", help="Lift of 1 or more: bought together more "
                                                        "often than chance; below 1: less often (flagged)."),
             })
hidden = together.attrs.get("below_chance", 0)
if show_all:
    st.caption("The items in most baskets with it; a lift below 1 is flagged.")
else:
    st.caption("The items in most baskets with it and a lift of at least 1"
               + (f"; {count(hidden)} more are bought with it less often than chance (hidden: see the switch above)."
                  if hidden else "."))

st.subheader("Compare two segments")
dimension = st.segmented_control("Segments by", ["tier", "channel"], default="tier", format_func=label,
                                 key="rules_compare_by", required=True)
values = list(ctx.options.tiers if dimension == "tier" else ctx.options.channels)
if len(values) < 2:
    st.caption(f"The warehouse has fewer than two {dimension}s to compare.")
else:
    pick = st.columns(2)
    first = pick[0].selectbox("First", values, index=0, format_func=label, key="rules_compare_first")
    second = pick[1].selectbox("Second", values, index=len(values) - 1, format_func=label, key="rules_compare_second")
    scoped = [replace(filters, tiers=(value,)) if dimension == "tier" else replace(filters, channels=(value,))
              for value in (first, second)]
    try:
        with st.spinner("Mining both segments…"):
            pair = [cached_rules(ctx.engine, f, spec).rules for f in scoped]
    except (RulesRefused, RulesTimeout) as problem:
        st.warning(getattr(problem, "problem", str(problem)), icon=":material/warning:")
    else:
        compared = compare_rules(*pair).head(20)
        compared = compared.assign(antecedents=compared["antecedents"].map(named),
                                   consequents=compared["consequents"].map(named))
        st.dataframe(compared[["antecedents", "consequents", "lift_first", "lift_second", "lift_difference"]],
                     hide_index=True, column_config={
                         "antecedents": "A", "consequents": "B",
                         "lift_first": st.column_config.NumberColumn(f"Lift, {label(first)}", format="%.2f"),
                         "lift_second": st.column_config.NumberColumn(f"Lift, {label(second)}", format="%.2f"),
                         "lift_difference": st.column_config.NumberColumn("Difference", format="%+.2f"),
                     })
        st.caption("The 20 rules whose lift differs most; an empty lift means the rule misses the thresholds there.")

st.subheader("Act on a rule")
choices = list(range(min(len(rules), SHOWN_RULES)))
chosen = st.selectbox("Rule", choices, key="rules_act", format_func=lambda i: f"{shown['antecedents'][i]} → "
                      f"{shown['consequents'][i]} (lift {shown['lift'][i]:.2f})")
rule = rules.iloc[chosen]
member_set(ctx.engine, rule_audience(rule["antecedents"], rule["consequents"], level, filters.start, filters.end,
                                        filters.scope),
           key="rules_audience", who=f"bought {shown['antecedents'][chosen]} between {filters.start:%d %b %Y} and "
           f"{filters.end:%d %b %Y} but have never bought {shown['consequents'][chosen]}: the cross-sell audience.",
           actor=default_author(), page="basket_rules")
