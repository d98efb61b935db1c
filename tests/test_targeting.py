"""Campaign audiences against an independent pandas filter of the same rows, on DuckDB and PostgreSQL:
sizes, reach (no consent, no message), holdout, frequency cap, maximum size, hostile text, bad specs."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from datetime import timedelta

import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import String, column, func, select, text

from analytics import targeting
from analytics.filters import Filters
from analytics.rfm import segment_audience
from analytics.storage.contract import WAREHOUSE_TABLES
from analytics.storage.db import read_frame
from analytics.targeting import (
    BUCKETS,
    SpecError,
    bucket,
    python_bucket,
)
from tests.conftest import PROJECT_ROOT, Warehouse
from tests.reference_audiences import Reference, condition_from_text, preview, spec_for, targeted_members, window_of

SPECS = {
    "tier and not a category": [{"field": "tier", "op": "in", "value": ["gold", "diamond"]},
                                {"not": True, "field": "bought_category", "op": "in", "value": ["Pets", "Home"]}],
    "numbers": [{"field": "net_sales", "op": "between", "value": [500, None]},
                {"field": "age", "op": "between", "value": [25, 45]},
                {"field": "points_balance", "op": "between", "value": [None, 20000]}],
    "zero orders count": [{"field": "order_count", "op": "between", "value": [None, 1]},
                          {"field": "registered", "op": "between", "value": ["2025-01-01", None]}],
    "any group with not": [{"match": "any", "conditions": [
        {"field": "days_since_last_order", "op": "between", "value": [0, 30]},
        {"field": "aov", "op": "between", "value": [800, None]},
        {"not": True, "match": "all", "conditions": [{"field": "region", "op": "not_in", "value": ["East China"]}]}]},
        {"field": "gender", "op": "in", "value": ["female"]}],
    "six conditions": [{"field": "tier", "op": "not_in", "value": ["diamond"]},
                       {"field": "acquisition_channel", "op": "in", "value": ["organic_search", "social_media",
                                                                              "referral"]},
                       {"field": "days_since_last_order", "op": "between", "value": [None, 180]},
                       {"field": "order_count", "op": "between", "value": [2, None]},
                       {"field": "bought_category", "op": "in", "value": ["Beauty", "Apparel"]},
                       {"field": "age", "op": "between", "value": [18, None]}],
}


@pytest.mark.parametrize("name", list(SPECS))
def test_audience_sizes_match_pandas(warehouse: Warehouse, name: str) -> None:
    spec = spec_for(warehouse, SPECS[name])
    expected = Reference(warehouse, *window_of(warehouse)).group(spec["rules"])
    got = targeted_members(warehouse.engine, spec)
    assert set(got["member_id"]) == expected
    assert preview(warehouse.engine, spec).matching == len(expected)


def test_segment_condition_takes_an_rfm_audience(warehouse: Warehouse) -> None:
    start, end = window_of(warehouse)
    segment = segment_audience(Filters(start, end), ("Champions", "Loyal")).to_json()
    spec = spec_for(warehouse, [{"field": "segment", "op": "in", "value": segment},
                                {"field": "tier", "op": "in", "value": ["silver", "gold"]}])
    expected = Reference(warehouse, start, end).group(spec["rules"])
    assert expected and set(targeted_members(warehouse.engine, spec)["member_id"]) == expected


_ATTRIBUTE = st.sampled_from([("tier", ["basic", "silver", "gold", "diamond"]),
                              ("gender", ["female", "male"]), ("region", ["East China", "South China", "North China"])])
_CONDITION = st.one_of(
    st.tuples(_ATTRIBUTE, st.booleans(), st.integers(0, 3)).map(lambda t: {
        "field": t[0][0], "op": "in" if t[1] else "not_in", "value": t[0][1][:1 + t[2] % len(t[0][1])]}),
    st.tuples(st.sampled_from(["net_sales", "order_count", "points_balance", "age"]),
              st.one_of(st.none(), st.integers(0, 40)), st.one_of(st.none(), st.integers(0, 400))).filter(
        lambda t: t[1] is not None or t[2] is not None).map(lambda t: {
            "field": t[0], "op": "between", "value": [t[1], None if t[2] is None else t[2] * (100 if t[0] in (
                "net_sales", "points_balance") else 1)]}),
)
_GROUP = st.recursive(
    st.lists(_CONDITION, min_size=1, max_size=3).map(lambda c: {"match": "all", "conditions": c}),
    lambda inner: st.tuples(st.sampled_from(["all", "any"]), st.lists(st.one_of(inner, _CONDITION), min_size=1,
                                                                       max_size=3), st.booleans()).map(
        lambda t: {"match": t[0], "conditions": t[1], "not": t[2]}),
    max_leaves=6)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(rules=_GROUP, channel=st.sampled_from(["email", "sms", "push"]))
def test_random_audiences_match_pandas_and_reach_only_consenting_members(duck_warehouse: Warehouse, rules,
                                                                         channel: str) -> None:
    """Property: any AND / OR / NOT tree gives the pandas set, and nobody without consent (or without a
    usable contact) is ever counted reachable on a channel."""
    spec = spec_for(duck_warehouse, rules["conditions"], rules["match"], holdout=0.2, campaign_key="prop")
    expected = Reference(duck_warehouse, *window_of(duck_warehouse)).group(spec["rules"])
    sizes = preview(duck_warehouse.engine, spec)
    assert sizes.matching == sizes.targeted == len(expected)
    m = duck_warehouse.frame("members").set_index("member_id").loc[sorted(expected)]
    ok = {"email": m["consent_email"].eq(True) & m["email"].fillna("").str.contains(r".@.", regex=True),
          "sms": m["consent_sms"].eq(True) & (m["phone"].fillna("").str.len() >= 8),
          "push": m["consent_push"].eq(True)}[channel]
    assert sizes.reachable[channel] == int(ok.sum())
    assert sizes.reachable[channel] <= int(m[f"consent_{channel}"].eq(True).sum())


def test_holdout_is_deterministic_and_near_its_share(warehouse: Warehouse) -> None:
    """10,000 ids: the SQL bucket equals md5 in Python on both warehouses; a 10% holdout holds 10% +- 1 pp."""
    ids = (text("SELECT 'M' || CAST(n AS VARCHAR) AS member_id FROM generate_series(1, 10000) AS t(n)")
           .columns(column("member_id", String)).subquery("ids"))
    got = read_frame(warehouse.engine, select(ids.c.member_id, bucket(ids.c.member_id, "double-12").label("b")))
    assert len(got) == 10_000
    assert got["b"].tolist() == [python_bucket(i, "double-12") for i in got["member_id"]]
    assert got["b"].tolist() == [int(hashlib.md5(f"{i}:double-12".encode()).hexdigest()[:4], 16)
                                 for i in got["member_id"]]
    control = (got["b"] < round(0.1 * BUCKETS)).mean()
    assert abs(control - 0.1) <= 0.01, control
    other = read_frame(warehouse.engine, select(ids.c.member_id, bucket(ids.c.member_id, "win-back").label("b")))
    assert (other["b"] != got["b"]).mean() > 0.99  # another campaign, another split


def test_arms_cap_and_maximum_size(warehouse: Warehouse) -> None:
    spec = spec_for(warehouse, [], holdout=0.25, campaign_key="spring", frequency_cap_days=30)
    end = window_of(warehouse)[1]
    sent = warehouse.frame("campaign_members")
    recent = set(sent.loc[(sent["sent_at"] >= pd.Timestamp(end - timedelta(days=29)))
                          & (sent["sent_at"] < pd.Timestamp(end + timedelta(days=1))), "member_id"])
    everyone = set(warehouse.frame("members")["member_id"])
    targeted = targeted_members(warehouse.engine, spec)
    assert recent and set(targeted["member_id"]) == everyone - recent
    arms = targeted.set_index("member_id")["arm"]
    expected = {i: "control" if python_bucket(i, "spring") < BUCKETS // 4 else "treatment" for i in arms.index}
    assert arms.to_dict() == expected
    sizes = preview(warehouse.engine, spec)
    assert (sizes.matching, sizes.targeted, sizes.control) == (len(everyone), len(everyone - recent),
                                                                 (arms == "control").sum())
    capped = targeted_members(warehouse.engine, {**spec, "max_size": 300})
    lowest = sorted(everyone - recent, key=lambda i: (python_bucket(i, "spring"), i))[:300]
    assert sorted(capped["member_id"]) == sorted(lowest)
    capped_sizes = preview(warehouse.engine, {**spec, "max_size": 300})
    assert (capped_sizes.matching, capped_sizes.targeted) == (len(everyone), 300)
    assert capped_sizes.control == sum(python_bucket(i, "spring") < BUCKETS // 4 for i in lowest)
    m = warehouse.frame("members").set_index("member_id").loc[lowest]
    assert capped_sizes.reachable["push"] == int(m["consent_push"].eq(True).sum())


HOSTILE = ["gold'; DROP TABLE members; --", "' OR '1'='1", "銀卡\u202e", "%", "_", "Robert'); --", "\\", ";"]


def test_hostile_text_is_data(warehouse: Warehouse) -> None:
    def counts() -> dict[str, int]:
        with warehouse.engine.connect() as conn:
            return {t.name: conn.execute(select(func.count()).select_from(t)).scalar_one() for t in WAREHOUSE_TABLES}

    before = counts()
    for hostile in HOSTILE:
        for field in ("tier", "city", "bought_category", "bought_product"):
            spec = spec_for(warehouse, [{"field": field, "op": "in", "value": [hostile]}], campaign_key=hostile)
            assert preview(warehouse.engine, spec).matching == 0
        everyone = spec_for(warehouse, [{"field": "tier", "op": "not_in", "value": [hostile]}], campaign_key=hostile,
                            holdout=0.5)
        assert preview(warehouse.engine, everyone).matching == len(warehouse.frame("members"))
    assert counts() == before


@pytest.mark.parametrize("change, message", [
    ({"version": 2}, "Not a version-1 audience"),
    ({"start": "yesterday"}, "window is not valid"),
    ({"holdout": 0.9}, "holdout must be a share"),
    ({"frequency_cap_days": "7"}, "frequency_cap_days"),
    ({"max_size": 0}, "max_size"),
    ({"rules": {"match": "all", "conditions": [{"field": "shoe_size", "op": "in", "value": ["42"]}]}},
     "Unknown field 'shoe_size'"),
    ({"rules": {"match": "all", "conditions": [{"field": "tier", "op": "between", "value": [1, 2]}]}},
     "tier takes the operator in or not_in"),
    ({"rules": {"match": "all", "conditions": [{"field": "age", "op": "between", "value": [None, None]}]}},
     "at least one of them set"),
    ({"rules": {"match": "all", "conditions": [{"field": "age", "op": "between", "value": ["old", 3]}]}},
     "not valid bounds"),
    ({"rules": {"match": "some", "conditions": []}}, 'matches "all" or "any"'),
    ({"rules": {"match": "all", "conditions": [{"field": "segment", "op": "in", "value": {"kind": "x"}}]}},
     "segment takes an audience definition"),
    ({"rules": {"match": "all", "conditions": [{"field": "segment", "op": "in",
                                                "value": {"version": 1, "kind": "rfm_segment"}}]}},
     "rfm_segment audience in 'segment' is not valid"),
    ({"rules": {"match": "all", "conditions": [{"field": "segment", "op": "in", "value": {
        "version": 1, "kind": "tag", "tag": ["not", "text"], "start": "2026-01-01", "end": "2026-01-31"}}]}},
     "tag audience in 'segment' is not valid"),
])
def test_bad_specs_get_clear_messages(duck_warehouse: Warehouse, change: dict, message: str) -> None:
    with pytest.raises(SpecError, match=message):
        preview(duck_warehouse.engine, {**spec_for(duck_warehouse, []), **change})


def test_command_line(duck_warehouse: Warehouse, tmp_path) -> None:
    spec = spec_for(duck_warehouse, SPECS["numbers"], holdout=0.1, campaign_key="cli")
    path = tmp_path / "audience.json"
    path.write_text(json.dumps(spec))
    base = [sys.executable, "-m", "analytics", "audience", "--url", duck_warehouse.url, "--spec", str(path)]
    run = subprocess.run(base, capture_output=True, text=True, cwd=PROJECT_ROOT, timeout=120)
    assert run.returncode == 0, run.stderr
    sizes = preview(duck_warehouse.engine, spec)
    assert run.stdout.splitlines() == [
        "matching,targeted,treatment,control,reachable_email,reachable_sms,reachable_push",
        f"{sizes.matching},{sizes.targeted},{sizes.treatment},{sizes.control},{sizes.reachable['email']},"
        f"{sizes.reachable['sms']},{sizes.reachable['push']}"]
    listed = subprocess.run([*base, "--members"], capture_output=True, text=True, cwd=PROJECT_ROOT, timeout=120)
    assert listed.returncode == 0 and len(listed.stdout.splitlines()) == sizes.targeted + 1
    assert listed.stdout.splitlines()[0] == "member_id,arm"
    path.write_text("{not json")
    bad = subprocess.run(base, capture_output=True, text=True, cwd=PROJECT_ROOT, timeout=60)
    assert bad.returncode == 2 and "not valid JSON" in bad.stderr
    # a saved audience, by name and version, from the app-state database
    from analytics.storage.appstate import open_state, save_audience

    state_url = f"sqlite:///{tmp_path}/state.sqlite"
    state = open_state(state_url)
    save_audience(state, "Spring", spec, sizes.targeted, "cli test")
    save_audience(state, "Spring", {**spec, "holdout": 0.3}, None, "cli test")
    env = {**os.environ, "MEMBERLENS_STATE_URL": state_url}
    saved = [sys.executable, "-m", "analytics", "audience", "--url", duck_warehouse.url, "--saved", "Spring"]
    first = subprocess.run([*saved, "--version", "1"], capture_output=True, text=True, cwd=PROJECT_ROOT, timeout=120,
                           env=env)
    assert first.returncode == 0 and first.stdout == run.stdout and "Spring version 1" in first.stderr
    latest = subprocess.run(saved, capture_output=True, text=True, cwd=PROJECT_ROOT, timeout=120, env=env)
    control = preview(duck_warehouse.engine, {**spec, "holdout": 0.3}).control
    assert latest.returncode == 0 and latest.stdout.splitlines()[1].split(",")[3] == str(control)
    missing = subprocess.run([*saved[:-1], "Autumn"], capture_output=True, text=True, cwd=PROJECT_ROOT, timeout=60,
                             env=env)
    assert missing.returncode == 2 and "There is no saved audience named 'Autumn'" in missing.stderr


def test_forecast_command_line(duck_warehouse: Warehouse) -> None:
    """Too little history: the plain statement and no figures; bad input: a usage error."""
    from analytics import forecast

    kinds = forecast.forecast_types(duck_warehouse.engine).sort_values("campaigns_with_control", ascending=False)
    campaign_type, channel = kinds.iloc[0]["type"], kinds.iloc[0]["channel"]
    base = [sys.executable, "-m", "analytics", "forecast", "--url", duck_warehouse.url, "--type", campaign_type,
            "--send-channel", channel, "--size", "5000", "--coupon", "10", "--message-cost", "0.02"]
    run = subprocess.run(base, capture_output=True, text=True, cwd=PROJECT_ROOT, timeout=120)
    expected = forecast.forecast_campaign(duck_warehouse.engine, campaign_type, channel, 5000, 10, 0.02, 0.3)
    assert run.returncode == 0, run.stderr
    assert not expected.enough_history  # the tiny demo's longest history has 626 control members (1,000 needed)
    assert f"note: {expected.message}" in run.stderr and "no forecast" in expected.message
    assert run.stdout.strip() == "measure,value,ci_low,ci_high"  # no made-up figure
    # the figures with enough history are checked in tests/test_forecast.py; bad input is a usage error
    bad = subprocess.run([*base[:-4], "--margin", "2"], capture_output=True, text=True, cwd=PROJECT_ROOT, timeout=60)
    assert bad.returncode == 2 and "margin" in bad.stderr.lower()


@pytest.mark.parametrize("field, op, typed, expected", [
    ("tier", "in", " gold, diamond ,", {"field": "tier", "op": "in", "value": ["gold", "diamond"]}),
    ("net_sales", "between", "100 - ", {"field": "net_sales", "op": "between", "value": [100, None]}),
    ("age", "between", " - 29.5", {"field": "age", "op": "between", "value": [None, 29.5]}),
    ("registered", "between", "2025-01-01 - 2025-06-30",
     {"field": "registered", "op": "between", "value": ["2025-01-01", "2025-06-30"]}),
])
def test_typed_conditions(field: str, op: str, typed: str, expected: dict) -> None:
    assert condition_from_text(field, op, typed) == expected
    assert condition_from_text(field, op, typed, negate=True) == {**expected, "not": True}


@pytest.mark.parametrize("field, op, typed, message", [
    ("tier", "between", "a - b", "choose 'is one of'"),
    ("tier", "in", " , ", "type one or more values"),
    ("net_sales", "in", "5", "choose 'between'"),
    ("net_sales", "between", "500", "type a range as 'low - high'"),
    ("net_sales", "between", "lots - more", "is not a range of numbers"),
    ("registered", "between", "2025-13-01 - ", "is not a range of dates"),
    ("net_sales", "between", " - ", "at least one end"),
    ("segment", "in", "x", "Choose a field"),
])
def test_typed_conditions_explain_mistakes(field: str, op: str, typed: str, message: str) -> None:
    with pytest.raises(SpecError, match=message):
        condition_from_text(field, op, typed)


def starter_spec(w: Warehouse) -> dict:
    """The spec the Campaign targeting page opens with: its two starter rows, a 7-day cap, 10 % held out."""
    from tests.conftest import default_filters

    filters = default_filters(w)
    return {"version": 1, "kind": "audience", "start": filters.start.isoformat(), "end": filters.end.isoformat(),
            "rules": {"match": "all", "conditions": [
                {"field": "tier", "op": "in", "value": ["gold", "diamond"]},
                {"field": "days_since_last_order", "op": "between", "value": [0, 90]}]},
            "frequency_cap_days": 7, "max_size": None, "holdout": 0.1, "campaign_key": "campaign"}


def test_targeting_page_previews_the_audience(warehouse: Warehouse, monkeypatch) -> None:
    """Under AppTest on DuckDB and PostgreSQL: the starter conditions' sizes equal the preview of the same spec,
    the member preview is masked, and a typing mistake gets a message naming the row."""
    from tests.conftest import open_page

    at = open_page(warehouse.url, "pages/campaign_targeting.py", monkeypatch)
    spec = starter_spec(warehouse)
    sizes = preview(warehouse.engine, spec)
    cards = {m.label: m.value for m in at.metric}
    assert (cards["Matching"], cards["Targeted"], cards["Control"]) == (
        f"{sizes.matching:,}", f"{sizes.targeted:,}", f"{sizes.control:,}")
    table = next(df.value for df in at.dataframe if "phone" in df.value.columns)
    assert len(table) == min(sizes.targeted, 100)
    assert not table["phone"].dropna().isin(warehouse.frame("members")["phone"]).any()
    at.segmented_control(key="target_match").set_value("any").run()
    assert not at.exception
    any_spec = {**spec, "rules": {**spec["rules"], "match": "any"}}
    assert {m.label: m.value for m in at.metric}["Matching"] == f"{preview(warehouse.engine, any_spec).matching:,}"
    at.session_state["target_conditions_0"] = {"edited_rows": {1: {"values": "ninety"}}, "added_rows": [],
                                             "deleted_rows": []}
    at.run()
    assert not at.exception
    assert [e.value for e in at.error] == [
        "Row 2: Days since last order: type a range as 'low - high', e.g. 100 - 500; leave a side empty for no limit."]
    assert not at.metric  # no sizes computed without the row in error


def test_saving_reopening_and_versions_on_the_page(warehouse: Warehouse, monkeypatch, tmp_path) -> None:
    """Save the starter audience, change it and save again (version 2), reopen version 1: the builder shows
    its rows and sizes again; the saved spec is the one previewed, and both versions survive a new engine.
    A saved audience then works as a condition, and the rules can be written as JSON."""
    from analytics.access import Principal
    from analytics.storage.appstate import audience_versions, open_state
    from tests.conftest import default_filters, direct_page

    state_url = f"sqlite:///{tmp_path}/state.sqlite"
    monkeypatch.setenv("MEMBERLENS_STATE_URL", state_url)
    ana = Principal("ana@example.com", "Ana", "marketer")  # saves are recorded under the signed-in identity
    at, run = direct_page(warehouse, "pages/campaign_targeting.py", monkeypatch, ana)
    run()
    first = {m.label: m.value for m in at.metric}
    assert "target_name" not in [t.key for t in at.text_input]  # only the open tab runs: Members
    at.session_state["target_tab"] = "Save"
    run()
    name = "Gold, recent 'VIP'; --"
    at.text_input(key="target_name").input(name)
    at.button(key="target_save").click()
    run()
    assert "version 1" in at.success[0].value
    assert f"{name} (v1)" in at.multiselect(key="target_include").options  # listed in the run that saved it
    at.slider(key="target_holdout").set_value(20)
    run()
    at.button(key="target_save").click()
    run()
    assert "version 2" in at.success[0].value
    state = open_state(state_url)
    v1, v2 = audience_versions(state, name)
    filters = default_filters(warehouse)
    assert v1.spec["rules"] == {"match": "all", "conditions": [
        {"field": "tier", "op": "in", "value": ["gold", "diamond"]},
        {"field": "days_since_last_order", "op": "between", "value": [0, 90]}]}
    assert (v1.spec["holdout"], v2.spec["holdout"], v1.author, v2.version) == (0.1, 0.2, "ana@example.com", 2)
    assert v1.spec["end"] == filters.end.isoformat() and v1.size == preview(warehouse.engine, v1.spec).targeted
    at.selectbox(key="target_open_name").select(name)
    run()
    at.selectbox(key=f"target_open_version_{name}").select(1)
    run()
    at.button(key="target_open").click()
    run()
    assert at.slider(key="target_holdout").value == 10
    assert {m.label: m.value for m in at.metric} == first
    assert f"Opened {name} version 1" in at.info[0].value
    # leaving out the members of version 2 (the same rules) leaves nobody
    at.multiselect(key="target_exclude").select(f"{name} (v2)")
    run()
    assert {m.label: m.value for m in at.metric}["Targeted"] == "0"
    at.multiselect(key="target_exclude").unselect(f"{name} (v2)")
    at.toggle(key="target_json_mode").set_value(True)
    run()
    assert json.loads(at.text_area(key="target_json").value) == v1.spec["rules"]
    at.text_area(key="target_json").input('{"match": "all", "conditions": [{"field": "tier", "op": "in"')
    run()
    assert "The JSON rules cannot be read" in at.error[0].value and not at.metric
    deeper = {"match": "any", "conditions": [{"match": "all", "conditions": [
        {"field": "tier", "op": "in", "value": ["gold"]},
        {"not": True, "match": "any", "conditions": [{"field": "gender", "op": "in", "value": ["male"]}]}]}]}
    at.text_area(key="target_json").input(json.dumps(deeper))
    run()
    spec = {**v1.spec, "rules": deeper}
    assert {m.label: m.value for m in at.metric}["Matching"] == f"{preview(warehouse.engine, spec).matching:,}"


def test_every_tab_of_the_targeting_page(warehouse: Warehouse, monkeypatch, tmp_path) -> None:
    """Profile, overlap, balance and forecast tabs under AppTest show what the analytics compute for the same
    spec (only the open tab runs)."""
    from analytics import audience_report, forecast
    from analytics.storage.appstate import open_state, save_audience
    from tests.conftest import direct_page
    from tests.figures import read_figure
    from ui.audience_views import FIGURES

    state_url = f"sqlite:///{tmp_path}/state.sqlite"
    monkeypatch.setenv("MEMBERLENS_STATE_URL", state_url)
    spec = starter_spec(warehouse)
    saved = {**spec, "rules": {"match": "all", "conditions": [{"field": "tier", "op": "in", "value": ["gold"]}]}}
    save_audience(open_state(state_url), "Gold only", saved, 0, "test")
    at, run = direct_page(warehouse, "pages/campaign_targeting.py", monkeypatch)
    run()
    at.session_state["target_tab"] = "Profile"
    run()
    profile = audience_report.audience_profile(warehouse.engine, targeting.parse_spec(spec))
    summary = profile.summary.set_index("measure")
    cards = {m.label: m for m in at.metric}
    assert read_figure(cards["Net sales per member"].value).close_to(summary.loc["sales_per_member", "audience"])
    table = next(df.value for df in at.dataframe if "all_share" in df.value.columns)
    assert table["audience"].tolist() == profile.mix.loc[profile.mix["dimension"] == "tier", "audience"].tolist()
    at.session_state["target_tab"] = "Overlap"
    run()
    assert at.multiselect(key="target_overlap_with").value == ["Gold only (v1)"]
    matrix = audience_report.overlap_matrix(warehouse.engine, {
        "this": targeting.parse_spec(spec), "gold": targeting.parse_spec({**saved, "name": "Gold only"})})
    chart = at.get("plotly_chart")[-1].proto.spec
    assert f"{matrix.loc['this', 'gold']:,}" in chart
    sizes = targeting.preview(warehouse.engine, targeting.parse_spec(spec))  # counted with the overlap here
    assert {m.label: m.value for m in at.metric}["Targeted"] == f"{sizes.targeted:,}"
    at.session_state["target_tab"] = "Control balance"
    run()
    # the page's plan: conversion without the message from past campaigns' control arms (pandas), to 0.1 %
    sent = warehouse.frame("campaign_members")
    past = sent.loc[sent["arm"] == "control", "converted_order_id"].notna().mean()
    assert at.number_input(key="target_balance_baseline").value == round(past * 100, 1)
    plan = audience_report.PowerPlan(round(past * 100, 1) / 100, 0.02)
    sizes = preview(warehouse.engine, spec)
    verdict = audience_report.balance_verdict(audience_report.balance_check(warehouse.engine,
                                                                            targeting.parse_spec(spec)),
                                              sizes.control, sizes.treatment, plan, FIGURES)
    assert verdict.level == "small"  # the starter audience's control arm is a few dozen members on the tiny demo
    assert verdict.message in [e.value for e in at.warning]
    if verdict.needed is None:  # the tiny demo's starter audience: too few treated members for any control arm
        assert verdict.message.startswith(f"Audience too small to measure: with {sizes.treatment} treated members")
    else:
        assert verdict.message.startswith(f"Control too small: {sizes.control} members; about {verdict.needed:,}")
    at.session_state["target_tab"] = "Forecast"
    run()
    kinds = forecast.forecast_types(warehouse.engine)
    first_type = sorted(kinds["type"].unique())[0]
    channel = sorted(kinds.loc[kinds["type"] == first_type, "channel"])[0]
    expected = forecast.forecast_campaign(warehouse.engine, first_type, channel,
                                          preview(warehouse.engine, spec).reachable_treatment[channel], 20.0, 0.05,
                                          0.3, 1.0)
    assert not expected.enough_history  # the tiny demo's history is too short: a plain statement, no figure
    assert at.info[-1].value == expected.message and "Expected ROI" not in [m.label for m in at.metric]
