"""Import data: load the shop's own transaction, clickstream or basket files into the warehouse."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pandas as pd
import streamlit as st

from analytics.access import IMPORT, REPLACE_DATA, allowed, require
from analytics.i18n import N_, _, format_day, language
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
from ui.uploads import import_folders, readable_server_path, saved_upload
from ui.warehouse import forget_warehouse

KIND_LABELS = {"transactions": N_("Sales transactions"), "events": N_("Clickstream events"), "baskets": N_("Baskets")}
KIND_HELP = {
    "transactions": N_("One row per invoice line: invoice number, stock code, quantity, date, unit price, customer, "
                       "country ({layouts} layouts are recognised). Invoices become orders, customers members, stock "
                       "codes products; cancellations (C…) become cancelled orders."),
    "events": N_("One row per event: time, type (view, cart, purchase…), visitor, session, product ({layouts} "
                 "layouts are recognised). Each session gets a session_start event."),
    "baskets": N_("One basket per line, items separated by commas (the Groceries layout). Each basket becomes a "
                  "guest order for basket analysis."),
}
DELIMITER_LABELS = {",": N_("Comma ( , )"), ";": N_("Semicolon ( ; )"), "\t": N_("Tab"),
                    "|": N_("Vertical bar ( | )"), "whitespace": N_("Spaces (aligned columns)")}
#: The figures an import reports about its file, as a reader names them (a figure not listed reads as its key).
FIGURE_LABELS = {
    "orders": N_("Orders"), "cancelled_orders": N_("Cancelled orders"), "returned_orders": N_("Returned orders"),
    "guest_orders": N_("Guest orders"), "members": N_("Members"), "completed_net_sales": N_("Completed net sales"),
    "order_lines": N_("Order lines"), "products": N_("Products"), "first_order_at": N_("First order at"),
    "last_order_at": N_("Last order at"), "events": N_("Events"), "sessions": N_("Sessions"),
    "visitors": N_("Visitors"), "first_event_at": N_("First event at"), "last_event_at": N_("Last event at"),
    "baskets": N_("Baskets"), "items": N_("Items"),
}
#: The rejected rows' columns as the table and the downloaded file name them.
REJECT_HEADERS = {"sheet": N_("Sheet"), "row": N_("Row"), "column": N_("Column"), "value": N_("Value"),
                  "reason": N_("Reason")}
NOT_IN_FILE = N_("(not in the file)")
RESULT_KEY = "import_result"
PREVIEW_ROWS = 20
SHOWN_REJECTS = 1_000

CONFIRM_WORD = "REPLACE"


def figure_label(key: str) -> str:
    """A figure of the file's summary as a reader names it: ``cancelled_orders`` -> ``Cancelled orders``."""
    known = FIGURE_LABELS.get(key)
    return _(known) if known else key.replace("_", " ").capitalize()


ctx = page_inputs("import_data")
if not allowed(ctx.principal, IMPORT):
    st.error(_("Your role does not import files."), icon=":material/block:")
    st.stop()
st.title(_("Import data"))
st.caption(
    _("Load your shop's own exports into the warehouse {url}. An import lands whole or not at all, importing the "
      "same file again changes nothing, and rows left out are listed with the reason.").format(
        url=f"`{ctx.config.display_url}`")
)

refusal = import_refusal(ctx.config.url)
if refusal is not None:  # said before anyone picks a file
    st.info(refusal.problem, icon=":material/lock:")
    st.caption(refusal.fix)
    st.stop()

kind = st.segmented_control(_("What the file holds"), KINDS, default="transactions",
                            format_func=lambda k: _(KIND_LABELS[k]), key="import_kind", required=True)
#: The well-known layouts each kind's help names (names of data sets, as they are written everywhere).
KIND_LAYOUTS = {"transactions": ("UCI Online Retail", "Online Retail II"), "events": ("REES46", "RetailRocket")}
st.caption(_(KIND_HELP[kind]).format(layouts=_(" and ").join(KIND_LAYOUTS.get(kind, ()))))

