"""The demo generator: consistency invariants, determinism, bulk-load safety and believability."""

from __future__ import annotations

from datetime import date

import numpy as np
import pandas as pd
import pytest

from analytics.programme import POINTS_EARN_RATE, TIER_THRESHOLDS
from analytics.storage.contract import TIERS, WAREHOUSE_TABLES
from analytics.storage.warehouse import WarehouseError, check_schema, open_warehouse
from analytics.synthetic import DemoSpec, generate_warehouse

# --- referential integrity -----------------------------------------------------------------------

FOREIGN_KEYS = [
    ("orders", "member_id", "members", "member_id"),
    ("orders", "campaign_id", "campaigns", "campaign_id"),
    ("order_items", "order_id", "orders", "order_id"),
    ("order_items", "product_id", "products", "product_id"),
    ("events", "member_id", "members", "member_id"),
    ("events", "product_id", "products", "product_id"),
    ("points_ledger", "member_id", "members", "member_id"),
    ("points_ledger", "order_id", "orders", "order_id"),
    ("tier_changes", "member_id", "members", "member_id"),
    ("campaign_members", "campaign_id", "campaigns", "campaign_id"),
    ("campaign_members", "member_id", "members", "member_id"),
    ("campaign_members", "converted_order_id", "orders", "order_id"),
]


def test_schema_matches_the_contract(warehouse) -> None:
    assert check_schema(warehouse.engine).ok


@pytest.mark.parametrize(("child", "column", "parent", "key"), FOREIGN_KEYS)
def test_every_foreign_key_resolves(warehouse, child: str, column: str, parent: str, key: str) -> None:
    values = warehouse.frame(child)[column].dropna()
    assert len(values) > 0
    missing = set(values) - set(warehouse.frame(parent)[key])
    assert not missing, f"{child}.{column} values not in {parent}: {sorted(missing)[:5]}"


@pytest.mark.parametrize(("table", "key"), [("members", ["member_id"]), ("products", ["product_id"]),
                                            ("orders", ["order_id"]), ("order_items", ["order_id", "line_no"]),
                                            ("events", ["event_id"]), ("points_ledger", ["entry_id"]),
                                            ("campaign_members", ["campaign_id", "member_id"])])
def test_keys_are_unique(warehouse, table: str, key: list[str]) -> None:
    assert not warehouse.frame(table).duplicated(key).any()


# --- money ---------------------------------------------------------------------------------------

def test_order_net_is_lines_minus_discount(warehouse) -> None:
    orders = warehouse.frame("orders").set_index("order_id")
    lines = warehouse.frame("order_items")
    assert (lines["line_amount"] == (lines["quantity"] * lines["unit_price"]).round(2)).all()
    line_total = lines.groupby("order_id")["line_amount"].sum().round(2)
    assert set(line_total.index) == set(orders.index)  # no order without lines
    assert np.allclose(orders.loc[line_total.index, "gross_amount"], line_total, atol=0.005)
    assert np.allclose(orders["net_amount"], orders["gross_amount"] - orders["discount_amount"], atol=0.005)
    assert (orders["discount_amount"] >= 0).all() and (orders["net_amount"] >= 0).all()


# --- points and tiers ----------------------------------------------------------------------------

def test_points_balance_is_the_ledger_sum_and_never_negative(warehouse) -> None:
    members = warehouse.frame("members").set_index("member_id")
    ledger = warehouse.frame("points_ledger")
    balance = ledger.groupby("member_id")["delta"].sum()
    assert (members["points_balance"] == balance.reindex(members.index, fill_value=0)).all()
    # credits before debits at equal timestamps: a redemption spends lots earned earlier
    ordered = ledger.sort_values(["member_id", "occurred_at", "delta"], ascending=[True, True, False])
    running = ordered.groupby("member_id")["delta"].cumsum()
    assert running.min() >= 0
    assert set(ledger["reason"]) == {"earn", "redeem", "expire", "bonus"}


