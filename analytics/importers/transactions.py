"""Line-level sales files (UCI Online Retail and Online Retail II layouts, or mapped columns).

How a file becomes warehouse rows, and why:

* **Invoices become orders**, keeping the invoice number as ``order_id`` so every figure traces
  back to the source. An order's time is its earliest line's; its member, the customer on its
  first line. ``gross_amount = net_amount`` = the sum of its lines; the file knows no discounts.
* **Cancellations are not negative sales.** An invoice number starting with C is a cancellation:
  it becomes a ``cancelled`` order with positive quantities, so it never reduces net sales (which
  count completed orders only) while the original invoice stays a completed sale. An invoice whose
  every line has a negative quantity but no C is a ``returned`` order. A negative line on an
  ordinary sales invoice, or a positive one on a cancellation, is excluded and reported.
* **Lines become order items**; ``line_no`` counts file rows from the invoice's first row (lines
  left out leave gaps, so each line can be found in the file); the line amount is quantity times
  unit price, rounded to the cent.
* **Stock codes become products**: the name is the code's most frequent description, the list
  price its most frequent unit price (ties: the greater, see ``staging.most_frequent``); category,
  subcategory and brand stay unknown.
* **Customers become members**: ``registered_at`` is their first completed purchase in the file
  (their first order of any status if none completed), ``region`` their most frequent country;
  everything else (tier, contact, consent) stays unknown, so nobody is counted reachable.
* **Rows without a customer are guest orders**: counted in sales, left out of member analytics.
* **Files without invoice numbers** (CDNOW's customer, date, units, dollar value): a customer's rows of
  one day are one order ``<customer>-<yyyy-mm-dd>``, every row is a purchase (identical rows too), a
  missing stock code makes one product ``ITEM``, and a line amount without a unit price gives the unit
  price as amount / quantity; a zero amount is a free purchase and kept.
* **Excluded and reported**: zero or negative prices, zero quantities, exact duplicate lines.
* **Unreadable** (stop the import unless skipped): missing invoice number or stock code, a
  quantity that is not a whole number, a price that is not a number, a date that does not read.
"""

from __future__ import annotations

from collections.abc import Mapping

from analytics.i18n import _
from analytics.importers.reading import OUT_OF_YEARS, date_params, describe_date_format, id_sql, timestamp_sql
from analytics.importers.staging import Check, Staging, most_frequent, sql_text
from analytics.storage import contract

CANCELLED = "upper(left(invoice, 1)) = 'C'"
NO_INVOICE_CANCELLED = "FALSE"  # orders made up from customer and day cannot be cancellations
ITEM = "ITEM"  # the one product of a file without stock codes
MAX_LINE_NO = 32_000  # order_items.line_no is a SMALLINT
#: Largest line amount accepted (money is NUMERIC(14, 2): an order's lines must still add up within it).
MAX_LINE_AMOUNT = 10**10