SOURCES = {"Upload": N_("Upload"), "A path on the server": N_("A path on the server")}
source_choice = st.radio(_("Where the file is"), list(SOURCES), horizontal=True, format_func=lambda o: _(SOURCES[o]),
                         key="import_source", help=_("Upload for files up to 200 MB; a path for larger exports "
                                                     "already on the machine running MemberLens."))
path: Path | None = None
file_name: str | None = None
if source_choice == "Upload":
    upload = st.file_uploader(_("File (CSV, CSV.GZ or XLSX)"), type=["csv", "gz", "xlsx", "txt"],
                              key="import_upload")
    if upload is not None:
        path, file_name = saved_upload(upload), upload.name
else:
    folders = import_folders()
    typed = st.text_input(_("Path"), key="import_path", placeholder=str(folders[-1] / "online_retail.csv.gz"),
                          help=_("Files in {folders} (add folders with MEMBERLENS_IMPORT_DIRS).").format(
                              folders=", ".join(f"`{f}`" for f in folders))).strip()
    if typed:
        path, file_name = readable_server_path(typed), Path(typed).name
        if path is None:
            st.error(_("The app reads server files only from {folders}.").format(
                folders=", ".join(str(f) for f in folders)), icon=":material/folder_off:")
            st.info(_("Move the file into one of those folders, add its folder to MEMBERLENS_IMPORT_DIRS, or upload "
                      "it."), icon=":material/lightbulb:")
            st.stop()

with st.expander(_("Reading options")):
    left, middle, right = st.columns(3)
    delimiter = left.selectbox(_("Delimiter"), DELIMITERS, format_func=lambda d: _(DELIMITER_LABELS[d]),
                               key="import_delimiter", disabled=kind == "baskets",
                               help=_("Baskets are always split at commas."))
    encoding = middle.selectbox(_("Encoding"), ENCODINGS, key="import_encoding",
                                help=_("Excel on Windows often writes latin-1."))
    date_format = right.text_input(
        _("Date format"), key="import_date_format", placeholder=_("detected"), disabled=kind == "baskets",
        help=_("Leave empty to detect it (ISO 8601, 12/31/2011 10:00, 31/12/2011 10:00, 31.12.2011, Unix time). "
               "Otherwise a strptime format such as {example}.").format(example="%d/%m/%Y %H:%M")).strip() or None
    channel = left.text_input(_("Sales channel of these orders"), key="import_channel", disabled=kind == "events",
                              placeholder=_("unknown"), help=_("The files do not say where orders were placed; "
                                                               "name the channel (e.g. web) to see it in channel "
                                                               "breakdowns.")).strip() or None
    basket_date = middle.date_input(_("Day of the baskets"), value=date.today(), key="import_basket_date",
                                    disabled=kind != "baskets", help=_("Baskets carry no date; they are all "
                                                                       "recorded on this day."))
    skip_bad_rows = right.checkbox(
        _("Skip unreadable rows"), key="import_skip_bad",
        help=_("Normally a row that cannot be read (a date that is not a date, text in a number column) stops the "
               "import, because it usually means a wrong mapping. Tick to load the other rows and list these."))

if path is None:
    st.info(_("Choose a file to see its first rows and how its columns will be read."),
            icon=":material/upload_file:")
    st.stop()

reading = ImportOptions(delimiter=delimiter, encoding=encoding, date_format=date_format)
try:
    with st.spinner(_("Reading the first rows…")):
        preview: FilePreview = preview_file(kind, path, reading, rows=PREVIEW_ROWS)
except ImportRefused as refused:
    st.error(refused.problem, icon=":material/error:")
    if refused.fix:
        st.info(refused.fix, icon=":material/lightbulb:")
    st.stop()

