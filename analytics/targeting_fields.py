"""The fields a campaign audience's conditions can name, each one object: its label, operators, help, how its
value is read (from JSON and from what a user types), written back, and compiled to SQL
(:meth:`Field.where`). The compiler in :mod:`analytics.targeting` is a lookup in :data:`FIELDS`; adding a field
is one more object there (Datasette's filter classes work the same way).

Conditions are two-valued: a member with a missing attribute (no birth date, no tier) is outside every range
and list, so ``not_in`` and NOT include them. Every value is a bound parameter.

**Behaviour** fields (orders, net sales, AOV, bought a category or product: :attr:`Field.behaviour`) read the
completed orders of a **look-back**: from a first day (:attr:`CompileContext.since`, ``None`` for all history) to
the reference day. The audience decides each condition's look-back (:func:`analytics.targeting.condition_since`).

A choice field declares where its **known values** come from (:attr:`Field.known`, a :class:`KnownValues`): the
page offers them in a picker and checks what is typed against them (:mod:`analytics.targeting_values`).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, datetime, time
from typing import TYPE_CHECKING, Any, ClassVar

from sqlalchemy import (
    Column,
    ColumnElement,
    Date,
    Integer,
    Select,
    and_,
    case,
    cast,
    func,
    literal,
    not_,
    select,
)

from analytics import audiences
from analytics.errors import SpecError
from analytics.filters import Filters
from analytics.i18n import N_, _
from analytics.purchase_rollup import BoughtCategory
from analytics.sqlparts import ratio
from analytics.storage.contract import TIERS, members, order_items, orders, products

if TYPE_CHECKING:
    from analytics.targeting import CampaignAudience

#: Most values in one ``in`` list (a product-id list pasted from a spreadsheet fits; a memory bomb does not).
MAX_VALUES = 5_000
#: Longest value in a list.
MAX_VALUE_CHARS = 200
OPERATORS: dict[str, str] = {"in": N_("is one of"), "not_in": N_("is none of"), "between": N_("between")}
#: The separator of a typed range: a hyphen with a space on at least one side (dates and negative numbers
#: keep theirs), an en dash, or two dots.
_RANGE = re.compile(r"\s+-\s*|\s*-\s+|\s*–\s*|\s*\.\.\s*")


@dataclass(frozen=True)
class CompileContext:
    """What a condition compiles against: the window (``end`` is the reference day), the per-member order
    totals when a condition needs them (a subquery LEFT JOINed to ``members``), the nesting depth, and for a
    behaviour condition its look-back: ``since``, the first day it reads (``None``: all history), one of the
    ``periods`` the totals are summed over (``order_count_<i>``, ``net_sales_<i>`` for the i-th period), and the
    ``candidates`` a costly condition is computed for."""

    window: Filters
    totals: Any
    depth: int
    since: date | None = None
    periods: tuple[date | None, ...] = ()
    #: For a :attr:`Field.narrowed` condition: a one-column ``member_id`` CTE of the members the audience's other
    #: conditions keep (None: every member), so its per-member computation runs for them alone.
    candidates: Any = None

    def total(self, name: str) -> Any:
        """The per-member total ``name`` (``order_count`` or ``net_sales``) over this condition's look-back."""
        return self.totals.c[f"{name}_{self.periods.index(self.since)}"]


@dataclass(frozen=True)
class KnownValues:
    """Where a choice field's known values come from: the distinct values of a warehouse ``column``, and the
    values the contract ``allowed`` (listed first, in their order: tiers in programme order, whether members hold
    them yet or not). ``listed``: offered in a picker (False for product ids, too many to list: what is typed is
    looked up instead). ``noun`` names one value in messages ("a category")."""

    column: Column
    noun: str
    allowed: tuple[str, ...] = ()
    listed: bool = True


