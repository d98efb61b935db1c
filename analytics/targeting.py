"""Campaign audiences: conditions on members combined with AND / OR / NOT, compiled to one SQL query.

A campaign audience (:class:`CampaignAudience`, kind ``"audience"``) is read from JSON (format and examples
in docs/audiences.md) once, at the edges, and passed typed everywhere else::

    {"version": 1, "kind": "audience", "start": "2025-11-16", "end": "2026-11-15",
     "rules": {"match": "all", "conditions": [
         {"field": "tier", "op": "in", "value": ["gold", "diamond"]},
         {"not": true, "field": "bought_category", "op": "in", "value": ["Pets"]},
         {"match": "any", "conditions": [{"field": "net_sales", "op": "between", "value": [1000, null]},
                                         {"field": "segment", "op": "in", "value": {...another spec...}}]}]},
     "frequency_cap_days": 7, "max_size": 50000, "holdout": 0.1, "campaign_key": "double-12",
     "lookback": "recency"}

* ``start`` / ``end`` (inclusive) is the **window**; ``end`` is the reference day (age, days since the last
  order, the frequency cap).
* **Look-back** of the behaviour conditions (orders, net sales, AOV, bought a category or product): a condition's
  own ``"days": N`` reads the N days ending on the reference day. Otherwise the audience's ``lookback`` decides:
  ``"recency"`` reads as far back as the audience's "days since last order" conditions reach (their largest upper
  bound: "last order 90-365 days ago" reads back 365 days, so "bought Beauty" and it can both hold; no upper
  bound, or a negated recency condition, reads all history; without a recency condition, the window);
  ``"window"`` (the default, and the meaning of every definition written before look-backs existed) reads the
  window. See :func:`condition_since`.
* A **condition** names a field (one object each in :mod:`analytics.targeting_fields`) and an operator:
  ``in`` / ``not_in`` a list of values, or ``between`` ``[low, high]`` (inclusive; ``null`` = open).
  ``segment`` takes another page's audience (RFM segment, cluster, tag, heatmap cell, funnel drop-off,
  "bought A not B") and keeps its members. ``"not": true`` negates a condition or a group. A **group** is
  ``{"match": "all" | "any", "conditions": [...]}``.
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
operators come from fixed lists, and anything else is refused with a message naming what is allowed. Sizes
are bounded: at most :data:`MAX_CONDITIONS` conditions in all and :data:`~analytics.targeting_fields.MAX_DEPTH`
levels of nesting.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import date, datetime, time, timedelta
from typing import Any, ClassVar

import pandas as pd
from sqlalchemy import ColumnElement, Select, and_, case, false, func, literal, not_, or_, select, true

from analytics import audiences
from analytics.audiences import Audience, audience_kind
from analytics.errors import SpecError
from analytics.filters import Filters, scope_conditions
from analytics.i18n import N_, _
from analytics.sqlparts import count_if, materialised, sum_if
from analytics.storage.appstate import SavedAudience
from analytics.storage.contract import campaign_members, members, orders
from analytics.storage.db import Bind, connection, read_frame
from analytics.targeting_fields import FIELDS, MAX_DEPTH, OPERATORS, CompileContext, Field, age_on, field

__all__ = ["FIELDS", "OPERATORS", "age_on"]

KIND = "audience"
CHANNELS: tuple[str, ...] = ("email", "sms", "push")
BUCKETS = 65_536  # four hex digits of md5
MIN_PHONE_CHARS = 8
#: Most conditions in one audience, counted at every depth (nested audiences included).
MAX_CONDITIONS = 200
#: How behaviour conditions look back, by default (a condition's own ``days`` overrides it).
LOOKBACKS: dict[str, str] = {"recency": N_("as far back as the recency condition reaches"),
                             "window": N_("over the audience window")}
#: The look-back of a definition without ``lookback`` (written before look-backs existed: the same meaning).
LEGACY_LOOKBACK = "window"
#: Longest look-back a condition may set, in days (ten years).
MAX_LOOKBACK_DAYS = 3_660
#: A recency bound reaching further back than this (a century) reads all history.
MAX_REACH_DAYS = 36_525
#: Most listed values in one audience (every ``in`` / ``not_in`` list at every depth): each is a bound parameter.
MAX_TOTAL_VALUES = 20_000


# --- the rules ---------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Condition:
    """``field op value``, negated when ``negate``; ``value`` is typed by its field (a tuple of texts, a
    ``(low, high)`` range, an audience). ``days``: a behaviour condition's own look-back (the N days ending on the
    reference day; None: the audience's)."""

    field: str
    op: str
    value: Any
    negate: bool = False
    days: int | None = None

    def __post_init__(self) -> None:
        if self.days is not None:
            if not FIELDS[self.field].behaviour:
                raise SpecError(_('{field} does not look back: only {fields} take "days".').format(
                    field=self.field, fields=", ".join(behaviour_fields())))
            if isinstance(self.days, bool) or not isinstance(self.days, int) or not 1 <= self.days <= MAX_LOOKBACK_DAYS:
                raise SpecError(_('{field}: "days" (its look-back) is a whole number of days from 1 to {most}, not '
                                  '{days}.').format(field=self.field, most=f"{MAX_LOOKBACK_DAYS:,}",
                                                    days=repr(self.days)))

    def to_json(self) -> dict[str, Any]:
        data = {"field": self.field, "op": self.op, **FIELDS[self.field].condition_json(self.value)}
        if self.days is not None:
            data["days"] = self.days
        return {"not": True, **data} if self.negate else data

    def conditions(self) -> int:
        inner = self.value.rules.conditions() if isinstance(self.value, CampaignAudience) else 0
        return 1 + inner

    def values(self) -> int:
        """Listed values (bound parameters), nested audiences included."""
        if isinstance(self.value, CampaignAudience):
            return self.value.rules.values()
        return len(self.value) if isinstance(self.value, tuple) and self.op != "between" else 0


