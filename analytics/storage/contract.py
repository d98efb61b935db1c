"""The warehouse contract: the tables every MemberLens analysis reads.

This module is the single definition of the warehouse. The demo generator creates these tables,
the importers load into them, the schema check compares a live warehouse against them and every
query builds on the `Table` objects below, so a column is named in exactly one place.

Types are chosen to be portable between DuckDB and PostgreSQL (and sensible on Trino, Snowflake,
BigQuery): identifiers are text so a shop's own ids (stock codes, invoice numbers such as
``C536379``) survive unchanged; money is ``NUMERIC(14, 2)`` in the shop currency; timestamps carry
no time zone and are the shop's local time.

Everything else MemberLens needs to know about a table is declared on it, once, through SQLAlchemy's
``info`` dictionaries, and read through the functions at the end of this module: each table's key, the
timestamp that dates its rows, how it is best stored (sort key), whether MemberLens cannot work without it
and what it holds in words; each column's reference to another table, its allowed values (codes) and
whether it records something that happened (so it cannot lie in the future). The data-quality checks, the
schema check and the table overview derive from these declarations instead of keeping their own lists.

Primary keys are declared on the four entity tables; the PostgreSQL demo load makes every other table's key
its primary key once the rows are in (DuckDB would build a large index for each). References are declared
as ``info`` rather than ``ForeignKey``: a foreign key would become a constraint in the tables MemberLens
creates, and analytic warehouses rarely enforce them (an import brings orders before or without their members).
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

from analytics.i18n import N_

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

def _info(**facts: object) -> dict[str, object]:
    return facts


members = Table(
    "members",
    metadata,
    Column("member_id", String, primary_key=True),
    Column("registered_at", DateTime, nullable=False, info=_info(happened=True)),
    Column("name", String),
    Column("phone", String),
    Column("email", String),
    Column("gender", String),
    Column("birth_date", Date, info=_info(happened=True)),
    Column("city", String),
    Column("region", String),
    Column("acquisition_channel", String),
    Column("tier", String, info=_info(allowed=TIERS)),
    Column("points_balance", Integer),
    Column("consent_email", Boolean),
    Column("consent_sms", Boolean),
    Column("consent_push", Boolean),
    info=_info(key=("member_id",), time_column="registered_at", core=True, holds="members"),
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
    info=_info(key=("product_id",), core=True, holds="a product catalogue"),
)

orders = Table(
    "orders",
    metadata,
    Column("order_id", String, primary_key=True),
    Column("member_id", String, info=_info(references="members.member_id")),  # null = guest order
    Column("ordered_at", DateTime, nullable=False, info=_info(happened=True)),
    Column("channel", String),
    Column("status", String, nullable=False, info=_info(allowed=ORDER_STATUSES)),
    Column("gross_amount", Money),
    Column("discount_amount", Money),
    Column("net_amount", Money),
    Column("points_earned", Integer),
    Column("points_redeemed", Integer),
    Column("campaign_id", String, info=_info(references="campaigns.campaign_id")),
    info=_info(key=("order_id",), time_column="ordered_at", sort_key=("ordered_at",), core=True, holds="orders"),
)

order_items = Table(
    "order_items",
    metadata,
    Column("order_id", String, nullable=False, info=_info(references="orders.order_id")),
    Column("line_no", SmallInteger, nullable=False),
    Column("product_id", String, nullable=False, info=_info(references="products.product_id")),
    Column("quantity", Integer),
    Column("unit_price", Money),
    Column("line_amount", Money),
    info=_info(key=("order_id", "line_no"), core=True, holds="order lines"),
)

events = Table(
    "events",
    metadata,
    Column("event_id", String, nullable=False),
    Column("member_id", String, info=_info(references="members.member_id")),  # null = anonymous visitor
    Column("session_id", String),
    Column("occurred_at", DateTime, nullable=False, info=_info(happened=True)),
    Column("event_type", String, nullable=False, info=_info(allowed=EVENT_TYPES)),
    Column("page", String),
    Column("product_id", String, info=_info(references="products.product_id")),
    Column("device", String),
    Column("source", String),
    info=_info(key=("event_id",), time_column="occurred_at", sort_key=("event_type", "occurred_at"),
               holds="a clickstream"),
)

points_ledger = Table(
    "points_ledger",
    metadata,
    Column("entry_id", String, nullable=False),
    Column("member_id", String, nullable=False, info=_info(references="members.member_id")),
    Column("occurred_at", DateTime, nullable=False, info=_info(happened=True)),
    Column("delta", Integer, nullable=False),
    Column("reason", String, nullable=False, info=_info(allowed=LEDGER_REASONS)),
    Column("order_id", String, info=_info(references="orders.order_id")),
    info=_info(key=("entry_id",), time_column="occurred_at", sort_key=("occurred_at",), holds="a points programme"),
)

tier_changes = Table(
    "tier_changes",
    metadata,
    Column("member_id", String, nullable=False, info=_info(references="members.member_id")),
    Column("changed_at", DateTime, nullable=False, info=_info(happened=True)),
    Column("from_tier", String, info=_info(allowed=TIERS)),
    Column("to_tier", String, nullable=False, info=_info(allowed=TIERS)),
    info=_info(time_column="changed_at", sort_key=("changed_at",), holds="a tier history",
               slow=N_("Tiers change at monthly evaluations")),
)

campaigns = Table(
    "campaigns",
    metadata,
    Column("campaign_id", String, primary_key=True),
    Column("name", String),
    Column("type", String, info=_info(allowed=CAMPAIGN_TYPES)),
    Column("channel", String, info=_info(allowed=CAMPAIGN_CHANNELS)),
    Column("start_at", DateTime),  # planned ahead: may lie in the future
    Column("end_at", DateTime),
    Column("holdout_pct", Numeric(5, 2)),
    Column("coupon_value", Money),
    info=_info(key=("campaign_id",), time_column="start_at", holds="campaigns",
               slow=N_("Campaigns start every few weeks")),
)

campaign_members = Table(
    "campaign_members",
    metadata,
    Column("campaign_id", String, nullable=False, info=_info(references="campaigns.campaign_id")),
    Column("member_id", String, nullable=False, info=_info(references="members.member_id")),
    Column("arm", String, nullable=False, info=_info(allowed=ARMS)),
    Column("sent_at", DateTime, info=_info(happened=True)),
    Column("opened_at", DateTime, info=_info(happened=True)),
    Column("clicked_at", DateTime, info=_info(happened=True)),
    Column("converted_order_id", String, info=_info(references="orders.order_id")),
    info=_info(key=("campaign_id", "member_id"), time_column="sent_at", sort_key=("campaign_id", "sent_at"),
               holds="campaign audiences", slow=N_("Campaigns are sent every few weeks")),
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
SORT_KEYS: dict[str, tuple[str, ...]] = {t.name: t.info["sort_key"] for t in WAREHOUSE_TABLES if "sort_key" in t.info}

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


# --- what the declarations say -------------------------------------------------------------------------------------

TABLE_BY_NAME: dict[str, Table] = {t.name: t for t in WAREHOUSE_TABLES}


def table_key(table: Table) -> tuple[str, ...]:
    """The columns that identify a row (empty for tables without a key, such as tier changes)."""
    return tuple(table.info.get("key", ()))


def time_column(table: Table) -> str | None:
    """The timestamp that dates the table's rows (freshness, coverage), if it has one."""
    return table.info.get("time_column")


