"""Benchmark scenario ``predictions`` (issue 15), on the 1M-member demo warehouse, DuckDB, in a fresh process:

* churn and propensity: features of both cutoffs in SQL, both candidates fitted, evaluated out of time with the
  baselines and permutation importance, the chosen one refitted (what ``models train`` does), with peak memory;
* CLV: the summary in SQL and the BG/NBD + Gamma-Gamma (+ Pareto/NBD) fits;
* scoring every member in the warehouse (features, both classifiers and the CLV quantities in one statement,
  aggregated there so no rows leave it), against the floor of one scan of ``orders`` grouped by member;
* a targeting preview with one prediction condition against the same preview without it: reading the model's
  scores from the score store (:mod:`analytics.storage.score_store`, what a trained model leaves beside an embedded
  warehouse), with the time keeping them took, and computing them in the warehouse (any other warehouse).

Targets: training ≤ 60 s and ≤ 3 GB peak; BG/NBD + Gamma-Gamma ≤ 10 s; scoring ≤ 5 s; the preview with a
prediction condition within 1.5× the preview without it.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

from benchmarks.segments import _median

CHILD = """
import json, resource, sys, time
from analytics import predictions
from analytics.storage.warehouse import open_warehouse
engine = open_warehouse(sys.argv[1])
out = {}
for kind in ("churn", "propensity"):
    began = time.perf_counter()
    trained = predictions.train_classifier(engine, kind)
    card = trained["card"]
    out[kind] = {"seconds": time.perf_counter() - began, "algorithm": card["algorithm"],
                 "train_members": card["train_members"], "test_members": card["test_members"],
                 "metrics": {k: {m: v[m] for m in ("roc_auc", "pr_auc", "f1", "ece")}
                             for k, v in card["metrics"].items()},
                 "model": trained}
began = time.perf_counter()
out["clv"] = {"model": predictions.train_clv(engine)}
out["clv"]["seconds"] = time.perf_counter() - began
out["peak_gib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
print(json.dumps(out))
"""


def predictions_scenario(warehouse: Path, repeat: int) -> None:
    from sqlalchemy import func, select

    from analytics import clv, predictions, targeting
    from analytics.clv_sql import clv_summary
    from analytics.prediction_audiences import PinnedModel, store_scores
    from analytics.storage import score_store
    from analytics.storage.contract import orders
    from analytics.storage.warehouse import data_span, open_warehouse
    from benchmarks.targeting import SIX_CONDITIONS

    url = f"duckdb:///{warehouse}"
    began = time.perf_counter()
    child = subprocess.run([sys.executable, "-c", CHILD, url], capture_output=True, text=True, check=True)
    wall = time.perf_counter() - began
    trained = json.loads(child.stdout)
    engine = open_warehouse(url)
    as_of = data_span(engine).last_day
    print("\npredictions (fresh process for training):")
    for kind in ("churn", "propensity"):
        t = trained[kind]
        print(f"  {kind}: train + test + choose + refit {t['seconds']:.1f} s ({t['train_members']:,} training, "
              f"{t['test_members']:,} test members); chosen {t['algorithm']}")
        for name, m in t["metrics"].items():
            print(f"    {name:<9} ROC AUC {m['roc_auc']:.3f}  PR AUC {m['pr_auc']:.3f}  F1 {m['f1']:.3f}  "
                  f"ECE {m['ece']:.3f}")
    print(f"  CLV (summary in SQL, BG/NBD, Pareto/NBD, Gamma-Gamma, validation): {trained['clv']['seconds']:.1f} s")
    print(f"  the training process: {wall:.1f} s in all, peak {trained['peak_gib']:.2f} GiB (target <= 3 GB)")
    summary = clv_summary(engine, as_of, "week")
    x, t_x, age, value = summary["frequency"], summary["recency"], summary["T"], summary["monetary_value"]
    fit_s = _median(lambda: (clv.fit_bgnbd(x, t_x, age, unit="week"), clv.fit_gammagamma(x, value)), repeat)
    pareto_s = _median(lambda: clv.fit_paretonbd(x, t_x, age, unit="week"), repeat)
    print(f"  BG/NBD + Gamma-Gamma fits alone ({len(summary):,} members): {fit_s:.2f} s (target <= 10 s); "
          f"Pareto/NBD, shown beside them on the card: {pareto_s:.2f} s")
    models = predictions.Models.from_stored({k: trained[k]["model"] for k in ("churn", "propensity", "clv")})
    scored = predictions.score_select(models, as_of).subquery("scored")
    whole = select(func.count(), func.avg(scored.c.churn_risk), func.avg(scored.c.purchase_propensity),
                   func.sum(scored.c.predicted_clv))
    floor_query = select(func.count()).select_from(
        select(orders.c.member_id, func.max(orders.c.ordered_at)).group_by(orders.c.member_id).subquery())
    with engine.connect() as conn:
        floor = _median(lambda: conn.execute(floor_query).scalar(), repeat)
        score_s = _median(lambda: conn.execute(whole).one(), repeat)
        members = conn.execute(whole).one()[0]
    print(f"  scoring every member in the warehouse ({members:,}): {score_s:.2f} s = {score_s / floor:.1f} x the "
          f"floor ({floor * 1000:.0f} ms: one scan of orders grouped by member; target <= 5 s)")
    start = as_of.replace(year=as_of.year - 1)
    base = {"version": 1, "kind": "audience", "start": str(start), "end": str(as_of), "holdout": 0.1,
            "frequency_cap_days": 7, "campaign_key": "benchmark"}
    plain = targeting.parse_spec({**base, "rules": {"match": "all", "conditions": SIX_CONDITIONS}})
    pinned = PinnedModel("churn", 1, trained["churn"]["model"]).to_json()
    churn = {"field": "churn_risk", "op": "between", "value": [0.6, None], "model": pinned}
    scored_spec = targeting.parse_spec({**base, "rules": {"match": "all", "conditions": [*SIX_CONDITIONS, churn]}})
    model = PinnedModel("churn", 1, trained["churn"]["model"])
    store = score_store.store_for(engine.dialect)
    kept = store.file_for("churn", model.data, as_of)
    kept.unlink(missing_ok=True)  # computed in the warehouse first, as where no scores are kept
    with engine.connect() as conn:
        without = _median(lambda: targeting.preview(conn, plain), repeat)
        computed = _median(lambda: targeting.preview(conn, scored_spec), repeat)
    began = time.perf_counter()
    store_scores(engine, model, as_of)
    keeping = time.perf_counter() - began
    with engine.connect() as conn:
        with_it = _median(lambda: targeting.preview(conn, scored_spec), repeat)
    print(f"  targeting preview, six conditions: {without:.2f} s; with churn risk >= 0.6 added: {with_it:.2f} s = "
          f"{with_it / without:.2f} x (target <= 1.5 x), reading the model's scores from the score store; "
          f"keeping them there (as `models train` does) took {keeping:.2f} s. Computed in the warehouse instead "
          f"(no scores kept, or another warehouse): {computed:.2f} s = {computed / without:.2f} x")