st.subheader(_("Preview"))
described = _("Recognised layout: **{layout}**.").format(layout=preview.layout) + " " if preview.layout else ""
sheets = " " + _("Sheets: {sheets}.").format(sheets=", ".join(preview.sheets)) if preview.sheets else ""
st.caption(described + _("The first {n} rows of {file}, as written in the file.").format(
    n=len(preview.rows), file=file_name) + sheets)
st.dataframe(preview.rows, hide_index=True, height=240)

mapping: dict[str, str | None] = {}
if ROLES[kind]:
    st.subheader(_("Columns"))
    st.caption(_("Which column holds what. Guessed from the column names; change any that is wrong."))
    choices = [NOT_IN_FILE, *preview.columns]
    grid = st.columns(4)
    token = f"{kind}:{path}"
    for i, role in enumerate(ROLES[kind]):
        guessed = preview.mapping.get(role.name)
        picked = grid[i % 4].selectbox(
            _(role.label) + (" *" if role.required else ""), choices,
            index=choices.index(guessed) if guessed in choices else 0,
            format_func=lambda c: _(NOT_IN_FILE) if c == NOT_IN_FILE else c,
            key=f"map:{token}:{role.name}", help=_(role.help))
        mapping[role.name] = None if picked == NOT_IN_FILE else picked
    missing = [_(r.label) for r in ROLES[kind] if r.required and mapping[r.name] is None]
    if missing:
        st.warning(_("Choose a column for {roles} (marked *).").format(roles=", ".join(missing)),
                   icon=":material/warning:")
else:
    missing = []

st.subheader(_("Import"))
modes = ["add", "replace"] if allowed(ctx.principal, REPLACE_DATA) else ["add"]
MODE_LABELS = {"add": N_("Add to what is there"), "replace": N_("Replace all MemberLens data")}
mode = st.radio(_("Into the warehouse"), modes, horizontal=True, key="import_mode",
                format_func=lambda m: _(MODE_LABELS[m]),
                help=_("Adding never touches rows this file does not concern. Replacing (admins only) first deletes "
                       "every order, member, product and event in the warehouse (the demo shop, or earlier "
                       "imports)."))
confirmed = True
if mode == "replace":
    confirmed = st.checkbox(_("I understand that all current data in the warehouse will be deleted."),
                            key="import_confirm_replace")
    typed = st.text_input(_("Type {word} to confirm").format(word=CONFIRM_WORD), key="import_confirm_word",
                          max_chars=20)
    confirmed = confirmed and typed.strip() == CONFIRM_WORD
options = ImportOptions(mapping=mapping, delimiter=delimiter, encoding=encoding, date_format=date_format,
                        skip_bad_rows=skip_bad_rows, replace=mode == "replace", channel=channel,
                        basket_date=basket_date)

