"""Predictions: who is about to leave, who is about to buy, and what each member is worth, with each model's card."""

from __future__ import annotations

import pandas as pd
import plotly.express as px
import plotly.graph_objects as go
import streamlit as st

from analytics.access import ACTIONS, TRAIN_MODELS, allowed
from analytics.prediction_audiences import PinnedModel, PredictionAudience
from analytics.prediction_eval import MEASURES
from analytics.prediction_features import FEATURE_BY_NAME
from analytics.prediction_reports import GROUPS
from analytics.predictions import BANDS, KINDS, SCORE_HELP, measures_at
from analytics.programme import CURRENCY_SYMBOL
from ui.app_state import default_author
from ui.cached import cached_clv_distribution, cached_customer_equity, cached_risk_bands
from ui.context import page_inputs
from ui.format import ACCENT, MISSING, count, label, money, share
from ui.member_sets import member_set
from ui.models import age_note, scoring_models, stored_models, train_now

ctx = page_inputs("predictions")
filters = ctx.filters
as_of = filters.end
BAND_COLOURS = {"low": "#1b9e77", "medium": "#e6ab02", "high": "#d95f02"}
_SHARE = {"format": "percent", "min_value": 0.0, "max_value": 1.0}
CLV_MODEL_NAMES = {"bgnbd": "BG/NBD (repeat purchases)", "paretonbd": "Pareto/NBD (repeat purchases)",
                   "gammagamma": "Gamma-Gamma (spend per order)"}
MEASURE_COLUMNS = ("roc_auc", "pr_auc", "brier", "ece")
MONEY_CELL = CURRENCY_SYMBOL + "%.0f"  # whole currency units: a prediction is no more precise than that
SCORE_COLUMNS = {
    "churn_risk": st.column_config.ProgressColumn("Churn risk", help=SCORE_HELP["churn_risk"], **_SHARE),
    "purchase_propensity": st.column_config.ProgressColumn("Propensity (30 d)", help=SCORE_HELP["purchase_propensity"],
                                                           **_SHARE),
    "expected_orders": st.column_config.NumberColumn("Expected orders", format="%.2f",
                                                     help=SCORE_HELP["expected_orders"]),
    "p_alive": st.column_config.NumberColumn("P(active)", format="percent", help=SCORE_HELP["p_alive"]),
    "expected_spend": st.column_config.NumberColumn("Expected spend", format=MONEY_CELL,
                                                    help=SCORE_HELP["expected_spend"]),
    "predicted_clv": st.column_config.NumberColumn("Predicted CLV", format=MONEY_CELL,
                                                   help=SCORE_HELP["predicted_clv"]),
    "next_order_date": st.column_config.DateColumn("Next order", format="YYYY-MM-DD",
                                                   help=SCORE_HELP["next_order_date"]),
    "value_at_risk": st.column_config.NumberColumn("Value at risk", format=MONEY_CELL,
                                                   help=SCORE_HELP["value_at_risk"]),
    "reasons": st.column_config.TextColumn("Why (in words)", width="large",
                                           help="The features that most set this member apart from the typical "
                                                "scored member, in the direction of the score."),
}

st.title("Predictions")
st.caption(f"Every member with an order history, scored as of {as_of:%d %b %Y} (the range's last day) by the stored "
           "models. Models are trained out of time and retrained on purpose (here, or by `python -m analytics models "
           "train` from cron), never while you watch.")

stored = stored_models()
missing = [kind for kind in ("churn", "propensity", "clv") if kind not in stored]
with st.expander(f"Models ({len(stored)} of 3 trained)", icon=":material/model_training:", expanded=bool(missing)):
    for model in stored.values():
        note, stale = age_note(model)
        (st.warning if stale else st.caption)(note + (": older than a week, retrain it" if stale else ""))
    if missing:
        st.info(f"No {', '.join(missing)} model yet. Train them for {as_of:%d %b %Y} here, or with `python -m "
                f"analytics models train --model KIND`.", icon=":material/model_training:")
    chosen = st.multiselect("Train new versions of", ["churn", "propensity", "clv"], default=missing,
                            key="pred_train_kinds", format_func=lambda k: KINDS[k].label if k in KINDS else "CLV")
    may_train = allowed(ctx.principal, TRAIN_MODELS)
    if st.button("Train now", icon=":material/play_arrow:", key="pred_train", disabled=not chosen or not may_train,
                 help="Trains on the warehouse's data up to the range's last day and stores a new version; older "
                      "versions are kept." if may_train else f"Your role may not {ACTIONS[TRAIN_MODELS]}."):
        train_now(ctx.engine, tuple(chosen), as_of)
