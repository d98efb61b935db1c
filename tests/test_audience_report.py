"""Saved-audience conditions, overlap, profile and control balance against independent pandas computations
on DuckDB and PostgreSQL; the page's table form of the rules and back."""

from __future__ import annotations

import math
from datetime import timedelta

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats

from analytics import audience_report, targeting_table
from analytics.audience_report import AGE_BANDS, balance_verdict, overlap_shares
from analytics.targeting import BUCKETS, SpecError, parse_rules, parse_spec, python_bucket
from tests.conftest import Warehouse
from tests.reference import pandas_rfm
from tests.reference_audiences import Reference, spec_for, targeted_members, window_of


# The tests write audiences as JSON and parse them here, at their edge, as the CLI and pages do.
def overlap_matrix(bind, specs: dict) -> pd.DataFrame:
    return audience_report.overlap_matrix(bind, {name: parse_spec(spec) for name, spec in specs.items()})


def audience_profile(bind, spec: dict) -> audience_report.AudienceProfile:
    return audience_report.audience_profile(bind, parse_spec(spec))


def balance_check(bind, spec: dict) -> pd.DataFrame:
    return audience_report.balance_check(bind, parse_spec(spec))


def compose_rules(table: dict, include: list[dict], exclude: list[dict]) -> dict:
    return targeting_table.compose_rules(parse_rules(table), [parse_spec(s) for s in include],
                                         [parse_spec(s) for s in exclude]).to_json()


def rules_from_table(match: str, rows: list[dict]) -> tuple[dict, list[str]]:
    rules, problems = targeting_table.rules_from_table(match, rows)
    return rules.to_json(), problems


def table_from_rules(rules: dict) -> tuple | None:
    layout = targeting_table.table_from_rules(parse_rules(rules))
    if layout is None:
        return None
    match, rows, include, exclude, _others = layout
    return match, rows, [a.to_json() for a in include], [a.to_json() for a in exclude]


def condition_text(item: dict) -> tuple[str, str, str, bool]:
    return targeting_table.condition_text(parse_rules({"match": "all", "conditions": [item]}).items[0])

GOLD = [{"field": "tier", "op": "in", "value": ["gold", "diamond"]}]
BUYERS = [{"field": "order_count", "op": "between", "value": [2, None]}]
EAST = [{"field": "region", "op": "in", "value": ["East China", "North China"]}]


def reference_targeted(w: Warehouse, spec: dict) -> set[str]:
    """The members a spec targets, in pandas: its rules, minus the members sent a campaign within the cap, the
    lowest ``max_size`` buckets."""
    start, end = window_of(w)
    ids = Reference(w, start, end).group(spec["rules"])
    if spec.get("frequency_cap_days"):
        sent = w.frame("campaign_members")
        since = pd.Timestamp(end - timedelta(days=spec["frequency_cap_days"] - 1))
        ids -= set(sent.loc[(sent["sent_at"] >= since) & (sent["sent_at"] < pd.Timestamp(end + timedelta(days=1))),
                            "member_id"])
    if spec.get("max_size"):
        key = spec.get("campaign_key", "")
        ids = set(sorted(ids, key=lambda i: (python_bucket(i, key), i))[:spec["max_size"]])
    return ids


def test_saved_audience_conditions_include_and_exclude_its_targeted_members(warehouse: Warehouse) -> None:
    saved = {**spec_for(warehouse, GOLD, frequency_cap_days=30, max_size=50, holdout=0.2, campaign_key="last-week"),
             "name": "Last week", "saved_version": 3}
    saved_ids = reference_targeted(warehouse, saved)
    assert len(saved_ids) == 50
    start, end = window_of(warehouse)
    buyers = Reference(warehouse, start, end).group({"match": "all", "conditions": BUYERS})
    for include, exclude, expected in [([saved], [], buyers & saved_ids), ([], [saved], buyers - saved_ids)]:
        rules = compose_rules({"match": "all", "conditions": BUYERS}, include, exclude)
        got = targeted_members(warehouse.engine, spec_for(warehouse, rules["conditions"], rules["match"]))
        assert set(got["member_id"]) == expected
    nested = spec_for(warehouse, [{"field": "saved_audience", "op": "in", "value": saved}])
    for _ in range(4):  # an audience of an audience of ... is refused past the nesting limit
        nested = spec_for(warehouse, [{"field": "saved_audience", "op": "in", "value": {**nested, "name": "n"}}])
    with pytest.raises(SpecError, match="nest too deeply"):
        targeted_members(warehouse.engine, nested)
    with pytest.raises(SpecError, match="saved audience's definition"):
        targeted_members(warehouse.engine, spec_for(warehouse, [{"field": "saved_audience", "op": "in",
                                                                  "value": {"kind": "rfm_segment"}}]))