class Field:
    """A condition's field. ``kind`` is how its value is given: ``choice`` (a list of texts), ``number`` or
    ``date`` (a range), ``spec`` (another page's audience), ``audience`` (a saved campaign audience).
    ``known``: where a choice field's known values come from (None: anything may be typed)."""

    kind: ClassVar[str]
    operators: ClassVar[tuple[str, ...]]
    #: Whether the condition reads the per-member order totals (orders, net sales, AOV, last order).
    needs_totals: ClassVar[bool] = False
    #: Whether the condition reads completed orders over a look-back (a condition may set its own: ``days``).
    behaviour: ClassVar[bool] = False
    #: Whether the field is the recency ("days since the last order") whose reach sets the default look-back.
    recency: ClassVar[bool] = False
    #: Keys a condition on this field may carry besides field, op, value and not (a prediction's model).
    extra_keys: ClassVar[tuple[str, ...]] = ()
    #: Whether the condition costs a computation per member (a model's score): under the audience's top-level
    #: "all", it is then computed only for the members the other conditions keep (``CompileContext.candidates``).
    narrowed: ClassVar[bool] = False
    known: KnownValues | None = None

    def __init__(self, key: str, label: str, help: str, known: KnownValues | None = None) -> None:
        self.key, self.label, self.help = key, label, help
        if known is not None:
            self.known = known

    @property
    def typed(self) -> bool:
        """Whether a user types its value (the others take a whole audience)."""
        return self.kind in ("choice", "number", "date")

    def check_op(self, op: Any) -> str:
        if op not in self.operators:
            raise SpecError(_("{field} takes the operator {operators}, not {op}.").format(
                field=self.key, operators=_(" or ").join(self.operators), op=repr(op)))
        return op

    def parse(self, op: str, value: Any, depth: int) -> Any:
        """The typed value of a JSON condition; raises SpecError saying what to write."""
        raise NotImplementedError

    def parse_condition(self, op: str, item: Mapping[str, Any], depth: int) -> Any:
        """The typed value of a whole JSON condition (its ``value``, and any :attr:`extra_keys`)."""
        return self.parse(op, item.get("value"), depth)

    def to_json(self, value: Any) -> Any:
        return value

    def condition_json(self, value: Any) -> dict[str, Any]:
        """The condition's JSON keys for a value (``value``, and any :attr:`extra_keys`)."""
        return {"value": self.to_json(value)}

    def where(self, op: str, value: Any, ctx: CompileContext) -> ColumnElement[bool]:
        raise NotImplementedError

    def from_text(self, op: str, text: str, models: Mapping[str, Any] | None = None) -> Any:
        """The typed value of what a user typed; raises SpecError saying what to type. ``models``: the current
        prediction models by kind, for the fields that score members."""
        raise SpecError(_("{label} takes a whole audience, not typed values.").format(label=_(self.label)))

    def text(self, value: Any) -> str:
        """What a user would type for this value (the inverse of :meth:`from_text`)."""
        raise NotImplementedError


# --- lists of values --------------------------------------------------------------------------------------

class ChoiceField(Field):
    kind, operators = "choice", ("in", "not_in")

    def parse(self, op: str, value: Any, depth: int) -> tuple[str, ...]:
        if (not isinstance(value, list | tuple) or not value or len(value) > MAX_VALUES
                or not all(isinstance(v, str) and len(v) <= MAX_VALUE_CHARS for v in value)):
            raise SpecError(_("{field}: 'in' and 'not_in' take a non-empty list of at most {most} texts of up to "
                              "{chars} characters.").format(field=self.key, most=f"{MAX_VALUES:,}",
                                                            chars=MAX_VALUE_CHARS))
        return tuple(value)

    def to_json(self, value: tuple[str, ...]) -> list[str]:
        return list(value)

    def where(self, op: str, value: tuple[str, ...], ctx: CompileContext) -> ColumnElement[bool]:
        expr = self.members_with(list(value), ctx)
        return not_(expr) if op == "not_in" else expr

    def members_with(self, values: list[str], ctx: CompileContext) -> ColumnElement[bool]:
        raise NotImplementedError

    def from_text(self, op: str, text: str, models: Mapping[str, Any] | None = None) -> tuple[str, ...]:
        if op not in self.operators:
            raise SpecError(_("{label}: choose 'is one of' or 'is none of'.").format(label=_(self.label)))
        values = [v.strip() for v in (text or "").split(",") if v.strip()]
        if not values:
            raise SpecError(_("{label}: type one or more values, separated by commas.").format(label=_(self.label)))
        return self.parse(op, values, 0)

    def text(self, value: tuple[str, ...]) -> str:
        return ", ".join(value)


