"""Every page under Streamlit's AppTest: it runs without an exception and shows the right things."""

from __future__ import annotations

from datetime import date, timedelta
from pathlib import Path

import duckdb
import pytest
from sqlalchemy import text
from streamlit.testing.v1 import AppTest

from analytics import kpis
from analytics.filters import Filters
from analytics.storage.warehouse import data_span, open_warehouse
from tests.conftest import PROJECT_ROOT
from ui.format import format_change, format_value

APP = str(PROJECT_ROOT / "app.py")
PAGES = {"pages/executive_kpis.py": "Executive KPIs", "pages/warehouse.py": "Warehouse",
         "pages/import_data.py": "Import data", "pages/data_quality.py": "Data quality",
         "pages/basket_rules.py": "Basket rules", "pages/heatmaps.py": "Heatmaps", "pages/funnels.py": "Funnels",
         "pages/rfm_segments.py": "RFM segments"}


@pytest.fixture
def app_on(monkeypatch: pytest.MonkeyPatch):
    """Start an AppTest against the warehouse at ``url`` (and nothing from the user's set-up)."""

    def start(url: str | None, **query: str) -> AppTest:
        if url is None:
            monkeypatch.delenv("MEMBERLENS_WAREHOUSE_URL", raising=False)
        else:
            monkeypatch.setenv("MEMBERLENS_WAREHOUSE_URL", url)
        at = AppTest.from_file(APP, default_timeout=120)
        for key, value in query.items():
            at.query_params[key] = value
        return at.run()

    return start


@pytest.mark.parametrize("page", PAGES)
def test_every_page_runs_without_an_exception(app_on, warehouse, page: str) -> None:
    """On DuckDB and on PostgreSQL: a user pointing the app at either sees the same pages."""
    at = app_on(warehouse.url)
    if page != "pages/executive_kpis.py":
        at.switch_page(page).run()
    assert not at.exception, [e.value for e in at.exception]
    assert [t.value for t in at.title] == [PAGES[page]]
    if page == "pages/executive_kpis.py":
        span = data_span(warehouse.engine)
        orders = kpis.kpi_summary(warehouse.engine, Filters(*span.last_days(90)))["orders"].current
        assert {m.label: m.value for m in at.metric}["Orders"] == format_value(orders, "count")
    elif page == "pages/warehouse.py":
        assert "Every table and column" in at.success[0].value
    elif page == "pages/import_data.py":
        assert "Choose a file" in at.info[0].value
    elif page == "pages/heatmaps.py":
        assert len(at.get("plotly_chart")) == 1  # the open tab's heatmap (cohort retention) alone
    elif page == "pages/rfm_segments.py":
        assert [m.label for m in at.metric] == ["Members scored", "Their net sales", "Lapsed", "Champions + Loyal",
                                              "At Risk + Can't Lose Them"]
    elif page == "pages/funnels.py":
        assert [m.label for m in at.metric][:4] == ["Entered (members)", "Converted", "Overall conversion",
                                                "Median time to convert"]
    elif page == "pages/data_quality.py":
        assert [m.label for m in at.metric] == ["Complete", "Accurate", "Timely"]
    else:
        assert [m.label for m in at.metric] == ["Baskets", "Subcategories", "Frequent items", "Rules"]


def test_warehouse_from_secrets_toml(app_on, duck_warehouse, tmp_path: Path, monkeypatch) -> None:
    (tmp_path / ".streamlit").mkdir()
    (tmp_path / ".streamlit" / "secrets.toml").write_text(f'[connections.warehouse]\nurl = "{duck_warehouse.url}"\n')
    monkeypatch.chdir(tmp_path)  # Streamlit and MemberLens both read ./.streamlit/secrets.toml
    at = app_on(None)
    assert not at.exception
    assert [t.value for t in at.title] == ["Executive KPIs"]
    assert "from .streamlit/secrets.toml" in " ".join(c.value for c in at.sidebar.caption)


def test_kpi_cards_show_the_summary_with_help(app_on, duck_warehouse) -> None:
    at = app_on(duck_warehouse.url)
    span = data_span(duck_warehouse.engine)
    summary = kpis.kpi_summary(duck_warehouse.engine, Filters(*span.last_days(90)))
    cards = {m.label: m for m in at.metric}
    assert len(cards) == len(kpis.KPIS)
    for definition in kpis.KPIS:
        card = cards[definition.label]
        assert card.value == format_value(summary[definition.key].current, definition.unit)
        assert card.delta == (format_change(summary[definition.key]) or "")
        assert definition.definition in card.proto.help
    date_range = at.sidebar.date_input(key="dates").value
    assert tuple(date_range) == span.last_days(90)


