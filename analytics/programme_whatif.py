"""Threshold what-if: how many members each tier would hold on a day under other thresholds (or another
evaluation rule), who would move up or down, and what the tiers' benefits would cost.

Definitions (one place; the app shows them as help):

* **Rule** (:class:`TierRule`): the thresholds of the tiers above the lowest, the months of spend an evaluation
  counts and the spend measure (``gross``, as the programme does, or ``net``). Evaluations happen on the first day
  of every month (:mod:`analytics.programme`: the rule, written down once); :meth:`TierRule.today` is the
  programme's own.
* **What-if tier** on a day: the evaluation in force on that day (first day of its month) applied to each
  member's spend on completed orders in the rule's months before it: the highest tier whose threshold the spend
  reaches. Members registered by the end of the day count. With today's rule this is the stored tier exactly.
* **Today's tier**: the member's tier at the end of the day from ``tier_changes``
  (:func:`analytics.programme_tiers.tier_at`).
* **Moves up / down**: members whose what-if tier is above / below today's.
* **Benefits cost** (per year) = Σ over members of their gross spend on completed orders in the twelve calendar
  months before the evaluation × the benefit rate of their tier (a share of spend: discounts, gifts, free
  shipping, whatever the tier gives). The same spend is used for today's tiers and the what-if's, so the change
  is only the tiers' doing.

One SQL statement aggregates the orders once per member and groups members by (today's tier, what-if tier).
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal
from itertools import pairwise
from typing import Any, ClassVar, Literal

import pandas as pd
from sqlalchemy import Double, Numeric, Select, case, cast, func, literal, select

from analytics import audiences
from analytics.audiences import Audience, audience_kind
from analytics.errors import InputError, SpecError
from analytics.i18n import DEFAULT_LANGUAGE, N_, _, code_label, format_day, language
from analytics.programme import EVALUATION_MONTHS, TIER_THRESHOLDS, add_months, evaluation_day
from analytics.programme_tiers import TIER_ORDER, day_end, day_start, tier_at, tier_rank
from analytics.sqlparts import sum_if
from analytics.storage.contract import TIERS, orders
from analytics.storage.db import Bind, read_frame

Measure = Literal["gross", "net"]
MEASURES: dict[str, str] = {"gross": N_("gross amount (before discounts)"), "net": N_("net amount (after discounts)")}
#: A rule in words, by its spend measure.
RULE_WORDS: dict[str, str] = {"gross": N_("{limits}; {months} months of gross spend"),
                              "net": N_("{limits}; {months} months of net spend")}
MAX_THRESHOLD = 1_000_000_000.0
MAX_MONTHS = 36
DIRECTIONS = ("up", "down")
WHATIF_HELP: dict[str, str] = {
    "rule": N_("Tiers are evaluated on the first day of every month, on each member's spend on completed orders in "
               "the months before it: the highest tier whose threshold the spend reaches."),
    "today": N_("The tier each member held at the end of the day (tier changes)."),
    "whatif": N_("The tier the edited rule gives on the same day, from the same orders."),
    "cost": N_("Benefits cost per year: each member's gross spend in the twelve months before the evaluation × the "
               "benefit rate of their tier; today's and the what-if's tiers on the same spend."),
}


def _english() -> bool:
    return language() == DEFAULT_LANGUAGE


def _day(day: date) -> str:
    """A day in a sentence: as it always read in English (``05 Nov 2026``), else in the reader's language."""
    return f"{day:%d %b %Y}" if _english() else format_day(day)


@dataclass(frozen=True)
class TierRule:
    """An evaluation rule: ``thresholds`` of the tiers above the lowest (increasing), ``months`` of spend and the
    spend ``measure``. Refuses impossible rules with an :class:`InputError` saying what to change."""

    thresholds: tuple[float, ...]
    months: int = EVALUATION_MONTHS
    measure: Measure = "gross"

    def __post_init__(self) -> None:
        values = tuple(self.thresholds)
        if len(values) != len(TIERS) - 1:
            raise InputError(_("Give {count} thresholds, for {tiers}; got {given}.").format(
                count=len(TIERS) - 1, tiers=", ".join(TIERS[1:]), given=len(values)))
        if not all(isinstance(v, numbers.Real) and not isinstance(v, bool) and math.isfinite(v) for v in values):
            raise InputError(_("Thresholds must be numbers."))
        if not (values[0] > 0 and all(a < b for a, b in pairwise(values)) and values[-1] <= MAX_THRESHOLD):
            raise InputError(_("Thresholds must increase from tier to tier, above 0 and at most {most}; got "
                               "{given}.").format(most=f"{MAX_THRESHOLD:,.0f}",
                                                  given=", ".join(f"{v:,.2f}" for v in values)))
        if isinstance(self.months, bool) or not isinstance(self.months, int) or not 1 <= self.months <= MAX_MONTHS:
            raise InputError(_("An evaluation counts 1 to {most} months of spend, not {months}.").format(
                most=MAX_MONTHS, months=repr(self.months)))
        if self.measure not in MEASURES:
            raise InputError(_("Unknown spend measure {measure}; choose gross or net.").format(
                measure=repr(self.measure)))
        object.__setattr__(self, "thresholds", tuple(round(float(v), 2) for v in values))

    @classmethod
    def today(cls) -> TierRule:
        """The programme's own rule (:data:`analytics.programme.TIER_THRESHOLDS`, twelve months, gross)."""
        return cls(tuple(TIER_THRESHOLDS[t] for t in TIERS[1:]))

    def threshold(self, tier: str) -> float:
        return 0.0 if tier == TIERS[0] else self.thresholds[TIERS.index(tier) - 1]

    def describe(self) -> str:
        limits = ", ".join(f"{t if _english() else code_label(t)} {self.threshold(t):,.0f}" for t in TIERS[1:])
        return _(RULE_WORDS[self.measure]).format(limits=limits, months=self.months)


