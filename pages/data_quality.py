"""Data quality: is the warehouse complete, accurate and timely?

Every check and its status rule is defined in :mod:`analytics.quality`; this page only draws the
report. It covers the whole warehouse, so the sidebar's date, channel and tier filters do not apply.
"""

from __future__ import annotations

from datetime import date

import pandas as pd
import streamlit as st
from pandas.io.formats.style import Styler

from analytics.i18n import N_, _, format_day, language
from analytics.privacy import safe_csv
from analytics.privacy_rights import retention_policy
from analytics.quality import CHECKS, DIMENSION_DESCRIPTIONS, DIMENSION_LABELS, DIMENSIONS, STATUS_COUNTS
from ui.cached import cached_quality_report, cached_retention_report
from ui.context import page_inputs, warn_about_ignored_link_values

# Text symbols (not emoji): they render in every font, and the cell colour carries the meaning too.
MARKS = {"pass": N_("✔ Pass"), "warn": N_("⚠ Warn"), "fail": N_("✖ Fail")}
MARK_STYLES = {
    "pass": "color: #1B5E20; background-color: #E8F5E9",
    "warn": "color: #7A5200; background-color: #FFF3CD",
    "fail": "color: #B71C1C; background-color: #FDECEA; font-weight: bold",
}
SEVERITY = {"fail": 0, "warn": 1, "pass": 2}
ALL = "all"
#: The headers of the downloaded checks in another language than English, as the table above names them (in
#: English the file keeps the report's own column names, as the command line writes them).
CHECK_HEADERS = {"key": N_("Key"), "dimension": N_("Dimension"), "table": N_("Table"), "check": N_("Check"),
                 "column": N_("Column"), "affected_rows": N_("Affected rows"), "share": N_("Share"),
                 "status": N_("Status"), "detail": N_("Finding"), "definition": N_("Definition")}


def with_marks(frame: pd.DataFrame) -> Styler:
    """The frame with its status column as a coloured mark."""
    marks = {status: _(mark) for status, mark in MARKS.items()}
    styles = {marks[status]: style for status, style in MARK_STYLES.items()}
    shown = frame.assign(status=frame["status"].map(marks))
    return shown.style.map(styles.get, subset=["status"])


def dimension_label(dimension: str) -> str:
    return _("All") if dimension == ALL else _(DIMENSION_LABELS[dimension])


def counted(status: str, n: int) -> str:
    return _(STATUS_COUNTS[status]).format(n=n)


def for_download(frame: pd.DataFrame) -> pd.DataFrame:
    """The checks as the CSV file holds them: headers in the reader's language (English: the column names)."""
    if language() == "en":
        return frame
    return frame.rename(columns={column: _(header) for column, header in CHECK_HEADERS.items()})


ctx = page_inputs("data_quality")
st.title(_("Data quality"))
st.caption(_("Every contract table of the warehouse, whole history. The sidebar filters do not apply here: a problem "
             "anywhere in a table affects every period."))
warn_about_ignored_link_values({"quality_dimension": {dimension_label(d) for d in (ALL, *DIMENSIONS)}})
left, right = st.columns([1, 3], vertical_alignment="bottom")
today = left.date_input(
    _("As of"), value=date.today(), key="quality_as_of", bind="query-params", format="YYYY-MM-DD",
    help=_("The day freshness is measured against; timestamps after the end of this day count as in the future."),
) or date.today()
if today > ctx.span.last_day:
    right.caption(_("The newest order is from {day}: a snapshot (the demo shop, an import) grows stale as time "
                    "passes. To judge the data as it was then, set “As of” to that day.").format(
        day=format_day(ctx.span.last_day)))

report = cached_quality_report(ctx.engine, today)
checks = report.checks
counts = report.counts()

# --- verdict -------------------------------------------------------------------------------------
fails = (_("{n} check fails") if counts["fail"] == 1 else _("{n} checks fail")).format(n=counts["fail"])
warns = (_("{n} warns") if counts["warn"] == 1 else _("{n} warn")).format(n=counts["warn"])
verdict = _("{fails}, {warns}, {passes}.").format(fails=fails, warns=warns, passes=counted("pass", counts["pass"]))
if counts["fail"]:
    st.error(_("**Fix before trusting the figures.** {verdict}").format(verdict=verdict), icon=":material/error:")
elif counts["warn"]:
    st.warning(_("**Usable, with caveats.** {verdict}").format(verdict=verdict), icon=":material/warning:")
else:
    st.success(_("**Complete, accurate and timely.** {verdict}").format(verdict=verdict),
               icon=":material/check_circle:")

for column, dimension in zip(st.columns(len(DIMENSIONS)), DIMENSIONS, strict=True):
    found = report.counts(dimension)
    problems = [counted(s, found[s]) for s in ("fail", "warn") if found[s]]
    column.metric(
        dimension_label(dimension),
        _("{passed} of {total} pass").format(passed=found["pass"], total=sum(found.values())),
        delta=", ".join(problems) or None,
        delta_color="inverse" if found["fail"] else "off",
        delta_arrow="off",
        help=_(DIMENSION_DESCRIPTIONS[dimension]),
        border=True,
    )

# --- checks --------------------------------------------------------------------------------------
st.subheader(_("Checks"))
left, right = st.columns([3, 2], vertical_alignment="bottom")
picked = left.segmented_control(
    _("Dimension"), [ALL, *DIMENSIONS], default=ALL, key="quality_dimension", bind="query-params",
    format_func=dimension_label,
    help=_("Complete: everything is there. Accurate: the values are right. Timely: the data is current."),
) or ALL
problems_only = right.toggle(_("Only warnings and failures"), key="quality_problems_only",
                             value=bool(counts["fail"] or counts["warn"]))
