"""Turning generated NumPy arrays into typed Arrow columns, without per-row Python work."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc


def ids(prefix: str, numbers: np.ndarray, width: int, missing: np.ndarray | None = None) -> pa.Array:
    """Text identifiers such as ``M00000042`` (``missing`` marks rows that get NULL)."""
    digits = pc.utf8_lpad(pc.cast(pa.array(np.asarray(numbers, dtype=np.int64)), pa.string()), width, "0")
    out = pc.binary_join_element_wise(prefix, digits, "")
    if missing is not None and missing.any():
        out = pc.if_else(pa.array(missing), pa.nulls(len(out), pa.string()), out)
    return out


def labels(values: Sequence[str], idx: np.ndarray, missing: np.ndarray | None = None) -> pa.Array:
    """Category labels by index; ``missing`` rows (or negative indices) become NULL."""
    idx = np.asarray(idx, dtype=np.int64)
    mask = idx < 0 if missing is None else (missing | (idx < 0))
    return pa.array(list(values), pa.string()).take(pa.array(np.maximum(idx, 0), mask=mask))


def timestamps(start: date, seconds: np.ndarray, missing: np.ndarray | None = None) -> pa.Array:
    """Timestamps (no time zone) ``seconds`` after midnight of ``start``."""
    values = (np.datetime64(start, "s") + np.asarray(seconds, dtype=np.int64).astype("timedelta64[s]"))
    return pa.array(values.astype("datetime64[us]"), pa.timestamp("us"), mask=missing)


def money(cents: np.ndarray) -> pa.Array:
    """Exact NUMERIC(14, 2) values from integer cents (no floating-point rounding on the way)."""
    cents = np.ascontiguousarray(cents, dtype=np.int64)
    pairs = np.empty((cents.size, 2), dtype=np.int64)  # 128-bit little-endian two's complement
    pairs[:, 0] = cents
    pairs[:, 1] = np.where(cents < 0, -1, 0)
    return pa.Array.from_buffers(pa.decimal128(14, 2), cents.size, [None, pa.py_buffer(pairs.tobytes())])


def integers(values: np.ndarray, missing: np.ndarray | None = None, type_: pa.DataType | None = None) -> pa.Array:
    """Integers (32-bit unless ``type_`` says otherwise); ``missing`` rows become NULL."""
    type_ = type_ or pa.int32()
    return pa.array(np.asarray(values).astype(type_.to_pandas_dtype()), type_, mask=missing)
