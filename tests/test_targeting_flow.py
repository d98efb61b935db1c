"""Issue 23, Campaign targeting's "empty and surprising results are explained", against independent pandas
computations on DuckDB and PostgreSQL: behaviour conditions' own look-backs (and definitions written before them
meaning what they meant), the per-condition funnel of counts, typed values checked against the known ones, and
the control group's size; the win-back job on the page under AppTest and on the command line."""

from __future__ import annotations

import json
import math
from datetime import date, timedelta

import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from scipy import stats

from analytics import audience_report, targeting, targeting_values
from analytics.errors import SpecError
from analytics.targeting_table import read_table, rules_from_table, table_from_rules
from tests.conftest import Warehouse, default_filters
from tests.figures import read_figure
from tests.reference_audiences import preview, targeted_members
from tests.reference_lookback import LookbackReference

LAPSED = {"field": "days_since_last_order", "op": "between", "value": [90, 365]}
BEAUTY = {"field": "bought_category", "op": "in", "value": ["Beauty"]}
HIGH_VALUE = {"field": "tier", "op": "in", "value": ["gold", "diamond"]}


def ninety_days(w: Warehouse, conditions: list, **options) -> dict:
    """A definition over the page's default range (the last 90 days of data)."""
    filters = default_filters(w)
    return {"version": 1, "kind": "audience", "start": filters.start.isoformat(), "end": filters.end.isoformat(),
            "rules": {"match": "all", "conditions": conditions}, **options}


def members_of(w: Warehouse, spec: dict) -> set[str]:
    return set(targeted_members(w.engine, spec)["member_id"])


# --- look-backs --------------------------------------------------------------------------------------------

def test_lapsed_beauty_buyers_are_found_with_the_recency_lookback(warehouse: Warehouse) -> None:
    """The issue's audience: "last order 90-365 days ago" AND "bought Beauty" over a 90-day range. Read over the
    range (the old meaning) nobody can match; read as far back as the recency condition reaches, the lapsed Beauty
    buyers of the year match, exactly pandas' set."""
    legacy = ninety_days(warehouse, [LAPSED, BEAUTY])
    assert members_of(warehouse, legacy) == LookbackReference(warehouse, legacy).group(legacy["rules"]) == set()
    recency = {**legacy, "lookback": "recency"}
    expected = LookbackReference(warehouse, recency).group(recency["rules"])
    assert len(expected) > 20
    assert members_of(warehouse, recency) == expected
    # bought Beauty in the 366 days up to the end, and last order 90-365 days ago: checked apart from the oracle
    end = pd.Timestamp(date.fromisoformat(legacy["end"]))
    orders = warehouse.frame("orders")
    done = orders[(orders["status"] == "completed") & orders["member_id"].notna()
                  & (orders["ordered_at"] < end + pd.Timedelta(days=1))]
    last = (end - done.groupby("member_id")["ordered_at"].max().dt.normalize()).dt.days
    lapsed = set(last.index[(last >= 90) & (last <= 365)])
    lines = warehouse.frame("order_items").merge(warehouse.frame("products"), on="product_id")
    year = done[done["ordered_at"] >= end - pd.Timedelta(days=365)]
    beauty = set(year.merge(lines[lines["category"] == "Beauty"], on="order_id")["member_id"])
    assert expected == lapsed & beauty


@pytest.mark.parametrize("conditions, lookback", [
    # each behaviour condition its own look-back, in one audience (three look-backs, one scan of orders)
    ([{**BEAUTY, "days": 30}, {"field": "order_count", "op": "between", "value": [2, None], "days": 200},
      {"field": "net_sales", "op": "between", "value": [300, None]},
      {"field": "aov", "op": "between", "value": [None, 900], "days": 400}], "window"),
    # no upper bound on recency: all history; a recency inside an OR group still reaches
    ([{"field": "days_since_last_order", "op": "between", "value": [120, None]}, BEAUTY], "recency"),
    ([{"match": "any", "conditions": [LAPSED, {"field": "days_since_last_order", "op": "between",
                                               "value": [0, 500]}]},
      {"field": "order_count", "op": "between", "value": [3, None]}], "recency"),
    # a negated recency condition: the last order may lie any time back
    ([{"not": True, **LAPSED}, {"field": "bought_product", "op": "in", "value": ["P0001", "P0002", "P0003"]},
      {"field": "net_sales", "op": "between", "value": [1, None], "days": 60}], "recency"),
    # no recency condition: the window
    ([HIGH_VALUE, {"not": True, **BEAUTY}], "recency"),
])
def test_lookbacks_match_pandas(warehouse: Warehouse, conditions: list, lookback: str) -> None:
    spec = ninety_days(warehouse, conditions, lookback=lookback, frequency_cap_days=7)
    ref = LookbackReference(warehouse, spec)
    expected = ref.group(spec["rules"])
    assert members_of(warehouse, spec) == expected & ref.uncapped()
    assert preview(warehouse.engine, spec).matching == len(expected)


