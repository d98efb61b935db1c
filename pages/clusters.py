"""Member clusters: groups of buyers who behave alike, what each is worth and who is in it."""

from __future__ import annotations

from dataclasses import replace

import plotly.express as px
import streamlit as st

from analytics import clustering
from analytics.cluster_audiences import cluster_audience
from analytics.clustering import ALGORITHMS, FEATURE_GROUPS, ClusterSettings
from analytics.errors import InputError
from analytics.storage.contract import TIERS
from ui.app_state import default_author
from ui.cached import CLUSTER_SETTINGS_KEY, cached_cluster_mix, cached_clusters, cached_k_selection, cached_projection
from ui.context import page_inputs
from ui.format import ACCENT, format_value
from ui.member_sets import member_set

MIX_LABELS = {"tier": "Tier", "region": "Region", "gender": "Gender", "age_band": "Age band",
              "acquisition_channel": "Acquisition channel"}
#: Ordered attributes keep their order (and a sequential palette) in the mix chart.
VALUE_ORDERS = {"tier": [*TIERS, "unknown"], "age_band": [label for *_, label in clustering.AGE_BANDS] + ["unknown"]}
ctx = page_inputs("clusters")
filters = ctx.filters

st.title("Member clusters")
st.caption(f"Members with completed orders from {filters.start:%d %b %Y} to {filters.end:%d %b %Y}, grouped by how "
           "they buy. Clusters are steadier over a longer range (a year) than over a few weeks.")

with st.container(border=True):
    left, middle, right = st.columns([2, 2, 3])
    k = left.slider("Clusters (k)", 2, 12, 6, key="cluster_k",
                    help="How many groups. The 'Choosing k' tab compares k = 2 to 10.")
    algorithm = middle.segmented_control(
        "Algorithm", list(ALGORITHMS), default="kmeans", key="cluster_algorithm", required=True,
        format_func=ALGORITHMS.get,
        help="k-means: compact groups of similar size, the usual choice. Gaussian mixture: groups may differ in "
             "spread per feature (one variance per feature and cluster).")
    min_orders = right.number_input(
        "Members with at least … orders", 1, 50, 1, key="cluster_min_orders",
        help="One-order members show little behaviour; clustering repeat buyers (2 or 3+) gives sharper groups.")
    groups = st.pills("Features", list(FEATURE_GROUPS), default=list(FEATURE_GROUPS), selection_mode="multi",
                      format_func=lambda g: FEATURE_GROUPS[g].label, key="cluster_groups",
                      help="Which behaviours the clusters are built on. "
                           + " ".join(f"**{g.label}**: {g.help}" for g in FEATURE_GROUPS.values()))
    with st.expander("How features are prepared", icon=":material/functions:"):
        st.markdown(
            "- Amounts, counts and days are skewed (a few members buy a hundred times more than most), so they "
            "are taken as **ln(1 + x)**; shares (category, channel) are **square-rooted**, which spreads the "
            "small shares that tell members apart.\n"
            "- Every feature is then **standardised** (minus its mean, divided by its standard deviation) and "
            "clipped at ±5, so each feature counts equally and a handful of extreme members cannot drag a "
            "cluster centre. A missing age takes the average.\n"
            "- **Cluster 1 has the highest average net sales per member**, cluster 2 the next, and so on, so "
            "numbers keep their meaning between runs. The same data, settings and seed give the same clusters.")
        seed = st.number_input("Random seed", 0, 2**31 - 1, 42, key="cluster_seed",
                               help="Starting points of the algorithm: change it to check the clusters are stable.")

if not groups:
    st.warning("Choose at least one feature group to cluster on.", icon=":material/tune:")
    st.stop()
settings = ClusterSettings(k, algorithm, tuple(groups), int(min_orders), int(seed))
st.session_state[CLUSTER_SETTINGS_KEY] = settings
try:
    result = cached_clusters(ctx.engine, filters, settings)
except InputError as problem:
    st.info(str(problem), icon=":material/search_off:")
    st.stop()
portraits = result.portraits
names = {0: "All clustered", **{c: f"{c}. {n}" for c, n in zip(portraits["cluster"], portraits["name"], strict=True)}}
if result.empty_clusters:
    st.warning(f"{len(result.empty_clusters)} of the {settings.k} clusters have no member closest to them "
               f"({', '.join(map(str, result.empty_clusters))}): the data holds fewer distinct groups; try fewer "
               "clusters or k-means.", icon=":material/bubble_chart:")

cards = st.columns(4)
cards[0].metric("Members clustered", f"{len(result.members):,}", border=True,
                help=f"Members with at least {settings.min_orders} completed order(s) in the range.")
