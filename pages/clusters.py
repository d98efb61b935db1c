"""Member clusters: groups of buyers who behave alike, what each is worth and who is in it."""

from __future__ import annotations

from dataclasses import replace

import plotly.express as px
import streamlit as st

from analytics import clustering
from analytics.cluster_audiences import cluster_audience
from analytics.cluster_features import feature_label
from analytics.clustering import ALGORITHMS, FEATURE_GROUPS, ClusterSettings
from analytics.errors import InputError
from analytics.i18n import _, format_day
from analytics.storage.contract import TIERS
from ui.app_state import default_author
from ui.cached import CLUSTER_SETTINGS_KEY, cached_cluster_mix, cached_clusters, cached_k_selection, cached_projection
from ui.context import page_inputs
from ui.format import ACCENT, format_value, label
from ui.look import show_chart
from ui.member_sets import member_set

MIX_LABELS = {"tier": _("Tier"), "region": _("Region"), "gender": _("Gender"), "age_band": _("Age band"),
              "acquisition_channel": _("Acquisition channel")}
#: Ordered attributes keep their order (and a sequential palette) in the mix chart.
VALUE_ORDERS = {"tier": [*TIERS, "unknown"], "age_band": [band for *_b, band in clustering.AGE_BANDS] + ["unknown"]}
#: Attributes whose values are warehouse codes (shown with their labels); regions are data, age bands numbers.
CODED = ("tier", "gender", "acquisition_channel")


def mix_value(attribute: str, value: str) -> str:
    """A member attribute's value as the reader reads it in the mix chart."""
    if value == "unknown":
        return _("Unknown")
    return label(value) if attribute in CODED else value


ctx = page_inputs("clusters")
filters = ctx.filters

st.title(_("Member clusters"))
st.caption(_("Members with completed orders from {start} to {end}, grouped by how they buy. Clusters are steadier "
             "over a longer range (a year) than over a few weeks.").format(start=format_day(filters.start),
                                                                           end=format_day(filters.end)))

with st.container(border=True):
    left, middle, right = st.columns([2, 2, 3])
    k = left.slider(_("Clusters (k)"), 2, 12, 6, key="cluster_k",
                    help=_("How many groups. The 'Choosing k' tab compares k = 2 to 10."))
    algorithm = middle.segmented_control(
        _("Algorithm"), list(ALGORITHMS), default="kmeans", key="cluster_algorithm", required=True,
        format_func={a: _(name) for a, name in ALGORITHMS.items()}.__getitem__,
        help=_("k-means: compact groups of similar size, the usual choice. Gaussian mixture: groups may differ in "
               "spread per feature (one variance per feature and cluster)."))
    min_orders = right.number_input(
        _("Members with at least … orders"), 1, 50, 1, key="cluster_min_orders",
        help=_("One-order members show little behaviour; clustering repeat buyers (2 or 3+) gives sharper groups."))
    groups = st.pills(_("Features"), list(FEATURE_GROUPS), default=list(FEATURE_GROUPS), selection_mode="multi",
                      format_func={g: group.shown_label() for g, group in FEATURE_GROUPS.items()}.__getitem__,
                      key="cluster_groups",
                      help=_("Which behaviours the clusters are built on.") + " "
                           + " ".join(f"**{g.shown_label()}**: {g.shown_help()}" for g in FEATURE_GROUPS.values()))
    with st.expander(_("How features are prepared"), icon=":material/functions:"):
        st.markdown(
            _("- Amounts, counts and days are skewed (a few members buy a hundred times more than most), so they "
              "are taken as **ln(1 + x)**; shares (category, channel) are **square-rooted**, which spreads the "
              "small shares that tell members apart.\n"
              "- Every feature is then **standardised** (minus its mean, divided by its standard deviation) and "
              "clipped at ±5, so each feature counts equally and a handful of extreme members cannot drag a "
              "cluster centre. A missing age takes the average.\n"
              "- **Cluster 1 has the highest average net sales per member**, cluster 2 the next, and so on, so "
              "numbers keep their meaning between runs. The same data, settings and seed give the same clusters."))
        seed = st.number_input(_("Random seed"), 0, 2**31 - 1, 42, key="cluster_seed",
                               help=_("Starting points of the algorithm: change it to check the clusters are "
                                      "stable."))