@dataclass(frozen=True)
class Group:
    """Conditions and groups combined with ``all`` (AND) or ``any`` (OR), negated when ``negate``."""

    match: str = "all"
    items: tuple[Condition | Group, ...] = ()
    negate: bool = False

    def to_json(self) -> dict[str, Any]:
        data = {"match": self.match, "conditions": [item.to_json() for item in self.items]}
        return {"not": True, **data} if self.negate else data

    def conditions(self) -> int:
        return sum(item.conditions() for item in self.items)

    def values(self) -> int:
        return sum(item.values() for item in self.items)

    def flat(self) -> list[Condition]:
        """Every condition, at any depth of this group (not inside nested audiences)."""
        return [c for item in self.items for c in (item.flat() if isinstance(item, Group) else [item])]


def _negated(item: Mapping[str, Any]) -> bool:
    flag = item.get("not", False)
    if not isinstance(flag, bool):
        raise SpecError(_('"not" is true or false, not {value}.').format(value=repr(flag)))
    return flag


def parse_rules(data: Any, depth: int = 0, level: int = 0) -> Group:
    """A group of conditions from JSON (see the module docstring); raises SpecError saying what to change."""
    if level > MAX_DEPTH:
        raise SpecError(_("Audiences nest too deeply."))
    if not isinstance(data, Mapping):
        raise SpecError(_('"rules" must be a group: {group}.').format(
            group='{"match": "all" or "any", "conditions": [...]}'))
    unknown = set(data) - {"match", "conditions", "not"}
    if unknown:
        raise SpecError(_("A group has keys it does not know: {keys}.").format(
            keys=", ".join(sorted(map(str, unknown)))))
    match, items = data.get("match", "all"), data.get("conditions", [])
    if match not in ("all", "any"):
        raise SpecError(_('A group matches "all" or "any", not {match}.').format(match=repr(match)))
    if not isinstance(items, list):
        raise SpecError(_('A group\'s "conditions" must be a list.'))
    if len(items) > MAX_CONDITIONS:
        raise SpecError(_("An audience has at most {most} conditions; this group has {count}.").format(
            most=MAX_CONDITIONS, count=f"{len(items):,}"))
    parsed: list[Condition | Group] = []
    for item in items:
        if not isinstance(item, Mapping):
            raise SpecError(_("Each condition must be an object with field, op and value (or a group)."))
        if "conditions" in item:
            parsed.append(parse_rules(item, depth, level + 1))
            continue
        kind = field(item.get("field"))
        unknown = set(item) - {"field", "op", "value", "not", "days", *kind.extra_keys}
        if unknown:
            raise SpecError(_("A condition has keys it does not know: {keys}.").format(
                keys=", ".join(sorted(map(str, unknown)))))
        op = kind.check_op(item.get("op"))
        parsed.append(Condition(kind.key, op, kind.parse_condition(op, item, depth), _negated(item),
                                item.get("days")))
    group = Group(match, tuple(parsed), _negated(data))
    if group.conditions() > MAX_CONDITIONS:
        raise SpecError(_("An audience has at most {most} conditions (nested audiences included); this one has "
                          "{count}.").format(most=MAX_CONDITIONS, count=f"{group.conditions():,}"))
    if group.values() > MAX_TOTAL_VALUES:
        raise SpecError(_("An audience lists at most {most} values in all (nested audiences included); this one "
                          "lists {count}.").format(most=f"{MAX_TOTAL_VALUES:,}", count=f"{group.values():,}"))
    return group


