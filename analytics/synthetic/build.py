"""Build the demo warehouse: members in chunks, every table consistent, loaded in bulk.

Members are generated in fixed-size chunks, each from its own random stream derived from the seed
and the chunk number, so the same seed always gives the same warehouse and memory stays bounded
whatever the member count. Products and the campaign calendar are shared by all chunks.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, timedelta
from pathlib import Path

import numpy as np
import pyarrow as pa
from sqlalchemy import Column, Date, Double, MetaData, String, Table

from analytics.errors import InputError
from analytics.i18n import N_, _
from analytics.storage import contract
from analytics.storage.bulkload import BulkLoader, bulk_load
from analytics.synthetic import clickstream as cs
from analytics.synthetic.calendar import DemandCalendar
from analytics.synthetic.campaigns import CHANNELS, Campaign, plan_campaigns, run_campaigns
from analytics.synthetic.catalog import Catalog, build_catalog
from analytics.synthetic.columns import ids, integers, labels, money, timestamps
from analytics.synthetic.loyalty import assign_points, assign_tiers
from analytics.synthetic.people import make_profiles
from analytics.synthetic.personas import ACQUISITION_CHANNELS, CATEGORIES, ORDER_CHANNELS, PERSONA_NAMES, PERSONAS
from analytics.synthetic.shopping import (
    GUEST,
    GUEST_ORDER_SHARE,
    Orders,
    full_reduction_cents,
    guest_orders,
    make_lines,
    make_members,
    member_orders,
    persona_array,
)

#: The demo's last trading day. Fixed, so that the same seed gives the same warehouse on any day.
DEFAULT_END = date(2026, 11, 15)
DEFAULT_DAYS = 730
DEFAULT_MEMBERS = 50_000
DEFAULT_SEED = 42
MAX_MEMBERS = 20_000_000
CHUNK_MEMBERS = 50_000

#: The hidden truth of each demo member: not part of the warehouse contract, read only by tests, benchmarks and the
#: prediction model card (the ceiling any model can reach): persona, buying rate while alive (orders per average
#: day), chance of dropping out after each order, engagement, and the days the member is alive (``alive_until``
#: exclusive; empty when still alive at the end of the window).
demo_personas = Table(
    "demo_personas", MetaData(),
    Column("member_id", String, primary_key=True),
    Column("persona", String, nullable=False),
    Column("rate", Double),
    Column("dropout", Double),
    Column("engagement", Double),
    Column("alive_from", Date),
    Column("alive_until", Date),
)
DEMO_TABLES = (*contract.WAREHOUSE_TABLES, demo_personas)

Progress = Callable[[float, str], None]
#: How far through a chunk each generation step starts (measured shares of the chunk's time).
CHUNK_STEPS = {"members": 0.0, "orders": 0.03, "campaigns": 0.06, "baskets": 0.1, "loyalty": 0.16,
               "sessions": 0.2, "loading": 0.55}
#: Share of the whole build spent generating chunks; the rest writes the tables in sort-key order.
GENERATION_SHARE = 0.65


@dataclass(frozen=True)
class DemoSpec:
    """What to generate: member count, random seed and trading window."""

    members: int = DEFAULT_MEMBERS
    seed: int = DEFAULT_SEED
    end: date = DEFAULT_END
    days: int = DEFAULT_DAYS

    def __post_init__(self) -> None:
        if not isinstance(self.members, int) or self.members < 1:
            raise InputError(f"--members must be a positive whole number, got {self.members!r}.")
        if self.members > MAX_MEMBERS:
            raise InputError(f"--members {self.members:,} is more than the generator supports ({MAX_MEMBERS:,}).")
        if not 28 <= self.days <= 3660:
            raise InputError(f"--days must be between 28 and 3660, got {self.days}.")
        if self.seed < 0:
            raise InputError(f"--seed must be zero or positive, got {self.seed}.")

    @property
    def start(self) -> date:
        return self.end - timedelta(days=self.days - 1)


@dataclass
class BuildSummary:
    spec: DemoSpec
    rows: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0


def generate_warehouse(
    url: str | None, spec: DemoSpec = DemoSpec(), *, replace: bool = False, progress: Progress | None = None,
    parquet_dir: str | Path | None = None,
) -> BuildSummary:
    """Generate the demo warehouse described by ``spec`` into ``url`` (DuckDB file, PostgreSQL or Spark SQL);
    with ``parquet_dir``, as Parquet files there (and Spark tables over them when ``url`` is ``sparksql://``)."""
    began = time.perf_counter()
    report = progress or (lambda _f, _m: None)
    cal = DemandCalendar.build(spec.end, spec.days)
    shared = np.random.default_rng([spec.seed, 0xC47A])
    catalog = build_catalog(shared)
    campaigns = plan_campaigns(shared, cal)
    summary = BuildSummary(spec)
    counters = {"order": 0, "session": 0, "event": 0, "entry": 0}
    n_chunks = -(-spec.members // CHUNK_MEMBERS)
    with bulk_load(url, DEMO_TABLES, sort_by=contract.SORT_KEYS, replace=replace, parquet_dir=parquet_dir) as loader:
        _append(loader, summary, "products", _products_table(catalog))
        _append(loader, summary, "campaigns", _campaigns_table(campaigns, cal))
        for chunk in range(n_chunks):
            first = chunk * CHUNK_MEMBERS
            size = min(CHUNK_MEMBERS, spec.members - first)
            where = _("members {first}–{last} of {members}").format(first=f"{first + 1:,}", last=f"{first + size:,}",
                                                                     members=f"{spec.members:,}")

            def step(done: float, what: str, chunk: int = chunk, where: str = where) -> None:
                report(GENERATION_SHARE * (chunk + done) / n_chunks, f"{_(what)} ({where})")

            rng = np.random.default_rng([spec.seed, chunk])
            tables = build_chunk(rng, first, size, cal, catalog, campaigns, counters, step)
            step(CHUNK_STEPS["loading"], N_("Loading"))
            for name in list(tables):  # each table dropped once loaded: not held while the next chunk is made
                _append(loader, summary, name, tables.pop(name))
        report(GENERATION_SHARE, _("Writing tables in time order"))
    summary.seconds = time.perf_counter() - began
    report(1.0, _("Demo warehouse ready: {members} members, {orders} orders").format(
        members=f"{spec.members:,}", orders=f"{summary.rows.get('orders', 0):,}"))
    return summary


def _dates(cal: DemandCalendar, days: np.ndarray, empty_at: int | None = None) -> pa.Array:
    """Day numbers of the window as dates (empty where a day equals ``empty_at``)."""
    values = np.datetime64(cal.start, "D") + days.astype("timedelta64[D]")
    return pa.array(values, pa.date32(), mask=None if empty_at is None else days == empty_at)


def _append(loader: BulkLoader, summary: BuildSummary, name: str, table: pa.Table) -> None:
    loader.append(name, table)
    summary.rows[name] = summary.rows.get(name, 0) + table.num_rows


def _products_table(catalog: Catalog) -> pa.Table:
    return pa.table({
        "product_id": ids("P", catalog.product_no, 6),
        "name": pa.array(catalog.name),
        "category": labels(CATEGORIES, catalog.category),
        "subcategory": pa.array(catalog.subcategory),
        "brand": pa.array(catalog.brand),
        "list_price": money(catalog.price_cents),
    })


def _campaigns_table(campaigns: list[Campaign], cal: DemandCalendar) -> pa.Table:
    windows = np.array([c.window(cal) for c in campaigns], dtype=np.int64).reshape(-1, 2)
    return pa.table({
        "campaign_id": pa.array([c.campaign_id for c in campaigns], pa.string()),
        "name": pa.array([c.name for c in campaigns], pa.string()),
        "type": pa.array([c.type for c in campaigns], pa.string()),
        "channel": pa.array([c.channel for c in campaigns], pa.string()),
        "start_at": timestamps(cal.start, windows[:, 0]),
        "end_at": timestamps(cal.start, windows[:, 1] - 1),
        "holdout_pct": money(np.array([round(c.holdout_pct * 100) for c in campaigns], dtype=np.int64)),
        "coupon_value": money(np.array([c.coupon_cents for c in campaigns], dtype=np.int64)),
    })


def build_chunk(
    rng: np.random.Generator,
    first_member: int,
    n: int,
    cal: DemandCalendar,
    catalog: Catalog,
    campaigns: list[Campaign],
    counters: dict[str, int],
    step: Callable[[float, str], None] = lambda _done, _what: None,
) -> dict[str, pa.Table]:
    """All rows that concern members ``first_member+1 .. first_member+n`` (plus guests and visitors
    in proportion), as Arrow tables keyed by warehouse table name. ``counters`` carries the running
    id numbers between chunks; ``step`` hears which step is starting."""
    step(CHUNK_STEPS["members"], N_("Creating member profiles"))
    members = make_members(rng, n, cal)
    persona = members.persona
    female = rng.random(n) < persona_array("female_share")[persona]
    lo_age = np.array([p.age_range[0] for p in PERSONAS])[persona]
    hi_age = np.array([p.age_range[1] for p in PERSONAS])[persona]
    age_days = (rng.uniform(lo_age, hi_age + 1) * 365.25).astype(np.int64)
    birth = np.datetime64(cal.start + timedelta(days=cal.days - 1), "D") - age_days.astype("timedelta64[D]")
    birth_known = rng.random(n) >= 0.12
    birth_month = np.where(birth_known, birth.astype("datetime64[M]").astype(np.int64) % 12 + 1, 0)
    birth_day = (birth - birth.astype("datetime64[M]").astype("datetime64[D]")).astype(np.int64) + 1
    profiles = make_profiles(rng, female, age_days < 30 * 365)
    acquisition = (rng.random(n)[:, None] > np.cumsum(np.array([p.acquisition_mix for p in PERSONAS]), axis=1)[persona]
                   ).sum(axis=1).clip(0, len(ACQUISITION_CHANNELS) - 1)
    consent_email = profiles.has_email & (rng.random(n) < 0.45)
    consent_sms = profiles.has_phone & (rng.random(n) < 0.60)
    consent_push = rng.random(n) < 0.15 + 0.5 * members.app_share
    reachable = {"email": consent_email, "sms": consent_sms, "push": consent_push}

    step(CHUNK_STEPS["orders"], N_("Placing orders"))
    organic = member_orders(rng, members, cal)
    organic = organic.take(np.lexsort((organic.t, organic.member)))
    step(CHUNK_STEPS["campaigns"], N_("Running campaigns"))
    cm, incremental = run_campaigns(rng, campaigns, members, reachable, birth_month, organic, cal)
    n_guest = round(GUEST_ORDER_SHARE / (1 - GUEST_ORDER_SHARE) * (organic.n + incremental.n))
    combined = Orders.concat([organic, incremental, guest_orders(rng, n_guest, cal)])
    perm = np.lexsort((combined.t, np.where(combined.member == GUEST, n, combined.member)))
    orders = combined.take(perm)
    new_position = np.empty_like(perm)
    new_position[perm] = np.arange(perm.size)
    cm.converted_order = np.where(cm.converted_order >= 0, new_position[np.maximum(cm.converted_order, 0)], -1)

    step(CHUNK_STEPS["baskets"], N_("Filling baskets"))
    lines = make_lines(rng, catalog, orders, members, cal)
    gross = np.bincount(lines.order, weights=lines.amount_cents, minlength=orders.n).astype(np.int64)
    step(CHUNK_STEPS["loyalty"], N_("Awarding tiers and points"))
    tiers = assign_tiers(members, orders, gross, cal)
    points = assign_points(rng, members, orders, gross, tiers.at_order, (birth_month, birth_day), cal)
    coupon = np.where(orders.campaign >= 0, np.minimum(orders.coupon_cents, gross // 2), 0)
    discount = np.minimum(full_reduction_cents(cal, orders, gross) + coupon + points.redeemed, gross)
    message_channel = np.array([CHANNELS.index(c.channel) for c in campaigns] + [-1])[orders.campaign]
    order_source = np.where(message_channel >= 0, cs.SOURCES.index("email") + message_channel, -1)
    step(CHUNK_STEPS["sessions"], N_("Recording app sessions"))
    events = cs.make_events(rng, catalog, members, orders, lines, order_source, cal)

    member_no = first_member + np.arange(n) + 1
    member_ids = ids("M", member_no, 8)
    base_order = counters["order"]
    order_ids = ids("O", base_order + np.arange(orders.n) + 1, 10)
    counters["order"] += orders.n
    guest = orders.member == GUEST
    order_member = ids("M", first_member + np.maximum(orders.member, 0) + 1, 8, missing=guest)
    ledger_no = counters["entry"] + np.arange(points.member.size) + 1
    counters["entry"] += points.member.size
    session_no = counters["session"] + events.session + 1
    counters["session"] += events.n_sessions
    event_no = counters["event"] + np.arange(events.t.size) + 1
    counters["event"] += events.t.size
    campaign_ids = [c.campaign_id for c in campaigns]

    def order_ref(idx: np.ndarray) -> pa.Array:
        """Order ids for order positions in this chunk (-1 gives NULL)."""
        return ids("O", base_order + np.maximum(idx, 0) + 1, 10, missing=idx < 0)

    return {
        "members": pa.table({
            "member_id": member_ids,
            "registered_at": timestamps(cal.start, members.registered_t),
            "name": profiles.name,
            "phone": profiles.phone,
            "email": profiles.email,
            "gender": profiles.gender,
            "birth_date": pa.array(birth, pa.date32(), mask=~birth_known),
            "city": profiles.city,
            "region": profiles.region,
            "acquisition_channel": labels(ACQUISITION_CHANNELS, acquisition),
            "tier": labels(contract.TIERS, tiers.current),
            "points_balance": integers(points.balance),
            "consent_email": pa.array(consent_email),
            "consent_sms": pa.array(consent_sms),
            "consent_push": pa.array(consent_push),
        }),
        "demo_personas": pa.table({
            "member_id": member_ids, "persona": labels(PERSONA_NAMES, persona),
            "rate": pa.array(members.rate), "dropout": pa.array(members.dropout),
            "engagement": pa.array(members.engagement),
            "alive_from": _dates(cal, members.spell_start),
            "alive_until": _dates(cal, members.spell_end, empty_at=cal.days),
        }),
        "orders": pa.table({
            "order_id": order_ids,
            "member_id": order_member,
            "ordered_at": timestamps(cal.start, orders.t),
            "channel": labels(ORDER_CHANNELS, orders.channel),
            "status": labels(contract.ORDER_STATUSES, orders.status),
            "gross_amount": money(gross),
            "discount_amount": money(discount),
            "net_amount": money(gross - discount),
            "points_earned": integers(points.earned),
            "points_redeemed": integers(points.redeemed),
            "campaign_id": labels(campaign_ids, orders.campaign),
        }),
        "order_items": pa.table({
            "order_id": order_ref(lines.order),
            "line_no": integers(lines.line_no, type_=pa.int16()),
            "product_id": ids("P", catalog.product_no[lines.product], 6),
            "quantity": integers(lines.quantity),
            "unit_price": money(lines.unit_cents),
            "line_amount": money(lines.amount_cents),
        }),
        "events": pa.table({
            "event_id": ids("E", event_no, 12),
            "member_id": ids("M", first_member + np.maximum(events.member, 0) + 1, 8, missing=events.member == GUEST),
            "session_id": ids("S", session_no, 11),
            "occurred_at": timestamps(cal.start, events.t),
            "event_type": labels(contract.EVENT_TYPES, events.type),
            "page": labels(cs.PAGES, events.page),
            "product_id": ids("P", catalog.product_no[np.maximum(events.product, 0)], 6, missing=events.product < 0),
            "device": labels(cs.DEVICES, events.device),
            "source": labels(cs.SOURCES, events.source),
        }),
        "points_ledger": pa.table({
            "entry_id": ids("L", ledger_no, 11),
            "member_id": ids("M", first_member + points.member + 1, 8),
            "occurred_at": timestamps(cal.start, points.t),
            "delta": integers(points.delta),
            "reason": labels(contract.LEDGER_REASONS, points.reason),
            "order_id": order_ref(points.order),
        }),
        "tier_changes": pa.table({
            "member_id": ids("M", first_member + tiers.change_member + 1, 8),
            "changed_at": timestamps(cal.start, tiers.change_t),
            "from_tier": labels(contract.TIERS, tiers.change_from),
            "to_tier": labels(contract.TIERS, tiers.change_to),
        }),
        "campaign_members": pa.table({
            "campaign_id": labels(campaign_ids, cm.campaign),
            "member_id": ids("M", first_member + cm.member + 1, 8),
            "arm": labels(contract.ARMS, cm.control.astype(np.int64)),
            "sent_at": timestamps(cal.start, cm.sent_t, missing=cm.sent_t < 0),
            "opened_at": timestamps(cal.start, cm.opened_t, missing=cm.opened_t < 0),
            "clicked_at": timestamps(cal.start, cm.clicked_t, missing=cm.clicked_t < 0),
            "converted_order_id": order_ref(cm.converted_order),
        }),
    }