if not groups:
    st.warning(_("Choose at least one feature group to cluster on."), icon=":material/tune:")
    st.stop()
settings = ClusterSettings(k, algorithm, tuple(groups), int(min_orders), int(seed))
st.session_state[CLUSTER_SETTINGS_KEY] = settings
try:
    result = cached_clusters(ctx.engine, filters, settings)
except InputError as problem:
    st.info(str(problem), icon=":material/search_off:")
    st.stop()
portraits = result.portraits
names = {0: _("All clustered"),
         **{c: f"{c}. {n}" for c, n in zip(portraits["cluster"], portraits["name"], strict=True)}}
if result.empty_clusters:
    st.warning(_("{empty} of the {k} clusters have no member closest to them ({clusters}): the data holds fewer "
                 "distinct groups; try fewer clusters or k-means.").format(
        empty=len(result.empty_clusters), k=settings.k, clusters=", ".join(map(str, result.empty_clusters))),
        icon=":material/bubble_chart:")

cards = st.columns(4)
cards[0].metric(_("Members clustered"), f"{len(result.members):,}", border=True,
                help=_("Members with at least {n} completed order(s) in the range.").format(n=settings.min_orders))
cards[1].metric(_("Their net sales"), format_value(result.total_sales, "currency"), border=True,
                help=_("Net sales of completed orders in the range, of the members clustered."))
top = portraits.iloc[0]
cards[2].metric(_("Cluster 1's share of sales"), f"{top['sales_share']:.1%}", border=True,
                delta=_("{share} of members").format(share=f"{top['member_share']:.1%}"), delta_color="off",
                delta_arrow="off",
                help=_("Cluster 1 ({name}) has the highest average net sales per member.").format(name=top["name"]))
cards[3].metric(_("Features"), f"{len(result.model.features_)}", border=True,
                help=", ".join(feature_label(f) for f in result.model.features_))

portrait_tab, k_tab, map_tab, members_tab = st.tabs([_("Portraits"), _("Choosing k"), _("Map"),
                                                     _("Members of a cluster")], key="clusters_tab",
                                                    on_change="rerun")  # only the open tab is computed
