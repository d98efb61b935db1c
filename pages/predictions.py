"""Predictions: who is about to leave, who is about to buy, and what each member is worth, with each model's card."""

from __future__ import annotations

import pandas as pd
import plotly.express as px
import plotly.graph_objects as go
import streamlit as st

from analytics.access import ACTIONS, TRAIN_MODELS, allowed
from analytics.i18n import _, format_day
from analytics.prediction_audiences import PinnedModel, PredictionAudience
from analytics.prediction_eval import MEASURES
from analytics.prediction_features import FEATURE_BY_NAME
from analytics.prediction_models import ALGORITHMS
from analytics.prediction_reports import GROUPS
from analytics.predictions import BAND_LABELS, BANDS, KINDS, SCORE_HELP, measures_at
from analytics.programme import CURRENCY_SYMBOL
from ui.app_state import default_author
from ui.cached import cached_clv_distribution, cached_customer_equity, cached_risk_bands
from ui.context import page_inputs
from ui.format import ACCENT, MISSING, count, label, money, share
from ui.look import show_chart
from ui.member_sets import member_set
from ui.models import age_note, kind_label, kind_name, scoring_models, stored_models, train_now

ctx = page_inputs("predictions")
filters = ctx.filters
as_of = filters.end
BAND_COLOURS = {"low": "#1b9e77", "medium": "#e6ab02", "high": "#d95f02"}
_SHARE = {"format": "percent", "min_value": 0.0, "max_value": 1.0}
CLV_MODEL_NAMES = {"bgnbd": _("BG/NBD (repeat purchases)"), "paretonbd": _("Pareto/NBD (repeat purchases)"),
                   "gammagamma": _("Gamma-Gamma (spend per order)")}
MEASURE_COLUMNS = ("roc_auc", "pr_auc", "brier", "ece")
MONEY_CELL = CURRENCY_SYMBOL + "%.0f"  # whole currency units: a prediction is no more precise than that
SCORE_COLUMNS = {
    "churn_risk": st.column_config.ProgressColumn(_("Churn risk"), help=_(SCORE_HELP["churn_risk"]), **_SHARE),
    "purchase_propensity": st.column_config.ProgressColumn(_("Propensity (30 d)"),
                                                           help=_(SCORE_HELP["purchase_propensity"]), **_SHARE),
    "expected_orders": st.column_config.NumberColumn(_("Expected orders"), format="%.2f",
                                                     help=_(SCORE_HELP["expected_orders"])),
    "p_alive": st.column_config.NumberColumn(_("P(active)"), format="percent", help=_(SCORE_HELP["p_alive"])),
    "expected_spend": st.column_config.NumberColumn(_("Expected spend"), format=MONEY_CELL,
                                                    help=_(SCORE_HELP["expected_spend"])),
    "predicted_clv": st.column_config.NumberColumn(_("Predicted CLV"), format=MONEY_CELL,
                                                   help=_(SCORE_HELP["predicted_clv"])),
    "next_order_date": st.column_config.DateColumn(_("Next order"), format="YYYY-MM-DD",
                                                   help=_(SCORE_HELP["next_order_date"])),
    "value_at_risk": st.column_config.NumberColumn(_("Value at risk"), format=MONEY_CELL,
                                                   help=_(SCORE_HELP["value_at_risk"])),
    "reasons": st.column_config.TextColumn(_("Why (in words)"), width="large",
                                           help=_("The features that most set this member apart from the typical "
                                                  "scored member, in the direction of the score.")),
}

st.title(_("Predictions"))
st.caption(_("Every member with an order history, scored as of {day} (the range's last day) by the stored models. "
             "Models are trained out of time and retrained on purpose (here, or by {command} from cron), never while "
             "you watch.").format(day=format_day(as_of), command="`python -m analytics models train`"))