if "churn" not in stored:
    st.stop()

models = scoring_models(stored)
scores_tab, churn_tab, propensity_tab, clv_tab = st.tabs(
    ["Scores and risk bands", "Churn model card", "Propensity model card", "Lifetime value"], key="pred_tab",
    on_change="rerun")

if scores_tab.open:
    with scores_tab:
        bands = cached_risk_bands(ctx.engine, models, as_of, None)
        has_value = "value_at_risk" in bands
        high = bands[bands["band"] == "high"]
        cards = st.columns(4)
        cards[0].metric("Members scored", count(bands["members"].sum()), border=True,
                        help="Members with a completed order up to the day.")
        cards[1].metric("High churn risk", count(high["members"].sum()), border=True,
                        help=f"Churn risk of {BANDS[-1][1]:.0%} or more. " + SCORE_HELP["churn_risk"])
        if has_value:
            cards[2].metric("Value at risk", money(bands["value_at_risk"].sum()), border=True,
                            help=SCORE_HELP["value_at_risk"] + " Summed over every scored member.")
            cards[3].metric("Predicted 12-month value", money(bands["predicted_clv"].sum()), border=True,
                            help=SCORE_HELP["predicted_clv"])
        chart = px.bar(bands, x="band", y="members", color="band", color_discrete_map=BAND_COLOURS, text_auto=",d",
                       labels={"band": "Churn risk band", "members": "Members"},
                       category_orders={"band": [b for b, *_ in BANDS]})
        chart.update_layout(height=300, showlegend=False, margin={"l": 0, "r": 0, "t": 10, "b": 0})
        left, right = st.columns([2, 3])
        left.plotly_chart(chart, key="pred_bands_chart")
        left.caption("Bands: low below 0.3, medium 0.3 to 0.6, high from 0.6.")
        by = right.segmented_control("Split by", ["tier", "segment"], default="tier", key="pred_bands_by",
                                     required=True, format_func=GROUPS.get)
        split = cached_risk_bands(ctx.engine, models, as_of, by)
        value = "value_at_risk" if has_value else "members"
        heat = split.pivot(index=by, columns="band", values=value).reindex(columns=[b for b, *_ in BANDS]).fillna(0)
        figure = px.imshow(heat, color_continuous_scale="Oranges", text_auto=",.0f", aspect="auto",
                           labels={"x": "Churn risk band", "y": GROUPS[by], "color": label(value)})
        figure.update_layout(height=320, margin={"l": 0, "r": 0, "t": 10, "b": 0})
        right.plotly_chart(figure, key="pred_bands_split")
        right.caption(("Value at risk" if has_value else "Members") + f" per band and {GROUPS[by].lower()}.")
        st.subheader("Members of a band")
        band = st.segmented_control("Band", [b for b, *_ in BANDS], default="high", key="pred_members_band",
                                    required=True, format_func=str.capitalize)
        low, high_edge = next((lo, hi) for name, lo, hi in BANDS if name == band)
        others = tuple(PinnedModel.from_stored(stored[kind]) for kind in ("propensity", "clv") if kind in stored)
        audience = PredictionAudience("churn_risk", low if low > 0 else None, None if band == "high" else high_edge,
                                      as_of, PinnedModel.from_stored(stored["churn"]), others)
        member_set(ctx.engine, audience, key="pred_members", who=f"with {band} churn risk, with their scores and the "
                   "reasons in words:", actor=default_author(), page="predictions",
                   count=int(bands.loc[bands["band"] == band, "members"].sum()), column_config=SCORE_COLUMNS)


def _measure(value: float | None) -> str:
    return MISSING if value is None else f"{value:.3f}"


