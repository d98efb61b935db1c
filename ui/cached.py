"""Cached wrappers around the analytics pages use, keyed on the warehouse and the analysis parameters.

The engine is hashed by its URL and an audience by its definition (``hash_funcs``), so wrappers take the objects
themselves. Entries live for ten minutes; the sidebar's "Refresh data" clears them after the warehouse has been
reloaded. Member lists, counts and exports of any audience go through :mod:`ui.member_sets` instead.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import replace
from datetime import date
from typing import Any

import pandas as pd
import streamlit as st
from sqlalchemy import Engine

from analytics import (
    audience_report,
    campaign_results,
    clustering,
    experiments,
    forecast,
    funnels,
    heatmaps,
    kpis,
    member360,
    member_value,
    predictions,
    privacy_rights,
    programme_points,
    programme_tiers,
    programme_whatif,
    rfm,
    rule_views,
    rules,
    tags,
    targeting,
)
from analytics.audiences import Audience, kinds
from analytics.filters import OPEN_SCOPE, FilterOptions, Filters, Scope, filter_options, member_regions
from analytics.i18n import LANGUAGES, _, language, translated
from analytics.quality import DEFAULT_THRESHOLDS, QualityReport, QualityThresholds, quality_report
from analytics.storage.warehouse import DataSpan, SchemaReport, check_schema, data_span, table_overview
from ui.app_state import state_engine

TTL_SECONDS = 600


def _engine_key(engine: Engine) -> str:
    return engine.url.render_as_string(hide_password=False)


#: How cache keys are made of the objects Streamlit cannot hash by itself (exact types: every audience kind).
def _models_key(models: predictions.Models) -> str:
    """Prediction models by what they are: the JSON of each (classifier trees are large, but hashed once a run)."""
    import json

    parts = {name: (getattr(models, name).to_dict() if getattr(models, name) is not None else None)
             for name in ("churn", "propensity", "bgnbd", "gammagamma")}
    return json.dumps(parts, sort_keys=True, default=str)


HASH_FUNCS: dict[Any, Callable[[Any], Any]] = {Engine: _engine_key, predictions.Models: _models_key,
                                               **{kind: Audience.fingerprint for kind in kinds().values()}}


def cached(spinner: str | bool = False, max_entries: int | None = None) -> Callable:
    """``st.cache_data`` with MemberLens's time to live and hash functions, kept apart per language: a result may
    hold translated texts (labels, sentences), so the run's language is part of its key, and the spinner is
    shown in that language (the catalog collects ``cached("...")`` texts)."""
    return _per_language(st.cache_data, spinner, max_entries)


def shared(spinner: str | bool = False, max_entries: int | None = None, by_language: bool = True) -> Callable:
    """Like :func:`cached` with ``st.cache_resource``: for large results pages only read, shared by every run
    instead of copied on each hit. ``by_language=False`` for results that hold no text (purchases, baskets, a
    model): one copy for every language, the spinner still in the reader's (``st.spinner`` shows only after half
    a second, so never on a hit)."""
    if by_language:
        return _per_language(st.cache_resource, spinner, max_entries)

    def decorate(function: Callable) -> Callable:
        kept = st.cache_resource(ttl=TTL_SECONDS, max_entries=max_entries, hash_funcs=HASH_FUNCS,
                                 show_spinner=False)(function)

        @functools.wraps(function)
        def call(*args: Any, **kwargs: Any) -> Any:
            if not isinstance(spinner, str):
                return kept(*args, **kwargs)
            with st.spinner(_(spinner)):
                return kept(*args, **kwargs)

        call.clear = kept.clear  # type: ignore[attr-defined]
        return call

    return decorate


def _per_language(cache: Callable, spinner: str | bool, max_entries: int | None) -> Callable:
    def decorate(function: Callable) -> Callable:
        @functools.wraps(function)  # the cache's key follows the function's name and source, not the wrapper's
        def in_language(*args: Any, memberlens_language: str, **kwargs: Any) -> Any:
            return function(*args, **kwargs)

        variants = {lang: cache(ttl=TTL_SECONDS, max_entries=max_entries, hash_funcs=HASH_FUNCS,
                                        show_spinner=translated(lang, spinner) if isinstance(spinner, str) else spinner)
                    (in_language) for lang in LANGUAGES}

        @functools.wraps(function)
        def call(*args: Any, **kwargs: Any) -> Any:
            lang = language()
            return variants[lang](*args, memberlens_language=lang, **kwargs)

        call.clear = lambda: [variant.clear() for variant in variants.values()]  # type: ignore[attr-defined]
        return call

    return decorate


@cached()
def cached_data_span(engine: Engine) -> DataSpan | None:
    return data_span(engine)


@cached()
def cached_filter_options(engine: Engine) -> FilterOptions:
    return filter_options(engine)


@cached()
def cached_regions(engine: Engine) -> tuple[str, ...]:
    return member_regions(engine)


@cached("Computing KPIs…")
def cached_kpi_summary(engine: Engine, filters: Filters, comparison: str = "previous") -> kpis.KpiSummary:
    return kpis.kpi_summary(engine, filters, comparison)  # type: ignore[arg-type]


@cached("Computing the trend…")
def cached_kpi_trend(engine: Engine, filters: Filters, kpi: str, grain: str) -> pd.DataFrame:
    return kpis.kpi_trend(engine, filters, kpi, grain)  # type: ignore[arg-type]


@cached("Computing the breakdown…")
def cached_kpi_breakdown(engine: Engine, filters: Filters, by: str, kpi: str = "net_sales",
                         comparison: str = "previous") -> kpis.KpiBreakdown:
    return kpis.kpi_breakdown(engine, filters, by, kpi, comparison)  # type: ignore[arg-type]


@cached("Checking the warehouse…")
def cached_schema_and_counts(engine: Engine) -> tuple[SchemaReport, pd.DataFrame]:
    return check_schema(engine), table_overview(engine)


@cached()
def cached_retention_report(engine: Engine, policy: privacy_rights.RetentionPolicy, today: date) -> pd.DataFrame:
    """What is past its retention period (Data quality and Privacy requests): an anti-join of the members against
    their orders and events, half a second on PostgreSQL at 50,000 members. A purge clears it."""
    return privacy_rights.retention_report(engine, state_engine(), policy, today)


@cached("Checking data quality: every table once, keys and references…")
def cached_quality_report(engine: Engine, today: date,
                          thresholds: QualityThresholds = DEFAULT_THRESHOLDS) -> QualityReport:
    return quality_report(engine, today, thresholds)


@cached()
def cached_import_history(engine: Engine) -> pd.DataFrame:
    from analytics.importers import import_history

    return import_history(engine)


@shared("Reading the baskets…", max_entries=8, by_language=False)
def cached_baskets(engine: Engine, filters: Filters, level: str) -> rules.Baskets:
    """The baskets of a period, shared and never copied (``st.cache_resource``): they are only read, and a copy
    per run (``st.cache_data`` unpickles its result on every hit) cost a second on every visit of Basket rules."""
    return rules.load_baskets(engine, filters, level)


#: Seconds a mining run may take in the app before it is stopped (the page says so).
RULES_TIME_LIMIT = 60.0


@cached(max_entries=16)
def cached_rules(engine: Engine, filters: Filters, spec: rules.RuleSpec) -> rules.RuleResult:
    baskets = cached_baskets(engine, filters, spec.level)
    return rules.mine_rules(baskets, spec, time_limit=RULES_TIME_LIMIT)


@cached()
def cached_item_names(engine: Engine, level: str, items: tuple[str, ...]) -> dict[str, str]:
    return rule_views.item_names(engine, level, items)


@cached("Computing cohorts…")
def cached_retention(engine: Engine, filters: Filters, cohort: str, period: str, activity: str,
                     max_periods: int) -> pd.DataFrame:
    return heatmaps.cohort_retention(engine, filters, cohort, period, activity, max_periods)  # type: ignore[arg-type]


@cached("Computing the heatmap…")
def cached_heatmap(engine: Engine, filters: Filters, kind: str, option: str) -> pd.DataFrame:
    if kind == "rhythm":
        return heatmaps.activity_rhythm(engine, filters, option)
    if kind == "affinity":
        return heatmaps.category_affinity(engine, filters, option)
    return heatmaps.browsing_hotspots(engine, filters, option)


@cached()
def cached_step_filter_options(engine: Engine) -> dict[str, tuple[str, ...]]:
    return funnels.step_filter_options(engine)


@cached(max_entries=64)
def cached_funnel_report(engine: Engine, filters: Filters, spec: funnels.FunnelSpec,
                         breakdown: str | None) -> funnels.FunnelReport:
    return funnels.funnel_report(engine, spec, filters, breakdown)


@cached("Computing the trend…", max_entries=64)
def cached_funnel_trend(engine: Engine, filters: Filters, spec: funnels.FunnelSpec, grain: str) -> pd.DataFrame:
    return funnels.funnel_trend(engine, spec, filters, grain)


Grid = rfm.Grid  # (R score, FM score, segment) per cell: hashable for the cache key


def _cells(grid: Grid) -> dict[tuple[int, int], str]:
    return {(r, fm): segment for r, fm, segment in grid}


@cached("Scoring members…", max_entries=32)
def cached_segment_summary(engine: Engine, filters: Filters, grid: Grid) -> pd.DataFrame:
    return rfm.segment_summary(engine, filters, _cells(grid))


@cached(max_entries=32)
def cached_score_grid(engine: Engine, filters: Filters, across: str) -> pd.DataFrame:
    return rfm.score_grid(engine, filters, across)


@cached("Counting the lapsed…", max_entries=32)
def cached_lapsed_summary(engine: Engine, filters: Filters) -> rfm.LapsedSummary:
    return rfm.lapsed_summary(engine, filters)


@cached("Following members between the two periods…", max_entries=32)
def cached_segment_migration(engine: Engine, before: Filters, after: Filters, grid: Grid) -> pd.DataFrame:
    return rfm.segment_migration(engine, before, after, _cells(grid))


# --- clusters, tags, member 360 -------------------------------------------------------------------

#: The settings last chosen on the Member clusters page: Member 360 shows a member's cluster under them.
CLUSTER_SETTINGS_KEY = "cluster_settings"


@shared("Clustering members: features in the warehouse, then the model…", max_entries=2)
def cached_clusters(engine: Engine, filters: Filters, settings: clustering.ClusterSettings) -> clustering.ClusterResult:
    """Shared, not copied (``cache_resource``): a result holds one row per member, too big to copy on every
    rerun. Pages only read it. Two entries: the current settings and the previous ones."""
    return clustering.cluster_members(engine, filters, settings)


@cached("Fitting every k from 2 to 10 on a sample…", max_entries=8)
def cached_k_selection(engine: Engine, filters: Filters, settings_but_k: clustering.ClusterSettings,
                       _settings: clustering.ClusterSettings) -> pd.DataFrame:
    """The k-selection table, which does not depend on the chosen k: keyed on the settings with k fixed
    (``settings_but_k``), computed from the features of the current result (``_settings``)."""
    result = cached_clusters(engine, filters, _settings)
    data = clustering.MemberFeatures(result.members, result.all_features, result.model.categories_,
                                     result.model.channels_)
    return clustering.k_selection(data, settings_but_k)


@cached(max_entries=16)
def cached_cluster_mix(engine: Engine, filters: Filters, settings: clustering.ClusterSettings,
                       attribute: str) -> pd.DataFrame:
    return clustering.cluster_mix(cached_clusters(engine, filters, settings), attribute)


@cached(max_entries=8)
def cached_projection(engine: Engine, filters: Filters, settings: clustering.ClusterSettings) -> pd.DataFrame:
    return clustering.projection(cached_clusters(engine, filters, settings))


@cached("Tagging members…", max_entries=16)
def cached_tag_coverage(engine: Engine, filters: Filters) -> pd.DataFrame:
    return tags.tag_coverage(engine, filters)


@cached(max_entries=64)
def cached_find_members(engine: Engine, text: str, limit: int, window: Filters | None = None,
                        scope: Scope = OPEN_SCOPE) -> pd.DataFrame:
    return member360.find_members(engine, text, limit, window, scope)


@cached("Finding the members who bought the most…", max_entries=16)
def cached_top_members(engine: Engine, window: Filters, limit: int, scope: Scope = OPEN_SCOPE) -> pd.DataFrame:
    return member360.top_members(engine, window, limit, scope)


@cached("Reading the member's history…", max_entries=32)
def cached_member_360(engine: Engine, filters: Filters, member_id: str, scope: Scope = OPEN_SCOPE,
                      profiling: Scope | None = None) -> dict | None:
    """Everything the member 360 view shows of one member (masked), or None for an unknown id or one ``scope``
    does not allow. Segment and tags are computed under the ``profiling`` scope (members who objected to
    profiling are left out of them)."""
    profile = member360.member_profile(engine, member_id, as_of=filters.end, scope=scope)
    if profile is None:
        return None
    profiled = replace(filters, scope=scope if profiling is None else profiling)
    summary = member360.member_summary(engine, profiled, member_id)
    return {"profile": profile, "rfm": summary,
            "lapsed": summary is None and member360.is_lapsed(engine, profiled, member_id),
            "tags": tags.member_tags(engine, profiled, member_id),
            "tiers": member360.tier_history(engine, member_id), "points": member360.points_history(engine, member_id),
            "orders": member360.order_timeline(engine, member_id, scope=scope)}


# --- campaigns -------------------------------------------------------------------------------------

@cached("Sizing the audience…", max_entries=32)
def cached_audience_preview(engine: Engine, audience: targeting.CampaignAudience) -> targeting.Preview:
    return targeting.preview(engine, audience)


@cached()
def cached_campaign_list(engine: Engine, scope: Scope = OPEN_SCOPE) -> pd.DataFrame:
    return experiments.campaign_list(engine, scope)


@cached("Reading out the campaign…", max_entries=32)
def cached_read_out(engine: Engine, campaign_id: str, scope: Scope = OPEN_SCOPE) -> experiments.ReadOut:
    return experiments.read_out(engine, campaign_id, scope)


@cached("Sizing the audience and counting the overlaps…", max_entries=16)
def cached_preview_and_overlap(engine: Engine, audience: targeting.CampaignAudience, name: str,
                               others: tuple[tuple[str, targeting.CampaignAudience], ...]
                               ) -> tuple[targeting.Preview, pd.DataFrame]:
    """The preview and the overlap matrix (``audience`` as ``name``, then ``others``) from one statement: what the
    page shows while the Overlap tab is open."""
    return audience_report.preview_and_overlap(engine, audience, dict(others), name)


@cached("Counting the overlaps…", max_entries=16)
def cached_overlap(engine: Engine, audiences: tuple[tuple[str, targeting.CampaignAudience], ...]) -> pd.DataFrame:
    """The overlap matrix of named audiences (``audiences``: (name, audience) pairs)."""
    # counted among the members the current audience's user may see (the first audience is the one being built)
    return audience_report.overlap_matrix(engine, dict(audiences), audiences[0][1].window.scope)


@cached("Profiling the audience against all members…", max_entries=16)
def cached_audience_profile(engine: Engine, audience: targeting.CampaignAudience) -> audience_report.AudienceProfile:
    return audience_report.audience_profile(engine, audience)


@cached("Comparing treatment and control…", max_entries=16)
def cached_balance(engine: Engine, audience: targeting.CampaignAudience) -> pd.DataFrame:
    return audience_report.balance_check(engine, audience)


@cached()
def cached_forecast_types(engine: Engine) -> pd.DataFrame:
    return forecast.forecast_types(engine)


@cached("Reading past campaigns…", max_entries=32)
def cached_forecast(engine: Engine, campaign_type: str, channel: str, size: int, coupon: float,
                    message_cost: float, margin: float, redemption: float) -> forecast.Forecast:
    return forecast.forecast_campaign(engine, campaign_type, channel, size, coupon, message_cost, margin, redemption)


# --- predictions -------------------------------------------------------------------------------------------------

@cached("Scoring members in the warehouse…", max_entries=8)
def cached_risk_bands(engine: Engine, models: predictions.Models, as_of: date, by: str | None) -> pd.DataFrame:
    from analytics.prediction_reports import risk_bands

    return risk_bands(engine, models, as_of, by)


@cached("Valuing members…", max_entries=16)
def cached_customer_equity(engine: Engine, models: predictions.Models, as_of: date, by: str) -> pd.DataFrame:
    from analytics.prediction_reports import customer_equity

    return customer_equity(engine, models, as_of, by)


@cached("Valuing members…", max_entries=8)
def cached_clv_distribution(engine: Engine, models: predictions.Models, as_of: date) -> tuple[pd.DataFrame, float]:
    from analytics.prediction_reports import clv_distribution

    return clv_distribution(engine, models, as_of)
# --- the membership programme and campaign results --------------------------------------------------------------------

@cached("Counting members per tier…", max_entries=32)
def cached_tier_counts(engine: Engine, filters: Filters, grain: str) -> pd.DataFrame:
    return programme_tiers.tier_counts_over_time(engine, filters, grain)  # type: ignore[arg-type]


@cached("Following members between the two days…", max_entries=32)
def cached_tier_flows(engine: Engine, before: date, after: date) -> pd.DataFrame:
    return programme_tiers.tier_flows(engine, before, after)


@cached(max_entries=32)
def cached_time_to_tier(engine: Engine, filters: Filters) -> pd.DataFrame:
    return programme_tiers.time_to_tier(engine, filters)


@cached("Comparing the tiers…", max_entries=32)
def cached_tier_performance(engine: Engine, filters: Filters) -> pd.DataFrame:
    return programme_tiers.tier_performance(engine, filters)


@cached("Adding up sales per tier…", max_entries=32)
def cached_sales_by_tier(engine: Engine, filters: Filters) -> pd.DataFrame:
    return programme_tiers.sales_by_tier(engine, filters)


@cached("Measuring the way to the next tier…", max_entries=32)
def cached_upgrade_gap(engine: Engine, filters: Filters) -> pd.DataFrame:
    return programme_tiers.upgrade_gap(engine, filters)


@cached("Evaluating the tiers under the edited rule…", max_entries=32)
def cached_whatif(engine: Engine, day: date, rule: programme_whatif.TierRule,
                  rates: tuple[tuple[str, float], ...]) -> programme_whatif.WhatIf:
    return programme_whatif.whatif_tiers(engine, day, rule, dict(rates))


@cached("Reading the points ledger…", max_entries=32)
def cached_points(engine: Engine, filters: Filters, grain: str, points_per_unit: int) -> tuple[pd.DataFrame,
                                                                                                pd.DataFrame]:
    """Points per period, and by tier held when written."""
    return (programme_points.points_flows(engine, filters, grain, points_per_unit),  # type: ignore[arg-type]
            programme_points.points_by_tier(engine, filters))


@cached("Finding the points about to expire…", max_entries=32)
def cached_expiring(engine: Engine, filters: Filters, points_per_unit: int) -> pd.DataFrame:
    return programme_points.expiring_summary(engine, filters, points_per_unit)


@cached("Comparing members with guests…", max_entries=32)
def cached_member_value(engine: Engine, filters: Filters) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Members against guests, and new members' first 90 days by acquisition channel."""
    return member_value.member_vs_guest(engine, filters), member_value.new_member_value(engine, filters)


@cached("Reading out every campaign…", max_entries=32)
def cached_campaign_results(engine: Engine, filters: Filters, campaign_type: str | None, channel: str | None,
                            margin: float, message_cost: float) -> pd.DataFrame:
    return campaign_results.campaign_results(engine, filters, campaign_type, channel, margin, message_cost)


@cached("Counting messages per member…", max_entries=32)
def cached_send_frequency(engine: Engine, filters: Filters, cap: int) -> campaign_results.SendFrequency:
    return campaign_results.send_frequency(engine, filters, cap)
