"""Campaign targeting: who exactly gets a campaign, how many we can reach, and the control group."""

from __future__ import annotations

import json

import pandas as pd
import plotly.express as px
import streamlit as st

from analytics.targeting import CHANNELS, FIELDS, KIND, OPERATORS, SPEC_VERSION, SpecError, condition_from_text
from ui.cached import audience_members_csv, cached_audience_members, cached_audience_preview
from ui.context import page_inputs
from ui.members import member_table

PREVIEW_ROWS = 100
TYPED_FIELDS = {key: f.label for key, f in FIELDS.items() if f.kind != "spec"}
LABEL_TO_FIELD = {label: key for key, label in TYPED_FIELDS.items()}
OPERATOR_TO_KEY = {label: key for key, label in OPERATORS.items()}
STARTER = pd.DataFrame([
    {"not": False, "field": "Tier", "operator": "is one of", "values": "gold, diamond"},
    {"not": False, "field": "Days since last order", "operator": "between", "values": "0 - 90"},
])
ctx = page_inputs()
filters = ctx.filters

st.title("Campaign targeting")
st.caption(f"Build the audience from conditions; behaviour is read from {filters.start:%d %b %Y} to "
           f"{filters.end:%d %b %Y} (the date range), which is also the reference day for ages and recency.")

with st.container(border=True):
    match = st.segmented_control("Members must match", ["all", "any"], default="all", key="target_match",
                                 required=True, format_func={"all": "all conditions (AND)",
                                                             "any": "any condition (OR)"}.get)
    edited = st.data_editor(STARTER, num_rows="dynamic", key="target_conditions", hide_index=True, column_config={
        "not": st.column_config.CheckboxColumn("NOT", help="Keep the members who do NOT match this row.",
                                               default=False, width="small"),
        "field": st.column_config.SelectboxColumn("Field", options=list(TYPED_FIELDS.values()), required=True,
                                                  help=" ".join(f"**{f.label}**: {f.help}" for f in FIELDS.values()
                                                                if f.kind != "spec")),
        "operator": st.column_config.SelectboxColumn("Operator", options=list(OPERATORS.values()), required=True),
        "values": st.column_config.TextColumn("Values", help="A list: values separated by commas (gold, diamond). "
                                              "A range: low - high, either side may be empty (100 - , 2025-01-01 - "
                                              "2025-06-30).", width="large"),
    })
    uploads = st.file_uploader("Members of audiences exported by other pages (JSON)", type="json",
                               accept_multiple_files=True, key="target_uploads",
                               help="RFM segments, clusters, tags, funnel drop-offs and basket rules each offer "
                                    "'Download the audience definition'. Each file adds a condition: member of it.")
    left, middle, right, last = st.columns(4)
    holdout = left.slider("Control group", 0, 50, 10, format="%d%%", key="target_holdout",
                          help="Share held out (no message) to measure the campaign: a hash of member id and "
                               "campaign key, the same every time.") / 100
    key = middle.text_input("Campaign key", "campaign", key="target_key", max_chars=200,
                            help="Names the control split: the same key keeps the same arms.")
    cap = right.number_input("Frequency cap (days)", 0, 365, 7, key="target_cap",
                             help="Leave out members sent any campaign in these last days (0 = no cap).")
    size = last.number_input("Maximum audience", 0, 10_000_000, 0, step=1000, key="target_max",
                             help="Keep at most this many (0 = everyone); chosen by the same hash, so unbiased.")

problems: list[str] = []
conditions = []
for number, row in enumerate(edited.to_dict("records"), start=1):
    if not row.get("field") or not row.get("operator"):
        continue
    try:
        conditions.append(condition_from_text(LABEL_TO_FIELD[row["field"]], OPERATOR_TO_KEY[row["operator"]],
                                              str(row.get("values") or ""), bool(row.get("not"))))
    except SpecError as problem:
        problems.append(f"Row {number}: {problem}")
for upload in uploads or []:
    try:
        conditions.append({"field": "segment", "op": "in", "value": json.loads(upload.getvalue())})
    except (json.JSONDecodeError, UnicodeDecodeError):
        problems.append(f"{upload.name} is not a JSON audience definition.")
for problem in problems:
    st.error(problem, icon=":material/rule:")
if problems:  # sizes without the rows in error would mislead; the table keeps what was typed
    st.stop()

spec = {"version": SPEC_VERSION, "kind": KIND, "start": filters.start.isoformat(), "end": filters.end.isoformat(),
        "rules": {"match": match, "conditions": conditions}, "frequency_cap_days": int(cap) or None,
        "max_size": int(size) or None, "holdout": holdout, "campaign_key": key}
spec_json = json.dumps(spec, ensure_ascii=False, sort_keys=True)
try:
    sizes = cached_audience_preview(ctx.engine, ctx.url, spec_json)
except SpecError as problem:
    st.error(str(problem), icon=":material/rule:")
    st.stop()

cards = st.columns(4)
cards[0].metric("Matching", f"{sizes.matching:,}", border=True, help="Members matching the conditions.")
cards[1].metric("Targeted", f"{sizes.targeted:,}", border=True,
                help="After the frequency cap and the maximum size.")
cards[2].metric("Treatment", f"{sizes.treatment:,}", border=True, help="Targeted members who get the message.")
cards[3].metric("Control", f"{sizes.control:,}", border=True, help="Held out, to measure the campaign against.")
reach = pd.DataFrame({"channel": list(CHANNELS), "members": [sizes.reachable[c] for c in CHANNELS]})
chart = px.bar(reach, x="members", y="channel", orientation="h", text_auto=",d",
               labels={"members": "Reachable targeted members", "channel": ""}, color_discrete_sequence=["#1b9e77"])
chart.update_layout(height=200, margin={"l": 0, "r": 0, "t": 10, "b": 0})
st.subheader("Reachable per channel", help="Consent to the channel and a usable contact (an email with an @, a "
             "phone of 8+ characters; push: consent). No consent, no message.")
st.plotly_chart(chart, key="target_reach")
st.caption("Counted among all targeted members, control included: the control group is not messaged.")

st.subheader("Members")
member_table(cached_audience_members(ctx.engine, ctx.url, spec_json, PREVIEW_ROWS))
st.caption(f"The first {min(sizes.targeted, PREVIEW_ROWS):,} by member id. Names, phones and emails are masked.")
buttons = st.columns(2)
buttons[0].download_button(f"Download all {sizes.targeted:,} members with their arm (CSV, masked)",
                           lambda: audience_members_csv(ctx.engine, spec_json), file_name="memberlens_campaign.csv",
                           mime="text/csv", icon=":material/download:", key="target_members_download")
buttons[1].download_button("Download the audience definition (JSON)", json.dumps(spec, indent=2, ensure_ascii=False),
                           file_name="memberlens_audience.json", mime="application/json", icon=":material/groups:",
                           key="target_spec_download",
                           help="python -m analytics audience --spec FILE re-creates it (docs/audiences.md).")
