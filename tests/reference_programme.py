"""Independent pandas computations of the programme and campaign-results figures, written from their definitions
(the module docstrings of analytics.programme_tiers, programme_whatif, programme_points, member_value and
campaign_results), reading the raw rows of each table.

Where the SQL reads a definition one way, the reference reads it another, so that both must agree on the data:
a member's tier at a moment is taken here as the ``to_tier`` of their latest change up to it (the SQL reads the
``from_tier`` of the first change after it); points about to expire are found by spending every member's lots
first in, first out (the SQL subtracts sums); the read-out statistics are written out with scipy's distributions.
"""

from __future__ import annotations

import math
from datetime import date, datetime, time, timedelta

import numpy as np
import pandas as pd
from scipy import stats

from analytics.programme import TIER_THRESHOLDS
from analytics.storage.contract import TIERS

UNKNOWN, GUEST, JOINED = "unknown", "guest", "joined"


def end_of(day: date) -> pd.Timestamp:
    return pd.Timestamp(datetime.combine(day + timedelta(days=1), time()))


def tiers_at(frame, moment: pd.Timestamp) -> pd.Series:
    """Each member registered before ``moment``: the ``to_tier`` of their latest change before it; before their
    first change, that change's ``from_tier``; never changed: ``members.tier``."""
    members = frame("members")
    members = members[members["registered_at"] < moment].set_index("member_id")
    changes = frame("tier_changes").sort_values(["member_id", "changed_at"])
    before = changes[changes["changed_at"] < moment].groupby("member_id")["to_tier"].last()
    first = changes.groupby("member_id")["from_tier"].first()
    tier = before.reindex(members.index)
    tier = tier.fillna(first.reindex(members.index)).fillna(members["tier"]).fillna(UNKNOWN)
    return tier.astype(object)


def tier_counts(frame, moment: pd.Timestamp) -> dict[str, int]:
    return tiers_at(frame, moment).value_counts().to_dict()


def tier_at_times(frame, member_ids: pd.Series, times: pd.Series) -> pd.Series:
    """The tier each member held at each time (latest change up to and including it); guests ``guest``."""
    members = frame("members").set_index("member_id")
    changes = frame("tier_changes").sort_values("changed_at")
    rows = pd.DataFrame({"member_id": member_ids.to_numpy(), "at": times.to_numpy(), "i": np.arange(len(times))})
    known = rows[rows["member_id"].notna()].sort_values("at")
    merged = pd.merge_asof(known, changes.rename(columns={"changed_at": "at"})[["member_id", "at", "to_tier"]],
                           on="at", by="member_id", direction="backward")
    first = changes.sort_values(["member_id", "changed_at"]).groupby("member_id")["from_tier"].first()
    tier = merged["to_tier"].astype(object)
    tier = tier.where(tier.notna(), merged["member_id"].map(first))
    tier = tier.where(tier.notna(), merged["member_id"].map(members["tier"]))
    out = pd.Series(GUEST, index=range(len(times)), dtype=object)
    out[merged["i"].to_numpy()] = tier.fillna(UNKNOWN).to_numpy()
    return out


def completed(frame) -> pd.DataFrame:
    o = frame("orders")
    return o[o["status"] == "completed"]


def spend(frame, lo: datetime, hi: datetime, column: str = "gross_amount") -> pd.Series:
    o = completed(frame)
    o = o[o["member_id"].notna() & (o["ordered_at"] >= pd.Timestamp(lo)) & (o["ordered_at"] < pd.Timestamp(hi))]
    return o.groupby("member_id")[column].sum().round(2)


def tier_by_spend(amount: pd.Series, thresholds: dict[str, float]) -> pd.Series:
    out = pd.Series(TIERS[0], index=amount.index, dtype=object)
    for tier in TIERS[1:]:
        out[amount >= thresholds[tier] - 1e-9] = tier
    return out


def percentile(values: np.ndarray, q: float) -> float:
    return float(np.percentile(values, q * 100)) if len(values) else math.nan


# ---- points --------------------------------------------------------------------------------------------------------

def fifo_expiring(frame, end: date) -> pd.Series:
    """Points each member holds on the end of ``end`` from lots credited before 1 January of its year, spending
    every debit (redeem, expire) from the oldest lot first: the points due to expire on 31 December."""
    ledger = frame("points_ledger")
    ledger = ledger[ledger["occurred_at"] < end_of(end)].sort_values(["member_id", "occurred_at", "entry_id"])
    year_start = pd.Timestamp(date(end.year, 1, 1))
    due = {}
    for member, rows in ledger.groupby("member_id", sort=False):
        lots: list[list] = []  # [credited at, points left]
        for at, delta in zip(rows["occurred_at"], rows["delta"], strict=True):
            if delta > 0:
                lots.append([at, delta])
                continue
            need = -delta
            for lot in lots:
                take = min(lot[1], need)
                lot[1] -= take
                need -= take
                if need == 0:
                    break
        left = sum(points for at, points in lots if at < year_start)
        if left > 0:
            due[member] = left
    return pd.Series(due, dtype="int64")


# ---- campaigns -----------------------------------------------------------------------------------------------------