def test_filters_come_from_the_url_and_change_the_numbers(app_on, duck_warehouse) -> None:
    at = app_on(duck_warehouse.url, tier="Gold", channel="App")
    assert not at.exception
    assert at.sidebar.multiselect(key="tier").value == ["gold"]
    assert at.sidebar.multiselect(key="channel").value == ["app"]
    span = data_span(duck_warehouse.engine)
    filters = Filters(*span.last_days(90), channels=("app",), tiers=("gold",))
    orders = kpis.kpi_summary(duck_warehouse.engine, filters)["orders"].current
    assert {m.label: m.value for m in at.metric}["Orders"] == format_value(orders, "count")
    assert "channel filter not applied" in " ".join(m.label for m in at.metric)


def test_choosing_a_date_range_recomputes(app_on, duck_warehouse) -> None:
    at = app_on(duck_warehouse.url)
    span = data_span(duck_warehouse.engine)
    start, end = span.last_day - timedelta(days=29), span.last_day
    at.sidebar.date_input(key="dates").set_value((start, end)).run()
    assert not at.exception
    net = kpis.kpi_summary(duck_warehouse.engine, Filters(start, end))["net_sales"].current
    assert {m.label: m.value for m in at.metric}["Net sales (GMV)"] == format_value(net, "currency")
    assert f"{start:%d %b %Y} – {end:%d %b %Y} (30 days)" in at.caption[0].value


def test_trend_and_breakdown_choices(app_on, duck_warehouse) -> None:
    at = app_on(duck_warehouse.url, trend_kpi="Repurchase rate", trend_grain="Month", breakdown_by="Member tier")
    assert not at.exception
    assert at.selectbox(key="trend_kpi").value == "repurchase_rate"
    frames = [df.value for df in at.dataframe]
    assert frames and list(frames[0].columns)[:2] == ["Member tier", "Net sales (GMV)"]
    assert set(frames[0]["Member tier"]) <= {"Basic", "Silver", "Gold", "Diamond", "Guest"}


def test_a_range_with_nothing_in_it_shows_an_empty_state(app_on, duck_warehouse) -> None:
    span = data_span(duck_warehouse.engine)
    quiet = next(
        day for day in (span.first_day + timedelta(days=i) for i in range(120))
        if kpis.kpi_summary(duck_warehouse.engine, Filters(day, day, ("live_stream",), ("diamond",))).is_empty
    )
    at = app_on(duck_warehouse.url, dates=quiet.isoformat(), tier="Diamond", channel="Live stream")
    assert not at.exception
    assert any("Nothing happened" in i.value for i in at.info)
    assert not at.metric


def _partial_warehouse(path: Path) -> str:
    con = duckdb.connect(str(path))
    con.execute("CREATE TABLE members (member_id VARCHAR, registered_at TIMESTAMP)")
    con.close()
    return f"duckdb:///{path}"


@pytest.mark.parametrize(("make_url", "expected"), [
    (lambda tmp: f"duckdb:///{tmp / 'absent.duckdb'}", "There is no DuckDB warehouse file"),
    (lambda tmp: "postgresql+psycopg://analyst:pw@127.0.0.1:9/shop", "The warehouse server does not answer"),
    (lambda tmp: "snowflake://me:pw@acct/db", "No database driver is installed for 'snowflake'"),
    (lambda tmp: _partial_warehouse(tmp / "partial.duckdb"), "missing tables: products, campaigns, orders"),
])
def test_a_broken_warehouse_gets_a_page_that_explains(app_on, tmp_path: Path, make_url, expected: str) -> None:
    at = app_on(make_url(tmp_path))
    assert not at.exception
    assert at.title[0].value == "MemberLens cannot use the warehouse"
    assert expected in at.error[0].value
    assert "How to fix it" in " ".join(m.value for m in at.markdown)
    assert "pw@" not in " ".join(m.value for m in at.markdown)


def test_an_empty_warehouse_says_so(app_on, tmp_path: Path) -> None:
    from analytics.storage.bulkload import bulk_load
    from analytics.storage.contract import WAREHOUSE_TABLES

    url = f"duckdb:///{tmp_path / 'empty.duckdb'}"
    with bulk_load(url, WAREHOUSE_TABLES):
        pass
    at = app_on(url)
    assert not at.exception
    assert "holds the MemberLens tables but no orders yet" in at.error[0].value


