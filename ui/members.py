"""How member rows (always masked) look wherever a page lists them."""

from __future__ import annotations

import pandas as pd
import streamlit as st

MEMBER_COLUMN_CONFIG = {
    "member_id": "Member", "name": "Name", "phone": "Phone", "email": "Email", "tier": "Tier", "region": "Region",
    "city": "City", "registered_at": st.column_config.DatetimeColumn("Registered", format="YYYY-MM-DD"),
    "points_balance": st.column_config.NumberColumn("Points", format="localized"),
    "arm": st.column_config.TextColumn("Arm", help="Treatment: gets the message; control: held out to measure it."),
}


def member_table(preview: pd.DataFrame, column_config: dict | None = None) -> None:
    """A masked preview of members (from ``analytics.member_rows``), at most ten rows tall; ``column_config`` adds
    how the columns an audience annotates (scores, reasons) look."""
    own = [c for c in preview.columns if c in (column_config or {})]  # an audience's own columns come first
    order = ["member_id", *own, *(c for c in preview.columns if c not in own and c != "member_id")]
    st.dataframe(preview, hide_index=True, height=min(38 + 35 * len(preview), 388), column_order=order,
                 column_config={**MEMBER_COLUMN_CONFIG, **(column_config or {})})
