"""What every page looks like beyond the theme (.streamlit/config.toml): text contrast and sizes to WCAG AA.

Streamlit's chart theme writes Plotly's tick labels, axis titles and the values outside bars in a grey of 3.7:1
on white, Plotly shrinks the values in small heatmap cells to 9 px, code in captions is 10.5 px and the sidebar's
icons are at 4.3:1; the theme settings reach none of them. One style sheet, drawn once per run by ``app.py``,
sets them to at least 4.5:1 and 11 px on every page, so no page has to remember it."""

from __future__ import annotations

import re
from datetime import date
from typing import Any

import numpy as np
import plotly.graph_objects as go
import streamlit as st

from analytics.i18n import DEFAULT_LANGUAGE, language

#: The darkest grey of the palette that still reads as secondary text: 7.4:1 on white.
SECONDARY_TEXT = "#55515E"

STYLE = f"""<style>
[data-testid="stPlotlyChart"] .xtick text, [data-testid="stPlotlyChart"] .ytick text,
[data-testid="stPlotlyChart"] .g-xtitle text, [data-testid="stPlotlyChart"] .g-ytitle text,
[data-testid="stPlotlyChart"] .cbaxis text, [data-testid="stPlotlyChart"] .colorbar text,
[data-testid="stPlotlyChart"] .bartext-outside, [data-testid="stPlotlyChart"] .legendtitletext,
[data-testid="stPlotlyChart"] .scatterlayer .textpoint text, [data-testid="stPlotlyChart"] .sankey-node .node-label {{
  fill: {SECONDARY_TEXT} !important;
}}
[data-testid="stPlotlyChart"] .heatmap-label text {{ font-size: 11px !important; }}
[data-testid="stCaptionContainer"] code {{ font-size: 11px !important; }}
[data-testid="stSidebarCollapseButton"] [data-testid="stIconMaterial"],
[data-testid="stSidebarNav"] [data-testid="stIconMaterial"] {{ color: #1F1B24; }}
</style>"""


def apply_look() -> None:
    """Draw the style sheet (invisible) for this run."""
    st.html(STYLE)


#: How dates on chart axes read in Chinese (Plotly's own month names are English, whatever the page's language).
CHINESE_DATE_FORMAT = "%Y年%-m月%-d日"
_ISO_DAY = re.compile(r"^\d{4}-\d{2}-\d{2}")


def _is_day(value: object) -> bool:
    return isinstance(value, (date, np.datetime64)) or (isinstance(value, str) and bool(_ISO_DAY.match(value)))


def localise_dates(figure: go.Figure) -> go.Figure:
    """Write the dates on ``figure``'s date axes (ticks and hover) in Chinese (2026年11月15日): Plotly writes its
    tick labels with English month names and cannot be given another locale from a Streamlit page."""
    for trace in figure.data:
        for letter in ("x", "y"):
            values = getattr(trace, letter, None)
            if values is None or len(values) == 0 or not _is_day(values[0]):
                continue
            name = (getattr(trace, f"{letter}axis", None) or letter).replace(letter, f"{letter}axis", 1)
            figure.layout[name].update(tickformat=CHINESE_DATE_FORMAT, hoverformat=CHINESE_DATE_FORMAT)
    return figure


def show_chart(figure: go.Figure, where: Any = None, **kwargs: Any) -> Any:
    """``st.plotly_chart`` (in the container ``where``, e.g. a column; default the page) with dates in the reader's
    language; returns what it returns (a selection, if asked)."""
    if language() != DEFAULT_LANGUAGE:
        localise_dates(figure)
    return (where or st).plotly_chart(figure, **kwargs)
