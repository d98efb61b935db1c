"""Cached wrappers around the analytics used by pages, keyed on the warehouse URL and parameters.

The engine is passed with a leading underscore so Streamlit does not try to hash it; the URL
stands in for it in the cache key. Entries live for ten minutes; the sidebar's "Refresh data"
button clears them after the warehouse has been reloaded.
"""

from __future__ import annotations

from datetime import date

import pandas as pd
import streamlit as st
from sqlalchemy import Engine

from analytics import (
    audience_report,
    clustering,
    experiments,
    forecast,
    funnels,
    heatmaps,
    kpis,
    portraits,
    rfm,
    rules,
    targeting,
)
from analytics.filters import FilterOptions, Filters, filter_options
from analytics.member_rows import listed_member_ids, member_count, member_rows
from analytics.quality import DEFAULT_THRESHOLDS, QualityReport, QualityThresholds, quality_report
from analytics.storage.warehouse import DataSpan, SchemaReport, check_schema, data_span, table_overview

TTL_SECONDS = 600


@st.cache_data(ttl=TTL_SECONDS, show_spinner=False)
def cached_data_span(_engine: Engine, url: str) -> DataSpan | None:
    return data_span(_engine)


@st.cache_data(ttl=TTL_SECONDS, show_spinner=False)
def cached_filter_options(_engine: Engine, url: str) -> FilterOptions:
    return filter_options(_engine)


@st.cache_data(ttl=TTL_SECONDS, show_spinner="Computing KPIs…")
def cached_kpi_summary(_engine: Engine, url: str, filters: Filters) -> kpis.KpiSummary:
    return kpis.kpi_summary(_engine, filters)


@st.cache_data(ttl=TTL_SECONDS, show_spinner="Computing KPIs and the tier breakdown…")
def cached_summary_and_tiers(_engine: Engine, url: str, filters: Filters) -> tuple[kpis.KpiSummary, pd.DataFrame]:
    return kpis.kpi_summary_and_tiers(_engine, filters)


@st.cache_data(ttl=TTL_SECONDS, show_spinner="Computing the trend…")
def cached_kpi_trend(_engine: Engine, url: str, filters: Filters, kpi: str, grain: str) -> pd.DataFrame:
    return kpis.kpi_trend(_engine, filters, kpi, grain)  # type: ignore[arg-type]


@st.cache_data(ttl=TTL_SECONDS, show_spinner="Computing the breakdown…")
def cached_kpi_breakdown(_engine: Engine, url: str, filters: Filters, by: str) -> pd.DataFrame:
    return kpis.kpi_breakdown(_engine, filters, by)  # type: ignore[arg-type]


@st.cache_data(ttl=TTL_SECONDS, show_spinner="Checking the warehouse…")
def cached_schema_and_counts(_engine: Engine, url: str) -> tuple[SchemaReport, pd.DataFrame]:
    return check_schema(_engine), table_overview(_engine)


@st.cache_data(ttl=TTL_SECONDS, show_spinner="Checking data quality: every table once, keys and references…")
def cached_quality_report(_engine: Engine, url: str, today: date,
                          thresholds: QualityThresholds = DEFAULT_THRESHOLDS) -> QualityReport:
    return quality_report(_engine, today, thresholds)


@st.cache_data(ttl=TTL_SECONDS, show_spinner=False)
def cached_import_history(_engine: Engine, url: str) -> pd.DataFrame:
    from analytics.importers import import_history

    return import_history(_engine)


@st.cache_data(ttl=TTL_SECONDS, show_spinner="Reading the baskets…", max_entries=8)
def cached_baskets(_engine: Engine, url: str, filters: Filters, level: str) -> rules.Baskets:
    return rules.load_baskets(_engine, filters, level)


#: Seconds a mining run may take in the app before it is stopped (the page says so).
RULES_TIME_LIMIT = 60.0