def test_orders_carry_the_points_of_their_ledger_rows(warehouse) -> None:
    orders = warehouse.frame("orders").set_index("order_id")
    ledger = warehouse.frame("points_ledger")
    earned = ledger[ledger["reason"] == "earn"].groupby("order_id")["delta"].sum()
    redeemed = -ledger[ledger["reason"] == "redeem"].groupby("order_id")["delta"].sum()
    assert (orders["points_earned"] == earned.reindex(orders.index, fill_value=0)).all()
    assert (orders["points_redeemed"] == redeemed.reindex(orders.index, fill_value=0)).all()
    assert (orders["points_redeemed"] / 100 <= 0.3 * orders["gross_amount"] + 1e-9).all()  # the redemption cap
    assert (orders["points_redeemed"] % 100 == 0).all()  # redeemed in whole hundreds
    not_completed = orders[orders["status"] != "completed"]
    assert (not_completed["points_earned"] == 0).all() and (not_completed["points_redeemed"] == 0).all()
    assert orders.loc[orders["member_id"].isna(), "points_earned"].eq(0).all()
    # earning follows the programme's rate for the member's tier, never more than the best rate
    paid = orders[orders["points_earned"] > 0]
    assert (paid["points_earned"] <= np.floor(paid["gross_amount"] * max(POINTS_EARN_RATE.values()))).all()
    assert (paid["points_earned"] >= np.floor(paid["gross_amount"] * min(POINTS_EARN_RATE.values())) - 1).all()


def test_tier_history_agrees_with_current_tier_and_with_spend(warehouse) -> None:
    members = warehouse.frame("members").set_index("member_id")
    changes = warehouse.frame("tier_changes").sort_values(["member_id", "changed_at"])
    assert set(members["tier"]) <= set(TIERS)
    # the chain of changes is unbroken and ends at the current tier
    prev = changes.groupby("member_id")["to_tier"].shift().fillna("basic")
    assert (changes["from_tier"] == prev).all()
    assert (changes["from_tier"] != changes["to_tier"]).all()
    last = changes.groupby("member_id")["to_tier"].last()
    assert (members["tier"] == last.reindex(members.index, fill_value="basic")).all()
    # every change is what the programme's rule gives for the 12 calendar months before it
    orders = warehouse.frame("orders")
    done = orders[(orders["status"] == "completed") & orders["member_id"].notna()]
    thresholds = pd.Series(TIER_THRESHOLDS)
    sample = changes.sample(min(len(changes), 300), random_state=1)
    for row in sample.itertuples():
        window_start = row.changed_at - pd.DateOffset(months=12)
        spend = done[(done["member_id"] == row.member_id) & (done["ordered_at"] >= window_start)
                     & (done["ordered_at"] < row.changed_at)]["gross_amount"].sum()
        assert thresholds[thresholds <= spend + 1e-6].index[-1] == row.to_tier, (row, spend)
    assert (changes["changed_at"].dt.day == 1).all() and (changes["changed_at"].dt.hour == 0).all()


# --- campaigns -----------------------------------------------------------------------------------

def test_control_members_were_never_sent_and_audiences_consented(warehouse) -> None:
    cm = warehouse.frame("campaign_members").merge(warehouse.frame("campaigns")[["campaign_id", "channel"]])
    control = cm[cm["arm"] == "control"]
    treatment = cm[cm["arm"] == "treatment"]
    assert len(control) > 0 and len(treatment) > len(control)
    assert control[["sent_at", "opened_at", "clicked_at"]].isna().all().all()
    assert treatment["sent_at"].notna().all()
    members = warehouse.frame("members").set_index("member_id")
    for channel, consent, contact in (("email", "consent_email", "email"), ("sms", "consent_sms", "phone"),
                                      ("push", "consent_push", None)):
        audience = members.loc[cm.loc[cm["channel"] == channel, "member_id"]]
        assert audience[consent].all(), channel
        if contact:
            assert audience[contact].notna().all(), channel
    # no one was targeted before registering, and clicks follow opens follow sends
    reg = members.loc[cm["member_id"], "registered_at"].to_numpy()
    starts = cm.merge(warehouse.frame("campaigns")[["campaign_id", "start_at"]])["start_at"].to_numpy()
    assert (reg < starts).all()
    opened = treatment.dropna(subset=["opened_at"])
    assert (opened["opened_at"] >= opened["sent_at"]).all()
    clicked = treatment.dropna(subset=["clicked_at", "opened_at"])
    assert (clicked["clicked_at"] >= clicked["opened_at"]).all()