_BEHAVIOUR = st.one_of(
    st.tuples(st.sampled_from(["order_count", "net_sales", "aov"]), st.integers(0, 8),
              st.one_of(st.none(), st.integers(1, 700))).map(lambda t: {
                  "field": t[0], "op": "between", "value": [t[1] * (150 if t[0] != "order_count" else 1), None],
                  **({"days": t[2]} if t[2] else {})}),
    st.tuples(st.lists(st.sampled_from(["Beauty", "Apparel", "Pets", "Home", "Electronics"]), min_size=1,
                       max_size=2, unique=True), st.booleans(), st.one_of(st.none(), st.integers(1, 700))).map(
        lambda t: {"field": "bought_category", "op": "in" if t[1] else "not_in", "value": t[0],
                   **({"days": t[2]} if t[2] else {})}),
)
_RECENCY = st.tuples(st.one_of(st.none(), st.integers(0, 200)), st.one_of(st.none(), st.integers(0, 900))).filter(
    lambda t: t[0] is not None or t[1] is not None).map(
    lambda t: {"field": "days_since_last_order", "op": "between", "value": list(t)})
_ITEM = st.tuples(st.one_of(_BEHAVIOUR, _RECENCY, st.just(HIGH_VALUE)), st.booleans()).map(
    lambda t: {**t[0], "not": True} if t[1] else t[0])


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(items=st.lists(st.one_of(_ITEM, st.lists(_ITEM, min_size=1, max_size=3).map(
    lambda c: {"match": "any", "conditions": c})), min_size=1, max_size=4),
       match=st.sampled_from(["all", "any"]), lookback=st.sampled_from(["window", "recency"]))
def test_random_lookbacks_and_funnels_match_pandas(duck_warehouse: Warehouse, items: list, match: str,
                                                   lookback: str) -> None:
    """Property: any mix of look-backs, recency bounds, NOT and groups gives pandas' members, and the funnel
    pandas' counts step by step."""
    spec = {**ninety_days(duck_warehouse, items, lookback=lookback), "frequency_cap_days": 14}
    spec["rules"]["match"] = match
    ref = LookbackReference(duck_warehouse, spec)
    expected = ref.group(spec["rules"])
    audience = targeting.parse_spec(spec)
    assert targeting.preview(duck_warehouse.engine, audience).matching == len(expected)
    funnel = targeting.condition_funnel(duck_warehouse.engine, audience)
    assert [(s.alone, s.remaining) for s in funnel.steps] == ref.funnel()


def test_definitions_written_before_lookbacks_mean_the_same(warehouse: Warehouse, tmp_path) -> None:
    """A definition without "lookback" reads the window, as it did; it is written back byte for byte (no new key),
    and so is a saved audience read from the app-state database; "recency" is written when chosen."""
    from analytics.storage.appstate import load_audience, open_state, save_audience

    old = ninety_days(warehouse, [LAPSED, BEAUTY, {"field": "order_count", "op": "between", "value": [1, None]}],
                      holdout=0.1, campaign_key="old", frequency_cap_days=None, max_size=None)
    audience = targeting.parse_spec(old)
    assert audience.lookback == "window" and "lookback" not in audience.to_json()
    assert {k: v for k, v in audience.to_json().items() if k != "source"} == old  # "source": a description
    assert members_of(warehouse, old) == set()  # the old meaning: "bought" within the 90 days only
    state = open_state(f"sqlite:///{tmp_path}/state.sqlite")
    save_audience(state, "Old", old, 0, "test")
    reopened = targeting.from_saved(load_audience(state, "Old", 1))
    assert reopened.lookback == "window" and reopened.rules == audience.rules
    assert targeting.preview(warehouse.engine, reopened).matching == 0
    new = targeting.CampaignAudience(audience.window, audience.rules, lookback="recency")
    assert new.to_json()["lookback"] == "recency" and targeting.parse_spec(new.to_json()) == new
    assert targeting.preview(warehouse.engine, new).matching > 0
    # the golden command-line definition has no "lookback": it still reads its window (tests/test_cli_golden.py)
    from tests.conftest import PROJECT_ROOT

    golden = json.loads((PROJECT_ROOT / "tests" / "golden" / "audience.json").read_text())
    assert targeting.parse_spec(golden).lookback == "window"


