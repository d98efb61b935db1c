"""The purchase rollup: completed member purchases summed by member, channel, category and day, kept beside an
embedded DuckDB warehouse so that "bought a category" conditions and the audience profile's category mix read it
instead of joining the order lines to their orders.

Why: at 1M members, "bought Beauty or Apparel in the last year" joins 14.4M order lines (4.7M of them in those
categories) to 3M orders by their text ids, 0.7 s of the 1.2 s six-condition preview; the profile's category mix
joins all of a year's lines again. The rollup has one row per member, channel, category and day with a completed
order (7.2M rows at 1M members, 66 MB), so the same question is a filtered scan of it (0.15 s).

When it is used, and why the result is the same (the rules of the score store,
:mod:`analytics.storage.score_store`, where it is kept):

* only on an **embedded DuckDB file** warehouse, and only the rollup of **this state of the warehouse file**: any
  write to the warehouse (an import) makes it stale and it is never read again; the warehouse answers until the
  rollup is rebuilt. Elsewhere (PostgreSQL, Spark...) the warehouse always answers.
* every filter these readers apply is a whole day (windows run from midnight to midnight), a channel or a category,
  which the rollup keeps, and sales are exact decimal sums: so the members and the sums are identical either way
  (``tests/test_purchase_rollup.py``, both ways against pandas).
* built by :func:`store_rollup`: at the demo set-up, and by the app in the background when a page that reads it
  finds none for the warehouse as it is now (:func:`refresh_in_background`); 8-10 s at 1M members.
"""

from __future__ import annotations

import warnings
from datetime import date, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import Boolean, ColumnElement, Date, Engine, Select, cast, func, select
from sqlalchemy.ext.compiler import compiles

from analytics.filters import Filters
from analytics.storage.contract import order_items, orders, products
from analytics.storage.score_store import ScoreStore, build_in_background, store_for

#: The rollup's name in the store.
ROLLUP = "purchases"
COLUMNS = ("member_id", "channel", "category", "day", "sales")


def rollup_select() -> Select:
    """The rollup from the warehouse: ``member_id, channel, category, day, sales`` (sum of ``line_amount``, exact)
    over the lines of completed member orders; ``category`` is NULL for a product the catalogue lacks."""
    o, lines, p = orders.c, order_items.c, products.c
    day = cast(o.ordered_at, Date).label("day")
    return (select(o.member_id, o.channel, p.category, day, func.sum(lines.line_amount).label("sales"))
            .select_from(order_items.join(orders, o.order_id == lines.order_id)
                         .outerjoin(products, p.product_id == lines.product_id))
            .where(o.status == "completed", o.member_id.is_not(None))
            .group_by(o.member_id, o.channel, p.category, day))


def stored(path: Path) -> Any:
    """The rollup file as a table to select from (only a DuckDB warehouse can read it)."""
    return func.read_parquet(str(path)).table_valued(*COLUMNS).alias("purchases")


def current(bind: Any) -> Path | None:
    """The rollup of the warehouse behind ``bind`` (anything with its engine's ``dialect``: an engine, a connection,
    a statement compiler) as it is now, or None (none kept, or not a DuckDB file)."""
    store = store_for(bind.dialect)
    return store.find_rollup(ROLLUP) if store is not None else None


def store_rollup(engine: Engine) -> Path | None:
    """Compute the rollup in the warehouse and keep it for the warehouse's current state (nothing is computed when
    it is kept already). Returns the file, or None: the warehouse has no store (it is not a DuckDB file)."""
    store = store_for(engine.dialect)
    if store is None:
        return None
    if (kept := store.find_rollup(ROLLUP)) is not None:
        return kept
    state = store.state()  # before reading: a write meanwhile leaves the rollup stale, never read
    with engine.connect() as conn, warnings.catch_warnings():
        warnings.filterwarnings("ignore", "Arrow output on a DB-API result")
        ordered = rollup_select().subquery("rollup")
        # in category and day order: a reader's category and day filters skip most row groups
        result = conn.execute(select(ordered).order_by(ordered.c.category, ordered.c.day))
        table = result.cursor.to_arrow_table()
        result.close()
    return store.write_rollup(ROLLUP, state, table)


def refresh_in_background(engine: Engine) -> bool:
    """Start building the rollup in a background thread when the warehouse has a store and no rollup for its
    current state (one build per file at a time); readers use the warehouse meanwhile. True when one started."""
    store: ScoreStore | None = store_for(engine.dialect)
    if store is None or store.find_rollup(ROLLUP) is not None:
        return False
    return build_in_background(store.rollup_file(ROLLUP), lambda: store_rollup(engine), "purchase rollup")


class BoughtCategory(ColumnElement[bool]):
    """``member_id IN`` the members with a completed order holding a line of one of ``categories`` from ``since``
    (None: any time) to the window's last day, in the scope's channels: read from the rollup when the warehouse's
    store holds it for the warehouse as it is now, else from the order lines. Decided each time a statement is
    compiled, so it is never cached."""

    inherit_cache = False
    type = Boolean()

    def __init__(self, member_id: Any, categories: list[str], since: date | None, window: Filters,
                 warehouse: ColumnElement[bool]) -> None:
        self.member_id, self.categories, self.since, self.window = member_id, categories, since, window
        self.warehouse = warehouse  # the same condition on the warehouse's tables


@compiles(BoughtCategory)
def _compile_bought_category(element: BoughtCategory, compiler: Any, **kw: Any) -> str:
    path = current(compiler)  # a compiler has the dialect too
    if path is None:
        return compiler.process(element.warehouse, **kw)
    rows = stored(path)
    conditions = [rows.c.category.in_(element.categories), rows.c.day < element.window.end + timedelta(days=1)]
    if element.since is not None:
        conditions.append(rows.c.day >= element.since)
    if element.window.scope.channels:
        conditions.append(rows.c.channel.in_(element.window.scope.channels))
    return compiler.process(element.member_id.in_(select(rows.c.member_id).where(*conditions)), **kw)
