"""Importers on the real public files, checked against an independent pandas reading of each file.

The pandas side below reads the raw files with ``dtype=str`` and applies the documented rules
(cancellations start with C, zero or negative prices and exact duplicate lines are left out) in its
own way; the importers do their work in SQL. Bad files must be refused with a specific message
and leave the warehouse exactly as it was.
"""

from __future__ import annotations

import gzip
import shutil
import subprocess
import sys
from datetime import date
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path

import pandas as pd
import pytest
from sqlalchemy import text

from analytics.filters import Filters
from analytics.importers import ImportOptions, ImportRefused, import_file, import_history, preview_file
from analytics.kpis import kpi_summary
from analytics.storage.contract import WAREHOUSE_TABLES
from analytics.storage.warehouse import open_warehouse
from tests.conftest import DATASETS, PROJECT_ROOT, Warehouse

RETAIL = DATASETS / "online_retail.csv.gz"
REES46 = DATASETS / "rees46_events_sample.csv"
GROCERIES = DATASETS / "groceries.csv"


def need(path: Path) -> Path:
    if not path.exists():
        pytest.skip(f"{path.name} is not in {DATASETS} (the shared datasets folder is absent)")
    return path


def snapshot(url: str) -> dict[str, tuple]:
    """Row count and a content checksum of every contract table: equal snapshots = unchanged warehouse."""
    engine = open_warehouse(url) if Path(url.removeprefix("duckdb:///")).exists() or "postgresql" in url else None
    if engine is None:
        return {}
    out: dict[str, tuple] = {}
    with engine.connect() as conn:
        present = {r[0] for r in conn.execute(text(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = current_schema()"))}
        for table in WAREHOUSE_TABLES:
            if table.name in present:
                frame = pd.read_sql(text(f"SELECT * FROM {table.name}"), conn)
                out[table.name] = (len(frame), int(pd.util.hash_pandas_object(frame.astype(str), index=False).sum()))
    engine.dispose()
    return out


# --- the independent reading ----------------------------------------------------------------------

def money(quantity: str, price: str) -> Decimal:
    return (abs(Decimal(quantity)) * Decimal(price)).quantize(Decimal("0.01"), rounding=ROUND_HALF_UP)


@pytest.fixture(scope="session")
def retail_expected() -> dict[str, object]:
    raw = pd.read_csv(need(RETAIL), dtype=str, keep_default_na=False)
    duplicate = raw.duplicated(keep="first")
    price = pd.to_numeric(raw["UnitPrice"])
    quantity = pd.to_numeric(raw["Quantity"])
    cancellation = raw["InvoiceNo"].str.upper().str.startswith("C")
    kept = raw[~duplicate & (price > 0) & (quantity != 0) & ~(cancellation & (quantity > 0))]
    sales = kept[~kept["InvoiceNo"].str.upper().str.startswith("C")]
    amounts = [money(q, p) for q, p in zip(sales["Quantity"], sales["UnitPrice"], strict=True)]
    sales = sales.assign(amount=amounts, day=pd.to_datetime(sales["InvoiceDate"]).dt.date)
    return {
        "rows": len(raw),
        "duplicates": int(duplicate.sum()),
        "bad_price": int((price <= 0).sum()),
        "rejected_rows": int(len(raw) - len(kept)),
        "invoices": kept["InvoiceNo"].nunique(),
        "cancelled": kept.loc[kept["InvoiceNo"].str.startswith("C"), "InvoiceNo"].nunique(),
        "customers": kept.loc[kept["CustomerID"] != "", "CustomerID"].nunique(),
        "guest_invoices": kept.loc[kept["CustomerID"] == "", "InvoiceNo"].nunique(),
        "lines": len(kept),
        "products": kept["StockCode"].nunique(),
        "revenue": sum(amounts, Decimal(0)),
        "sales": sales,
    }


@pytest.fixture(scope="session", params=["duckdb", "postgresql"])
def retail_import(request, tmp_path_factory):
    """Online Retail imported once into a fresh warehouse on each database: (url, result)."""
    if request.param == "duckdb":
        url = f"duckdb:///{tmp_path_factory.mktemp('retail') / 'retail.duckdb'}"
    else:
        url = request.getfixturevalue("new_postgres_database")()
    return url, import_file(url, "transactions", need(RETAIL), ImportOptions(channel="web"))


def scalar(url: str, sql: str):
    engine = open_warehouse(url)
    try:
        with engine.connect() as conn:
            return conn.execute(text(sql)).scalar()
    finally:
        engine.dispose()


# --- transactions ---------------------------------------------------------------------------------

def test_transactions_match_an_independent_reading(retail_import, retail_expected) -> None:
    url, result = retail_import
    expected = retail_expected
    assert result.rows_read == expected["rows"]
    assert result.rows_rejected == expected["rejected_rows"]
    reasons = result.rejected_by_reason().set_index("reason")["rows"].to_dict()
    assert reasons == {"exact duplicate of row N": expected["duplicates"],
                       "zero or negative price": expected["bad_price"]}
    assert result.inserted == {"members": expected["customers"], "products": expected["products"],
                               "order_items": expected["lines"], "orders": expected["invoices"]}
    # What the warehouse now holds, read back with plain SQL
    assert scalar(url, "SELECT count(*) FROM orders") == expected["invoices"]
    assert scalar(url, "SELECT count(*) FROM orders WHERE status = 'cancelled'") == expected["cancelled"]
    assert scalar(url, "SELECT count(DISTINCT member_id) FROM orders") == expected["customers"]
    assert scalar(url, "SELECT count(*) FROM orders WHERE member_id IS NULL") == expected["guest_invoices"]
    assert Decimal(scalar(url, "SELECT sum(net_amount) FROM orders WHERE status = 'completed'")) == expected["revenue"]
    assert scalar(url, "SELECT count(*) FROM orders WHERE net_amount < 0 OR gross_amount < 0") == 0
    assert scalar(url, "SELECT count(*) FROM order_items WHERE quantity <= 0") == 0
    assert scalar(url, "SELECT member_id FROM orders WHERE order_id = '536365'") == "17850"  # ids kept
    assert scalar(url, "SELECT status FROM orders WHERE order_id = 'C536379'") == "cancelled"
    assert scalar(url, "SELECT region FROM members WHERE member_id = '12680'") == "France"
    assert scalar(url, "SELECT name FROM products WHERE product_id = '85123A'").startswith("WHITE HANGING HEART")
    first = expected["sales"].loc[expected["sales"]["CustomerID"] == "12347", "InvoiceDate"].min()
    assert str(scalar(url, "SELECT registered_at FROM members WHERE member_id = '12347'")) == first


def test_reimporting_the_same_file_changes_nothing(retail_import) -> None:
    url, first = retail_import
    before = snapshot(url)
    again = import_file(url, "transactions", RETAIL, ImportOptions(channel="web"))
    assert again.already_imported is not None and again.already_imported.import_id
    assert again.inserted == {}
    assert snapshot(url) == before
    engine = open_warehouse(url)
    try:
        assert list(import_history(engine)["fingerprint"]) == [first.fingerprint]
    finally:
        engine.dispose()


def test_kpis_show_the_imported_shop(retail_import, retail_expected) -> None:
    url, _ = retail_import
    sales = retail_expected["sales"]
    start, end = date(2011, 9, 1), date(2011, 11, 30)
    period = sales[(sales["day"] >= start) & (sales["day"] <= end)]
    engine = open_warehouse(url)
    try:
        summary = kpi_summary(engine, Filters(start, end))
    finally:
        engine.dispose()
    assert summary["net_sales"].current == pytest.approx(float(sum(period["amount"], Decimal(0))))
    assert summary["orders"].current == period["InvoiceNo"].nunique()
    assert summary["active_members"].current == period.loc[period["CustomerID"] != "", "CustomerID"].nunique()


def test_an_overlapping_file_adds_only_what_is_new(tmp_path, retail_expected) -> None:
    need(RETAIL)
    url = f"duckdb:///{tmp_path / 'w.duckdb'}"
    with gzip.open(RETAIL, "rt", encoding="utf-8") as source:
        head = [next(source) for _ in range(5001)]  # the header and 5,000 lines: the last invoice is cut short
    part = tmp_path / "first_5000_lines.csv"
    part.write_text("".join(head), encoding="utf-8")
    early = import_file(url, "transactions", part)
    full = import_file(url, "transactions", RETAIL)
    assert full.already_present["orders"] == early.inserted["orders"] > 0
    assert full.orders_differing == 1  # the cut invoice: kept as the first file brought it, and reported
    cut = head[-1].split(",")[0]
    missing = retail_expected["sales"].query("InvoiceNo == @cut").shape[0] - sum(1 for h in head if h.startswith(cut))
    assert early.inserted["orders"] + full.inserted["orders"] == retail_expected["invoices"]
    assert scalar(url, "SELECT count(*) FROM orders") == retail_expected["invoices"]
    assert scalar(url, "SELECT count(*) FROM order_items") == retail_expected["lines"] - missing


def test_import_into_the_demo_warehouse_leaves_its_rows_alone(tmp_path, duck_warehouse: Warehouse) -> None:
    need(RETAIL)
    copy = tmp_path / "demo.duckdb"
    shutil.copy(duck_warehouse.url.removeprefix("duckdb:///"), copy)
    url = f"duckdb:///{copy}"
    before = snapshot(url)
    result = import_file(url, "transactions", RETAIL)
    after = snapshot(url)
    assert after["campaigns"] == before["campaigns"] and after["events"] == before["events"]
    assert after["orders"][0] == before["orders"][0] + result.inserted["orders"]
    ids = ",".join(f"'{i}'" for i in duck_warehouse.frame("orders")["order_id"].head(500))
    demo = f"SELECT sum(net_amount) FROM orders WHERE order_id IN ({ids})"
    assert Decimal(scalar(url, demo)) == Decimal(scalar(duck_warehouse.url, demo))


def test_replace_empties_the_warehouse_first(tmp_path, duck_warehouse: Warehouse) -> None:
    need(REES46)
    copy = tmp_path / "demo.duckdb"
    shutil.copy(duck_warehouse.url.removeprefix("duckdb:///"), copy)
    url = f"duckdb:///{copy}"
    result = import_file(url, "events", REES46, ImportOptions(replace=True))
    assert scalar(url, "SELECT count(*) FROM orders") == 0
    assert scalar(url, "SELECT count(*) FROM events") == result.inserted["events"]
    assert scalar(url, "SELECT count(*) FROM information_schema.tables WHERE table_name = 'demo_personas'") == 0


def test_excel_workbooks_in_the_online_retail_ii_layout(tmp_path) -> None:
    openpyxl = pytest.importorskip("openpyxl")
    raw = pd.read_csv(need(RETAIL), dtype=str, keep_default_na=False, nrows=400)
    book = openpyxl.Workbook()
    sheets = [book.active, book.create_sheet()]
    sheets[0].title, sheets[1].title = "Year 2010", "Year 2011"
    header = ["Invoice", "StockCode", "Description", "Quantity", "InvoiceDate", "Price", "Customer ID", "Country"]
    for sheet, rows in ((sheets[0], raw.iloc[:250]), (sheets[1], raw.iloc[250:])):
        sheet.append(header)
        for r in rows.itertuples(index=False):  # numbers and dates as Excel holds them
            when = pd.Timestamp(r.InvoiceDate).to_pydatetime()
            sheet.append([r.InvoiceNo, r.StockCode, r.Description, int(r.Quantity), when, float(r.UnitPrice),
                          float(r.CustomerID) if r.CustomerID else None, r.Country])
    path = tmp_path / "online_retail_II.xlsx"
    book.save(path)
    url = f"duckdb:///{tmp_path / 'w.duckdb'}"
    assert preview_file("transactions", path).layout == "Online Retail II"
    result = import_file(url, "transactions", path)
    kept = raw[~raw.duplicated() & (pd.to_numeric(raw["UnitPrice"]) > 0)]
    assert result.inserted["orders"] == kept["InvoiceNo"].nunique()
    assert result.inserted["order_items"] == len(kept)
    assert sorted(scalar(url, "SELECT string_agg(DISTINCT member_id, ',') FROM orders").split(",")) == sorted(
        set(kept["CustomerID"]) - {""})
    if not result.rejected.empty:
        assert set(result.rejected["sheet"]) <= {"Year 2010", "Year 2011"}


def test_other_column_names_through_a_mapping(tmp_path) -> None:
    raw = pd.read_csv(need(RETAIL), dtype=str, keep_default_na=False, nrows=300)
    renamed = raw.rename(columns={"InvoiceNo": "Beleg", "StockCode": "Artikel", "UnitPrice": "Preis",
                                  "InvoiceDate": "Datum", "Quantity": "Menge", "CustomerID": "Kunde"})
    path = tmp_path / "export.csv"
    renamed.to_csv(path, index=False, sep=";")
    url = f"duckdb:///{tmp_path / 'w.duckdb'}"
    mapping = {"invoice": "Beleg", "stock_code": "Artikel", "unit_price": "Preis", "invoice_date": "Datum",
               "quantity": "Menge", "customer_id": "Kunde"}
    with pytest.raises(ImportRefused, match="has no column for Invoice number"):
        import_file(url, "transactions", path, ImportOptions(delimiter=";"))
    result = import_file(url, "transactions", path, ImportOptions(mapping=mapping, delimiter=";"))
    assert result.inserted["orders"] == raw["InvoiceNo"].nunique()


# --- events and baskets ---------------------------------------------------------------------------

@pytest.fixture(scope="session", params=["duckdb", "postgresql"])
def rees46_import(request, tmp_path_factory):
    if request.param == "duckdb":
        url = f"duckdb:///{tmp_path_factory.mktemp('rees') / 'events.duckdb'}"
    else:
        url = request.getfixturevalue("new_postgres_database")()
    return url, import_file(url, "events", need(REES46))


def test_events_match_an_independent_reading(rees46_import) -> None:
    url, result = rees46_import
    raw = pd.read_csv(REES46, dtype=str, keep_default_na=False)
    kept = raw[~raw.duplicated()]
    types = kept["event_type"].map({"view": "product_view", "cart": "add_to_cart", "purchase": "purchase"})
    assert result.rows_rejected == int(raw.duplicated().sum())
    for event_type, count in types.value_counts().items():
        assert scalar(url, f"SELECT count(*) FROM events WHERE event_type = '{event_type}'") == count
    sessions = kept["user_session"].nunique()
    assert scalar(url, "SELECT count(*) FROM events WHERE event_type = 'session_start'") == sessions
    assert scalar(url, "SELECT count(DISTINCT session_id) FROM events") == sessions
    assert scalar(url, "SELECT count(DISTINCT member_id) FROM events") == kept["user_id"].nunique()
    assert scalar(url, "SELECT count(*) FROM products") == kept["product_id"].nunique()
    electronics = kept.loc[kept["category_code"].str.startswith("electronics."), "product_id"].nunique()
    assert scalar(url, "SELECT count(*) FROM products WHERE category = 'electronics'") == electronics
    before = snapshot(url)
    assert import_file(url, "events", REES46).already_imported is not None
    assert snapshot(url) == before


def test_events_without_sessions_are_cut_after_30_minutes(tmp_path) -> None:
    path = tmp_path / "retailrocket.csv"
    minute = 60_000
    t0 = 1_433_221_332_117
    rows = [(t0, "v1", "view", "10", ""), (t0 + 10 * minute, "v1", "addtocart", "10", ""),
            (t0 + 41 * minute, "v1", "view", "11", ""), (t0 + 42 * minute, "v1", "transaction", "11", "5"),
            (t0, "v2", "view", "10", "")]
    pd.DataFrame(rows, columns=["timestamp", "visitorid", "event", "itemid", "transactionid"]).to_csv(path, index=False)
    url = f"duckdb:///{tmp_path / 'w.duckdb'}"
    result = import_file(url, "events", path)
    assert result.layout == "RetailRocket" and result.date_format == "Unix time in milliseconds"
    assert result.summary["sessions"] == 3  # v1 twice (a 31-minute gap), v2 once
    assert scalar(url, "SELECT count(*) FROM events WHERE event_type = 'purchase'") == 1
    assert str(scalar(url, "SELECT min(occurred_at) FROM events")) == "2015-06-02 05:02:12.117000"


def test_baskets_from_the_groceries_file(tmp_path) -> None:
    lines = need(GROCERIES).read_text(encoding="utf-8").splitlines()
    baskets = [list(dict.fromkeys(i.strip() for i in line.split(",") if i.strip())) for line in lines]
    url = f"duckdb:///{tmp_path / 'w.duckdb'}"
    result = import_file(url, "baskets", GROCERIES, ImportOptions(basket_date=date(2026, 1, 15)))
    assert result.inserted["orders"] == len(baskets) == 9_835
    assert result.inserted["order_items"] == sum(len(b) for b in baskets)
    assert result.inserted["products"] == len({i for b in baskets for i in b}) == 169
    assert scalar(url, "SELECT count(*) FROM products WHERE product_id <> trim(product_id)") == 0
    assert str(scalar(url, "SELECT max(ordered_at) FROM orders")) == "2026-01-15 00:00:00"


# --- bad files ------------------------------------------------------------------------------------

HEADER = "InvoiceNo,StockCode,Description,Quantity,InvoiceDate,UnitPrice,CustomerID,Country\n"
GOOD = "536365,85123A,HEART,6,2010-12-01 08:26:00,2.55,17850,United Kingdom\n"

BAD_FILES: dict[str, tuple[bytes, str]] = {
    "missing column": ((HEADER.replace(",UnitPrice", "") + "536365,85123A,HEART,6,2010-12-01 08:26:00,17850,UK\n")
                       .encode(), "has no column for Unit price"),
    "unparsable dates": ((HEADER + GOOD + GOOD.replace("2010-12-01 08:26:00", "31st of Dec")).encode(),
                         r"row 3, InvoiceDate '31st of Dec': not a date"),
    "text in numbers": ((HEADER + GOOD + GOOD.replace(",6,", ",six,")).encode(), "row 3, Quantity 'six': not a whole"),
    "empty file": (b"", "is empty"),
    "header only": (HEADER.encode(), "holds a header but no data rows"),
    "wrong delimiter": ((HEADER + GOOD).replace(",", ";").encode(), "does not look comma-separated.*semicolons"),
    "not utf-8": ((HEADER + GOOD.replace("HEART", "C\xd4UR")).encode("latin-1"), "is not utf-8 text"),
    "ragged line": ((HEADER + GOOD + "536366,22633,HAND WARMER,6\n").encode(), "Line 3 .* has 4 fields"),
}


@pytest.fixture(params=["duckdb", "postgresql"])
def demo_target(request, tmp_path, duck_warehouse: Warehouse) -> str:
    """A warehouse holding the tiny demo shop, that a test may (try to) import into."""
    if request.param == "duckdb":
        copy = tmp_path / "demo.duckdb"
        shutil.copy(duck_warehouse.url.removeprefix("duckdb:///"), copy)
        return f"duckdb:///{copy}"
    return request.getfixturevalue("pg_warehouse").url


@pytest.mark.parametrize("case", list(BAD_FILES))
def test_bad_files_are_refused_with_a_specific_message(case: str, tmp_path, demo_target: str) -> None:
    content, message = BAD_FILES[case]
    path = tmp_path / f"{case.replace(' ', '_')}.csv"
    path.write_bytes(content)
    before = snapshot(demo_target)
    with pytest.raises(ImportRefused, match=message) as refused:
        import_file(demo_target, "transactions", path)
    assert refused.value.fix
    assert snapshot(demo_target) == before


def test_bad_files_never_leave_a_new_warehouse_behind(tmp_path) -> None:
    path = tmp_path / "bad.csv"
    path.write_bytes(BAD_FILES["unparsable dates"][0])
    target = tmp_path / "new.duckdb"
    with pytest.raises(ImportRefused):
        import_file(f"duckdb:///{target}", "transactions", path)
    assert not target.exists()


def test_unreadable_rows_are_listed_and_can_be_skipped(tmp_path) -> None:
    path = tmp_path / "some_bad.csv"
    path.write_text(HEADER + GOOD + GOOD.replace(",6,", ",six,").replace("536365", "536366")
                    + GOOD.replace("536365", "536367").replace("2.55", "abc"), encoding="utf-8")
    url = f"duckdb:///{tmp_path / 'w.duckdb'}"
    with pytest.raises(ImportRefused, match="2 of 3 rows") as refused:
        import_file(url, "transactions", path)
    listed = refused.value.rejected
    assert listed[["row", "column", "value"]].values.tolist() == [[3, "Quantity", "six"], [4, "UnitPrice", "abc"]]
    result = import_file(url, "transactions", path, ImportOptions(skip_bad_rows=True))
    assert result.inserted["orders"] == 1 and result.rows_rejected == 2


def test_a_failure_while_loading_rolls_everything_back(tmp_path, demo_target: str) -> None:
    need(RETAIL)
    before = snapshot(demo_target)

    def fail_while_loading(fraction: float, message: str) -> None:
        if message == "Loading orders":  # members, products and order lines are in by now
            raise KeyboardInterrupt("the user closed the tab")

    with pytest.raises(KeyboardInterrupt):
        import_file(demo_target, "transactions", RETAIL, progress=fail_while_loading)
    assert snapshot(demo_target) == before


# --- command line ---------------------------------------------------------------------------------

def run_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "analytics.importers", *args], cwd=PROJECT_ROOT,
                          capture_output=True, text=True, timeout=300)


def test_command_line_import_and_refusal(tmp_path) -> None:
    url = f"duckdb:///{tmp_path / 'w.duckdb'}"
    done = run_cli("baskets", str(need(GROCERIES)), "--url", url, "--basket-date", "2026-01-15")
    assert done.returncode == 0, done.stderr
    assert "orders: 9,835" in done.stdout
    again = run_cli("baskets", str(GROCERIES), "--url", url)
    assert again.returncode == 0 and "imported already" in again.stdout
    bad = tmp_path / "bad.csv"
    bad.write_bytes(BAD_FILES["text in numbers"][0])
    rejects = tmp_path / "rejects.csv"
    refused = run_cli("transactions", str(bad), "--url", url, "--rejects", str(rejects))
    assert refused.returncode == 2
    assert refused.stderr.startswith("error: 1 of 2 rows of bad.csv cannot be read")
    assert "fix:" in refused.stderr and "Traceback" not in refused.stderr
    assert pd.read_csv(rejects)["reason"].tolist() == ["not a whole number"]


def test_command_line_rejects_bad_arguments(tmp_path) -> None:
    wrong = run_cli("transactions", str(tmp_path / "nowhere.csv"), "--url", f"duckdb:///{tmp_path / 'w.duckdb'}")
    assert wrong.returncode == 2 and "There is no file at" in wrong.stderr
    mapping = run_cli("transactions", str(need(RETAIL)), "--url", f"duckdb:///{tmp_path / 'w.duckdb'}",
                      "--map", "colour=Country")
    assert mapping.returncode == 2 and "no role colour" in mapping.stderr



def test_rebuilding_the_demo_forgets_earlier_imports(tmp_path) -> None:
    """The import log goes with the data it describes: after a rebuild the file can be imported again."""
    from analytics.synthetic import DemoSpec, generate_warehouse

    url = f"duckdb:///{tmp_path / 'w.duckdb'}"
    generate_warehouse(url, DemoSpec(members=50, seed=1))
    assert import_file(url, "baskets", need(GROCERIES)).inserted["orders"] == 9_835
    generate_warehouse(url, DemoSpec(members=50, seed=1), replace=True)
    again = import_file(url, "baskets", GROCERIES)
    assert again.already_imported is None and again.inserted["orders"] == 9_835


def test_hostile_text_in_options_never_reaches_sql(tmp_path, duck_warehouse: Warehouse) -> None:
    """A date format, channel, mapping or file name with quotes and SQL is data, never SQL."""
    copy = tmp_path / "demo.duckdb"
    shutil.copy(duck_warehouse.url.removeprefix("duckdb:///"), copy)
    url = f"duckdb:///{copy}"
    hostile = "x'); DROP TABLE orders; --"
    path = tmp_path / "it's; DROP TABLE members.csv"
    path.write_text(HEADER.replace("Country", hostile) + GOOD, encoding="utf-8")
    before = snapshot(url)
    with pytest.raises(ImportRefused, match="not a date in the format %Y'\\); DROP"):
        import_file(url, "transactions", path, ImportOptions(date_format="%Y'); DROP TABLE orders; --"))
    assert snapshot(url) == before
    result = import_file(url, "transactions", path, ImportOptions(channel=hostile, mapping={"country": hostile}))
    assert result.inserted["orders"] == 1
    assert scalar(url, "SELECT channel FROM orders WHERE order_id = '536365'") == hostile
    assert scalar(url, "SELECT region FROM members WHERE member_id = '17850'") == "United Kingdom"


def test_cohort_retention_of_the_imported_shop_matches_pandas(retail_import, retail_expected) -> None:
    """Monthly first-purchase retention of the real Online Retail customers, against pandas on the file."""
    from analytics.heatmaps import cohort_retention

    url, _ = retail_import
    sales = retail_expected["sales"]
    sales = sales[sales["CustomerID"] != ""].assign(month=pd.to_datetime(sales["InvoiceDate"]).dt.to_period("M"))
    first = sales.groupby("CustomerID")["month"].min().rename("cohort")
    active = sales[["CustomerID", "month"]].drop_duplicates().join(first, on="CustomerID")
    active["period"] = (active["month"] - active["cohort"]).map(lambda offset: offset.n)
    expected = active[active["period"] <= 12].groupby(["cohort", "period"]).size()
    sizes = first.value_counts()
    engine = open_warehouse(url)
    try:
        table = cohort_retention(engine, Filters(date(2010, 12, 1), date(2011, 12, 9)), "first_purchase", "month")
    finally:
        engine.dispose()
    table["cohort"] = table["cohort"].dt.to_period("M")
    assert table.groupby("cohort")["size"].first().to_dict() == sizes.to_dict()
    got = table[table["active"] > 0].set_index(["cohort", "period"])["active"]
    assert got.to_dict() == expected.to_dict()
    assert len(sizes) == 13 and sizes.sum() == 4_338  # Dec 2010 .. Dec 2011: every customer with a purchase
