"""One colour per RFM segment, the same in every chart (treemap, flows, member lists): defined once, here.

Greens for the best buyers, blues for the new and promising, ambers and reds for those slipping away, browns and greys
for the long gone; the lapsed (no order in the range) and "no purchase" in a migration are the same light grey,
because they are the same thing seen from a range and from a period.
"""

from __future__ import annotations

from analytics.rfm import LAPSED, NO_PURCHASE, SEGMENTS

SEGMENT_COLOURS: dict[str, str] = {
    "Champions": "#1B5E20",
    "Loyal": "#43A047",
    "Potential Loyalist": "#9CCC65",
    "New": "#1565C0",
    "Promising": "#64B5F6",
    "Need Attention": "#F9A825",
    "About to Sleep": "#FFCC80",
    "At Risk": "#E65100",
    "Can't Lose Them": "#B71C1C",
    "Hibernating": "#8D6E63",
    "Lost": "#616161",
    LAPSED: "#BDBDBD",
    NO_PURCHASE: "#BDBDBD",
}
assert set(SEGMENTS) <= set(SEGMENT_COLOURS)


def _luminance(colour: str) -> float:
    """Relative luminance (WCAG 2) of a ``#RRGGBB`` colour."""
    channels = [int(colour[i:i + 2], 16) / 255 for i in (1, 3, 5)]
    linear = [c / 12.92 if c <= 0.04045 else ((c + 0.055) / 1.055) ** 2.4 for c in channels]
    return 0.2126 * linear[0] + 0.7152 * linear[1] + 0.0722 * linear[2]


def text_on(colour: str) -> str:
    """Black or white, whichever contrasts more with ``colour`` (for labels drawn on a segment's tile)."""
    lum = _luminance(colour)
    return "#000000" if (lum + 0.05) / 0.05 >= 1.05 / (lum + 0.05) else "#FFFFFF"


def translucent(colour: str, alpha: float) -> str:
    """``colour`` as an ``rgba(...)`` with opacity ``alpha`` (for flows between segments)."""
    red, green, blue = (int(colour[i:i + 2], 16) for i in (1, 3, 5))
    return f"rgba({red},{green},{blue},{alpha})"
