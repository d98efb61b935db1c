"""Clickstream logs (REES46 and RetailRocket layouts, or mapped columns) into ``events``.

* **Event types** map onto MemberLens's: view / detail -> ``product_view``, cart / addtocart ->
  ``add_to_cart``, purchase / transaction -> ``purchase``; MemberLens's own type names are kept.
  Other types (remove_from_cart, say) are excluded and reported.
* **Sessions**: the file's session id where it has one; otherwise a visitor's events are cut into
  sessions after 30 minutes without an event (the Google Analytics convention), named
  ``<visitor>@<start time>`` so the same events always give the same session.
* **One ``session_start`` per session** is added at its first event (the KPIs count sessions by it),
  unless the file brings its own.
* **Ids**: the visitor id becomes ``member_id`` (join it to members imported from transactions of
  the same shop); an event's id is a hash of visitor, session, time, type and product, so the same
  event in two overlapping files is stored once.
* **Products** the file describes (category path, brand, price) are added when new: the category
  is the path's first part (``electronics``), the subcategory the rest (``smartphone``).
* **Time** is stored as written; a trailing UTC/Z is dropped, not converted (the warehouse holds
  the shop's local time, so convert beforehand if the log is in another zone).
"""

from __future__ import annotations

from collections.abc import Mapping

from analytics.errors import ImportRefused
from analytics.i18n import _
from analytics.importers.reading import OUT_OF_YEARS, date_params, describe_date_format, id_sql, timestamp_sql
from analytics.importers.staging import Check, Staging, most_frequent, sql_text
from analytics.storage import contract

SESSION_GAP_MINUTES = 30

#: File event types (lower case) and the MemberLens type each becomes.
EVENT_TYPE_MAP: dict[str, str] = {
    "view": "product_view", "detail": "product_view", "product_view": "product_view",
    "cart": "add_to_cart", "addtocart": "add_to_cart", "add_to_cart": "add_to_cart",
    "purchase": "purchase", "transaction": "purchase",
    "session_start": "session_start", "page_view": "page_view", "search": "search", "checkout": "checkout",
}
#: The page an event happens on when the file does not say (as the demo shop's clickstream).
DEFAULT_PAGE = {"product_view": "product", "add_to_cart": "product", "checkout": "checkout",
                "purchase": "payment_success", "search": "search"}


def _case(mapping: dict[str, str], expr: str) -> str:
    # Keys and values are constants of this module, not user input.
    whens = " ".join(f"WHEN '{k}' THEN '{v}'" for k, v in mapping.items())
    return f"CASE {expr} {whens} END"


