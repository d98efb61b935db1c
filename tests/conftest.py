"""Shared fixtures: a tiny demo warehouse built once per session in DuckDB and, when
``MEMBERLENS_TEST_POSTGRES_URL`` points at a PostgreSQL server, the same in PostgreSQL.

PostgreSQL tests run in a throwaway database created for the session and dropped afterwards,
so the server named by the URL is never touched otherwise.
"""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import pytest
from sqlalchemy import Engine, create_engine, select, text
from sqlalchemy.engine import make_url

from analytics.storage.contract import WAREHOUSE_TABLES
from analytics.storage.db import read_frame
from analytics.storage.warehouse import data_span, open_warehouse
from analytics.synthetic import DemoSpec, demo_personas, generate_warehouse

PROJECT_ROOT = Path(__file__).resolve().parent.parent
STATE_ENV = "MEMBERLENS_STATE_URL"
if not os.environ.get(STATE_ENV):
    # Saved audiences, users, the audit log and the suppression list of a test run stay in the run: never the
    # developer's data/app_state.sqlite (the CLI subprocesses inherit this too).
    import tempfile

    os.environ[STATE_ENV] = f"sqlite:///{tempfile.mkdtemp(prefix='memberlens_tests_')}/state.sqlite"

# Tests read English unless they ask for Chinese, whatever the machine's LANG (the CLI subprocesses inherit this).
os.environ.setdefault("MEMBERLENS_LANG", "en")

from streamlit import config as _streamlit_config  # noqa: E402

# What the shipped .streamlit/config.toml sets (loopback only), whatever directory a test runs in.
_streamlit_config.set_option("server.address", "127.0.0.1")
DATASETS = PROJECT_ROOT.parent / "shared" / "datasets"
TINY = DemoSpec(members=2_000, seed=7)
POSTGRES_ENV = "MEMBERLENS_TEST_POSTGRES_URL"
SPARK_ENV = "MEMBERLENS_TEST_SPARK_URL"
#: The Spark warehouse is smaller than TINY: every statement costs Spark a job, whatever the data size.
TINY_SPARK = DemoSpec(members=300, seed=7)


@dataclass
class Warehouse:
    """A built test warehouse: its URL, a read-only engine and its rows as DataFrames."""

    name: str
    url: str
    engine: Engine
    _frames: dict[str, pd.DataFrame]

    def frame(self, table: str) -> pd.DataFrame:
        """All rows of a table, read with a plain SELECT (the reference side of every check)."""
        if table not in self._frames:
            source = demo_personas if table == "demo_personas" else next(t for t in WAREHOUSE_TABLES if t.name == table)
            frame = read_frame(self.engine, select(source))
            for column in frame.columns:
                if frame[column].dtype == object and frame[column].map(type).astype(str).str.contains("Decimal").any():
                    frame[column] = frame[column].astype("float64")
            self._frames[table] = frame
        return self._frames[table]


@pytest.fixture(scope="session")
def duck_warehouse(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Warehouse]:
    path = tmp_path_factory.mktemp("duck") / "warehouse.duckdb"
    url = f"duckdb:///{path}"
    generate_warehouse(url, TINY)
    engine = open_warehouse(url)
    yield Warehouse("duckdb", url, engine, {})
    engine.dispose()


@pytest.fixture()
def own_warehouse(duck_warehouse: Warehouse, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
                  ) -> Iterator[tuple[Engine, Path]]:
    """A copy of the DuckDB demo with a data folder of its own (a new file: its first connection sets the folders
    DuckDB may read, so the score store and its rollups are this test's): ``(engine, path)``."""
    import shutil

    monkeypatch.setenv("MEMBERLENS_DATA_DIR", str(tmp_path / "data"))
    path = tmp_path / "warehouse.duckdb"
    shutil.copyfile(duck_warehouse.url.removeprefix("duckdb:///"), path)
    engine = open_warehouse(f"duckdb:///{path}")
    yield engine, path
    engine.dispose()


