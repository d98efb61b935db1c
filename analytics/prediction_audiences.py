"""Predictions as audiences and targeting conditions: members whose score lies in a range, scored in the warehouse
by a pinned model version.

* The targeting fields ``churn_risk``, ``purchase_propensity``, ``predicted_clv``, ``p_alive`` and
  ``expected_orders`` (``between [low, high]``) score members as of the audience window's last day. A condition
  carries its model by value (``"model": {"kind": ..., "version": ..., ...}``), so a saved audience records the
  version it used and re-creates the same members, and the warehouse query needs nothing from the app-state
  database. Typed in Campaign targeting's table, a condition takes the current version of its model.
* The ``prediction`` audience kind is the same cut handed over from the Predictions page (a risk band, a value
  range), with "Use in Campaign targeting".

Members are selected with :func:`analytics.predictions.score_select`, the same SQL the Predictions page lists and
exports, so a preview counts exactly the members the page shows. On an embedded DuckDB warehouse a condition reads
the scores back from the score store when they were stored for this model, day and warehouse state (by
:func:`store_scores`, when a model is trained or scored): the same members, without scoring them again
(:mod:`analytics.storage.score_store`).
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any, ClassVar

import pandas as pd
import pyarrow as pa
from sqlalchemy import Boolean, ColumnElement, Engine, Select, func, select
from sqlalchemy.ext.compiler import compiles

from analytics import audiences
from analytics.audiences import Audience, audience_kind
from analytics.errors import SpecError
from analytics.i18n import N_, _
from analytics.storage.contract import members
from analytics.storage.score_store import store_for
from analytics.targeting_fields import FIELDS, CompileContext, RangeField

#: Score -> the model kind that gives it.
SCORES: dict[str, str] = {"churn_risk": "churn", "purchase_propensity": "propensity", "predicted_clv": "clv",
                          "p_alive": "clv", "expected_orders": "clv"}
MODEL_KINDS = ("churn", "propensity", "clv")
#: Most JSON a pinned model may take (a boosted model with its card is the largest, about 45 KB).
MAX_MODEL_CHARS = 500_000


@dataclass(frozen=True)
class PinnedModel:
    """A model version carried by value: its kind, version and data as the registry stores it."""

    kind: str
    version: int
    data: Mapping[str, Any]

    def __hash__(self) -> int:
        return hash((self.kind, self.version))

    def to_json(self) -> dict[str, Any]:
        return {**self.data, "kind": self.kind, "version": self.version}

    @classmethod
    def from_json(cls, value: Any, kind: str) -> PinnedModel:
        if not isinstance(value, Mapping) or value.get("kind") != kind:
            raise SpecError(f'A prediction condition needs its {kind} model: "model": {{"kind": "{kind}", ...}}.')
        version = value.get("version")
        if isinstance(version, bool) or not isinstance(version, int):
            raise SpecError('A prediction condition\'s model needs its "version" (a whole number).')
        return cls(kind, version, {k: v for k, v in value.items() if k != "version"})

    @classmethod
    def from_stored(cls, stored: Any) -> PinnedModel:
        """From a registry row (:class:`analytics.storage.model_registry.StoredModel`)."""
        return cls(stored.kind, stored.version, {**stored.model, "kind": stored.kind})

    @property
    def label(self) -> str:
        return f"{self.kind} v{self.version}"


@dataclass(frozen=True)
class ScoreRange:
    """``low <= score <= high`` (either may be None) under a pinned model."""

    low: float | None
    high: float | None
    model: PinnedModel


def scored_members(score: str, low: float | None, high: float | None, model: PinnedModel, as_of: date,
                   within: Any = None) -> Select:
    """The ids of members whose ``score`` on ``as_of`` lies in ``[low, high]`` (among ``within``, a one-column
    ``member_id`` CTE, when given: only they are scored), computed in the warehouse."""
    from analytics import predictions  # scikit-learn is loaded only when a prediction is used

    models = predictions.Models.from_stored({model.kind: dict(model.data)})
    scored = predictions.score_select(models, as_of, within).subquery("scored")
    return select(scored.c.member_id).where(_in_range(scored.c[score], low, high))


def stored_members(path: Path, score: str, low: float | None, high: float | None) -> Select:
    """The ids of members whose ``score`` lies in ``[low, high]``, read from a score store file
    (:mod:`analytics.storage.score_store`; only a DuckDB warehouse can read it)."""
    stored = func.read_parquet(str(path)).table_valued("member_id", score).alias("stored")
    return select(stored.c.member_id).where(_in_range(stored.c[score], low, high))


def _in_range(column: Any, low: float | None, high: float | None) -> ColumnElement[bool]:
    # Each mention of a computed score is the model's whole expression again (the warehouse inlines it): say it
    # once where one bound does (a missing score fails a comparison anyway).
    if low is not None and high is not None:
        return column.between(low, high)
    if low is not None or high is not None:
        return column >= low if low is not None else column <= high
    return column.is_not(None)


class ScoreCondition(ColumnElement[bool]):
    """``member_id IN`` the members whose score lies in a range: read from the warehouse's score store when it
    holds this model's scores on this day for the warehouse as it is now, else computed in the warehouse
    (:func:`scored_members`). Decided each time a statement is compiled, so it is never cached."""

    inherit_cache = False
    type = Boolean()

    def __init__(self, member_id: Any, score: str, value: ScoreRange, as_of: date, within: Any = None) -> None:
        self.member_id, self.score, self.value, self.as_of, self.within = member_id, score, value, as_of, within


@compiles(ScoreCondition)
def _compile_score_condition(element: ScoreCondition, compiler: Any, **kw: Any) -> str:
    value = element.value
    store = store_for(compiler.dialect)
    path = store.find(value.model.kind, value.model.data, element.as_of) if store is not None else None
    members_in = (stored_members(path, element.score, value.low, value.high) if path is not None else
                  scored_members(element.score, value.low, value.high, value.model, element.as_of, element.within))
    return compiler.process(element.member_id.in_(members_in), **kw)


def kind_scores(kind: str) -> tuple[str, ...]:
    """The scores a model kind gives (what the score store keeps of it)."""
    return tuple(score for score, of in SCORES.items() if of == kind)


def store_scores(engine: Engine, model: PinnedModel, as_of: date,
                 computed: tuple[str, pd.DataFrame] | None = None) -> Path | None:
    """Score every member with ``model`` on ``as_of`` in the warehouse and keep the scores in its score store, so
    targeting conditions on them read them back; where the store already holds them, nothing is computed.
    ``computed``: the warehouse's state (:meth:`ScoreStore.state`, read before scoring) and every member's scores
    the caller computed already (:func:`analytics.predictions.score_members`), kept instead of scoring again.
    Returns the file, or None: the warehouse has no store (it is not a DuckDB file)."""
    from analytics import predictions

    store = store_for(engine.dialect)
    if store is None:
        return None
    if (kept := store.find(model.kind, model.data, as_of)) is not None:
        return kept
    columns = ["member_id", *kind_scores(model.kind)]
    if computed is not None:
        state, scores = computed
        return store.write(model.kind, model.data, as_of, state,
                           pa.Table.from_pandas(scores[columns], preserve_index=False))
    state = store.state()  # before scoring: a write meanwhile leaves these scores stale, never read
    models = predictions.Models.from_stored({model.kind: dict(model.data)})
    scored = predictions.score_select(models, as_of).subquery("scored")
    with engine.connect() as conn, warnings.catch_warnings():
        warnings.filterwarnings("ignore", "Arrow output on a DB-API result")  # one copy of a few columns
        result = conn.execute(select(*(scored.c[name] for name in columns)))
        table = result.cursor.to_arrow_table()
        result.close()
    return store.write(model.kind, model.data, as_of, state, table)


class PredictionField(RangeField):
    """A score of a pinned model, ``between [low, high]``, as of the window's last day."""

    extra_keys = ("model",)
    narrowed = True

    def parse_condition(self, op: str, item: Mapping[str, Any], depth: int) -> ScoreRange:
        low, high = self.parse(op, item.get("value"), depth)
        model = item.get("model")
        if isinstance(model, Mapping) and len(str(model)) > MAX_MODEL_CHARS:
            raise SpecError(f"The model pinned in a {self.key} condition is too large.")
        return ScoreRange(low, high, PinnedModel.from_json(model, SCORES[self.key]))

    def condition_json(self, value: ScoreRange) -> dict[str, Any]:
        return {"value": [value.low, value.high], "model": value.model.to_json()}

    def from_text(self, op: str, text: str, models: Mapping[str, Any] | None = None) -> ScoreRange:
        low, high = super().from_text(op, text)
        kind = SCORES[self.key]
        if not models or models.get(kind) is None:
            raise SpecError(_("{field}: there is no {kind} model yet; train one on the Predictions page or with "
                              "{command}.").format(field=_(self.label), kind=kind,
                                                   command=f"`python -m analytics models train --model {kind}`"))
        return ScoreRange(low, high, models[kind])

    def text(self, value: ScoreRange) -> str:
        return super().text((value.low, value.high))

    def where(self, op: str, value: ScoreRange, ctx: CompileContext) -> ColumnElement[bool]:
        return ScoreCondition(members.c.member_id, self.key, value, ctx.window.end, ctx.candidates)