with portrait_tab:
    treemap = px.treemap(portraits.assign(label=portraits["cluster"].astype(str) + ". " + portraits["name"]),
                         path=["label"], values="members", color="avg_sales", color_continuous_scale="Tealgrn",
                         custom_data=["members", "member_share", "sales_share", "avg_sales", "top_categories"])
    treemap.update_traces(texttemplate=_("<b>%{label}</b><br>%{customdata[0]:,} members<br>%{customdata[2]:.1%} of "
                                         "sales"),
                          hovertemplate=_("<b>%{label}</b><br>%{customdata[0]:,} members (%{customdata[1]:.1%})<br>"
                                          "%{customdata[2]:.1%} of net sales<br>%{customdata[3]:,.0f} per member<br>"
                                          "%{customdata[4]}<extra></extra>"))
    treemap.update_layout(height=360, margin={"l": 0, "r": 0, "t": 10, "b": 0},
                          coloraxis_colorbar_title=_("Sales per member"))
    show_chart(treemap, key="cluster_treemap")
    st.dataframe(portraits, hide_index=True, column_config={
        "cluster": st.column_config.NumberColumn(_("Cluster"), help=_("1 = highest average net sales per member.")),
        "name": st.column_config.TextColumn(_("Portrait"), width="large",
                                            help=_("Value and frequency against all clustered members, the most "
                                                   "distinctive other trait (the feature furthest from the average, "
                                                   "in standard deviations: e.g. live-stream heavy), and the "
                                                   "favourite category (the highest lift among categories with 15%+ "
                                                   "of the cluster's spend).")),
        "members": st.column_config.NumberColumn(_("Members"), format="localized",
                                                 help=_("Members closest to this cluster's centre.")),
        "member_share": st.column_config.NumberColumn(_("Share of members"), format="percent",
                                                      help=_("Of all members clustered.")),
        "sales": st.column_config.NumberColumn(_("Net sales"), format="localized",
                                               help=_("Net sales of the cluster's completed orders in the range.")),
        "sales_share": st.column_config.NumberColumn(_("Share of sales"), format="percent",
                                                     help=_("Of the net sales of all members clustered.")),
        "avg_sales": st.column_config.NumberColumn(_("Sales per member"), format="%.0f",
                                                   help=_("Net sales / members; clusters are numbered by it, "
                                                          "highest first.")),
        "avg_orders": st.column_config.NumberColumn(_("Orders per member"), format="%.1f",
                                                    help=_("Completed orders in the range / members.")),
        "aov": st.column_config.NumberColumn("AOV", format="%.0f", help=_("Net sales / orders.")),
        "avg_recency_days": st.column_config.NumberColumn(_("Days since last order"), format="%.0f",
                                                          help=_("Average over the cluster's members, counted to the "
                                                                 "range's last day.")),
        "top_categories": st.column_config.TextColumn(
            _("Top categories (share of spend)"), width="large",
            help=_("Share of the cluster's line amount in each category; categories beyond the range's top 8 are "
                   "'other categories'.")),
    })
    st.subheader(_("How each cluster differs"), help=_("Each cell: the cluster's mean of the standardised feature, "
                 "i.e. how many standard deviations above (red) or below (blue) all clustered members it sits. "
                 "Features not used for clustering are shown too, in the same terms."))
    z = result.zscores.copy()
    z.index = [f"{c}. {n}" for c, n in zip(portraits["cluster"], portraits["name"], strict=True)]
    z.columns = [feature_label(f) for f in result.all_features]  # the z-scores' columns, in the reader's words
    heat = px.imshow(z, color_continuous_scale="RdBu_r", color_continuous_midpoint=0, zmin=-2, zmax=2,
                     text_auto=".1f", aspect="auto", labels={"x": _("Feature"), "y": "", "color": _("z-score")})
    heat.update_layout(height=120 + 48 * len(z), margin={"l": 0, "r": 0, "t": 10, "b": 0})
    heat.update_xaxes(side="top", tickangle=-35)
    show_chart(heat, key="cluster_zscores")
    attribute = st.segmented_control(_("Mix by"), list(MIX_LABELS), default="tier", key="cluster_mix_by",
                                     required=True, format_func=MIX_LABELS.get)
    mix = cached_cluster_mix(ctx.engine, filters, settings, attribute).copy()
    mix["cluster_label"] = mix["cluster"].map(names)
    order = VALUE_ORDERS.get(attribute, sorted(mix["value"].unique()))
    mix["value"] = mix["value"].map(lambda v: mix_value(attribute, v))
    bars = px.bar(mix, y="cluster_label", x="share", color="value", orientation="h", custom_data=["members"],
                  category_orders={"cluster_label": list(names.values()),
                                   "value": [mix_value(attribute, v) for v in order]},
                  color_discrete_sequence=px.colors.qualitative.Safe if attribute not in VALUE_ORDERS
                  else px.colors.sequential.Tealgrn[1:],
                  labels={"cluster_label": "", "share": _("Share of the cluster's members"),
                          "value": MIX_LABELS[attribute]})
    bars.update_traces(hovertemplate="%{y}<br>%{fullData.name}: %{x:.1%} (%{customdata[0]:,})<extra></extra>")
    bars.update_layout(height=140 + 34 * len(names), margin={"l": 0, "r": 0, "t": 10, "b": 0},
                       xaxis_tickformat=".0%")
    show_chart(bars, key="cluster_mix")