@pytest.fixture(scope="session")
def trained_models(duck_warehouse: Warehouse) -> dict:
    """Churn, propensity and CLV models trained once on the DuckDB demo, as the registry stores them."""
    from analytics import predictions

    return {"churn": predictions.train_classifier(duck_warehouse.engine, "churn"),
            "propensity": predictions.train_classifier(duck_warehouse.engine, "propensity"),
            "clv": predictions.train_clv(duck_warehouse.engine)}


def store_models(state_url: str, engine: Engine, trained: dict) -> None:
    """Save trained models into the app-state database at ``state_url``, scoring as of the data's last day."""
    from analytics.storage.appstate import open_state
    from analytics.storage.model_registry import save_model

    state = open_state(state_url)
    as_of = data_span(engine).last_day
    for kind in ("churn", "propensity", "clv"):
        save_model(state, kind, trained[kind]["card"].get("algorithm", "bgnbd"), as_of, trained[kind], "test")


@pytest.fixture(scope="session")
def postgres_server_url() -> str:
    url = os.environ.get(POSTGRES_ENV, "").strip()
    if not url:
        pytest.skip(f"{POSTGRES_ENV} is not set: no PostgreSQL server to test against (CI sets it)")
    return url


@pytest.fixture(scope="session")
def postgres_database(postgres_server_url: str) -> Iterator[str]:
    """A fresh, empty database on the test server; dropped at the end of the session."""
    name = f"memberlens_test_{uuid.uuid4().hex[:10]}"
    admin = create_engine(postgres_server_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    url = make_url(postgres_server_url).set(database=name).render_as_string(hide_password=False)
    yield url
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


@pytest.fixture(scope="session")
def new_postgres_database(postgres_server_url: str) -> Iterator[Callable[[], str]]:
    """Make more empty databases on the test server (each dropped at the end of the session)."""
    admin = create_engine(postgres_server_url, isolation_level="AUTOCOMMIT")
    made: list[str] = []

    def make() -> str:
        name = f"memberlens_test_{uuid.uuid4().hex[:10]}"
        with admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
        made.append(name)
        return make_url(postgres_server_url).set(database=name).render_as_string(hide_password=False)

    yield make
    with admin.connect() as conn:
        for name in made:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


@pytest.fixture(scope="session")
def pg_warehouse(postgres_database: str) -> Iterator[Warehouse]:
    generate_warehouse(postgres_database, TINY)
    engine = open_warehouse(postgres_database)
    yield Warehouse("postgresql", postgres_database, engine, {})
    engine.dispose()


@pytest.fixture(scope="session")
def spark_server_url() -> str:
    url = os.environ.get(SPARK_ENV, "").strip()
    if not url:
        pytest.skip(f"{SPARK_ENV} is not set: no Spark Thrift Server to test against "
                    "(CI starts one with .ci/start_spark)")
    try:
        import pyhive  # noqa: F401
    except ImportError:
        pytest.skip("PyHive is not installed: pip install -r requirements.txt")
    return url


@pytest.fixture(scope="session")
def spark_warehouse(spark_server_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Warehouse]:
    """TINY_SPARK as Parquet files with Spark tables over them, in a database of its own (dropped afterwards)."""
    name = f"memberlens_test_{uuid.uuid4().hex[:10]}"
    url = make_url(spark_server_url).set(database=name).render_as_string(hide_password=False)
    admin = create_engine(make_url(spark_server_url).set(database="default"))
    try:
        generate_warehouse(url, TINY_SPARK, parquet_dir=tmp_path_factory.mktemp("spark") / "parquet")
        engine = open_warehouse(url)
        yield Warehouse("spark", url, engine, {})
        engine.dispose()
    finally:
        with admin.connect() as conn:
            conn.exec_driver_sql(f"DROP DATABASE IF EXISTS `{name}` CASCADE")
        admin.dispose()


@pytest.fixture(scope="session")
def duck_twin(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Warehouse]:
    """TINY_SPARK in DuckDB: the reference the Spark results are compared with."""
    url = f"duckdb:///{tmp_path_factory.mktemp('duck_twin') / 'warehouse.duckdb'}"
    generate_warehouse(url, TINY_SPARK)
    engine = open_warehouse(url)
    yield Warehouse("duckdb", url, engine, {})
    engine.dispose()


@pytest.fixture(scope="session", params=["duckdb", "postgresql"])
def warehouse(request: pytest.FixtureRequest) -> Warehouse:
    """Each test using this runs on DuckDB and on PostgreSQL (skipped without a server)."""
    return request.getfixturevalue("duck_warehouse" if request.param == "duckdb" else "pg_warehouse")


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo) -> Iterator[None]:
    """In CI (``MEMBERLENS_NO_SKIP=1``) a skipped test fails: CI provides PostgreSQL and Chromium."""
    outcome = yield
    report = outcome.get_result()
    if report.skipped and os.environ.get("MEMBERLENS_NO_SKIP") == "1" and not hasattr(report, "wasxfail"):
        reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else str(report.longrepr)
        report.outcome = "failed"
        report.longrepr = f"skipped in CI, where nothing may be skipped: {reason}"


