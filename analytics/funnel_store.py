"""The funnel store: the clickstream kept beside an embedded DuckDB warehouse as columns sorted by unit and time, so
that a funnel is a few vectorised passes over arrays instead of window functions and joins in SQL.

Why: a funnel follows each unit's events in time order. In SQL that is a sort of every step event per query
(12.3 s at 1M members before the fast path, 4.3 s after it; ClickHouse's ``windowFunnel`` does the same count in
1.1-2.5 s). Sorting once, when the warehouse changes, leaves each query a scan: the rows of a time range, a mask
per step, then for every start the next matching row of each step (ordered mode), the j-th next one (any order)
or the very next rows (strict), and the best attempt per unit by grouped reductions over runs of equal units
(benchmarks/funnels.py; docs/architecture.md, "Funnels").

What is kept, per unit (member or session): one row per event of a known unit in the order funnels read them
(unit, then time, then ``event_id``), as memory-mapped NumPy files: the unit's number (units numbered in id
order), the event's member number (0: anonymous), its time in epoch microseconds, and dictionary codes of event
type, page, device, source and the product's category (0: missing). The unit and member ids behind the numbers
are kept in Parquet, for the tier filter, the scope and member breakdowns, which the warehouse evaluates.

When it is used, and why the result is the same (the rules of :mod:`analytics.storage.score_store`, where it is
kept):

* only on an **embedded DuckDB file** warehouse and only the store of **this state of the warehouse file**;
  anything else (PostgreSQL, Spark, a stale or missing store) is answered by the SQL of :mod:`analytics.funnels`.
* it answers the funnel report (every mode, unit, step filter, tier filter, scope and breakdown) and its trend.
  The definitions are those of :mod:`analytics.funnels`; ties in time are ordered by ``event_id`` through the
  rows' order. Drop-off audiences and the best attempts as a subquery stay in SQL (audiences are SQL statements).
* the tests compare both ways, on random event logs against the plain-Python reference and the SQL, and on the
  demo warehouse against the SQL (``tests/test_funnel_store.py``).
"""

from __future__ import annotations

import json
import os
import threading
import warnings
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import cached_property, lru_cache
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
from sqlalchemy import BigInteger, Engine, Integer, cast, create_engine, func, literal, null, select, union_all
from sqlalchemy import column as sa_column
from sqlalchemy import table as sa_table

from analytics.filters import Filters, member_conditions
from analytics.funnel_spec import EVENT_DIMENSIONS, FunnelSpec, FunnelStep, Unit
from analytics.storage.contract import events, members, products
from analytics.storage.db import Bind, connection, read_frame
from analytics.storage.score_store import ScoreStore, build_in_background, store_for

#: The dictionary-coded columns (``category`` is the event's product's).
CODED = ("event_type", "page", "device", "source", "category")
_EPOCH = datetime(1970, 1, 1)
_NEVER = np.iinfo(np.int64).max  # a step not reached
_BATCH = 1_000_000
_SORT_SLICE = 8_000_000  # events sorted by one statement when the store is built
_BLOCK = 1 << 20  # rows read at once
_THREADS = 2


def store_name(unit: Unit) -> str:
    return f"funnel-{unit}"


# ---------------------------------------------------------------------------------------------
# Building
# ---------------------------------------------------------------------------------------------

def store_funnel_events(engine: Engine) -> list[Path]:
    """Sort the clickstream into the store for the warehouse's current state, per unit (nothing is done for a unit
    kept already). Returns the folders, or an empty list: the warehouse has no store (it is not a DuckDB file)."""
    store = store_for(engine.dialect)
    if store is None:
        return []
    return [_store_unit(engine, store, unit) for unit in ("member", "session")]


def _store_unit(engine: Engine, store: ScoreStore, unit: Unit) -> Path:
    name = store_name(unit)
    if (kept := store.find_folder(name)) is not None:
        return kept
    state = store.state()  # before reading: a write meanwhile leaves the store stale, never read
    return store.write_folder(name, state, lambda folder: _write(engine, unit, folder))