def parse_thresholds(text: str) -> tuple[float, ...]:
    """``"1000,5000,20000"`` as thresholds (for the command line); raises InputError."""
    parts = [p.strip() for p in str(text).split(",") if p.strip()]
    try:
        return tuple(float(p) for p in parts)
    except ValueError:
        raise InputError(_("Thresholds are numbers separated by commas, e.g. 1000,5000,20000; got {text}.").format(
            text=repr(text))) from None


def check_rates(rates: Mapping[str, float] | None) -> dict[str, float]:
    """Benefit rates per tier as shares (0 to 1); missing tiers are 0."""
    rates = dict(rates or {})
    unknown = sorted(set(rates) - set(TIERS))
    if unknown:
        raise InputError(_("Unknown tier {unknown}; benefit rates are for {tiers}.").format(
            unknown=", ".join(unknown), tiers=", ".join(TIERS)))
    for tier, rate in rates.items():
        if isinstance(rate, bool) or not isinstance(rate, numbers.Real) or not 0 <= rate <= 1:
            raise InputError(_("The benefit rate of {tier} must be a share from 0 to 1 (e.g. 0.02 for 2%), not "
                               "{rate}.").format(tier=tier, rate=repr(rate)))
    return {t: float(rates.get(t, 0.0)) for t in TIERS}


def _tier_of(spend: Any, rule: TierRule) -> Any:
    """The tier a spend reaches under ``rule`` (thresholds as exact decimals)."""
    steps = [(spend >= literal(Decimal(str(rule.threshold(t))), Numeric(16, 2)), t) for t in reversed(TIERS[1:])]
    return case(*steps, else_=TIERS[0])


def member_tiers(day: date, rule: TierRule) -> Any:
    """``member_id, today_tier, whatif_tier, rule_spend, year_spend`` of every member registered by the end of
    ``day`` (a subquery; see the module docstring)."""
    o = orders.c
    evaluated = evaluation_day(day)
    since_rule, since_year = add_months(evaluated, -rule.months), add_months(evaluated, -EVALUATION_MONTHS)
    amount = o.gross_amount if rule.measure == "gross" else o.net_amount
    spend = (select(o.member_id, sum_if(o.ordered_at >= day_start(since_rule), amount).label("rule_spend"),
                    sum_if(o.ordered_at >= day_start(since_year), o.gross_amount).label("year_spend"))
             .where(o.member_id.is_not(None), o.status == "completed",
                    o.ordered_at >= day_start(min(since_rule, since_year)), o.ordered_at < day_start(evaluated))
             .group_by(o.member_id).subquery("whatif_spend"))
    held = tier_at(day_end(day), "tier_today")
    rule_spend = func.coalesce(spend.c.rule_spend, 0)
    return (select(held.c.member_id, held.c.tier.label("today_tier"), _tier_of(rule_spend, rule).label("whatif_tier"),
                   rule_spend.label("rule_spend"), func.coalesce(spend.c.year_spend, 0).label("year_spend"))
            .select_from(held.outerjoin(spend, spend.c.member_id == held.c.member_id)).subquery("member_tiers"))


@dataclass(frozen=True)
class WhatIf:
    """The what-if of one rule on one day (see the module docstring)."""

    day: date
    evaluated: date
    rule: TierRule
    moves: pd.DataFrame  # today_tier, whatif_tier, members, year_spend
    tiers: pd.DataFrame  # tier, today, whatif, change, benefit_rate, cost_today, cost_whatif
    rates: dict[str, float] = field(default_factory=dict)

    @property
    def members(self) -> int:
        return int(self.moves["members"].sum())

    def moved(self, direction: str) -> int:
        """Members whose what-if tier is above (``up``) or below (``down``) today's."""
        rank = {t: i for i, t in enumerate(TIERS)}
        today = self.moves["today_tier"].map(lambda t: rank.get(t, -1))
        whatif = self.moves["whatif_tier"].map(rank)
        chosen = whatif > today if direction == "up" else whatif < today
        return int(self.moves.loc[chosen, "members"].sum())

    @property
    def cost_today(self) -> float:
        return float(self.tiers["cost_today"].sum())

    @property
    def cost_whatif(self) -> float:
        return float(self.tiers["cost_whatif"].sum())

    @property
    def cost_change(self) -> float:
        return self.cost_whatif - self.cost_today


