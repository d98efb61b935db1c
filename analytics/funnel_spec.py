"""Funnel definitions: steps (an event type, optionally narrowed), the window, the order mode and the unit, as a
serialisable :class:`FunnelSpec`; parsing the command line's step and window syntax; the metrics' help. The SQL
that follows units through a funnel is :mod:`analytics.funnels`.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

import pandas as pd
from sqlalchemy import select

from analytics.errors import InputError
from analytics.i18n import DEFAULT_LANGUAGE, N_, _, code_label, language
from analytics.storage.contract import EVENT_TYPES, events, products
from analytics.storage.db import Bind, connection

Mode = Literal["ordered", "strict", "any"]
Unit = Literal["member", "session"]
MODES: tuple[str, ...] = ("ordered", "strict", "any")
UNITS: tuple[str, ...] = ("member", "session")
MIN_STEPS, MAX_STEPS = 2, 8
MAX_WINDOW_SECONDS = 366 * 86_400
#: What a step can be narrowed by: the product's category, or the event's page, device or source.
STEP_FILTERS: tuple[str, ...] = ("category", "page", "device", "source")
#: Breakdown dimensions read from the entry event (first touch) ...
EVENT_DIMENSIONS: tuple[str, ...] = ("device", "source", "page")
#: ... and from the unit's member (current values; anonymous sessions show as missing).
MEMBER_DIMENSIONS: tuple[str, ...] = (
    "tier", "region", "city", "gender", "acquisition_channel", "consent_email", "consent_sms", "consent_push",
)
DIMENSIONS: tuple[str, ...] = MEMBER_DIMENSIONS[:2] + EVENT_DIMENSIONS + MEMBER_DIMENSIONS[2:]
#: Time-to-convert histogram bins, in seconds: [lower, upper) with a label.
TIME_BINS: tuple[tuple[float, float, str], ...] = (
    (0, 60, N_("< 1 min")), (60, 300, N_("1–5 min")), (300, 900, N_("5–15 min")), (900, 3_600, N_("15–60 min")),
    (3_600, 3 * 3_600, N_("1–3 h")), (3 * 3_600, 12 * 3_600, N_("3–12 h")), (12 * 3_600, 86_400, N_("12–24 h")),
    (86_400, 3 * 86_400, N_("1–3 days")), (3 * 86_400, 7 * 86_400, N_("3–7 days")),
    (7 * 86_400, float("inf"), N_("7 days +")),
)
#: The metrics' help, in English (translated where shown: ``_(METRIC_HELP[name])``).
METRIC_HELP: dict[str, str] = {
    "units": N_("Units (members or sessions) whose best attempt reached this step."),
    "overall_conversion": N_("Units at this step / units at step 1."),
    "step_conversion": N_("Units at this step / units at the previous step."),
    "dropped": N_("Units that reached the previous step but not this one."),
    "median_seconds_to_convert": N_("Median time from completing the previous step to completing this one, over "
                                    "the units that reached this step (best attempt)."),
    "p90_seconds_to_convert": N_("90th percentile of the same time."),
    "median_seconds_to_last": N_("Median time from step 1 to the last step, over the units that reached the last "
                                 "step (best attempt)."),
}
#: How a reader names each order mode, unit, step filter and breakdown dimension (translated where shown).
MODE_LABELS: dict[str, str] = {"ordered": N_("Ordered"), "strict": N_("Strict"), "any": N_("Any order")}
UNIT_LABELS: dict[str, str] = {"member": N_("Members"), "session": N_("Sessions")}
DIMENSION_LABELS: dict[str, str] = {
    "tier": N_("Tier"), "region": N_("Region"), "city": N_("City"), "gender": N_("Gender"),
    "acquisition_channel": N_("Acquisition channel"), "consent_email": N_("Consent email"),
    "consent_sms": N_("Consent sms"), "consent_push": N_("Consent push"), "device": N_("Device"),
    "source": N_("Source"), "page": N_("Page"), "category": N_("Category"),
}
_WINDOW_UNITS = {"s": 1, "m": 60, "h": 3_600, "d": 86_400, "w": 604_800}


@dataclass(frozen=True)
class FunnelStep:
    """One step: an event type, optionally narrowed by product category, page, device or source."""

    event_type: str
    category: str | None = None
    page: str | None = None
    device: str | None = None
    source: str | None = None

    def __post_init__(self) -> None:
        if self.event_type not in EVENT_TYPES:
            raise InputError(_("Unknown event type {event!r}; choose from {choices}.").format(
                event=self.event_type, choices=", ".join(EVENT_TYPES)))
        for name in STEP_FILTERS:
            value = getattr(self, name)
            if value is not None and not isinstance(value, str):
                raise InputError(_("The {name} filter must be text, not {value!r}.").format(name=name, value=value))
            if value == "":
                object.__setattr__(self, name, None)

    @property
    def filters(self) -> dict[str, str]:
        return {name: getattr(self, name) for name in STEP_FILTERS if getattr(self, name) is not None}

    @property
    def label(self) -> str:
        """``add_to_cart`` or ``product_view (category: Pet Food)``: English names a step by its event type and
        filters as the command line and saved funnels write them; other languages by their names for them
        (``加入购物车``, ``浏览商品（类目：Pet Food）``). Filter values are data, shown as stored."""
        if language() == DEFAULT_LANGUAGE:
            narrowed = ", ".join(f"{k}: {v}" for k, v in self.filters.items())
            return f"{self.event_type} ({narrowed})" if narrowed else self.event_type
        name = code_label(self.event_type)
        narrowed = ", ".join(_("{filter}: {value}").format(filter=_(DIMENSION_LABELS[k]), value=v)
                             for k, v in self.filters.items())
        return _("{step} ({filters})").format(step=name, filters=narrowed) if narrowed else name


@dataclass(frozen=True)
class FunnelSpec:
    """A whole funnel definition; serialisable (``to_dict``/``from_dict``) for saved audiences."""

    steps: tuple[FunnelStep, ...]
    window_seconds: int = 7 * 86_400
    mode: Mode = "ordered"
    unit: Unit = "member"
    labels: tuple[str, ...] = field(default=(), compare=False)

    def __post_init__(self) -> None:
        steps = tuple(s if isinstance(s, FunnelStep) else FunnelStep(**s) for s in self.steps)
        object.__setattr__(self, "steps", steps)
        if not MIN_STEPS <= len(steps) <= MAX_STEPS:
            raise InputError(_("A funnel has {low} to {high} steps, not {n}.").format(low=MIN_STEPS, high=MAX_STEPS,
                                                                                     n=len(steps)))
        if not 0 < self.window_seconds <= MAX_WINDOW_SECONDS:
            raise InputError(_("The conversion window must be longer than 0 and at most 366 days."))
        if self.mode not in MODES:
            raise InputError(_("Unknown order mode {mode!r}; choose ordered, strict or any.").format(mode=self.mode))
        if self.unit not in UNITS:
            raise InputError(_("Unknown unit {unit!r}; choose member or session.").format(unit=self.unit))

    @property
    def step_labels(self) -> list[str]:
        return [f"{i}. {s.label}" for i, s in enumerate(self.steps, start=1)]

    def to_dict(self) -> dict[str, Any]:
        return {"steps": [{k: v for k, v in asdict(s).items() if v is not None} for s in self.steps],
                "window_seconds": self.window_seconds, "mode": self.mode, "unit": self.unit}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> FunnelSpec:
        return cls(tuple(FunnelStep(**s) for s in data["steps"]), int(data["window_seconds"]), data["mode"],
                   data["unit"])


def parse_window(text: str) -> int:
    """Seconds in a window written as ``90s``, ``30m``, ``12h``, ``7d`` or ``2w``."""
    match = re.fullmatch(r"\s*(\d+)\s*([smhdw])\s*", text.lower())
    if not match or int(match.group(1)) == 0:
        raise InputError(_("{text!r} is not a window such as 30m, 12h or 7d.").format(text=text))
    return int(match.group(1)) * _WINDOW_UNITS[match.group(2)]


def parse_steps(text: str) -> tuple[FunnelStep, ...]:
    """Steps written as ``product_view:category=Pet Food;device=app,add_to_cart,purchase``: comma
    between steps, ``:`` before a step's filters, ``;`` between filters."""
    steps = []
    for part in (p.strip() for p in text.split(",")):
        if not part:
            continue
        kind, _colon, narrowed = part.partition(":")
        filters: dict[str, str] = {}
        for pair in (f for f in narrowed.split(";") if f.strip()):
            name, equals, value = pair.partition("=")
            if not equals or name.strip() not in STEP_FILTERS:
                raise InputError(_("{pair!r} is not a step filter; write name=value with name one of {names}.")
                                 .format(pair=pair.strip(), names=", ".join(STEP_FILTERS)))
            filters[name.strip()] = value.strip()
        steps.append(FunnelStep(kind.strip(), **filters))
    return tuple(steps)