def model_card(kind: str) -> None:
    if kind not in stored:
        st.info(f"No {kind} model yet: train one above.", icon=":material/model_training:")
        return
    card = stored[kind].model["card"]
    st.markdown(f"**{card['label']}**: {card['definition']}")
    st.caption(f"{card['why']} Trained on members as of {card['train_cutoff']} ({card['train_members']:,}; "
               f"{share(card['train_base_rate'])} {KINDS[kind].positive}), tested out of time on members as of "
               f"{card['test_cutoff']} ({card['test_members']:,}; {share(card['test_base_rate'])} "
               f"{KINDS[kind].positive}), horizon {card['horizon_days']} days. The stored model is the same recipe "
               f"refitted on the test cutoff's members, scoring as of {card['as_of']}.")
    names = {"logistic": "Logistic regression", "gbdt": "Boosted trees", "recency": "Recency alone",
             "rfm_rule": "RFM rule"}
    rows = [{"candidate": names[n] + (" (chosen)" if n == card["algorithm"] else ""),
             **{k: _measure(m.get(k)) for k in MEASURE_COLUMNS}} for n, m in card["metrics"].items()]
    if card.get("ceiling"):
        rows.append({"candidate": "Planted truth (demo ceiling)",
                     **{k: _measure(card["ceiling"].get(k)) for k in MEASURE_COLUMNS}})
    st.dataframe(pd.DataFrame(rows), hide_index=True, column_config={
        "candidate": "Score", **{k: st.column_config.TextColumn(MEASURES[k].label, help=MEASURES[k].help)
                                for k in MEASURE_COLUMNS}}, key=f"pred_{kind}_metrics")
    st.caption("Recency alone scores members by the days since their last order; the RFM rule calls the segments At "
               "Risk, Can't Lose Them, Hibernating and Lost (and members without an order in the year) churners.")
    threshold = st.slider("Threshold", 0.05, 0.95, 0.5, 0.05, key=f"pred_{kind}_threshold",
                          help="Members scoring at least this are predicted positive: higher means fewer, surer picks.")
    at = measures_at(card["score_histogram"], threshold)
    cards = st.columns(4)
    for column, name in zip(cards, ("precision", "recall", "f1", "accuracy"), strict=True):
        column.metric(MEASURES[name].label, share(at[name]), border=True, help=MEASURES[name].help)
    left, middle, right = st.columns(3)
    confusion = pd.DataFrame([[at["tp"], at["fn"]], [at["fp"], at["tn"]]],
                             index=[f"Actual {KINDS[kind].positive}", "Actual others"],
                             columns=["Predicted positive", "Predicted negative"])
    left.markdown("**Confusion matrix** (test members)")
    left.table(confusion.map(count))
    curve = pd.DataFrame(card["calibration"])
    calibration = go.Figure([go.Scatter(x=[0, 1], y=[0, 1], mode="lines", line={"dash": "dot", "color": "grey"},
                                        name="Perfect"),
                             go.Scatter(x=curve["mean_score"], y=curve["actual_rate"], mode="lines+markers",
                                        line={"color": ACCENT}, name="Model", text=curve["members"],
                                        hovertemplate="score %{x:.2f}: actual %{y:.2f} (%{text:,} members)"
                                                      "<extra></extra>")])
    calibration.update_layout(height=300, margin={"l": 0, "r": 0, "t": 30, "b": 0}, title="Calibration",
                              xaxis_title="Mean score", yaxis_title="Actual rate", showlegend=False)
    middle.plotly_chart(calibration, key=f"pred_{kind}_calibration")
    gains = pd.DataFrame(card["gains"])
    lift = px.bar(gains, x="decile", y="lift", labels={"decile": "Decile (1 = highest score)", "lift": "Lift"},
                  title="Lift by decile", color_discrete_sequence=[ACCENT])
    lift.update_layout(height=300, margin={"l": 0, "r": 0, "t": 30, "b": 0})
    right.plotly_chart(lift, key=f"pred_{kind}_gains")
    top = card["gains"][0]
    st.caption(f"The top {share(0.1, 0)} by score hold {share(top['cumulative_share'], 0)} of the "
               f"{KINDS[kind].positive} (lift {top['lift']:.1f}).")
    importance = pd.DataFrame(card["importance"]).head(10)
    importance["feature"] = importance["feature"].map(lambda n: FEATURE_BY_NAME[n].label)
    bars = px.bar(importance, x="importance", y="feature", orientation="h", color_discrete_sequence=[ACCENT],
                  labels={"importance": "Drop in PR AUC when shuffled", "feature": ""},
                  title="What the model relies on (permutation importance)")
    bars.update_yaxes(categoryorder="total ascending")
    bars.update_layout(height=360, margin={"l": 0, "r": 0, "t": 30, "b": 0})
    st.plotly_chart(bars, key=f"pred_{kind}_importance")
    with st.expander("Feature definitions"):
        st.markdown("\n".join(f"- **{f.label}**: {f.help}" for f in FEATURE_BY_NAME.values()))