# --- the audience ------------------------------------------------------------------------------------------

@audience_kind
@dataclass(frozen=True)
class CampaignAudience(Audience):
    """A campaign audience: its rules over a window, and the options that decide who is sent what.

    ``window``'s ``end`` is the reference day (age, days since the last order, the frequency cap). ``name`` and
    ``saved_version`` are set when it was saved (and embedded by value in another audience)."""

    kind: ClassVar[str] = KIND
    label: ClassVar[str] = ""  # messages say "audience"
    keys: ClassVar[frozenset[str]] = frozenset({"start", "end", "rules", "frequency_cap_days", "max_size",
                                                "holdout", "campaign_key", "name", "saved_version", "lookback"})

    window: Filters
    rules: Group = Group()
    frequency_cap_days: int | None = None
    max_size: int | None = None
    holdout: float = 0.0
    campaign_key: str = ""
    name: str | None = None
    saved_version: int | None = None
    lookback: str = LEGACY_LOOKBACK

    def __post_init__(self) -> None:
        if self.lookback not in LOOKBACKS:
            raise SpecError(_("lookback is {choices}, not {lookback}.").format(
                choices=_(" or ").join(map(repr, LOOKBACKS)), lookback=repr(self.lookback)))
        cap, size, holdout, key = self.frequency_cap_days, self.max_size, self.holdout, self.campaign_key
        if cap is not None and (not isinstance(cap, int) or isinstance(cap, bool) or not 1 <= cap <= 365):
            raise SpecError(_("frequency_cap_days must be a whole number of days from 1 to 365, or null."))
        if size is not None and (not isinstance(size, int) or isinstance(size, bool) or not 1 <= size <= 10**9):
            raise SpecError(_("max_size must be a positive whole number, or null."))
        if not isinstance(holdout, int | float) or isinstance(holdout, bool) or not 0 <= holdout <= 0.5:
            raise SpecError(_("holdout must be a share from 0 to 0.5 (e.g. 0.1 for 10%)."))
        if not isinstance(key, str) or len(key) > 200:
            raise SpecError(_("campaign_key must be text of at most 200 characters."))

    def body(self) -> dict[str, Any]:
        body: dict[str, Any] = {"start": self.window.start.isoformat(), "end": self.window.end.isoformat(),
                                "rules": self.rules.to_json(), "frequency_cap_days": self.frequency_cap_days,
                                "max_size": self.max_size, "holdout": self.holdout, "campaign_key": self.campaign_key}
        if self.lookback != LEGACY_LOOKBACK:  # written only when it differs: older definitions read back unchanged
            body["lookback"] = self.lookback
        if self.name is not None:
            body |= {"name": self.name, "saved_version": self.saved_version}
        return body

    def describe(self) -> str:
        if self.name:
            return _("Saved audience {name} (v{version})").format(name=self.name, version=self.saved_version)
        return _("Campaign audience {key}").format(key=self.campaign_key or _("(no campaign key)"))

    @classmethod
    def from_body(cls, data: Mapping[str, Any], depth: int) -> CampaignAudience:
        try:
            window = audiences.window({k: data[k] for k in ("start", "end") if k in data}, channels=False)
        except SpecError as problem:
            raise SpecError(_("The audience window is not valid: {problem}").format(problem=problem)) from None
        name, version = data.get("name"), data.get("saved_version")
        if name is not None and (not isinstance(name, str) or len(name) > 200):
            raise SpecError(_('"name" must be text of at most 200 characters.'))
        if version is not None and (isinstance(version, bool) or not isinstance(version, int)):
            raise SpecError(_('"saved_version" must be a whole number.'))
        rules = parse_rules(data.get("rules", {"match": "all", "conditions": []}), depth)
        holdout = data.get("holdout", 0.0)
        return cls(window, rules, data.get("frequency_cap_days"), data.get("max_size"),
                   float(holdout) if isinstance(holdout, int | float) and not isinstance(holdout, bool) else holdout,
                   data.get("campaign_key", ""), name, version, data.get("lookback", LEGACY_LOOKBACK))

    def member_ids(self) -> Select:
        """The members a campaign would target (both arms, after the cap and the maximum size)."""
        targeted = _targeted_arms(self).subquery("targeted")
        return select(targeted.c.member_id)

    def annotations(self, bind: Bind) -> pd.DataFrame:
        """Each targeted member's arm (treatment / control)."""
        return targeted_members(bind, self)

    def saved_as(self, name: str, version: int) -> CampaignAudience:
        return replace(self, name=name, saved_version=version)


