"""The hostile-input battery: every kind of input a user controls, made as hostile as we could think of, replayed
against the real functions on a real (tiny) warehouse.

Run as ``python -m tests.hostile WAREHOUSE_URL SCRATCH_DIR`` in a child process whose address space is capped
(``RLIMIT_AS``): it prints one JSON object with every case's outcome, seconds and the process's peak memory. A case
passes when the input is handled: refused with MemberLens's own error (a message for people), or accepted and
answered within the time bound. Anything else (another exception, a MemoryError, a traceback) is a failure. The
warehouse analyses read must be byte-for-byte unchanged afterwards (no warehouse write); imports go to a copy.

The categories replay the review's 216 inputs (audience specs, import files, dates, numbers, search text, funnel
and rule settings, privacy and user input, URLs, CSV cells) and add sizes, nesting, compression bombs and formulas.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import math
import resource
import shutil
import sys
import time
import zipfile
from collections.abc import Callable, Iterator
from datetime import date
from pathlib import Path
from typing import Any

#: Seconds one case may take.
CASE_SECONDS = 20.0
#: The child's address-space cap (bytes): far below the 22.5 GB the 10,000-condition audience once took.
ADDRESS_SPACE = 6 * 1024**3

Case = tuple[str, str, Callable[[], Any]]  # category, name, call


def _audience_cases(w: Any, engine: Any) -> Iterator[Case]:
    from analytics import audiences, targeting
    from analytics.storage.warehouse import data_span

    span = data_span(engine)
    start, end = str(span.last_days(90)[0]), str(span.last_day)
    base = {"version": 1, "kind": "audience", "start": start, "end": end, "holdout": 0.1, "campaign_key": "h"}

    def use(text: str | bytes) -> Any:
        """Parse at the edge, then size it in the warehouse (what the page does)."""
        audience = audiences.loads(text)
        if isinstance(audience, targeting.CampaignAudience):
            return targeting.preview(engine, audience)
        from analytics.member_rows import member_count

        return member_count(engine, audience.member_ids())

    def spec(**changes: Any) -> str:
        return json.dumps({**base, **changes})

    def rules(*conditions: Any, match: str = "all") -> dict:
        return {"match": match, "conditions": list(conditions)}

    tier = {"field": "tier", "op": "in", "value": ["gold"]}
    yield "audience", "valid", lambda: use(spec(rules=rules(tier)))
    # the review's bomb: 490 KB, 10,000 conditions in nested groups of 100
    bomb = rules(*[rules(*[tier] * 100) for _ in range(100)])
    yield "audience", "10000 conditions nested", lambda: use(spec(rules=bomb))
    yield "audience", "201 conditions", lambda: use(spec(rules=rules(*[tier] * 201)))
    yield "audience", "200 conditions at depth 4", lambda: use(spec(rules=rules(rules(rules(rules(*[tier] * 50)))) ))
    nested: dict = tier
    for _ in range(6):
        nested = rules(nested)
    yield "audience", "groups 6 deep", lambda: use(spec(rules=nested))
    yield "audience", "5000 brackets", lambda: use("[" * 5000 + "]" * 5000)
    yield "audience", "50000 brackets", lambda: use("[" * 50_000 + "]" * 50_000)
    yield "audience", "2 MB + 1 of spaces", lambda: use(" " * 2_000_001)
    yield "audience", "5001 values", lambda: use(spec(rules=rules({"field": "region", "op": "in",
                                                                    "value": [f"r{i}" for i in range(5001)]})))
    yield "audience", "20001 values spread", lambda: use(spec(rules=rules(*[
        {"field": "city", "op": "in", "value": [f"c{i}" for i in range(4001)]} for _ in range(5)])))
    yield "audience", "a 200-character value x 5000", lambda: use(spec(rules=rules({
        "field": "city", "op": "in", "value": ["x" * 200] * 5000})))
    yield "audience", "a 201-character value", lambda: use(spec(rules=rules({"field": "city", "op": "in",
                                                                             "value": ["x" * 201]})))
    for flag in ("true", 1, None, [], {}, "false", 0):
        yield "audience", f'"not": {flag!r}', lambda flag=flag: use(spec(rules=rules({**tier, "not": flag})))
    for constant in ("NaN", "Infinity", "-Infinity"):
        yield "audience", f"holdout {constant}", lambda c=constant: use(spec().replace('"holdout": 0.1',
                                                                                   f'"holdout": {c}'))
        yield "audience", f"range {constant}", lambda c=constant: use(spec(rules=rules(
            {"field": "net_sales", "op": "between", "value": [0, 1]})).replace("[0, 1]", f"[{c}, 1]"))
    for number in ("1e308", "-1e308", "1" + "0" * 400, "1e-400", "-0"):
        yield "audience", f"range bound {number[:12]}", lambda n=number: use(spec(rules=rules(
            {"field": "net_sales", "op": "between", "value": [0, 1]})).replace("[0, 1]", f"[{n}, null]"))
    for day in ("1066-10-14", "3000-01-01", "2026-02-30", "0000-00-00", "2026-13-01", "20261101", "", "yesterday",
                "2026-11-01T00:00:00", "９９９９-01-01"):
        yield "audience", f"start {day!r}", lambda d=day: use(spec(start=d))
    yield "audience", "end before start", lambda: use(spec(start=end, end=start))
    for key, values in {"holdout": [0.51, -0.1, "0.1", True, 1e-320], "max_size": [0, -1, 10**12, True, 2.5, "10"],
                        "frequency_cap_days": [0, 366, 1.5, "7", False], "campaign_key": ["k" * 201, 7, None, ["k"]],
                        "name": ["n" * 201, 5], "saved_version": [True, "1", 1.5], "rules": [[], "all", 7, None],
                        "version": [2, "1", True, None], "kind": ["horoscope", None, 1, ["audience"]],
                        "source": [7, ["x"]]}.items():
        for value in values:
            yield "audience", f"{key}={value!r:.20}", lambda k=key, v=value: use(spec(**{k: v}))
    for extra in ({"unknown": 1}, {"__proto__": {}}, {"rules": {"match": "all", "conditions": [], "extra": 1}},
                  {"rules": {"match": "some", "conditions": []}}, {"rules": {"match": "all", "conditions": "x"}},
                  {"rules": {"match": "all", "conditions": [{"field": "tier", "op": "in", "value": ["gold"],
                                                              "sql": "1=1"}]}},
                  {"rules": {"match": "all", "conditions": [{"field": "drop table", "op": "in", "value": ["x"]}]}},
                  {"rules": {"match": "all", "conditions": [{"field": "tier", "op": "like", "value": ["%"]}]}},
                  {"rules": {"match": "all", "conditions": [{"field": "tier", "op": "in", "value": "gold"}]}},
                  {"rules": {"match": "all", "conditions": [{"field": "tier", "op": "in", "value": [1, 2]}]}},
                  {"rules": {"match": "all", "conditions": [{"field": "net_sales", "op": "between",
                                                              "value": [None, None]}]}},
                  {"rules": {"match": "all", "conditions": [{"field": "net_sales", "op": "between",
                                                              "value": [5, 1]}]}},
                  {"rules": {"match": "all", "conditions": [{"field": "tier", "op": "in", "value": [
                      "' OR 1=1 --", "gold'; DROP TABLE members;--"]}]}},
                  {"rules": {"match": "all", "conditions": [{"field": "city", "op": "in", "value": ["\x00", "%", "_",
                                                                                                   "\\"]}]}},
                  {"rules": {"match": "all", "conditions": [{"field": "segment", "op": "in", "value": {"version": 1,
                                                              "kind": "audience", "start": start, "end": end}}]}},
                  {"rules": {"match": "all", "conditions": [{"field": "segment", "op": "in", "value": "x"}]}},
                  {"rules": {"match": "all", "conditions": [{"field": "saved_audience", "op": "in",
                                                              "value": {"version": 1, "kind": "tag"}}]}}):
        yield "audience", f"schema {json.dumps(extra)[:40]}", lambda e=extra: use(spec(**e))
    deep = {**base}
    for _ in range(6):
        deep = {**base, "rules": rules({"field": "saved_audience", "op": "in", "value": deep})}
    yield "audience", "saved audiences 6 deep", lambda: use(json.dumps(deep))
    for text in ("", "null", "[]", "1", '"audience"', "{", '{"version": 1}', "\ufeff" + spec(), b"\xff\xfe\x00",
                 spec().encode("utf-16"), spec() + "garbage", '{"a": ' * 100 + "1" + "}" * 100):
        yield "audience", f"text {repr(text)[:30]}", lambda t=text: use(t)
    for kind, body in (("rfm_segment", {"segments": ["Champions"] * 11}), ("rfm_segment", {"segments": []}),
                       ("tag", {"tag": "x" * 600}), ("tag", {"tag": "category_lover:" + "%" * 50}),
                       ("bought_not_bought", {"level": "category", "bought_all": ["a"] * 101, "never_bought": ["b"],
                                              "bought_between": [start, end]}),
                       ("bought_not_bought", {"level": "nope", "bought_all": ["a"], "never_bought": ["b"],
                                              "bought_between": [start, end]}),
                       ("heatmap_cell", {"heatmap": "rhythm", "row": 10**9, "column": -1}),
                       ("funnel_dropoff", {"funnel": {"steps": [{"event_type": "x"}] * 50}, "reached_step": 1}),
                       ("cluster", {"model": {"k": 10**6}})):
        yield "audience", f"{kind} hostile", lambda k=kind, b=body: use(json.dumps(
            {"version": 1, "kind": k, "start": start, "end": end, **b}))


def _typed_cases(w: Any, engine: Any) -> Iterator[Case]:
    from analytics.targeting import FIELDS, condition_from_text

    hostile = ["", " ", "%", "_", "' OR 1=1 --", "1e400", "nan", "inf", "-", "10 - 5", "- -", "a" * 10_000, "\x00",
               ",".join(["x"] * 6000), "2026-02-30 - 2026-03-01", "0001-01-01 - 9999-12-31"]
    for key, field in FIELDS.items():
        if not field.typed:
            continue
        op = "between" if "between" in field.operators else field.operators[0]
        for text in hostile:
            yield "typed condition", f"{key} {op} {text[:12]!r}", lambda k=key, o=op, t=text: condition_from_text(
                k, o, t)


def _date_and_number_cases(w: Any, engine: Any) -> Iterator[Case]:
    from analytics.commandline import resolve_dates
    from analytics.filters import Filters, Scope
    from analytics.kpis import kpi_summary
    from analytics.rules import RuleSpec

    for start, end in ((date(1066, 10, 14), date(2026, 1, 1)), (date(2026, 1, 1), date(3000, 1, 1)),
                       (date(1, 1, 1), date(9999, 12, 31)), (date(2026, 2, 1), date(2026, 1, 1)),
                       (date(1900, 1, 1), date(2999, 12, 31))):
        yield "dates", f"filters {start}..{end}", lambda s=start, e=end: kpi_summary(engine, Filters(s, e))
        yield "dates", f"cli {start}..{end}", lambda s=start, e=end: resolve_dates(engine, s, e)
    yield "dates", "scope of 10001 members", lambda: Scope(excluded=[f"M{i}" for i in range(10_001)])
    yield "dates", "scope of 101 regions", lambda: Scope(regions=[f"R{i}" for i in range(101)])
    for kwargs in ({"min_support": 0.0}, {"min_support": math.nan}, {"min_support": -1}, {"min_support": math.inf},
                   {"min_confidence": 2}, {"min_lift": -1}, {"max_len": 100}, {"max_len": 1}, {"level": "x"},
                   {"algorithm": "bogus"}):
        yield "numbers", f"rules {kwargs}", lambda k=kwargs: RuleSpec(**k)
    from analytics.experiments import sample_size_per_arm

    for args in ((0.0, 0.01), (1.5, 0.1), (0.1, 0.0), (0.1, -0.05), (math.nan, 0.1), (0.1, 1e-12)):
        yield "numbers", f"sample size {args}", lambda a=args: sample_size_per_arm(*a)


def _search_and_funnel_cases(w: Any, engine: Any) -> Iterator[Case]:
    from analytics.funnels import parse_steps, parse_window
    from analytics.member360 import find_members, member_profile

    for text in ("%", "_", "\\", "' OR 1=1 --", "M%", "\x00", "a" * 100_000, "M0000000" + "%" * 50, "🙂", "M00000007"):
        yield "search", f"find {text[:10]!r}", lambda t=text: find_members(engine, t)
        yield "search", f"profile {text[:10]!r}", lambda t=text: member_profile(engine, t)
    from analytics.filters import Filters
    from analytics.funnels import FunnelSpec, funnel_report
    from analytics.storage.warehouse import data_span

    filters = Filters(*data_span(engine).last_days(28))

    def funnel(steps: str, window: str) -> Any:
        return funnel_report(engine, FunnelSpec(parse_steps(steps), parse_window(window), "ordered", "member"),
                             filters)

    for text in ("", "a", "product_view", ",".join(["product_view"] * 9), "product_view:category=" + "%" * 100,
                 "x:y=z,purchase", "product_view:bogus=1,purchase", "product_view:category=a;category=b,purchase",
                 ",,,", "product_view," + "a" * 10_000, "product_view,purchase"):
        yield "funnel", f"steps {text[:20]!r}", lambda t=text: funnel(t, "7d")
    for text in ("0m", "-1d", "367d", "999999999999d", "1y", "d", "", "1.5h", "nan", "366d"):
        yield "funnel", f"window {text!r}", lambda t=text: funnel("product_view,purchase", t)


def _privacy_and_user_cases(w: Any, engine: Any, state: Any) -> Iterator[Case]:
    from analytics.access import Principal
    from analytics.privacy_rights import access_package, correct_member, object_to_profiling
    from analytics.storage.users import grant

    officer = Principal("po@example.com", "PO", "privacy_officer")
    admin = Principal("ad@example.com", "AD", "admin")
    external = "postgresql+psycopg://nobody@127.0.0.1:1/none"
    for member in ("", " ", "x" * 201, "\x00", "' OR 1=1 --", "%", "M00000007"):
        yield "privacy", f"access {member[:10]!r}", lambda m=member: access_package(engine, state, officer, m)
        yield "privacy", f"object {member[:10]!r}", lambda m=member: object_to_profiling(state, officer, m)
    for changes in ({"tier": "diamond"}, {"member_id": "X"}, {"birth_date": "9999-01-01"}, {"name": "x" * 300},
                    {"consent_sms": "maybe"}, {"phone": "\x00"}, {"city": "=HYPERLINK(\"x\")"}):
        yield "privacy", f"correct {changes}"[:50], lambda c=changes: correct_member(external, state, officer,
                                                                                     "M00000007", c)
    for identity, role in (("", "admin"), ("a" * 400, "admin"), ("x@y", "root"), ("x@y", "admin "),
                           ("\x00@y", "analyst"), ("ok@example.com", None)):
        yield "users", f"grant {identity[:10]!r} {role!r}", lambda i=identity, r=role: grant(state, admin, i, r)
    yield "users", "grant by a marketer", lambda: grant(state, Principal("m@x", role="marketer"), "z@x", "admin")


def _url_and_csv_cases() -> Iterator[Case]:
    from analytics.privacy import safe_csv
    from analytics.storage.databases import mask_url

    secrets = ("s3cr3t", "tok123", "k3y", "pw0rd")
    for url in ("postgresql+psycopg://u:s3cr3t@h/db", "postgresql://u@h/db?password=s3cr3t",
                "snowflake://u@acct/db?token=tok123", "bigquery://p/d?key=k3y&x=1", "trino://u@h/c?pwd=pw0rd",
                "not a url u:s3cr3t@host token=tok123", "postgresql://u:s3cr3t@h/db?secret=s3cr3t&api_key=k3y"):
        def masked(u: str = url) -> str:
            out = mask_url(u)
            assert not any(s in out for s in secrets), out  # a leak is a failure, not a refusal
            return out

        yield "urls", f"mask {url[:30]}", masked
    import pandas as pd

    for cell in ("=1+1", "+cmd|' /C calc'!A0", "-2+3", "@SUM(A1)", "\t=1", "\r=1", '=HYPERLINK("http://x")'):
        def neutral(c: str = cell) -> bytes:
            out = safe_csv(pd.DataFrame({"v": [c]}))
            assert out.decode().splitlines()[1].lstrip('"').startswith("'"), out
            return out

        yield "csv", f"formula {cell[:10]!r}", neutral


def _file_cases(scratch: Path, url: str) -> Iterator[Case]:
    import os

    from analytics.importers import ImportOptions, import_file, preview_file

    header = "Invoice,StockCode,Description,Quantity,InvoiceDate,Price,Customer ID,Country\n"
    good = "A1,SKU-1,Mug,2,2026-11-10 09:30:00,4.50,9001,United Kingdom\n"
    files: dict[str, bytes] = {
        "empty.csv": b"", "header only.csv": header.encode(), "one good row.csv": (header + good).encode(),
        "10000 columns.csv": (",".join(f"c{i}" for i in range(10_000)) + "\n1\n").encode(),
        "2 MB line.csv": (header + "A1," + "x" * 2_000_000 + "\n").encode(),
        "2 MB header.csv": ("x" * 2_000_000 + "\n").encode(),
        "binary.csv": bytes(range(256)) * 100, "nul in header.csv": b"a\x00b,c\n1,2\n",
        "latin-1 as utf-8.csv": (header + good.replace("Mug", "Tasse à café")).encode("latin-1"),
        "unclosed quote.csv": (header + 'A1,"SKU-1,Mug,2,2026-11-10 09:30:00,4.50,9001,UK\n').encode(),
        "ragged rows.csv": (header + "A1,SKU-1\n" + good).encode(),
        "semicolons.csv": (header.replace(",", ";") + good.replace(",", ";")).encode(),
        "dates 0001 and 9999.csv": (header + good.replace("2026-11-10", "0001-01-01")
                                    + good.replace("A1", "A2").replace("2026-11-10", "9999-12-31")).encode(),
        "huge numbers.csv": (header + good.replace(",2,", ",1e300,") + good.replace("A1", "A2").replace(
            "4.50", "1e200") + good.replace("A1", "A3").replace("4.50", "99999999999")).encode(),
        "nan and inf.csv": (header + good.replace(",2,", ",nan,") + good.replace("A1", "A2").replace(
            "4.50", "inf")).encode(),
        "formulas.csv": (header + good.replace("Mug", '"=HYPERLINK(""http://evil"",""x"")"').replace(
            "United Kingdom", "+cmd|'/C calc'!A0")).encode(),
        "every row rejected.csv": (header + "".join(good.replace("A1", f"A{i}").replace("4.50", "0")
                                                    for i in range(20_000))).encode(),
        "not an xlsx.xlsx": b"PK\x03\x04 not really a zip",
        "truncated.csv.gz": gzip.compress((header + good * 1000).encode())[:200],
        "gzip bomb.csv.gz": gzip.compress(header.encode() + b"A" * (600 * 1024**2)),
    }
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("xl/worksheets/sheet1.xml", b"<x>" + b"0" * (600 * 1024**2) + b"</x>")
    files["zip bomb.xlsx"] = buffer.getvalue()
    folder = scratch / "files"
    folder.mkdir(exist_ok=True)
    os.environ["MEMBERLENS_IMPORT_MAX_BYTES"] = str(256 * 1024**2)  # the bombs expand past this
    for name, data in files.items():
        path = folder / name
        path.write_bytes(data)
        yield "import", f"preview {name}", lambda p=path: preview_file("transactions", p)
        yield "import", f"import {name}", lambda p=path: import_file(url, "transactions", p,
                                                                     ImportOptions(skip_bad_rows=True))
    for options in (ImportOptions(delimiter="x"), ImportOptions(encoding="ebcdic"), ImportOptions(channel="c" * 101),
                    ImportOptions(date_format="%Y" * 60), ImportOptions(mapping={f"r{i}": "c" for i in range(60)}),
                    ImportOptions(basket_date=date(1066, 1, 1)), ImportOptions(mapping={"invoice": "x" * 300})):
        yield "import", f"options {options!r}"[:60], lambda o=options: import_file(url, "transactions",
                                                                                   folder / "one good row.csv", o)
    yield "import", "kind bogus", lambda: import_file(url, "bogus", folder / "one good row.csv")
    yield "import", "a folder", lambda: import_file(url, "transactions", folder)
    yield "import", "no such file", lambda: import_file(url, "transactions", folder / "missing.csv")


def cases(url: str, scratch: Path) -> Iterator[Case]:
    from analytics.storage.appstate import open_state
    from analytics.storage.warehouse import open_warehouse

    engine = open_warehouse(url)
    state = open_state(f"sqlite:///{scratch}/state.sqlite")
    yield from _audience_cases(None, engine)
    yield from _typed_cases(None, engine)
    yield from _date_and_number_cases(None, engine)
    yield from _search_and_funnel_cases(None, engine)
    yield from _privacy_and_user_cases(None, engine, state)
    yield from _url_and_csv_cases()
    copy = scratch / "import_target.duckdb"
    shutil.copy(url.removeprefix("duckdb:///"), copy)
    yield from _file_cases(scratch, f"duckdb:///{copy}")


def _sha(path: str) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def main(url: str, scratch: str) -> None:
    resource.setrlimit(resource.RLIMIT_AS, (ADDRESS_SPACE, ADDRESS_SPACE))
    from analytics.errors import MemberLensError

    before = _sha(url.removeprefix("duckdb:///"))
    results = []
    for category, name, call in cases(url, Path(scratch)):
        started = time.perf_counter()
        try:
            call()
            outcome, message = "accepted", ""
        except MemberLensError as error:  # refused, with a message for people
            outcome, message = "refused", error.message[:200]
        except Exception as error:  # noqa: BLE001 - the failure the battery looks for
            outcome, message = "crash", f"{type(error).__name__}: {error}"[:300]
        seconds = time.perf_counter() - started
        if seconds > CASE_SECONDS:
            outcome, message = "too slow", f"{seconds:.1f} s"
        results.append({"category": category, "case": name, "outcome": outcome, "seconds": round(seconds, 3),
                        "message": message})
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    json.dump({"cases": results, "peak_rss_bytes": peak, "warehouse_unchanged": _sha(url.removeprefix(
        "duckdb:///")) == before}, sys.stdout)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
