"""Data quality: is the warehouse complete, accurate and timely?

Every check and its status rule is defined in :mod:`analytics.quality`; this page only draws the
report. It covers the whole warehouse, so the sidebar's date, channel and tier filters do not apply.
"""

from __future__ import annotations

from datetime import date

import pandas as pd
import streamlit as st
from pandas.io.formats.style import Styler

from analytics.privacy import safe_csv
from analytics.privacy_rights import retention_policy, retention_report
from analytics.quality import CHECKS, DIMENSION_DESCRIPTIONS, DIMENSIONS
from ui.app_state import state_engine
from ui.cached import cached_quality_report
from ui.context import page_inputs, warn_about_ignored_link_values
from ui.format import label

# Text symbols (not emoji): they render in every font, and the cell colour carries the meaning too.
MARKS = {"pass": "✔ Pass", "warn": "⚠ Warn", "fail": "✖ Fail"}
MARK_STYLES = {
    MARKS["pass"]: "color: #1B5E20; background-color: #E8F5E9",
    MARKS["warn"]: "color: #7A5200; background-color: #FFF3CD",
    MARKS["fail"]: "color: #B71C1C; background-color: #FDECEA; font-weight: bold",
}
SEVERITY = {"fail": 0, "warn": 1, "pass": 2}
ALL = "all"


def with_marks(frame: pd.DataFrame) -> Styler:
    """The frame with its status column as a coloured mark."""
    shown = frame.assign(status=frame["status"].map(MARKS))
    return shown.style.map(MARK_STYLES.get, subset=["status"])


ctx = page_inputs("data_quality")
st.title("Data quality")
st.caption("Every contract table of the warehouse, whole history. The sidebar filters do not apply here: a problem "
           "anywhere in a table affects every period.")
warn_about_ignored_link_values({"quality_dimension": {label(d) for d in (ALL, *DIMENSIONS)}})
left, right = st.columns([1, 3], vertical_alignment="bottom")
today = left.date_input(
    "As of", value=date.today(), key="quality_as_of", bind="query-params", format="YYYY-MM-DD",
    help="The day freshness is measured against; timestamps after the end of this day count as in the future.",
) or date.today()
if today > ctx.span.last_day:
    right.caption(f"The newest order is from {ctx.span.last_day:%d %b %Y}: a snapshot (the demo shop, an "
                  "import) grows stale as time passes. To judge the data as it was then, set “As of” to that day.")

report = cached_quality_report(ctx.engine, today)
checks = report.checks
counts = report.counts()

# --- verdict -------------------------------------------------------------------------------------
verdict = (f"{counts['fail']} {'check fails' if counts['fail'] == 1 else 'checks fail'}, {counts['warn']} "
           f"{'warns' if counts['warn'] == 1 else 'warn'}, {counts['pass']} pass.")
if counts["fail"]:
    st.error(f"**Fix before trusting the figures.** {verdict}", icon=":material/error:")
elif counts["warn"]:
    st.warning(f"**Usable, with caveats.** {verdict}", icon=":material/warning:")
else:
    st.success(f"**Complete, accurate and timely.** {verdict}", icon=":material/check_circle:")

for column, dimension in zip(st.columns(len(DIMENSIONS)), DIMENSIONS, strict=True):
    found = report.counts(dimension)
    problems = [f"{found[s]} {s}" for s in ("fail", "warn") if found[s]]
    column.metric(
        label(dimension),
        f"{found['pass']} of {sum(found.values())} pass",
        delta=", ".join(problems) or None,
        delta_color="inverse" if found["fail"] else "off",
        delta_arrow="off",
        help=DIMENSION_DESCRIPTIONS[dimension],
        border=True,
    )

# --- checks --------------------------------------------------------------------------------------
st.subheader("Checks")
left, right = st.columns([3, 2], vertical_alignment="bottom")
picked = left.segmented_control(
    "Dimension", [ALL, *DIMENSIONS], default=ALL, key="quality_dimension", bind="query-params", format_func=label,
    help="Complete: everything is there. Accurate: the values are right. Timely: the data is current.",
) or ALL
problems_only = right.toggle("Only warnings and failures", key="quality_problems_only",
                             value=bool(counts["fail"] or counts["warn"]))
shown = checks if picked == ALL else checks[checks["dimension"] == picked]
if problems_only:
    shown = shown[shown["status"] != "pass"]
shown = shown.iloc[shown["status"].map(SEVERITY).argsort(kind="stable")]
shown = shown.assign(dimension=shown["dimension"].map(label))
if shown.empty:
    st.info("No warnings or failures here: switch off “Only warnings and failures” to see every check.",
            icon=":material/task_alt:")