class AttributeField(ChoiceField):
    """A member attribute (a column of ``members``); a missing value is in no list."""

    def members_with(self, values: list[str], ctx: CompileContext) -> ColumnElement[bool]:
        column = members.c[self.key]
        return and_(column.is_not(None), column.in_(values))


def orders_since(since: date | None, window: Filters) -> list[ColumnElement[bool]]:
    """Completed member orders from ``since`` (None: any time) up to the reference day (the window's end)."""
    o = orders.c
    conditions = [o.status == "completed", o.member_id.is_not(None), o.ordered_at < window.end_ts]
    if since is not None:
        conditions.append(o.ordered_at >= datetime.combine(since, time()))
    if window.scope.channels:  # the user's channels
        conditions.append(o.channel.in_(window.scope.channels))
    return conditions


class BoughtField(ChoiceField):
    """Bought at least one of the values (categories, or product ids) in a completed order of the look-back."""

    behaviour = True

    def members_with(self, values: list[str], ctx: CompileContext) -> ColumnElement[bool]:
        lines, o = order_items.c, orders.c
        if self.key == "bought_category":
            bought = (select(lines.order_id).join_from(order_items, products, products.c.product_id == lines.product_id)
                      .where(products.c.category.in_(values)))
        else:
            bought = select(lines.order_id).where(lines.product_id.in_(values))
        in_warehouse = members.c.member_id.in_(select(o.member_id).where(*orders_since(ctx.since, ctx.window),
                                                                         o.order_id.in_(bought)))
        if self.key == "bought_category":  # read from the purchase rollup where one is kept
            return BoughtCategory(members.c.member_id, values, ctx.since, ctx.window, in_warehouse)
        return in_warehouse


# --- ranges -------------------------------------------------------------------------------------------------

class RangeField(Field):
    """``between [low, high]``, inclusive, ``null`` = open. Never NULL, so NOT is the exact complement."""

    kind, operators = "number", ("between",)

    def bound(self, value: Any) -> Any:
        return audiences.number(value, _("{field}: a bound").format(field=self.key))

    def bound_from_text(self, part: str) -> Any:
        number = float(part)
        return int(number) if number.is_integer() else number

    def parse(self, op: str, value: Any, depth: int) -> tuple[Any, Any]:
        if not isinstance(value, list | tuple) or len(value) != 2 or (value[0] is None and value[1] is None):
            raise SpecError(_("{field}: 'between' takes [low, high] with at least one of them set (null = open).")
                            .format(field=self.key))
        try:
            low, high = (None if v is None else self.bound(v) for v in value)
        except SpecError:
            raise SpecError(_("{field}: {bounds} are not valid bounds.").format(field=self.key,
                                                                                bounds=repr(list(value)))) from None
        return low, high

    def to_json(self, value: tuple[Any, Any]) -> list[Any]:
        return [v.isoformat() if isinstance(v, date) else v for v in value]

    def expression(self, ctx: CompileContext) -> Any:
        raise NotImplementedError

    def where(self, op: str, value: tuple[Any, Any], ctx: CompileContext) -> ColumnElement[bool]:
        column = self.expression(ctx)
        low, high = value
        parts = [column >= self.sql_bound(low)] if low is not None else []
        if high is not None:
            parts.append(column <= self.sql_bound(high))
        return and_(column.is_not(None), *parts)

    def sql_bound(self, value: Any) -> Any:
        return float(value)

    def from_text(self, op: str, text: str, models: Mapping[str, Any] | None = None) -> tuple[Any, Any]:
        if op != "between":
            raise SpecError(_("{label}: choose 'between' and type 'low - high' (either may be empty).").format(
                label=_(self.label)))
        raw = text or ""
        parts = _RANGE.split(raw, maxsplit=1)
        if len(parts) != 2:
            raise SpecError(_("{label}: type a range as 'low - high', e.g. {example}; leave a side empty for no "
                              "limit.").format(label=_(self.label), example=self.example))
        try:
            low, high = (self.bound_from_text(p.strip()) if p.strip() else None for p in parts)
        except ValueError:
            raise SpecError(_("{label}: {text} is not a range of {noun}.").format(
                label=_(self.label), text=repr(raw.strip()), noun=_(self.noun))) from None
        if low is None and high is None:
            raise SpecError(_("{label}: give at least one end of the range.").format(label=_(self.label)))
        return self.parse(op, [low, high], 0)

    example, noun = "100 - 500", N_("numbers")

    def text(self, value: tuple[Any, Any]) -> str:
        low, high = ("" if v is None else str(v) for v in self.to_json(value))
        return f"{low} - {high}".strip()


