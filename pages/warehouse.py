"""Warehouse: which database MemberLens reads, whether it matches the contract, what it holds."""

from __future__ import annotations

import streamlit as st

from analytics.i18n import _, format_day
from analytics.storage.contract import expected_columns
from ui.cached import cached_schema_and_counts
from ui.context import page_inputs
from ui.warehouse import SOURCE_LABELS

ctx = page_inputs("warehouse")
st.title(_("Warehouse"))
st.caption(_("The database every MemberLens page reads. Analyses open it read-only; only an import you start on "
             "the Import data page writes to it."))

left, right = st.columns(2)
left.markdown(_("**URL** ({source})").format(source=_(SOURCE_LABELS[ctx.config.source]))
              + f"  \n`{ctx.config.display_url}`")
left.markdown(_("**Dialect** `{dialect}`  \n**Orders from** {first} **to** {last}").format(
    dialect=ctx.engine.dialect.name, first=format_day(ctx.span.first_day), last=format_day(ctx.span.last_day)))
right.markdown(
    _("**Use your own warehouse**: set `MEMBERLENS_WAREHOUSE_URL`, or `[connections.warehouse] url = \"...\"` in "
      "`.streamlit/secrets.toml`, to any SQLAlchemy URL whose database holds the tables below, e.g. "
      "`postgresql+psycopg://analyst:secret@db:5432/shop`.")
    + (" " + _("**Rebuild the demo**: `python -m analytics.synthetic --replace`, then press Refresh data.")
       if ctx.config.is_embedded_default else "")
)

report, overview = cached_schema_and_counts(ctx.engine)
if report.ok:
    st.success(_("Every table and column of the MemberLens contract is present."), icon=":material/check_circle:")
else:
    st.warning(_("The warehouse does not match the contract: {problems}.").format(problems=report.describe()),
               icon=":material/warning:")

contract = expected_columns()
overview["columns"] = overview["table"].map(lambda t: ", ".join(contract[t]))
st.dataframe(
    overview,
    hide_index=True,
    column_config={
        "table": st.column_config.TextColumn(_("Table")),
        "rows": st.column_config.NumberColumn(_("Rows"), format="localized"),
        "first": st.column_config.DatetimeColumn(_("First"), format="YYYY-MM-DD"),
        "last": st.column_config.DatetimeColumn(_("Last"), format="YYYY-MM-DD"),
        "columns": st.column_config.TextColumn(_("Contract columns"), width="large"),
    },
)