else:
    st.dataframe(
        with_marks(shown),
        hide_index=True,
        column_order=["status", "dimension", "table", "column", "check", "affected_rows", "share", "detail",
                      "definition"],
        column_config={
            "status": st.column_config.TextColumn("Status", width="small"),
            "dimension": st.column_config.TextColumn("Dimension", width="small"),
            "table": st.column_config.TextColumn("Table"),
            "column": st.column_config.TextColumn("Column"),
            "check": st.column_config.TextColumn(
                "Check", width="medium", help="What is checked; the Definition column says why and when it fails"),
            "affected_rows": st.column_config.NumberColumn("Affected rows", format="localized",
                                                           help="Rows that fail the check"),
            "share": st.column_config.NumberColumn("Share", format="percent", help="Affected rows ÷ the table's rows"),
            "detail": st.column_config.TextColumn("Finding", width="large",
                                                  help="What was found, and the rule that set the status"),
            "definition": st.column_config.TextColumn("Definition", width="large"),
        },
        key="quality_checks",
        placeholder="",
    )
    st.download_button("Download the checks (CSV)", safe_csv(checks),
                       file_name=f"memberlens_quality_{today}.csv", mime="text/csv", icon=":material/download:")

# --- tables --------------------------------------------------------------------------------------
st.subheader("Tables")
thresholds = report.thresholds
st.caption(f"Newest timestamp up to the end of {today:%d %b %Y} (later rows are counted by the accuracy checks). "
           f"Fresh within {thresholds.fresh_days} days, stale after {thresholds.stale_days}; tier changes and "
           "campaigns get a month more.")
st.dataframe(
    with_marks(report.tables),
    hide_index=True,
    column_order=["status", "table", "rows", "time_column", "newest", "days_since_newest"],
    column_config={
        "status": st.column_config.TextColumn("Worst check", width="small"),
        "table": st.column_config.TextColumn("Table"),
        "rows": st.column_config.NumberColumn("Rows", format="localized"),
        "time_column": st.column_config.TextColumn("Dated by"),
        "newest": st.column_config.DatetimeColumn("Newest", format="YYYY-MM-DD HH:mm"),
        "days_since_newest": st.column_config.NumberColumn("Days since", format="localized",
                                                           help=f"Days from the newest timestamp to {today:%d %b %Y}"),
    },
    placeholder="",
)

# --- retention ----------------------------------------------------------------------------------------
st.subheader("Past their retention period", help="Personal data and records MemberLens keeps only for a configured "
             "period (MEMBERLENS_RETENTION_* or [memberlens.retention] in secrets.toml); a privacy officer purges "
             "them on the Privacy requests page, or `python -m analytics privacy purge`.")
retained = retention_report(ctx.engine, state_engine(), retention_policy(), today)
st.dataframe(retained, hide_index=True, column_config={
    "item": "What", "period_days": st.column_config.NumberColumn("Kept (days)", format="localized"),
    "past_period": st.column_config.NumberColumn("Past the period", format="localized"),
    "oldest": st.column_config.DatetimeColumn("Oldest", format="YYYY-MM-DD"), "purge": "Purging"})
overdue = int(retained["past_period"].sum())
st.caption(f":material/auto_delete: **{overdue:,} item(s) are past their retention period.**" if overdue else
           ":material/check_circle: Nothing is past its retention period.")

# --- empty values ----------------------------------------------------------------------------------
st.subheader("Empty values per column")
nulls = report.columns
table_names = list(dict.fromkeys(nulls["table"]))
chosen = st.selectbox("Table", [ALL, *table_names], key="quality_null_table",
                      format_func=lambda t: "All tables" if t == ALL else t)
if chosen != ALL:
    nulls = nulls[nulls["table"] == chosen]
st.dataframe(
    nulls,
    hide_index=True,
    column_config={
        "table": st.column_config.TextColumn("Table"),
        "column": st.column_config.TextColumn("Column"),
        "required": st.column_config.CheckboxColumn("Required", help="NOT NULL in the warehouse contract: any empty "
                                                    "value fails the completeness check"),
        "rows": st.column_config.NumberColumn("Rows", format="localized"),
        "nulls": st.column_config.NumberColumn("Empty", format="localized"),
        "null_share": st.column_config.ProgressColumn("Empty share", format="percent", min_value=0.0, max_value=1.0),
    },
    placeholder="",
)
st.caption("Optional columns may be legitimately empty (a member without an email, an anonymous visitor's events).")

with st.expander("How the checks are defined"):
    for dimension in DIMENSIONS:
        st.markdown(f"**{label(dimension)}**: {DIMENSION_DESCRIPTIONS[dimension]}")
        st.markdown("\n".join(
            f"- `{c.table}{'.' + c.column if c.column else ''}` · {c.label}: {c.description}"
            for c in CHECKS if c.dimension == dimension))