@st.cache_data(ttl=TTL_SECONDS, show_spinner=False, max_entries=16)
def cached_rules(_engine: Engine, url: str, filters: Filters, spec: rules.RuleSpec) -> rules.RuleResult:
    baskets = cached_baskets(_engine, url, filters, spec.level)
    return rules.mine_rules(baskets, spec, time_limit=RULES_TIME_LIMIT)


@st.cache_data(ttl=TTL_SECONDS, show_spinner=False)
def cached_item_names(_engine: Engine, url: str, level: str, items: tuple[str, ...]) -> dict[str, str]:
    return rules.item_names(_engine, level, items)


@st.cache_data(ttl=TTL_SECONDS, show_spinner="Counting the audience…")
def cached_audience_size(_engine: Engine, url: str, spec_json: str) -> int:
    import json

    return rules.audience_size(_engine, json.loads(spec_json))


@st.cache_data(ttl=TTL_SECONDS, show_spinner="Computing cohorts…")
def cached_retention(_engine: Engine, url: str, filters: Filters, cohort: str, period: str, activity: str,
                     max_periods: int) -> pd.DataFrame:
    return heatmaps.cohort_retention(_engine, filters, cohort, period, activity, max_periods)  # type: ignore[arg-type]


@st.cache_data(ttl=TTL_SECONDS, show_spinner="Computing the heatmap…")
def cached_heatmap(_engine: Engine, url: str, filters: Filters, kind: str, option: str) -> pd.DataFrame:
    if kind == "rhythm":
        return heatmaps.activity_rhythm(_engine, filters, option)
    if kind == "affinity":
        return heatmaps.category_affinity(_engine, filters, option)
    return heatmaps.browsing_hotspots(_engine, filters, option)


@st.cache_data(ttl=TTL_SECONDS, show_spinner="Finding the members behind the cell…", max_entries=32)
def cached_cell_members(_engine: Engine, url: str, filters: Filters, heatmap: str, row: str | int, column: str | int,
                        options: tuple[tuple[str, str], ...], limit: int) -> tuple[int, pd.DataFrame]:
    """How many members are behind one heatmap cell, and the first ``limit`` of them (masked).

    The cell is given as plain values (see ``heatmaps.cell_members``; ``options`` as name/value pairs)
    so that it can be part of the cache key.
    """
    ids = heatmaps.cell_members(filters, heatmap, row, column, **dict(options))
    return member_count(_engine, ids), member_rows(_engine, ids, limit)


def cell_members_csv(engine: Engine, filters: Filters, heatmap: str, row: str | int, column: str | int,
                     options: tuple[tuple[str, str], ...]) -> bytes:
    """Every member behind one heatmap cell as CSV (masked): not cached, since a download button
    builds it only when clicked."""
    ids = heatmaps.cell_members(filters, heatmap, row, column, **dict(options))
    return member_rows(engine, ids).to_csv(index=False).encode()


@st.cache_data(ttl=TTL_SECONDS, show_spinner=False)
def cached_step_filter_options(_engine: Engine, url: str) -> dict[str, tuple[str, ...]]:
    return funnels.step_filter_options(_engine)


@st.cache_data(ttl=TTL_SECONDS, show_spinner=False, max_entries=64)
def cached_funnel_report(_engine: Engine, url: str, filters: Filters, spec: funnels.FunnelSpec,
                         breakdown: str | None) -> funnels.FunnelReport:
    return funnels.funnel_report(_engine, spec, filters, breakdown)


@st.cache_data(ttl=TTL_SECONDS, show_spinner="Computing the trend…", max_entries=64)
def cached_funnel_trend(_engine: Engine, url: str, filters: Filters, spec: funnels.FunnelSpec,
                        grain: str) -> pd.DataFrame:
    return funnels.funnel_trend(_engine, spec, filters, grain)


