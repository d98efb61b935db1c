"""Basket files (the Groceries layout): one basket per line, items separated by commas.

Each basket becomes a guest order of status ``completed`` without amounts (the file has no prices
or customers), dated by the user (``basket_date``; default the import day), with one order line
per distinct item in basket order. Item names, trimmed of surrounding spaces and quotes, are the
product ids and names, so the baskets mine exactly like orders at product level. Order ids are
``basket-<first 8 characters of the file fingerprint>-<line>``: stable for the same file and
traceable to its line. Empty lines are excluded and reported; an item repeated within a basket
counts once, with its quantity.
"""

from __future__ import annotations

from datetime import date

from analytics.i18n import _
from analytics.importers.staging import Staging
from analytics.storage import contract


def stage_baskets(stage: Staging, basket_date: date, channel: str | None, id_prefix: str) -> dict[str, object]:
    """Split, trim and shape a staged basket file; returns its summary figures."""
    stage.run(
        "CREATE TEMP TABLE _items AS SELECT _rid, _row, item, min(position) AS position, count(*) AS quantity "
        "FROM (SELECT _rid, _row, trim(trim(parts[i]), '\"') AS item, i AS position FROM ("
        "  SELECT _rid, _row, string_split(coalesce(c0, ''), ',') AS parts FROM _raw), "
        "  range(1, len(parts) + 1) AS r(i)) WHERE item <> '' GROUP BY _rid, _row, item"
    )
    stage.run(
        "INSERT INTO _rejects SELECT _rid, _row, _sheet, NULL, c0, $reason, false FROM _raw "
        "WHERE _rid NOT IN (SELECT _rid FROM _items)",
        {"reason": _("empty basket")},
    )
    stage.run(
        "CREATE TEMP TABLE _basket_items AS SELECT $prefix || _row AS order_id, item, quantity, "
        "row_number() OVER (PARTITION BY _row ORDER BY position) AS line_no, _row FROM _items",
        {"prefix": f"basket-{id_prefix}-"},
    )
    stage.create_stage(contract.order_items)
    stage.run("INSERT INTO _stage_order_items (order_id, line_no, product_id, quantity) "
              "SELECT order_id, line_no, item, quantity FROM _basket_items ORDER BY _row, line_no")
    stage.create_stage(contract.orders)
    stage.run(
        "INSERT INTO _stage_orders (order_id, ordered_at, channel, status) "
        "SELECT order_id, CAST($day AS TIMESTAMP), $channel, 'completed' FROM _basket_items "
        "GROUP BY order_id, _row ORDER BY _row",
        {"day": basket_date, "channel": channel},
    )
    stage.create_stage(contract.products)
    stage.run("INSERT INTO _stage_products (product_id, name) SELECT DISTINCT item, item FROM _basket_items")
    return {
        "baskets": stage.stage_count(contract.orders),
        "items": stage.stage_count(contract.order_items),
        "products": stage.stage_count(contract.products),
    }