def whatif_tiers(bind: Bind, day: date, rule: TierRule, rates: Mapping[str, float] | None = None) -> WhatIf:
    """Members per tier on ``day`` under ``rule`` against today's, the moves and the benefits cost."""
    rates = check_rates(rates)
    per_member = member_tiers(day, rule)
    p = per_member.c
    moves = read_frame(bind, select(p.today_tier, p.whatif_tier, func.count().label("members"),
                                    cast(func.sum(p.year_spend), Double).label("year_spend"))
                       .group_by(p.today_tier, p.whatif_tier))
    moves = moves.astype({"members": "int64", "year_spend": "float64"})
    order = {t: i for i, t in enumerate(TIER_ORDER)}
    moves = (moves.assign(_a=moves["today_tier"].map(lambda t: order.get(t, 99)),
                          _b=moves["whatif_tier"].map(lambda t: order.get(t, 99)))
             .sort_values(["_a", "_b"]).drop(columns=["_a", "_b"]).reset_index(drop=True))
    shown = [t for t in TIER_ORDER if t in TIERS or t in set(moves["today_tier"])]
    today = moves.groupby("today_tier")["members"].sum().reindex(shown, fill_value=0)
    whatif = moves.groupby("whatif_tier")["members"].sum().reindex(shown, fill_value=0)
    spend_today = moves.groupby("today_tier")["year_spend"].sum().reindex(shown, fill_value=0.0)
    spend_whatif = moves.groupby("whatif_tier")["year_spend"].sum().reindex(shown, fill_value=0.0)
    rate = pd.Series({t: rates.get(t, 0.0) for t in shown})
    tiers = pd.DataFrame({"tier": shown, "today": today.to_numpy(), "whatif": whatif.to_numpy(),
                          "benefit_rate": rate.to_numpy(), "cost_today": (spend_today * rate).to_numpy(),
                          "cost_whatif": (spend_whatif * rate).to_numpy()})
    tiers.insert(3, "change", tiers["whatif"] - tiers["today"])
    return WhatIf(day, evaluation_day(day), rule, moves, tiers.astype({"today": "int64", "whatif": "int64",
                                                                       "change": "int64"}), rates)


def move_matrix(result: WhatIf) -> pd.DataFrame:
    """Members by today's tier (rows) and what-if tier (columns)."""
    rows = [t for t in TIER_ORDER if t in set(result.moves["today_tier"])]
    return (result.moves.pivot_table(index="today_tier", columns="whatif_tier", values="members", aggfunc="sum")
            .reindex(index=rows, columns=list(TIERS)).fillna(0).astype("int64"))


# ---- who would move: an audience -----------------------------------------------------------------------------------

@audience_kind
@dataclass(frozen=True)
class TierMoveAudience(Audience):
    """The members whose tier would go ``up`` or ``down`` on ``day`` under ``rule``."""

    kind: ClassVar[str] = "tier_whatif"
    label: ClassVar[str] = N_("tier what-if")
    keys: ClassVar[frozenset[str]] = frozenset({"day", "thresholds", "months", "measure", "direction"})

    day: date
    rule: TierRule
    direction: str

    def __post_init__(self) -> None:
        if self.direction not in DIRECTIONS:
            raise SpecError(_("The direction of a tier move is up or down, not {direction}.").format(
                direction=repr(self.direction)))

    def member_ids(self) -> Select:
        p = member_tiers(self.day, self.rule).c
        today, whatif = tier_rank(p.today_tier), tier_rank(p.whatif_tier)
        return select(p.member_id).where(whatif > today if self.direction == "up" else whatif < today)

    def describe(self) -> str:
        text = (_("Members whose tier would go up on {day} with {rule}") if self.direction == "up"
                else _("Members whose tier would go down on {day} with {rule}"))
        return text.format(day=_day(self.day), rule=self.rule.describe())

    def body(self) -> dict[str, Any]:
        return {"day": self.day.isoformat(), "thresholds": list(self.rule.thresholds), "months": self.rule.months,
                "measure": self.rule.measure, "direction": self.direction}

    @classmethod
    def from_body(cls, data: Mapping[str, Any], depth: int) -> TierMoveAudience:
        values = data["thresholds"]
        if not isinstance(values, Sequence) or isinstance(values, str) or len(values) > 10:
            raise SpecError(_('"thresholds" must be a list of numbers.'))
        rule = TierRule(tuple(audiences.number(v, '"thresholds"') for v in values),
                        audiences.whole(data, "months", 1, MAX_MONTHS) if "months" in data else EVALUATION_MONTHS,
                        audiences.text(data, "measure", 10) if "measure" in data else "gross")  # type: ignore[arg-type]
        return cls(audiences.day(data["day"], '"day"'), rule, audiences.text(data, "direction", 10))