def _write(engine: Engine, unit: Unit, folder: Path) -> None:
    e, p = events.c, products.c
    unit_id = e.member_id if unit == "member" else e.session_id
    values = {"units": unit_id, "members": e.member_id,
              **{c: p.category if c == "category" else e[c] for c in CODED}}
    with connection(engine) as conn, warnings.catch_warnings():
        warnings.filterwarnings("ignore", "Arrow output on a DB-API result")
        # Every numbering is read once and handed back to DuckDB as an Arrow table registered on this connection
        # (a view of the process's memory, nothing is written to the warehouse): numbering in each slice's
        # statement would group all the events again.
        numbered = {name: _numbering(conn, column, name) for name, column in values.items()}
        for file in ("units", "members"):
            _parquet(numbered[file].rename_columns(["n", "id"]), folder / f"{file}.parquet")
        dictionaries = {c: [None, *numbered[c].column("value").to_pylist()] for c in CODED}
        rows = conn.execute(select(func.count()).where(unit_id.is_not(None))).scalar_one()
        raw = conn.connection.dbapi_connection
        try:
            at, names, types = _write_slices(conn, raw, unit, values, numbered, rows, folder)
        finally:  # the connection goes back to the pool: it keeps neither the tables nor the setting
            conn.exec_driver_sql("RESET disabled_optimizers")
            for name in numbered:
                raw.unregister(_REGISTERED + name)
        if at != rows:  # the warehouse changed while it was read: keep nothing
            raise RuntimeError(f"read {at} events of {rows}")
    layout = {"rows": rows, "types": {n: np.dtype(types[n]).str for n in names}, "dictionaries": dictionaries}
    (folder / "layout.json").write_text(json.dumps(layout, default=str))


_REGISTERED = "memberlens_funnel_store_"  # names of the Arrow tables registered while the store is written