def parse_spec(spec: Mapping[str, Any]) -> CampaignAudience:
    """A campaign audience from its JSON definition (the edges: files, saved rows, the command line)."""
    audience = audiences.parse_audience(spec, allowed=[KIND])
    assert isinstance(audience, CampaignAudience)
    return audience


def from_saved(saved: SavedAudience) -> CampaignAudience:
    """A saved audience (a row of the app-state database), with its name and version."""
    return parse_spec(saved.spec).saved_as(saved.name, saved.version)


# --- look-backs -----------------------------------------------------------------------------------------

def behaviour_fields() -> list[str]:
    """The fields whose conditions read completed orders over a look-back."""
    return [key for key, f in FIELDS.items() if f.behaviour]


def recency_reach(rules: Group) -> float | None:
    """How many days back the rules' "days since last order" conditions reach: the largest upper bound among
    them (``math.inf`` when one has none, is negated, or lies in a negated group: its members' last order may
    lie any time back); None without such a condition."""
    reaches: list[float] = []

    def walk(group: Group, negated: bool) -> None:
        for item in group.items:
            if isinstance(item, Group):
                walk(item, negated != item.negate)
            elif FIELDS[item.field].recency:
                high = item.value[1]
                flipped = negated != item.negate
                reaches.append(math.inf if flipped or high is None or high > MAX_REACH_DAYS else math.floor(high))

    walk(rules, False)  # as the compiler reads the rules: a NOT on the top-level group itself is not applied
    return max(reaches) if reaches else None


def default_since(audience: CampaignAudience) -> date | None:
    """The first day a behaviour condition without its own ``days`` reads (None: all history): the window's
    start under the ``window`` look-back, else as far back as :func:`recency_reach` (the window without a
    recency condition)."""
    window = audience.window
    if audience.lookback == "window":
        return window.start
    reach = recency_reach(audience.rules)
    if reach is None:
        return window.start
    if math.isinf(reach):
        return None
    return window.end - timedelta(days=int(reach))


def condition_since(audience: CampaignAudience, condition: Condition) -> date | None:
    """The first day a behaviour condition reads (None: all history); it reads up to the reference day."""
    if condition.days is not None:
        return audience.window.end - timedelta(days=condition.days - 1)
    return default_since(audience)


def _earliest(days: list[date | None]) -> date | None:
    return None if any(d is None for d in days) else min(days)  # type: ignore[type-var]