if churn_tab.open:
    with churn_tab:
        model_card("churn")
if propensity_tab.open:
    with propensity_tab:
        model_card("propensity")
if clv_tab.open:
    with clv_tab:
        if "clv" not in stored:
            st.info("No CLV model yet: train one above.", icon=":material/model_training:")
        else:
            card = stored["clv"].model["card"]
            histogram, top_share = cached_clv_distribution(ctx.engine, models, as_of)
            cards = st.columns(3)
            cards[0].metric("Members valued", count(card["members"]), border=True,
                            help="Members with a purchase up to the day.")
            cards[1].metric("Repeat buyers", count(card["repeat_buyers"]), border=True,
                            help="Members with more than one purchase day: what the spend model learns from.")
            cards[2].metric(f"Top {share(0.1, 0)} hold", share(top_share), border=True,
                            help="Share of all predicted 12-month value held by the 10% most valuable members.")
            left, right = st.columns(2)
            hist = px.bar(histogram, x="bin_start", y="members", title="Predicted 12-month value",
                          labels={"bin_start": "Predicted CLV", "members": "Members"},
                          color_discrete_sequence=[ACCENT])
            hist.update_layout(height=320, margin={"l": 0, "r": 0, "t": 30, "b": 0})
            left.plotly_chart(hist, key="pred_clv_hist")
            by = right.segmented_control("Customer equity by", ["acquisition_channel", "tier", "cohort"],
                                         default="acquisition_channel", key="pred_equity_by", required=True,
                                         format_func=GROUPS.get)
            equity = cached_customer_equity(ctx.engine, models, as_of, by)
            equity[by] = equity[by].astype(str)
            eq = px.bar(equity, x="predicted_clv", y=by, orientation="h", labels={"predicted_clv": "Predicted "
                        "12-month value", by: ""}, color_discrete_sequence=[ACCENT], custom_data=["members"])
            eq.update_layout(height=320, margin={"l": 0, "r": 0, "t": 10, "b": 0})
            right.plotly_chart(eq, key="pred_equity")
            st.markdown("**Fitted parameters** (time in " + card["unit"] + "s)")
            parameters = pd.DataFrame(card["parameters"])
            parameters["model"] = parameters["model"].map(CLV_MODEL_NAMES).fillna(parameters["model"])
            st.dataframe(parameters, hide_index=True, key="pred_clv_params", height=38 + 35 * len(parameters),
                         column_config={"model": "Model", "parameter": "Parameter",
                                        "value": st.column_config.NumberColumn("Estimate", format="%.4f")})
            validation = card.get("validation")
            if validation:
                st.caption(f"Validation: fitted on purchases up to {validation['calibration_end']}, predicting the "
                           f"repeat purchases up to {validation['holdout_end']}.")
                left, right = st.columns(2)
                holdout = pd.DataFrame(validation["holdout"])
                groups = holdout["calibration_purchases"].astype(str)
                chart = go.Figure([go.Bar(x=groups, y=holdout["actual"], name="Actual", marker_color="#bdbdbd"),
                                   go.Bar(x=groups, y=holdout["predicted"], name="Predicted", marker_color=ACCENT)])
                chart.update_layout(height=320, barmode="group", title="Holdout purchases by calibration purchases",
                                    margin={"l": 0, "r": 0, "t": 30, "b": 0}, legend={"orientation": "h"})
                left.plotly_chart(chart, key="pred_clv_holdout")
                tracking = pd.DataFrame(validation["tracking"])
                track = go.Figure([go.Scatter(x=tracking["period_start"], y=tracking["cumulative_actual"],
                                              name="Actual", line={"color": "#636363"}),
                                   go.Scatter(x=tracking["period_start"], y=tracking["cumulative_predicted"],
                                              name="Predicted", line={"color": ACCENT, "dash": "dot"})])
                track.update_layout(height=320, title="Cumulative repeat purchases", legend={"orientation": "h"},
                                    margin={"l": 0, "r": 0, "t": 30, "b": 0})
                right.plotly_chart(track, key="pred_clv_tracking")