def test_conversions_are_completed_orders_of_the_member_inside_the_window(warehouse) -> None:
    cm = warehouse.frame("campaign_members").dropna(subset=["converted_order_id"])
    campaigns = warehouse.frame("campaigns")
    orders = warehouse.frame("orders").set_index("order_id")
    joined = cm.merge(campaigns[["campaign_id", "start_at", "end_at"]])
    o = orders.loc[joined["converted_order_id"]]
    assert (o["member_id"].to_numpy() == joined["member_id"].to_numpy()).all()
    assert (o["status"] == "completed").all()
    assert ((o["ordered_at"].to_numpy() >= joined["start_at"].to_numpy())
            & (o["ordered_at"].to_numpy() <= joined["end_at"].to_numpy())).all()


def test_campaigns_have_a_true_modest_uplift(warehouse) -> None:
    cm = warehouse.frame("campaign_members")
    rate = cm.assign(converted=cm["converted_order_id"].notna()).groupby("arm")["converted"].mean()
    uplift = rate["treatment"] / rate["control"] - 1
    assert 0.03 < uplift < 0.6, rate


# --- behaviour that makes the demo believable ------------------------------------------------------

def test_orders_follow_registration_and_the_calendar(warehouse) -> None:
    orders = warehouse.frame("orders")
    members = warehouse.frame("members").set_index("member_id")
    member_orders = orders.dropna(subset=["member_id"])
    registered = members.loc[member_orders["member_id"], "registered_at"].to_numpy()
    assert (member_orders["ordered_at"].to_numpy() > registered).all()
    daily = orders.groupby(orders["ordered_at"].dt.date)["order_id"].count()
    assert daily[date(2025, 11, 11)] > 3 * daily.median()  # 11.11
    assert daily[date(2025, 6, 18)] > 2 * daily.median()  # 6.18
    weekday = orders["ordered_at"].dt.day_of_week
    assert (weekday >= 5).mean() > 2 / 7  # weekends are busier than weekdays
    night = orders["ordered_at"].dt.hour.isin([3, 4, 5]).mean()
    evening = orders["ordered_at"].dt.hour.isin([20, 21, 22]).mean()
    assert evening > 5 * night
    year1 = orders["ordered_at"] < pd.Timestamp("2025-11-16")
    assert (~year1).sum() > 1.1 * year1.sum()  # the shop grows


def test_sessions_drop_off_step_by_step(warehouse) -> None:
    events = warehouse.frame("events")
    reached = events.groupby("event_type")["session_id"].nunique()
    steps = ["session_start", "product_view", "add_to_cart", "checkout", "purchase"]
    counts = [reached[s] for s in steps]
    assert counts == sorted(counts, reverse=True) and counts[-1] > 0
    assert reached["session_start"] == (events["event_type"] == "session_start").sum()  # one start per session
    purchases = events[events["event_type"] == "purchase"]
    assert purchases["session_id"].is_unique
    # a purchase event lands exactly on its app order's timestamp
    app_orders = warehouse.frame("orders").query("channel == 'app'")
    member_times = set(zip(app_orders["member_id"].fillna(""), app_orders["ordered_at"], strict=True))
    sample = purchases.head(200)
    keys = zip(sample["member_id"].fillna(""), sample["occurred_at"], strict=True)
    assert all(key in member_times for key in keys)


