"""Reading a figure back as a user reads it: the value a formatted text stands for, and how exactly.

Written apart from ``ui.format`` (by regular expression, not with Babel), so that a formatter that writes the
wrong unit or the wrong magnitude cannot agree with itself: "¥2.3K" reads 2,300 ± 50, whatever produced it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

UNITS = {"": 1.0, "K": 1e3, "M": 1e6, "B": 1e9, "T": 1e12, "万": 1e4, "亿": 1e8, "万亿": 1e12}
_FIGURE = re.compile(r"^(?P<sign>[-+])?(?P<symbol>[^\d\s,.+-]*?)(?P<number>\d[\d,]*(?:\.\d+)?)"
                     r"(?P<unit>万亿|[KMBT万亿])?(?P<percent>%| pp)?$")


@dataclass(frozen=True)
class Figure:
    value: float  # what the text stands for (a share as a fraction: "12.3%" -> 0.123)
    tolerance: float  # half a unit of the last digit shown
    mantissa: float  # the number as written, before its unit
    unit: str  # "", "K", "M", "B", "T", "万", "亿", "万亿"
    symbol: str  # the currency symbol, if any

    def close_to(self, value: float) -> bool:
        return abs(self.value - value) <= self.tolerance * (1 + 1e-9) + 1e-9


def read_figure(text: str) -> Figure:
    """The value of a figure as shown on a page (``¥12.3K``, ``-1.2万``, ``45.1%``, ``+0.4 pp``, ``1,234``)."""
    match = _FIGURE.match(text.strip())
    if match is None:
        raise ValueError(f"not a figure: {text!r}")
    number = match["number"]
    decimals = len(number.split(".")[1]) if "." in number else 0
    mantissa = float(number.replace(",", ""))
    scale = UNITS[match["unit"] or ""] * (0.01 if match["percent"] else 1.0)
    sign = -1.0 if match["sign"] == "-" else 1.0
    return Figure(sign * mantissa * scale, 0.5 * 10.0 ** -decimals * scale, mantissa, match["unit"] or "",
                  match["symbol"] or "")