def member_order_totals(window: Filters, all_time: bool = False, within: Any = None) -> Any:
    """Per member with a completed order: ``order_count`` and ``net_sales`` in the window, ``last_at`` (the
    last completed order up to the window's end; before the window too when ``all_time``). A subquery; ``within``
    (a select of member ids) limits it to those members, so that only their orders are grouped."""
    o = orders.c
    in_window = o.ordered_at >= window.start_ts
    scope = [o.status == "completed", o.member_id.is_not(None), o.ordered_at < window.end_ts]
    if within is not None:
        scope.append(o.member_id.in_(within))
    if window.scope.channels:  # a user restricted to some sales channels sees only their orders
        scope.append(o.channel.in_(window.scope.channels))
    if not all_time:  # read the window only
        scope.append(in_window)
    return (select(o.member_id, count_if(in_window).label("order_count"),
                   func.coalesce(sum_if(in_window, o.net_amount), 0).label("net_sales"),
                   func.max(o.ordered_at).label("last_at"))
            .where(*scope).group_by(o.member_id).subquery("member_orders"))


def _order_totals(window: Filters, periods: tuple[date | None, ...], scan_from: date | None) -> Any:
    """Per member with a completed order from ``scan_from`` (None: any time) to the reference day: for each of
    the ``periods`` (a first day, None for all history) ``order_count_<i>`` and ``net_sales_<i>``, and
    ``last_at``. One scan of ``orders`` whatever the number of look-backs."""
    o = orders.c
    columns: list[Any] = [o.member_id]
    for i, since in enumerate(periods):
        inside = o.ordered_at >= datetime.combine(since, time()) if since is not None else true()
        columns += [count_if(inside).label(f"order_count_{i}"),
                    func.coalesce(sum_if(inside, o.net_amount), 0).label(f"net_sales_{i}")]
    columns.append(func.max(o.ordered_at).label("last_at"))
    scope = [o.status == "completed", o.member_id.is_not(None), o.ordered_at < window.end_ts]
    if scan_from is not None:
        scope.append(o.ordered_at >= datetime.combine(scan_from, time()))
    return select(*columns).where(*scope).group_by(o.member_id).subquery("member_orders")


class _Compiler:
    """Compiles one audience's rules to a WHERE clause over ``members`` and whatever it must join.

    The order-based numbers (orders, net sales, AOV, days since the last order) all come from ONE per-member
    aggregation of ``orders`` (``member_orders``), LEFT JOINed once however many conditions use it (each
    condition used to scan the orders on its own: 1.7 s for a six-condition preview at 1M members); each look-back
    the conditions use is a pair of conditional sums in it. The scan starts on the earliest day a condition needs
    (a recency condition ``[low, high]`` needs the ``high`` days before the reference day: a member whose last
    order is older is outside the range whether or not that order is read)."""

    def __init__(self, audience: CampaignAudience, depth: int = 0) -> None:
        self.audience = audience
        conditions = audience.rules.flat()
        end = audience.window.end
        totals = [c for c in conditions if FIELDS[c.field].needs_totals]
        self.periods = tuple(dict.fromkeys(condition_since(audience, c) for c in totals if FIELDS[c.field].behaviour))
        needs: list[date | None] = list(self.periods)
        for c in totals:
            if FIELDS[c.field].recency:
                high = c.value[1]
                needs.append(None if high is None or high > MAX_REACH_DAYS else end - timedelta(days=math.floor(high)))
        self.totals = _order_totals(audience.window, self.periods, _earliest(needs)) if totals else None
        self.context = CompileContext(audience.window, self.totals, depth, audience.window.start, self.periods)
        self.narrowed = False
        self.where = self.narrowed_where(audience.rules)
        if self.where is None:
            self.where = self.group(audience.rules)

    def narrowed_where(self, rules: Group) -> ColumnElement[bool] | None:
        """Under a top-level "all", the costly conditions (:attr:`Field.narrowed`: a model's score) computed only
        for the members the other conditions keep: those first, as a materialised CTE, then each costly condition
        among them (a score over the 175,000 members six conditions keep at 1M, not all 900,000). None when the
        rules are not of that shape."""
        late = [i for i in rules.items if isinstance(i, Condition) and not i.negate and FIELDS[i.field].narrowed]
        early = [i for i in rules.items if not any(i is item for item in late)]
        if rules.match != "all" or rules.negate or not late or not early:
            return None
        m = members.c
        kept = materialised(select(m.member_id).select_from(self._joined())
                            .where(*(self.item(i) for i in early), *scope_conditions(self.audience.window.scope)))
        context = replace(self.context, candidates=kept)
        self.narrowed = True  # the totals are read inside the CTE only
        return and_(m.member_id.in_(select(kept.c.member_id)),
                    *(FIELDS[i.field].where(i.op, i.value, context) for i in late))

    def _joined(self) -> Any:
        if self.totals is None:
            return members
        return members.outerjoin(self.totals, self.totals.c.member_id == members.c.member_id)

    def source(self) -> Any:
        """``members``, with the per-member order totals joined when a condition needs them."""
        return members if self.narrowed else self._joined()

    def item(self, item: Condition | Group) -> ColumnElement[bool]:
        """One condition or group as a boolean expression (its NOT applied)."""
        if isinstance(item, Group):
            expr = self.group(item)
        else:
            kind: Field = FIELDS[item.field]
            context = (replace(self.context, since=condition_since(self.audience, item)) if kind.behaviour
                       else self.context)
            expr = kind.where(item.op, item.value, context)
        return not_(expr) if item.negate else expr

    def group(self, group: Group) -> ColumnElement[bool]:
        parts = [self.item(item) for item in group.items]
        if not parts:
            return true() if group.match == "all" else false()
        return and_(*parts) if group.match == "all" else or_(*parts)


