"""The audience oracle: campaign audience rules evaluated with pandas over the raw rows, written from the module's
definitions (used by the targeting and audience-report tests), and the tests' edge: JSON definitions parsed as the
CLI and pages parse them."""

from __future__ import annotations

from datetime import date, timedelta

import pandas as pd

from analytics import targeting
from analytics.filters import Filters
from analytics.storage.warehouse import data_span
from tests.conftest import Warehouse
from tests.reference import pandas_rfm


def preview(bind, spec: dict) -> targeting.Preview:
    """The preview of a JSON definition (parsed here, at the test's edge, as the CLI and pages do)."""
    return targeting.preview(bind, targeting.parse_spec(spec))


def targeted_members(bind, spec: dict) -> pd.DataFrame:
    return targeting.targeted_members(bind, targeting.parse_spec(spec))


def condition_from_text(field: str, op: str, typed: str, negate: bool = False) -> dict:
    """A typed condition as its JSON."""
    return targeting.condition_from_text(field, op, typed, negate).to_json()


def window_of(w: Warehouse) -> tuple[date, date]:
    span = data_span(w.engine)
    return span.last_day - timedelta(days=364), span.last_day


def spec_for(w: Warehouse, conditions: list, match: str = "all", **options) -> dict:
    start, end = window_of(w)
    return {"version": 1, "kind": "audience", "start": start.isoformat(), "end": end.isoformat(),
            "rules": {"match": match, "conditions": conditions}, **options}


class Reference:
    """The audience rules evaluated with pandas over the raw rows, written from the module's definitions."""

    def __init__(self, w: Warehouse, start: date, end: date) -> None:
        self.w, self.start, self.end = w, pd.Timestamp(start), pd.Timestamp(end)
        self.members = w.frame("members").set_index("member_id")
        o = w.frame("orders")
        self.completed = o[(o["status"] == "completed") & o["member_id"].notna()]
        self.window = self.completed[(self.completed["ordered_at"] >= self.start)
                                     & (self.completed["ordered_at"] < self.end + pd.Timedelta(days=1))]

    def field(self, field: str, op: str, value) -> set[str]:
        m, win = self.members, self.window
        if field in ("tier", "region", "city", "gender", "acquisition_channel"):
            hit = set(m.index[m[field].isin(value)])
            return hit if op == "in" else set(m.index) - hit
        if field in ("bought_category", "bought_product"):
            lines = self.w.frame("order_items").merge(win[["order_id", "member_id"]], on="order_id")
            if field == "bought_category":
                lines = lines.merge(self.w.frame("products")[["product_id", "category"]], on="product_id")
            hit = set(lines.loc[lines["category" if field == "bought_category" else "product_id"].isin(value),
                                "member_id"])
            return hit if op == "in" else set(m.index) - hit
        if field == "segment":
            frame = pandas_rfm(self.w.frame("orders"), self.w.frame("members"),
                               Filters(date.fromisoformat(value["start"]), date.fromisoformat(value["end"])))
            return set(frame.loc[frame["segment"].isin(value["segments"]), "member_id"])
        low, high = value

        def within(series: pd.Series) -> pd.Series:
            keep = series.notna()
            if low is not None:
                keep &= series >= (pd.Timestamp(low) if field == "registered" else low)
            if high is not None:
                keep &= series <= (pd.Timestamp(high) if field == "registered" else high)
            return keep

        if field == "age":
            born = pd.to_datetime(m["birth_date"])
            age = self.end.year - born.dt.year - ((self.end.month, self.end.day) < pd.Series(
                list(zip(born.dt.month, born.dt.day, strict=True)), index=m.index)).astype(float)
            return set(m.index[within(age)])
        if field == "registered":
            return set(m.index[within(m["registered_at"].dt.normalize())])
        if field == "points_balance":
            return set(m.index[within(m["points_balance"])])
        if field == "days_since_last_order":
            last = self.completed[self.completed["ordered_at"] < self.end + pd.Timedelta(days=1)].groupby(
                "member_id")["ordered_at"].max()
            return set(last.index[within((self.end - last.dt.normalize()).dt.days)])
        per = win.groupby("member_id").agg(order_count=("order_id", "size"), net_sales=("net_amount", "sum"))
        if field == "aov":
            return set(per.index[within(per["net_sales"] / per["order_count"])])
        full = per[field].reindex(m.index).fillna(0)
        return set(m.index[within(full)])

    def group(self, group: dict) -> set[str]:
        parts = []
        for item in group["conditions"]:
            hit = self.group(item) if "conditions" in item else self.field(item["field"], item["op"], item["value"])
            parts.append(set(self.members.index) - hit if item.get("not") else hit)
        if not parts:
            return set(self.members.index) if group["match"] == "all" else set()
        return set.intersection(*parts) if group["match"] == "all" else set.union(*parts)
