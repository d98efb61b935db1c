"""Campaign targeting: who exactly gets a campaign, how many we can reach, what it will likely return, and the
control group; audiences are saved (new version on every save) in the app-state database."""

from __future__ import annotations

import json

import pandas as pd
import streamlit as st

from analytics import audiences
from analytics.access import SAVE_AUDIENCE, allowed, require
from analytics.errors import MemberLensError, SpecError
from analytics.filters import Filters
from analytics.i18n import _, code_label, format_day
from analytics.purchase_rollup import refresh_in_background
from analytics.storage.appstate import audience_versions, list_audiences, load_audience, save_audience
from analytics.targeting import (
    FIELDS,
    LOOKBACKS,
    MAX_LOOKBACK_DAYS,
    OPERATORS,
    CampaignAudience,
    Group,
    default_since,
    from_saved,
    parse_rules,
    recency_reach,
)
from analytics.targeting_table import compose_rules, read_table, table_from_rules
from analytics.targeting_values import value_notes
from ui.app_state import app_state, default_author, state_location, unavailable
from ui.audience_views import (
    CURRENT,
    OVERLAP_TAB,
    balance_view,
    condition_picker,
    forecast_view,
    funnel_view,
    known_lookup,
    overlap_choice,
    overlap_view,
    profile_view,
    reach_chart,
)
from ui.cached import cached_audience_preview, cached_preview_and_overlap
from ui.context import page_inputs
from ui.format import count, plain_text
from ui.member_sets import INBOX_KEY, member_set
from ui.models import pinned, stored_models
from ui.recommendations import recommendation_download

#: The fields a user types values for (key -> English label; shown in the reader's language). The table holds field
#: and operator keys and shows their labels, so it reads the same after the language is switched.
TYPED_FIELDS = {key: f.label for key, f in FIELDS.items() if f.typed}
#: Most audience files added at once.
MAX_UPLOADS = 20
COLUMNS = ["group", "not", "field", "operator", "values", "days"]
STARTER = pd.DataFrame([
    {"group": None, "not": False, "field": "tier", "operator": "in", "values": "gold, diamond", "days": None},
    {"group": None, "not": False, "field": "days_since_last_order", "operator": "between", "values": "0 - 90",
     "days": None},
], columns=COLUMNS).astype({"group": "Int64", "days": "Int64"})

ctx = page_inputs("campaign_targeting")
refresh_in_background(ctx.engine)  # the purchase rollup "bought a category" reads, when stale or missing
filters = ctx.filters
state = app_state()
session = st.session_state
session.setdefault("target_rev", 0)
session.setdefault("target_saved_extra", {})  # label -> saved versions an opened audience refers to
session.setdefault("target_others", [])  # other pages' audiences added as conditions (members of each)
session["target_others"] += session.pop(INBOX_KEY, [])  # "Use in Campaign targeting" on another page
#: Widgets inside tabs run only while their tab is open; re-assigning their values keeps them while it is closed.
TAB_WIDGETS = ("target_name", "target_note", "target_overlap_with", "target_profile_dimension",
               "target_forecast_type", "target_forecast_channel", "target_forecast_coupon",
               "target_forecast_message_cost", "target_forecast_margin", "target_forecast_redemption",
               "target_balance_baseline", "target_balance_difference")
for widget in TAB_WIDGETS:
    if widget in session:
        session[widget] = session[widget]


def _saved_label(audience: CampaignAudience) -> str:
    return f"{audience.name} (v{audience.saved_version})"


def _open(name: str, version: int) -> None:
    """Put a saved audience into the builder (a callback: runs before the widgets of the next run)."""
    try:
        saved = load_audience(state, name, version)
        audience = from_saved(saved)
    except MemberLensError as problem:
        session["target_opened"] = _("Could not open {name} version {version}: {problem}").format(
            name=name, version=version, problem=problem)
        return
    layout = table_from_rules(audience.rules)
    session["target_name"] = saved.name
    window = "" if (audience.window.start, audience.window.end) == (filters.start, filters.end) else _(
        " It was defined over {start} to {end}; behaviour is now read over the date range in the sidebar.").format(
        start=audience.window.start, end=audience.window.end)
    session["target_opened"] = _("Opened {name} version {version} (saved by {author} on {day} {time} UTC).{window}"
                                 ).format(name=saved.name, version=saved.version, author=saved.author,
                                          day=format_day(saved.created_at.date()), time=f"{saved.created_at:%H:%M}",
                                          window=window)
    session["target_holdout"] = round(float(audience.holdout) * 100)
    session["target_key"] = audience.campaign_key
    session["target_cap"] = int(audience.frequency_cap_days or 0)
    session["target_max"] = int(audience.max_size or 0)
    session["target_lookback"] = audience.lookback  # definitions saved before look-backs keep reading the window
    if layout is None:  # deeper than the table: edit as JSON
        session["target_json_mode"] = True
        session["target_json"] = json.dumps(audience.rules.to_json(), indent=2, ensure_ascii=False)
        session["target_include"], session["target_exclude"], session["target_others"] = [], [], []
        return
    match, rows, include, exclude, others = layout
    session["target_json_mode"] = False
    _fill_table(match, rows)
    session["target_saved_extra"] = {_saved_label(s): s for s in include + exclude}
    session["target_include"] = [_saved_label(s) for s in include]
    session["target_exclude"] = [_saved_label(s) for s in exclude]
    session["target_others"] = others


