"""Benchmark of recommendations: ``python -m benchmarks.recommend [--skip-large] [--algorithms hybrid,...]``.

* **Speed and memory**, per algorithm, each in a fresh process (peak memory = that process's maximum resident
  set, from ``os.wait4``): reading the purchases from the warehouse, fitting, top-10 lists for every member,
  and one member's list warm (the median over 20 members, model prepared), on the 50,000-member demo and, if
  ``benchmarks/data/warehouse_1000000.duckdb`` exists, on the 1M-member one.
* **Out-of-time evaluation** (the last 30 days held out, k = 10) on the 50,000-member demo and on the real
  Online Retail file (imported into a temporary DuckDB file), with its wall time.
* **Planted complements**: the demo generator plants cross-sell pairs (analytics/synthetic/catalog.py); the
  share of buyers of the first product (who do not have the second) whose top 10 holds the second, against the
  share of all members (without it) who get it.
* **Integration** (``--only integration``): ``python -m analytics recommend train`` as cron runs it (a fresh
  process: read, fit, every member's list, stored; wall time, peak memory, the stored files' sizes), then in another
  process what the app and a campaign do with the stored version: the page's work for one member (warm: the list
  made now with reasons, recent purchases, the id look-up), one member's stored list (``recommend for``), a campaign
  export (gold and diamond members of the last 180 days) and the recommended-item read-out of the latest campaign.

Nothing here is a test: speed is measured, not asserted. Targets (issue): at 1M members training <= 90 s, top-10
for all <= 60 s, peak <= 4 GB; one member <= 0.3 s warm; evaluation on 50k <= 30 s.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parent.parent
DATA = PROJECT_ROOT / "benchmarks" / "data"
SMALL = DATA / "recommend_50000.duckdb"
LARGE = DATA / "warehouse_1000000.duckdb"
RETAIL = Path(os.environ.get("MEMBERLENS_DATASETS", PROJECT_ROOT.parent / "shared" / "datasets")) / \
    "online_retail.csv.gz"
SPEED_ALGORITHMS = ("popular_segment", "item_cosine", "als", "hybrid")
SHOWN = ("precision", "recall", "ndcg", "map", "hit_rate", "catalogue_coverage", "member_coverage", "diversity",
         "novelty", "self_information", "head_share")


# --- measured in a child process --------------------------------------------------------------------------

def _speed(url: str, algorithm: str) -> dict:
    import numpy as np

    from analytics.recommend_data import load_data
    from analytics.recommend_lists import ListMaker
    from analytics.recommenders import fit
    from analytics.storage.warehouse import open_warehouse

    engine = open_warehouse(url)
    began = time.perf_counter()
    data = load_data(engine)
    loaded = time.perf_counter()
    model = fit(data, algorithm)
    fitted = time.perf_counter()
    maker = ListMaker(model, data)
    recs = maker.recommend()
    listed = time.perf_counter()
    rng = np.random.default_rng(0)
    singles = []
    for member in rng.choice(data.members.size, size=21, replace=False).tolist():
        start = time.perf_counter()
        maker.recommend([member])
        singles.append(time.perf_counter() - start)
    return {"members": int(data.members.size), "pairs": int(data.history.nnz), "load": loaded - began,
            "fit": fitted - loaded, "lists": listed - fitted, "one": statistics.median(singles[1:]),
            "model_mb": len(model.to_bytes()) / 1e6, "paths": recs.path_counts()}


def _evaluation(url: str) -> dict:
    from analytics.recommend_eval import evaluate
    from analytics.storage.warehouse import open_warehouse

    engine = open_warehouse(url)
    began = time.perf_counter()
    result = evaluate(engine, horizon_days=30, k=10)
    seconds = time.perf_counter() - began
    return {"seconds": seconds, "table": result.table.to_dict("records"), "sentence": result.sentence,
            "by_path": result.by_path.to_dict("records"), "history_end": str(result.history_end),
            "members": result.members, "buyers": result.members_with_purchases}


def _complements(url: str, seed: int) -> dict:
    import numpy as np

    from analytics.recommend_data import load_data
    from analytics.recommend_eval import pair_hit_rates
    from analytics.recommend_lists import recommend
    from analytics.recommenders import ALGORITHMS, fit
    from analytics.storage.warehouse import open_warehouse
    from analytics.synthetic.catalog import build_catalog

    catalog = build_catalog(np.random.default_rng([seed, 0xC47A]))  # the generator's own catalogue for this seed
    firsts = np.flatnonzero(catalog.partner >= 0)
    pairs = [(f"P{catalog.product_no[a]:06d}", f"P{catalog.product_no[catalog.partner[a]]:06d}") for a in firsts]
    rule = [f"{catalog.subcategory[a]} -> {catalog.subcategory[catalog.partner[a]]}" for a in firsts]
    data = load_data(open_warehouse(url))
    out = {}
    for algorithm in ALGORITHMS:
        frame = pair_hit_rates(recommend(fit(data, algorithm), data), data, pairs).assign(rule=rule)
        per_rule = frame.groupby("rule", sort=False)[["buyers", "recommended"]].sum()
        base = float(np.average(frame["base_rate"], weights=frame["buyers"]))
        out[algorithm] = {"buyers": int(frame["buyers"].sum()), "recommended": int(frame["recommended"].sum()),
                          "base_rate": base, "per_rule": (per_rule["recommended"] / per_rule["buyers"]).to_dict()}
    return out


def _serve(url: str, state_url: str) -> dict:
    """With the latest stored version: the page's work for one member (warm), a stored list read, an export, a
    read-out."""
    import numpy as np

    from analytics import targeting
    from analytics.experiments import campaign_list
    from analytics.recommend_data import load_data
    from analytics.recommend_lists import ListMaker
    from analytics.recommend_outcome import recommendation_outcome
    from analytics.recommend_store import (
        RecommendationExport,
        StoredLists,
        export_frame,
        find_members,
        load_model,
        member_index,
        member_list,
        recent_purchases,
        settings_from_json,
    )
    from analytics.storage.appstate import open_state
    from analytics.storage.recommender_registry import latest_recommender, link_campaign
    from analytics.storage.warehouse import open_warehouse

    engine, state = open_warehouse(url), open_state(state_url)
    stored = latest_recommender(state)
    out: dict = {}
    began = time.perf_counter()
    data = load_data(engine)
    index = member_index(data)
    maker = ListMaker(load_model(stored), data, settings_from_json(stored.settings))
    out["page_cold"] = time.perf_counter() - began
    rng = np.random.default_rng(1)
    members = data.members.ids[rng.choice(data.members.size, 21, replace=False)].tolist()
    page = []
    for member in members:
        start = time.perf_counter()
        code = int(index.get_indexer([find_members(data, member, 21, index)[0]])[0])
        member_list(maker, member, index)
        recent_purchases(data, code)
        page.append(time.perf_counter() - start)
    out["page_member"] = statistics.median(page[1:])
    out["page_member_max"] = max(page[1:])
    start = time.perf_counter()
    lists = StoredLists(stored, verify=False)
    lists.rows([members[0]])
    out["stored_one"] = time.perf_counter() - start
    start = time.perf_counter()
    lists = StoredLists(stored)
    out["open_verified"] = time.perf_counter() - start
    end = data.history_end
    audience = targeting.parse_spec({"version": 1, "kind": "audience", "start": str(end.replace(day=1)),
                                     "end": str(end), "holdout": 0.1, "campaign_key": "bench", "rules": {
                                         "match": "all", "conditions": [
                                             {"field": "tier", "op": "in", "value": ["gold", "diamond"]},
                                             {"field": "days_since_last_order", "op": "between", "value": [0, 180]}]}})
    start = time.perf_counter()
    rows, detail = export_frame(engine, audience, RecommendationExport(state, stored, 10), lists)
    out["export"] = time.perf_counter() - start
    out["export_rows"], out["export_members"] = len(rows), detail["members"]
    out["export_csv_mb"] = len(rows.to_csv(index=False).encode()) / 1e6
    campaign = campaign_list(engine).iloc[0]
    link = link_campaign(state, campaign["campaign_id"], stored.version, 10, 0, "bench")
    start = time.perf_counter()
    result = recommendation_outcome(engine, link, lists)
    out["outcome"] = time.perf_counter() - start
    out["outcome_campaign"] = f"{campaign['campaign_id']} ({int(campaign['members']):,} members)"
    out["outcome_verdict"] = result.verdict
    return out


def child(argv: list[str]) -> None:
    kind, *rest = argv
    if kind == "speed":
        result = _speed(rest[0], rest[1])
    elif kind == "evaluation":
        result = _evaluation(rest[0])
    elif kind == "serve":
        result = _serve(rest[0], rest[1])
    else:
        result = _complements(rest[0], int(rest[1]))
    print(json.dumps(result, default=float))


def run_child(*argv: str) -> tuple[dict, float, float]:
    """Run a measurement in a fresh process: (its result, wall seconds, peak resident GiB)."""
    began = time.perf_counter()
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        proc = subprocess.Popen([sys.executable, "-m", "benchmarks.recommend", "--child", *argv], cwd=PROJECT_ROOT,
                                stdout=out, stderr=err)
        _pid, status, usage = os.wait4(proc.pid, 0)
        out.seek(0)
        err.seek(0)
        if status != 0:
            raise SystemExit(f"benchmark child {argv} failed:\n{err.read()[-3000:]}")
        result = json.loads(out.read().strip().splitlines()[-1])
    return result, time.perf_counter() - began, usage.ru_maxrss / 1024 / 1024


# --- printing ---------------------------------------------------------------------------------------------

def speed_section(path: Path, algorithms: list[str]) -> None:
    print(f"\n## Speed and memory: {path.name} (fresh process per algorithm)\n")
    print("| algorithm | members | pairs | read | fit | top-10 for all | one member warm | model | peak |")
    print("|---|---|---|---|---|---|---|---|---|")
    for algorithm in algorithms:
        r, _, peak = run_child("speed", f"duckdb:///{path}", algorithm)
        print(f"| {algorithm} | {r['members']:,} | {r['pairs']:,} | {r['load']:.1f} s | {r['fit']:.1f} s | "
              f"{r['lists']:.1f} s | {r['one'] * 1000:.0f} ms | {r['model_mb']:.1f} MB | {peak:.2f} GiB |",
              flush=True)


def evaluation_section(name: str, url: str) -> None:
    r, _, peak = run_child("evaluation", url)
    print(f"\n## Out-of-time evaluation: {name} (history to {r['history_end']}, next 30 days; {r['members']:,} "
          f"members, {r['buyers']:,} of them bought)\n")
    print(f"evaluate(): {r['seconds']:.1f} s for {len(r['table'])} algorithms, peak {peak:.2f} GiB\n")
    print("| algorithm | " + " | ".join(SHOWN) + " | fit | lists |")
    print("|---" * (len(SHOWN) + 3) + "|")
    for row in r["table"]:
        print(f"| {row['algorithm']} | " + " | ".join(f"{row[m]:.4f}" for m in SHOWN)
              + f" | {row['fit_seconds']:.1f} s | {row['list_seconds']:.1f} s |")
    print(f"\n{r['sentence']}\n")
    print("recall@10 by path (members with purchases):")
    for row in r["by_path"]:
        print(f"  {row['algorithm']:16s} {row['path']:20s} {row['members_with_purchases']:7,} "
              f"recall {row['recall']:.4f}")


def complements_section(path: Path) -> None:
    r, _, _ = run_child("complements", f"duckdb:///{path}", "42")
    print(f"\n## Planted complements on {path.name}\n")
    print("Buyers of a paired product who do not have its partner: share whose top 10 holds the partner "
          "(base: share of all members without it who get it).\n")
    rules = list(next(iter(r.values()))["per_rule"])
    print("| algorithm | buyers | recommended | rate | base rate | " + " | ".join(rules) + " |")
    print("|---" * (5 + len(rules)) + "|")
    for algorithm, row in r.items():
        rate = row["recommended"] / max(row["buyers"], 1)
        print(f"| {algorithm} | {row['buyers']:,} | {row['recommended']:,} | {rate:.1%} | {row['base_rate']:.1%} | "
              + " | ".join(f"{row['per_rule'][k]:.0%}" for k in rules) + " |")


def integration_section(path: Path) -> None:
    """``recommend train`` in a fresh process as cron runs it, then serving from the stored version."""
    print(f"\n## Integration: {path.name}\n")
    with tempfile.TemporaryDirectory() as folder:
        env = {**os.environ, "MEMBERLENS_STATE_URL": f"sqlite:///{folder}/state.sqlite", "MEMBERLENS_USER": "bench"}
        env.pop("MEMBERLENS_RECOMMENDER_DIR", None)
        began = time.perf_counter()
        with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
            proc = subprocess.Popen([sys.executable, "-m", "analytics", "recommend", "train", "--url",
                                     f"duckdb:///{path}", "--format", "json"], cwd=PROJECT_ROOT, stdout=out,
                                    stderr=err, env=env)
            _pid, status, usage = os.wait4(proc.pid, 0)
            out.seek(0)
            err.seek(0)
            if status != 0:
                raise SystemExit(f"recommend train failed:\n{err.read()[-3000:]}")
            row = json.loads(out.read())[0]
        wall = time.perf_counter() - began
        files = {f.name: f.stat().st_size for f in (Path(folder) / "recommenders").glob("*/*")}
        print(f"`python -m analytics recommend train` (hybrid, top 10 for {row['members']:,} members): {wall:.1f} s "
              f"wall, {usage.ru_utime + usage.ru_stime:.1f} s of CPU (load average {os.getloadavg()[0]:.1f} on "
              f"{os.cpu_count()} cores), peak {usage.ru_maxrss / 1024 / 1024:.2f} GiB; read "
              f"{row['load_seconds']:.1f} s, fit "
              f"{row['fit_seconds']:.1f} s, every member's list {row['list_seconds']:.1f} s, the rest (Python start, "
              f"imports, writing and hashing the files) "
              f"{wall - row['load_seconds'] - row['fit_seconds'] - row['list_seconds']:.1f} s")
        print("stored: " + ", ".join(f"{name} {size / 1e6:.1f} MB" for name, size in sorted(files.items()))
              + f" (total {sum(files.values()) / 1e6:.1f} MB)")
        proc_env = dict(os.environ)
        os.environ.update({k: v for k, v in env.items() if k.startswith("MEMBERLENS")})
        try:
            r, _, peak = run_child("serve", f"duckdb:///{path}", env["MEMBERLENS_STATE_URL"])
        finally:
            os.environ.clear()
            os.environ.update(proc_env)
        print(f"page, first member (purchases read, model loaded, lists prepared): {r['page_cold']:.1f} s; one member "
              f"warm (id look-up, list made now with reasons, recent purchases): median {r['page_member'] * 1000:.0f} "
              f"ms, slowest of 20 {r['page_member_max'] * 1000:.0f} ms")
        print(f"one member's stored list (recommend for): {r['stored_one'] * 1000:.0f} ms; opening the stored lists "
              f"with every SHA-256 checked: {r['open_verified']:.2f} s")
        print(f"export, gold and diamond members who ordered in the last 180 days: {r['export_members']:,} members, "
              f"{r['export_rows']:,} rows ({r['export_csv_mb']:.0f} MB of CSV) in {r['export']:.1f} s")
        print(f"recommended-item read-out of {r['outcome_campaign']}: {r['outcome']:.2f} s; {r['outcome_verdict']}")
        print(f"(serving process peak {peak:.2f} GiB)")


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["--child"]:
        child(argv[1:])
        return 0
    parser = argparse.ArgumentParser(prog="python -m benchmarks.recommend", description=__doc__.split("\n")[0])
    parser.add_argument("--algorithms", default=",".join(SPEED_ALGORITHMS))
    parser.add_argument("--skip-large", action="store_true", help="leave out the 1M-member warehouse")
    parser.add_argument("--only", choices=("speed", "evaluation", "complements", "integration"), help="one section")
    args = parser.parse_args(argv)
    algorithms = args.algorithms.split(",")
    DATA.mkdir(parents=True, exist_ok=True)
    print(f"Recommendation benchmarks on {os.cpu_count()} cores, Python {sys.version.split()[0]}")
    if not SMALL.exists():
        from benchmarks.run import build_once

        print(f"building {SMALL.name} ...")
        build_once(50_000, 42, SMALL)
    if args.only in (None, "speed"):
        speed_section(SMALL, algorithms)
        if LARGE.exists() and not args.skip_large:
            speed_section(LARGE, algorithms)
        elif not args.skip_large:
            print(f"\n({LARGE.name} is absent: build it with python -m analytics.synthetic --members 1000000 "
                  f"--url duckdb:///{LARGE.relative_to(PROJECT_ROOT)})")
    if args.only in (None, "evaluation"):
        evaluation_section("50,000-member demo", f"duckdb:///{SMALL}")
        if RETAIL.exists():
            with tempfile.TemporaryDirectory() as folder:
                url = f"duckdb:///{folder}/retail.duckdb"
                from analytics.importers import import_file

                import_file(url, "transactions", RETAIL)
                evaluation_section("Online Retail (UCI, real)", url)
    if args.only in (None, "complements"):
        complements_section(SMALL)
    if args.only in (None, "integration"):
        integration_section(SMALL)
        if LARGE.exists() and not args.skip_large:
            integration_section(LARGE)
    return 0


if __name__ == "__main__":
    sys.exit(main())