def _write_slices(conn: Any, raw: Any, unit: Unit, values: dict[str, Any], numbered: dict[str, pa.Table],
                  rows: int, folder: Path) -> tuple[int, list[str], dict[str, Any]]:
    """Write the sorted events' columns, a slice of units per statement; returns (rows written, names, types)."""
    e, p = events.c, products.c
    unit_id = values["units"]
    tables = {name: _registered(raw, name, table) for name, table in numbered.items() if name != "units"}
    units = sa_table(_REGISTERED + "units", sa_column("n"), sa_column("value"))
    source = events.join(units, units.c.value == unit_id).outerjoin(products, p.product_id == e.product_id)
    columns = [units.c.n.label("unit"), cast(func.epoch_us(e.occurred_at), BigInteger).label("ts")]
    if unit != "member":
        source = source.outerjoin(tables["members"], tables["members"].c.value == e.member_id)
        columns.append(func.coalesce(tables["members"].c.n, 0).label("member"))
    for c in CODED:
        source = source.outerjoin(tables[c], tables[c].c.value == values[c])
        columns.append(func.coalesce(tables[c].c.n, 0).label(c))
    types = {"unit": np.int32, "ts": np.int64, "member": np.int32,
             **{c: np.uint16 if numbered[c].num_rows + 1 < 2 ** 16 else np.int32 for c in CODED}}
    names = [c.key for c in columns]
    # Joined in the order written, every small table hashed: DuckDB cannot estimate how many events a slice keeps,
    # and reordered it hashed a slice's 8M events against the members (out of memory at its 1GB cap).
    conn.exec_driver_sql("SET disabled_optimizers = 'join_order,build_side_probe_side'")
    # Sorted a slice of units at a time (units are numbered in id order, so a slice is a range of ids): DuckDB holds
    # a sorted result whole before handing it over, and one statement for 54M events peaked at 3.2 GB.
    ids = numbered["units"]
    slices = max(1, -(-rows // _SORT_SLICE))
    at = 0
    with ExitStack() as files_open:
        files = {n: files_open.enter_context(open(folder / f"{n}.bin", "wb")) for n in names}
        for i in range(slices):
            first, last = ids.num_rows * i // slices, ids.num_rows * (i + 1) // slices
            if first == last:
                continue
            _registered(raw, "units", ids.slice(first, last - first))
            low, high = ids.column("value")[first].as_py(), ids.column("value")[last - 1].as_py()
            result = conn.execute(select(*columns).select_from(source)
                                  .where(unit_id >= literal(low), unit_id <= literal(high))
                                  .order_by(units.c.n, e.occurred_at, e.event_id))
            try:
                for batch in result.cursor.to_arrow_reader(_BATCH):
                    for j, n in enumerate(names):
                        files[n].write(batch.column(j).to_numpy().astype(types[n], copy=False).tobytes())
                    at += batch.num_rows
            finally:
                result.close()
    return at, names, types


def _numbering(conn: Any, column: Any, name: str) -> pa.Table:
    """The distinct non-missing values of ``column`` numbered 1.. in their order, as Arrow columns ``n``, ``value``."""
    values = select(column.label("value")).where(column.is_not(None)).distinct().subquery(f"{name}_values")
    result = conn.execute(select(cast(func.row_number().over(order_by=values.c.value), Integer).label("n"),
                                 values.c.value).order_by(values.c.value))
    try:
        return result.cursor.to_arrow_table()
    finally:
        result.close()


def _registered(raw: Any, name: str, table: pa.Table) -> Any:
    """``table`` registered on the DuckDB connection ``raw`` under a name of the store's own; its SQL table."""
    raw.register(_REGISTERED + name, table)
    return sa_table(_REGISTERED + name, sa_column("n"), sa_column("value"))


def _parquet(table: Any, path: Path) -> None:
    import pyarrow.parquet as pq

    pq.write_table(table, path)


def refresh_in_background(engine: Engine) -> bool:
    """Start sorting the clickstream into the store in a background thread when the warehouse has a store and it
    lacks either unit for the warehouse's current state; funnels use the SQL meanwhile. True when one started."""
    store = store_for(engine.dialect)
    if store is None or all(store.find_folder(store_name(u)) is not None for u in ("member", "session")):
        return False
    return build_in_background(store.folder(store_name("session")), lambda: store_funnel_events(engine),
                               "funnel store")


# ---------------------------------------------------------------------------------------------
# Reading
# ---------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class EventStore:
    """A unit's store folder: its columns (raw files, one value per event) and its dictionaries."""

    folder: Path
    unit: Unit

    @cached_property
    def layout(self) -> dict[str, Any]:
        return json.loads((self.folder / "layout.json").read_text())

    @property
    def rows(self) -> int:
        return int(self.layout["rows"])

    @property
    def dictionaries(self) -> dict[str, list[Any]]:
        return self.layout["dictionaries"]

    def _file(self, name: str) -> tuple[Path, np.dtype]:
        if name == "member" and self.unit == "member":
            name = "unit"  # a member's events are their unit's
        return self.folder / f"{name}.bin", np.dtype(self.layout["types"][name])

    def column(self, name: str) -> np.ndarray:
        """A whole column, memory-mapped (for reading a few rows)."""
        path, dtype = self._file(name)
        return np.memmap(path, dtype=dtype, mode="r", shape=(self.rows,)) if self.rows else np.zeros(0, dtype)

    def read(self, bounds: tuple[int, int], columns: set[str],
             keep: Callable[[Callable[[str], np.ndarray]], np.ndarray]) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        """The rows from ``bounds[0]`` to ``bounds[1]`` (excluded) that ``keep`` selects, and their values of
        ``columns``. ``keep`` gets a reader of the block's columns and returns its mask. Columns are read into
        buffers the calling thread keeps (:func:`scratch`): fresh memory costs more than reading it (page faults),
        so only what is kept is allocated."""
        start, count = bounds[0], bounds[1] - bounds[0]
        read: dict[str, np.ndarray] = {}

        def reader(name: str) -> np.ndarray:
            if name not in read:
                path, dtype = self._file(name)
                buffer = scratch(f"column {name}", dtype, count)
                fd = os.open(path, os.O_RDONLY)
                try:
                    if os.preadv(fd, [buffer.view(np.uint8)], start * dtype.itemsize) != count * dtype.itemsize:
                        raise OSError(f"short read of the funnel store's {name}")
                finally:
                    os.close(fd)
                read[name] = buffer
            return read[name]

        kept = np.flatnonzero(keep(reader))
        return kept + start, {c: reader(c)[kept] for c in columns}

    def blocks(self) -> list[tuple[int, int]]:
        """The store cut into blocks of about :data:`_BLOCK` rows, each of whole units."""
        return _blocks(str(self.folder / "unit.bin"), self.rows, _BLOCK)

    def code(self, column: str, value: Any) -> int:
        """The code of ``value`` in ``column`` (-1: never seen, so nothing matches it)."""
        values = self.dictionaries[column]
        return values.index(value) if value in values[1:] else -1

    def ids(self, file: str) -> str:
        return str(self.folder / f"{file}.parquet")


@lru_cache(maxsize=8)
def _blocks(units: str, rows: int, size: int) -> list[tuple[int, int]]:
    """Cuts of a unit column (``units``: its file, ``rows`` long) into blocks of whole units: each cut is the first
    row of a new unit at or after a multiple of ``size``."""
    column = np.memmap(units, dtype=np.int32, mode="r", shape=(rows,)) if rows else np.zeros(0, np.int32)
    cuts = [0]
    for at in range(size, rows, size):
        if at <= cuts[-1]:
            continue
        width, cut = 4096, rows
        while True:
            part = np.asarray(column[at - 1:at - 1 + width])
            changes = np.flatnonzero(part[1:] != part[:-1])
            if len(changes):
                cut = at + int(changes[0])
                break
            if at - 1 + width >= rows:
                break
            width *= 8
        if cut < rows:
            cuts.append(cut)
    return [(a, b) for a, b in zip(cuts, [*cuts[1:], rows], strict=True) if b > a]


_threads = threading.local()
_pool_lock = threading.Lock()
_pools: list[ThreadPoolExecutor] = []


def _pool() -> ThreadPoolExecutor:
    """The store's reading threads, kept for the process so that their buffers are too."""
    with _pool_lock:
        if not _pools:
            _pools.append(ThreadPoolExecutor(max_workers=_THREADS, thread_name_prefix="memberlens-funnel-store"))
        return _pools[0]


def scratch(name: str, dtype: np.dtype | type, count: int) -> np.ndarray:
    """A buffer of ``count`` values that the calling thread reuses under ``name``:
    its contents last until the thread asks for ``name`` again."""
    buffers = _threads.__dict__.setdefault("buffers", {})
    buffer = buffers.get(name)
    if buffer is None or buffer.dtype != np.dtype(dtype) or len(buffer) < count:
        buffer = buffers[name] = np.empty(max(count, _BLOCK), dtype=dtype)
    return buffer[:count]


def current(bind: Bind, unit: Unit) -> EventStore | None:
    """The store of ``unit`` for the warehouse behind ``bind`` as it is now, or None."""
    store = store_for(bind.dialect)
    folder = store.find_folder(store_name(unit)) if store is not None else None
    return EventStore(folder, unit) if folder is not None else None


def _micros(moment: datetime) -> int:
    return (moment - _EPOCH) // timedelta(microseconds=1)


@dataclass(frozen=True)
class Best:
    """Every unit's best attempt: the entry's row in the store (``entry``), the steps ``reached`` (1..N) and the
    completion time of each step in epoch microseconds (``times``, N rows; :data:`_NEVER` beyond ``reached``)."""

    entry: np.ndarray
    reached: np.ndarray
    times: np.ndarray

    def seconds(self, k: int) -> np.ndarray:
        """Seconds from completing step k-1 to step k (2 <= k <= N) of the units that reached k, as the SQL computes
        them (differences of epoch seconds)."""
        done = self.reached >= k
        return self.times[k - 1][done] / 1e6 - self.times[k - 2][done] / 1e6


def best_attempts(bind: Bind, store: EventStore, spec: FunnelSpec, filters: Filters) -> Best:
    """The best attempt of every unit that entered ``spec`` in ``filters``' range (see :mod:`analytics.funnels`).

    The store is cut into blocks of whole units (:meth:`EventStore.blocks`): a unit's best attempt depends on its
    own events only, so each block is read and walked on its own, two at a time, and the results put together.
    Small blocks also keep the walk's arrays in the processor's cache."""
    defs: list[FunnelStep] = []
    for step in spec.steps:
        if step not in defs:
            defs.append(step)
    step_def = [defs.index(s) for s in spec.steps]
    keep = _scope(bind, store, spec, filters, defs)
    columns = {"unit", "ts"} | {c for c in CODED if any(getattr(d, c) is not None for d in defs)}
    end = _micros(filters.end_ts)

    def block(bounds: tuple[int, int]) -> Best:
        rows, values = store.read(bounds, columns, keep)
        return _walk(spec, step_def, _matches(store, values, defs), rows, values["unit"], values["ts"], end)

    parts = list(_pool().map(block, store.blocks()))
    if not parts:
        return Best(np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int8),
                    np.zeros((len(spec.steps), 0), dtype=np.int64))
    return Best(np.concatenate([b.entry for b in parts]), np.concatenate([b.reached for b in parts]),
                np.concatenate([b.times for b in parts], axis=1))


def _walk(spec: FunnelSpec, step_def: list[int], match: list[np.ndarray], rows: np.ndarray, units: np.ndarray,
          times: np.ndarray, end: int) -> Best:
    """The best attempts of the units of a block's rows (in store order): every start worth following
    (:func:`_starts`) walks its steps, all starts a step at a time, then the best per unit."""
    window = spec.window_seconds * 1_000_000
    n = len(rows)
    later = sorted(set(step_def[1:])) if spec.mode != "strict" else []  # strict reads the very next rows
    # Matches of each later step's definition up to and including each row: the next match after row p is
    # places[d][seen[d][p]], the j-th next places[d][seen[d][p] + j - 1].
    seen = {d: np.cumsum(match[d], dtype=np.int32) for d in later}
    places = {d: np.append(np.flatnonzero(match[d]).astype(np.int32), n) for d in later}  # n: no such match
    starts = _starts(spec, step_def, match, seen, units, times, end)
    m = len(starts)
    done = np.full((len(spec.steps), m), _NEVER, dtype=np.int64)
    done[0] = times[starts]
    reached, finish = np.ones(m, dtype=np.int8), done[0].copy()
    # The attempts still going, compacted after every step: their number, start row, unit, deadline and the row
    # of their last step (in any order: the time of the latest step).
    live, begun, unit_of = np.arange(m, dtype=np.int32), starts, units[starts]
    limit, at, latest = done[0] + window, starts, done[0]
    for k in range(1, len(spec.steps)):
        if not len(live):
            break
        d = step_def[k]
        if spec.mode == "strict":  # the unit's very next event
            found = begun + k
        elif spec.mode == "ordered":  # the first match after the previous step's
            found = places[d][seen[d][at]]
        else:  # any order: the j-th match after the start
            i = seen[d][begun] + (step_def[1:k + 1].count(d) - 1)
            found = places[d][np.minimum(i, len(places[d]) - 1)]
        ok = found < n
        found = np.minimum(found, n - 1)
        ok &= units[found] == unit_of
        if spec.mode == "strict":
            ok &= match[d][found]
        when = times[found]
        if spec.mode == "any":  # completed when the last of steps 2..k is
            when = np.maximum(latest, when)
        ok &= when <= limit
        live, begun, unit_of, limit, at, latest = (x[ok] for x in (live, begun, unit_of, limit, found, when))
        done[k, live] = latest
        reached[live] += 1
        finish[live] = latest
    chosen = _best_per_unit(units[starts], reached, finish)
    return Best(rows[starts[chosen]], reached[chosen], done[:, chosen])


def _scope(bind: Bind, store: EventStore, spec: FunnelSpec, filters: Filters, defs: list[FunnelStep]
           ) -> Callable[[Callable[[str], np.ndarray]], np.ndarray]:
    """Which rows of a block a funnel reads, given a reader of the block's columns: those in the scope (range,
    tiers, the user's scope) and, but in strict mode (where any event breaks a chain), of the type of some step."""
    lo, hi = _micros(filters.start_ts), _micros(filters.end_ts + timedelta(seconds=spec.window_seconds))
    types = None
    if spec.mode != "strict":
        types = np.zeros(len(store.dictionaries["event_type"]), dtype=bool)
        for d in defs:
            if (code := store.code("event_type", d.event_type)) > 0:
                types[code] = True
    allowed = _allowed_members(bind, store, filters)

    def keep(read: Callable[[str], np.ndarray]) -> np.ndarray:
        times = read("ts")
        mask, also = scratch("mask", bool, len(times)), scratch("also", bool, len(times))
        np.greater_equal(times, lo, out=mask)
        mask &= np.less(times, hi, out=also)
        if types is not None:
            mask &= np.take(types, read("event_type"), out=also)
        if allowed is not None:
            mask &= np.take(allowed, read("member"), out=also)
        return mask

    return keep


def _allowed_members(bind: Bind, store: EventStore, filters: Filters) -> np.ndarray | None:
    """Which member numbers (0: anonymous) the tier filter and the user's scope keep, decided by the warehouse with
    the conditions the SQL applies (:func:`analytics.filters.member_conditions`); None: all."""
    numbered = func.read_parquet(store.ids("members")).table_valued("n", "id").alias("member_numbers")
    probe = union_all(select(numbered.c.n, numbered.c.id),
                      select(literal(0).label("n"), cast(null(), members.c.member_id.type).label("id"))
                      ).subquery("numbered")
    conditions = member_conditions(filters, probe.c.id)
    if not conditions:
        return None
    with connection(bind) as conn:
        kept = np.fromiter((r[0] for r in conn.execute(select(probe.c.n).where(*conditions))), dtype=np.int64)
        total = conn.execute(select(func.count()).select_from(numbered)).scalar_one()
    allowed = np.zeros(total + 1, dtype=bool)
    allowed[kept] = True
    return allowed


def _matches(store: EventStore, columns: dict[str, np.ndarray], defs: list[FunnelStep]) -> list[np.ndarray]:
    """Per step definition, which of the rows read match it."""
    result = []
    for d in defs:
        mask = np.ones(len(columns["ts"]), dtype=bool)
        for column in CODED:
            if (value := getattr(d, column)) is not None:
                mask &= columns[column] == store.code(column, value)
        result.append(mask)
    return result


def _starts(spec: FunnelSpec, step_def: list[int], match: list[np.ndarray], seen: dict[int, np.ndarray],
            units: np.ndarray, times: np.ndarray, end: int) -> np.ndarray:
    """The rows starting attempts worth following: step-1 events before ``end``, less those followed by a later start
    of the same unit with no match of a later step between them (in ordered mode: of step 2) nor at it. Both then
    take the same path, the later one tighter, so the earlier is never the best attempt unless nobody gets past
    step 1, when the earliest is: a unit's first start, and any start at the same moment as the row before it, are
    kept."""
    starts = np.flatnonzero(match[step_def[0]] & (times < end))
    if spec.mode == "strict" or len(starts) < 2:
        return starts
    unit_of = units[starts]
    same_unit = unit_of[1:] == unit_of[:-1]
    same_path = same_unit.copy()
    for d in set(step_def[1:2] if spec.mode == "ordered" else step_def[1:]):
        before = seen[d][starts]
        same_path &= before[1:] == before[:-1]
    first = np.r_[True, ~same_unit]
    tied = (starts > 0) & (times[starts] == times[np.maximum(starts - 1, 0)])
    return starts[np.r_[~same_path, True] | first | tied]


def _best_per_unit(unit_of: np.ndarray, reached: np.ndarray, finish: np.ndarray) -> np.ndarray:
    """Per unit (runs of equal ``unit_of``), the attempt reaching furthest, then finishing first, then started
    latest (attempts are in start order). Reached and finish are ranked as one number: reached above 2^56, the
    time left before the latest finish below (spans under 2^55 microseconds, 1,100 years)."""
    if len(unit_of) == 0:
        return np.zeros(0, dtype=np.int64)
    first = np.flatnonzero(np.r_[True, unit_of[1:] != unit_of[:-1]])
    rank = reached.astype(np.int64) << 56
    rank += finish.max() - finish
    group = np.cumsum(np.r_[True, unit_of[1:] != unit_of[:-1]], dtype=np.int32) - 1
    ties = np.flatnonzero(rank == np.maximum.reduceat(rank, first)[group])
    unit = unit_of[ties]
    return ties[np.r_[unit[1:] != unit[:-1], True]]  # the last tie of each unit


# ---------------------------------------------------------------------------------------------
# Results, in the shapes of analytics.funnels
# ---------------------------------------------------------------------------------------------

def best_table(bind: Bind, spec: FunnelSpec, filters: Filters, breakdown: str | None) -> pa.Table | None:
    """Every unit's best attempt as the SQL's best attempts have it (``reached``, ``sec2..secN``, ``sec_total``,
    ``entry_at`` and with a breakdown ``dim``), for :func:`aggregate`; None when the warehouse has no current
    store."""
    store = current(bind, spec.unit)
    if store is None:
        return None
    best = best_attempts(bind, store, spec, filters)
    n = len(spec.steps)
    columns = {"reached": pa.array(best.reached.astype(np.int32))}
    for k in range(2, n + 1):
        done = best.reached >= k
        columns[f"sec{k}"] = pa.array(np.where(done, best.times[k - 1] / 1e6 - best.times[k - 2] / 1e6, 0.0),
                                      mask=~done)
    last = best.reached == n
    columns["sec_total"] = pa.array(np.where(last, best.times[n - 1] / 1e6 - best.times[0] / 1e6, 0.0), mask=~last)
    columns["entry_at"] = pa.array(best.times[0].astype("datetime64[us]"))
    if breakdown is not None:
        values, codes = _dimension(bind, store, best, breakdown)
        columns["dim"] = values.take(pa.array(codes))
    return pa.table(columns)


@lru_cache(maxsize=1)
def _aggregator() -> Engine:
    return create_engine("duckdb:///:memory:")


def aggregate(table: pa.Table, query: Any) -> pd.DataFrame:
    """Run ``query`` (over a table named ``best``) on ``table`` in DuckDB, in memory: the figures from the best
    attempts are then computed by the very functions the SQL uses (``PERCENTILE_CONT``, ``ROLLUP``), so they are
    equal to the last bit."""
    with _aggregator().connect() as conn:
        raw = conn.connection.driver_connection
        raw.register("best", table)
        try:
            return read_frame(conn, query)
        finally:
            raw.unregister("best")


def _dimension(bind: Bind, store: EventStore, best: Best, breakdown: str) -> tuple[pa.Array, np.ndarray]:
    """Each best attempt's breakdown value, of its entry event or of its member (current values), as the values
    and each attempt's index among them."""
    if breakdown in EVENT_DIMENSIONS:
        return pa.array(store.dictionaries[breakdown]), np.asarray(store.column(breakdown)[best.entry])
    numbered = func.read_parquet(store.ids("members")).table_valued("n", "id").alias("member_numbers")
    column = members.c[breakdown]
    frame = read_frame(bind, select(numbered.c.n, column.label("dim"))
                       .select_from(numbered.outerjoin(members, members.c.member_id == numbered.c.id)))
    lookup: list[Any] = [None] * (int(frame["n"].max()) + 1 if len(frame) else 1)  # 0: anonymous
    for n, value in zip(frame["n"].tolist(), frame["dim"].tolist(), strict=True):
        lookup[n] = None if pd.isna(value) else value
    return pa.array(lookup), np.asarray(store.column("member")[best.entry])