stored = stored_models()
missing = [kind for kind in ("churn", "propensity", "clv") if kind not in stored]
with st.expander(_("Models ({trained} of 3 trained)").format(trained=len(stored)), icon=":material/model_training:",
                 expanded=bool(missing)):
    for model in stored.values():
        note, stale = age_note(model)
        if stale:
            st.warning(_("{note}: older than a week, retrain it").format(note=note))
        else:
            st.caption(note)
    if missing:
        st.info(_("No {models} yet. Train them for {day} here, or with {command}.").format(
                    models=_(", ").join(kind_name(k) for k in missing), day=format_day(as_of),
                    command="`python -m analytics models train --model KIND`"),
                icon=":material/model_training:")
    chosen = st.multiselect(_("Train new versions of"), ["churn", "propensity", "clv"], default=missing,
                            key="pred_train_kinds", format_func=kind_label)
    may_train = allowed(ctx.principal, TRAIN_MODELS)
    if st.button(_("Train now"), icon=":material/play_arrow:", key="pred_train", disabled=not chosen or not may_train,
                 help=_("Trains on the warehouse's data up to the range's last day and stores a new version; older "
                        "versions are kept.") if may_train
                 else _("Your role may not {action}.").format(action=_(ACTIONS[TRAIN_MODELS]))):
        train_now(ctx.engine, tuple(chosen), as_of)
if "churn" not in stored:
    st.stop()

models = scoring_models(stored)
scores_tab, churn_tab, propensity_tab, clv_tab = st.tabs(
    [_("Scores and risk bands"), _("Churn model card"), _("Propensity model card"), _("Lifetime value")],
    key="pred_tab", on_change="rerun")

if scores_tab.open:
    with scores_tab:
        bands = cached_risk_bands(ctx.engine, models, as_of, None)
        has_value = "value_at_risk" in bands
        high = bands[bands["band"] == "high"]
        cards = st.columns(4)
        cards[0].metric(_("Members scored"), count(bands["members"].sum()), border=True,
                        help=_("Members with a completed order up to the day."))
        cards[1].metric(_("High churn risk"), count(high["members"].sum()), border=True,
                        help=_("Churn risk of {share} or more. {definition}").format(
                            share=share(BANDS[-1][1], 0), definition=_(SCORE_HELP["churn_risk"])))
        if has_value:
            cards[2].metric(_("Value at risk"), money(bands["value_at_risk"].sum()), border=True,
                            help=_("{definition} Summed over every scored member.").format(
                                definition=_(SCORE_HELP["value_at_risk"])))
            cards[3].metric(_("Predicted 12-month value"), money(bands["predicted_clv"].sum()), border=True,
                            help=_(SCORE_HELP["predicted_clv"]))
        band_names = {b: _(BAND_LABELS[b]) for b, *_rest in BANDS}
        chart = px.bar(bands.assign(band=bands["band"].map(band_names)), x="band", y="members", color="band",
                       color_discrete_map={band_names[b]: c for b, c in BAND_COLOURS.items()}, text_auto=",d",
                       labels={"band": _("Churn risk band"), "members": _("Members")},
                       category_orders={"band": list(band_names.values())})
        chart.update_layout(height=300, showlegend=False, margin={"l": 0, "r": 0, "t": 10, "b": 0})
        left, right = st.columns([2, 3])
        show_chart(where=left, figure=chart, key="pred_bands_chart")
        left.caption(_("Bands: low below 0.3, medium 0.3 to 0.6, high from 0.6."))
        by = right.segmented_control(_("Split by"), ["tier", "segment"], default="tier", key="pred_bands_by",
                                     required=True, format_func=lambda g: _(GROUPS[g]))
        split = cached_risk_bands(ctx.engine, models, as_of, by)
        value = "value_at_risk" if has_value else "members"
        heat = split.pivot(index=by, columns="band", values=value).reindex(columns=[b for b, *_ in BANDS]).fillna(0)
        heat = heat.rename(columns=band_names, index=label if by == "tier" else _)  # segments: RFM names, translated
        figure = px.imshow(heat, color_continuous_scale="Oranges", text_auto=",.0f", aspect="auto",
                           labels={"x": _("Churn risk band"), "y": _(GROUPS[by]),
                                   "color": _("Value at risk") if has_value else _("Members")})
        figure.update_layout(height=320, margin={"l": 0, "r": 0, "t": 10, "b": 0})
        show_chart(where=right, figure=figure, key="pred_bands_split")
        right.caption((_("Value at risk per band and {group}.") if has_value else _("Members per band and {group}."))
                      .format(group=_(GROUPS[by]).lower()))
        st.subheader(_("Members of a band"))
        band = st.segmented_control(_("Band"), [b for b, *_rest in BANDS], default="high", key="pred_members_band",
                                    required=True, format_func=band_names.get)
        low, high_edge = next((lo, hi) for name, lo, hi in BANDS if name == band)
        others = tuple(PinnedModel.from_stored(stored[kind]) for kind in ("propensity", "clv") if kind in stored)
        audience = PredictionAudience("churn_risk", low if low > 0 else None, None if band == "high" else high_edge,
                                      as_of, PinnedModel.from_stored(stored["churn"]), others)
        who = _("with {band} churn risk, with their scores and the reasons in words:").format(
            band=band_names[band].lower())
        member_set(ctx.engine, audience, key="pred_members", who=who, actor=default_author(), page="predictions",
                   count=int(bands.loc[bands["band"] == band, "members"].sum()), column_config=SCORE_COLUMNS)


