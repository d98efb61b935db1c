"""Member sets as every page shows them: the audience handed to Campaign targeting in one click, exports masked
and audited, the typed audience registry and its strict JSON edge."""

from __future__ import annotations

import io
import json
from datetime import timedelta

import pandas as pd
import pytest

from analytics import audiences, targeting
from analytics.access import Principal
from analytics.audiences import loads, parse_audience
from analytics.errors import SpecError
from analytics.member_rows import MEMBER_ROW_COLUMNS, member_count
from analytics.rfm import LAPSED, NO_PURCHASE, migration_audience, segment_audience
from analytics.storage.appstate import audit_events, open_state
from analytics.storage.db import read_frame
from analytics.tags import tag_audience
from tests.conftest import Warehouse, default_filters, open_page

ANA = Principal("ana@example.com", "Ana", "analyst")  # an analyst exports real member ids


def test_every_kind_round_trips_through_json(duck_warehouse: Warehouse, trained_models: dict) -> None:
    """Each registered kind written by its page parses back to an equal object with the same members."""
    from analytics.cluster_audiences import cluster_audience
    from analytics.clustering import ClusterSettings, cluster_members
    from analytics.funnels import FunnelSpec, FunnelStep, dropoff_audience
    from analytics.heatmaps import cell_audience
    from analytics.prediction_audiences import PinnedModel, PredictionAudience
    from analytics.programme_points import ExpiringPointsAudience
    from analytics.programme_whatif import TierMoveAudience, TierRule
    from analytics.rule_views import rule_audience

    filters = default_filters(duck_warehouse)
    model = cluster_members(duck_warehouse.engine, filters, ClusterSettings(k=3)).model
    funnel = FunnelSpec((FunnelStep("product_view"), FunnelStep("purchase")), 86_400, "ordered", "member")
    made = [segment_audience(filters, ("Champions",)), segment_audience(filters, ("At Risk", LAPSED)),
            migration_audience(filters, "Champions", NO_PURCHASE), tag_audience(filters, "night_owl"),
            cluster_audience(filters, model, [1]), dropoff_audience(funnel, filters, 1),
            rule_audience("Beauty", "Pets", "category", filters.start, filters.end),
            cell_audience(filters, "rhythm", 2, 20, {"measure": "orders"}),
            PredictionAudience("churn_risk", 0.6, None, filters.end, PinnedModel("churn", 1, trained_models["churn"]),
                               (PinnedModel("clv", 2, trained_models["clv"]),)),
            targeting.parse_spec({"version": 1, "kind": "audience", "start": str(filters.start),
                                  "end": str(filters.end), "holdout": 0.1, "campaign_key": "k"}),
            ExpiringPointsAudience(filters, 90, 100), TierMoveAudience(filters.end, TierRule((2_000, 8_000, 30_000)),
                                                                      "down")]
    assert {a.kind for a in made} == set(audiences.kinds())  # every kind has a page that makes it
    for audience in made:
        again = loads(audiences.dumps(audience))
        assert again == audience and again.fingerprint() == audience.fingerprint()
        ids = read_frame(duck_warehouse.engine, again.member_ids(), hash_joins=True)
        assert len(ids) == member_count(duck_warehouse.engine, audience.member_ids())


@pytest.mark.parametrize(("text", "message"), [
    ('{"version": 1, "kind": "tag", "tag": "night_owl", "start": "2026-01-01", "end": "2026-01-31", "x": 1}',
     "keys it does not know: x"),
    ('{"version": 1, "kind": "audience", "start": "2026-01-01", "end": "2026-01-31", "holdout": NaN}',
     "NaN, which is not a number"),
    ('{"version": 1, "kind": "audience", "start": "2026-01-01", "end": "2026-01-31", "rules": {"match": "all", '
     '"conditions": [{"field": "tier", "op": "in", "value": ["gold"], "not": "true"}]}}', '"not" is true or false'),
    ('{"version": 1, "kind": "audience", "start": "1066-10-14", "end": "2026-01-31"}', "outside the years"),
    ('{"version": 1, "kind": "horoscope"}', "Unknown audience kind 'horoscope'"),
    ('[1, 2]', "JSON object"),
    ('{"version": 1, "kind": "audience", "start": "2026-01-01", "end": "2026-01-31", "rules": {"match": "all", '
     '"conditions": [' + ", ".join(['{"field": "tier", "op": "in", "value": ["gold"]}'] * 201) + "]}}",
     "at most 200 conditions"),
    ("[" * 5000 + "]" * 5000, "nests too deeply"),
])
def test_the_json_edge_is_strict_and_bounded(text: str, message: str) -> None:
    with pytest.raises(SpecError, match=message):
        loads(text)


def test_a_huge_definition_is_refused_before_it_is_read() -> None:
    with pytest.raises(SpecError, match="at most 2,000,000 are accepted"):
        loads(" " * 2_000_001)