shown = checks if picked == ALL else checks[checks["dimension"] == picked]
if problems_only:
    shown = shown[shown["status"] != "pass"]
shown = shown.iloc[shown["status"].map(SEVERITY).argsort(kind="stable")]
shown = shown.assign(dimension=shown["dimension"].map(dimension_label))
if shown.empty:
    st.info(_("No warnings or failures here: switch off “Only warnings and failures” to see every check."),
            icon=":material/task_alt:")
else:
    st.dataframe(
        with_marks(shown),
        hide_index=True,
        column_order=["status", "dimension", "table", "column", "check", "affected_rows", "share", "detail",
                      "definition"],
        column_config={
            "status": st.column_config.TextColumn(_("Status"), width="small"),
            "dimension": st.column_config.TextColumn(_("Dimension"), width="small"),
            "table": st.column_config.TextColumn(_("Table")),
            "column": st.column_config.TextColumn(_("Column")),
            "check": st.column_config.TextColumn(
                _("Check"), width="medium",
                help=_("What is checked; the Definition column says why and when it fails")),
            "affected_rows": st.column_config.NumberColumn(_("Affected rows"), format="localized",
                                                           help=_("Rows that fail the check")),
            "share": st.column_config.NumberColumn(_("Share"), format="percent",
                                                   help=_("Affected rows ÷ the table's rows")),
            "detail": st.column_config.TextColumn(_("Finding"), width="large",
                                                  help=_("What was found, and the rule that set the status")),
            "definition": st.column_config.TextColumn(_("Definition"), width="large"),
        },
        key="quality_checks",
        placeholder="",
    )
    st.download_button(_("Download the checks (CSV)"),
                       safe_csv(for_download(checks)),
                       file_name=f"memberlens_quality_{today}.csv", mime="text/csv", icon=":material/download:")

# --- tables --------------------------------------------------------------------------------------
st.subheader(_("Tables"))
thresholds = report.thresholds
st.caption(_("Newest timestamp up to the end of {day} (later rows are counted by the accuracy checks). Fresh within "
             "{fresh} days, stale after {stale}; tier changes and campaigns get a month more.").format(
    day=format_day(today), fresh=thresholds.fresh_days, stale=thresholds.stale_days))
st.dataframe(
    with_marks(report.tables),
    hide_index=True,
    column_order=["status", "table", "rows", "time_column", "newest", "days_since_newest"],
    column_config={
        "status": st.column_config.TextColumn(_("Worst check"), width="small"),
        "table": st.column_config.TextColumn(_("Table")),
        "rows": st.column_config.NumberColumn(_("Rows"), format="localized"),
        "time_column": st.column_config.TextColumn(_("Dated by")),
        "newest": st.column_config.DatetimeColumn(_("Newest"), format="YYYY-MM-DD HH:mm"),
        "days_since_newest": st.column_config.NumberColumn(
            _("Days since"), format="localized",
            help=_("Days from the newest timestamp to {day}").format(day=format_day(today))),
    },
    placeholder="",
)

# --- retention ----------------------------------------------------------------------------------------
st.subheader(_("Past their retention period"), help=_(
    "Personal data and records MemberLens keeps only for a configured period (MEMBERLENS_RETENTION_* or "
    "[memberlens.retention] in secrets.toml); a privacy officer purges them on the Privacy requests page, or "
    "`python -m analytics privacy purge`."))
retained = cached_retention_report(ctx.engine, retention_policy(), today)
retained = retained.assign(item=retained["item"].map(_), purge=retained["purge"].map(_))  # privacy's own texts
st.dataframe(retained, hide_index=True, column_config={
    "item": _("What"), "period_days": st.column_config.NumberColumn(_("Kept (days)"), format="localized"),
    "past_period": st.column_config.NumberColumn(_("Past the period"), format="localized"),
    "oldest": st.column_config.DatetimeColumn(_("Oldest"), format="YYYY-MM-DD"), "purge": _("Purging")},
    placeholder="")
overdue = int(retained["past_period"].sum())
st.caption(":material/auto_delete: " + _("**{n} item(s) are past their retention period.**").format(n=f"{overdue:,}")
           if overdue else ":material/check_circle: " + _("Nothing is past its retention period."))

# --- empty values ----------------------------------------------------------------------------------
st.subheader(_("Empty values per column"))
nulls = report.columns
table_names = list(dict.fromkeys(nulls["table"]))
chosen = st.selectbox(_("Table"), [ALL, *table_names], key="quality_null_table",
                      format_func=lambda t: _("All tables") if t == ALL else t)
if chosen != ALL:
    nulls = nulls[nulls["table"] == chosen]
st.dataframe(
    nulls,
    hide_index=True,
    column_config={
        "table": st.column_config.TextColumn(_("Table")),
        "column": st.column_config.TextColumn(_("Column")),
        "required": st.column_config.CheckboxColumn(_("Required"), help=_(
            "NOT NULL in the warehouse contract: any empty value fails the completeness check")),
        "rows": st.column_config.NumberColumn(_("Rows"), format="localized"),
        "nulls": st.column_config.NumberColumn(_("Empty"), format="localized"),
        "null_share": st.column_config.ProgressColumn(_("Empty share"), format="percent", min_value=0.0,
                                                      max_value=1.0),
    },
    placeholder="",
)
st.caption(_("Optional columns may be legitimately empty (a member without an email, an anonymous visitor's "
             "events)."))

with st.expander(_("How the checks are defined")):
    for dimension in DIMENSIONS:
        st.markdown(f"**{dimension_label(dimension)}**: {_(DIMENSION_DESCRIPTIONS[dimension])}")
        st.markdown("\n".join(
            f"- `{c.table}{'.' + c.column if c.column else ''}` · {c.label}: {c.description}"
            for c in CHECKS if c.dimension == dimension))

