"""Predictions, read out: risk bands with the value at risk by tier and RFM segment, the CLV distribution and
customer equity by acquisition channel, tier and first-purchase cohort; every figure an aggregation in the
warehouse over :func:`analytics.predictions.score_select`."""

from __future__ import annotations

from datetime import date, timedelta

import pandas as pd
from sqlalchemy import Double, Integer, String, case, cast, func, literal, select

from analytics.filters import Filters
from analytics.i18n import N_
from analytics.predictions import BANDS, Models, score_select
from analytics.rfm import member_rfm
from analytics.storage.contract import members, orders
from analytics.storage.db import Bind, read_frame

NO_SEGMENT = N_("(no order in the year)")  # a value in SQL; translated where shown
GROUPS = {"tier": N_("Tier"), "segment": N_("RFM segment"), "acquisition_channel": N_("Acquisition channel"),
          "cohort": N_("First-purchase year")}


def _scored_with_groups(models: Models, as_of: date):
    """The scored members with their tier, acquisition channel, RFM segment (365 days ending ``as_of``) and the
    year of their first completed order."""
    scored = score_select(models, as_of).subquery("scored")
    rfm = member_rfm(Filters(as_of - timedelta(days=364), as_of))
    o = orders.c
    first = (select(o.member_id, func.min(o.ordered_at).label("first_at"))
             .where(o.status == "completed", o.member_id.is_not(None)).group_by(o.member_id).subquery("first"))
    m = members.c
    return (select(scored, func.coalesce(m.tier, "unknown").label("tier"),
                   func.coalesce(m.acquisition_channel, "unknown").label("acquisition_channel"),
                   func.coalesce(rfm.c.segment, literal(NO_SEGMENT, String)).label("segment"),
                   cast(func.extract("year", first.c.first_at), Integer).label("cohort"))
            .select_from(scored.join(members, m.member_id == scored.c.member_id)
                         .outerjoin(rfm, rfm.c.member_id == scored.c.member_id)
                         .outerjoin(first, first.c.member_id == scored.c.member_id))
            .subquery("grouped"))


def band_expression(risk):
    return case(*((risk < high, name) for name, _low, high in BANDS[:-1]), else_=BANDS[-1][0])


def risk_bands(bind: Bind, models: Models, as_of: date, by: str | None = None) -> pd.DataFrame:
    """``band[, by], members, mean_risk, value_at_risk, predicted_clv``: the churn risk bands (low below 0.3, high
    from 0.6), optionally split by tier, segment, acquisition channel or cohort; value at risk = Σ CLV x risk
    (empty without a CLV model)."""
    g = _scored_with_groups(models, as_of).c
    keys = [band_expression(g.churn_risk).label("band"), *([g[by]] if by else [])]
    banded = select(*keys, g.churn_risk, *([g.predicted_clv] if "predicted_clv" in g else [])).subquery("banded")
    b = banded.c
    groups = [b.band, *([b[by]] if by else [])]
    value = ([func.sum(b.churn_risk * b.predicted_clv).label("value_at_risk"),
              func.sum(b.predicted_clv).label("predicted_clv")] if "predicted_clv" in b else [])
    frame = read_frame(bind, select(*groups, func.count().label("members"), func.avg(b.churn_risk).label("mean_risk"),
                                    *value).group_by(*groups))
    order = {name: i for i, (name, *_rest) in enumerate(BANDS)}
    frame["_order"] = frame["band"].map(order)
    return frame.sort_values(["_order", *([by] if by else [])]).drop(columns="_order").reset_index(drop=True)


def customer_equity(bind: Bind, models: Models, as_of: date, by: str) -> pd.DataFrame:
    """``{by}, members, predicted_clv, clv_per_member, share``: the predicted 12-month value of the members of each
    acquisition channel, tier, RFM segment or first-purchase cohort."""
    grouped = _scored_with_groups(models, as_of)
    g = grouped.c
    inner = select(g[by].label("group_key"), g.predicted_clv).subquery("equity")
    e = inner.c
    frame = read_frame(bind, select(e.group_key, func.count().label("members"),
                                    func.sum(cast(e.predicted_clv, Double)).label("predicted_clv"))
                       .group_by(e.group_key))
    frame = frame.rename(columns={"group_key": by})
    frame["predicted_clv"] = frame["predicted_clv"].astype(float)
    frame["clv_per_member"] = frame["predicted_clv"] / frame["members"]
    total = frame["predicted_clv"].sum()
    frame["share"] = frame["predicted_clv"] / total if total else 0.0
    return frame.sort_values("predicted_clv", ascending=False, ignore_index=True)


def clv_distribution(bind: Bind, models: Models, as_of: date, bins: int = 20) -> tuple[pd.DataFrame, float]:
    """The predicted CLV as a histogram (``bin_start, bin_end, members``: equal-width bins up to the 99th
    percentile, the rest in the last) and the share of all value held by the top 10 % of members."""
    scored = score_select(models, as_of).subquery("scored")
    clv = cast(scored.c.predicted_clv, Double)
    ranked = select(clv.label("clv"), func.ntile(10).over(order_by=clv.desc()).label("decile")).subquery("ranked")
    r = ranked.c
    totals = read_frame(bind, select(func.sum(r.clv).label("total"), func.sum(case((r.decile == 1, r.clv),
                                                                                   else_=0.0)).label("top"),
                                     func.percentile_cont(0.99).within_group(r.clv).label("p99")))
    total, top, p99 = (float(totals[c].iloc[0] or 0.0) for c in ("total", "top", "p99"))
    width = max(p99, 1e-9) / bins
    index = func.least(func.floor(r.clv / width), bins - 1)
    histogram = read_frame(bind, select(index.label("bin"), func.count().label("members")).group_by(index))
    histogram["bin"] = histogram["bin"].astype(int)
    histogram = histogram.set_index("bin").reindex(range(bins), fill_value=0).reset_index()
    histogram["bin_start"] = histogram["bin"] * width
    histogram["bin_end"] = (histogram["bin"] + 1) * width
    return histogram[["bin_start", "bin_end", "members"]], (top / total if total else 0.0)