def audience_member_ids(audience: CampaignAudience) -> Select:
    """The members matching the audience's rules (before frequency cap, maximum size and holdout)."""
    compiled = _Compiler(audience)
    return (select(members.c.member_id).select_from(compiled.source())
            .where(compiled.where, *scope_conditions(audience.window.scope)))


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
    raise SpecError(_("Unknown channel {channel}; choose from {channels}.").format(channel=repr(channel),
                                                                                  channels=", ".join(CHANNELS)))


def _matched(audience: CampaignAudience, depth: int = 0) -> Select:
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
               .select_from(compiled.source()).where(compiled.where, *scope_conditions(audience.window.scope))
               .subquery("flagged"))
    f = flagged.c
    if not audience.max_size:  # no ranking needed (a window over every matching member is not free)
        return select(flagged, literal(0).label("rank"))
    rank = func.row_number().over(partition_by=f.capped, order_by=(f.prefix, f.member_id))
    return select(flagged, rank.label("rank"))


def _targeted(audience: CampaignAudience, matched: Any) -> ColumnElement[bool]:
    kept = matched.c.capped == 0
    return and_(kept, matched.c.rank <= audience.max_size) if audience.max_size else kept


def _control(audience: CampaignAudience, matched: Any) -> ColumnElement[bool]:
    return _below(matched.c.prefix, round(audience.holdout * BUCKETS))


def _targeted_arms(audience: CampaignAudience, depth: int = 0) -> Select:
    matched = _matched(audience, depth).subquery("matched")
    arm = case((_control(audience, matched), "control"), else_="treatment")
    return select(matched.c.member_id, arm.label("arm")).where(_targeted(audience, matched))


def targeted_select(audience: CampaignAudience) -> Select:
    """``member_id``, ``arm`` (treatment / control) of the members a campaign would target: the rules, then
    the frequency cap, then the maximum size (the lowest buckets), then the holdout."""
    return _targeted_arms(audience)


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


def preview_arms(audience: CampaignAudience) -> Select:
    """One row per matching member: ``member_id``, ``targeted`` and ``control`` (1 or 0) and ``reach_<channel>``
    (what :func:`preview` counts, and :func:`analytics.audience_report.preview_and_overlap` shares)."""
    matched = _matched(audience).subquery("matched")
    return select(matched.c.member_id, case((_targeted(audience, matched), 1), else_=0).label("targeted"),
                  case((_control(audience, matched), 1), else_=0).label("control"),
                  *(matched.c[f"reach_{c}"] for c in CHANNELS))


def preview_counts(arms: Any) -> Select:
    """Members and reachable members per (targeted, control) of :func:`preview_arms` (a subquery or CTE)."""
    a = arms.c
    return select(a.targeted, a.control, func.count().label("members"),
                  *(func.sum(a[f"reach_{c}"]).label(c) for c in CHANNELS)).group_by(a.targeted, a.control)