@st.cache_data(ttl=TTL_SECONDS, show_spinner="Counting the members who dropped off…", max_entries=64)
def cached_dropoff_count(_engine: Engine, url: str, filters: Filters, spec: funnels.FunnelSpec, step: int) -> int:
    return member_count(_engine, funnels.dropoff_member_ids(spec, filters, step))


@st.cache_data(ttl=TTL_SECONDS, show_spinner="Listing the members who dropped off…", max_entries=16)
def cached_dropoff_rows(_engine: Engine, url: str, filters: Filters, spec: funnels.FunnelSpec, step: int,
                        limit: int) -> pd.DataFrame:
    """The first ``limit`` members (by id) whose best attempt stopped at ``step``, masked."""
    return member_rows(_engine, funnels.dropoff_member_ids(spec, filters, step), limit)


def dropoff_members_csv(engine: Engine, filters: Filters, spec: funnels.FunnelSpec, step: int) -> bytes:
    """Every member whose best attempt stopped at ``step`` as CSV (masked): not cached, since a
    download button builds it only when clicked."""
    return member_rows(engine, funnels.dropoff_member_ids(spec, filters, step)).to_csv(index=False).encode()


Grid = tuple[tuple[int, int, str], ...]  # (R score, FM score, segment): hashable for the cache key


def _cells(grid: Grid) -> dict[tuple[int, int], str]:
    return {(r, fm): segment for r, fm, segment in grid}


@st.cache_data(ttl=TTL_SECONDS, show_spinner="Scoring members…", max_entries=32)
def cached_segment_summary(_engine: Engine, url: str, filters: Filters, grid: Grid) -> pd.DataFrame:
    return rfm.segment_summary(_engine, filters, _cells(grid))


@st.cache_data(ttl=TTL_SECONDS, show_spinner=False, max_entries=32)
def cached_score_grid(_engine: Engine, url: str, filters: Filters, across: str) -> pd.DataFrame:
    return rfm.score_grid(_engine, filters, across)


@st.cache_data(ttl=TTL_SECONDS, show_spinner="Following members between the two periods…", max_entries=32)
def cached_segment_migration(_engine: Engine, url: str, before: Filters, after: Filters, grid: Grid) -> pd.DataFrame:
    return rfm.segment_migration(_engine, before, after, _cells(grid))


@st.cache_data(ttl=TTL_SECONDS, show_spinner="Listing the segment's members…", max_entries=16)
def cached_segment_members(_engine: Engine, url: str, filters: Filters, segment: str, grid: Grid,
                           limit: int) -> tuple[int, pd.DataFrame]:
    """How many members the segment has, and the first ``limit`` of them (masked)."""
    ids = rfm.segment_member_ids(filters, (segment,), _cells(grid))
    return member_count(_engine, ids), member_rows(_engine, ids, limit)


def segment_members_csv(engine: Engine, filters: Filters, segment: str, grid: Grid) -> bytes:
    """Every member of the segment as CSV (masked): built when the download button is clicked."""
    ids = rfm.segment_member_ids(filters, (segment,), _cells(grid))
    return member_rows(engine, ids).to_csv(index=False).encode()


# --- clusters, tags, member 360 -------------------------------------------------------------------

#: The settings last chosen on the Member clusters page: Member 360 shows a member's cluster under them.
CLUSTER_SETTINGS_KEY = "cluster_settings"


@st.cache_resource(ttl=TTL_SECONDS, show_spinner="Clustering members: features in the warehouse, then the model…",
                   max_entries=2)
def cached_clusters(_engine: Engine, url: str, filters: Filters,
                    settings: clustering.ClusterSettings) -> clustering.ClusterResult:
    """Shared, not copied (``cache_resource``): a result holds one row per member, too big to copy on every
    rerun. Pages only read it. Two entries: the current settings and the previous ones."""
    return clustering.cluster_members(_engine, filters, settings)


