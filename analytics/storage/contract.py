"""The warehouse contract: the tables every MemberLens analysis reads.

This module is the single definition of the warehouse. The demo generator creates these tables,
the importers load into them, the schema check compares a live warehouse against them and every
query builds on the `Table` objects below, so a column is named in exactly one place.

Types are chosen to be portable between DuckDB and PostgreSQL (and sensible on Trino, Snowflake,
BigQuery): identifiers are text so a shop's own ids (stock codes, invoice numbers such as
``C536379``) survive unchanged; money is ``NUMERIC(14, 2)`` in the shop currency; timestamps carry
no time zone and are the shop's local time.

Primary keys are declared on the four entity tables. Foreign keys are documented (below, in the
column comments and README), not declared: analytic warehouses rarely enforce them.
Secondary indexes are created on PostgreSQL only; DuckDB relies on its zone maps, which work best
when fact tables are stored in time order (the generator does so).
"""

from __future__ import annotations

from sqlalchemy import (
    Boolean,
    Column,
    Date,
    DateTime,
    Index,
    Integer,
    MetaData,
    Numeric,
    SmallInteger,
    String,
    Table,
)

metadata = MetaData()

Money = Numeric(14, 2)

TIERS: tuple[str, ...] = ("basic", "silver", "gold", "diamond")
ORDER_STATUSES: tuple[str, ...] = ("completed", "cancelled", "returned")
EVENT_TYPES: tuple[str, ...] = (
    "session_start",
    "page_view",
    "search",
    "product_view",
    "add_to_cart",
    "checkout",
    "purchase",
)
LEDGER_REASONS: tuple[str, ...] = ("earn", "redeem", "expire", "bonus")
CAMPAIGN_TYPES: tuple[str, ...] = (
    "coupon",
    "flash_sale",
    "full_reduction",
    "member_day",
    "birthday",
    "win_back",
)
CAMPAIGN_CHANNELS: tuple[str, ...] = ("email", "sms", "push")
ARMS: tuple[str, ...] = ("treatment", "control")

#: MemberLens's own log of imported files (see analytics.importers.loading): not part of the
#: contract, but MemberLens's to drop when the warehouse is rebuilt.
IMPORT_LOG_TABLE = "memberlens_imports"

#: Columns holding personal data; masked wherever member rows are shown or exported.
PII_COLUMNS: dict[str, tuple[str, ...]] = {"members": ("name", "phone", "email")}

members = Table(
    "members",
    metadata,
    Column("member_id", String, primary_key=True),
    Column("registered_at", DateTime, nullable=False),
    Column("name", String),
    Column("phone", String),
    Column("email", String),
    Column("gender", String),
    Column("birth_date", Date),
    Column("city", String),
    Column("region", String),
    Column("acquisition_channel", String),
    Column("tier", String),
    Column("points_balance", Integer),
    Column("consent_email", Boolean),
    Column("consent_sms", Boolean),
    Column("consent_push", Boolean),
)

products = Table(
    "products",
    metadata,
    Column("product_id", String, primary_key=True),
    Column("name", String),
    Column("category", String),
    Column("subcategory", String),
    Column("brand", String),
    Column("list_price", Money),
)

orders = Table(
    "orders",
    metadata,
    Column("order_id", String, primary_key=True),
    Column("member_id", String),  # null = guest order
    Column("ordered_at", DateTime, nullable=False),
    Column("channel", String),
    Column("status", String, nullable=False),
    Column("gross_amount", Money),
    Column("discount_amount", Money),
    Column("net_amount", Money),
    Column("points_earned", Integer),
    Column("points_redeemed", Integer),
    Column("campaign_id", String),
)

order_items = Table(
    "order_items",
    metadata,
    Column("order_id", String, nullable=False),
    Column("line_no", SmallInteger, nullable=False),
    Column("product_id", String, nullable=False),
    Column("quantity", Integer),
    Column("unit_price", Money),
    Column("line_amount", Money),
)

events = Table(
    "events",
    metadata,
    Column("event_id", String, nullable=False),
    Column("member_id", String),  # null = anonymous visitor
    Column("session_id", String),
    Column("occurred_at", DateTime, nullable=False),
    Column("event_type", String, nullable=False),
    Column("page", String),
    Column("product_id", String),
    Column("device", String),
    Column("source", String),
)

points_ledger = Table(
    "points_ledger",
    metadata,
    Column("entry_id", String, nullable=False),
    Column("member_id", String, nullable=False),
    Column("occurred_at", DateTime, nullable=False),
    Column("delta", Integer, nullable=False),
    Column("reason", String, nullable=False),
    Column("order_id", String),
)

tier_changes = Table(
    "tier_changes",
    metadata,
    Column("member_id", String, nullable=False),
    Column("changed_at", DateTime, nullable=False),
    Column("from_tier", String),
    Column("to_tier", String, nullable=False),
)

campaigns = Table(
    "campaigns",
    metadata,
    Column("campaign_id", String, primary_key=True),
    Column("name", String),
    Column("type", String),
    Column("channel", String),
    Column("start_at", DateTime),
    Column("end_at", DateTime),
    Column("holdout_pct", Numeric(5, 2)),
    Column("coupon_value", Money),
)

campaign_members = Table(
    "campaign_members",
    metadata,
    Column("campaign_id", String, nullable=False),
    Column("member_id", String, nullable=False),
    Column("arm", String, nullable=False),
    Column("sent_at", DateTime),
    Column("opened_at", DateTime),
    Column("clicked_at", DateTime),
    Column("converted_order_id", String),
)

#: Tables in load order (entities before the facts that refer to them).
WAREHOUSE_TABLES: tuple[Table, ...] = (
    members,
    products,
    campaigns,
    orders,
    order_items,
    events,
    points_ledger,
    tier_changes,
    campaign_members,
)

#: How each fact table is best stored (its sort or cluster key). Column stores skip whole blocks
#: of rows outside a query's range using per-block min/max, so facts are kept in time order; events
#: lead with their type, as a ClickHouse sort key would, because KPIs read one event type at a time.
SORT_KEYS: dict[str, tuple[str, ...]] = {
    "orders": ("ordered_at",),
    "events": ("event_type", "occurred_at"),
    "points_ledger": ("occurred_at",),
    "tier_changes": ("changed_at",),
    "campaign_members": ("campaign_id", "sent_at"),
}

# Secondary indexes for row stores (PostgreSQL). Column stores such as DuckDB skip them.
for _name, _table, _cols in (
    ("ix_orders_ordered_at", orders, ("ordered_at",)),
    ("ix_orders_member_id", orders, ("member_id",)),
    ("ix_order_items_order_id", order_items, ("order_id",)),
    ("ix_events_occurred_at", events, ("occurred_at",)),
    ("ix_events_type_occurred_at", events, ("event_type", "occurred_at")),
    ("ix_events_session_id", events, ("session_id",)),
    ("ix_points_ledger_member_id", points_ledger, ("member_id",)),
    ("ix_points_ledger_occurred_at", points_ledger, ("occurred_at",)),
    ("ix_campaign_members_campaign_id", campaign_members, ("campaign_id",)),
    ("ix_members_registered_at", members, ("registered_at",)),
):
    Index(_name, *(_table.c[c] for c in _cols)).ddl_if(dialect="postgresql")


def expected_columns() -> dict[str, list[str]]:
    """Every contract table with its column names, in declaration order."""
    return {t.name: [c.name for c in t.columns] for t in WAREHOUSE_TABLES}