def _members_text(card: dict, arm: str) -> str:
    """How many members a model was trained or tested on, and of how many when it was a sample."""
    used, total = card[f"{arm}_members"], card.get(f"{arm}_population", card[f"{arm}_members"])
    if used == total:
        return f"{used:,}"
    return _("{used} of {total}, a fixed sample by member id").format(used=f"{used:,}", total=f"{total:,}")


def _measure(value: float | None) -> str:
    return MISSING if value is None else f"{value:.3f}"


def model_card(kind: str) -> None:
    if kind not in stored:
        st.info(_("No {model} yet: train one above.").format(model=kind_name(kind)),
                icon=":material/model_training:")
        return
    card = stored[kind].model["card"]
    positive = _(KINDS[kind].positive)
    st.markdown(_("**{label}**: {definition}").format(label=_(KINDS[kind].label), definition=_(KINDS[kind].help)))
    other = next((n for n in ALGORITHMS if n != card["algorithm"]), card["algorithm"])
    why = _("{algorithm} had the higher PR AUC on the test cutoff ({chosen} against {other}).").format(
        algorithm=_(ALGORITHMS.get(card["algorithm"], card["algorithm"])),
        chosen=_measure(card["metrics"][card["algorithm"]].get("pr_auc")),
        other=_measure(card["metrics"].get(other, {}).get("pr_auc")))
    st.caption(_("{why} Trained on members as of {train_cutoff} ({train_members}; {train_share} {positive}), tested "
                 "out of time on members as of {test_cutoff} ({test_members}; {test_share} {positive}), horizon "
                 "{days} days. The stored model is the same recipe refitted on the test cutoff's members, scoring "
                 "as of {as_of}.").format(
        why=why, train_cutoff=card["train_cutoff"], train_members=_members_text(card, "train"),
        train_share=share(card["train_base_rate"]), positive=positive, test_cutoff=card["test_cutoff"],
        test_members=_members_text(card, "test"), test_share=share(card["test_base_rate"]),
        days=card["horizon_days"], as_of=card["as_of"]))
    names = {"logistic": _("Logistic regression"), "gbdt": _("Boosted trees"), "recency": _("Recency alone"),
             "rfm_rule": _("RFM rule")}
    rows = [{"candidate": _("{name} (chosen)").format(name=names[n]) if n == card["algorithm"] else names[n],
             **{k: _measure(m.get(k)) for k in MEASURE_COLUMNS}} for n, m in card["metrics"].items()]
    if card.get("ceiling"):
        rows.append({"candidate": _("Planted truth (demo ceiling)"),
                     **{k: _measure(card["ceiling"].get(k)) for k in MEASURE_COLUMNS}})
    st.dataframe(pd.DataFrame(rows), hide_index=True, column_config={
        "candidate": _("Score"), **{k: st.column_config.TextColumn(_(MEASURES[k].label), help=_(MEASURES[k].help))
                                   for k in MEASURE_COLUMNS}}, key=f"pred_{kind}_metrics")
    st.caption(_("Recency alone scores members by the days since their last order; the RFM rule calls the segments "
                 "At Risk, Can't Lose Them, Hibernating and Lost (and members without an order in the year) "
                 "churners."))
    threshold = st.slider(_("Threshold"), 0.05, 0.95, 0.5, 0.05, key=f"pred_{kind}_threshold",
                          help=_("Members scoring at least this are predicted positive: higher means fewer, surer "
                                 "picks."))
    at = measures_at(card["score_histogram"], threshold)
    cards = st.columns(4)
    for column, name in zip(cards, ("precision", "recall", "f1", "accuracy"), strict=True):
        column.metric(_(MEASURES[name].label), share(at[name]), border=True, help=_(MEASURES[name].help))
    left, middle, right = st.columns(3)
    confusion = pd.DataFrame([[at["tp"], at["fn"]], [at["fp"], at["tn"]]],
                             index=[_("Actual {positive}").format(positive=positive), _("Actual others")],
                             columns=[_("Predicted positive"), _("Predicted negative")])
    left.markdown(_("**Confusion matrix** (test members)"))
    left.table(confusion.map(count))
    curve = pd.DataFrame(card["calibration"])
    calibration = go.Figure([go.Scatter(x=[0, 1], y=[0, 1], mode="lines", line={"dash": "dot", "color": "grey"},
                                        name=_("Perfect")),
                             go.Scatter(x=curve["mean_score"], y=curve["actual_rate"], mode="lines+markers",
                                        line={"color": ACCENT}, name=_("Model"), text=curve["members"],
                                        hovertemplate=_("score %{x:.2f}: actual %{y:.2f} (%{text:,} members)")
                                                      + "<extra></extra>")])
    calibration.update_layout(height=300, margin={"l": 0, "r": 0, "t": 30, "b": 0}, title=_("Calibration"),
                              xaxis_title=_("Mean score"), yaxis_title=_("Actual rate"), showlegend=False)
    show_chart(where=middle, figure=calibration, key=f"pred_{kind}_calibration")
    gains = pd.DataFrame(card["gains"])
    lift = px.bar(gains, x="decile", y="lift", labels={"decile": _("Decile (1 = highest score)"), "lift": _("Lift")},
                  title=_("Lift by decile"), color_discrete_sequence=[ACCENT])
    lift.update_layout(height=300, margin={"l": 0, "r": 0, "t": 30, "b": 0})
    show_chart(where=right, figure=lift, key=f"pred_{kind}_gains")
    top = card["gains"][0]
    st.caption(_("The top {top} by score hold {held} of the {positive} (lift {lift}).").format(
        top=share(0.1, 0), held=share(top["cumulative_share"], 0), positive=positive, lift=f"{top['lift']:.1f}"))
    importance = pd.DataFrame(card["importance"]).head(10)
    importance["feature"] = importance["feature"].map(lambda n: _(FEATURE_BY_NAME[n].label))
    bars = px.bar(importance, x="importance", y="feature", orientation="h", color_discrete_sequence=[ACCENT],
                  labels={"importance": _("Drop in PR AUC when shuffled"), "feature": ""},
                  title=_("What the model relies on (permutation importance)"))
    bars.update_yaxes(categoryorder="total ascending")
    bars.update_layout(height=360, margin={"l": 0, "r": 0, "t": 30, "b": 0})
    show_chart(bars, key=f"pred_{kind}_importance")
    with st.expander(_("Feature definitions")):
        st.markdown("\n".join(f"- **{_(f.label)}**: {_(f.help)}" for f in FEATURE_BY_NAME.values()))