class AgeField(RangeField):
    def expression(self, ctx: CompileContext) -> Any:
        return age_on(ctx.window.end, members.c.birth_date)


class ColumnRangeField(RangeField):
    """A number column of ``members``."""

    def expression(self, ctx: CompileContext) -> Any:
        return members.c[self.key]


class RegisteredField(RangeField):
    kind = "date"
    example, noun = "2025-01-01 - 2025-06-30", N_("dates (YYYY-MM-DD)")

    def bound(self, value: Any) -> date:
        return audiences.day(value, _("{field}: a bound").format(field=self.key))

    def bound_from_text(self, part: str) -> str:
        return date.fromisoformat(part).isoformat()

    def sql_bound(self, value: Any) -> Any:
        return value

    def expression(self, ctx: CompileContext) -> Any:
        return cast(members.c.registered_at, Date)


class OrderTotalField(RangeField):
    """From the per-member order totals: members without an order in the look-back count 0 orders and 0 sales."""

    needs_totals = behaviour = True

    def expression(self, ctx: CompileContext) -> Any:
        return func.coalesce(ctx.total(self.key), 0)


class AovField(RangeField):
    """Net sales / orders in the look-back: members without orders there are NULL, outside every range."""

    needs_totals = behaviour = True

    def expression(self, ctx: CompileContext) -> Any:
        return ratio(ctx.total("net_sales"), ctx.total("order_count"))


class DaysSinceLastOrderField(RangeField):
    """Never bought: ``last_at`` is NULL, outside every range."""

    needs_totals = recency = True

    def expression(self, ctx: CompileContext) -> Any:
        end = literal(ctx.window.end, Date)
        return cast(end - cast(ctx.totals.c.last_at, Date), Integer)


def age_on(day: date, birth_date: Any) -> ColumnElement[int]:
    """Whole years from ``birth_date`` to ``day`` (NULL without a birth date)."""
    end = literal(day, Date)
    return (func.extract("year", end) - func.extract("year", birth_date)
            - case(((func.extract("month", end) * 100 + func.extract("day", end))
                    < (func.extract("month", birth_date) * 100 + func.extract("day", birth_date)), 1), else_=0))


# --- other audiences ---------------------------------------------------------------------------------------

class SegmentField(Field):
    """Members of another page's audience (an RFM segment, cluster, tag, heatmap cell, funnel drop-off, rule)."""

    kind, operators = "spec", ("in",)

    def parse(self, op: str, value: Any, depth: int) -> audiences.Audience:
        if depth >= MAX_DEPTH:
            raise SpecError(_("Audiences nest too deeply."))
        others = [k for k in audiences.kinds() if k != "audience"]
        if not isinstance(value, Mapping) or value.get("kind") not in others:
            raise SpecError(_("segment takes an audience definition of kind {kinds}.").format(kinds=", ".join(others)))
        try:
            return audiences.parse_audience(value, depth=depth + 1, allowed=others)
        except SpecError as problem:
            raise SpecError(_("The {kind} audience in 'segment' is not valid: {problem}").format(
                kind=value["kind"], problem=problem)) from None

    def to_json(self, value: audiences.Audience) -> dict[str, Any]:
        return value.to_json()

    def where(self, op: str, value: audiences.Audience, ctx: CompileContext) -> ColumnElement[bool]:
        return members.c.member_id.in_(value.member_ids())