def test_use_in_campaign_targeting_adds_the_segment_as_a_condition(duck_warehouse: Warehouse, monkeypatch) -> None:
    """On the RFM page, "Use in Campaign targeting" opens Campaign targeting with the segment added: its sizes are
    the starter conditions AND the segment's members, computed independently from the typed objects."""
    at = open_page(duck_warehouse.url, "pages/rfm_segments.py", monkeypatch)
    at.session_state["rfm_tab"] = "Members of a segment"  # only the open tab is drawn
    at.run()
    at.selectbox(key="rfm_members_segment").set_value("Champions").run()
    at.button(key="rfm_members_target").click().run()
    assert not at.exception, [e.value for e in at.exception]
    assert [t.value for t in at.title] == ["Campaign targeting"]
    assert any("RFM segments Champions" in m.value for m in at.markdown)
    filters = default_filters(duck_warehouse)
    starter = targeting.parse_spec({"version": 1, "kind": "audience", "start": str(filters.start),
                                    "end": str(filters.end), "frequency_cap_days": 7, "holdout": 0.1,
                                    "campaign_key": "campaign", "rules": {"match": "all", "conditions": [
                                        {"field": "tier", "op": "in", "value": ["gold", "diamond"]},
                                        {"field": "days_since_last_order", "op": "between", "value": [0, 90]},
                                        {"field": "segment", "op": "in",
                                         "value": segment_audience(filters, ("Champions",)).to_json()}]}})
    expected = targeting.preview(duck_warehouse.engine, starter)
    assert expected.matching > 0
    assert {m.label: m.value for m in at.metric}["Matching"] == f"{expected.matching:,}"


def test_exports_are_masked_and_audited(duck_warehouse: Warehouse, tmp_path, monkeypatch) -> None:
    """The one export path: every member of the audience, personal data masked, and an audit row with the page,
    the audience and the row count written before the file is made."""
    from ui.member_sets import cached_member_rows, export_members

    state_url = f"sqlite:///{tmp_path}/state.sqlite"
    monkeypatch.setenv("MEMBERLENS_STATE_URL", state_url)
    filters = default_filters(duck_warehouse)
    audience = tag_audience(filters, "dormant_90")
    data = export_members(duck_warehouse.engine, audience, ANA, "member_tags")
    frame = pd.read_csv(io.BytesIO(data), dtype=str)
    assert len(frame) == member_count(duck_warehouse.engine, audience.member_ids()) > 0
    # the preview's columns, in its order (by value): the preview is the start of the export
    assert list(frame.columns) == list(MEMBER_ROW_COLUMNS)
    preview, total = cached_member_rows(duck_warehouse.engine, audience, 100)
    assert frame["member_id"].head(100).tolist() == preview["member_id"].tolist()
    assert total == len(frame) > len(preview)  # the preview's statement counts every member
    assert frame["net_sales"].astype(float).is_monotonic_decreasing
    raw = duck_warehouse.frame("members").set_index("member_id").loc[frame["member_id"]]
    assert not frame["phone"].dropna().isin(raw["phone"]).any() and not frame["name"].dropna().isin(raw["name"]).any()
    events = audit_events(open_state(state_url))
    assert events.loc[0, "actor"] == ANA.identity and events.loc[0, "action"] == "export_members"
    assert json.loads(events.loc[0, "detail"]) == {"page": "member_tags", "audience": "tag", "rows": len(frame),
                                                   "source": "Tag Dormant 90 days", "masked": True,
                                                   "member_ids": "real"}
    assert (events.loc[0, "page"], events.loc[0, "rows"]) == ("member_tags", len(frame))


def test_a_campaign_export_carries_each_members_arm(duck_warehouse: Warehouse, tmp_path, monkeypatch) -> None:
    from ui.member_sets import export_members

    monkeypatch.setenv("MEMBERLENS_STATE_URL", f"sqlite:///{tmp_path}/state.sqlite")
    filters = default_filters(duck_warehouse)
    audience = parse_audience({"version": 1, "kind": "audience", "start": str(filters.start), "end": str(filters.end),
                               "holdout": 0.3, "campaign_key": "arms"})
    frame = pd.read_csv(io.BytesIO(export_members(duck_warehouse.engine, audience, ANA, "campaign_targeting")))
    expected = targeting.targeted_members(duck_warehouse.engine, audience)
    assert frame[["member_id", "arm"]].sort_values("member_id").to_numpy().tolist() == \
        expected.sort_values("member_id").to_numpy().tolist()


def test_an_audiences_own_columns_come_first_and_ids_link_to_member_360(duck_warehouse: Warehouse,
                                                                          monkeypatch) -> None:
    """Campaign targeting's list: the arm (the audience's own column) right after the member link, then the value
    columns; every id links to its Member 360 page on the range and tiers the list was valued over."""
    at = open_page(duck_warehouse.url, "pages/campaign_targeting.py", monkeypatch)
    table = next(df for df in at.dataframe if "phone" in df.value.columns)
    order = list(table.proto.column_order)
    assert order[:3] == ["profile", "arm", "net_sales"] and "member_id" not in order
    filters = default_filters(duck_warehouse)
    assert (table.value["profile"] == f"member_360?dates={filters.start}&dates={filters.end}&member="
            + table.value["member_id"]).all()
    # on the RFM page, with a narrower range and a tier: the links open Member 360 on that view
    at = open_page(duck_warehouse.url, "pages/rfm_segments.py", monkeypatch)
    start = filters.start + timedelta(days=30)
    at.sidebar.multiselect(key="tier").set_value(["gold"])
    at.sidebar.date_input(key="dates").set_value((start, filters.end)).run()
    assert not at.exception, [e.value for e in at.exception]
    table = next(df for df in at.dataframe if "phone" in df.value.columns)
    assert len(table.value) and (table.value["profile"] == f"member_360?dates={start}&dates={filters.end}&tier=Gold"
                                 "&member=" + table.value["member_id"]).all()