def _switch_editor() -> None:
    """Switching to JSON starts from the rules the table stood for; switching back puts JSON that fits the table
    into it (and stays in JSON, with a message, when it does not)."""
    if session.get("target_json_mode"):
        session["target_json"] = json.dumps(session.get("target_table_rules", Group()).to_json(), indent=2,
                                            ensure_ascii=False)
        return
    try:
        layout = table_from_rules(parse_rules(json.loads(session.get("target_json") or "{}")))
    except (ValueError, RecursionError):
        layout = None
    if layout is None or layout[2] or layout[3] or layout[4]:
        session["target_json_mode"] = True
        session["target_opened"] = _("These rules nest deeper than the table shows, or cannot be read: they stay "
                                     "JSON.")
        return
    match, rows, *_rest = layout
    _fill_table(match, rows)


def _fill_table(match: str, rows: list[dict]) -> None:
    session["target_match"] = match
    _set_table(pd.DataFrame(
        [{"group": r["group"], "not": r["not"], "field": r["field"], "operator": r["op"],
          "values": r["text"], "days": r.get("days")} for r in rows], columns=COLUMNS))


def _set_table(frame: pd.DataFrame) -> None:
    """A new table in the editor (a new widget key: the editor starts from it, without older edits)."""
    session["target_rev"] += 1
    session["target_base"] = frame.astype({"group": "Int64", "days": "Int64"})


def _add_row(row: dict) -> None:
    """The picker's row appended to the table as it is now (a callback: runs before the widgets of the next run)."""
    current = session.get("target_edited", session.get("target_base", STARTER))
    _set_table(pd.concat([current, pd.DataFrame([row], columns=COLUMNS)], ignore_index=True))


st.title(_("Campaign targeting"))
st.caption(_("Build the audience from conditions on {day}, the date range's last day (the reference day for ages and "
             "recency). Behaviour conditions (orders, net sales, AOV, bought a category or product) look back as set "
             "below, or as far as their own look-back says.").format(day=format_day(filters.end)))

# --- saved audiences ------------------------------------------------------------------------------------
saved = pd.DataFrame()
if state is not None:
    try:
        saved = list_audiences(state)
    except MemberLensError as problem:  # the app-state database went away after it was opened
        unavailable(problem)
        state = None
latest = {row.name: int(row.version) for row in saved.itertuples()} if not saved.empty else {}
with st.expander(_("Saved audiences ({count})").format(count=len(latest)), icon=":material/bookmarks:",
                 expanded=False):
    if state is None:
        st.caption(_("The app-state database cannot be opened (see the warning above)."))
    elif saved.empty:
        st.caption(_("None yet: build an audience below and save it under **Save**. They are kept in {place}.").format(
            place=state_location()))
    else:
        st.dataframe(saved[["name", "version", "size", "author", "created_at", "note", "versions"]], hide_index=True,
                     column_config={"name": _("Audience"), "version": st.column_config.NumberColumn(
                                        _("Latest version")),
                                    "size": st.column_config.NumberColumn(_("Members when saved"), format="localized"),
                                    "author": _("Saved by"), "created_at": st.column_config.DatetimeColumn(
                                        _("Saved (UTC)"), format="YYYY-MM-DD HH:mm"), "note": _("Note"),
                                    "versions": _("Versions")})
        left, right, button = st.columns([3, 1, 1], vertical_alignment="bottom")
        name = left.selectbox(_("Audience"), list(latest), key="target_open_name")
        versions = [v.version for v in audience_versions(state, name)] if name else []
        version = right.selectbox(_("Version"), versions[::-1], key=f"target_open_version_{name}")
        button.button(_("Open"), icon=":material/edit:", key="target_open", on_click=_open, args=(name, version),
                      disabled=not name, help=_("Loads it into the builder below; saving it again adds a new "
                                                "version."))
