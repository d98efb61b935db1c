"""Benchmark scenario ``pages``: the app as a user feels it, in Chromium (Playwright, as the browser tests).

One browser session opens the app on the 50,000-member demo and clicks through every page in the sidebar, in
navigation order, twice: the first pass is **cold** (a freshly started server: nothing cached), the second
**warm** (the same session: cached results, a connected warehouse). Each figure is the time from the click (or
the first request, for the app's opening) until Streamlit has finished running the page: its status widget gone
and quiet for half a second (the idle rule of the browser tests, with a shorter quiet time; the quiet time is
not counted). Targets (issue 20): opening ≤ 2 s warm; every page ≤ 3 s cold and ≤ 1 s warm.

Run on the embedded DuckDB demo (built once into ``benchmarks/data/demo_50000.duckdb``) and, when
``MEMBERLENS_BENCH_POSTGRES_URL`` names a PostgreSQL database holding the same demo, on PostgreSQL too.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parent.parent
DATA = PROJECT_ROOT / "benchmarks" / "data"
CHROMIUM = os.environ.get("MEMBERLENS_CHROMIUM", "/usr/bin/chromium")
QUIET_SECONDS = 0.5
TARGETS = {"open": 2.0, "cold": 3.0, "warm": 1.0}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _start(url: str, log: Path) -> tuple[subprocess.Popen, str]:
    port = _free_port()
    state = Path(tempfile.mkdtemp(prefix="memberlens_bench_state_")) / "state.sqlite"
    env = {**os.environ, "MEMBERLENS_WAREHOUSE_URL": url, "MEMBERLENS_STATE_URL": f"sqlite:///{state}"}
    process = subprocess.Popen([sys.executable, "-m", "streamlit", "run", "app.py", "--server.port", str(port),
                                "--server.address", "127.0.0.1", "--server.headless", "true"],
                               cwd=PROJECT_ROOT, env=env, stdout=log.open("w"), stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"{base}/_stcore/health", timeout=2) as response:
                if response.status == 200:
                    return process, base
        except OSError:
            time.sleep(0.2)
    process.terminate()
    raise RuntimeError(f"streamlit did not start: {log.read_text()[-2000:]}")


def _idle_after(page, started: float, previous_title: str | None = None) -> float:
    """Seconds from ``started`` until the page is drawn and its run is over: a title (``h1``) other than
    ``previous_title`` shown, and Streamlit's status widget gone and quiet for QUIET_SECONDS (not counted)."""
    page.wait_for_selector('[data-testid="stAppViewContainer"]', timeout=120_000)
    state = """(previous) => {
      const h1 = document.querySelector('h1');
      return [!!document.querySelector('[data-testid="stStatusWidget"]'),
              !!h1 && h1.innerText.trim() !== '' && h1.innerText.trim() !== previous];
    }"""
    done_at = None
    deadline = started + 300
    while time.monotonic() < deadline:
        page.wait_for_timeout(50)
        running, drawn = page.evaluate(state, previous_title or "")
        now = time.monotonic()
        if running or not drawn:
            done_at = None
        elif done_at is None:
            done_at = now
        elif now - done_at > QUIET_SECONDS:
            return done_at - started
    raise RuntimeError("a page kept running for 300 s")


def _title(page) -> str:
    return page.evaluate("() => (document.querySelector('h1')?.innerText || '').trim()")


def _pages() -> list[tuple[str, str]]:
    """(title, URL path) of every page of the app, in navigation order (app.PAGES)."""
    import ast

    tree = ast.parse((PROJECT_ROOT / "app.py").read_text(encoding="utf-8"))
    pages = next(node for node in ast.walk(tree) if isinstance(node, ast.AnnAssign)
                 and getattr(node.target, "id", "") == "PAGES")

    def text(node: ast.expr) -> str:
        return node.args[0].value if isinstance(node, ast.Call) else node.value  # N_("...") or "..."

    return [(text(elt.elts[2]), elt.elts[4].value) for elt in pages.value.elts]


def _pass(page, base: str) -> dict[str, float]:
    figures = {}
    started = time.monotonic()
    page.goto(base)
    figures["(open the app)"] = _idle_after(page, started)
    for title, key in _pages()[1:]:  # the home page is what opening the app shows
        link = page.locator(f'[data-testid="stSidebarNav"] a[href$="/{key}"]').first
        before = _title(page)
        started = time.monotonic()
        link.click()
        try:
            figures[title] = _idle_after(page, started, before)
        except RuntimeError as error:
            raise RuntimeError(f"{title}: {error}") from None
    return figures


def measure(url: str, label: str) -> list[list[str]]:
    """Cold and warm seconds per page on the warehouse at ``url``: rows for the report."""
    from playwright.sync_api import sync_playwright

    log = DATA / f"pages_{label}.log"
    process, base = _start(url, log)  # a fresh server: the first pass is cold
    try:
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True,
                                                 args=["--no-sandbox", "--disable-gpu"])
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            cold = _pass(page, base)
            warm = _pass(page, base)
            browser.close()
    finally:
        process.terminate()
        process.wait(timeout=30)
    rows = []
    for name in cold:
        target_cold = TARGETS["open"] * 3 if name == "(open the app)" else TARGETS["cold"]
        target_warm = TARGETS["open"] if name == "(open the app)" else TARGETS["warm"]
        rows.append([name, f"{cold[name]:.2f}", f"{warm[name]:.2f}",
                     "ok" if cold[name] <= target_cold and warm[name] <= target_warm else "over"])
    return rows


def pages_scenario(members: int = 50_000) -> None:
    from benchmarks.run import build_once, table

    warehouse = DATA / f"demo_{members}.duckdb"
    if not warehouse.exists():
        print(f"\nbuilding {warehouse.name} for the pages scenario ...")
        build_once(members, 42, warehouse)
    targets = (f"targets: open ≤ {TARGETS['open']} s warm, pages ≤ {TARGETS['cold']} s cold and "
               f"≤ {TARGETS['warm']} s warm")
    for label, url in (("duckdb", f"duckdb:///{warehouse}"), ("postgresql", os.environ.get(
            "MEMBERLENS_BENCH_POSTGRES_URL", ""))):
        if not url:
            print("\n(pages on PostgreSQL: set MEMBERLENS_BENCH_POSTGRES_URL to a database holding the demo)")
            continue
        print(f"\nPages in Chromium on {label}, {members:,}-member demo, one session ({targets}):")
        print(table(measure(url, label), ["page", "cold s", "warm s", "target"]))