def stage_transactions(
    stage: Staging, roles: Mapping[str, int | None], date_format: str, channel: str | None, skip_bad_rows: bool
) -> dict[str, object]:
    """Parse, check and shape a staged transactions file; returns the file's summary figures."""
    col = stage.column
    name = stage.column_name
    # The date format may be the user's own text: it reaches SQL only as a bound parameter.
    params = {**date_params(date_format), "channel": channel,
              "date_reason": _("not a date in the format {format} (years 1900 to 2999)").format(
                  format=describe_date_format(date_format))}
    ordered_at = timestamp_sql(col(roles['invoice_date']), date_format)
    customer_id = id_sql(col(roles['customer_id']))
    has_invoice = roles.get("invoice") is not None
    # Without invoice numbers, a customer's lines of one day are one order: "<customer>-<yyyy-mm-dd>".
    invoice = (f"nullif(trim({col(roles['invoice'])}), '')" if has_invoice
               else f"{customer_id} || '-' || CAST(CAST({ordered_at} AS DATE) AS VARCHAR)")
    stock_code = (f"nullif(trim({col(roles['stock_code'])}), '')" if roles.get("stock_code") is not None
                  else f"'{ITEM}'")
    # Without a unit price, the line amount gives it (amount / quantity) and stays the line's amount.
    price_role = roles["unit_price"] if roles.get("unit_price") is not None else roles.get("amount")
    quantity_number = f"TRY_CAST(trim({col(roles['quantity'])}) AS DOUBLE)"
    amount_number = f"TRY_CAST(trim({col(roles.get('amount'))}) AS DECIMAL(18, 2))"
    unit_price = (f"TRY_CAST(trim({col(roles['unit_price'])}) AS DECIMAL(18, 4))" if roles.get("unit_price") is not None
                  else f"CAST({amount_number} / nullif({quantity_number}, 0) AS DECIMAL(18, 4))")
    stage.run(
        "CREATE TEMP TABLE _parsed AS SELECT _rid, _row, _sheet, "
        f"{invoice} AS invoice, "
        f"{stock_code} AS stock_code, "
        f"nullif(trim({col(roles['description'])}), '') AS description, "
        f"nullif(trim({col(roles['quantity'])}), '') AS quantity_text, "
        f"{quantity_number} AS quantity_number, "
        f"nullif(trim({col(roles['invoice_date'])}), '') AS date_text, "
        f"{ordered_at} AS ordered_at, "
        f"nullif(trim({col(price_role)}), '') AS price_text, "
        f"{unit_price} AS unit_price, "
        f"{amount_number} AS line_total, "
        f"{customer_id} AS customer_id, "
        f"nullif(trim({col(roles['country'])}), '') AS country "
        "FROM _raw",
        params,
    )
    price_name = name(price_role)
    price_missing = sql_text(_("missing price") if roles.get("unit_price") is not None else _("missing amount"))
    stage.reject([
        (Check("invoice IS NULL", sql_text(_("missing invoice number")), name(roles["invoice"]), "invoice",
               True)
         if has_invoice else
         Check("customer_id IS NULL AND date_text IS NOT NULL",
               sql_text(_("missing customer id (without invoice numbers the customer and day make the order)")),
               name(roles["customer_id"]), "customer_id", True)),
        Check("stock_code IS NULL", sql_text(_("missing stock code")), name(roles.get("stock_code")), "stock_code",
              True),
        Check("quantity_text IS NULL", sql_text(_("missing quantity")), name(roles["quantity"]), "quantity_text",
              True),
        Check("quantity_text IS NOT NULL AND (quantity_number IS NULL OR quantity_number <> floor(quantity_number) "
              "OR abs(quantity_number) > 1e9)", sql_text(_("not a whole number")), name(roles["quantity"]),
              "quantity_text", True),
        Check("date_text IS NULL", sql_text(_("missing date")), name(roles["invoice_date"]), "date_text", True),
        Check(f"date_text IS NOT NULL AND (ordered_at IS NULL OR {OUT_OF_YEARS.format(column='ordered_at')})",
              "$date_reason", name(roles["invoice_date"]), "date_text",
              True),
        Check("price_text IS NULL", price_missing, price_name, "price_text", True),
        Check("price_text IS NOT NULL AND unit_price IS NULL AND quantity_number <> 0", sql_text(_("not a number")),
              price_name, "price_text", True),
        # A zero line amount is a free purchase the file records; a zero unit price is an adjustment line.
        Check("unit_price <= 0" if roles.get("unit_price") is not None else "unit_price < 0",
              sql_text(_("zero or negative price")), price_name, "price_text", False),
        Check(f"abs(quantity_number) * unit_price >= {MAX_LINE_AMOUNT}", sql_text(_("line amount too large")),
              price_name, "price_text", True),
        Check("quantity_number = 0", sql_text(_("zero quantity")), name(roles["quantity"]), "quantity_text", False),
    ], params=params)
    stage.refuse_unreadable(skip_bad_rows)
    if has_invoice:
        # Without invoice numbers two identical rows are two purchases (same customer, day, units and amount).
        stage.reject_duplicates()
    stage.run("CREATE TEMP VIEW _checked AS SELECT * FROM _parsed WHERE _rid NOT IN (SELECT _rid FROM _rejects)")

    cancelled = CANCELLED if has_invoice else NO_INVOICE_CANCELLED
    # Sign rules need the invoice as a whole: which lines are positive, which negative.
    stage.run(
        "CREATE TEMP TABLE _invoices AS SELECT invoice, "
        f"CASE WHEN {cancelled} THEN 'cancelled' WHEN max(quantity_number) < 0 THEN 'returned' "
        "ELSE 'completed' END AS status, min(_rid) AS first_rid, max(_rid) - min(_rid) AS spread "
        "FROM _checked GROUP BY invoice"
    )
    stage.reject([
        Check(f"{cancelled} AND quantity_number > 0", sql_text(_("positive quantity on a cancellation invoice")),
              name(roles["quantity"]), "quantity_text", False),
        Check(f"NOT {cancelled} AND quantity_number < 0 AND invoice IN "
              "(SELECT invoice FROM _invoices WHERE status = 'completed')",
              sql_text(_("negative quantity on a sales invoice (neither a cancellation nor a return)")),
              name(roles["quantity"]), "quantity_text", False),
    ], table="_checked")

    # Line numbers count file rows from the invoice's first row, so lines left out leave gaps and every
    # line can be found in the file. Invoices spread too far apart for that are numbered 1, 2, 3 instead.
    contiguous = stage.scalar("SELECT coalesce(max(spread), 0) FROM _invoices") < MAX_LINE_NO
    line_no = "l._rid - i.first_rid + 1" if contiguous else "row_number() OVER (PARTITION BY l.invoice ORDER BY l._rid)"
    stage.run(
        "CREATE TEMP TABLE _numbered AS SELECT l.invoice, l.stock_code, l.description, l.customer_id, l.country, "
        "l.ordered_at, l.unit_price, i.status, CAST(abs(quantity_number) AS BIGINT) AS quantity, "
        "coalesce(abs(l.line_total), round(CAST(abs(quantity_number) AS DECIMAL(18, 0)) * unit_price, 2)) "
        "AS line_amount, "
        f"{line_no} AS line_no FROM _checked l JOIN _invoices i USING (invoice)"
    )
    stage.create_stage(contract.order_items)
    stage.run(
        "INSERT INTO _stage_order_items SELECT invoice, line_no, stock_code, quantity, unit_price, line_amount "
        "FROM _numbered"
    )
    stage.create_stage(contract.orders)
    stage.run(
        "INSERT INTO _stage_orders (order_id, member_id, ordered_at, channel, status, gross_amount, discount_amount, "
        "net_amount) SELECT invoice, arg_min(customer_id, line_no), min(ordered_at), $channel, any_value(status), "
        "sum(line_amount), 0, sum(line_amount) FROM _numbered GROUP BY invoice",
        {"channel": channel},
    )
    stage.create_stage(contract.products)
    stage.run(
        "INSERT INTO _stage_products (product_id, name, list_price) SELECT p.stock_code, d.description, p.unit_price "
        f"FROM {most_frequent('unit_price', 'stock_code', '_numbered')} p "
        f"LEFT JOIN {most_frequent('description', 'stock_code', '_numbered')} d USING (stock_code)"
    )
    stage.create_stage(contract.members)
    stage.run(
        "INSERT INTO _stage_members (member_id, registered_at, region) "
        "SELECT o.member_id, coalesce(min(CASE WHEN o.status = 'completed' THEN o.ordered_at END), "
        f"min(o.ordered_at)), any_value(c.country) FROM _stage_orders o "
        f"LEFT JOIN {most_frequent('country', 'customer_id', '_numbered')} c ON c.customer_id = o.member_id "
        "WHERE o.member_id IS NOT NULL GROUP BY o.member_id"
    )
    return summarise(stage)


def summarise(stage: Staging) -> dict[str, object]:
    """The figures a user checks against the source: customers, invoices, cancellations, revenue."""
    row = stage.con.execute(
        "SELECT count(*), count(*) FILTER (WHERE status = 'cancelled'), count(*) FILTER (WHERE status = 'returned'), "
        "count(*) FILTER (WHERE member_id IS NULL), count(DISTINCT member_id), "
        "coalesce(sum(net_amount) FILTER (WHERE status = 'completed'), 0), min(ordered_at), max(ordered_at) "
        "FROM _stage_orders"
    ).fetchall()[0]
    lines = stage.scalar("SELECT count(*) FROM _stage_order_items")
    products = stage.scalar("SELECT count(*) FROM _stage_products")
    return {
        "orders": row[0], "cancelled_orders": row[1], "returned_orders": row[2], "guest_orders": row[3],
        "members": row[4], "completed_net_sales": float(row[5]), "order_lines": lines, "products": products,
        "first_order_at": row[6], "last_order_at": row[7],
    }