if session.get("target_opened"):
    st.info(session["target_opened"], icon=":material/bookmark:")

# --- the builder ------------------------------------------------------------------------------------------
#: What the Save button's callback did, shown in the Save tab of the run it starts.
SAVE_OUTCOME_KEY = "target_save_outcome"


def _save(audience: CampaignAudience, targeted: int) -> None:
    """The Save button's callback: the audience as the reader saw it when clicking, saved before the page runs, so
    that the run's lists of saved audiences already hold the new version."""
    try:
        stored = save_audience(state, session.get("target_name", ""), audience.to_json(), targeted,
                               require(ctx.principal, SAVE_AUDIENCE).identity[:100], session.get("target_note") or None)
    except MemberLensError as problem:
        session[SAVE_OUTCOME_KEY] = ("error", str(problem))
    else:
        session[SAVE_OUTCOME_KEY] = ("saved", _("Saved **{name}** version {version}: {members} members targeted now.")
                                     .format(name=plain_text(stored.name), version=stored.version,
                                             members=count(stored.size)))


saved_audiences: dict[str, CampaignAudience | None] = dict(session["target_saved_extra"])  # None: read when chosen
if state is not None:
    for audience_name, audience_version in latest.items():
        label = f"{audience_name} (v{audience_version})"
        if label not in saved_audiences:
            saved_audiences[label] = None
