"""The background import of scikit-learn and SciPy (analytics/preload.py): once per process, every library
imported, a broken one skipped, and the app's first run leaving the import to the background."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

from tests.conftest import PROJECT_ROOT


def _python(code: str) -> dict:
    """Run ``code`` in a fresh interpreter (nothing imported yet) and return the JSON it prints last."""
    done = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], cwd=PROJECT_ROOT, capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_preload_imports_each_library_once_and_skips_a_broken_one() -> None:
    found = _python("""
        import json, logging, sys
        logging.basicConfig(level=logging.WARNING)
        from analytics.preload import heavy_imports, preload_in_background
        before = "sklearn.cluster" in sys.modules
        thread = preload_in_background(("no_such_library_here", "sklearn.cluster", "scipy.stats"))
        again = preload_in_background()
        thread.join(timeout=240)
        with heavy_imports(), heavy_imports():  # re-entrant: an analysis may nest them
            from sklearn.cluster import KMeans
        print(json.dumps({"before": before, "again": again is None, "alive": thread.is_alive(),
                          "after": ["sklearn.cluster" in sys.modules, "scipy.stats" in sys.modules],
                          "kmeans": KMeans.__name__}))
    """)
    assert found == {"before": False, "again": True, "alive": False, "after": [True, True], "kmeans": "KMeans"}


def test_the_apps_first_run_leaves_scikit_learn_and_scipy_to_the_background(duck_warehouse, tmp_path) -> None:
    """The first page is drawn without importing scikit-learn or SciPy's statistics (its campaign ROI needs the
    campaigns' estimates, not their p-values); the thread started at the end of the run imports them."""
    found = _python(f"""
        import json, os, sys
        os.environ["MEMBERLENS_WAREHOUSE_URL"] = {duck_warehouse.url!r}
        os.environ["MEMBERLENS_STATE_URL"] = "sqlite:///{tmp_path / 'state.sqlite'}"
        from streamlit.testing.v1 import AppTest
        import analytics.preload as preload
        started = []
        original = preload.preload_in_background
        def spy(*args):
            started.append(["sklearn.cluster" in sys.modules, "scipy.stats" in sys.modules])
            return original(*args)
        preload.preload_in_background = spy
        at = AppTest.from_file({str(PROJECT_ROOT / "app.py")!r}, default_timeout=120).run()
        roi = [m.value for m in at.metric if m.label == "Campaign ROI (realised)"]
        print(json.dumps({{"errors": [str(e.value) for e in at.exception], "started": started,
                          "title": at.title[0].value if at.title else "", "roi": roi}}))
    """)
    assert found["errors"] == []
    assert found["started"] == [[False, False]], "preload runs once, after the page, with neither imported yet"
    assert found["roi"] and found["roi"][0] not in ("", "–", "—"), "the page showed a campaign ROI"
    assert found["title"]
