"""What each importer needs from a file: its column roles, the known layouts and the mapping.

A *role* is a piece of information an importer reads (the invoice number, the event time ...).
Each role lists the column names it is usually found under; a file's header is matched against
them ignoring case, spaces and punctuation, so ``CustomerID`` and ``Customer ID`` both fit. A user
mapping (role -> column) overrides the guess for any role.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from analytics.errors import InputError

KINDS: tuple[str, ...] = ("transactions", "events", "baskets")


@dataclass(frozen=True)
class Role:
    """One piece of information an importer reads from a column."""

    name: str
    label: str
    required: bool
    aliases: tuple[str, ...]
    help: str


@dataclass(frozen=True)
class Layout:
    """A well-known export format, recognised by columns only it has."""

    name: str
    signature: tuple[str, ...]


ROLES: dict[str, tuple[Role, ...]] = {
    "transactions": (
        Role("invoice", "Invoice number", False, ("InvoiceNo", "Invoice", "OrderID", "order_id", "OrderNo"),
             "Becomes the order id. Numbers starting with C are cancellations. Without it, each customer's "
             "purchases of one day are one order (customer id and date)."),
        Role("stock_code", "Stock code", False, ("StockCode", "product_id", "SKU", "ItemID"),
             "Becomes the product id; without it every line is one unnamed product (ITEM)."),
        Role("description", "Description", False, ("Description", "product_name", "ItemName"),
             "Becomes the product name (its most frequent spelling)."),
        Role("quantity", "Quantity", True, ("Quantity", "Qty", "number_of_cds", "units"),
             "Whole number of units; negative on cancellations and returns."),
        Role("invoice_date", "Invoice date", True, ("InvoiceDate", "OrderDate", "ordered_at", "Date"),
             "When the order was placed, in the shop's local time."),
        Role("unit_price", "Unit price", False, ("UnitPrice", "Price", "unit_price"),
             "Price of one unit in the shop currency (or give the line's amount instead)."),
        Role("amount", "Line amount", False, ("dollar_value", "amount", "line_amount", "sales"),
             "The line's total in the shop currency, when the file has no unit price: the unit price is then the "
             "amount divided by the quantity."),
        Role("customer_id", "Customer id", False, ("CustomerID", "Customer ID", "member_id", "customer_id"),
             "Becomes the member id; rows without it are guest orders."),
        Role("country", "Country", False, ("Country", "Region"), "Becomes the member's region."),
    ),
    "events": (
        Role("occurred_at", "Event time", True, ("event_time", "timestamp", "occurred_at", "time"),
             "Date and time, or Unix time in seconds or milliseconds."),
        Role("event_type", "Event type", True, ("event_type", "event", "type"),
             "view, cart / addtocart, purchase / transaction, or a MemberLens event type."),
        Role("user_id", "Visitor or member id", False, ("user_id", "visitorid", "member_id", "customer_id"),
             "Becomes the event's member id; empty for anonymous visitors."),
        Role("session_id", "Session id", False, ("user_session", "session_id", "session"),
             "Without it, sessions are cut after 30 minutes without an event (the GA convention)."),
        Role("product_id", "Product id", False, ("product_id", "itemid", "item_id", "sku"),
             "The product viewed or bought."),
        Role("category", "Category path", False, ("category_code", "category"),
             "Dot-separated category path such as electronics.smartphone; fills in new products."),
        Role("brand", "Brand", False, ("brand",), "Fills in new products."),
        Role("price", "Price", False, ("price",), "Fills in new products' list price."),
        Role("page", "Page", False, ("page", "page_type"), "Page of the event; by default taken from its type."),
        Role("device", "Device", False, ("device", "platform"), "Device of the session."),
        Role("source", "Traffic source", False, ("source", "utm_source", "traffic_source"), "Source of the session."),
    ),
    "baskets": (),
}

LAYOUTS: dict[str, tuple[Layout, ...]] = {
    "transactions": (
        Layout("UCI Online Retail", ("InvoiceNo", "UnitPrice", "CustomerID")),
        Layout("Online Retail II", ("Invoice", "Price", "Customer ID")),
        Layout("CDNOW", ("customer_id", "date", "number_of_cds", "dollar_value")),
    ),
    "events": (
        Layout("REES46", ("event_time", "event_type", "user_session")),
        Layout("RetailRocket", ("timestamp", "visitorid", "event", "itemid")),
    ),
    "baskets": (),
}


def normalise(name: str) -> str:
    """Column names compared without case, spaces or punctuation: 'Customer ID' == 'CustomerID'."""
    return re.sub(r"[^0-9a-z]", "", name.lower())


def detect_layout(kind: str, columns: Sequence[str]) -> str | None:
    """The name of the well-known layout these columns follow, if any."""
    present = {normalise(c) for c in columns}
    for layout in LAYOUTS[kind]:
        if all(normalise(c) in present for c in layout.signature):
            return layout.name
    return None


def resolve_mapping(kind: str, columns: Sequence[str], mapping: Mapping[str, str | None]) -> dict[str, int | None]:
    """Each role's column position in the file (None where absent), user mapping first.

    Raises ``KeyError``/``ValueError`` subclasses through :class:`MappingError` with a message that
    names the unknown role or column.
    """
    roles = {role.name: role for role in ROLES[kind]}
    unknown = sorted(set(mapping) - set(roles))
    if unknown:
        raise MappingError(f"{kind} files have no role {', '.join(unknown)}; the roles are {', '.join(roles)}")
    by_name = {normalise(c): i for i, c in reversed(list(enumerate(columns)))}
    exact = {c: i for i, c in reversed(list(enumerate(columns)))}
    resolved: dict[str, int | None] = {}
    for name, role in roles.items():
        if name in mapping:
            column = mapping[name]
            if column in (None, ""):
                resolved[name] = None
                continue
            if column in exact:
                resolved[name] = exact[column]
            elif normalise(column) in by_name:
                resolved[name] = by_name[normalise(column)]
            else:
                raise MappingError(f"{role.label} is mapped to column {column!r}, which the file does not have; "
                                   f"its columns are {', '.join(columns)}")
        else:
            resolved[name] = next((by_name[normalise(a)] for a in role.aliases if normalise(a) in by_name), None)
    return resolved


def missing_required(kind: str, resolved: Mapping[str, int | None]) -> list[Role]:
    """Required roles that no column of the file fills (a transactions file needs a unit price or a line amount,
    and without an invoice number a customer id to group its lines into orders)."""
    missing = [role for role in ROLES[kind] if role.required and resolved.get(role.name) is None]
    if kind == "transactions":
        by_name = {role.name: role for role in ROLES[kind]}
        if resolved.get("unit_price") is None and resolved.get("amount") is None:
            missing.append(by_name["unit_price"])
        if resolved.get("invoice") is None and resolved.get("customer_id") is None:
            missing.append(by_name["invoice"])
    return sorted(missing, key=ROLES[kind].index)


class MappingError(InputError):
    """A column mapping names a role or column that does not exist."""