for _field in (
    PredictionField("churn_risk", N_("Churn risk"), N_("The probability of no completed order in the next 90 days "
                    "(the churn model), as of the window's last day; 0 to 1.")),
    PredictionField("purchase_propensity", N_("Purchase propensity"), N_("The probability of a completed order in "
                    "the next 30 days (the propensity model), as of the window's last day; 0 to 1.")),
    PredictionField("predicted_clv", N_("Predicted CLV"), N_("Predicted 12-month value (expected orders x expected "
                    "spend), as of the window's last day.")),
    PredictionField("p_alive", N_("Probability active"), N_("The probability that the member is still an active "
                    "customer (BG/NBD); 0 to 1.")),
    PredictionField("expected_orders", N_("Expected orders"), N_("Expected purchase days in the next 12 months "
                    "(BG/NBD).")),
):
    FIELDS[_field.key] = _field


@audience_kind
@dataclass(frozen=True)
class PredictionAudience(Audience):
    """The members whose score lies in a range on a day, under a pinned model (a risk band, a value range)."""

    kind: ClassVar[str] = "prediction"
    label: ClassVar[str] = "prediction"
    keys: ClassVar[frozenset[str]] = frozenset({"score", "low", "high", "as_of", "model", "shown_with"})

    score: str
    low: float | None
    high: float | None
    as_of: date
    model: PinnedModel
    #: Other models whose scores are listed beside each member (they do not change who is in the audience).
    shown_with: tuple[PinnedModel, ...] = ()

    def __post_init__(self) -> None:
        if self.score not in SCORES:
            raise SpecError(f"Unknown score {self.score!r}; choose one of {', '.join(SCORES)}.")
        if self.model.kind != SCORES[self.score]:
            raise SpecError(f"{self.score} comes from the {SCORES[self.score]} model, not {self.model.kind}.")
        kinds = [self.model.kind, *(m.kind for m in self.shown_with)]
        if len(set(kinds)) != len(kinds):
            raise SpecError("A prediction audience lists each model once (its own and those shown with it).")

    def member_ids(self) -> Select:
        return scored_members(self.score, self.low, self.high, self.model, self.as_of)

    def annotations(self, bind: Any) -> Any:
        """Each member's scores (this audience's model and those shown with it) and, for churn and propensity,
        the reasons in words for this audience's score."""
        from analytics import predictions

        models = predictions.Models.from_stored({m.kind: dict(m.data) for m in (self.model, *self.shown_with)})
        return predictions.explained_scores(bind, models, self.as_of, self.member_ids(),
                                            self.score if self.model.kind != "clv" else None)

    def describe(self) -> str:
        low = "" if self.low is None else f"{self.low:g}"
        high = "" if self.high is None else f"{self.high:g}"
        return _("{score} {low}–{high} on {day} ({model})").format(score=_(FIELDS[self.score].label), low=low,
                                                                     high=high, day=self.as_of, model=self.model.label)

    def body(self) -> dict[str, Any]:
        body = {"score": self.score, "low": self.low, "high": self.high, "as_of": self.as_of.isoformat(),
                "model": self.model.to_json()}
        if self.shown_with:
            body["shown_with"] = [m.to_json() for m in self.shown_with]
        return body

    @classmethod
    def from_body(cls, data: Mapping[str, Any], depth: int) -> PredictionAudience:
        score = audiences.text(data, "score", 40)
        if score not in SCORES:
            raise SpecError(f"Unknown score {score!r}; choose one of {', '.join(SCORES)}.")
        low, high = (None if data.get(k) is None else audiences.number(data[k], f'"{k}"') for k in ("low", "high"))
        shown = data.get("shown_with") or []
        if not isinstance(shown, list) or len(shown) > len(MODEL_KINDS) - 1:
            raise SpecError('"shown_with" is a list of at most two other models.')
        kinds = [m.get("kind") if isinstance(m, Mapping) else None for m in shown]
        if any(kind not in MODEL_KINDS for kind in kinds):
            raise SpecError(f'Each model in "shown_with" needs its "kind": one of {", ".join(MODEL_KINDS)}.')
        if any(len(str(m)) > MAX_MODEL_CHARS for m in shown):
            raise SpecError('A model in "shown_with" is too large.')
        shown_with = tuple(PinnedModel.from_json(m, kind) for m, kind in zip(shown, kinds, strict=True))
        return cls(score, low, high, audiences.day(data["as_of"], '"as_of"'),
                   PinnedModel.from_json(data["model"], SCORES[score]), shown_with)
