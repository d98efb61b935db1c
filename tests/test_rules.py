"""Basket rules: formulas by hand, itemsets and rules against mlxtend on the real Groceries and
Online Retail baskets, guard rails, the time limit, baskets from the warehouse and the audience."""

from __future__ import annotations

import math
import subprocess
import sys
from datetime import date

import numpy as np
import pandas as pd
import pytest
from mlxtend.frequent_patterns import association_rules, fpgrowth
from mlxtend.preprocessing import TransactionEncoder

from analytics.audiences import parse_audience
from analytics.filters import Filters
from analytics.importers import import_file
from analytics.member_rows import member_count
from analytics.rule_views import bought_together, compare_rules, rule_audience, rule_network
from analytics.rules import (
    Baskets,
    RuleSpec,
    RulesRefused,
    RulesTimeout,
    frequent_itemsets,
    load_baskets,
    mine_rules,
    with_readings,
)
from tests.conftest import DATASETS, PROJECT_ROOT, Warehouse

GROCERIES = DATASETS / "groceries.csv"
RETAIL = DATASETS / "online_retail.csv.gz"



def audience_size(bind, spec: dict) -> int:
    """How many members a downloaded audience definition holds (parsed at the test's edge)."""
    return member_count(bind, parse_audience(spec).member_ids())

def need(path):
    if not path.exists():
        pytest.skip(f"{path.name} is not in {DATASETS} (the shared datasets folder is absent)")
    return path


# --- formulas by hand -------------------------------------------------------------------------------

TINY = [["bread", "milk"], ["bread", "butter", "milk"], ["bread", "butter"], ["milk"], ["bread", "milk", "eggs"]]


def test_metrics_match_hand_computed_values() -> None:
    rules = mine_rules(Baskets.from_lists(TINY), RuleSpec(min_support=0.2, min_confidence=0.5, max_len=3)).rules
    row = rules.set_index(["antecedents", "consequents"]).loc[("butter", "bread")]
    # butter in 2 of 5 baskets, bread in 4, both in 2: P(A)=.4, P(B)=.8, P(AB)=.4
    assert row["support"] == pytest.approx(0.4)
    assert row["confidence"] == pytest.approx(1.0)
    assert row["lift"] == pytest.approx(1.25)
    assert row["leverage"] == pytest.approx(0.4 - 0.4 * 0.8)
    assert math.isinf(row["conviction"])
    assert row["zhangs_metric"] == pytest.approx(0.08 / max(0.4 * 0.6, 0.4 * (0.8 - 0.4)))  # = 1/3
    row = rules.set_index(["antecedents", "consequents"]).loc[("milk", "bread")]
    # milk in 4, bread in 4, both in 3: confidence .75, lift .9375, conviction (1-.8)/(1-.75) = .8
    assert (row["confidence"], row["lift"], row["conviction"]) == pytest.approx((0.75, 0.9375, 0.8))
    assert row["zhangs_metric"] == pytest.approx((0.6 - 0.64) / max(0.6 * 0.2, 0.8 * (0.8 - 0.6)))
    text = with_readings(rules.head(1))["reading"][0]
    assert text.startswith("In 40.0% of baskets; 100% of baskets with butter also hold bread")


# --- the reference: mlxtend on the same baskets -----------------------------------------------------

def groceries() -> list[list[str]]:
    lines = need(GROCERIES).read_text(encoding="utf-8").splitlines()
    return [list(dict.fromkeys(i.strip() for i in line.split(",") if i.strip())) for line in lines]


def reference(baskets: list[list[str]], support: float, max_len: int | None = None):
    encoder = TransactionEncoder()
    onehot = pd.DataFrame.sparse.from_spmatrix(encoder.fit(baskets).transform(baskets, sparse=True),
                                               columns=encoder.columns_)
    return fpgrowth(onehot, min_support=support, use_colnames=True, max_len=max_len)


def keyed(itemsets) -> str:
    return " | ".join(sorted(itemsets))


@pytest.fixture(scope="module")
def groceries_reference() -> pd.DataFrame:
    return reference(groceries(), 0.001)


def test_groceries_itemsets_equal_the_reference(groceries_reference) -> None:
    ours = frequent_itemsets(Baskets.from_lists(groceries()), RuleSpec(min_support=0.001, max_len=10))
    theirs = dict(zip(groceries_reference["itemsets"].map(keyed), groceries_reference["support"], strict=True))
    assert len(ours) == len(theirs) == 13_492
    assert dict(zip(ours["itemset"], ours["support"], strict=True)) == pytest.approx(theirs)


