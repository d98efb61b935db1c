"""The hostile-input battery (tests/hostile.py) in a child process with its address space capped: every input is
refused with a message or answered, none crashes, none takes more than its time bound, the process stays far from
the 22.5 GB the 10,000-condition audience once took, and the warehouse is not written. The outcome of every case is
saved to tests/artifacts/hostile.json."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections import Counter

from tests.conftest import PROJECT_ROOT, Warehouse
from tests.hostile import CASE_SECONDS

ARTIFACTS = PROJECT_ROOT / "tests" / "artifacts"
MAX_PEAK_BYTES = 2 * 1024**3
CATEGORIES = {"audience", "typed condition", "dates", "numbers", "search", "funnel", "privacy", "users", "urls", "csv",
              "import"}


def test_every_hostile_input_is_handled_within_bounds(duck_warehouse: Warehouse, tmp_path) -> None:
    env = {**os.environ, "MEMBERLENS_STATE_URL": f"sqlite:///{tmp_path}/state.sqlite",
           "MEMBERLENS_DATA_DIR": str(tmp_path / "data")}
    done = subprocess.run([sys.executable, "-m", "tests.hostile", duck_warehouse.url, str(tmp_path)],
                          cwd=PROJECT_ROOT, env=env, capture_output=True, text=True, timeout=1800)
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(done.stdout)
    cases = result["cases"]
    ARTIFACTS.mkdir(exist_ok=True)
    (ARTIFACTS / "hostile.json").write_text(json.dumps(result, indent=1, ensure_ascii=False))
    bad = [c for c in cases if c["outcome"] not in ("refused", "accepted")]
    assert not bad, bad
    assert len(cases) >= 216 and {c["category"] for c in cases} == CATEGORIES
    assert max(c["seconds"] for c in cases) <= CASE_SECONDS
    assert result["peak_rss_bytes"] < MAX_PEAK_BYTES
    assert result["warehouse_unchanged"]
    outcomes = {(c["category"], c["case"]): c["outcome"] for c in cases}
    # the inputs the review found dangerous, and the rules the issue names, are refused with a message
    for case in ("10000 conditions nested", "201 conditions", "50000 brackets", "2 MB + 1 of spaces",
                 "5001 values", "20001 values spread", "'\"not\": 'true''", "holdout NaN", "range Infinity",
                 "start '1066-10-14'", "start '3000-01-01'", "groups 6 deep", "saved audiences 6 deep"):
        key = ("audience", case.replace("'\"not\": 'true''", '"not": \'true\''))
        assert outcomes[key] == "refused", key
    for case in ("import gzip bomb.csv.gz", "import zip bomb.xlsx", "import 10000 columns.csv",
                 "import 2 MB line.csv", "import 2 MB header.csv", "import truncated.csv.gz", "import not an xlsx.xlsx",
                 "import dates 0001 and 9999.csv", "import huge numbers.csv", "import nan and inf.csv"):
        assert outcomes[("import", case)] == "refused", case
    assert Counter(c["outcome"] for c in cases)["refused"] > 300
