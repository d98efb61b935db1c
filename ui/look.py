"""What every page looks like beyond the theme (.streamlit/config.toml): text contrast and sizes to WCAG AA.

Streamlit's chart theme writes Plotly's tick labels, axis titles and the values outside bars in a grey of 3.7:1
on white, Plotly shrinks the values in small heatmap cells to 9 px, code in captions is 10.5 px and the sidebar's
icons are at 4.3:1; the theme settings reach none of them. One style sheet, drawn once per run by ``app.py``,
sets them to at least 4.5:1 and 11 px on every page, so no page has to remember it."""

from __future__ import annotations

import streamlit as st

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