@pytest.mark.parametrize("change, message", [
    ({"lookback": "forever"}, "lookback is 'recency' or 'window'"),
    ({"rules": {"match": "all", "conditions": [{**HIGH_VALUE, "days": 30}]}}, "tier does not look back"),
    ({"rules": {"match": "all", "conditions": [{**BEAUTY, "days": 0}]}}, r'"days" \(its look-back\) is a whole'),
    ({"rules": {"match": "all", "conditions": [{**BEAUTY, "days": 99999}]}}, "from 1 to 3,660"),
    ({"rules": {"match": "all", "conditions": [{**BEAUTY, "days": "30"}]}}, "not '30'"),
    ({"rules": {"match": "all", "conditions": [{**BEAUTY, "days": True}]}}, "not True"),
])
def test_bad_lookbacks_get_clear_messages(duck_warehouse: Warehouse, change: dict, message: str) -> None:
    with pytest.raises(SpecError, match=message):
        targeting.parse_spec({**ninety_days(duck_warehouse, []), **change})


def test_table_rows_carry_their_lookback() -> None:
    rows = [{"field": "bought_category", "op": "in", "text": "Beauty", "days": 365.0},
            {"field": "tier", "op": "in", "text": "gold", "days": float("nan")},
            {"field": "net_sales", "op": "between", "text": "100 -", "days": None}]
    rules, problems = rules_from_table("all", rows)
    assert problems == []
    assert rules.to_json()["conditions"][0] == {**BEAUTY, "days": 365}
    match, back, *_ = table_from_rules(rules)
    assert [r["days"] for r in back] == [365, None, None] and rules_from_table(match, back)[0] == rules
    _, problems = rules_from_table("all", [{"field": "tier", "op": "in", "text": "gold", "days": 30},
                                           {"field": "order_count", "op": "between", "text": "1 -", "days": 2.5}])
    assert problems[0].startswith("Row 1: Tier does not look back")
    assert problems[1] == "Row 2: a look-back is a whole number of days, not 2.5."


# --- the funnel of counts ------------------------------------------------------------------------------------

@pytest.mark.parametrize("conditions, match, options", [
    ([HIGH_VALUE, BEAUTY, LAPSED], "all", {"lookback": "window", "frequency_cap_days": 7}),
    ([HIGH_VALUE, BEAUTY, LAPSED], "all", {"lookback": "recency", "frequency_cap_days": 7, "holdout": 0.1}),
    ([{"field": "region", "op": "in", "value": ["East China"]},
      {"match": "any", "conditions": [{"field": "age", "op": "between", "value": [None, 30]},
                                      {"not": True, "field": "gender", "op": "in", "value": ["female"]}]},
      {"match": "all", "conditions": [{"field": "points_balance", "op": "between", "value": [100, None]},
                                      {"field": "net_sales", "op": "between", "value": [1, None], "days": 365}]}],
     "all", {}),
    ([BEAUTY, {"field": "tier", "op": "in", "value": ["diamond"]}, {"field": "aov", "op": "between",
                                                                     "value": [2000, None]}], "any",
     {"frequency_cap_days": 30}),
])
def test_funnel_counts_match_pandas(warehouse: Warehouse, conditions: list, match: str, options: dict) -> None:
    spec = ninety_days(warehouse, conditions, **options)
    spec["rules"]["match"] = match
    audience = targeting.parse_spec(spec)
    funnel = targeting.condition_funnel(warehouse.engine, audience)
    assert funnel.members == len(warehouse.frame("members")) and funnel.match == match
    assert [(s.alone, s.remaining) for s in funnel.steps] == LookbackReference(warehouse, spec).funnel()
    assert funnel.steps[-1].remaining == targeting.preview(warehouse.engine, audience).targeted


