"""The member rows behind a figure (a heatmap cell, a funnel drop-off), masked, for preview and export.

Every analysis that lets a user see *who* is behind a number builds a SQL subquery of member ids
and hands it here, so which columns are shown and how personal data is masked is decided once.
"""

from __future__ import annotations

from collections.abc import Sequence

import pandas as pd
from sqlalchemy import Select, func, select

from analytics.filters import OPEN_SCOPE, Scope, scope_conditions
from analytics.privacy import mask_members
from analytics.storage.contract import members
from analytics.storage.db import Bind, connection, read_frame

#: The columns shown for a member, personal ones (masked) included.
MEMBER_ROW_COLUMNS: tuple[str, ...] = (
    "member_id", "name", "phone", "email", "tier", "region", "city", "registered_at", "points_balance",
)


def scoped_ids(member_ids: Select, scope: Scope = OPEN_SCOPE) -> Select:
    """``member_ids`` narrowed to the members ``scope`` allows: what every member list, count and export
    reads, whatever analysis made the audience (a saved or uploaded definition carries no user's scope)."""
    if scope.is_open:
        return member_ids
    ids = member_ids.subquery("listed")
    return select(members.c.member_id).where(members.c.member_id.in_(select(ids.c[0])), *scope_conditions(scope))


def member_rows(bind: Bind, member_ids: Select, limit: int | None = None, unmasked: bool = False,
                scope: Scope = OPEN_SCOPE) -> pd.DataFrame:
    """Members whose id is in ``member_ids`` (a one-column select) and in ``scope``, ordered by id, at most
    ``limit``.

    Names, phones and emails are masked unless ``unmasked`` is asked for explicitly.
    """
    m = members.c
    query = (select(*(m[c] for c in MEMBER_ROW_COLUMNS)).where(m.member_id.in_(member_ids), *scope_conditions(scope))
             .order_by(m.member_id))
    if limit is not None:
        query = query.limit(limit)
    frame = read_frame(bind, query, hash_joins=True)  # the ids may come from a funnel's CTE joins
    return frame if unmasked else mask_members(frame)


def member_count(bind: Bind, member_ids: Select, scope: Scope = OPEN_SCOPE) -> int:
    """How many distinct members ``member_ids`` selects (of those ``scope`` allows)."""
    ids = scoped_ids(member_ids, scope).subquery("ids")
    with connection(bind, hash_joins=True) as conn:
        return int(conn.execute(select(func.count(ids.c[0].distinct()))).scalar_one())


def listed_member_ids(ids: Sequence[str]) -> Select:
    """A select of these member ids (a bound, expanding list): for rows already known in Python, such as
    the first members of a cluster."""
    return select(members.c.member_id).where(members.c.member_id.in_(list(ids)))
