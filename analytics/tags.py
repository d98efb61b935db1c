"""Rule-based member tags: definitions, members, coverage, tag audiences.

Tag definitions (one place; the app shows each tag's ``rule`` as help). The **reference day** is the
last day of the global date range (``filters.end``); "the N days ending on the reference day" are
``[end - (N - 1) days 00:00, end + 1 day 00:00)``. The **window** is the completed orders placed in the
range, through the channel filter, by members of the chosen tiers (the orders every sales figure
counts, :func:`analytics.filters.completed_order_conditions`); guest orders never count.

* ``high_value`` **High value**: RFM monetary score 5 in the window (:func:`analytics.rfm.member_rfm`).
* ``new_member`` **New member**: registered in the 30 days ending on the reference day.
* ``dormant_90`` **Dormant 90 days**: has a completed order placed before the reference day ends but
  none in the 90 days ending on it. The start of the range is ignored (a member who last bought two
  years ago is dormant); the channel and tier filters still decide which orders count, so with a
  channel chosen it reads "dormant in this channel".
* ``discount_seeker`` **Discount seeker**: at least 2 orders in the window and their discounts add up
  to at least 20% of their gross value.
* ``night_owl`` **Night owl**: at least 3 orders in the window and at least half of them placed between
  22:00 and 05:59 (hour >= 22 or < 6, shop local time).
* ``category_lover:<category>`` **Category lover: <category>**: at least 3 orders in the window and at
  least 60% of their line amount (``order_items.line_amount`` by ``products.category``) in that one
  category; a family with one tag per category that has such members. Lines of products without a
  category count in the total but make no lover.
* ``birthday_month`` **Birthday this month**: born in the reference day's calendar month.
* ``points_expiring`` **Points about to expire**: at least 500 points (5 currency units) expire on
  31 December of the reference day's year. Points expire at the end of the calendar year after the
  year earned (:mod:`analytics.programme`) and are spent oldest first (first in, first out), so the
  points due to expire this year are those earned (positive ledger deltas: earn, bonus) up to the end
  of the previous calendar year minus everything debited (redeemed or expired: negative deltas) up to
  the end of the reference day, clipped at 0. Why: every debit so far was taken from the oldest lots
  first, and all lots earned before this year are older than any earned this year, so debits eat into
  them before touching this year's; lots from two years back that were left over already expired on
  31 December last year, and that expiry is itself one of the debits. Ledger rows after the reference
  day are ignored.
* ``tier_upgrade_near`` **Tier upgrade near**: gross spend on completed orders so far in the months the
  next tier evaluation counts (the twelve calendar months ending with the reference day's month,
  :func:`analytics.programme.next_evaluation_months`; spend up to the end of the reference day) is at
  least 80% of the next tier's threshold above the member's current tier
  (:data:`analytics.programme.TIER_THRESHOLDS`) but still below it: a little more this month lifts them.
  Diamond members (no higher tier) and members with no or an unknown tier never have it. Spend counts
  every channel, as the programme does, whatever the channel filter says.

**Filters.** The channel filter only decides which orders count (window tags and ``dormant_90``); it
does not affect tags that are not about orders (``new_member``, ``birthday_month``,
``points_expiring``, ``tier_upgrade_near``). The tier filter scopes every tag to members whose current
tier is one of those chosen, and the coverage share is of all members in those tiers (of all members
when no tier is chosen).

Everything is SQL in the warehouse; member ids and categories are always bound parameters.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from decimal import Decimal
from itertools import pairwise
from typing import Any, ClassVar

import pandas as pd
from sqlalchemy import (
    ColumnElement,
    Numeric,
    Select,
    String,
    case,
    cast,
    func,
    literal,
    null,
    select,
    union_all,
)

from analytics import audiences
from analytics.audiences import Audience, audience_kind
from analytics.errors import InputError
from analytics.filters import Filters, completed_order_conditions, member_conditions, order_conditions
from analytics.i18n import N_, _, using
from analytics.programme import POINTS_PER_CURRENCY_UNIT, TIER_THRESHOLDS, next_evaluation_months
from analytics.rfm import member_rfm
from analytics.sqlparts import NIGHT_TEXT, at_night, count_if
from analytics.storage.contract import TIERS, members, order_items, orders, points_ledger, products
from analytics.storage.db import Bind, read_frame

# ---- thresholds (the rules above, in numbers) --------------------------------------------------------------------

#: ``high_value``: the RFM monetary score that makes a member high value.
HIGH_VALUE_M_SCORE = 5
#: ``new_member``: registered within this many days ending on the reference day.
NEW_MEMBER_DAYS = 30
#: ``dormant_90``: no completed order within this many days ending on the reference day.
DORMANT_DAYS = 90
#: ``discount_seeker``: at least this many window orders ...
DISCOUNT_SEEKER_MIN_ORDERS = 2
#: ... with discounts at least this percentage of their gross value.
DISCOUNT_SEEKER_MIN_PERCENT = 20
#: ``night_owl``: at least this many window orders ...
NIGHT_OWL_MIN_ORDERS = 3
#: ... at least this percentage of them placed at night ...
NIGHT_OWL_MIN_PERCENT = 50
#: ... where night is :func:`analytics.sqlparts.at_night`.
#: ``category_lover:<category>``: at least this many window orders ...
CATEGORY_LOVER_MIN_ORDERS = 3
#: ... with at least this percentage of their line amount in one category.
CATEGORY_LOVER_MIN_PERCENT = 60
#: ``points_expiring``: at least this many points expire at the end of the reference day's year.
POINTS_EXPIRING_MIN_POINTS = 5 * POINTS_PER_CURRENCY_UNIT
#: ``tier_upgrade_near``: spend in the next evaluation's months, at least this percentage of the next tier's
#: threshold (and below it).
TIER_UPGRADE_NEAR_PERCENT = 80

#: Key prefix of the category lover family: ``category_lover:Beauty`` is one of its tags.
CATEGORY_LOVER = "category_lover:"


@dataclass(frozen=True)
class Tag:
    """A member tag: its ``key`` (stable, used in audience specs), display ``label`` and ``rule`` (help text).

    A key ending in ``:`` names a family of tags, one per value (``category_lover:`` -> one per category).
    """

    key: str
    label: str
    rule: str

    @property
    def is_family(self) -> bool:
        return self.key.endswith(":")


#: Every tag, in display order; category lover is one entry for its whole family. Labels and rules are marked for
#: the catalog here and read through :func:`resolve_tag`, which translates them and fills in the numbers
#: (:data:`RULE_VALUES`).
TAGS: tuple[Tag, ...] = (
    Tag("high_value", N_("High value"), N_("RFM monetary score {m_score} in the date range: among the top fifth by "
        "net sales on completed orders (channel and tier filters apply).")),
    Tag("new_member", N_("New member"), N_("Registered in the {new_member_days} days ending on the last day of the "
        "date range.")),
    Tag("dormant_90", N_("Dormant 90 days"), N_("Has bought (a completed order, any time up to the last day of the "
        "range) but not in the {dormant_days} days ending on that day. The channel and tier filters decide which "
        "orders count; the range's start does not.")),
    Tag("discount_seeker", N_("Discount seeker"), N_("At least {discount_orders} completed orders in the date range, "
        "with discounts adding up to at least {discount_percent}% of their gross value.")),
    Tag("night_owl", N_("Night owl"), N_("At least {night_orders} completed orders in the date range, at least "
        "{night_percent}% of them placed at night, {night}.")),
    Tag(CATEGORY_LOVER, N_("Category lover"), N_("At least {lover_orders} completed orders in the date range and at "
        "least {lover_percent}% of their line amount in this one category.")),
    Tag("birthday_month", N_("Birthday this month"), N_("Born in the calendar month of the last day of the date "
        "range.")),
    Tag("points_expiring", N_("Points about to expire"), N_("At least {points} points ({currency_units} currency "
        "units) expire on 31 December of the range's last year: points earned up to the end of the previous year "
        "minus all points redeemed or expired up to the last day of the range (points are spent oldest first).")),
    Tag("tier_upgrade_near", N_("Tier upgrade near"), N_("Gross spend on completed orders (all channels) so far in "
        "the twelve calendar months the next monthly tier evaluation counts (those ending with the month of the "
        "range's last day) is at least {upgrade_percent}% of the next tier's threshold but still below it. Never "
        "for the top tier.")),
)
#: The numbers the rules' texts quote (the thresholds above).
RULE_VALUES: dict[str, object] = {
    "m_score": HIGH_VALUE_M_SCORE, "new_member_days": NEW_MEMBER_DAYS, "dormant_days": DORMANT_DAYS,
    "discount_orders": DISCOUNT_SEEKER_MIN_ORDERS, "discount_percent": DISCOUNT_SEEKER_MIN_PERCENT,
    "night_orders": NIGHT_OWL_MIN_ORDERS, "night_percent": NIGHT_OWL_MIN_PERCENT, "night": NIGHT_TEXT,
    "lover_orders": CATEGORY_LOVER_MIN_ORDERS, "lover_percent": CATEGORY_LOVER_MIN_PERCENT,
    "points": POINTS_EXPIRING_MIN_POINTS, "currency_units": POINTS_EXPIRING_MIN_POINTS // POINTS_PER_CURRENCY_UNIT,
    "upgrade_percent": TIER_UPGRADE_NEAR_PERCENT,
}
_BY_KEY: dict[str, Tag] = {t.key: t for t in TAGS}
_FAMILY = _BY_KEY[CATEGORY_LOVER]
_SIMPLE_KEYS: tuple[str, ...] = tuple(t.key for t in TAGS if not t.is_family)
#: Internal tag of the coverage statement's branch that counts all members in scope.
_ALL_MEMBERS = "__all_members__"

COVERAGE_COLUMNS = ["tag", "label", "rule", "members", "share"]
TAG_COLUMNS = ["tag", "label", "rule"]


def resolve_tag(key: str) -> Tag:
    """The tag with this key, its label and rule in the reader's language; ``category_lover:<category>`` gives that
    category's tag.

    Raises ValueError naming the valid keys for anything else.
    """
    if not isinstance(key, str):
        raise InputError(_("A tag key is text, not {type}.").format(type=type(key).__name__))
    if key in _BY_KEY and not _BY_KEY[key].is_family:
        return _shown(_BY_KEY[key])
    if key.startswith(CATEGORY_LOVER):
        category = key[len(CATEGORY_LOVER):]
        if not category:
            raise InputError(_("The tag key {key} names no category; write {prefix}<category>, e.g. "
                               "{prefix}Beauty.").format(key=repr(key), prefix=CATEGORY_LOVER))
        family = _shown(_FAMILY)
        return Tag(key, _("Category lover: {category}").format(category=category), family.rule)
    raise InputError(_("Unknown tag {key}; choose one of {keys} or {prefix}<category>.").format(
        key=repr(key), keys=", ".join(_SIMPLE_KEYS), prefix=CATEGORY_LOVER))


def _shown(tag: Tag) -> Tag:
    """``tag`` with its label and rule translated and its numbers filled in."""
    return Tag(tag.key, _(tag.label), _(tag.rule).format(**RULE_VALUES))


# ---- the rules as SQL ---------------------------------------------------------------------------------------------


def _member_scope(filters: Filters, member_id: Any) -> list[ColumnElement[bool]]:
    """Condition keeping ``member_id`` within the tier filter and the scope (none when neither restricts)."""
    return member_conditions(filters, member_id)


def _order_scope(filters: Filters) -> list[ColumnElement[bool]]:
    """Completed member orders through the channel and tier filters and the scope, at any time (what
    :func:`completed_order_conditions` checks, without its time bounds)."""
    o = orders.c
    return [o.member_id.is_not(None), o.status == "completed", *order_conditions(filters)]


def _window(filters: Filters) -> list[ColumnElement[bool]]:
    """Member orders in the window: completed, in the range, through the channel and tier filters."""
    return [orders.c.member_id.is_not(None), *completed_order_conditions(filters, filters.start_ts, filters.end_ts)]


def _high_value(filters: Filters) -> Select:
    rfm = member_rfm(filters)
    return select(rfm.c.member_id).where(rfm.c.m_score == HIGH_VALUE_M_SCORE)


def _new_member(filters: Filters) -> Select:
    m = members.c
    since = filters.end_ts - timedelta(days=NEW_MEMBER_DAYS)
    return select(m.member_id).where(m.registered_at >= since, m.registered_at < filters.end_ts,
                                     *_member_scope(filters, m.member_id))


def _dormant(filters: Filters) -> Select:
    o = orders.c
    since = filters.end_ts - timedelta(days=DORMANT_DAYS)
    return (select(o.member_id).where(*_order_scope(filters), o.ordered_at < filters.end_ts)
            .group_by(o.member_id).having(func.max(o.ordered_at) < since))


def _discount_seeker(filters: Filters) -> Select:
    o = orders.c
    gross, discount = func.sum(o.gross_amount), func.sum(o.discount_amount)
    # percentages as integers: exact on NUMERIC money, no float division on either warehouse
    return (select(o.member_id).where(*_window(filters)).group_by(o.member_id)
            .having(func.count() >= DISCOUNT_SEEKER_MIN_ORDERS, gross > 0,
                    discount * 100 >= gross * DISCOUNT_SEEKER_MIN_PERCENT))


def _night_owl(filters: Filters) -> Select:
    o = orders.c
    night = count_if(at_night(o.ordered_at))
    return (select(o.member_id).where(*_window(filters)).group_by(o.member_id)
            .having(func.count() >= NIGHT_OWL_MIN_ORDERS, night * 100 >= func.count() * NIGHT_OWL_MIN_PERCENT))


def _category_lovers(filters: Filters) -> Select:
    """``member_id, category``: each category lover with their category (at most one per member).

    The window's orders of members with enough of them (a semi-join on the orders table), their lines
    aggregated once by member and category, and the member's total as a window SUM over that. No
    aggregate or window output is joined: PostgreSQL knows nothing of their distinct members and
    estimated such a join at 8.4 million rows for 74,000 (50,000 members), enough to trigger JIT
    compilation that cost more than the query.
    """
    o, i, p = orders.c, order_items.c, products.c
    buyers = (select(o.member_id).where(*_window(filters)).group_by(o.member_id)
              .having(func.count() >= CATEGORY_LOVER_MIN_ORDERS))
    window = (select(o.order_id, o.member_id).where(*_window(filters), o.member_id.in_(buyers))
              .subquery("lover_orders"))
    by_category = (select(window.c.member_id, p.category, func.sum(i.line_amount).label("amount"))
                   .select_from(window.join(order_items, i.order_id == window.c.order_id)
                                .outerjoin(products, p.product_id == i.product_id))
                   .group_by(window.c.member_id, p.category).subquery("lover_categories"))
    c = by_category.c
    shares = select(c.member_id, c.category, c.amount,
                    func.sum(c.amount).over(partition_by=c.member_id).label("total")).subquery("lover_shares")
    s = shares.c
    return (select(s.member_id, s.category)
            .where(s.category.is_not(None), s.total > 0, s.amount * 100 >= s.total * CATEGORY_LOVER_MIN_PERCENT))


def _birthday_month(filters: Filters) -> Select:
    m = members.c
    return select(m.member_id).where(func.extract("month", m.birth_date) == filters.end.month,
                                     *_member_scope(filters, m.member_id))


def expiring_points(end: date, min_points: int = 1, scope: Sequence[ColumnElement[bool]] = ()) -> Select:
    """``member_id, points``: the points each member holds that expire on 31 December of ``end``'s year, as of the
    end of ``end`` (the ``points_expiring`` rule in the module docstring: first in, first out), for members with at
    least ``min_points`` of them; ``scope`` adds conditions on ``points_ledger`` (e.g. a tier filter)."""
    lg = points_ledger.c
    year_start = datetime.combine(date(end.year, 1, 1), time())
    earned_before = func.sum(case(((lg.delta > 0) & (lg.occurred_at < year_start), lg.delta), else_=0))
    debited = func.sum(case((lg.delta < 0, -lg.delta), else_=0))
    end_ts = datetime.combine(end + timedelta(days=1), time())
    # only the rows that count (credits before this year, debits): half the ledger, the same sums
    counted = ((lg.delta > 0) & (lg.occurred_at < year_start)) | (lg.delta < 0)
    return (select(lg.member_id, (earned_before - debited).label("points"))
            .where(lg.occurred_at < end_ts, counted, *scope)
            .group_by(lg.member_id).having(earned_before - debited >= min_points))


def _points_expiring(filters: Filters) -> Select:
    due = expiring_points(filters.end, POINTS_EXPIRING_MIN_POINTS,
                          _member_scope(filters, points_ledger.c.member_id)).subquery("points_due")
    return select(due.c.member_id)


def _tier_upgrade_near(filters: Filters) -> Select:
    o, m = orders.c, members.c
    since = datetime.combine(next_evaluation_months(filters.end)[0], time())
    spend = (select(o.member_id, func.sum(o.gross_amount).label("spend"))
             .where(o.member_id.is_not(None), o.status == "completed", o.ordered_at >= since,
                    o.ordered_at < filters.end_ts)
             .group_by(o.member_id).subquery("tier_spend"))
    next_threshold = case(*((m.tier == tier, literal(Decimal(str(TIER_THRESHOLDS[above])), Numeric(14, 2)))
                            for tier, above in pairwise(TIERS)))
    spent = func.coalesce(spend.c.spend, 0)
    return (select(m.member_id).select_from(members.outerjoin(spend, spend.c.member_id == m.member_id))
            .where(next_threshold.is_not(None), spent * 100 >= next_threshold * TIER_UPGRADE_NEAR_PERCENT,
                   spent < next_threshold, *_member_scope(filters, m.member_id)))


_RULES: dict[str, Callable[[Filters], Select]] = {
    "high_value": _high_value,
    "new_member": _new_member,
    "dormant_90": _dormant,
    "discount_seeker": _discount_seeker,
    "night_owl": _night_owl,
    "birthday_month": _birthday_month,
    "points_expiring": _points_expiring,
    "tier_upgrade_near": _tier_upgrade_near,
}
assert set(_RULES) == set(_SIMPLE_KEYS), "every simple tag needs a rule"


def tag_member_ids(filters: Filters, tag_key: str) -> Select:
    """The ids of the members carrying tag ``tag_key`` (a one-column select, each id once), for member
    lists, counts and audiences. ``category_lover:<category>`` binds the category as a parameter."""
    tag = resolve_tag(tag_key)
    if tag.key.startswith(CATEGORY_LOVER):
        lovers = _category_lovers(filters).subquery("lovers")
        return select(lovers.c.member_id).where(lovers.c.category == tag.key[len(CATEGORY_LOVER):])
    return _RULES[tag.key](filters)


def _tag_branches(filters: Filters) -> list[tuple[str, Any]]:
    """Every rule as ``(tag, subquery)``: the subquery has ``member_id`` and, for the category lover
    family, ``category``."""
    branches = [(key, _RULES[key](filters).subquery(f"tag_{key}")) for key in _SIMPLE_KEYS]
    return [*branches, (CATEGORY_LOVER, _category_lovers(filters).subquery("tag_category_lover"))]


def _category_of(ids: Any) -> Any:
    return ids.c.category if "category" in ids.c else cast(null(), String)


def _tagged(filters: Filters) -> Any:
    """Every (tag, category, member_id) as one UNION ALL subquery: ``category`` is the category lover's
    category and NULL for the other tags."""
    return union_all(*(select(literal(key, String).label("tag"), _category_of(ids).label("category"),
                              ids.c.member_id.label("member_id")) for key, ids in _tag_branches(filters))
                     ).subquery("tagged")


def _tag_counts(filters: Filters) -> Select:
    """``tag, category, members`` for every rule (the family per category), plus a row of tag
    :data:`_ALL_MEMBERS` counting every member in the tier scope: one UNION ALL statement whose branches
    count their own members, so only a few rows leave each branch."""
    branches = []
    for key, ids in _tag_branches(filters):
        category = _category_of(ids)
        counted = select(literal(key, String).label("tag"), category.label("category"),
                         func.count().label("members")).select_from(ids)
        branches.append(counted.group_by(ids.c.category) if "category" in ids.c else counted)
    m = members.c
    branches.append(select(literal(_ALL_MEMBERS, String).label("tag"), cast(null(), String).label("category"),
                           func.count().label("members")).select_from(members)
                    .where(*_member_scope(filters, m.member_id)))
    return union_all(*branches)


def _expand(tag: str, category: Any) -> str:
    """The full tag key of a ``tagged`` row: the family prefix joined with its category."""
    return f"{tag}{category}" if tag == CATEGORY_LOVER else tag


def tag_coverage(bind: Bind, filters: Filters) -> pd.DataFrame:
    """Members per tag: ``tag, label, rule, members, share``, one row per tag in :data:`TAGS` order, the
    category lover family expanded to one row per category that has lovers (sorted by category).

    ``share`` = members / all members in the members table, of the chosen tiers when a tier filter is
    set (the tags' own scope). One SQL statement: a UNION ALL of every rule, each counting its members.
    """
    # No window or CTE output is joined (RFM's is only filtered), so PostgreSQL's estimates hold: plain planning.
    counts = read_frame(bind, _tag_counts(filters))
    counts["members"] = counts["members"].astype("int64")
    total = int(counts.loc[counts["tag"] == _ALL_MEMBERS, "members"].sum())
    found = {(tag, None if pd.isna(category) else str(category)): int(n)
             for tag, category, n in counts.itertuples(index=False)}
    rows = []
    for tag in TAGS:
        if not tag.is_family:
            rows.append((tag.key, found.get((tag.key, None), 0)))
            continue
        lovers = sorted((c, n) for (k, c), n in found.items() if k == tag.key and c is not None)
        rows.extend((_expand(tag.key, c), n) for c, n in lovers)
    frame = pd.DataFrame([{"tag": key, "label": resolve_tag(key).label, "rule": resolve_tag(key).rule,
                           "members": n} for key, n in rows], columns=COVERAGE_COLUMNS[:-1])
    frame["members"] = frame["members"].astype("int64")
    frame["share"] = (frame["members"] / total) if total else 0.0
    return frame[COVERAGE_COLUMNS]


def member_tags(bind: Bind, filters: Filters, member_id: str) -> pd.DataFrame:
    """The tags one member carries under ``filters``: ``tag, label, rule`` in :data:`TAGS` order."""
    tagged = _tagged(filters)
    # Not hash_joins: PostgreSQL pushes ``member_id = :id`` into every branch, which leaves some joins with no
    # equality to hash on; with nested loops "disabled" their cost turns astronomical and triggers JIT
    # compilation (1.8 s instead of 13 ms on the demo).
    found = read_frame(bind, select(tagged.c.tag, tagged.c.category).where(tagged.c.member_id == member_id))
    keys = {_expand(tag, category) for tag, category in found.itertuples(index=False)}
    order = {t.key: n for n, t in enumerate(TAGS)}
    ordered = sorted(keys, key=lambda k: (order[CATEGORY_LOVER if k.startswith(CATEGORY_LOVER) else k], k))
    return pd.DataFrame([{"tag": k, "label": resolve_tag(k).label, "rule": resolve_tag(k).rule} for k in ordered],
                        columns=TAG_COLUMNS)


# ---- audiences ----------------------------------------------------------------------------------------------------

@audience_kind
@dataclass(frozen=True)
class TagAudience(Audience):
    """The members carrying one tag under some filters (as of the range's last day)."""

    kind: ClassVar[str] = "tag"
    label: ClassVar[str] = "tag"
    keys: ClassVar[frozenset[str]] = frozenset({"tag", "start", "end", "channels", "tiers"})

    window: Filters
    tag: str

    def __post_init__(self) -> None:
        object.__setattr__(self, "tag", resolve_tag(self.tag).key)

    def member_ids(self) -> Select:
        return tag_member_ids(self.window, self.tag)

    def describe(self) -> str:
        with using("en"):  # part of the definition's JSON (and so of its fingerprint): one wording, not per reader
            return f"Tag {resolve_tag(self.tag).label}"

    def title(self) -> str:
        return _("Tag {name}").format(name=resolve_tag(self.tag).label)

    def body(self) -> dict[str, Any]:
        return {"tag": self.tag, **audiences.window_body(self.window)}

    @classmethod
    def from_body(cls, data: Mapping[str, Any], depth: int) -> TagAudience:
        return cls(audiences.window(data), audiences.text(data, "tag", 200))


def tag_audience(filters: Filters, tag_key: str) -> TagAudience:
    """The targeting audience of the members carrying one tag under these filters."""
    return TagAudience(filters, tag_key)