def test_overlap_matrix_counts_members_in_both(warehouse: Warehouse) -> None:
    specs = {"gold": spec_for(warehouse, GOLD), "buyers": spec_for(warehouse, BUYERS, frequency_cap_days=14),
             "east": spec_for(warehouse, EAST, max_size=400, campaign_key="e")}
    sets = {name: reference_targeted(warehouse, spec) for name, spec in specs.items()}
    matrix = overlap_matrix(warehouse.engine, specs)
    expected = pd.DataFrame([[len(sets[a] & sets[b]) for b in specs] for a in specs], index=list(specs),
                            columns=list(specs))
    assert matrix.to_numpy().tolist() == expected.to_numpy().tolist()
    assert list(matrix.index) == list(specs) and matrix.loc["gold", "buyers"] > 0
    shares = overlap_shares(matrix)
    assert shares.loc["gold", "buyers"] == pytest.approx(len(sets["gold"] & sets["buyers"]) / len(sets["gold"]))
    assert (np.diag(shares) == 1).all()
    with pytest.raises(ValueError, match="from 1 to 8"):
        overlap_matrix(warehouse.engine, {})


def test_preview_and_overlap_in_one_statement_equal_both_apart(warehouse: Warehouse) -> None:
    """What the Overlap tab shows (one statement) equals the preview and the overlap matrix computed apart, and
    the pandas sets: an audience with a cap, a maximum size and a holdout against two saved ones."""
    from analytics.targeting import preview

    this = spec_for(warehouse, BUYERS, frequency_cap_days=14, max_size=300, holdout=0.2, campaign_key="now")
    others = {"gold": spec_for(warehouse, GOLD), "east": spec_for(warehouse, EAST, max_size=400, campaign_key="e")}
    sizes, matrix = audience_report.preview_and_overlap(warehouse.engine, parse_spec(this),
                                                        {n: parse_spec(s) for n, s in others.items()}, "this")
    assert sizes == preview(warehouse.engine, parse_spec(this)) and sizes.targeted == 300
    pd.testing.assert_frame_equal(matrix, overlap_matrix(warehouse.engine, {"this": this, **others}))
    sets = {"this": reference_targeted(warehouse, this), **{n: reference_targeted(warehouse, s) for n, s in
                                                            others.items()}}
    assert matrix.to_numpy().tolist() == [[len(sets[a] & sets[b]) for b in sets] for a in sets]
    assert matrix.loc["this", "gold"] > 0


def test_profile_against_all_members_matches_pandas(warehouse: Warehouse) -> None:
    spec = spec_for(warehouse, BUYERS + EAST, frequency_cap_days=7)
    ids = reference_targeted(warehouse, spec)
    start, end = window_of(warehouse)
    m = warehouse.frame("members").set_index("member_id")
    born = pd.to_datetime(m["birth_date"])
    end_ts = pd.Timestamp(end)
    age = end_ts.year - born.dt.year - ((end_ts.month * 100 + end_ts.day) < born.dt.month * 100 + born.dt.day)
    bands = pd.Series("(unknown)", index=m.index)
    for _low, high, label in reversed(AGE_BANDS):
        bands[(age < high) & age.notna()] = label
    from analytics.filters import Filters

    scored = pandas_rfm(warehouse.frame("orders"), warehouse.frame("members"), Filters(start, end)).set_index(
        "member_id")
    columns = {"tier": m["tier"].fillna("(unknown)"), "region": m["region"].fillna("(unknown)"),
               "gender": m["gender"].fillna("(unknown)"), "acquisition_channel": m["acquisition_channel"].fillna(
                   "(unknown)"), "age_band": bands, "segment": scored["segment"].reindex(m.index).fillna(
                   "(no purchase)")}
    profile = audience_profile(warehouse.engine, spec)
    inside = m.index.isin(list(ids))
    for dimension, values in columns.items():
        got = profile.mix[profile.mix["dimension"] == dimension].set_index("value")
        everyone = values.value_counts()
        ours = values[inside].value_counts().reindex(everyone.index, fill_value=0)
        assert got["all_members"].to_dict() == everyone.to_dict(), dimension
        assert got["audience"].to_dict() == ours.to_dict(), dimension
        assert got.loc[everyone.index, "index"].to_numpy() == pytest.approx(
            (100 * (ours / ours.sum()) / (everyone / everyone.sum())).to_numpy())
        # largest first, ties by value: one order whichever way the database grouped them
        assert list(got.index) == sorted(everyone.index, key=lambda value: (-everyone[value], value)), dimension
    summary = profile.summary.set_index("measure")
    sales = scored["monetary"].reindex(m.index).fillna(0)
    orders = scored["frequency"].reindex(m.index).fillna(0)
    assert summary.loc["members", "audience"] == len(ids)
    assert summary.loc["sales_per_member", "audience"] == pytest.approx(sales[inside].mean())
    assert summary.loc["sales_per_member", "all_members"] == pytest.approx(sales.mean())
    assert summary.loc["aov", "audience"] == pytest.approx(sales[inside].sum() / orders[inside].sum())
    assert summary.loc["buyers_share", "all_members"] == pytest.approx((orders > 0).mean())
    ref = Reference(warehouse, start, end)
    lines = warehouse.frame("order_items").merge(ref.window[["order_id", "member_id"]], on="order_id").merge(
        warehouse.frame("products")[["product_id", "category"]], on="product_id")
    everyone = lines.groupby("category")["line_amount"].sum()
    ours = lines[lines["member_id"].isin(ids)].groupby("category")["line_amount"].sum().reindex(everyone.index,
                                                                                                 fill_value=0)
    got = profile.categories.set_index("category")
    assert got.loc[everyone.index, "all_sales"].to_numpy() == pytest.approx(everyone.to_numpy())
    assert got.loc[everyone.index, "audience_share"].to_numpy() == pytest.approx((ours / ours.sum()).to_numpy())