def stage_events(
    stage: Staging, roles: Mapping[str, int | None], date_format: str, skip_bad_rows: bool
) -> dict[str, object]:
    """Parse, check, sessionise and shape a staged clickstream file; returns its summary figures."""
    if roles["user_id"] is None and roles["session_id"] is None:
        raise ImportRefused(_("The file has neither a visitor id nor a session id column, so its events cannot "
                              "be grouped into sessions."), _("Map the visitor (user) id or the session id column."))
    col = stage.column
    name = stage.column_name
    # The date format may be the user's own text: it reaches SQL only as a bound parameter.
    params = {**date_params(date_format),
              "date_reason": _("not a date in the format {format} (years 1900 to 2999)").format(
                  format=describe_date_format(date_format))}
    stage.run(
        "CREATE TEMP TABLE _parsed AS SELECT _rid, _row, _sheet, "
        f"nullif(trim({col(roles['occurred_at'])}), '') AS time_text, "
        f"{timestamp_sql(col(roles['occurred_at']), date_format)} AS occurred_at, "
        f"nullif(lower(trim({col(roles['event_type'])})), '') AS type_text, "
        f"{_case(EVENT_TYPE_MAP, 'lower(trim(' + col(roles['event_type']) + '))')} AS event_type, "
        f"{id_sql(col(roles['user_id']))} AS user_id, "
        f"nullif(trim({col(roles['session_id'])}), '') AS session_text, "
        f"nullif(trim({col(roles['product_id'])}), '') AS product_id, "
        f"nullif(trim({col(roles['category'])}), '') AS category_path, "
        f"nullif(trim({col(roles['brand'])}), '') AS brand, "
        f"nullif(trim({col(roles['price'])}), '') AS price_text, "
        f"TRY_CAST(trim({col(roles['price'])}) AS DECIMAL(18, 4)) AS price, "
        f"nullif(trim({col(roles['page'])}), '') AS page, "
        f"nullif(trim({col(roles['device'])}), '') AS device, "
        f"nullif(trim({col(roles['source'])}), '') AS source "
        "FROM _raw",
        params,
    )
    known = ", ".join(sorted(EVENT_TYPE_MAP))
    stage.reject([
        Check("time_text IS NULL", sql_text(_("missing event time")), name(roles["occurred_at"]), "time_text",
              True),
        Check(f"time_text IS NOT NULL AND (occurred_at IS NULL OR {OUT_OF_YEARS.format(column='occurred_at')})",
              "$date_reason", name(roles["occurred_at"]),
              "time_text", True),
        Check("type_text IS NULL", sql_text(_("missing event type")), name(roles["event_type"]), "type_text", True),
        Check("user_id IS NULL AND session_text IS NULL", sql_text(_("neither a visitor nor a session id")),
              name(roles["user_id"]) or name(roles["session_id"]), "NULL", True),
        Check("price_text IS NOT NULL AND price IS NULL", sql_text(_("not a number")), name(roles["price"]),
              "price_text", True),
        Check("type_text IS NOT NULL AND event_type IS NULL",
              sql_text(_("event type not tracked by MemberLens (known: {known})").format(known=known)),
              name(roles["event_type"]), "type_text",
              False),
    ], params=params)
    stage.refuse_unreadable(skip_bad_rows)
    stage.reject_duplicates()
    stage.keep_accepted("_parsed", "_checked")

    gap = f"INTERVAL {SESSION_GAP_MINUTES} MINUTE"
    stage.run(
        "CREATE TEMP TABLE _sessioned AS SELECT *, coalesce(session_text, user_id || '@' || "
        "strftime(max(CASE WHEN new_session THEN occurred_at END) OVER (PARTITION BY user_id, session_text IS NULL "
        "ORDER BY occurred_at, _rid ROWS UNBOUNDED PRECEDING), '%Y-%m-%dT%H:%M:%S')) AS session_id FROM ("
        f"  SELECT *, coalesce(occurred_at - lag(occurred_at) OVER w > {gap}, true) AS new_session FROM _checked "
        "  WINDOW w AS (PARTITION BY user_id, session_text IS NULL ORDER BY occurred_at, _rid))"
    )
    stage.run(
        "CREATE TEMP TABLE _identified AS SELECT *, md5(concat_ws('|', coalesce(user_id, ''), session_id, "
        "strftime(occurred_at, '%Y-%m-%dT%H:%M:%S.%f'), event_type, coalesce(product_id, ''))) AS event_id "
        "FROM _sessioned"
    )
    stage.run(
        "INSERT INTO _rejects SELECT _rid, _row, _sheet, NULL, NULL, 'the same event as row ' || first_row, false "
        "FROM (SELECT _rid, _row, _sheet, first_value(_rid) OVER w AS first_rid, first_value(_row) OVER w AS first_row "
        "  FROM _identified WINDOW w AS (PARTITION BY event_id ORDER BY _rid)) WHERE _rid <> first_rid"
    )
    stage.keep_accepted("_identified", "_accepted")

    stage.create_stage(contract.events)
    stage.run(
        "INSERT INTO _stage_events SELECT event_id, user_id, session_id, occurred_at, event_type, "
        f"coalesce(page, {_case(DEFAULT_PAGE, 'event_type')}), product_id, device, source FROM _accepted"
    )
    stage.run(
        "INSERT INTO _stage_events SELECT md5('session_start|' || session_id), arg_min(user_id, occurred_at), "
        "session_id, min(occurred_at), 'session_start', arg_min(page, occurred_at), NULL, "
        "arg_min(device, occurred_at), arg_min(source, occurred_at) FROM _accepted GROUP BY session_id "
        "HAVING count(*) FILTER (WHERE event_type = 'session_start') = 0"
    )
    stage.run("CREATE TEMP TABLE _sorted_events AS SELECT * FROM _stage_events ORDER BY event_type, occurred_at")
    stage.run("DROP TABLE _stage_events")
    stage.run("ALTER TABLE _sorted_events RENAME TO _stage_events")

    stage.create_stage(contract.products)
    paths = most_frequent("category_path", "product_id", "_accepted")
    stage.run(
        "INSERT INTO _stage_products (product_id, category, subcategory, brand, list_price) "
        "SELECT p.product_id, split_part(c.category_path, '.', 1), "
        "nullif(substr(c.category_path, length(split_part(c.category_path, '.', 1)) + 2), ''), b.brand, r.price "
        f"FROM (SELECT DISTINCT product_id FROM _accepted WHERE product_id IS NOT NULL) p "
        f"LEFT JOIN {paths} c USING (product_id) "
        f"LEFT JOIN {most_frequent('brand', 'product_id', '_accepted')} b USING (product_id) "
        f"LEFT JOIN {most_frequent('price', 'product_id', '_accepted')} r USING (product_id)"
    )
    return summarise(stage)


def summarise(stage: Staging) -> dict[str, object]:
    """Events per type, sessions and visitors: the figures to compare with the source."""
    counts = dict(stage.con.execute("SELECT event_type, count(*) FROM _stage_events GROUP BY event_type").fetchall())
    row = stage.con.execute(
        "SELECT count(DISTINCT session_id), count(DISTINCT member_id), min(occurred_at), max(occurred_at) "
        "FROM _stage_events").fetchall()[0]
    summary: dict[str, object] = {f"events_{t}": int(counts.get(t, 0)) for t in contract.EVENT_TYPES}
    summary.update({"events": int(sum(counts.values())), "sessions": row[0], "visitors": row[1],
                    "products": stage.scalar("SELECT count(*) FROM _stage_products"),
                    "first_event_at": row[2], "last_event_at": row[3]})
    return summary