class SavedAudienceField(SegmentField):
    """The members a saved campaign audience targets (both arms, after its own cap and maximum size)."""

    kind = "audience"

    def parse(self, op: str, value: Any, depth: int) -> CampaignAudience:
        if depth >= MAX_DEPTH:
            raise SpecError(_("Audiences nest too deeply."))
        if not isinstance(value, Mapping) or value.get("kind") != "audience":
            raise SpecError(_("saved_audience takes a saved audience's definition (kind \"audience\")."))
        try:
            return audiences.parse_audience(value, depth=depth + 1, allowed=["audience"])  # type: ignore[return-value]
        except SpecError as problem:
            raise SpecError(_("The saved audience {name} is not valid: {problem}").format(
                name=repr(value.get("name", "")), problem=problem)) from None

    def where(self, op: str, value: Select | Any, ctx: CompileContext) -> ColumnElement[bool]:
        return members.c.member_id.in_(value.member_ids())


#: Deepest nesting of groups and of audiences inside audiences.
MAX_DEPTH = 4

FIELDS: dict[str, Field] = {f.key: f for f in (
    AttributeField("tier", N_("Tier"), N_("The member's current tier."),
                   KnownValues(members.c.tier, N_("a tier"), TIERS)),
    AttributeField("region", N_("Region"), N_("The member's region."),
                   KnownValues(members.c.region, N_("a region"))),
    AttributeField("city", N_("City"), N_("The member's city."), KnownValues(members.c.city, N_("a city"))),
    AttributeField("gender", N_("Gender"), N_("As registered."), KnownValues(members.c.gender, N_("a gender"))),
    AttributeField("acquisition_channel", N_("Acquisition channel"), N_("How the member joined."),
                   KnownValues(members.c.acquisition_channel, N_("an acquisition channel"))),
    AgeField("age", N_("Age"), N_("Whole years on the reference day (the window's last day).")),
    RegisteredField("registered", N_("Registration date"), N_("Day of registration.")),
    ColumnRangeField("points_balance", N_("Points balance"), N_("Current points balance.")),
    DaysSinceLastOrderField("days_since_last_order", N_("Days since last order"),
                            N_("Days from the last completed order (any time up to the reference day) to the reference "
                            "day; members who never bought never match. Its upper bound is how far back behaviour "
                            "conditions look by default.")),
    OrderTotalField("order_count", N_("Orders"), N_("Completed orders in the look-back (0 for none).")),
    OrderTotalField("net_sales", N_("Net sales"), N_("Net sales of completed orders in the look-back (0 for none).")),
    AovField("aov", N_("AOV"), N_("Net sales / orders in the look-back; members without orders never match.")),
    BoughtField("bought_category", N_("Bought a category"),
                N_("Bought at least one of these categories in the look-back (use NOT for 'never bought')."),
                KnownValues(products.c.category, N_("a category"))),
    BoughtField("bought_product", N_("Bought a product"),
                N_("Bought at least one of these product ids in the look-back (use NOT for 'never bought')."),
                KnownValues(products.c.product_id, N_("a product id"), listed=False)),
    SegmentField("segment", N_("Segment, cluster, tag, funnel or rule"),
                 N_("Members of another audience: an RFM segment, cluster, tag, heatmap cell, funnel drop-off or "
                 "'bought A, not B' audience definition.")),
    SavedAudienceField("saved_audience", N_("Saved audience"), N_("Members a saved campaign audience targets (both "
                       "arms, after its own cap and maximum size); with NOT, everyone else.")),
)}


def field(key: Any) -> Field:
    """The field named ``key``, or SpecError naming the fields there are."""
    if key not in FIELDS:
        raise SpecError(_("Unknown field {field}; choose from {fields}.").format(field=repr(key),
                                                                                fields=", ".join(FIELDS)))
    return FIELDS[key]