def open_page(url: str, page: str, monkeypatch: pytest.MonkeyPatch):
    """The app under Streamlit's AppTest, pointed at ``url`` and switched to ``page`` (``pages/x.py``),
    with no exception raised on the way."""
    from streamlit.testing.v1 import AppTest

    monkeypatch.setenv("MEMBERLENS_WAREHOUSE_URL", url)
    if not os.environ.get("MEMBERLENS_STATE_URL"):  # saved audiences of a test stay in the test
        import tempfile

        monkeypatch.setenv("MEMBERLENS_STATE_URL", f"sqlite:///{tempfile.mkdtemp(prefix='memberlens_state_')}/s.sqlite")
    at = AppTest.from_file(str(PROJECT_ROOT / "app.py"), default_timeout=120).run()
    at.switch_page(page).run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def direct_page(warehouse: Warehouse, page: str, monkeypatch: pytest.MonkeyPatch, principal=None):
    """A page under AppTest run on its own with the context ``app.py`` would give it (the last 90 days) for
    ``principal`` (default: the local admin), and a ``run()`` that hands the context over each time. Needed where
    a button is clicked: through ``app.py`` the first run after a page switch reruns, and a click lasts one run
    only."""
    from streamlit.testing.v1 import AppTest

    from analytics.access import local_principal
    from analytics.filters import filter_options
    from analytics.storage.warehouse import resolve_warehouse_config
    from ui.context import _CONTEXT_KEY, PageContext

    monkeypatch.setenv("MEMBERLENS_WAREHOUSE_URL", warehouse.url)
    context = PageContext(resolve_warehouse_config(), warehouse.engine, data_span(warehouse.engine),
                          filter_options(warehouse.engine), default_filters(warehouse), principal or local_principal())
    at = AppTest.from_file(str(PROJECT_ROOT / page), default_timeout=120)

    def run(check: bool = True) -> AppTest:
        at.session_state[_CONTEXT_KEY] = context
        at.run()
        assert not check or not at.exception, [e.value for e in at.exception]
        return at

    return at, run


def default_filters(warehouse: Warehouse):
    """The filters a page opens with: the last 90 days of data, all channels and tiers."""
    from analytics.filters import DEFAULT_RANGE_DAYS, Filters

    return Filters(*data_span(warehouse.engine).last_days(DEFAULT_RANGE_DAYS))


def run(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """Run ``python -m <args>`` in the project, with only the given MEMBERLENS_WAREHOUSE_URL (if any)."""
    full_env = {k: v for k, v in os.environ.items() if k != "MEMBERLENS_WAREHOUSE_URL"} | (env or {})
    return subprocess.run([sys.executable, "-m", *args], cwd=PROJECT_ROOT, env=full_env,
                          capture_output=True, text=True, timeout=300)