def preview_from_counts(rows: Sequence[Mapping[str, Any]]) -> Preview:
    """The :class:`Preview` of :func:`preview_counts`' rows."""
    targeted = [r for r in rows if int(r["targeted"]) == 1]
    treated = [r for r in targeted if int(r["control"]) == 0]
    return Preview(sum(int(r["members"]) for r in rows), sum(int(r["members"]) for r in targeted),
                   sum(int(r["members"]) for r in targeted if int(r["control"]) == 1),
                   {c: sum(int(r[c]) for r in targeted) for c in CHANNELS},
                   {c: sum(int(r[c]) for r in treated) for c in CHANNELS})


def preview(bind: Bind, audience: CampaignAudience) -> Preview:
    """Audience size, targeted size, control size and reachable per channel, in one SQL statement.

    The members are grouped by (targeted, control): each member's hash is computed once (counting the arms
    with conditional counts computed it once per count, four times the work at 1M members)."""
    counts = preview_counts(preview_arms(audience).subquery("arms"))
    with connection(bind) as conn:
        return preview_from_counts([row._mapping for row in conn.execute(counts)])


def targeted_members(bind: Bind, audience: CampaignAudience) -> pd.DataFrame:
    """``member_id``, ``arm`` of every targeted member, ordered by member id."""
    targeted = targeted_select(audience).subquery("targeted")
    return read_frame(bind, select(targeted).order_by(targeted.c.member_id))


def targeted_member_ids(audience: CampaignAudience) -> Select:
    """The member ids a campaign would target (both arms), for member lists and saved-audience conditions."""
    return audience.member_ids()




def condition_from_text(field_key: str, op: str, text: str, negate: bool = False,
                        models: Mapping[str, Any] | None = None, days: int | None = None) -> Condition:
    """A condition from what a user typed: a comma-separated list for ``in`` / ``not_in``; ``low - high``
    (either side may be empty) for ``between``, numbers or YYYY-MM-DD dates by the field; a prediction field
    takes its model from ``models`` (the current ones by kind); ``days``: a behaviour condition's own look-back.
    Raises :class:`SpecError` saying what to type."""
    if field_key not in FIELDS or not FIELDS[field_key].typed:
        raise SpecError(_("Choose a field from: {fields}.").format(
            fields=", ".join(_(f.label) for f in FIELDS.values() if f.typed)))
    kind = FIELDS[field_key]
    if days is not None and not kind.behaviour:
        raise SpecError(_("{label} does not look back: leave its look-back empty (it is for {fields}).").format(
            label=_(kind.label), fields=", ".join(_(FIELDS[k].label) for k in behaviour_fields())))
    return Condition(field_key, op, kind.from_text(op, text, models), negate, days)


# --- why an audience is the size it is ---------------------------------------------------------------------

#: Below this many targeted members the page explains the size without being asked.
SMALL_AUDIENCE = 1_000


def lookback_text(audience: CampaignAudience, condition: Condition) -> str:
    """A behaviour condition's look-back in words: its own "last 30 days", else the audience's "since 2025-11-15"
    or "all history" (up to the reference day)."""
    if condition.days is not None:
        return _("last {days} days").format(days=f"{condition.days:,}")
    since = condition_since(audience, condition)
    return _("all history") if since is None else _("since {day}").format(day=since.isoformat())


def describe_condition(audience: CampaignAudience, item: Condition | Group) -> str:
    """A condition or group in words, as the funnel labels it: "Tier is one of gold, diamond", "Bought a category
    is one of Beauty (last 365 days)", "NOT ...", "any of (...; ...)"."""
    if isinstance(item, Group):
        inner = "; ".join(describe_condition(audience, i) for i in item.items)
        text = (_("all of ({conditions})") if item.match == "all" else _("any of ({conditions})")).format(
            conditions=inner)
    else:
        kind = FIELDS[item.field]
        if kind.typed:
            text = _("{field} {operator} {values}").format(field=_(kind.label), operator=_(OPERATORS[item.op]),
                                                          values=kind.text(item.value))
        else:
            text = _("{field}: {audience}").format(field=_(kind.label), audience=item.value.describe())
        if kind.behaviour:
            text = _("{condition} ({lookback})").format(condition=text, lookback=lookback_text(audience, item))
    return _("NOT {condition}").format(condition=text) if item.negate else text