def read_out_stats(n_t: int, x_t: int, n_c: int, x_c: int, rev_t: np.ndarray, rev_c: np.ndarray) -> dict[str, float]:
    """Lift with its unpooled 95% interval and the pooled z-test p-value; the revenue-per-member difference with
    Welch's 95% interval."""
    p_t, p_c = x_t / n_t, x_c / n_c
    se = math.sqrt(p_t * (1 - p_t) / n_t + p_c * (1 - p_c) / n_c)
    z = stats.norm.ppf(0.975)
    pooled = (x_t + x_c) / (n_t + n_c)
    se0 = math.sqrt(pooled * (1 - pooled) * (1 / n_t + 1 / n_c))
    p = 2 * stats.norm.sf(abs(p_t - p_c) / se0) if se0 > 0 else 1.0
    diff = rev_t.mean() - rev_c.mean()
    vt, vc = rev_t.var(ddof=1) / n_t, rev_c.var(ddof=1) / n_c
    se_r = math.sqrt(vt + vc)
    if se_r > 0:
        df = (vt + vc) ** 2 / (vt ** 2 / (n_t - 1) + vc ** 2 / (n_c - 1))
        t = stats.t.ppf(0.975, df)
        low, high = diff - t * se_r, diff + t * se_r
    else:
        low = high = diff
    return {"lift": p_t - p_c, "lift_low": p_t - p_c - z * se, "lift_high": p_t - p_c + z * se, "p_value": p,
            "revenue_diff": diff, "revenue_low": low, "revenue_high": high}


def campaign_rows(frame, start: date, end: date, margin: float = 0.3, message_cost: float = 0.0, *,
                  retention: bool = True) -> pd.DataFrame:
    """Every campaign that started in [start, end], one row each, from the raw rows (``retention``: also who
    ordered again within 60 days, the slow part)."""
    campaigns = frame("campaigns")
    chosen = campaigns[(campaigns["start_at"] >= pd.Timestamp(start)) & (campaigns["start_at"] < end_of(end))]
    cm = frame("campaign_members")
    orders = frame("orders").set_index("order_id")
    done = completed(frame)
    out = []
    for c in chosen.sort_values(["start_at", "campaign_id"]).itertuples():
        rows = cm[cm["campaign_id"] == c.campaign_id].copy()
        converted = rows["converted_order_id"].notna()
        rows["revenue"] = rows["converted_order_id"].map(orders["net_amount"]).fillna(0.0)
        rows["order_campaign"] = rows["converted_order_id"].map(orders["campaign_id"])
        rows["converted_at"] = rows["converted_order_id"].map(orders["ordered_at"])
        again = []
        for member, at in zip(rows["member_id"], rows["converted_at"], strict=True):
            if pd.isna(at) or not retention:
                again.append(False)
                continue
            theirs = done[(done["member_id"] == member) & (done["ordered_at"] > at)
                          & (done["ordered_at"] <= at + pd.Timedelta(days=60))]
            again.append(len(theirs) > 0)
        rows["again"] = again
        t, k = rows[rows["arm"] == "treatment"], rows[rows["arm"] == "control"]
        sent = int(rows["sent_at"].notna().sum())
        row = {"campaign_id": c.campaign_id, "type": c.type, "channel": c.channel, "start_at": c.start_at,
               "treatment_members": len(t), "control_members": len(k), "sent": sent,
               "opened": int(rows["opened_at"].notna().sum()), "clicked": int(rows["clicked_at"].notna().sum()),
               "treatment_conversions": int(t["converted_order_id"].notna().sum()),
               "control_conversions": int(k["converted_order_id"].notna().sum()),
               "treatment_retained": int((t["again"]).sum()), "control_retained": int((k["again"]).sum()),
               "coupons_redeemed": int(((rows["arm"] == "treatment") & converted
                                        & (rows["order_campaign"] == c.campaign_id)).sum())}
        row["coupon_cost"] = row["coupons_redeemed"] * c.coupon_value
        row["cost"] = row["coupon_cost"] + sent * message_cost
        if len(t) and len(k):
            s = read_out_stats(len(t), row["treatment_conversions"], len(k), row["control_conversions"],
                               t["revenue"].to_numpy(), k["revenue"].to_numpy())
            n = len(t)
            row |= {"lift": s["lift"], "lift_low": s["lift_low"], "lift_high": s["lift_high"], "p_value": s["p_value"],
                    "incremental_conversions": n * s["lift"], "incremental_low": n * s["lift_low"],
                    "incremental_high": n * s["lift_high"], "incremental_revenue": n * s["revenue_diff"],
                    "revenue_low": n * s["revenue_low"], "revenue_high": n * s["revenue_high"]}
            cost = row["cost"]
            row["roi"] = (n * s["revenue_diff"] * margin - cost) / cost if cost > 0 else math.nan
            row["roi_low"] = (n * s["revenue_low"] * margin - cost) / cost if cost > 0 else math.nan
        out.append(row)
    return pd.DataFrame(out)


def dersimonian_laird(effects: np.ndarray, variances: np.ndarray) -> tuple[float, float, float]:
    """Random-effects estimate and its 95% interval (written from DerSimonian & Laird, 1986)."""
    w = 1 / variances
    fixed = (w * effects).sum() / w.sum()
    q = (w * (effects - fixed) ** 2).sum()
    c = w.sum() - (w ** 2).sum() / w.sum()
    tau2 = max(0.0, (q - (len(effects) - 1)) / c) if c > 0 else 0.0
    w2 = 1 / (variances + tau2)
    mu = (w2 * effects).sum() / w2.sum()
    se = math.sqrt(1 / w2.sum())
    return mu, mu - 1.959963984540054 * se, mu + 1.959963984540054 * se


def default_thresholds() -> dict[str, float]:
    return dict(TIER_THRESHOLDS)


def realised_roi(frame, start: date, end: date, margin: float = 0.3) -> float | None:
    """(Σ incremental revenue × margin - Σ coupon cost) / Σ coupon cost over the campaigns that started in
    [start, end] with both arms; None when nothing was spent."""
    rows = campaign_rows(frame, start, end, margin, retention=False)
    if rows.empty or "lift" not in rows:
        return None
    rows = rows[rows["lift"].notna()]
    cost = rows["cost"].sum()
    return float((rows["incremental_revenue"].sum() * margin - cost) / cost) if cost else None