with st.container(border=True):
    json_mode = st.toggle(_("Write the rules as JSON (any nesting of groups)"), key="target_json_mode",
                          on_change=_switch_editor, help=_("The table covers AND of ORs (or OR of ANDs) with NOT on "
                                                           "each row; JSON allows groups inside groups "
                                                           "(docs/audiences.md)."))
    problems: list[str] = []
    notes: list[str] = []
    known = known_lookup(ctx.engine)
    if json_mode:
        text = st.text_area(_("Rules (JSON)"), key="target_json", height=260, max_chars=audiences.MAX_JSON_BYTES // 10,
                            help=_("A group: {group}; a condition: {condition}.").format(
                                group='{"match": "all" or "any", "conditions": [...]}',
                                condition='{"field": ..., "op": ..., "value": ..., "not": true}'))
        try:
            table_rules = parse_rules(json.loads(text or "{}", parse_constant=audiences.refuse_constant))
        except (ValueError, RecursionError) as problem:
            problems.append(_("The JSON rules cannot be read: {problem}").format(problem=problem))
            table_rules = Group()
        for note in value_notes(table_rules, known):  # JSON keeps its meaning: values are named, not corrected
            st.warning(note, icon=":material/spellcheck:")
    else:
        match = st.segmented_control(_("Members must match"), ["all", "any"], default="all", key="target_match",
                                     required=True, format_func={"all": _("all rows (AND)"),
                                                                 "any": _("any row (OR)")}.get)
        edited = st.data_editor(session.get("target_base", STARTER), num_rows="dynamic", hide_index=True,
                                placeholder="", key=f"target_conditions_{session['target_rev']}", column_config={
            "group": st.column_config.NumberColumn(_("Group"), min_value=1, max_value=99, step=1, width="small",
                                                   help=_("Rows with the same group number form one group that "
                                                          "matches ANY of its rows when members must match all rows "
                                                          "(and ALL of its rows when any row is enough).")),
            "not": st.column_config.CheckboxColumn(_("NOT"), help=_("Keep the members who do NOT match this row."),
                                                   default=False, width="small"),
            "field": st.column_config.SelectboxColumn(_("Field"), options=list(TYPED_FIELDS), required=True,
                                                      format_func=lambda k: _(TYPED_FIELDS.get(k, k)),
                                                      help=" ".join(f"**{_(f.label)}**: {_(f.help)}"
                                                                    for f in FIELDS.values() if f.typed)),
            "operator": st.column_config.SelectboxColumn(_("Operator"), options=list(OPERATORS), required=True,
                                                         format_func=lambda o: _(OPERATORS.get(o, o))),
            "values": st.column_config.TextColumn(_("Values"), help=_(
                "A list: values separated by commas (gold, diamond). A range: low - high, either side may be empty "
                "(100 - , 2025-01-01 - 2025-06-30). Values of tiers, regions, cities, genders, channels, categories "
                "and products are checked against the warehouse."), width="medium"),
            "days": st.column_config.NumberColumn(_("Look back"), min_value=1, max_value=MAX_LOOKBACK_DAYS,
                                                  width="small",
                                                  step=1, help=_("Days. Behaviour fields only (orders, net sales, "
                                                                 "AOV, bought ...): read the orders of these last "
                                                                 "days; empty = the look-back set below.")),
        })
        session["target_edited"] = edited
        condition_picker(ctx.engine, TYPED_FIELDS, _add_row)
        rows = [{"group": r.get("group"), "not": r.get("not"),
                 "field": r.get("field") if r.get("field") in TYPED_FIELDS else None,
                 "op": r.get("operator") if r.get("operator") in OPERATORS else None, "text": r.get("values"),
                 "days": r.get("days")} for r in edited.to_dict("records")]
        read = read_table(match, rows, pinned(stored_models()), known)
        table_rules = read.rules
        problems += read.problems
        notes += read.notes
        session["target_table_rules"] = table_rules
    lookback = st.segmented_control(_("Behaviour conditions look back"), list(LOOKBACKS), default="recency",
                                    key="target_lookback", required=True, format_func=lambda k: _(LOOKBACKS[k]),
                                    help=_("Where a behaviour condition without its own look-back starts reading "
                                           "orders: as far back as 'Days since last order' reaches (its upper bound; "
                                           "'last order 90 - 365 days ago' reads a year), or over the date range. "
                                           "Audiences saved before look-backs existed read the date range."))
    include_col, exclude_col = st.columns(2)
    include = include_col.multiselect(_("Only members of saved audiences"), list(saved_audiences),
                                      key="target_include",
                                      help=_("Members targeted by every one of these saved audiences."),
                                      placeholder=_("none") if saved_audiences else _("no saved audience yet"))
    exclude = exclude_col.multiselect(_("Leave out members of saved audiences"), list(saved_audiences),
                                      key="target_exclude", help=_("E.g. last week's campaign audience."),
                                      placeholder=_("none") if saved_audiences else _("no saved audience yet"))
    others: list = session["target_others"]
    if others:
        st.markdown(_("**Members of these audiences** (each one is a condition; added from other pages)"))
        for number, other in enumerate(list(others)):
            text_col, remove_col = st.columns([6, 1], vertical_alignment="center")
            text_col.markdown(f":material/group: {plain_text(other.title())}")
            if remove_col.button(_("Remove"), key=f"target_other_remove_{number}_{other.fingerprint()[:8]}",
                                 icon=":material/close:"):
                others.remove(other)
                st.rerun()
    uploads = st.file_uploader(_("Members of audiences exported by other pages (JSON)"), type="json",
                               accept_multiple_files=True, key="target_uploads", max_upload_size=2,
                               help=_("RFM segments, clusters, tags, heatmap cells, funnel drop-offs and basket rules "
                                      "each offer 'Use in Campaign targeting' and the audience definition as JSON. "
                                      "Each file adds a condition: member of it."))
    left, middle, right, last = st.columns(4)
    holdout = left.slider(_("Control group"), 0, 50, 10, format="%d%%", key="target_holdout",
                          help=_("Share held out (no message) to measure the campaign: a hash of member id and "
                                 "campaign key, the same every time.")) / 100
    key = middle.text_input(_("Campaign key"), "campaign", key="target_key", max_chars=200,
                            help=_("Names the control split: the same key keeps the same arms."))
    cap = right.number_input(_("Frequency cap (days)"), 0, 365, 7, key="target_cap",
                             help=_("Leave out members sent any campaign in these last days (0 = no cap)."))
    size = last.number_input(_("Maximum audience"), 0, 10_000_000, 0, step=1000, key="target_max",
                             help=_("Keep at most this many (0 = everyone); chosen by the same hash, so unbiased."))


def _saved_audience(label: str) -> CampaignAudience:
    audience = saved_audiences.get(label)
    if audience is None:
        name = label.rsplit(" (v", 1)[0]
        audience = from_saved(load_audience(state, name, latest[name]))
    return audience


segments = list(others)
if len(uploads or []) > MAX_UPLOADS:
    problems.append(_("At most {most} audience files at once; {count} were given.").format(most=MAX_UPLOADS,
                                                                                          count=len(uploads)))
    uploads = []
for upload in uploads or []:
    try:
        segments.append(audiences.loads(upload.getvalue(), allowed=[k for k in audiences.kinds() if k != "audience"]))
    except SpecError as problem:
        problems.append(_("{file}: {problem}").format(file=upload.name, problem=problem))
try:
    rules = compose_rules(table_rules, [_saved_audience(label) for label in include],
                          [_saved_audience(label) for label in exclude], segments)
except (MemberLensError, KeyError) as problem:
    problems.append(_("A saved audience cannot be read: {problem}").format(problem=problem))
    rules = table_rules
for problem in problems:
    st.error(problem, icon=":material/rule:")
for note in notes:
    st.info(note, icon=":material/spellcheck:")
