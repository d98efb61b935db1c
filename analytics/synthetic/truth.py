"""The demo shop's hidden truth about who will buy: the probability of an order in a horizon, as the generator
planted it (:mod:`analytics.synthetic.shopping`).

A member alive on the cutoff places orders at their own rate, shaped by the demand calendar of their persona; a
member who has dropped out never orders again. So the true chance of at least one order in the ``horizon`` days
after the cutoff is ``alive x (1 - exp(-rate x demand in those days))``. No model that sees only the warehouse can
rank members better than this (welcome orders and campaign responses aside): its AUC is the ceiling shown next to
the models' on the demo.

Only demo warehouses have the hidden table (``demo_personas``); elsewhere :func:`planted_order_probability`
returns None.
"""

from __future__ import annotations

from datetime import date

import numpy as np
import pandas as pd
from sqlalchemy import func, select

from analytics.storage.contract import orders
from analytics.storage.db import Bind, read_frame, read_frame_columnar
from analytics.storage.warehouse import present_columns
from analytics.synthetic.build import demo_personas
from analytics.synthetic.calendar import DemandCalendar
from analytics.synthetic.personas import PERSONAS


def planted_order_probability(bind: Bind, cutoff: date, horizon_days: int) -> pd.DataFrame | None:
    """``member_id, p_order``: each demo member's true chance of an order in ``(cutoff, cutoff + horizon]``, or
    None when the warehouse has no hidden truth (not a demo, or an older one)."""
    present = present_columns(bind, [demo_personas.name]).get(demo_personas.name, set())
    if not {"rate", "alive_from", "alive_until"} <= present:
        return None
    d = demo_personas.c
    truth = read_frame_columnar(bind, select(d.member_id, d.persona, d.rate, d.alive_from, d.alive_until))
    # the generator's calendar: from the window's first day (members registered earlier start alive on it) to the
    # newest order (the window's last day); its weights are normalised over exactly that window
    bounds = read_frame(bind, select(select(func.min(d.alive_from)).scalar_subquery().label("start"),
                                     select(func.max(orders.c.ordered_at)).scalar_subquery().label("end")))
    start, end = pd.Timestamp(bounds["start"].iloc[0]).date(), pd.Timestamp(bounds["end"].iloc[0]).date()
    calendar = DemandCalendar.build(end, (end - start).days + 1)
    first = (cutoff - start).days + 1
    last = min(first + horizon_days, calendar.days)
    demand = {p.name: (lambda cum: cum[last] - cum[first])(calendar.cumulative(p.peak_sharpness)) for p in PERSONAS}
    alive_from = pd.to_datetime(truth["alive_from"])
    alive_until = pd.to_datetime(truth["alive_until"])
    on_cutoff = pd.Timestamp(cutoff)
    alive = (alive_from <= on_cutoff) & (alive_until.isna() | (alive_until > on_cutoff))
    expected = truth["rate"].astype("float64") * truth["persona"].map(demand).astype("float64")
    p_order = np.where(alive, 1.0 - np.exp(-expected), 0.0)
    return pd.DataFrame({"member_id": truth["member_id"], "p_order": p_order})