def format_seconds(seconds: float | None) -> str:
    """A duration for people: ``45 s``, ``12 min``, ``3.5 h``, ``2.1 days``."""
    if seconds is None or pd.isna(seconds):
        return "–"
    if seconds < 60:
        return _("{n} s").format(n=f"{seconds:.0f}")
    if seconds < 3_600:
        return _("{n} min").format(n=f"{seconds / 60:.0f}")
    if seconds < 86_400:
        return _("{n} h").format(n=f"{seconds / 3_600:.1f}")
    return _("{n} days").format(n=f"{seconds / 86_400:.1f}")


#: How many distinct (page, device, source) combinations :func:`step_filter_options` reads in one pass; a
#: clickstream with more (pages recorded as URLs, say) is read one column at a time instead.
COMBINATIONS_AT_ONCE = 10_000
_EVENT_FILTERS = ("page", "device", "source")


def step_filter_options(bind: Bind) -> dict[str, tuple[str, ...]]:
    """The values a step filter can take: product categories, and the pages, devices and sources
    seen in events (sorted).

    One pass over the events reads their distinct (page, device, source) combinations, a few hundred in a
    shop (216 in the demo), instead of one pass per column: the Funnels page's first visit on PostgreSQL at
    50,000 members spent 1.0 s here, now 0.35 s. Past :data:`COMBINATIONS_AT_ONCE` combinations it reads
    each column on its own, so the values are the same either way."""
    e = events.c
    columns = [e[name] for name in _EVENT_FILTERS]
    with connection(bind) as conn:
        categories = [v for (v,) in conn.execute(select(products.c.category).distinct())]
        combinations = conn.execute(select(*columns).group_by(*columns).limit(COMBINATIONS_AT_ONCE + 1)).all()
        if len(combinations) <= COMBINATIONS_AT_ONCE:
            seen = {name: [row[i] for row in combinations] for i, name in enumerate(_EVENT_FILTERS)}
        else:
            seen = {name: [v for (v,) in conn.execute(select(column).distinct())]
                    for name, column in zip(_EVENT_FILTERS, columns, strict=True)}
    return {"category": _sorted_values(categories), **{name: _sorted_values(seen[name]) for name in _EVENT_FILTERS}}


def _sorted_values(values: Iterable[str | None]) -> tuple[str, ...]:
    return tuple(sorted({v for v in values if v is not None}))