@pytest.mark.parametrize(("confidence", "expected"), [(0.5, 5_668), (0.8, 410)])
def test_groceries_rules_equal_the_reference(groceries_reference, confidence: float, expected: int) -> None:
    ours = mine_rules(Baskets.from_lists(groceries()), RuleSpec(min_support=0.001, min_confidence=confidence,
                                                                 max_len=10)).rules
    # mlxtend divides float supports, so a confidence of exactly 8/10 can land a hair under 0.8
    theirs = association_rules(groceries_reference, metric="confidence", min_threshold=confidence - 1e-9)
    theirs = theirs[theirs["consequents"].map(len) == 1]  # one item in the consequent, as in arules
    assert len(ours) == len(theirs) == expected  # the counts the arules literature reports
    merged = ours.merge(theirs.assign(antecedents=theirs["antecedents"].map(keyed),
                                      consequents=theirs["consequents"].map(keyed)),
                        on=["antecedents", "consequents"], suffixes=("", "_ref"), validate="one_to_one")
    assert len(merged) == expected
    for metric in ("support", "confidence", "lift", "leverage", "zhangs_metric"):
        np.testing.assert_allclose(merged[metric], merged[f"{metric}_ref"], rtol=1e-9, err_msg=metric)
    finite = np.isfinite(merged["conviction_ref"])
    np.testing.assert_allclose(merged.loc[finite, "conviction"], merged.loc[finite, "conviction_ref"], rtol=1e-9)
    assert np.isinf(merged.loc[~finite, "conviction"]).all()


def test_apriori_finds_the_same_rules() -> None:
    baskets = Baskets.from_lists(groceries())
    spec = RuleSpec(min_support=0.002, min_confidence=0.4, max_len=10)
    first = mine_rules(baskets, spec).rules
    second = mine_rules(baskets, RuleSpec(**{**spec.__dict__, "algorithm": "apriori"})).rules
    pd.testing.assert_frame_equal(first.sort_values(["antecedents", "consequents"], ignore_index=True),
                                  second.sort_values(["antecedents", "consequents"], ignore_index=True))


@pytest.fixture(scope="module")
def retail_warehouse(tmp_path_factory) -> str:
    url = f"duckdb:///{tmp_path_factory.mktemp('rules') / 'retail.duckdb'}"
    import_file(url, "transactions", need(RETAIL))
    return url


def retail_invoices() -> list[list[str]]:
    """Completed invoices as the file has them: read with pandas, independently of the importer."""
    raw = pd.read_csv(RETAIL, dtype=str, keep_default_na=False)
    kept = raw[~raw.duplicated() & (pd.to_numeric(raw["UnitPrice"]) > 0)
               & ~raw["InvoiceNo"].str.startswith("C") & (pd.to_numeric(raw["Quantity"]) > 0)]
    return kept.groupby("InvoiceNo")["StockCode"].agg(lambda s: list(dict.fromkeys(s))).tolist()


def test_online_retail_rules_from_the_warehouse_equal_the_reference(retail_warehouse) -> None:
    from analytics.storage.warehouse import open_warehouse

    engine = open_warehouse(retail_warehouse)
    try:
        baskets = load_baskets(engine, Filters(date(2010, 12, 1), date(2011, 12, 9)), "product")
    finally:
        engine.dispose()
    invoices = retail_invoices()
    assert baskets.count == len(invoices)
    spec = RuleSpec(min_support=0.01, min_confidence=0.5, max_len=4)
    ours = mine_rules(baskets, spec).rules
    ref_sets = reference(invoices, 0.01, max_len=4)
    theirs = association_rules(ref_sets, metric="confidence", min_threshold=0.5 - 1e-9)
    theirs = theirs[theirs["consequents"].map(len) == 1]
    assert len(ours) == len(theirs) > 50
    assert set(zip(ours["antecedents"], ours["consequents"], strict=True)) == set(
        zip(theirs["antecedents"].map(keyed), theirs["consequents"].map(keyed), strict=True))


def test_settings_that_would_explode_are_refused_with_a_higher_support() -> None:
    invoices = retail_invoices() if RETAIL.exists() else pytest.skip("online_retail.csv.gz is absent")
    baskets = Baskets.from_lists(invoices)
    with pytest.raises(RulesRefused, match="would explode") as refused:
        mine_rules(baskets, RuleSpec(min_support=0.0002, min_confidence=0.5))
    suggested = float(refused.value.fix.split("at least ")[1].split("%")[0]) / 100
    assert suggested > 0.0002
    assert not mine_rules(baskets, RuleSpec(min_support=suggested, min_confidence=0.9, max_len=2)).estimate.too_big


