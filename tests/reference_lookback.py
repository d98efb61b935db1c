"""The look-back oracle: campaign audience rules with behaviour look-backs, and the per-condition funnel, evaluated
with pandas over the raw rows, written from docs/audiences.md (not from analytics.targeting):

* a behaviour condition (orders, net sales, AOV, bought a category or product) with ``"days": N`` reads the
  completed orders of the N days ending on ``end``;
* otherwise, under ``"lookback": "recency"``, from ``end`` minus the largest upper bound of the "days since last
  order" conditions (all history when one has none or is negated, or sits in a negated group; the window when
  there is none); under ``"window"`` (also when the key is absent), the window.
"""

from __future__ import annotations

from datetime import date, timedelta

import pandas as pd

from tests.conftest import Warehouse
from tests.reference_audiences import Reference

BEHAVIOUR = ("order_count", "net_sales", "aov", "bought_category", "bought_product")
EARLIEST = date(1970, 1, 1)


def _reach(group: dict, negated: bool = False) -> list[float]:
    reaches: list[float] = []
    for item in group["conditions"]:
        flipped = negated != bool(item.get("not"))
        if "conditions" in item:
            reaches += _reach(item, flipped)
        elif item["field"] == "days_since_last_order":
            high = item["value"][1]
            reaches.append(float("inf") if flipped or high is None else int(high // 1))
    return reaches


class LookbackReference(Reference):
    """:class:`Reference` with each behaviour condition read over its own look-back."""

    def __init__(self, w: Warehouse, spec: dict) -> None:
        start, end = date.fromisoformat(spec["start"]), date.fromisoformat(spec["end"])
        super().__init__(w, start, end)
        self.spec, self.first, self.last = spec, start, end
        self.default = start
        if spec.get("lookback") == "recency":
            reaches = _reach(spec["rules"])  # a NOT on the top-level group is not applied (as documented)
            if reaches:
                top = max(reaches)
                self.default = EARLIEST if top == float("inf") else end - timedelta(days=int(top))
        self._window = self.window

    def since(self, item: dict) -> date:
        if item.get("days") is not None:
            return self.last - timedelta(days=item["days"] - 1)
        return self.default

    def item(self, item: dict) -> set[str]:
        """The members one condition or group matches, its NOT applied."""
        if "conditions" in item:
            hit = self.group(item)
        elif item["field"] in BEHAVIOUR:
            since = pd.Timestamp(self.since(item))
            self.window = self.completed[(self.completed["ordered_at"] >= since)
                                         & (self.completed["ordered_at"] < self.end + pd.Timedelta(days=1))]
            try:
                hit = self.field(item["field"], item["op"], item["value"])
            finally:
                self.window = self._window
        else:
            hit = self.field(item["field"], item["op"], item["value"])
        return set(self.members.index) - hit if item.get("not") else hit

    def group(self, group: dict) -> set[str]:
        parts = [self.item(item) for item in group["conditions"]]
        if not parts:
            return set(self.members.index) if group["match"] == "all" else set()
        return set.intersection(*parts) if group["match"] == "all" else set.union(*parts)

    def uncapped(self) -> set[str]:
        """Members not sent a campaign in the frequency cap's days (everyone without a cap)."""
        cap = self.spec.get("frequency_cap_days")
        everyone = set(self.members.index)
        if not cap:
            return everyone
        sent = self.w.frame("campaign_members")
        since = pd.Timestamp(self.last - timedelta(days=cap - 1))
        recent = sent[(sent["sent_at"] >= since) & (sent["sent_at"] < self.end + pd.Timedelta(days=1))]
        return everyone - set(recent["member_id"])

    def funnel(self) -> list[tuple[int, int]]:
        """``(alone, remaining)`` per top-level step (groups of the same connective opened), then the cap."""
        rules = self.spec["rules"]

        def opened(group: dict) -> list[dict]:
            out: list[dict] = []
            for item in group["conditions"]:
                same = "conditions" in item and not item.get("not") and item["match"] == group["match"]
                out += opened(item) if same else [item]
            return out

        everyone = set(self.members.index)
        sets = [self.item(item) for item in opened(rules)]
        steps, so_far = [], everyone if rules["match"] == "all" else set()
        for hit in sets:
            so_far = so_far & hit if rules["match"] == "all" else so_far | hit
            steps.append((len(hit), len(so_far)))
        if self.spec.get("frequency_cap_days"):
            matched = so_far if sets else (everyone if rules["match"] == "all" else set())
            kept = self.uncapped()
            steps.append((len(kept), len(matched & kept)))
        return steps
