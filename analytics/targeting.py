"""Campaign audiences: conditions on members combined with AND / OR / NOT, compiled to one SQL query.

An **audience spec** is JSON (``version`` 1, ``kind`` ``"audience"``; format and examples in
docs/audiences.md)::

    {"version": 1, "kind": "audience", "start": "2025-11-16", "end": "2026-11-15",
     "rules": {"match": "all", "conditions": [
         {"field": "tier", "op": "in", "value": ["gold", "diamond"]},
         {"not": true, "field": "bought_category", "op": "in", "value": ["Pets"]},
         {"match": "any", "conditions": [{"field": "net_sales", "op": "between", "value": [1000, null]},
                                         {"field": "segment", "op": "in", "value": {...another spec...}}]}]},
     "frequency_cap_days": 7, "max_size": 50000, "holdout": 0.1, "campaign_key": "double-12"}

* ``start`` / ``end`` (inclusive) is the **window** that behaviour conditions look at; ``end`` is also
  the reference day (age, days since the last order, the frequency cap).
* A **condition** names a :data:`FIELDS` entry and an operator: ``in`` / ``not_in`` a list of values, or
  ``between`` ``[low, high]`` (inclusive; ``null`` = open). ``segment`` takes another audience spec
  (RFM segment, cluster, tag, funnel drop-off, "bought A not B") and keeps its members. ``"not": true``
  negates a condition or a group. A **group** is ``{"match": "all" | "any", "conditions": [...]}``.
* **Reachable** on a channel: consent to that channel and a usable contact (email: has an ``@`` with text
  either side; SMS: a phone of at least 8 characters; push: consent only, the app holds the token).
  No consent, no message (PIPL).
* **Frequency cap** (optional): members sent any campaign in the ``frequency_cap_days`` days ending on
  the reference day are left out. **Maximum size** (optional): the audience keeps that many members,
  chosen by the same hash as the holdout (so the choice is stable and unbiased).
* **Control group**: a member is in control when ``bucket(member_id, campaign_key) < holdout x 65536``,
  where the bucket is the first four hex digits of ``md5(member_id || ':' || campaign_key)`` read as a
  number (0..65535; in SQL the four-digit hex text is compared, which sorts the same). Deterministic, the
  same on every warehouse, independent of any other campaign.

Conditions are two-valued: a member with a missing attribute (no birth date, no tier) is outside every
range and list, so ``not_in`` and NOT include them. Every value is a bound parameter; field names and
operators come from fixed lists, and anything else is refused with a message naming what is allowed.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from typing import Any

import pandas as pd
from sqlalchemy import (
    ColumnElement,
    Date,
    Double,
    Integer,
    Select,
    and_,
    case,
    cast,
    false,
    func,
    literal,
    not_,
    or_,
    select,
    true,
)

from analytics import clustering, funnels, portraits, rfm, rules
from analytics.filters import Filters
from analytics.sqlparts import count_if, sum_if
from analytics.storage.contract import campaign_members, members, order_items, orders, products
from analytics.storage.db import Bind, connection, read_frame

SPEC_VERSION = 1
KIND = "audience"
CHANNELS: tuple[str, ...] = ("email", "sms", "push")
BUCKETS = 65_536  # four hex digits of md5
MIN_PHONE_CHARS = 8
MAX_DEPTH = 4


class SpecError(ValueError):
    """An audience spec that cannot be compiled; the message says what to change."""


@dataclass(frozen=True)
class FieldDef:
    label: str
    kind: str  # "choice" (in / not_in a list), "number" / "date" (between), "spec" (another page's audience),
    # "audience" (a saved campaign audience spec)
    help: str


FIELDS: dict[str, FieldDef] = {
    "tier": FieldDef("Tier", "choice", "The member's current tier."),
    "region": FieldDef("Region", "choice", "The member's region."),
    "city": FieldDef("City", "choice", "The member's city."),
    "gender": FieldDef("Gender", "choice", "As registered."),
    "acquisition_channel": FieldDef("Acquisition channel", "choice", "How the member joined."),
    "age": FieldDef("Age", "number", "Whole years on the reference day (the window's last day)."),
    "registered": FieldDef("Registration date", "date", "Day of registration."),
    "points_balance": FieldDef("Points balance", "number", "Current points balance."),
    "days_since_last_order": FieldDef("Days since last order", "number", "Days from the last completed order "
                                      "(any time up to the reference day) to the reference day; members who "
                                      "never bought never match."),
    "order_count": FieldDef("Orders", "number", "Completed orders in the window (0 for none)."),
    "net_sales": FieldDef("Net sales", "number", "Net sales of completed orders in the window (0 for none)."),
    "aov": FieldDef("AOV", "number", "Net sales / orders in the window; members without orders never match."),
    "bought_category": FieldDef("Bought a category", "choice", "Bought at least one of these categories in "
                                "the window (use NOT for 'never bought')."),
    "bought_product": FieldDef("Bought a product", "choice", "Bought at least one of these product ids in the "
                               "window (use NOT for 'never bought')."),
    "segment": FieldDef("Segment, cluster, tag, funnel or rule", "spec", "Members of another audience: an RFM "
                        "segment, cluster, tag, funnel drop-off or 'bought A, not B' audience definition."),
    "saved_audience": FieldDef("Saved audience", "audience", "Members a saved campaign audience targets (both "
                               "arms, after its own cap and maximum size); with NOT, everyone else."),
}
_ATTRIBUTES = ("tier", "region", "city", "gender", "acquisition_channel")

#: Readers of the audience definitions other analyses hand over, by kind.
AUDIENCE_READERS: dict[str, Callable[[Mapping[str, Any]], Select]] = {
    rfm.AUDIENCE_KIND: rfm.audience_member_ids,
    clustering.AUDIENCE_KIND: clustering.audience_member_ids,
    portraits.AUDIENCE_KIND: portraits.audience_member_ids,
    funnels.AUDIENCE_KIND: funnels.audience_member_ids,
    "bought_not_bought": rules.audience_member_ids,
}


@dataclass(frozen=True)
class Audience:
    """A checked spec: its window and options, and the rules as given."""

    window: Filters
    rules: Mapping[str, Any]
    frequency_cap_days: int | None
    max_size: int | None
    holdout: float
    campaign_key: str


def parse_spec(spec: Mapping[str, Any]) -> Audience:
    """Check a spec's envelope (version, kind, window, options); conditions are checked as they compile."""
    if not isinstance(spec, Mapping) or spec.get("version") != SPEC_VERSION or spec.get("kind") != KIND:
        raise SpecError(f'Not a version-{SPEC_VERSION} audience: it needs "version": {SPEC_VERSION} and '
                        f'"kind": "{KIND}".')
    try:
        window = Filters(date.fromisoformat(str(spec["start"])), date.fromisoformat(str(spec["end"])))
    except KeyError as missing:
        raise SpecError(f"The audience needs a window: {missing} is missing (YYYY-MM-DD).") from None
    except ValueError as problem:
        raise SpecError(f"The audience window is not valid: {problem}") from None
    cap, size = spec.get("frequency_cap_days"), spec.get("max_size")
    holdout, key = spec.get("holdout", 0.0), spec.get("campaign_key", "")
    if cap is not None and (not isinstance(cap, int) or isinstance(cap, bool) or not 1 <= cap <= 365):
        raise SpecError("frequency_cap_days must be a whole number of days from 1 to 365, or null.")
    if size is not None and (not isinstance(size, int) or isinstance(size, bool) or size < 1):
        raise SpecError("max_size must be a positive whole number, or null.")
    if not isinstance(holdout, int | float) or isinstance(holdout, bool) or not 0 <= holdout <= 0.5:
        raise SpecError("holdout must be a share from 0 to 0.5 (e.g. 0.1 for 10%).")
    if not isinstance(key, str) or len(key) > 200:
        raise SpecError("campaign_key must be text of at most 200 characters.")
    rules_ = spec.get("rules", {"match": "all", "conditions": []})
    if not isinstance(rules_, Mapping):
        raise SpecError('"rules" must be a group: {"match": "all" or "any", "conditions": [...]}.')
    return Audience(window, rules_, cap, size, float(holdout), key)