def test_balance_of_treatment_and_control_matches_pandas(warehouse: Warehouse) -> None:
    spec = spec_for(warehouse, [], holdout=0.3, campaign_key="balance")
    table = balance_check(warehouse.engine, spec).set_index("label")
    start, end = window_of(warehouse)
    m = warehouse.frame("members").set_index("member_id")
    control = pd.Series([python_bucket(i, "balance") < round(0.3 * BUCKETS) for i in m.index], index=m.index)
    ref = Reference(warehouse, start, end)
    per = ref.window.groupby("member_id")["net_amount"].agg(["size", "sum"]).reindex(m.index, fill_value=0)

    def check(label: str, values: pd.Series, share: bool = False) -> None:
        t, c = values[~control].dropna().astype(float), values[control].dropna().astype(float)
        var_t, var_c = (t.mean() * (1 - t.mean()), c.mean() * (1 - c.mean())) if share else (t.var(), c.var())
        smd = (t.mean() - c.mean()) / math.sqrt((var_t + var_c) / 2)
        p = 2 * stats.norm.sf(abs(t.mean() - c.mean()) / math.sqrt(var_t / len(t) + var_c / len(c)))
        row = table.loc[label]
        assert (row["treatment"], row["control"]) == pytest.approx((t.mean(), c.mean())), label
        assert row["smd"] == pytest.approx(smd), label
        assert row["p_value"] == pytest.approx(p, rel=1e-6), label
        assert row["balanced"] == (abs(smd) < 0.1)

    check("Points balance", m["points_balance"])
    check("Orders in the window", per["size"])
    check("Net sales in the window", per["sum"])
    check("Reachable by push", m["consent_push"].eq(True).astype(int))
    check("Tier: gold", m["tier"].eq("gold").astype(int), share=True)
    born = pd.to_datetime(m["birth_date"])
    e = pd.Timestamp(end)
    check("Age", e.year - born.dt.year - ((e.month * 100 + e.day) < born.dt.month * 100 + born.dt.day))
    # members without orders: both arms' means are 0, which is a value, not a missing one
    idle = balance_check(warehouse.engine, spec_for(warehouse, [{"field": "order_count", "op": "between",
                                                                 "value": [None, 0]}], holdout=0.3)).set_index("label")
    assert idle.loc["Orders in the window", ["treatment", "control", "smd", "p_value"]].tolist() == [0, 0, 0, 1]
    assert idle.loc["Net sales in the window", "balanced"]
    verdict = balance_verdict(table.reset_index(), int(control.sum()))
    assert verdict.level in ("ok", "chance")  # a hash split: nothing beyond chance
    assert (balance_check(warehouse.engine, spec_for(warehouse, [], holdout=0.0)).empty)


