"""Import data: load the shop's own transaction, clickstream or basket files into the warehouse."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pandas as pd
import streamlit as st

from analytics.access import IMPORT, REPLACE_DATA, allowed, require
from analytics.importers import (
    DELIMITERS,
    ENCODINGS,
    KINDS,
    ROLES,
    FilePreview,
    ImportOptions,
    ImportRefused,
    ImportResult,
    import_file,
    import_refusal,
    import_url,
    preview_file,
)
from analytics.privacy import safe_csv
from analytics.storage.warehouse import WarehouseError
from ui.app_state import record, record_quietly
from ui.cached import cached_import_history
from ui.context import page_inputs, reset_filters
from ui.format import label
from ui.uploads import import_folders, readable_server_path, saved_upload
from ui.warehouse import forget_warehouse

KIND_LABELS = {"transactions": "Sales transactions", "events": "Clickstream events", "baskets": "Baskets"}
KIND_HELP = {
    "transactions": "One row per invoice line: invoice number, stock code, quantity, date, unit price, customer, "
                    "country (UCI Online Retail and Online Retail II layouts are recognised). Invoices become "
                    "orders, customers members, stock codes products; cancellations (C…) become cancelled orders.",
    "events": "One row per event: time, type (view, cart, purchase…), visitor, session, product (REES46 and "
              "RetailRocket layouts are recognised). Each session gets a session_start event.",
    "baskets": "One basket per line, items separated by commas (the Groceries layout). Each basket becomes a "
               "guest order for basket analysis.",
}
DELIMITER_LABELS = {",": "Comma ( , )", ";": "Semicolon ( ; )", "\t": "Tab", "|": "Vertical bar ( | )",
                    "whitespace": "Spaces (aligned columns)"}
NOT_IN_FILE = "(not in the file)"
RESULT_KEY = "import_result"
PREVIEW_ROWS = 20
SHOWN_REJECTS = 1_000

CONFIRM_WORD = "REPLACE"
ctx = page_inputs("import_data")
if not allowed(ctx.principal, IMPORT):
    st.error("Your role does not import files.", icon=":material/block:")
    st.stop()
st.title("Import data")
st.caption(
    f"Load your shop's own exports into the warehouse `{ctx.config.display_url}`. An import lands whole or not "
    "at all, importing the same file again changes nothing, and rows left out are listed with the reason."
)

refusal = import_refusal(ctx.config.url)
if refusal is not None:  # said before anyone picks a file
    st.info(refusal.problem, icon=":material/lock:")
    st.caption(refusal.fix)
    st.stop()

kind = st.segmented_control("What the file holds", KINDS, default="transactions", format_func=KIND_LABELS.get,
                            key="import_kind", required=True)
st.caption(KIND_HELP[kind])

source_choice = st.radio("Where the file is", ["Upload", "A path on the server"], horizontal=True,
                         key="import_source", help="Upload for files up to 200 MB; a path for larger exports "
                         "already on the machine running MemberLens.")
path: Path | None = None
file_name: str | None = None
if source_choice == "Upload":
    upload = st.file_uploader("File (CSV, CSV.GZ or XLSX)", type=["csv", "gz", "xlsx", "txt"], key="import_upload")
    if upload is not None:
        path, file_name = saved_upload(upload), upload.name
else:
    folders = import_folders()
    typed = st.text_input("Path", key="import_path", placeholder=str(folders[-1] / "online_retail.csv.gz"),
                          help="Files in " + ", ".join(f"`{f}`" for f in folders) + " (add folders with "
                          "MEMBERLENS_IMPORT_DIRS).").strip()
    if typed:
        path, file_name = readable_server_path(typed), Path(typed).name
        if path is None:
            st.error(f"The app reads server files only from {', '.join(str(f) for f in folders)}.",
                     icon=":material/folder_off:")
            st.info("Move the file into one of those folders, add its folder to MEMBERLENS_IMPORT_DIRS, or upload "
                    "it.", icon=":material/lightbulb:")
            st.stop()

with st.expander("Reading options"):
    left, middle, right = st.columns(3)
    delimiter = left.selectbox("Delimiter", DELIMITERS, format_func=DELIMITER_LABELS.get, key="import_delimiter",
                               disabled=kind == "baskets", help="Baskets are always split at commas.")
    encoding = middle.selectbox("Encoding", ENCODINGS, key="import_encoding",
                                help="Excel on Windows often writes latin-1.")
    date_format = right.text_input(
        "Date format", key="import_date_format", placeholder="detected", disabled=kind == "baskets",
        help="Leave empty to detect it (ISO 8601, 12/31/2011 10:00, 31/12/2011 10:00, 31.12.2011, Unix time). "
             "Otherwise a strptime format such as %d/%m/%Y %H:%M.").strip() or None
    channel = left.text_input("Sales channel of these orders", key="import_channel", disabled=kind == "events",
                              placeholder="unknown", help="The files do not say where orders were placed; "
                              "name the channel (e.g. web) to see it in channel breakdowns.").strip() or None
    basket_date = middle.date_input("Day of the baskets", value=date.today(), key="import_basket_date",
                                    disabled=kind != "baskets", help="Baskets carry no date; they are all "
                                    "recorded on this day.")
    skip_bad_rows = right.checkbox(
        "Skip unreadable rows", key="import_skip_bad",
        help="Normally a row that cannot be read (a date that is not a date, text in a number column) stops the "
             "import, because it usually means a wrong mapping. Tick to load the other rows and list these.")

if path is None:
    st.info("Choose a file to see its first rows and how its columns will be read.", icon=":material/upload_file:")
    st.stop()

reading = ImportOptions(delimiter=delimiter, encoding=encoding, date_format=date_format)
try:
    with st.spinner("Reading the first rows…"):
        preview: FilePreview = preview_file(kind, path, reading, rows=PREVIEW_ROWS)
except ImportRefused as refused:
    st.error(refused.problem, icon=":material/error:")
    if refused.fix:
        st.info(refused.fix, icon=":material/lightbulb:")
    st.stop()

st.subheader("Preview")
described = f"Recognised layout: **{preview.layout}**. " if preview.layout else ""
sheets = f" Sheets: {', '.join(preview.sheets)}." if preview.sheets else ""
st.caption(f"{described}The first {len(preview.rows)} rows of {file_name}, as written in the file.{sheets}")
st.dataframe(preview.rows, hide_index=True, height=240)

mapping: dict[str, str | None] = {}
if ROLES[kind]:
    st.subheader("Columns")
    st.caption("Which column holds what. Guessed from the column names; change any that is wrong.")
    choices = [NOT_IN_FILE, *preview.columns]
    grid = st.columns(4)
    token = f"{kind}:{path}"
    for i, role in enumerate(ROLES[kind]):
        guessed = preview.mapping.get(role.name)
        picked = grid[i % 4].selectbox(
            role.label + (" *" if role.required else ""), choices,
            index=choices.index(guessed) if guessed in choices else 0,
            key=f"map:{token}:{role.name}", help=role.help)
        mapping[role.name] = None if picked == NOT_IN_FILE else picked
    missing = [r.label for r in ROLES[kind] if r.required and mapping[r.name] is None]
    if missing:
        st.warning(f"Choose a column for {', '.join(missing)} (marked *).", icon=":material/warning:")
else:
    missing = []

st.subheader("Import")
modes = ["add", "replace"] if allowed(ctx.principal, REPLACE_DATA) else ["add"]
mode = st.radio("Into the warehouse", modes, horizontal=True, key="import_mode",
                format_func={"add": "Add to what is there", "replace": "Replace all MemberLens data"}.get,
                help="Adding never touches rows this file does not concern. Replacing (admins only) first deletes "
                     "every order, member, product and event in the warehouse (the demo shop, or earlier imports).")
confirmed = True
if mode == "replace":
    confirmed = st.checkbox("I understand that all current data in the warehouse will be deleted.",
                            key="import_confirm_replace")
    typed = st.text_input(f"Type {CONFIRM_WORD} to confirm", key="import_confirm_word", max_chars=20)
    confirmed = confirmed and typed.strip() == CONFIRM_WORD
options = ImportOptions(mapping=mapping, delimiter=delimiter, encoding=encoding, date_format=date_format,
                        skip_bad_rows=skip_bad_rows, replace=mode == "replace", channel=channel,
                        basket_date=basket_date)

if st.button("Import", type="primary", icon=":material/download:", disabled=bool(missing) or not confirmed,
             key="import_go"):
    action = REPLACE_DATA if options.replace else IMPORT
    require(ctx.principal, action)
    # written first: an import (above all a replacement) never happens unrecorded
    record(ctx.principal, "replace_data" if options.replace else "import",
           {"page": "import_data", "file": file_name, "kind": kind, "replace": options.replace})
    forget_warehouse()  # release the read-only connection (DuckDB allows one writer) and stale results
    with st.status(f"Importing {file_name}…", expanded=True) as status:
        bar = st.progress(0.0)
        try:
            result = import_file(import_url(ctx.config.url), kind, path, options, file_name=file_name,
                                 progress=lambda fraction, message: bar.progress(fraction, text=message))
        except ImportRefused as refused:
            status.update(label=f"{file_name} was not imported; the warehouse is unchanged.", state="error")
            st.session_state[RESULT_KEY] = refused
        except WarehouseError as problem:
            status.update(label="The warehouse could not be written; nothing changed.", state="error")
            st.session_state[RESULT_KEY] = problem
        else:
            done = "was imported before: nothing changed" if result.already_imported else "is imported"
            status.update(label=f"{file_name} {done}.", state="complete", expanded=False)
            st.session_state[RESULT_KEY] = result
            record_quietly(ctx.principal, "import_committed",  # committed: reported as such whatever happens
                   {"page": "import_data", "file": file_name, "kind": kind, "replace": options.replace,
                    "rows": result.rows_accepted, "inserted": result.inserted,
                    "already_imported": result.already_imported is not None})
            if any(result.inserted.values()):
                reset_filters()  # from the next run on, the sidebar's dates follow the new data


def show_rejects(rejected: pd.DataFrame, name: str) -> None:
    frame = rejected.dropna(axis=1, how="all") if rejected["sheet"].isna().all() else rejected
    st.dataframe(frame.head(SHOWN_REJECTS), hide_index=True, height=260, column_config={
        "row": st.column_config.NumberColumn("Row", help="As a spreadsheet numbers it: the header is row 1."),
    })
    if len(rejected) > SHOWN_REJECTS:
        st.caption(f"The first {SHOWN_REJECTS:,} of {len(rejected):,}; download them all.")
    st.download_button("Download rejected rows (CSV)", lambda: safe_csv(rejected),  # built on click
                       file_name=f"{name}.rejected.csv",
                       mime="text/csv", icon=":material/download:", key="import_rejects_download")


outcome = st.session_state.get(RESULT_KEY)
if isinstance(outcome, ImportRefused):
    st.error(outcome.problem, icon=":material/error:")
    if outcome.fix:
        st.info(outcome.fix, icon=":material/lightbulb:")
    if not outcome.rejected.empty:
        show_rejects(outcome.rejected, file_name or "import")
elif isinstance(outcome, WarehouseError):
    st.error(outcome.problem, icon=":material/database_off:")
    if outcome.fix:
        st.info(outcome.fix, icon=":material/lightbulb:")
elif isinstance(outcome, ImportResult):
    if outcome.already_imported:
        previous = outcome.already_imported
        st.info(f"{outcome.file_name} was imported on {previous.imported_at:%d %b %Y %H:%M}; importing it again "
                "changes nothing.", icon=":material/check_circle:")
    else:
        st.success(f"{outcome.file_name}: {outcome.rows_accepted:,} of {outcome.rows_read:,} rows imported.",
                   icon=":material/check_circle:")
        cols = st.columns(4)
        cols[0].metric("Rows read", f"{outcome.rows_read:,}")
        cols[1].metric("Rows left out", f"{outcome.rows_rejected:,}", help="Listed below with the reason.")
        main_table = "events" if outcome.kind == "events" else "orders"
        cols[2].metric(f"New {main_table}", f"{outcome.inserted.get(main_table, 0):,}")
        cols[3].metric("Already in the warehouse", f"{outcome.already_present.get(main_table, 0):,}",
                       help="Rows whose id was there before (an overlapping file): kept as they were.")
        if outcome.date_format:
            st.caption(f"Dates read as {outcome.date_format}.")
        left, right = st.columns(2)
        left.markdown("**New rows per table**")
        left.dataframe(pd.DataFrame({"table": list(outcome.inserted), "new rows": list(outcome.inserted.values())}),
                       hide_index=True)
        right.markdown("**The file's figures** (check them against your source)")
        right.dataframe(pd.DataFrame({"figure": [label(k) for k in outcome.summary],
                                      "value": [f"{v:,}" if isinstance(v, int | float) else str(v)
                                                for v in outcome.summary.values()]}), hide_index=True)
        if outcome.rows_rejected:
            st.markdown("**Rows left out**")
            st.dataframe(outcome.rejected_by_reason(), hide_index=True)
            show_rejects(outcome.rejected, outcome.file_name)
        st.page_link("pages/executive_kpis.py", label="See the figures on Executive KPIs", icon=":material/monitoring:")
        st.caption("The sidebar's date range moves to the new data on your next click.")

st.subheader("Earlier imports")
history = cached_import_history(ctx.engine)
if history.empty:
    st.caption("Nothing has been imported into this warehouse yet.")
else:
    st.dataframe(history, hide_index=True, column_config={
        "imported_at": st.column_config.DatetimeColumn("Imported", format="YYYY-MM-DD HH:mm"),
        "rows_read": st.column_config.NumberColumn("Rows read", format="localized"),
        "rows_rejected": st.column_config.NumberColumn("Rows left out", format="localized"),
    })
