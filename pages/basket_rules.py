"""Basket rules: which items are bought together, for bundles, cross-sell campaigns and shelf placement."""

from __future__ import annotations

from dataclasses import replace

import plotly.express as px
import plotly.graph_objects as go
import streamlit as st

from analytics.i18n import DEFAULT_LANGUAGE, N_, _, format_day, language, using
from analytics.privacy import safe_csv
from analytics.rule_views import bought_together, compare_rules, rule_audience, rule_network
from analytics.rules import (
    ALGORITHMS,
    ITEM_SEPARATOR,
    LEVEL_LABELS,
    LEVEL_PLURALS,
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
from ui.look import show_chart
from ui.member_sets import member_set

SEGMENTS_BY = {"tier": N_("Tier"), "channel": N_("Channel")}
#: The download's column headers in other languages than English (English keeps the command line's names).
CSV_HEADERS = {"antecedents": N_("If a basket holds (A)"), "consequents": N_("it also holds (B)"),
               "support": N_("Support"), "confidence": N_("Confidence"), "lift": N_("Lift"),
               "leverage": N_("Leverage"), "conviction": N_("Conviction"), "zhangs_metric": N_("Zhang"),
               "baskets": N_("Baskets"), "antecedent_support": N_("Support of A"),
               "consequent_support": N_("Support of B"), "reading": N_("In plain words")}
SHOWN_RULES = 500
NETWORK_RULES = 30
ctx = page_inputs("basket_rules")
filters = ctx.filters

st.title(_("Basket rules"))
st.caption(_("Association rules of the completed orders from {start} to {end}").format(
               start=format_day(filters.start), end=format_day(filters.end))
           + (_(", channels {channels}").format(channels=", ".join(map(label, filters.channels)))
              if filters.channels else "")
           + (_(", tiers {tiers}").format(tiers=", ".join(map(label, filters.tiers))) if filters.tiers else "")
           + _(". A rule A → B says that baskets holding A also hold B more often than usual."))

with st.container(border=True):
    level = st.segmented_control(_("Item level"), LEVELS, default="subcategory",
                                 format_func=lambda v: _(LEVEL_LABELS[v]), key="rules_level", bind="query-params",
                                 required=True,
                                 help=_("Mine products, or their subcategories or categories (coarser items "
                                        "find broader patterns with fewer baskets)."))
    top = st.columns(5)
    support = top[0].number_input(_("Min support %"), 0.01, 100.0, 0.5, step=0.1, format="%.2f",
                                  key="rules_support", help=_(METRICS["support"]))
    confidence = top[1].number_input(_("Min confidence %"), 0.0, 100.0, 20.0, step=5.0, format="%.0f",
                                     key="rules_confidence", help=_(METRICS["confidence"]))
    lift = top[2].number_input(_("Min lift"), 0.0, 1000.0, 1.0, step=0.5, key="rules_lift",
                               help=_(METRICS["lift"]))
    max_len = top[3].number_input(_("Max items"), 2, 10, 3, key="rules_max_len",
                                  help=_("Most items in a rule, antecedents and consequent together."))
    algorithm = top[4].selectbox(_("Algorithm"), ALGORITHMS, key="rules_algorithm", format_func=
                                 {"fpgrowth": "FP-growth", "apriori": "Apriori"}.get,
                                 help=_("Both find the same rules; FP-growth is usually faster."))
spec = RuleSpec(level=level, min_support=support / 100, min_confidence=confidence / 100, min_lift=lift,
                max_len=int(max_len), algorithm=algorithm)

try:
    with st.spinner(_("Mining rules (stopped after {seconds} s)…").format(seconds=f"{RULES_TIME_LIMIT:.0f}")):
        result = cached_rules(ctx.engine, filters, spec)
except RulesRefused as refused:
    st.error(refused.problem, icon=":material/block:")
    st.info(refused.fix, icon=":material/lightbulb:")
    st.stop()
except RulesTimeout as stopped:
    st.error(_("{problem} Nothing is running any more.").format(problem=stopped), icon=":material/timer_off:")
    st.info(_("Raise the minimum support, lower the maximum number of items, or mine a coarser level."),
            icon=":material/lightbulb:")
    st.stop()

baskets = cached_baskets(ctx.engine, filters, level)
rules = result.rules
cards = st.columns(4)
cards[0].metric(_("Baskets"), f"{baskets.count:,}", help=_("Completed orders in the period with at least one item."),
                border=True)
cards[1].metric(_(LEVEL_PLURALS[level]), f"{len(baskets.labels):,}", help=_("Distinct items in those baskets."),
                border=True)
cards[2].metric(_("Frequent items"), f"{result.estimate.frequent_items:,}",
                help=_("Items in at least {count} baskets (the minimum support).").format(
                    count=f"{result.estimate.min_count:,}"), border=True)
cards[3].metric(_("Rules"), f"{len(rules):,}", border=True,
                help=_("Rules with one item in the consequent meeting the minimum support, confidence and lift."))
for note in result.notes:
    st.caption(note)
if rules.empty:
    st.info(_("No rule reaches these thresholds. Lower the minimum support or confidence, or mine a coarser "
              "level."), icon=":material/search_off:")
    st.stop()

names = cached_item_names(ctx.engine, level, tuple(sorted(
    set(rules["consequents"]) | {i for a in rules["antecedents"] for i in a.split(ITEM_SEPARATOR)})))


def named(items: str) -> str:
    return ITEM_SEPARATOR.join(names.get(i, i) for i in items.split(ITEM_SEPARATOR))


shown = with_readings(rules.head(SHOWN_RULES).assign(antecedents=lambda f: f["antecedents"].map(named),
                                                      consequents=lambda f: f["consequents"].map(named)))
st.subheader(_("Rules"))
st.dataframe(shown, hide_index=True, height=380, column_order=[
    "antecedents", "consequents", "support", "confidence", "lift", "leverage", "conviction", "zhangs_metric",
    "baskets", "reading"], column_config={
    "antecedents": st.column_config.TextColumn(_("If a basket holds (A)")),
    "consequents": st.column_config.TextColumn(_("it also holds (B)")),
    "support": st.column_config.NumberColumn(_("Support"), format="percent", help=_(METRICS["support"])),
    "confidence": st.column_config.NumberColumn(_("Confidence"), format="percent", help=_(METRICS["confidence"])),
    "lift": st.column_config.NumberColumn(_("Lift"), format="%.2f", help=_(METRICS["lift"])),
    "leverage": st.column_config.NumberColumn(_("Leverage"), format="%.4f", help=_(METRICS["leverage"])),
    "conviction": st.column_config.NumberColumn(_("Conviction"), format="%.2f", help=_(METRICS["conviction"])),
    "zhangs_metric": st.column_config.NumberColumn(_("Zhang"), format="%.2f", help=_(METRICS["zhangs_metric"])),
    "baskets": st.column_config.NumberColumn(_("Baskets"), format="localized", help=_("Baskets holding A and B.")),
    "reading": st.column_config.TextColumn(_("In plain words"), width="large"),
})
more = (_(" The first {shown} of {total} rules; the download has all.").format(shown=f"{SHOWN_RULES:,}",
                                                                              total=f"{len(rules):,}")
        if len(rules) > SHOWN_RULES else "")
st.caption(_("Sorted by lift; click a column to sort by it.") + more)


def rules_csv(lang: str = language()) -> bytes:
    """Every rule with its reading, headed in the reader's language (made when the button is clicked, perhaps
    outside this run: the language is the run's, taken when the page drew the button)."""
    with using(lang):
        table = with_readings(rules)
        if lang != DEFAULT_LANGUAGE:
            table = table.rename(columns={c: _(h) for c, h in CSV_HEADERS.items()})
        return safe_csv(table)


st.download_button(_("Download all rules (CSV)"), rules_csv,  # on click
                   file_name=f"memberlens_rules_{level}_{filters.start}_{filters.end}.csv", mime="text/csv",
                   icon=":material/download:", key="rules_download")

left, right = st.columns(2)
with left:
    st.markdown(_("**Support × confidence**, coloured by lift"))
    scatter = px.scatter(shown, x="support", y="confidence", color="lift", color_continuous_scale="RdPu",
                         hover_data={"antecedents": True, "consequents": True, "lift": ":.2f"},
                         labels={"support": _("Support"), "confidence": _("Confidence"), "lift": _("Lift"),
                                 "antecedents": _("If a basket holds (A)"), "consequents": _("it also holds (B)")})
    scatter.update_xaxes(tickformat=".1%")
    scatter.update_yaxes(tickformat=".0%")
    scatter.update_layout(height=380, margin={"l": 10, "r": 10, "t": 10, "b": 10})
    show_chart(scatter, key="rules_scatter")
with right:
    st.markdown(_("**The top {n} rules as a network** (arrows A → B, wider = higher lift)").format(
        n=min(NETWORK_RULES, len(rules))))
    nodes, edges = rule_network(rules, NETWORK_RULES)
    # the arrows set at once: add_annotation re-checks every earlier one (0.3 s for 42 arrows on a warm visit)
    network = go.Figure(layout={"annotations": [
        {"x": edge.x1, "y": edge.y1, "ax": edge.x0, "ay": edge.y0, "xref": "x", "yref": "y", "axref": "x",
         "ayref": "y", "showarrow": True, "arrowhead": 2, "arrowsize": 1, "arrowwidth": 1 + min(edge.lift, 10) / 3,
         "arrowcolor": "rgba(194,24,91,0.45)"} for edge in edges.itertuples()]})
    network.add_trace(go.Scatter(
        x=nodes["x"], y=nodes["y"], mode="markers+text", text=[names.get(i, i)[:28] for i in nodes["item"]],
        textposition="top center", marker={"size": 10 + 3 * nodes["rules"], "color": ACCENT},
        hovertext=[_("{item}: in {n} of the top rules").format(item=names.get(i, i), n=n)
                   for i, n in zip(nodes["item"], nodes["rules"], strict=True)],
        hoverinfo="text"))
    network.update_xaxes(visible=False, range=[-1.5, 1.5])
    network.update_yaxes(visible=False, range=[-1.3, 1.3])
    network.update_layout(height=380, margin={"l": 10, "r": 10, "t": 10, "b": 10}, showlegend=False)
    show_chart(network, key="rules_network")

def frequently_bought_together() -> None:
    """The items most often in the same baskets as one item, in memory from the baskets read already."""
    popular = baskets.most_common(2_000)
    lookup_names = cached_item_names(ctx.engine, level, tuple(sorted(popular)))
    item = st.selectbox(_(LEVEL_LABELS[level]), popular, format_func=lambda i: lookup_names.get(i, i),
                        key="rules_lookup", help=_("The 2,000 items in the most baskets, most bought first."))
    show_all = st.toggle(_("Also show items bought with it less often than chance (lift below 1)"),
                         key="rules_lookup_below_chance",
                         help=_("A lift below 1 means baskets holding this item hold the other less often than baskets "
                                "do on average: no reason to bundle or recommend them together."))
    together = bought_together(baskets, item, include_below_chance=show_all)
    together_names = cached_item_names(ctx.engine, level, tuple(together["item"]))
    shown_together = together.assign(item=together["item"].map(lambda i: together_names.get(i, i)),
                                     reading=together["below_chance"].map({True: _("⚠ less often than chance"),
                                                                           False: _("more often than chance")}))
    st.dataframe(shown_together, hide_index=True,
                 column_order=["item", "baskets", "support", "confidence", "lift", "reading"],
                 column_config={
                     "item": st.column_config.TextColumn(_("Bought with it")),
                     "baskets": st.column_config.NumberColumn(_("Baskets with both"), format="localized"),
                     "support": st.column_config.NumberColumn(_("Support"), format="percent",
                                                              help=_(METRICS["support"])),
                     "confidence": st.column_config.NumberColumn(_("Confidence"), format="percent",
                                                                 help=_(METRICS["confidence"])),
                     "lift": st.column_config.NumberColumn(_("Lift"), format="%.2f", help=_(METRICS["lift"])),
                     "reading": st.column_config.TextColumn(_("Together"), help=_(
                         "Lift of 1 or more: bought together more often than chance; below 1: less often (flagged).")),
                 })
    hidden = together.attrs.get("below_chance", 0)
    if show_all:
        st.caption(_("The items in most baskets with it; a lift below 1 is flagged."))
    elif hidden:
        st.caption(_("The items in most baskets with it and a lift of at least 1; {n} more are bought with it "
                     "less often than chance (hidden: see the switch above).").format(n=count(hidden)))
    else:
        st.caption(_("The items in most baskets with it and a lift of at least 1."))


def compare_two_segments() -> None:
    """The rules of two tiers or channels side by side: two more mining runs, each reading its baskets."""
    dimension = st.segmented_control(_("Segments by"), ["tier", "channel"], default="tier",
                                     format_func=lambda d: _(SEGMENTS_BY[d]), key="rules_compare_by", required=True)
    values = list(ctx.options.tiers if dimension == "tier" else ctx.options.channels)
    if len(values) < 2:
        st.caption(_("The warehouse has fewer than two tiers to compare.") if dimension == "tier" else
                   _("The warehouse has fewer than two channels to compare."))
    else:
        pick = st.columns(2)
        first = pick[0].selectbox(_("First segment"), values, index=0, format_func=label, key="rules_compare_first")
        second = pick[1].selectbox(_("Second segment"), values, index=len(values) - 1, format_func=label,
                                   key="rules_compare_second")
        scoped = [replace(filters, tiers=(value,)) if dimension == "tier" else replace(filters, channels=(value,))
                  for value in (first, second)]
        try:
            with st.spinner(_("Mining both segments…")):
                pair = [cached_rules(ctx.engine, f, spec).rules for f in scoped]
        except (RulesRefused, RulesTimeout) as problem:
            st.warning(getattr(problem, "problem", str(problem)), icon=":material/warning:")
        else:
            compared = compare_rules(*pair).head(20)
            compared = compared.assign(antecedents=compared["antecedents"].map(named),
                                       consequents=compared["consequents"].map(named))
            st.dataframe(compared[["antecedents", "consequents", "lift_first", "lift_second", "lift_difference"]],
                         hide_index=True, placeholder="", column_config={  # an empty lift: see the caption
                             "antecedents": "A", "consequents": "B",
                             "lift_first": st.column_config.NumberColumn(_("Lift, {segment}").format(
                                 segment=label(first)), format="%.2f"),
                             "lift_second": st.column_config.NumberColumn(_("Lift, {segment}").format(
                                 segment=label(second)), format="%.2f"),
                             "lift_difference": st.column_config.NumberColumn(_("Difference"), format="%+.2f"),
                         })
            st.caption(_("The 20 rules whose lift differs most; an empty lift means the rule misses the thresholds "
                         "there."))


def act_on_a_rule() -> None:
    """The cross-sell audience of one rule: its members counted and listed, masked."""
    choices = list(range(min(len(rules), SHOWN_RULES)))
    chosen = st.selectbox(_("Rule"), choices, key="rules_act",
                          format_func=lambda i: _("{a} → {b} (lift {lift})").format(
                              a=shown["antecedents"][i], b=shown["consequents"][i], lift=f"{shown['lift'][i]:.2f}"))
    rule = rules.iloc[chosen]
    member_set(ctx.engine, rule_audience(rule["antecedents"], rule["consequents"], level, filters.start,
                                         filters.end, filters.scope),
               key="rules_audience", who=_("bought {a} between {start} and {end} but have never bought {b}: the "
                                           "cross-sell audience.").format(
                   a=shown["antecedents"][chosen], b=shown["consequents"][chosen], start=format_day(filters.start),
                   end=format_day(filters.end)),
               actor=default_author(), page="basket_rules")


together_tab, compare_tab, act_tab = st.tabs(
    [_("Frequently bought together"), _("Compare two segments"), _("Act on a rule")], key="rules_tab",
    on_change="rerun")  # only the open tab is computed
for tab, show in ((together_tab, frequently_bought_together), (compare_tab, compare_two_segments),
                  (act_tab, act_on_a_rule)):
    if tab.open:
        with tab:
            show()