def test_balance_verdict_names_a_broken_split() -> None:
    table = pd.DataFrame({"label": ["Age", "Tier: gold", "Points"], "smd": [0.02, 0.4, 0.15],
                          "p_value": [0.5, 1e-9, 0.03], "balanced": [True, False, False]})
    broken = balance_verdict(table, 500)
    assert broken.level == "broken" and "Tier: gold" in broken.message and "Points" not in broken.message
    chance = balance_verdict(table.assign(p_value=[0.5, 0.02, 0.03]), 500)
    assert chance.level == "chance" and "2 of 3" in chance.message
    assert balance_verdict(table.assign(balanced=True, p_value=0.5), 500).level == "ok"


# --- the table form of the rules -------------------------------------------------------------------------

def test_table_groups_and_back() -> None:
    rows = [{"group": None, "not": False, "field": "tier", "op": "in", "text": "gold, diamond"},
            {"group": 1, "not": True, "field": "age", "op": "between", "text": "- 30"},
            {"group": 1.0, "not": False, "field": "registered", "op": "between", "text": "2025-01-01 -"},
            {"group": float("nan"), "not": False, "field": None, "op": None, "text": None},  # a row being typed
            {"group": 2, "not": False, "field": "net_sales", "op": "between", "text": "100 - 200.5"}]
    rules, problems = rules_from_table("all", rows)
    assert problems == []
    assert rules == {"match": "all", "conditions": [
        {"field": "tier", "op": "in", "value": ["gold", "diamond"]},
        {"match": "any", "conditions": [{"field": "age", "op": "between", "value": [None, 30], "not": True},
                                        {"field": "registered", "op": "between", "value": ["2025-01-01", None]}]},
        {"match": "any", "conditions": [{"field": "net_sales", "op": "between", "value": [100, 200.5]}]}]}
    saved = parse_spec({"version": 1, "kind": "audience", "start": "2025-01-01", "end": "2025-12-31", "name": "x",
                        "saved_version": 2}).to_json()
    match, back, include, exclude = table_from_rules(compose_rules(rules, [saved], [saved]))
    assert (match, include, exclude) == ("all", [saved], [saved])
    assert rules_from_table(match, back)[0] == rules
    assert table_from_rules({"match": "all", "conditions": [{"match": "any", "conditions": [
        {"match": "all", "conditions": [{"field": "tier", "op": "in", "value": ["gold"]}]}]}]}) is None  # too deep
    assert table_from_rules({"match": "all", "conditions": [{"not": True, "field": "segment", "op": "in", "value": {
        "version": 1, "kind": "tag", "tag": "night_owl", "start": "2025-01-01", "end": "2025-12-31"}}]}) is None
    _, problems = rules_from_table("any", [{"field": "age", "op": "in", "text": "x"},
                                           {"field": "tier", "op": "in", "text": " , "}])
    assert problems == ["Row 1: Age: choose 'between' and type 'low - high' (either may be empty).",
                        "Row 2: Tier: type one or more values, separated by commas."]


TYPED = st.one_of(
    st.builds(lambda f, v, n: {"field": f, "op": "in", "value": v, **({"not": True} if n else {})},
              st.sampled_from(["tier", "region", "bought_category"]),
              st.lists(st.text("abcé xyz-", min_size=1, max_size=6).map(str.strip).filter(
                  lambda s: s and "," not in s), min_size=1, max_size=3), st.booleans()),
    st.builds(lambda f, lo, hi, n: {"field": f, "op": "between", "value": [lo, hi], **({"not": True} if n else {})},
              st.sampled_from(["age", "net_sales", "points_balance"]), st.one_of(st.none(), st.integers(-5, 900)),
              st.integers(0, 5000), st.booleans()))


@settings(max_examples=60, deadline=None)
@given(st.sampled_from(["all", "any"]), st.lists(st.one_of(TYPED, st.lists(TYPED, min_size=1, max_size=3)),
                                                  max_size=5))
def test_any_table_shaped_rules_survive_the_round_trip(match: str, items: list) -> None:
    other = "any" if match == "all" else "all"
    rules = {"match": match, "conditions": [{"match": other, "conditions": i} if isinstance(i, list) else i
                                            for i in items]}
    layout = table_from_rules(rules)
    assert layout is not None
    assert rules_from_table(layout[0], layout[1]) == (rules, [])
    for item in (c for i in items for c in (i if isinstance(i, list) else [i])):
        field, op, _text, negate = condition_text(item)
        assert (field, op, negate) == (item["field"], item["op"], item.get("not") is True)