if problems:  # sizes without the rows in error would mislead; the table keeps what was typed
    st.stop()

try:
    audience = CampaignAudience(Filters(filters.start, filters.end, scope=filters.scope), rules, int(cap) or None,
                                int(size) or None, holdout, key, lookback=lookback)
    counted = None
    try:  # the Overlap tab open: the audience sized and its overlaps counted in one statement
        compared = tuple((label, _saved_audience(label)) for label in overlap_choice(list(saved_audiences),
                                                                                      "target_tab"))
    except (MemberLensError, KeyError):
        compared = ()  # the tab says which saved audience cannot be read
    if compared:
        sizes, counted = cached_preview_and_overlap(ctx.engine, audience, _(CURRENT), compared)
    else:
        sizes = cached_audience_preview(ctx.engine, audience)
except SpecError as problem:
    st.error(str(problem), icon=":material/rule:")
    st.stop()


def _lookback_caption(audience: CampaignAudience) -> str:
    since, end = default_since(audience), audience.window.end
    if since is None:
        read = _("all history up to {day}").format(day=format_day(end))
    else:
        read = _("{start} to {end} ({days} days)").format(start=format_day(since), end=format_day(end),
                                                          days=count((end - since).days + 1))
    reach = recency_reach(audience.rules)
    why = (_("the date range") if audience.lookback == "window" or reach is None
           else _("as far back as 'Days since last order' reaches"))
    return _("Behaviour conditions without their own look-back read {read}: {why}.").format(read=read, why=why)


st.caption(_lookback_caption(audience))
cards = st.columns(4)
cards[0].metric(_("Matching"), count(sizes.matching), border=True, help=_("Members matching the conditions."))
cards[1].metric(_("Targeted"), count(sizes.targeted), border=True,
                help=_("After the frequency cap and the maximum size."))
cards[2].metric(code_label("treatment"), count(sizes.treatment), border=True,
                help=_("Targeted members who get the message."))
cards[3].metric(code_label("control"), count(sizes.control), border=True,
                help=_("Held out, to measure the campaign against."))
funnel_view(ctx.engine, audience, sizes)
st.subheader(_("Reachable per channel"), help=_("Consent to the channel and a usable contact (an email with an @, a "
                                                "phone of 8+ characters; push: consent). No consent, no message."))
reach_chart(sizes)

# Only the open tab runs (on_change="rerun"): overlap, profile and balance each cost as much as the preview
members_tab, profile_tab, overlap_tab, balance_tab, forecast_tab, save_tab = st.tabs(
    [_("Members"), _("Profile"), _(OVERLAP_TAB), _("Control balance"), _("Forecast"), _("Save")], key="target_tab",
    on_change="rerun")
if members_tab.open:
    with members_tab:
        member_set(ctx.engine, audience, key="target_members", who=_("targeted, with their arm:"),
                   actor=default_author(), page="campaign_targeting", count=sizes.targeted, targeting=False)
        recommendation_download(ctx.engine, audience, key="target_recs", actor=default_author(),
                                page="campaign_targeting", campaign_id=audience.campaign_key.strip() or None)
if profile_tab.open:
    with profile_tab:
        profile_view(ctx.engine, audience, sizes.targeted)
if overlap_tab.open:
    with overlap_tab:
        overlap_view(ctx.engine, audience, list(saved_audiences), _saved_audience, counted)
if balance_tab.open:
    with balance_tab:
        balance_view(ctx.engine, audience, sizes)
if forecast_tab.open:
    with forecast_tab:
        forecast_view(ctx.engine, sizes)
if save_tab.open:
    with save_tab:
        if state is None:
            st.caption(_("Saving needs the app-state database (see the warning above)."))
        else:
            if outcome := session.pop(SAVE_OUTCOME_KEY, None):  # from the Save button's callback (see _save)
                kind, message = outcome
                if kind == "saved":
                    st.success(message, icon=":material/check:")
                else:
                    st.error(message, icon=":material/error:")
            name_col, author_col = st.columns(2)
            name_col.text_input(_("Audience name"), key="target_name", max_chars=100,
                                help=_("Saving under an existing name adds a new version; earlier versions "
                                       "stay as they were."))
            author_col.text_input(_("Saved by"), value=default_author(), disabled=True,
                                  help=_("Your signed-in identity: saves are recorded under it."))
            st.text_input(_("Note (optional)"), key="target_note", max_chars=500)
            st.button(_("Save"), icon=":material/save:", type="primary", key="target_save",
                      disabled=not allowed(ctx.principal, SAVE_AUDIENCE), on_click=_save,
                      args=(audience, sizes.targeted))