def test_funnel_names_the_condition_that_empties_the_audience(duck_warehouse: Warehouse) -> None:
    audience = targeting.parse_spec(ninety_days(duck_warehouse, [HIGH_VALUE, BEAUTY, LAPSED]))
    funnel = targeting.condition_funnel(duck_warehouse.engine, audience)
    labels = [s.label for s in funnel.steps]
    start = default_filters(duck_warehouse).start.isoformat()
    assert labels == ["Tier is one of gold, diamond", f"Bought a category is one of Beauty (since {start})",
                      "Days since last order between 90 - 365"]
    assert funnel.steps[-1].remaining == 0 < funnel.steps[1].remaining and funnel.narrowest() == 2
    small = targeting.ConditionFunnel("all", 1000, (targeting.FunnelStep("a", 900, 900),
                                                    targeting.FunnelStep("b", 50, 40),
                                                    targeting.FunnelStep("c", 500, 30)))
    assert small.narrowest() == 1  # keeps 40 of 900: the smallest share
    grouped = targeting.parse_spec(ninety_days(duck_warehouse, [{"match": "any", "conditions": [HIGH_VALUE, BEAUTY]}],
                                               lookback="recency"))
    assert [s.label for s in targeting.condition_funnel(duck_warehouse.engine, grouped).steps] == [
        f"any of (Tier is one of gold, diamond; Bought a category is one of Beauty (since {start}))"]


def test_funnel_on_the_command_line(duck_warehouse: Warehouse, tmp_path) -> None:
    from tests.conftest import run

    spec = ninety_days(duck_warehouse, [HIGH_VALUE, {**BEAUTY, "value": ["beauty"]}, LAPSED], lookback="recency",
                       frequency_cap_days=7)
    path = tmp_path / "winback.json"
    path.write_text(json.dumps(spec))
    done = run("analytics", "audience", "--url", duck_warehouse.url, "--spec", str(path), "--funnel")
    assert done.returncode == 0, done.stderr
    assert ("note: Bought a category: 'beauty' is written Beauty in the warehouse; as written, it matches nobody."
            in done.stderr)
    funnel = targeting.condition_funnel(duck_warehouse.engine, targeting.parse_spec(spec))
    expected = [(0, "all members", funnel.members, funnel.members)] + [
        (n, s.label, s.alone, s.remaining) for n, s in enumerate(funnel.steps, start=1)]
    got = pd.read_csv(pd.io.common.StringIO(done.stdout))
    assert list(got.columns) == ["step", "condition", "alone", "remaining"]
    assert [tuple(r) for r in got.itertuples(index=False)] == expected
    assert [(a, r) for _, _, a, r in expected[1:]] == LookbackReference(duck_warehouse, spec).funnel()
    assert expected[2][2] == 0  # 'beauty' matches nobody, as written


# --- known values ------------------------------------------------------------------------------------------

def test_known_values_come_from_the_warehouse(warehouse: Warehouse) -> None:
    members, products = warehouse.frame("members"), warehouse.frame("products")
    tiers = targeting_values.known_values(warehouse.engine, "tier")
    assert tiers.complete and tiers.values[:4] == ("basic", "silver", "gold", "diamond")  # programme order
    assert set(tiers.values) == {"basic", "silver", "gold", "diamond"} | set(members["tier"].dropna())
    for key, values in [("region", members["region"]), ("city", members["city"]),
                        ("acquisition_channel", members["acquisition_channel"]),
                        ("bought_category", products["category"])]:
        known = targeting_values.known_values(warehouse.engine, key)
        assert known.values == tuple(sorted(set(values.dropna()) - {""})), key
    assert targeting_values.known_values(warehouse.engine, "age").values == ()
    ids = list(products["product_id"][:3])
    typed = [ids[0].lower(), ids[1], "no-such-product"]
    assert targeting_values.existing_values(warehouse.engine, "bought_product", typed) == tuple(sorted(ids[:2]))
    lookup = targeting_values.lookup(warehouse.engine)
    assert tuple(lookup("region", ["x"])) == targeting_values.known_values(warehouse.engine, "region").values