@st.cache_data(ttl=TTL_SECONDS, show_spinner="Fitting every k from 2 to 10 on a sample…", max_entries=8)
def cached_k_selection(_engine: Engine, url: str, filters: Filters, settings_but_k: clustering.ClusterSettings,
                       _settings: clustering.ClusterSettings) -> pd.DataFrame:
    """The k-selection table, which does not depend on the chosen k: keyed on the settings with k fixed
    (``settings_but_k``), computed from the features of the current result (``_settings``)."""
    result = cached_clusters(_engine, url, filters, _settings)
    data = clustering.MemberFeatures(result.members, result.all_features, result.model.categories,
                                     result.model.channels)
    return clustering.k_selection(data, settings_but_k)


@st.cache_data(ttl=TTL_SECONDS, show_spinner=False, max_entries=16)
def cached_cluster_mix(_engine: Engine, url: str, filters: Filters, settings: clustering.ClusterSettings,
                       attribute: str) -> pd.DataFrame:
    return clustering.cluster_mix(cached_clusters(_engine, url, filters, settings), attribute)


@st.cache_data(ttl=TTL_SECONDS, show_spinner=False, max_entries=8)
def cached_projection(_engine: Engine, url: str, filters: Filters,
                      settings: clustering.ClusterSettings) -> pd.DataFrame:
    return clustering.projection(cached_clusters(_engine, url, filters, settings))


@st.cache_data(ttl=TTL_SECONDS, show_spinner="Listing the cluster's members…", max_entries=16)
def cached_cluster_members(_engine: Engine, url: str, filters: Filters, settings: clustering.ClusterSettings,
                           cluster: int, limit: int) -> pd.DataFrame:
    """The first ``limit`` members of the cluster by id (masked), taken from the result's labels."""
    labels = cached_clusters(_engine, url, filters, settings).members
    ids = sorted(labels.loc[labels["cluster"] == cluster, "member_id"])[:limit]
    return member_rows(_engine, listed_member_ids(ids), limit)


def cluster_members_csv(engine: Engine, url: str, filters: Filters, settings: clustering.ClusterSettings,
                        cluster: int) -> bytes:
    """Every member of the cluster as CSV (masked), found in the warehouse by the model's rule, as the audience
    would be: built when the download button is clicked."""
    model = cached_clusters(engine, url, filters, settings).model
    return member_rows(engine, clustering.cluster_member_ids(model, filters, [cluster])).to_csv(index=False).encode()


@st.cache_data(ttl=TTL_SECONDS, show_spinner="Tagging members…", max_entries=16)
def cached_tag_coverage(_engine: Engine, url: str, filters: Filters) -> pd.DataFrame:
    return portraits.tag_coverage(_engine, filters)


@st.cache_data(ttl=TTL_SECONDS, show_spinner="Listing the tag's members…", max_entries=16)
def cached_tag_members(_engine: Engine, url: str, filters: Filters, tag: str, limit: int) -> pd.DataFrame:
    return member_rows(_engine, portraits.tag_member_ids(filters, tag), limit)


def tag_members_csv(engine: Engine, filters: Filters, tag: str) -> bytes:
    """Every member with the tag as CSV (masked): built when the download button is clicked."""
    return member_rows(engine, portraits.tag_member_ids(filters, tag)).to_csv(index=False).encode()


@st.cache_data(ttl=TTL_SECONDS, show_spinner=False, max_entries=64)
def cached_find_members(_engine: Engine, url: str, text: str, limit: int) -> pd.DataFrame:
    return portraits.find_members(_engine, text, limit)


@st.cache_data(ttl=TTL_SECONDS, show_spinner="Reading the member's history…", max_entries=32)
def cached_member_360(_engine: Engine, url: str, filters: Filters, member_id: str) -> dict | None:
    """Everything the member 360 view shows of one member (masked), or None for an unknown id."""
    profile = portraits.member_profile(_engine, member_id, as_of=filters.end)
    if profile is None:
        return None
    return {"profile": profile, "rfm": portraits.member_summary(_engine, filters, member_id),
            "tags": portraits.member_tags(_engine, filters, member_id),
            "tiers": portraits.tier_history(_engine, member_id), "points": portraits.points_history(_engine, member_id),
            "orders": portraits.order_timeline(_engine, member_id)}