cards[1].metric("Their net sales", format_value(result.total_sales, "currency"), border=True,
                help="Net sales of completed orders in the range, of the members clustered.")
top = portraits.iloc[0]
cards[2].metric("Cluster 1's share of sales", f"{top['sales_share']:.1%}", border=True,
                delta=f"{top['member_share']:.1%} of members", delta_color="off", delta_arrow="off",
                help=f"Cluster 1 ({top['name']}) has the highest average net sales per member.")
cards[3].metric("Features", f"{len(result.model.features_)}", border=True,
                help=", ".join(f.label for f in result.model.features_))

portrait_tab, k_tab, map_tab, members_tab = st.tabs(["Portraits", "Choosing k", "Map", "Members of a cluster"])
with portrait_tab:
    treemap = px.treemap(portraits.assign(label=portraits["cluster"].astype(str) + ". " + portraits["name"]),
                         path=["label"], values="members", color="avg_sales", color_continuous_scale="Tealgrn",
                         custom_data=["members", "member_share", "sales_share", "avg_sales", "top_categories"])
    treemap.update_traces(texttemplate="<b>%{label}</b><br>%{customdata[0]:,} members<br>%{customdata[2]:.1%} of "
                                       "sales",
                          hovertemplate="<b>%{label}</b><br>%{customdata[0]:,} members (%{customdata[1]:.1%})<br>"
                                        "%{customdata[2]:.1%} of net sales<br>%{customdata[3]:,.0f} per member<br>"
                                        "%{customdata[4]}<extra></extra>")
    treemap.update_layout(height=360, margin={"l": 0, "r": 0, "t": 10, "b": 0},
                          coloraxis_colorbar_title="Sales per member")
    st.plotly_chart(treemap, key="cluster_treemap")
    st.dataframe(portraits, hide_index=True, column_config={
        "cluster": st.column_config.NumberColumn("Cluster", help="1 = highest average net sales per member."),
        "name": st.column_config.TextColumn("Portrait", width="large",
                                            help="Value and frequency against all clustered members, the most "
                                                 "distinctive other trait (the feature furthest from the average, "
                                                 "in standard deviations: e.g. live-stream heavy), and the "
                                                 "favourite category (the highest lift among categories with 15%+ "
                                                 "of the cluster's spend)."),
        "members": st.column_config.NumberColumn("Members", format="localized",
                                                 help="Members closest to this cluster's centre."),
        "member_share": st.column_config.NumberColumn("Share of members", format="percent",
                                                      help="Of all members clustered."),
        "sales": st.column_config.NumberColumn("Net sales", format="localized",
                                               help="Net sales of the cluster's completed orders in the range."),
        "sales_share": st.column_config.NumberColumn("Share of sales", format="percent",
                                                     help="Of the net sales of all members clustered."),
        "avg_sales": st.column_config.NumberColumn("Sales per member", format="%.0f",
                                                   help="Net sales / members; clusters are numbered by it, "
                                                        "highest first."),
        "avg_orders": st.column_config.NumberColumn("Orders per member", format="%.1f",
                                                    help="Completed orders in the range / members."),
        "aov": st.column_config.NumberColumn("AOV", format="%.0f", help="Net sales / orders."),
        "avg_recency_days": st.column_config.NumberColumn("Days since last order", format="%.0f",
                                                          help="Average over the cluster's members, counted to the "
                                                               "range's last day."),
        "top_categories": st.column_config.TextColumn(
            "Top categories (share of spend)", width="large",
            help="Share of the cluster's line amount in each category; categories beyond the range's top 8 are "
                 "'other categories'."),
    })
    st.subheader("How each cluster differs", help="Each cell: the cluster's mean of the standardised feature, i.e. "
                 "how many standard deviations above (red) or below (blue) all clustered members it sits. "
                 "Features not used for clustering are shown too, in the same terms.")
    z = result.zscores.copy()
    z.index = [f"{c}. {n}" for c, n in zip(portraits["cluster"], portraits["name"], strict=True)]
    heat = px.imshow(z, color_continuous_scale="RdBu_r", color_continuous_midpoint=0, zmin=-2, zmax=2,
                     text_auto=".1f", aspect="auto", labels={"x": "Feature", "y": "", "color": "z-score"})
    heat.update_layout(height=120 + 48 * len(z), margin={"l": 0, "r": 0, "t": 10, "b": 0})
    heat.update_xaxes(side="top", tickangle=-35)
    st.plotly_chart(heat, key="cluster_zscores")
    attribute = st.segmented_control("Mix by", list(MIX_LABELS), default="tier", key="cluster_mix_by",
                                     required=True, format_func=MIX_LABELS.get)
    mix = cached_cluster_mix(ctx.engine, filters, settings, attribute)
    mix["cluster_label"] = mix["cluster"].map(names)
    bars = px.bar(mix, y="cluster_label", x="share", color="value", orientation="h", custom_data=["members"],
                  category_orders={"cluster_label": list(names.values()),
                                   "value": VALUE_ORDERS.get(attribute, sorted(mix["value"].unique()))},
                  color_discrete_sequence=px.colors.qualitative.Safe if attribute not in VALUE_ORDERS
                  else px.colors.sequential.Tealgrn[1:],
                  labels={"cluster_label": "", "share": "Share of the cluster's members",
                          "value": MIX_LABELS[attribute]})
    bars.update_traces(hovertemplate="%{y}<br>%{fullData.name}: %{x:.1%} (%{customdata[0]:,})<extra></extra>")
    bars.update_layout(height=140 + 34 * len(names), margin={"l": 0, "r": 0, "t": 10, "b": 0},
                       xaxis_tickformat=".0%")
    st.plotly_chart(bars, key="cluster_mix")

