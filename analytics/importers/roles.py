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
from analytics.i18n import N_, _

KINDS: tuple[str, ...] = ("transactions", "events", "baskets")


@dataclass(frozen=True)
class Role:
    """One piece of information an importer reads from a column."""

    name: str
    label: str  # marked with N_, translated where shown
    required: bool
    aliases: tuple[str, ...]
    help: str  # likewise


@dataclass(frozen=True)
class Layout:
    """A well-known export format, recognised by columns only it has."""

    name: str
    signature: tuple[str, ...]


ROLES: dict[str, tuple[Role, ...]] = {
    "transactions": (
        Role("invoice", N_("Invoice number"), False, ("InvoiceNo", "Invoice", "OrderID", "order_id", "OrderNo"),
             N_("Becomes the order id. Numbers starting with C are cancellations. Without it, each customer's "
             "purchases of one day are one order (customer id and date).")),
        Role("stock_code", N_("Stock code"), False, ("StockCode", "product_id", "SKU", "ItemID"),
             N_("Becomes the product id; without it every line is one unnamed product (ITEM).")),
        Role("description", N_("Description"), False, ("Description", "product_name", "ItemName"),
             N_("Becomes the product name (its most frequent spelling).")),
        Role("quantity", N_("Quantity"), True, ("Quantity", "Qty", "number_of_cds", "units"),
             N_("Whole number of units; negative on cancellations and returns.")),
        Role("invoice_date", N_("Invoice date"), True, ("InvoiceDate", "OrderDate", "ordered_at", "Date"),
             N_("When the order was placed, in the shop's local time.")),
        Role("unit_price", N_("Unit price"), False, ("UnitPrice", "Price", "unit_price"),
             N_("Price of one unit in the shop currency (or give the line's amount instead).")),
        Role("amount", N_("Line amount"), False, ("dollar_value", "amount", "line_amount", "sales"),
             N_("The line's total in the shop currency, when the file has no unit price: the unit price is then the "
             "amount divided by the quantity.")),
        Role("customer_id", N_("Customer id"), False, ("CustomerID", "Customer ID", "member_id", "customer_id"),
             N_("Becomes the member id; rows without it are guest orders.")),
        Role("country", N_("Country"), False, ("Country", "Region"), N_("Becomes the member's region.")),
    ),
    "events": (
        Role("occurred_at", N_("Event time"), True, ("event_time", "timestamp", "occurred_at", "time"),
             N_("Date and time, or Unix time in seconds or milliseconds.")),
        Role("event_type", N_("Event type"), True, ("event_type", "event", "type"),
             N_("view, cart / addtocart, purchase / transaction, or a MemberLens event type.")),
        Role("user_id", N_("Visitor or member id"), False, ("user_id", "visitorid", "member_id", "customer_id"),
             N_("Becomes the event's member id; empty for anonymous visitors.")),
        Role("session_id", N_("Session id"), False, ("user_session", "session_id", "session"),
             N_("Without it, sessions are cut after 30 minutes without an event (the GA convention).")),
        Role("product_id", N_("Product id"), False, ("product_id", "itemid", "item_id", "sku"),
             N_("The product viewed or bought.")),
        Role("category", N_("Category path"), False, ("category_code", "category"),
             N_("Dot-separated category path such as electronics.smartphone; fills in new products.")),
        Role("brand", N_("Brand"), False, ("brand",), N_("Fills in new products.")),
        Role("price", N_("Price"), False, ("price",), N_("Fills in new products' list price.")),
        Role("page", N_("Page"), False, ("page", "page_type"),
             N_("Page of the event; by default taken from its type.")),
        Role("device", N_("Device"), False, ("device", "platform"), N_("Device of the session.")),
        Role("source", N_("Traffic source"), False, ("source", "utm_source", "traffic_source"),
             N_("Source of the session.")),
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
        raise MappingError(_("{kind} files have no role {unknown}; the roles are {roles}").format(
            kind=kind, unknown=", ".join(unknown), roles=", ".join(roles)))
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
                raise MappingError(_("{role} is mapped to column {column}, which the file does not have; its columns "
                                     "are {columns}").format(role=_(role.label), column=repr(column),
                                                             columns=", ".join(columns)))
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