def test_the_time_limit_stops_mining_in_a_child_process() -> None:
    baskets = Baskets.from_lists(groceries())
    with pytest.raises(RulesTimeout, match=r"longer than 0\.01 s"):
        mine_rules(baskets, RuleSpec(min_support=0.0005, min_confidence=0.1, max_len=10), time_limit=0.01)
    in_child = mine_rules(baskets, RuleSpec(min_support=0.001, min_confidence=0.8, max_len=10), time_limit=60)
    assert len(in_child.rules) == 410


def test_no_baskets_is_a_clear_refusal() -> None:
    with pytest.raises(RulesRefused, match="No completed orders"):
        mine_rules(Baskets.from_lists([]), RuleSpec())


# --- views and actions ------------------------------------------------------------------------------

def test_bought_together_counts_co_occurrences() -> None:
    table = bought_together(Baskets.from_lists(TINY), "bread", include_below_chance=True).set_index("item")
    assert table.loc["milk", "baskets"] == 3 and table.loc["butter", "baskets"] == 2
    assert table.loc["milk", "confidence"] == pytest.approx(3 / 4)
    assert table.loc["eggs", "lift"] == pytest.approx((1 / 5) / (4 / 5 * 1 / 5))
    assert bought_together(Baskets.from_lists(TINY), "caviar").empty


def test_bought_together_leaves_out_pairs_below_chance_unless_asked() -> None:
    """Bread and milk share 3 of 5 baskets, but each is in 4: together less often than chance (lift 0.6 / 0.64 =
    0.94). Such a pair is flagged, and by default left out (issue 23: lifts of 0.43-0.65 listed as "bought
    together")."""
    baskets = Baskets.from_lists(TINY)
    everything = bought_together(baskets, "bread", include_below_chance=True).set_index("item")
    assert everything.loc["milk", "lift"] == pytest.approx(0.6 / 0.64)
    assert everything["below_chance"].to_dict() == (everything["lift"] < 1).to_dict()
    assert everything.loc["milk", "below_chance"] and not everything.loc["butter", "below_chance"]
    shown = bought_together(baskets, "bread")
    assert (shown["lift"] >= 1).all() and "milk" not in set(shown["item"]) and len(shown)
    assert shown.attrs["below_chance"] == int((everything["lift"] < 1).sum()) == 1
    assert list(shown.columns) == list(everything.reset_index().columns)


def test_segments_compare_by_lift_and_the_network_links_items() -> None:
    spec = RuleSpec(min_support=0.2, min_confidence=0.1, max_len=2)
    first = mine_rules(Baskets.from_lists(TINY), spec).rules
    second = mine_rules(Baskets.from_lists([*TINY, ["butter", "eggs"], ["butter", "eggs"]]), spec).rules
    compared = compare_rules(first, second).set_index(["antecedents", "consequents"])
    assert compared.loc[("butter", "bread"), "lift_first"] == pytest.approx(1.25)
    assert compared.loc[("butter", "bread"), "lift_difference"] == pytest.approx(
        compared.loc[("butter", "bread"), "lift_second"] - 1.25)
    nodes, edges = rule_network(first, top=5)
    assert set(edges["source"]) | set(edges["target"]) <= set(nodes["item"])
    assert np.allclose(nodes["x"] ** 2 + nodes["y"] ** 2, 1.0)


def test_baskets_and_the_rule_audience_from_the_warehouse(warehouse: Warehouse) -> None:
    """On DuckDB and PostgreSQL: baskets equal the raw rows; the audience equals a pandas filter."""
    orders_ = warehouse.frame("orders")
    items = warehouse.frame("order_items")
    span_end = orders_["ordered_at"].max().date()
    start = span_end.replace(day=1)
    filters = Filters(start, span_end)
    baskets = load_baskets(warehouse.engine, filters, "category")
    done = orders_[(orders_["status"] == "completed") & (orders_["ordered_at"].dt.date >= start)
                   & (orders_["ordered_at"].dt.date <= span_end)]
    lines = items.merge(done[["order_id", "member_id"]], on="order_id").merge(
        warehouse.frame("products")[["product_id", "category"]], on="product_id")
    assert baskets.count == lines["order_id"].nunique()
    assert int(baskets.item_counts().sum()) == len(lines[["order_id", "category"]].drop_duplicates())

    result = mine_rules(baskets, RuleSpec(level="category", min_support=0.01, min_confidence=0.05, max_len=2))
    rule = result.rules.iloc[0]
    spec = rule_audience(rule["antecedents"], rule["consequents"], "category", start, span_end).to_json()
    bought = lines[lines["category"] == rule["antecedents"]]["member_id"].dropna()
    all_done = orders_[orders_["status"] == "completed"][["order_id", "member_id"]]
    ever = items.merge(all_done, on="order_id").merge(warehouse.frame("products")[["product_id", "category"]],
                                                       on="product_id")
    never = set(ever[ever["category"] == rule["consequents"]]["member_id"].dropna())
    expected = len(set(bought) - never)
    assert audience_size(warehouse.engine, spec) == expected
    hostile = {**spec, "bought_all": ["x'); DROP TABLE orders; --"]}
    assert audience_size(warehouse.engine, hostile) == 0