def test_typed_values_are_corrected_or_explained() -> None:
    categories = ("Apparel", "Beauty", "Electronics", "Home", "Pets")
    check = targeting_values.check_values
    assert check("bought_category", ("Beauty",), categories).values == ("Beauty",)
    fixed = check("bought_category", ("beauty", " PETS "), categories)
    assert fixed.values == ("Beauty", "Pets") and fixed.problems == ()
    assert fixed.notes == ["'beauty' read as Beauty.", "' PETS ' read as Pets."]
    assert check("bought_category", ("beautyy",), categories).problems == (
        "'beautyy' is not a category; did you mean Beauty?",)
    assert check("bought_category", ("",), categories).problems == (
        "an empty value is not a category: remove it or type one.",)
    assert check("bought_category", ("BEAUTY",), (*categories, "beauty")).problems == (
        "'BEAUTY' is not a category; did you mean Beauty or beauty?",)
    assert check("tier", ("platinum",), ("basic", "silver", "gold", "diamond")).problems == (
        "'platinum' is not a tier; choose from basic, silver, gold, diamond.",)
    assert check("bought_product", ("P9",), ()).problems == ("'P9' is not a product id in the warehouse.",)


def test_table_values_checked_on_both_warehouses(warehouse: Warehouse) -> None:
    """Row by row: a case slip is corrected (and said), a misspelling names the row and the closest value, the
    corrected rules count exactly what the right spelling counts."""
    lookup = targeting_values.lookup(warehouse.engine)
    rows = [{"field": "tier", "op": "in", "text": "Gold, DIAMOND"},
            {"field": "bought_category", "op": "in", "text": "beauty", "days": 365}]
    read = read_table("all", rows, known=lookup)
    assert read.problems == ()
    assert read.notes == ("Row 1: Tier: 'Gold' read as gold.", "Row 1: Tier: 'DIAMOND' read as diamond.",
                          "Row 2: Bought a category: 'beauty' read as Beauty.")
    assert read.rules.to_json()["conditions"] == [HIGH_VALUE, {**BEAUTY, "days": 365}]
    wrong = read_table("all", [rows[0], {**rows[1], "text": "beautyy"}], known=lookup)
    assert wrong.problems == ("Row 2: Bought a category: 'beautyy' is not a category; did you mean Beauty?",)
    rules = targeting.parse_rules({"match": "all", "conditions": [{**BEAUTY, "value": ["beauty", "Pets"]}]})
    assert targeting_values.value_notes(rules, lookup) == [
        "Bought a category: 'beauty' is written Beauty in the warehouse; as written, it matches nobody."]


# --- the control group's size ------------------------------------------------------------------------------

def _power(control: int, treatment: int, p0: float, p1: float, alpha: float = 0.05) -> float:
    """Power of the two-sided two-proportion z-test (pooled under the null) with unequal arms, written apart."""
    pooled = (p0 * control + p1 * treatment) / (control + treatment)
    null_se = math.sqrt(pooled * (1 - pooled) * (1 / control + 1 / treatment))
    se = math.sqrt(p0 * (1 - p0) / control + p1 * (1 - p1) / treatment)
    z = stats.norm.ppf(1 - alpha / 2)
    return float(stats.norm.cdf((p1 - p0 - z * null_se) / se) + stats.norm.cdf((p0 - p1 - z * null_se) / se))


@pytest.mark.parametrize("treatment, baseline, difference", [(10_000, 0.05, 0.02), (3_000, 0.05, 0.02),
                                                             (200_000, 0.03, 0.005), (50_000, 0.2, 0.03)])