# --- conditions to SQL -----------------------------------------------------------------------------

def _window_orders(window: Filters) -> list[ColumnElement[bool]]:
    o = orders.c
    return [o.status == "completed", o.member_id.is_not(None), o.ordered_at >= window.start_ts,
            o.ordered_at < window.end_ts]


def _between(column: Any, value: Any, field: str, parse: Callable[[Any], Any]) -> ColumnElement[bool]:
    if not isinstance(value, list | tuple) or len(value) != 2 or value == [None, None]:
        raise SpecError(f"{field}: 'between' takes [low, high] with at least one of them set (null = open).")
    try:
        low, high = (None if v is None else parse(v) for v in value)
    except (TypeError, ValueError):
        raise SpecError(f"{field}: {value!r} are not valid bounds.") from None
    parts = [column >= low] if low is not None else []
    # never NULL (a missing value is outside every range), so NOT is the exact complement
    return and_(column.is_not(None), *parts, *([column <= high] if high is not None else []))


def _number(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError(value)
    return float(value)


def _texts(value: Any, field: str) -> list[str]:
    if not isinstance(value, list | tuple) or not value or not all(isinstance(v, str) for v in value):
        raise SpecError(f"{field}: 'in' and 'not_in' take a non-empty list of texts.")
    return [str(v) for v in value]


def _member_in(ids: Select) -> ColumnElement[bool]:
    return members.c.member_id.in_(ids)


def _conditions(group: Any) -> list[Mapping[str, Any]]:
    """Every condition of a rules tree, at any depth (tolerant of malformed items: the compiler reports those)."""
    if not isinstance(group, Mapping):
        return []
    if "conditions" not in group:
        return [group]
    items = group["conditions"] if isinstance(group["conditions"], list) else []
    return [c for item in items for c in _conditions(item)]


def _last_order_in_window(conditions: list[Mapping[str, Any]], window: Filters) -> bool:
    """Whether every "days since last order" condition has an upper bound inside the window: then a member
    whose last order lies before the window is outside each range whether or not that order is read, and the
    orders before the window need not be scanned."""
    span = (window.end - window.start).days
    for c in conditions:
        if c.get("field") == "days_since_last_order":
            value = c.get("value")
            high = value[1] if isinstance(value, list | tuple) and len(value) == 2 else None
            if isinstance(high, bool) or not isinstance(high, int | float) or high > span:
                return False
    return True


_ORDER_TOTALS = ("order_count", "net_sales", "aov", "days_since_last_order")


def member_order_totals(window: Filters, all_time: bool = False) -> Any:
    """Per member with a completed order: ``order_count`` and ``net_sales`` in the window, ``last_at`` (the
    last completed order up to the window's end; before the window too when ``all_time``). A subquery."""
    o = orders.c
    in_window = o.ordered_at >= window.start_ts
    scope = [o.status == "completed", o.member_id.is_not(None), o.ordered_at < window.end_ts]
    if not all_time:  # read the window only
        scope.append(in_window)
    return (select(o.member_id, count_if(in_window).label("order_count"),
                   func.coalesce(sum_if(in_window, o.net_amount), 0).label("net_sales"),
                   func.max(o.ordered_at).label("last_at"))
            .where(*scope).group_by(o.member_id).subquery("member_orders"))


def age_on(day: date, birth_date: Any) -> ColumnElement[int]:
    """Whole years from ``birth_date`` to ``day`` (NULL without a birth date)."""
    end = literal(day, Date)
    return (func.extract("year", end) - func.extract("year", birth_date)
            - case(((func.extract("month", end) * 100 + func.extract("day", end))
                    < (func.extract("month", birth_date) * 100 + func.extract("day", birth_date)), 1), else_=0))


class _Compiler:
    """Compiles one audience's rules to a WHERE clause over ``members`` and whatever it must join.

    The order-based numbers (orders, net sales, AOV, days since the last order) all come from ONE per-member
    aggregation of ``orders`` (``member_orders``), LEFT JOINed once however many conditions use it: each
    condition used to scan the orders on its own (1.7 s for a six-condition preview at 1M members)."""

    def __init__(self, audience: Audience, depth: int = 0) -> None:
        self.window, self.depth = audience.window, depth
        conditions = _conditions(audience.rules)
        needs_totals = {c.get("field") for c in conditions} & set(_ORDER_TOTALS)
        all_time = not _last_order_in_window(conditions, self.window)
        self.totals = member_order_totals(self.window, all_time) if needs_totals else None
        self.where = self.group(audience.rules)

    def source(self) -> Any:
        """``members``, with the per-member order totals joined when a condition needs them."""
        if self.totals is None:
            return members
        return members.outerjoin(self.totals, self.totals.c.member_id == members.c.member_id)

    def group(self, group: Mapping[str, Any], depth: int = 0) -> ColumnElement[bool]:
        if depth > MAX_DEPTH:
            raise SpecError("Audiences nest too deeply.")
        match, items = group.get("match", "all"), group.get("conditions", [])
        if match not in ("all", "any"):
            raise SpecError(f'A group matches "all" or "any", not {match!r}.')
        if not isinstance(items, list):
            raise SpecError('A group\'s "conditions" must be a list.')
        parts = []
        for item in items:
            if not isinstance(item, Mapping):
                raise SpecError("Each condition must be an object with field, op and value (or a group).")
            expr = self.group(item, depth + 1) if "conditions" in item else self.condition(item)
            parts.append(not_(expr) if item.get("not") is True else expr)
        if not parts:
            return true() if match == "all" else false()
        return and_(*parts) if match == "all" else or_(*parts)

    def condition(self, item: Mapping[str, Any]) -> ColumnElement[bool]:
        field, op, value = item.get("field"), item.get("op"), item.get("value")
        if field not in FIELDS:
            raise SpecError(f"Unknown field {field!r}; choose from {', '.join(FIELDS)}.")
        kind = FIELDS[field].kind
        allowed = {"choice": ("in", "not_in"), "number": ("between",), "date": ("between",), "spec": ("in",),
                   "audience": ("in",)}[kind]
        if op not in allowed:
            raise SpecError(f"{field} takes the operator {' or '.join(allowed)}, not {op!r}.")
        m, o, window = members.c, orders.c, self.window
        end = literal(window.end, Date)
        if kind == "choice":
            values = _texts(value, field)
            if field in _ATTRIBUTES:  # a missing value is in no list (and so "not in" every list)
                expr = and_(m[field].is_not(None), m[field].in_(values))
            else:
                lines = order_items.c
                if field == "bought_category":
                    bought = (select(lines.order_id).join_from(order_items, products,
                                                               products.c.product_id == lines.product_id)
                              .where(products.c.category.in_(values)))
                else:
                    bought = select(lines.order_id).where(lines.product_id.in_(values))
                expr = _member_in(select(o.member_id).where(*_window_orders(window), o.order_id.in_(bought)))
            return not_(expr) if op == "not_in" else expr
        if kind == "date":
            return _between(cast(m.registered_at, Date), value, field, lambda v: date.fromisoformat(str(v)))
        if kind in ("spec", "audience"):
            return _member_in(self._other_audience(field, value))
        if field == "age":
            return _between(age_on(window.end, m.birth_date), value, field, _number)
        if field == "points_balance":
            return _between(m.points_balance, value, field, _number)
        t = self.totals.c
        if field == "days_since_last_order":  # never bought: last_at is NULL, outside every range
            return _between(cast(end - cast(t.last_at, Date), Integer), value, field, _number)
        if field == "aov":  # no orders in the window: NULL, outside every range
            return _between(cast(t.net_sales, Double) / cast(func.nullif(t.order_count, 0), Double), value, field,
                            _number)
        # members without an order in the window count 0 orders and 0 sales
        return _between(func.coalesce(t[field], 0), value, field, _number)

    def _other_audience(self, field: str, value: Any) -> Select:
        if self.depth >= MAX_DEPTH:
            raise SpecError("Audiences nest too deeply.")
        if field == "saved_audience":
            if not isinstance(value, Mapping) or value.get("kind") != KIND:
                raise SpecError("saved_audience takes a saved audience's definition (kind \"audience\").")
            try:
                return _targeted_ids(parse_spec(value), self.depth + 1)
            except SpecError as problem:
                raise SpecError(f"The saved audience {value.get('name', '')!r} is not valid: {problem}") from None
        if not isinstance(value, Mapping) or value.get("kind") not in AUDIENCE_READERS:
            raise SpecError(f"segment takes an audience definition of kind {', '.join(AUDIENCE_READERS)}.")
        try:
            return AUDIENCE_READERS[value["kind"]](value)
        except (KeyError, TypeError, ValueError, AttributeError) as problem:  # a hand-edited file
            raise SpecError(f"The {value['kind']} audience in 'segment' is not valid: {problem}") from None


def audience_member_ids(spec: Mapping[str, Any]) -> Select:
    """The members matching the spec's rules (before frequency cap, maximum size and holdout)."""
    compiled = _Compiler(parse_spec(spec))
    return select(members.c.member_id).select_from(compiled.source()).where(compiled.where)


# --- holdout, reach, preview ---------------------------------------------------------------------------

_HEX = "0123456789abcdef"


def prefix(member_id: Any, campaign_key: str) -> ColumnElement[str]:
    """The first four hex digits of ``md5(member_id || ':' || campaign_key)`` (lower case, as ``md5`` returns them
    on DuckDB and PostgreSQL). Four-digit hex texts sort as their numbers, so a bucket comparison is a text
    comparison with one ``md5`` per row."""
    return func.substr(func.md5(func.concat(member_id, literal(":"), literal(campaign_key))), 1, 4)


def bucket(member_id: Any, campaign_key: str) -> ColumnElement[int]:
    """The member's hash bucket for a campaign, 0..65535: :func:`prefix` read as a number (for checks; the
    campaign queries compare the prefix itself)."""
    hex_digits = prefix(member_id, campaign_key)
    digits = [func.strpos(literal(_HEX), func.substr(hex_digits, i, 1)) - 1 for i in range(1, 5)]
    return digits[0] * 4096 + digits[1] * 256 + digits[2] * 16 + digits[3]


def _below(prefix_column: Any, buckets: int) -> ColumnElement[bool]:
    """``bucket < buckets``, as a comparison of the hex prefix."""
    if buckets <= 0:
        return false()
    if buckets >= BUCKETS:
        return true()
    return prefix_column < literal(f"{buckets:04x}")


def python_bucket(member_id: str, campaign_key: str) -> int:
    """:func:`bucket` in Python (for checks and exports)."""
    return int(hashlib.md5(f"{member_id}:{campaign_key}".encode()).hexdigest()[:4], 16)


def reachable(channel: str) -> ColumnElement[bool]:
    """Consent to the channel and a usable contact on it (see the module docstring)."""
    m = members.c
    if channel == "email":
        return and_(m.consent_email.is_(True), m.email.like("%_@_%"))
    if channel == "sms":
        return and_(m.consent_sms.is_(True), func.length(m.phone) >= MIN_PHONE_CHARS)
    if channel == "push":
        return m.consent_push.is_(True)
    raise SpecError(f"Unknown channel {channel!r}; choose from {', '.join(CHANNELS)}.")


def _matched(audience: Audience, depth: int = 0) -> Select:
    """Every member matching the rules: ``member_id``, ``prefix`` (the hash bucket as four hex digits),
    ``capped`` (sent a campaign within the frequency cap), ``reach_<channel>`` flags and ``rank`` (1, 2, ... by
    bucket among the uncapped: the maximum size keeps the lowest ranks; 0 without a maximum size)."""
    m = members.c
    capped = false()
    if audience.frequency_cap_days:
        since = datetime.combine(audience.window.end - timedelta(days=audience.frequency_cap_days - 1), time())
        cm = campaign_members.c
        capped = m.member_id.in_(select(cm.member_id).where(cm.sent_at >= since, cm.sent_at < audience.window.end_ts))
    compiled = _Compiler(audience, depth)
    flagged = (select(m.member_id, prefix(m.member_id, audience.campaign_key).label("prefix"),
                      case((capped, 1), else_=0).label("capped"),
                      *(case((reachable(c), 1), else_=0).label(f"reach_{c}") for c in CHANNELS))
               .select_from(compiled.source()).where(compiled.where).subquery("flagged"))
    f = flagged.c
    if not audience.max_size:  # no ranking needed (a window over every matching member is not free)
        return select(flagged, literal(0).label("rank"))
    rank = func.row_number().over(partition_by=f.capped, order_by=(f.prefix, f.member_id))
    return select(flagged, rank.label("rank"))


def _targeted(audience: Audience, matched: Any) -> ColumnElement[bool]:
    kept = matched.c.capped == 0
    return and_(kept, matched.c.rank <= audience.max_size) if audience.max_size else kept


def _control(audience: Audience, matched: Any) -> ColumnElement[bool]:
    return _below(matched.c.prefix, round(audience.holdout * BUCKETS))


def _targeted_arms(audience: Audience, depth: int = 0) -> Select:
    matched = _matched(audience, depth).subquery("matched")
    arm = case((_control(audience, matched), "control"), else_="treatment")
    return select(matched.c.member_id, arm.label("arm")).where(_targeted(audience, matched))


def _targeted_ids(audience: Audience, depth: int = 0) -> Select:
    targeted = _targeted_arms(audience, depth).subquery("targeted")
    return select(targeted.c.member_id)


def targeted_select(spec: Mapping[str, Any]) -> Select:
    """``member_id``, ``arm`` (treatment / control) of the members a campaign would target: the rules, then
    the frequency cap, then the maximum size (the lowest buckets), then the holdout."""
    return _targeted_arms(parse_spec(spec))


@dataclass(frozen=True)
class Preview:
    """Sizes of an audience: matching the rules, targeted (after cap and maximum size), per arm and per
    channel reachable among the targeted."""

    matching: int
    targeted: int
    control: int
    reachable: dict[str, int]
    reachable_treatment: dict[str, int]  # the members a campaign on that channel would actually message

    @property
    def treatment(self) -> int:
        return self.targeted - self.control


def preview(bind: Bind, spec: Mapping[str, Any]) -> Preview:
    """Audience size, targeted size, control size and reachable per channel, in one SQL statement.

    The members are grouped by (targeted, control): each member's hash is computed once (counting the arms
    with conditional counts computed it once per count, four times the work at 1M members)."""
    audience = parse_spec(spec)
    matched = _matched(audience).subquery("matched")
    arms = select(case((_targeted(audience, matched), 1), else_=0).label("targeted"),
                  case((_control(audience, matched), 1), else_=0).label("control"),
                  *(matched.c[f"reach_{c}"] for c in CHANNELS)).subquery("arms")
    a = arms.c
    counts = select(a.targeted, a.control, func.count().label("members"),
                    *(func.sum(a[f"reach_{c}"]).label(c) for c in CHANNELS)).group_by(a.targeted, a.control)
    with connection(bind) as conn:
        rows = [row._mapping for row in conn.execute(counts)]
    targeted = [r for r in rows if r["targeted"] == 1]
    treated = [r for r in targeted if r["control"] == 0]
    return Preview(sum(int(r["members"]) for r in rows), sum(int(r["members"]) for r in targeted),
                   sum(int(r["members"]) for r in targeted if r["control"] == 1),
                   {c: sum(int(r[c]) for r in targeted) for c in CHANNELS},
                   {c: sum(int(r[c]) for r in treated) for c in CHANNELS})


def targeted_members(bind: Bind, spec: Mapping[str, Any]) -> pd.DataFrame:
    """``member_id``, ``arm`` of every targeted member, ordered by member id."""
    targeted = targeted_select(spec).subquery("targeted")
    return read_frame(bind, select(targeted).order_by(targeted.c.member_id))


def targeted_member_ids(spec: Mapping[str, Any]) -> Select:
    """The member ids a campaign would target (both arms), for member lists and saved-audience conditions."""
    return _targeted_ids(parse_spec(spec))


#: Kinds of field a user types a value for (the others take a whole audience definition).
TYPED_KINDS = ("choice", "number", "date")
OPERATORS: dict[str, str] = {"in": "is one of", "not_in": "is none of", "between": "between"}
#: The separator of a typed range: a hyphen with a space on at least one side (dates and negative numbers
#: keep theirs), an en dash, or two dots.
_RANGE = re.compile(r"\s+-\s*|\s*-\s+|\s*–\s*|\s*\.\.\s*")


def condition_from_text(field: str, op: str, text: str, negate: bool = False) -> dict[str, Any]:
    """A condition from what a user typed: a comma-separated list for ``in`` / ``not_in``; ``low - high``
    (either side may be empty) for ``between``, numbers or YYYY-MM-DD dates by the field. Raises
    :class:`SpecError` saying what to type."""
    if field not in FIELDS or FIELDS[field].kind not in TYPED_KINDS:
        raise SpecError(f"Choose a field from: {', '.join(f.label for f in FIELDS.values() if f.kind in TYPED_KINDS)}.")
    definition = FIELDS[field]
    raw = text or ""
    text = raw.strip()
    if definition.kind == "choice":
        if op not in ("in", "not_in"):
            raise SpecError(f"{definition.label}: choose 'is one of' or 'is none of'.")
        values = [v.strip() for v in text.split(",") if v.strip()]
        if not values:
            raise SpecError(f"{definition.label}: type one or more values, separated by commas.")
        condition: dict[str, Any] = {"field": field, "op": op, "value": values}
    else:
        if op != "between":
            raise SpecError(f"{definition.label}: choose 'between' and type 'low - high' (either may be empty).")
        parts = _RANGE.split(raw, maxsplit=1)
        if len(parts) != 2:
            raise SpecError(f"{definition.label}: type a range as 'low - high', e.g. "
                            f"{'2025-01-01 - 2025-06-30' if definition.kind == 'date' else '100 - 500'}; leave a side "
                            "empty for no limit.")

        def bound(part: str) -> Any:
            part = part.strip()
            if not part:
                return None
            if definition.kind == "date":
                return date.fromisoformat(part).isoformat()
            number = float(part)
            return int(number) if number.is_integer() else number

        try:
            condition = {"field": field, "op": "between", "value": [bound(parts[0]), bound(parts[1])]}
        except ValueError:
            kind = "dates (YYYY-MM-DD)" if definition.kind == "date" else "numbers"
            raise SpecError(f"{definition.label}: {text!r} is not a range of {kind}.") from None
        if condition["value"] == [None, None]:
            raise SpecError(f"{definition.label}: give at least one end of the range.")
    if negate:
        condition["not"] = True
    return condition