def is_core(table: Table) -> bool:
    """Whether MemberLens cannot work without rows in this table (members, products, orders, order lines)."""
    return bool(table.info.get("core"))


def holds(table: Table) -> str:
    """What the table holds, in words: "a product catalogue", "a clickstream" (English; the quality checks write
    their sentences about it in the reader's language)."""
    return str(table.info["holds"])


def slow_reason(table: Table) -> str | None:
    """Why the table naturally lags (monthly or campaign by campaign), if it does (in English; ``_()`` translates
    it)."""
    return table.info.get("slow")


def references(table: Table) -> list[tuple[str, tuple[str, str]]]:
    """``(column, (table, column))`` for each column that names a row of another table."""
    found = []
    for column in table.columns:
        target = column.info.get("references")
        if target:
            parent, parent_column = target.split(".")
            found.append((column.name, (parent, parent_column)))
    return found


def allowed_values(table: Table) -> list[tuple[str, tuple[str, ...]]]:
    """``(column, codes)`` for each column whose values come from a fixed list."""
    return [(c.name, tuple(c.info["allowed"])) for c in table.columns if "allowed" in c.info]


def happened_columns(table: Table) -> tuple[str, ...]:
    """Timestamps of things that happened (so never after today); planned ones, such as campaign dates, are not."""
    return tuple(c.name for c in table.columns if c.info.get("happened"))


#: The timestamp that dates each contract table's rows.
TABLE_TIME_COLUMNS: dict[str, str] = {t.name: c for t in WAREHOUSE_TABLES if (c := time_column(t))}