@dataclass(frozen=True)
class FunnelStep:
    """One step of :class:`ConditionFunnel`: ``alone`` members match it on its own, ``remaining`` match it and
    every step before it (under "all"; under "any", it or any step before it)."""

    label: str
    alone: int
    remaining: int


@dataclass(frozen=True)
class ConditionFunnel:
    """How each top-level condition of an audience narrows it, in the order written: starting from ``members``
    (all members), then each condition or group, then the frequency cap (when set). ``match`` is how the
    conditions combine. The last step's ``remaining`` is the preview's targeted size before the maximum size."""

    match: str
    members: int
    steps: tuple[FunnelStep, ...]

    def narrowest(self) -> int | None:
        """The step that removes the members: under "all", the first step that leaves nobody, else the one that
        keeps the smallest share of the members reaching it (the first such); under "any", None."""
        if self.match != "all" or not self.steps:
            return None
        before, best, kept = self.members, None, math.inf
        for number, step in enumerate(self.steps):
            if before and step.remaining == 0:
                return number
            share = step.remaining / before if before else 1.0
            if share < kept:
                best, kept = number, share
            before = step.remaining
        return best


def _funnel_items(rules: Group) -> list[Condition | Group]:
    """The top-level items, with groups of the same connective (not negated) opened: AND of ANDs is one AND (the
    page composes its table and the saved audiences that way)."""
    items: list[Condition | Group] = []
    for item in rules.items:
        if isinstance(item, Group) and not item.negate and item.match == rules.match:
            items += _funnel_items(item)
        else:
            items.append(item)
    return items


def condition_funnel(bind: Bind, audience: CampaignAudience) -> ConditionFunnel:
    """The per-condition funnel of counts (:class:`ConditionFunnel`) in one SQL statement: each top-level item is
    a 0/1 flag per member, computed once, and the cumulative counts are conditional counts of those flags. A
    negated top-level group would need its own step, but the compiler does not apply it either, so the steps
    are its items."""
    compiled = _Compiler(audience)
    items = _funnel_items(audience.rules)
    m = members.c
    flags = [case((compiled.item(item), 1), else_=0).label(f"s{i}") for i, item in enumerate(items)]
    labels = [describe_condition(audience, item) for item in items]
    if audience.frequency_cap_days:
        since = datetime.combine(audience.window.end - timedelta(days=audience.frequency_cap_days - 1), time())
        cm = campaign_members.c
        capped = m.member_id.in_(select(cm.member_id).where(cm.sent_at >= since, cm.sent_at < audience.window.end_ts))
        flags.append(case((capped, 0), else_=1).label("cap"))
    per_member = select(*flags, literal(1).label("one")).select_from(compiled.source()).subquery("flags")
    f = per_member.c
    hits = [f[f"s{i}"] == 1 for i in range(len(items))]
    combine = and_ if audience.rules.match == "all" else or_
    counts = [func.count().label("members")]
    for i, hit in enumerate(hits):
        counts += [count_if(hit).label(f"alone{i}"), count_if(combine(*hits[:i + 1])).label(f"remaining{i}")]
    if audience.frequency_cap_days:
        matched = combine(*hits) if hits else (true() if audience.rules.match == "all" else false())
        counts += [count_if(f.cap == 1).label("alone_cap"), count_if(and_(matched, f.cap == 1)).label("remaining_cap")]
    with connection(bind) as conn:
        row = conn.execute(select(*counts)).one()._mapping
    steps = [FunnelStep(label, int(row[f"alone{i}"]), int(row[f"remaining{i}"])) for i, label in enumerate(labels)]
    if audience.frequency_cap_days:
        steps.append(FunnelStep(_("Not sent a campaign in the last {days} days (frequency cap)").format(
                                    days=audience.frequency_cap_days),
                                int(row["alone_cap"]), int(row["remaining_cap"])))
    return ConditionFunnel(audience.rules.match, int(row["members"]), tuple(steps))


# The prediction fields (churn risk, CLV, ...) are defined with the predictions and join FIELDS when imported.
from analytics import prediction_audiences  # noqa: E402, F401
