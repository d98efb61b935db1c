"""Basket rules, acted on: "frequently bought together" for one item, two segments' rules compared, the rule network,
item names, and a rule's cross-sell audience ("bought A, never bought B"). Mining itself is :mod:`analytics.rules`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date
from typing import Any, ClassVar

import numpy as np
import pandas as pd
from sqlalchemy import Select, bindparam, distinct, func, select

from analytics import audiences
from analytics.audiences import Audience, audience_kind
from analytics.errors import InputError
from analytics.filters import OPEN_SCOPE, Filters, Scope, completed_order_conditions
from analytics.i18n import N_, _
from analytics.rules import ITEM_SEPARATOR, LEVELS, Baskets, lines_at_level, rule_metrics
from analytics.storage.contract import orders, products
from analytics.storage.db import Bind, connection

TOGETHER_COLUMNS = ["item", "baskets", "support", "confidence", "lift", "below_chance"]


def bought_together(baskets: Baskets, item: str, top: int = 10, *, include_below_chance: bool = False) -> pd.DataFrame:
    """Items most often in the same basket as ``item`` (ties: higher lift, then name), with the rule item -> other's
    metrics, at most ``top``.

    ``below_chance`` flags a lift under 1: the two are bought together *less* often than if they were bought
    independently, which is no reason to bundle them. Those are left out unless ``include_below_chance``;
    ``attrs["below_chance"]`` counts the items with a lift under 1 (shown or not)."""
    empty = pd.DataFrame(columns=TOGETHER_COLUMNS)
    empty.attrs["below_chance"] = 0
    try:
        code = baskets.labels.index(item)
    except ValueError:
        return empty
    basket_of = np.repeat(np.arange(baskets.count), np.diff(baskets.indptr))
    holding = np.unique(basket_of[baskets.items == code])
    with_item = np.isin(basket_of, holding)
    together = np.bincount(baskets.items[with_item], minlength=len(baskets.labels))
    together[code] = 0
    others = np.flatnonzero(together)
    if not len(others):
        return empty
    counts = baskets.item_counts()
    metrics = rule_metrics(together[others].astype(float), np.full(len(others), float(len(holding))),
                           counts[others].astype(float), baskets.count)
    frame = pd.DataFrame({"item": np.asarray(baskets.labels, dtype=object)[others], "baskets": together[others],
                          "support": metrics["support"], "confidence": metrics["confidence"], "lift": metrics["lift"]})
    frame["below_chance"] = frame["lift"] < 1.0
    below = int(frame["below_chance"].sum())
    if not include_below_chance:
        frame = frame[~frame["below_chance"]]
    ranked = frame.sort_values(["baskets", "lift", "item"], ascending=[False, False, True])
    ranked = ranked.head(top).reset_index(drop=True)
    ranked.attrs["below_chance"] = below
    return ranked


def compare_rules(first: pd.DataFrame, second: pd.DataFrame) -> pd.DataFrame:
    """Rules of two segments side by side: lift in each and the difference (second - first)."""
    keys = ["antecedents", "consequents"]
    merged = first[[*keys, "support", "confidence", "lift"]].merge(
        second[[*keys, "support", "confidence", "lift"]], on=keys, how="outer", suffixes=("_first", "_second"))
    merged["lift_difference"] = merged["lift_second"] - merged["lift_first"]
    order = merged["lift_difference"].abs().fillna(merged[["lift_first", "lift_second"]].max(axis=1))
    return merged.assign(_order=order).sort_values(["_order", *keys], ascending=[False, True, True]).drop(
        columns="_order").reset_index(drop=True)


def rule_network(rules: pd.DataFrame, top: int = 30) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Nodes (item, x, y, rules) on a circle and edges (source, target, x0, y0, x1, y1, lift) of the top rules."""
    chosen = rules.head(top)
    edges = [(a, c, lift) for ants, c, lift in zip(chosen["antecedents"], chosen["consequents"], chosen["lift"],
                                                    strict=True) for a in ants.split(ITEM_SEPARATOR)]
    names = sorted({e[0] for e in edges} | {e[1] for e in edges})
    angle = 2 * np.pi * np.arange(len(names)) / max(len(names), 1)
    position = {n: (float(np.cos(a)), float(np.sin(a))) for n, a in zip(names, angle, strict=True)}
    degree = pd.Series([e[0] for e in edges] + [e[1] for e in edges]).value_counts() if edges else pd.Series()
    nodes = pd.DataFrame({"item": names, "x": [position[n][0] for n in names], "y": [position[n][1] for n in names],
                          "rules": [int(degree.get(n, 0)) for n in names]})
    edge_frame = pd.DataFrame([{"source": s, "target": t, "x0": position[s][0], "y0": position[s][1],
                                "x1": position[t][0], "y1": position[t][1], "lift": lift} for s, t, lift in edges],
                              columns=["source", "target", "x0", "y0", "x1", "y1", "lift"])
    return nodes, edge_frame