with k_tab:
    st.caption(_("Fits k = 2 … 10 with the same features and algorithm on a sample of up to 10,000 members. Look "
                 "for where inertia stops falling steeply (the elbow), a high silhouette and a low Davies–Bouldin "
                 "index."))
    if st.toggle(_("Compare k = 2 … 10"), key="cluster_k_compare",
                 help=_("Takes a few seconds on a large warehouse; once on, it follows the settings above.")):
        table = cached_k_selection(ctx.engine, filters, replace(settings, k=2), settings)
        try:
            suggestion = clustering.suggest_k(table)
        except InputError as problem:
            st.info(str(problem), icon=":material/search_off:")
            st.stop()
        with st.container(border=True, key="cluster_k_suggestion"):
            note, button = st.columns([5, 1], vertical_alignment="center")
            note.markdown(_("**Suggested: k = {k}.** {reason}").format(k=suggestion.k, reason=suggestion.reason)
                          + (_(" That is the k shown above.") if suggestion.k == settings.k else ""))
            button.button(_("Use k = {k}").format(k=suggestion.k), key="cluster_k_use",
                          disabled=suggestion.k == settings.k,
                          on_click=lambda k=suggestion.k: st.session_state.update(cluster_k=k),
                          help=_("Sets the number of clusters above."))
        charts = st.columns(3)
        for column, (measure, title, hint) in zip(charts, [
                ("inertia", _("Inertia"), _("mean squared distance to the nearest centre: lower is tighter")),
                ("silhouette", _("Silhouette"), _("-1 … 1: higher means better separated clusters")),
                ("davies_bouldin", "Davies–Bouldin", _("lower means more distinct clusters"))], strict=True):
            line = px.line(table, x="k", y=measure, markers=True, title=title, labels={measure: "", "k": "k"})
            line.add_vline(x=settings.k, line_dash="dot", line_color="grey")
            if suggestion.k != settings.k:
                line.add_vline(x=suggestion.k, line_dash="dash", line_color=ACCENT)
            line.update_layout(height=300, margin={"l": 0, "r": 0, "t": 40, "b": 0})
            show_chart(where=column, figure=line, key=f"cluster_k_{measure}")
            column.caption(hint + ("" if suggestion.k == settings.k else
                                   _(". Dotted: k = {shown} (shown); dashed: k = {suggested} (suggested)").format(
                                       shown=settings.k, suggested=suggestion.k)))

if map_tab.open:
    with map_tab:
        flat = cached_projection(ctx.engine, filters, settings)
        explained = flat.attrs["explained"]
        flat["cluster_label"] = flat["cluster"].map(names)
        scatter = px.scatter(flat, x="pc1", y="pc2", color="cluster_label", opacity=0.6, hover_data={"member_id": True},
                             category_orders={"cluster_label": list(names.values())[1:]},
                             labels={"pc1": _("Component 1 ({share} of variance)").format(share=f"{explained[0]:.0%}"),
                                     "pc2": _("Component 2 ({share} of variance)").format(share=f"{explained[1]:.0%}"),
                                     "cluster_label": _("Cluster"), "member_id": _("Member ID")})
        scatter.update_traces(marker_size=4)
        scatter.update_layout(height=560, margin={"l": 0, "r": 0, "t": 10, "b": 0})
        show_chart(scatter, key="cluster_map")
        st.caption(_("A sample of {n} members projected on the two principal components of the clustering features. "
                     "Clusters that overlap here may still separate in the other dimensions.")
                   .format(n=f"{len(flat):,}"))

if members_tab.open:
    with members_tab:
        chosen = st.selectbox(_("Cluster"), [c for c in portraits["cluster"] if c not in result.empty_clusters],
                              key="cluster_members_pick",
                              format_func=lambda c: names[c],
                              help=_("Its members in this date range, names, phones and emails masked."))
        row = portraits.set_index("cluster").loc[chosen]
        member_set(ctx.engine, cluster_audience(filters, result.model, [int(chosen)]), key="cluster_members",
                   who=_("in cluster {cluster}: {name}").format(cluster=chosen, name=row["name"]),
                   actor=default_author(), page="clusters",
                   count=int(row["members"]))