def test_control_needed_gives_the_planned_power(treatment: int, baseline: float, difference: float) -> None:
    plan = audience_report.PowerPlan(baseline, difference)
    needed = audience_report.control_needed(treatment, plan)
    assert needed is not None
    assert 0.78 <= _power(needed, treatment, baseline, baseline + difference) <= 0.83
    assert _power(round(needed * 0.7), treatment, baseline, baseline + difference) < 0.75
    assert needed >= plan.per_arm() / 2  # never fewer than a control facing an infinite treatment arm needs
    assert abs(audience_report.control_needed(plan.per_arm(), plan) - plan.per_arm()) <= 1  # equal arms: the same
    assert audience_report.control_needed(plan.per_arm() // 3, plan) is None  # no control group is enough


def test_a_dozen_control_members_is_too_small_not_a_broken_split() -> None:
    table = pd.DataFrame({"label": ["Region: Northeast", "Age"], "smd": [0.6, 0.05], "p_value": [1e-9, 0.6],
                          "balanced": [False, True]})
    plan = audience_report.PowerPlan(0.05, 0.02)
    small = audience_report.balance_verdict(table, 12, 5_000, plan)
    needed = audience_report.control_needed(5_000, plan)
    assert small.level == "small" and small.needed == needed
    assert small.message.startswith(f"Control too small: 12 members; about {needed:,} needed to detect a difference "
                                    "of 2.0 pp in conversion (from 5.0% without the message")
    assert "check how the arms were assigned" not in small.message
    assert audience_report.balance_verdict(table, 12, 300, plan).message.startswith("Audience too small to measure")
    assert audience_report.balance_verdict(table, 5_000, 5_000, plan).level == "broken"  # enough members: broken
    assert audience_report.balance_verdict(table, 12).level == "broken"  # without the sizes: as before


def test_past_control_rate_matches_pandas(warehouse: Warehouse) -> None:
    sent = warehouse.frame("campaign_members")
    control = sent[sent["arm"] == "control"]
    assert audience_report.past_control_rate(warehouse.engine) == pytest.approx(
        control["converted_order_id"].notna().mean())


# --- the job on the page --------------------------------------------------------------------------------------

def _alerts(at) -> list[str]:
    return [e.value for kind in (at.success, at.info, at.warning, at.error) for e in kind]


def test_win_back_job_on_the_page(warehouse: Warehouse, monkeypatch, tmp_path) -> None:
    """Build a win-back campaign for lapsed high-value Beauty buyers with a 10 % holdout, under AppTest: the
    starter's recency row becomes "90 - 365", "Beauty" is picked from the known categories, the sizes and the
    funnel read back as the analytics and pandas count them; the range look-back empties the audience and the
    funnel says which condition does it; a misspelt category is named; the small control arm is said to be
    small."""
    from tests.conftest import direct_page

    monkeypatch.setenv("MEMBERLENS_STATE_URL", f"sqlite:///{tmp_path}/state.sqlite")
    at, run = direct_page(warehouse, "pages/campaign_targeting.py", monkeypatch)
    run()
    at.session_state["target_conditions_0"] = {"edited_rows": {1: {"values": "90 - 365"}}, "added_rows": [],
                                               "deleted_rows": []}
    run()
    at.selectbox(key="target_pick_field").set_value("bought_category")
    run()
    assert "Beauty" in at.multiselect(key="target_pick_values_bought_category").options
    at.multiselect(key="target_pick_values_bought_category").set_value(["Beauty"])
    run()
    at.button(key="target_pick_add").click()
    run()
    assert at.slider(key="target_holdout").value == 10
    assert at.segmented_control(key="target_lookback").value == "recency"
    spec = ninety_days(warehouse, [HIGH_VALUE, LAPSED, BEAUTY], lookback="recency", frequency_cap_days=7,
                       holdout=0.1, campaign_key="campaign")
    sizes = preview(warehouse.engine, spec)
    ref = LookbackReference(warehouse, spec)
    expected = ref.group(spec["rules"]) & ref.uncapped()
    cards = {m.label: m.value for m in at.metric}
    assert read_figure(cards["Targeted"]).value == sizes.targeted == len(expected) > 0
    assert read_figure(cards["Control"]).value == sizes.control
    # the funnel is shown at once (a small audience): every figure read back equals pandas' count
    table = next(df.value for df in at.dataframe if "remaining" in df.value.columns)
    steps = ref.funnel()
    assert [read_figure(v).value for v in table["alone"]][1:] == [a for a, _ in steps]
    assert [read_figure(v).value for v in table["remaining"]] == [len(warehouse.frame("members"))] + [
        r for _, r in steps]
    assert table["step"].tolist()[1:] == [s.label for s in targeting.condition_funnel(
        warehouse.engine, targeting.parse_spec(spec)).steps]
    # read over the range instead (what the page used to do): empty, and the funnel names "bought Beauty" (read
    # over the range) as the condition that removes the lapsed high-value members
    at.segmented_control(key="target_lookback").set_value("window")
    run()
    assert {m.label: m.value for m in at.metric}["Targeted"] == "0"
    start = default_filters(warehouse).start.isoformat().replace("-", "\\-")
    lapsed = LookbackReference(warehouse, spec).group({"match": "all", "conditions": [HIGH_VALUE, LAPSED]})
    assert (f"**Bought a category is one of Beauty \\(since {start}\\)** removes the last {len(lapsed)} members"
            in " ".join(_alerts(at))), _alerts(at)
    at.segmented_control(key="target_lookback").set_value("recency")
    run()
    # typed in lower case: read as Beauty (said), same sizes; misspelt: the row is named with the closest value
    at.session_state["target_conditions_1"] = {"edited_rows": {2: {"values": "beauty"}}, "added_rows": [],
                                               "deleted_rows": []}
    run()
    assert "Row 3: Bought a category: 'beauty' read as Beauty." in _alerts(at)
    assert read_figure({m.label: m.value for m in at.metric}["Targeted"]).value == sizes.targeted
    at.session_state["target_conditions_1"] = {"edited_rows": {2: {"values": "beautyy"}}, "added_rows": [],
                                               "deleted_rows": []}
    run()
    assert [e.value for e in at.error] == [
        "Row 3: Bought a category: 'beautyy' is not a category; did you mean Beauty?"]
    assert not at.metric
    at.session_state["target_conditions_1"] = {"edited_rows": {}, "added_rows": [], "deleted_rows": []}
    run()
    # the control arm of a few members: too small, with the members needed, not a broken split
    at.session_state["target_tab"] = "Control balance"
    run()
    warning = next(text for text in _alerts(at) if text.startswith("Control too small") or
                   text.startswith("Audience too small"))
    plan = audience_report.PowerPlan(at.number_input(key="target_balance_baseline").value / 100, 0.02)
    from ui.audience_views import FIGURES

    verdict = audience_report.balance_verdict(pd.DataFrame(), sizes.control, sizes.treatment, plan, FIGURES)
    assert verdict.level == "small" and warning == verdict.message
    assert "check how the arms were assigned" not in " ".join(_alerts(at))


def test_big_audiences_compute_the_funnel_only_when_opened(duck_warehouse: Warehouse, monkeypatch) -> None:
    """Above SMALL_AUDIENCE targeted members the funnel waits in a closed expander (no statement runs)."""
    from tests.conftest import direct_page
    from ui.audience_views import cached_funnel

    cached_funnel.clear()  # another test may have counted the same audience (a small one: at once)
    monkeypatch.setattr(targeting, "SMALL_AUDIENCE", 10)
    calls: list[int] = []
    original = targeting.condition_funnel
    monkeypatch.setattr(targeting, "condition_funnel", lambda *a: calls.append(1) or original(*a))
    at, run = direct_page(duck_warehouse, "pages/campaign_targeting.py", monkeypatch)
    at.session_state["target_match"] = "any"  # tier OR recent: hundreds of members
    run()
    assert read_figure({m.label: m.value for m in at.metric}["Targeted"]).value > 10
    assert not calls and not [df for df in at.dataframe if "remaining" in df.value.columns]
    at.session_state["target_funnel"] = True
    run()
    assert calls and [df for df in at.dataframe if "remaining" in df.value.columns]


def test_lookback_days_need_no_more_than_one_scan(duck_warehouse: Warehouse) -> None:
    """Three look-backs compile to one aggregation of orders (conditional sums per look-back)."""
    spec = ninety_days(duck_warehouse, [{**BEAUTY, "days": 30}, {"field": "order_count", "op": "between",
                                                                   "value": [2, None], "days": 200},
                                        {"field": "net_sales", "op": "between", "value": [300, None]},
                                        {"field": "aov", "op": "between", "value": [None, 900], "days": 400}])
    sql = str(targeting.audience_member_ids(targeting.parse_spec(spec)))
    assert sql.count("GROUP BY orders.member_id") == 1
    assert "order_count_2" in sql and "order_count_3" not in sql  # three look-backs: 90-day default, 200, 400
    end = date.fromisoformat(spec["end"])
    assert targeting.condition_since(targeting.parse_spec(spec), targeting.parse_spec(spec).rules.items[0]) == (
        end - timedelta(days=29))