def test_command_line_prints_one_row_per_rule(duck_warehouse: Warehouse) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "analytics", "rules", "--url", duck_warehouse.url, "--level", "category",
         "--min-support", "0.01", "--min-confidence", "0.1", "--max-len", "2"],
        cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    header = done.stdout.splitlines()[0]
    assert header == "antecedents,consequents,support,confidence,lift,leverage,conviction,zhangs_metric"
    assert len(done.stdout.splitlines()) > 1
    bad = subprocess.run([sys.executable, "-m", "analytics", "rules", "--url", duck_warehouse.url,
                          "--min-support", "0"], cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=120)
    assert bad.returncode == 2 and "minimum support must be above 0" in bad.stderr


def test_imported_baskets_are_mined_like_orders(tmp_path) -> None:
    from analytics.importers import ImportOptions
    from analytics.storage.warehouse import open_warehouse

    url = f"duckdb:///{tmp_path / 'baskets.duckdb'}"
    import_file(url, "baskets", need(GROCERIES), ImportOptions(basket_date=date(2026, 1, 15)))
    engine = open_warehouse(url)
    try:
        baskets = load_baskets(engine, Filters(date(2026, 1, 1), date(2026, 1, 31)), "product")
    finally:
        engine.dispose()
    spec = RuleSpec(min_support=0.001, min_confidence=0.5, max_len=10)
    from_warehouse = mine_rules(baskets, spec).rules
    from_file = mine_rules(Baskets.from_lists(groceries()), spec).rules
    assert baskets.count == 9_835 and len(from_warehouse) == 5_668
    pd.testing.assert_frame_equal(from_warehouse.sort_values(["antecedents", "consequents"], ignore_index=True),
                                  from_file.sort_values(["antecedents", "consequents"], ignore_index=True))


def test_basket_rules_page_reads_back_the_rules_and_computes_only_the_open_tab(warehouse: Warehouse,
                                                                              monkeypatch) -> None:
    """Under AppTest on DuckDB and PostgreSQL: the cards equal mine_rules for the page's settings; the
    bought-together table is the default tab; comparing two tiers and a rule's cross-sell audience are computed
    only when their tab is opened, and then equal compare_rules and the audience's member count."""
    from tests.conftest import default_filters, open_page

    at = open_page(warehouse.url, "pages/basket_rules.py", monkeypatch)
    filters = default_filters(warehouse)
    spec = RuleSpec(level="subcategory", min_support=at.number_input(key="rules_support").value / 100,
                    min_confidence=at.number_input(key="rules_confidence").value / 100,
                    min_lift=at.number_input(key="rules_lift").value, max_len=int(at.number_input(key="rules_max_len")
                                                                                   .value))
    baskets = load_baskets(warehouse.engine, filters, "subcategory")
    mined = mine_rules(baskets, spec)
    cards = {m.label: m.value for m in at.metric}
    assert cards["Baskets"] == f"{baskets.count:,}" and cards["Rules"] == f"{len(mined.rules):,}"
    item = at.selectbox(key="rules_lookup").value
    together = bought_together(baskets, item)
    shown = next(df.value for df in at.dataframe if "below_chance" in df.value.columns)
    assert shown["baskets"].tolist() == together["baskets"].tolist()
    assert not at.get("selectbox") or not any(s.key == "rules_compare_first" for s in at.selectbox)
    assert not any(m.value.endswith("the cross-sell audience.") for m in at.markdown)

    at.session_state["rules_tab"] = "Compare two segments"
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    first, second = at.selectbox(key="rules_compare_first").value, at.selectbox(key="rules_compare_second").value
    pair = [mine_rules(load_baskets(warehouse.engine, Filters(filters.start, filters.end, tiers=(tier,)),
                                    "subcategory"), spec).rules for tier in (first, second)]
    compared = compare_rules(*pair).head(20)
    table = next(df.value for df in at.dataframe if "lift_difference" in df.value.columns)
    assert np.allclose(table["lift_difference"].to_numpy(float), compared["lift_difference"].to_numpy(float),
                       equal_nan=True)

    at.session_state["rules_tab"] = "Act on a rule"
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    rule = mined.rules.iloc[at.selectbox(key="rules_act").value]
    audience = rule_audience(rule["antecedents"], rule["consequents"], "subcategory", filters.start, filters.end)
    members = member_count(warehouse.engine, audience.member_ids())
    assert any(m.value.startswith(f"**{members:,} members** bought") for m in at.markdown)