# --- campaigns -------------------------------------------------------------------------------------

@st.cache_data(ttl=TTL_SECONDS, show_spinner="Sizing the audience…", max_entries=32)
def cached_audience_preview(_engine: Engine, url: str, spec_json: str) -> targeting.Preview:
    import json

    return targeting.preview(_engine, json.loads(spec_json))


@st.cache_data(ttl=TTL_SECONDS, show_spinner="Listing the audience…", max_entries=16)
def cached_audience_members(_engine: Engine, url: str, spec_json: str, limit: int) -> pd.DataFrame:
    import json

    return member_rows(_engine, targeting.targeted_member_ids(json.loads(spec_json)), limit)


def audience_members_csv(engine: Engine, spec_json: str, state: Engine | None = None, actor: str = "") -> bytes:
    """Every targeted member with their arm as CSV (masked): built when the download button is clicked, and
    written to the audit log when there is an app-state database."""
    import json

    spec = json.loads(spec_json)
    if state is not None:
        from analytics.storage.appstate import log_event

        log_event(state, actor or "unknown", "export_audience_members",
                  {"name": spec.get("name"), "campaign_key": spec.get("campaign_key"), "masked": True})
    rows = member_rows(engine, targeting.targeted_member_ids(spec))
    arms = targeting.targeted_members(engine, spec)
    return rows.merge(arms, on="member_id", how="left").to_csv(index=False).encode()


@st.cache_data(ttl=TTL_SECONDS, show_spinner=False)
def cached_campaign_list(_engine: Engine, url: str) -> pd.DataFrame:
    return experiments.campaign_list(_engine)


@st.cache_data(ttl=TTL_SECONDS, show_spinner="Reading out the campaign…", max_entries=32)
def cached_read_out(_engine: Engine, url: str, campaign_id: str) -> experiments.ReadOut:
    return experiments.read_out(_engine, campaign_id)


@st.cache_data(ttl=TTL_SECONDS, show_spinner="Counting the overlaps…", max_entries=16)
def cached_overlap(_engine: Engine, url: str, specs_json: str) -> pd.DataFrame:
    """The overlap matrix of named audiences (``specs_json``: a JSON object name -> spec)."""
    import json

    return audience_report.overlap_matrix(_engine, json.loads(specs_json))


@st.cache_data(ttl=TTL_SECONDS, show_spinner="Profiling the audience against all members…", max_entries=16)
def cached_audience_profile(_engine: Engine, url: str, spec_json: str) -> audience_report.AudienceProfile:
    import json

    return audience_report.audience_profile(_engine, json.loads(spec_json))


@st.cache_data(ttl=TTL_SECONDS, show_spinner="Comparing treatment and control…", max_entries=16)
def cached_balance(_engine: Engine, url: str, spec_json: str) -> pd.DataFrame:
    import json

    return audience_report.balance_check(_engine, json.loads(spec_json))


@st.cache_data(ttl=TTL_SECONDS, show_spinner=False)
def cached_forecast_types(_engine: Engine, url: str) -> pd.DataFrame:
    return forecast.forecast_types(_engine)


@st.cache_data(ttl=TTL_SECONDS, show_spinner="Reading past campaigns…", max_entries=32)
def cached_forecast(_engine: Engine, url: str, campaign_type: str, channel: str, size: int, coupon: float,
                    message_cost: float, margin: float, redemption: float) -> forecast.Forecast:
    return forecast.forecast_campaign(_engine, campaign_type, channel, size, coupon, message_cost, margin, redemption)