with k_tab:
    st.caption("Fits k = 2 … 10 with the same features and algorithm on a sample of up to 10,000 members. Look for "
               "where inertia stops falling steeply (the elbow), a high silhouette and a low Davies–Bouldin index.")
    if st.toggle("Compare k = 2 … 10", key="cluster_k_compare",
                 help="Takes a few seconds on a large warehouse; once on, it follows the settings above."):
        table = cached_k_selection(ctx.engine, filters, replace(settings, k=2), settings)
        try:
            suggestion = clustering.suggest_k(table)
        except InputError as problem:
            st.info(str(problem), icon=":material/search_off:")
            st.stop()
        with st.container(border=True, key="cluster_k_suggestion"):
            note, button = st.columns([5, 1], vertical_alignment="center")
            note.markdown(f"**Suggested: k = {suggestion.k}.** {suggestion.reason}"
                          + (" That is the k shown above." if suggestion.k == settings.k else ""))
            button.button(f"Use k = {suggestion.k}", key="cluster_k_use", disabled=suggestion.k == settings.k,
                          on_click=lambda k=suggestion.k: st.session_state.update(cluster_k=k),
                          help="Sets the number of clusters above.")
        charts = st.columns(3)
        for column, (measure, title, hint) in zip(charts, [
                ("inertia", "Inertia", "mean squared distance to the nearest centre: lower is tighter"),
                ("silhouette", "Silhouette", "-1 … 1: higher means better separated clusters"),
                ("davies_bouldin", "Davies–Bouldin", "lower means more distinct clusters")], strict=True):
            line = px.line(table, x="k", y=measure, markers=True, title=title, labels={measure: "", "k": "k"})
            line.add_vline(x=settings.k, line_dash="dot", line_color="grey")
            if suggestion.k != settings.k:
                line.add_vline(x=suggestion.k, line_dash="dash", line_color=ACCENT)
            line.update_layout(height=300, margin={"l": 0, "r": 0, "t": 40, "b": 0})
            column.plotly_chart(line, key=f"cluster_k_{measure}")
            column.caption(hint + ("" if suggestion.k == settings.k else
                                   f". Dotted: k = {settings.k} (shown); dashed: k = {suggestion.k} (suggested)"))

with map_tab:
    flat = cached_projection(ctx.engine, filters, settings)
    explained = flat.attrs["explained"]
    flat["cluster_label"] = flat["cluster"].map(names)
    scatter = px.scatter(flat, x="pc1", y="pc2", color="cluster_label", opacity=0.6, hover_data={"member_id": True},
                         category_orders={"cluster_label": list(names.values())[1:]},
                         labels={"pc1": f"Component 1 ({explained[0]:.0%} of variance)",
                                 "pc2": f"Component 2 ({explained[1]:.0%} of variance)", "cluster_label": "Cluster"})
    scatter.update_traces(marker_size=4)
    scatter.update_layout(height=560, margin={"l": 0, "r": 0, "t": 10, "b": 0})
    st.plotly_chart(scatter, key="cluster_map")
    st.caption(f"A sample of {len(flat):,} members projected on the two principal components of the clustering "
               "features. Clusters that overlap here may still separate in the other dimensions.")

with members_tab:
    chosen = st.selectbox("Cluster", [c for c in portraits["cluster"] if c not in result.empty_clusters],
                          key="cluster_members_pick",
                          format_func=lambda c: names[c],
                          help="Its members in this date range, names, phones and emails masked.")
    row = portraits.set_index("cluster").loc[chosen]
    member_set(ctx.engine, cluster_audience(filters, result.model, [int(chosen)]), key="cluster_members",
               who=f"in cluster {chosen}: {row['name']}", actor=default_author(), page="clusters",
               count=int(row["members"]))