if churn_tab.open:
    with churn_tab:
        model_card("churn")
if propensity_tab.open:
    with propensity_tab:
        model_card("propensity")
if clv_tab.open:
    with clv_tab:
        if "clv" not in stored:
            st.info(_("No CLV model yet: train one above."), icon=":material/model_training:")
        else:
            card = stored["clv"].model["card"]
            histogram, top_share = cached_clv_distribution(ctx.engine, models, as_of)
            cards = st.columns(3)
            cards[0].metric(_("Members valued"), count(card["members"]), border=True,
                            help=_("Members with a purchase up to the day."))
            cards[1].metric(_("Repeat buyers"), count(card["repeat_buyers"]), border=True,
                            help=_("Members with more than one purchase day: what the spend model learns from."))
            cards[2].metric(_("Top {share} hold").format(share=share(0.1, 0)), share(top_share), border=True,
                            help=_("Share of all predicted 12-month value held by the 10% most valuable members."))
            left, right = st.columns(2)
            hist = px.bar(histogram, x="bin_start", y="members", title=_("Predicted 12-month value"),
                          labels={"bin_start": _("Predicted CLV"), "members": _("Members")},
                          color_discrete_sequence=[ACCENT])
            hist.update_layout(height=320, margin={"l": 0, "r": 0, "t": 30, "b": 0})
            show_chart(where=left, figure=hist, key="pred_clv_hist")
            by = right.segmented_control(_("Customer equity by"), ["acquisition_channel", "tier", "cohort"],
                                         default="acquisition_channel", key="pred_equity_by", required=True,
                                         format_func=lambda g: _(GROUPS[g]))
            equity = cached_customer_equity(ctx.engine, models, as_of, by)
            equity[by] = equity[by].astype(str)
            if by != "cohort":  # channels and tiers are codes
                equity[by] = equity[by].map(label)
            eq = px.bar(equity, x="predicted_clv", y=by, orientation="h",
                        labels={"predicted_clv": _("Predicted 12-month value"), by: ""},
                        color_discrete_sequence=[ACCENT], custom_data=["members"])
            eq.update_layout(height=320, margin={"l": 0, "r": 0, "t": 10, "b": 0})
            show_chart(where=right, figure=eq, key="pred_equity")
            st.markdown(_("**Fitted parameters** (time in weeks)") if card["unit"] == "week"
                        else _("**Fitted parameters** (time in days)"))
            parameters = pd.DataFrame(card["parameters"])
            parameters["model"] = parameters["model"].map(CLV_MODEL_NAMES).fillna(parameters["model"])
            st.dataframe(parameters, hide_index=True, key="pred_clv_params", height=38 + 35 * len(parameters),
                         column_config={"model": _("Model"), "parameter": _("Parameter"),
                                        "value": st.column_config.NumberColumn(_("Estimate"), format="%.4f")})
            validation = card.get("validation")
            if validation:
                st.caption(_("Validation: fitted on purchases up to {calibration_end}, predicting the repeat "
                             "purchases up to {holdout_end}.").format(calibration_end=validation["calibration_end"],
                                                                      holdout_end=validation["holdout_end"]))
                left, right = st.columns(2)
                holdout = pd.DataFrame(validation["holdout"])
                groups = holdout["calibration_purchases"].astype(str)
                chart = go.Figure([go.Bar(x=groups, y=holdout["actual"], name=_("Actual"), marker_color="#bdbdbd"),
                                   go.Bar(x=groups, y=holdout["predicted"], name=_("Predicted"), marker_color=ACCENT)])
                chart.update_layout(height=320, barmode="group", title=_("Holdout purchases by calibration purchases"),
                                    margin={"l": 0, "r": 0, "t": 30, "b": 0}, legend={"orientation": "h"})
                show_chart(where=left, figure=chart, key="pred_clv_holdout")
                tracking = pd.DataFrame(validation["tracking"])
                track = go.Figure([go.Scatter(x=tracking["period_start"], y=tracking["cumulative_actual"],
                                              name=_("Actual"), line={"color": "#636363"}),
                                   go.Scatter(x=tracking["period_start"], y=tracking["cumulative_predicted"],
                                              name=_("Predicted"), line={"color": ACCENT, "dash": "dot"})])
                track.update_layout(height=320, title=_("Cumulative repeat purchases"), legend={"orientation": "h"},
                                    margin={"l": 0, "r": 0, "t": 30, "b": 0})
                show_chart(where=right, figure=track, key="pred_clv_tracking")