def test_first_run_builds_the_demo_warehouse_then_opens_the_kpis(app_on, tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("MEMBERLENS_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("MEMBERLENS_DEMO_MEMBERS", "400")
    monkeypatch.chdir(tmp_path)  # no .streamlit/secrets.toml here
    at = app_on(None)
    assert not at.exception, [e.value for e in at.exception]
    assert (tmp_path / "warehouse.duckdb").exists()
    assert [t.value for t in at.title] == ["Executive KPIs"]
    assert len(at.metric) == len(kpis.KPIS)
    assert "embedded warehouse" in " ".join(c.value for c in at.sidebar.caption)


def test_a_rebuilt_warehouse_is_read_after_refresh(app_on, tmp_path: Path) -> None:
    from analytics.synthetic import DemoSpec, generate_warehouse

    url = f"duckdb:///{tmp_path / 'w.duckdb'}"
    generate_warehouse(url, DemoSpec(members=300, seed=5))
    at = app_on(url)
    at.switch_page("pages/warehouse.py").run()
    rows = at.dataframe[0].value.set_index("table")["rows"]
    assert rows["members"] == 300
    generate_warehouse(url, DemoSpec(members=450, seed=5), replace=True)  # while the app has it open
    # AppTest restarts Streamlit's page routing on every run, which loses a click made on another
    # page than the home page (a real server does not), so refresh from the home page.
    at.switch_page("pages/executive_kpis.py").run()
    at.sidebar.button(key="refresh_data").click().run()
    assert not at.exception
    at.switch_page("pages/warehouse.py").run()
    assert at.dataframe[0].value.set_index("table")["rows"]["members"] == 450


def test_a_table_dropped_while_running_gets_the_problem_page(app_on, postgres_server_url) -> None:
    import uuid

    from sqlalchemy import create_engine, text
    from sqlalchemy.engine import make_url

    from analytics.synthetic import DemoSpec, generate_warehouse

    name = f"memberlens_drop_{uuid.uuid4().hex[:8]}"
    admin = create_engine(postgres_server_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    url = make_url(postgres_server_url).set(database=name).render_as_string(hide_password=False)
    try:
        generate_warehouse(url, DemoSpec(members=200, seed=2))
        at = app_on(url)
        assert not at.exception and at.title[0].value == "Executive KPIs"
        owner = create_engine(url, isolation_level="AUTOCOMMIT")
        with owner.connect() as conn:
            conn.execute(text("ALTER TABLE events RENAME TO events_archived"))
        owner.dispose()
        at.selectbox(key="trend_kpi").set_value("session_conversion").run()
        assert not at.exception
        assert at.title[-1].value == "MemberLens cannot use the warehouse"
        assert "events" in at.error[0].value
    finally:
        from ui.warehouse import warehouse_engine

        warehouse_engine.clear()
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def test_a_bad_demo_size_setting_is_named(app_on, tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("MEMBERLENS_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("MEMBERLENS_DEMO_MEMBERS", "lots")
    monkeypatch.chdir(tmp_path)
    at = app_on(None)
    assert not at.exception
    assert "MEMBERLENS_DEMO_MEMBERS='lots' is not a member count" in at.error[0].value
    assert not (tmp_path / "warehouse.duckdb").exists()


def test_a_date_range_round_trips_through_the_url(app_on, duck_warehouse) -> None:
    at = app_on(duck_warehouse.url, dates=["2026-03-01", "2026-03-31"])
    assert not at.exception
    assert tuple(at.sidebar.date_input(key="dates").value) == (date(2026, 3, 1), date(2026, 3, 31))
    assert "1 Mar 2026 – 31 Mar 2026 (31 days)" in at.caption[0].value


def test_a_second_start_opens_the_existing_warehouse_without_building(app_on, tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("MEMBERLENS_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("MEMBERLENS_DEMO_MEMBERS", "300")
    monkeypatch.chdir(tmp_path)
    app_on(None)
    built = (tmp_path / "warehouse.duckdb").stat().st_mtime_ns
    at = app_on(None)  # a new session, as after restarting the app
    assert not at.exception and at.title[0].value == "Executive KPIs"
    assert (tmp_path / "warehouse.duckdb").stat().st_mtime_ns == built


def test_link_values_that_cannot_be_used_are_named(app_on, duck_warehouse) -> None:
    at = app_on(duck_warehouse.url, tier=["gold", "Silver"], dates=["1999-01-01"], trend_kpi="Profit")
    assert not at.exception
    warnings = " ".join(w.value for w in at.warning)
    assert "tier=gold" in warnings and "trend_kpi=Profit" in warnings
    assert "The link asked for 1 Jan 1999 – 1 Jan 1999, but the warehouse has data from" in warnings  # narrowed
    assert "Silver" not in warnings
    assert at.sidebar.multiselect(key="tier").value == ["silver"]  # the valid part is kept


def test_import_page_previews_maps_and_imports_a_file(duck_warehouse, tmp_path: Path, monkeypatch, request) -> None:
    """The path a user takes: choose a file, see its rows and mapping, import, see the result.

    The page runs as app.py hands it over (its context in session state): under AppTest a click on
    a page routed through app.py is lost, since AppTest restarts Streamlit's page routing every run.
    The browser test opens the same page through app.py."""
    from analytics.access import local_principal
    from analytics.filters import filter_options
    from analytics.storage.warehouse import resolve_warehouse_config
    from ui.context import _CONTEXT_KEY, Filters, PageContext
    from ui.warehouse import warehouse_engine

    copy = tmp_path / "demo.duckdb"
    copy.write_bytes(Path(duck_warehouse.url.removeprefix("duckdb:///")).read_bytes())
    url = f"duckdb:///{copy}"
    export = tmp_path / "shop_export.csv"
    export.write_text(
        "Invoice,StockCode,Description,Quantity,InvoiceDate,Price,Customer ID,Country\n"
        "A1,SKU-1,Mug,2,2026-11-10 09:30:00,4.50,9001.0,United Kingdom\n"
        "A1,SKU-2,Tea,1,2026-11-10 09:30:00,3.00,9001.0,United Kingdom\n"
        "A1,SKU-2,Tea,1,2026-11-10 09:30:00,3.00,9001.0,United Kingdom\n"
        "CA1,SKU-1,Mug,-1,2026-11-11 10:00:00,4.50,9001.0,United Kingdom\n", encoding="utf-8")
    monkeypatch.setenv("MEMBERLENS_WAREHOUSE_URL", url)
    monkeypatch.setenv("MEMBERLENS_IMPORT_DIRS", str(tmp_path / "elsewhere"))
    engine = warehouse_engine(url)  # the app's cached engine, which the page releases before writing
    span = data_span(engine)
    context = PageContext(resolve_warehouse_config(), engine, span, filter_options(engine),
                          Filters(*span.last_days(90)), local_principal())
    at = AppTest.from_file(str(PROJECT_ROOT / "pages" / "import_data.py"), default_timeout=120)
    from streamlit import config

    shown = config.get_option("client.showErrorDetails")
    config.set_option("client.showErrorDetails", "full")  # name the one expected error below
    request.addfinalizer(lambda: config.set_option("client.showErrorDetails", shown))

    def run() -> AppTest:
        at.session_state[_CONTEXT_KEY] = context
        return at.run()

    run()
    at.radio(key="import_source").set_value("A path on the server")
    run()
    at.text_input(key="import_path").input(str(export))
    run()
    assert "reads server files only from" in at.error[0].value  # not in an import folder: not read
    monkeypatch.setenv("MEMBERLENS_IMPORT_DIRS", str(tmp_path))
    run()
    assert not at.exception, [e.value for e in at.exception]
    assert "Online Retail II" in " ".join(c.value for c in at.caption)
    assert at.selectbox(key=f"map:transactions:{export}:unit_price").value == "Price"
    at.button(key="import_go").click()
    run()
    # Run outside app.py's navigation, the result's link to the KPI page cannot resolve; nothing else fails.
    assert all("Could not find page: `pages/executive_kpis.py`" in e.value for e in at.exception), \
        [e.value for e in at.exception]
    assert at.success and "3 of 4 rows imported" in at.success[0].value
    engine = open_warehouse(url)  # the app's own configuration: DuckDB refuses mixed ones
    with engine.connect() as conn:
        rows = conn.execute(text("SELECT status, net_amount FROM orders WHERE member_id = '9001' ORDER BY 1")).all()
    engine.dispose()
    # A1 (4.50 x 2 + 3.00, the duplicate line left out) and the cancellation CA1, positive, not completed
    assert [(status, float(amount)) for status, amount in rows] == [("cancelled", 4.5), ("completed", 12.0)]