def test_catalogue_has_a_long_tail_and_planted_cross_sell(warehouse) -> None:
    lines = warehouse.frame("order_items")
    sales = lines.groupby("product_id")["quantity"].sum().sort_values(ascending=False)
    assert sales.head(len(sales) // 10).sum() > 0.35 * sales.sum()  # top 10% of products
    products = warehouse.frame("products").set_index("product_id")
    with_sub = lines.assign(sub=products.loc[lines["product_id"], "subcategory"].to_numpy())
    baskets = with_sub.groupby("order_id")["sub"].agg(set)
    has_phone = baskets.map(lambda s: "Phones" in s)
    has_case = baskets.map(lambda s: "Phone Accessories" in s)
    lift = (has_phone & has_case).mean() / (has_phone.mean() * has_case.mean())
    assert lift > 3


def test_personas_differ_in_value(warehouse) -> None:
    orders = warehouse.frame("orders").query("status == 'completed'")
    personas = warehouse.frame("demo_personas")
    spend = orders.groupby("member_id")["net_amount"].sum()
    by_persona = personas.assign(spend=personas["member_id"].map(spend).fillna(0)).groupby("persona")["spend"].mean()
    assert by_persona.idxmax() == "vip_loyalist"
    assert by_persona["vip_loyalist"] > 3 * by_persona["occasional_buyer"]


# --- determinism and safety ------------------------------------------------------------------------

def _fingerprint(url: str) -> dict[str, int]:
    engine = open_warehouse(url)
    try:
        from sqlalchemy import select

        from analytics.storage.db import read_frame

        return {t.name: int(pd.util.hash_pandas_object(read_frame(engine, select(t)).astype(str), index=False).sum())
                for t in WAREHOUSE_TABLES}
    finally:
        engine.dispose()


def test_same_seed_same_data_other_seed_other_data(tmp_path) -> None:
    spec = DemoSpec(members=300, seed=11)
    urls = [f"duckdb:///{tmp_path / name}.duckdb" for name in ("a", "b", "c")]
    generate_warehouse(urls[0], spec)
    generate_warehouse(urls[1], spec)
    generate_warehouse(urls[2], DemoSpec(members=300, seed=12))
    first, second, other = (_fingerprint(u) for u in urls)
    assert first == second
    assert all(first[t] != other[t] for t in ("members", "orders", "events"))


def test_same_data_in_duckdb_and_postgresql(duck_warehouse, pg_warehouse) -> None:
    for table in WAREHOUSE_TABLES:
        duck, pg = duck_warehouse.frame(table.name), pg_warehouse.frame(table.name)
        assert len(duck) == len(pg), table.name
        key = duck.columns[0]
        pd.testing.assert_frame_equal(duck.sort_values(list(duck.columns[:2])).reset_index(drop=True),
                                      pg.sort_values(list(pg.columns[:2])).reset_index(drop=True),
                                      check_dtype=False, obj=f"{table.name} (sorted by {key})")


def test_existing_warehouse_is_never_overwritten_by_accident(tmp_path) -> None:
    url = f"duckdb:///{tmp_path / 'w.duckdb'}"
    generate_warehouse(url, DemoSpec(members=50, seed=1))
    with pytest.raises(WarehouseError, match="already holds members"):
        generate_warehouse(url, DemoSpec(members=60, seed=1))
    generate_warehouse(url, DemoSpec(members=60, seed=1), replace=True)
    engine = open_warehouse(url)
    from sqlalchemy import text

    with engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM members")).scalar() == 60
    engine.dispose()


def test_a_failed_build_leaves_nothing_behind(tmp_path) -> None:
    target = tmp_path / "w.duckdb"

    def explode(fraction: float, _message: str) -> None:
        if fraction > 0.5:
            raise RuntimeError("power cut")

    with pytest.raises(RuntimeError, match="power cut"):
        generate_warehouse(f"duckdb:///{target}", DemoSpec(members=60_000, seed=1), progress=explode)
    assert list(tmp_path.iterdir()) == []


def test_a_failed_postgres_build_leaves_nothing_behind(postgres_database) -> None:
    from sqlalchemy import create_engine, inspect

    def explode(fraction: float, _message: str) -> None:
        if fraction > 0.5:
            raise RuntimeError("power cut")

    url = postgres_database  # the session's scratch database (the tiny warehouse may already be in it)
    engine = create_engine(url)
    before = set(inspect(engine).get_table_names())
    with pytest.raises(RuntimeError, match="power cut"):
        generate_warehouse(url, DemoSpec(members=60_000, seed=1), progress=explode, replace=True)
    assert set(inspect(engine).get_table_names()) == before
    engine.dispose()


@pytest.mark.parametrize("members", [0, -5, 20_000_001])
def test_absurd_member_counts_are_refused(members: int) -> None:
    with pytest.raises(ValueError, match="--members"):
        DemoSpec(members=members)


@pytest.mark.parametrize("replace", [False, True])
def test_a_duckdb_file_with_other_tables_is_never_built_over(tmp_path, replace: bool) -> None:
    import duckdb

    path = tmp_path / "mine.duckdb"
    con = duckdb.connect(str(path))
    con.execute("CREATE TABLE my_precious AS SELECT 42 AS answer")
    con.close()
    before = path.read_bytes()
    with pytest.raises(WarehouseError, match="also holds tables MemberLens does not manage \\(my_precious\\)"):
        generate_warehouse(f"duckdb:///{path}", DemoSpec(members=50, seed=1), replace=replace)
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["mine.duckdb"]