if st.button(_("Import"), type="primary", icon=":material/download:", disabled=bool(missing) or not confirmed,
             key="import_go"):
    action = REPLACE_DATA if options.replace else IMPORT
    require(ctx.principal, action)
    # written first: an import (above all a replacement) never happens unrecorded
    record(ctx.principal, "replace_data" if options.replace else "import",
           {"page": "import_data", "file": file_name, "kind": kind, "replace": options.replace})
    forget_warehouse()  # release the read-only connection (DuckDB allows one writer) and stale results
    with st.status(_("Importing {file}…").format(file=file_name), expanded=True) as status:
        bar = st.progress(0.0)
        try:
            result = import_file(import_url(ctx.config.url), kind, path, options, file_name=file_name,
                                 progress=lambda fraction, message: bar.progress(fraction, text=message))
        except ImportRefused as refused:
            status.update(label=_("{file} was not imported; the warehouse is unchanged.").format(file=file_name),
                          state="error")
            st.session_state[RESULT_KEY] = refused
        except WarehouseError as problem:
            status.update(label=_("The warehouse could not be written; nothing changed."), state="error")
            st.session_state[RESULT_KEY] = problem
        else:
            done = (_("{file} was imported before: nothing changed.") if result.already_imported
                    else _("{file} is imported.")).format(file=file_name)
            status.update(label=done, state="complete", expanded=False)
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
        **{column: _(header) for column, header in REJECT_HEADERS.items()},
        "row": st.column_config.NumberColumn(_("Row"), help=_("As a spreadsheet numbers it: the header is row 1.")),
    })
    if len(rejected) > SHOWN_REJECTS:
        st.caption(_("The first {shown} of {total}; download them all.").format(shown=f"{SHOWN_REJECTS:,}",
                                                                                total=f"{len(rejected):,}"))
    downloaded = rejected if language() == "en" else rejected.rename(
        columns={column: _(header) for column, header in REJECT_HEADERS.items()})
    st.download_button(_("Download rejected rows (CSV)"), lambda: safe_csv(downloaded),  # built on click
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
        st.info(_("{file} was imported on {when}; importing it again changes nothing.").format(
            file=outcome.file_name, when=f"{format_day(previous.imported_at.date())} {previous.imported_at:%H:%M}"),
            icon=":material/check_circle:")
    else:
        st.success(_("{file}: {accepted} of {read} rows imported.").format(
            file=outcome.file_name, accepted=f"{outcome.rows_accepted:,}", read=f"{outcome.rows_read:,}"),
            icon=":material/check_circle:")
        cols = st.columns(4)
        cols[0].metric(_("Rows read"), f"{outcome.rows_read:,}")
        cols[1].metric(_("Rows left out"), f"{outcome.rows_rejected:,}", help=_("Listed below with the reason."))
        main_table = "events" if outcome.kind == "events" else "orders"
        cols[2].metric(_("New events") if main_table == "events" else _("New orders"),
                       f"{outcome.inserted.get(main_table, 0):,}")
        cols[3].metric(_("Already in the warehouse"), f"{outcome.already_present.get(main_table, 0):,}",
                       help=_("Rows whose id was there before (an overlapping file): kept as they were."))
        if outcome.date_format:
            st.caption(_("Dates read as {format}.").format(format=_(outcome.date_format)))
        left, right = st.columns(2)
        left.markdown(_("**New rows per table**"))
        left.dataframe(pd.DataFrame({"table": list(outcome.inserted), "new rows": list(outcome.inserted.values())}),
                       hide_index=True, column_config={"table": _("Table"), "new rows": _("New rows")})
        right.markdown(_("**The file's figures** (check them against your source)"))
        right.dataframe(pd.DataFrame({"figure": [figure_label(k) for k in outcome.summary],
                                      "value": [f"{v:,}" if isinstance(v, int | float) else str(v)
                                                for v in outcome.summary.values()]}), hide_index=True,
                        column_config={"figure": _("Figure"), "value": _("Value")})
        if outcome.rows_rejected:
            st.markdown(_("**Rows left out**"))
            st.dataframe(outcome.rejected_by_reason(), hide_index=True,
                         column_config={"reason": _("Reason"), "rows": _("Rows")})
            show_rejects(outcome.rejected, outcome.file_name)
        st.page_link("pages/executive_kpis.py", label=_("See the figures on Executive KPIs"),
                     icon=":material/monitoring:")
        st.caption(_("The sidebar's date range moves to the new data on your next click."))

st.subheader(_("Earlier imports"))
history = cached_import_history(ctx.engine)
if history.empty:
    st.caption(_("Nothing has been imported into this warehouse yet."))
else:
    st.dataframe(history.assign(kind=history["kind"].map(lambda k: _(KIND_LABELS.get(k, k)))), hide_index=True,
                 column_config={
        "imported_at": st.column_config.DatetimeColumn(_("Imported"), format="YYYY-MM-DD HH:mm"),
        "kind": _("What the file holds"), "file_name": _("File"),
        "rows_read": st.column_config.NumberColumn(_("Rows read"), format="localized"),
        "rows_rejected": st.column_config.NumberColumn(_("Rows left out"), format="localized"),
        "import_id": _("Import id"), "fingerprint": _("Fingerprint"),
    })