def item_names(bind: Bind, level: str, items: Sequence[str]) -> dict[str, str]:
    """How to show items: products as "name (id)"; categories and subcategories are names already."""
    if level != "product" or not items:
        return {i: i for i in items}
    query = select(products.c.product_id, products.c.name).where(
        products.c.product_id.in_(bindparam("ids", expanding=True)))
    with connection(bind) as conn:
        named = {pid: name for pid, name in conn.execute(query, {"ids": list(items)}) if name}
    return {i: f"{named[i]} ({i})" if i in named else i for i in items}


@audience_kind
@dataclass(frozen=True)
class BoughtNotBoughtAudience(Audience):
    """The cross-sell audience of a rule A -> B: members who bought every item of A (completed orders in a period)
    and never any item of B (completed orders, any time). Items are bound (expanding) parameters."""

    kind: ClassVar[str] = "bought_not_bought"
    label: ClassVar[str] = N_("'bought A, never bought B'")  # translated where shown
    keys: ClassVar[frozenset[str]] = frozenset({"level", "bought_all", "never_bought", "bought_between"})

    level: str
    bought_all: tuple[str, ...]
    never_bought: tuple[str, ...]
    start: date
    end: date
    #: The user's scope when made on a page (never part of the JSON definition).
    scope: Scope = OPEN_SCOPE

    def __post_init__(self) -> None:
        if self.level not in LEVELS:
            raise InputError(_("level must be one of {levels}, not {level!r}").format(levels=", ".join(LEVELS),
                                                                                      level=self.level))
        if not self.bought_all or not self.never_bought:
            raise InputError(_("A 'bought A, never bought B' audience needs items on both sides."))
        if self.end < self.start:
            raise InputError(_("The period ends ({end}) before it starts ({start}).").format(end=self.end,
                                                                                             start=self.start))

    def member_ids(self) -> Select:
        source, item = lines_at_level(self.level)
        window = Filters(self.start, self.end, scope=self.scope)
        bought, never = sorted(set(self.bought_all)), sorted(set(self.never_bought))
        buyers = (select(orders.c.member_id).select_from(source)
                  .where(*completed_order_conditions(window, window.start_ts, window.end_ts),
                         orders.c.member_id.is_not(None), item.in_(bought))
                  .group_by(orders.c.member_id)
                  .having(func.count(distinct(item)) == len(bought)))
        buyers_sq = buyers.subquery("buyers")
        bought_never = (select(orders.c.member_id).select_from(source)  # NOT EXISTS: an anti-join everywhere
                        .where(orders.c.member_id == buyers_sq.c.member_id, orders.c.status == "completed",
                               item.in_(never)))
        return select(buyers_sq.c.member_id).where(~bought_never.exists())

    def describe(self) -> str:
        return f"rule {ITEM_SEPARATOR.join(self.bought_all)} → {ITEM_SEPARATOR.join(self.never_bought)}"

    def title(self) -> str:
        return _("Bought {bought}, never {never}").format(bought=ITEM_SEPARATOR.join(self.bought_all),
                                                         never=ITEM_SEPARATOR.join(self.never_bought))

    def body(self) -> dict[str, Any]:
        return {"level": self.level, "bought_all": list(self.bought_all), "never_bought": list(self.never_bought),
                "bought_between": [self.start.isoformat(), self.end.isoformat()]}

    @classmethod
    def from_body(cls, data: Mapping[str, Any], depth: int) -> BoughtNotBoughtAudience:
        between = data["bought_between"]
        if not isinstance(between, list) or len(between) != 2:
            raise InputError('"bought_between" is [first day, last day].')
        return cls(audiences.text(data, "level", 50), audiences.texts(data, "bought_all", limit=100),
                   audiences.texts(data, "never_bought", limit=100), audiences.day(between[0], "bought_between"),
                   audiences.day(between[1], "bought_between"))


def rule_audience(antecedents: str, consequents: str, level: str, start: date, end: date,
                  scope: Scope = OPEN_SCOPE) -> BoughtNotBoughtAudience:
    """The cross-sell audience of rule A -> B (items joined by :data:`ITEM_SEPARATOR`): members who bought all of A
    in the period and never bought B (of those ``scope`` allows)."""
    return BoughtNotBoughtAudience(level, tuple(antecedents.split(ITEM_SEPARATOR)),
                                   tuple(consequents.split(ITEM_SEPARATOR)), start, end, scope)


