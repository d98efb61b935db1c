"""Audiences: sets of members any analysis can hand to another, as typed, frozen objects.

An audience is made by the analysis that shows the members (an RFM segment, a cluster, a tag, a heatmap cell, a
funnel drop-off, a basket rule's "bought A, never B", a campaign audience built in Campaign targeting) and used
wherever members are listed, counted, exported or targeted. It knows its members as a SQL select
(:meth:`Audience.member_ids`), so every use runs in the warehouse.

JSON is read and written only at the edges: a downloaded or uploaded definition, a saved audience, the command
line. There the envelope ``{"version": 1, "kind": ..., ...}`` is parsed once (:func:`parse_audience`), and
everything else passes the typed object. Each kind is one class registered here with :func:`audience_kind`;
:data:`KIND_MODULES` names the modules that define them, so adding a kind is one class (and, for a new module,
one name). A definition's keys are checked strictly: a key the kind does not know is refused, with its name.
"""

from __future__ import annotations

import hashlib
import importlib
import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict
from datetime import date
from typing import Any, ClassVar, TypeVar

import pandas as pd
from sqlalchemy import Select

from analytics.errors import SpecError
from analytics.filters import Filters, Scope
from analytics.i18n import _, using

SPEC_VERSION = 1
#: The modules whose import registers the audience kinds (each defines its kind next to its analysis).
KIND_MODULES: tuple[str, ...] = ("analytics.rfm", "analytics.cluster_audiences", "analytics.tags", "analytics.funnels",
                                 "analytics.rule_views", "analytics.heatmaps", "analytics.targeting",
                                 "analytics.prediction_audiences",
                                 "analytics.programme_points", "analytics.programme_whatif")
#: Keys every definition may carry besides its kind's own.
ENVELOPE_KEYS = frozenset({"version", "kind", "source"})
#: The largest audience definition accepted as JSON text (a campaign audience with its nested definitions).
MAX_JSON_BYTES = 2_000_000


class Audience:
    """A set of members. Subclasses are frozen dataclasses registered with :func:`audience_kind`."""

    kind: ClassVar[str]
    #: What the kind is called in the app ("RFM segment").
    label: ClassVar[str]
    #: The definition's keys besides the envelope's (version, kind, source).
    keys: ClassVar[frozenset[str]]

    def member_ids(self) -> Select:
        """A one-column select of the audience's member ids (distinct)."""
        raise NotImplementedError

    def describe(self) -> str:
        """One line saying which members these are ("RFM segments Champions, Loyal")."""
        raise NotImplementedError

    def title(self) -> str:
        """The description as the reader reads it, in the run's language (:meth:`describe` stays one wording: it
        goes into the definition's JSON, file names and the audit log). By default the description itself."""
        return self.describe()

    def annotations(self, bind: Any) -> pd.DataFrame | None:
        """Columns this kind adds beside each member in lists and exports (``member_id`` and more), or None."""
        return None

    def body(self) -> dict[str, Any]:
        """The kind's own JSON keys (see :meth:`to_json`)."""
        raise NotImplementedError

    @classmethod
    def from_body(cls, data: Mapping[str, Any], depth: int) -> Audience:
        """The object from its JSON keys (already checked to be known keys); raises SpecError."""
        raise NotImplementedError

    def to_json(self) -> dict[str, Any]:
        """The definition as JSON-ready data: ``{"version": 1, "kind": ..., ..., "source": ...}``. The source is
        described in English whatever the reader's language: a definition (and its fingerprint) is the same for
        everyone."""
        with using("en"):
            source = self.describe()
        return {"version": SPEC_VERSION, "kind": self.kind, **self.body(), "source": source}

    def fingerprint(self) -> str:
        """A stable digest of the definition: what caches key on. A user's scope (row-level restriction, members
        left out) is not part of the JSON definition but changes the members, so it is part of the digest."""
        data: Any = self.to_json()
        scopes = [asdict(scope) for scope in (v.scope if isinstance(v, Filters) else v for v in vars(self).values())
                  if isinstance(scope, Scope) and not scope.is_open]
        if scopes:
            data = [data, scopes]
        text = json.dumps(data, sort_keys=True, ensure_ascii=False, default=str)
        return hashlib.sha256(text.encode()).hexdigest()


A = TypeVar("A", bound=type[Audience])
KINDS: dict[str, type[Audience]] = {}


def audience_kind(cls: A) -> A:
    """Register an audience kind (a class decorator)."""
    known = KINDS.get(cls.kind)
    if known is not None and known is not cls:
        if known.__qualname__ != cls.__qualname__:
            raise RuntimeError(f"two audience kinds named {cls.kind!r}")
        return cls  # the same module run again as __main__ (a child process): keep the first
    KINDS[cls.kind] = cls
    return cls


def kinds() -> dict[str, type[Audience]]:
    """Every registered kind (importing the modules that define them on first use)."""
    for module in KIND_MODULES:
        importlib.import_module(module)
    return KINDS


def noun(kind: type[Audience]) -> str:
    """How messages name a kind's audiences: "cluster audience", "tag audience"; a campaign's is "audience"."""
    return _("{kind} audience").format(kind=_(kind.label)) if kind.label else _("audience")


def parse_audience(data: Any, *, depth: int = 0, allowed: Sequence[str] | None = None) -> Audience:
    """The typed audience a JSON definition stands for; raises :class:`SpecError` saying what to change.

    ``allowed`` restricts the kinds (e.g. a "segment" condition takes any kind but a campaign audience)."""
    known = kinds()
    if not isinstance(data, Mapping):
        raise SpecError(_("An audience definition is a JSON object with \"version\" and \"kind\"."))
    kind = data.get("kind")
    choices = [k for k in known if allowed is None or k in allowed]
    if kind not in choices:
        if len(choices) == 1:
            raise SpecError(_('Not a version-{version} {noun}: it has "kind": {kind}.').format(
                version=SPEC_VERSION, noun=noun(known[choices[0]]), kind=repr(kind)))
        raise SpecError(_("Unknown audience kind {kind}; expected one of {kinds}.").format(kind=repr(kind),
                                                                                          kinds=", ".join(choices)))
    cls = known[kind]
    if data.get("version") != SPEC_VERSION or isinstance(data.get("version"), bool):
        raise SpecError(_('Not a version-{version} {noun}: it needs "version": {version}.').format(
            version=SPEC_VERSION, noun=noun(cls)))
    unknown = sorted(set(data) - cls.keys - ENVELOPE_KEYS, key=str)
    if unknown:
        raise SpecError(_("Not a valid {noun}: it has keys it does not know: {keys}.").format(
            noun=noun(cls), keys=", ".join(map(str, unknown))))
    source = data.get("source")
    if source is not None and not isinstance(source, str):
        raise SpecError(_('"source" is a description in text.'))
    try:
        return cls.from_body(data, depth)
    except (KeyError, TypeError, ValueError, AttributeError, IndexError) as problem:  # SpecError is a ValueError
        detail = (_("{key} is missing").format(key=repr(problem.args[0])) if isinstance(problem, KeyError)
                  else str(problem))
        raise SpecError(_("Not a valid {noun}: {problem}").format(noun=noun(cls), problem=detail).rstrip(".。")
                        + _(".")) from None


def loads(text: str | bytes, *, allowed: Sequence[str] | None = None) -> Audience:
    """An audience from JSON text (a file upload, a saved row): bounded in size, NaN and Infinity refused."""
    if len(text) > MAX_JSON_BYTES:
        raise SpecError(_("The audience definition is {size} bytes; at most {most} are accepted.").format(
            size=f"{len(text):,}", most=f"{MAX_JSON_BYTES:,}"))
    try:
        data = json.loads(text, parse_constant=refuse_constant)
    except (UnicodeDecodeError, json.JSONDecodeError) as problem:
        raise SpecError(_("The audience definition is not valid JSON: {problem}.").format(problem=problem)) from None
    except RecursionError:
        raise SpecError(_("The audience definition nests too deeply.")) from None
    return parse_audience(data, allowed=allowed)


def refuse_constant(name: str) -> float:
    raise SpecError(_("The audience definition holds {name}, which is not a number.").format(name=name))


def dumps(audience: Audience) -> str:
    """The definition as indented JSON text (downloads)."""
    return json.dumps(audience.to_json(), indent=2, ensure_ascii=False)


# --- reading the keys of a definition -------------------------------------------------------------------

def text(data: Mapping[str, Any], key: str, limit: int = 500) -> str:
    value = data[key]
    if not isinstance(value, str) or len(value) > limit:
        raise SpecError(_('"{key}" must be text of at most {limit} characters.').format(key=key, limit=limit))
    return value


def texts(data: Mapping[str, Any], key: str, *, limit: int = 10_000, empty: bool = False) -> tuple[str, ...]:
    value = data[key]
    if (not isinstance(value, list | tuple) or (not value and not empty) or len(value) > limit
            or not all(isinstance(v, str) for v in value)):
        message = (_('"{key}" must be a list of at most {limit} texts.') if empty
                   else _('"{key}" must be a non-empty list of at most {limit} texts.'))
        raise SpecError(message.format(key=key, limit=f"{limit:,}"))
    return tuple(value)


def whole(data: Mapping[str, Any], key: str, low: int, high: int) -> int:
    value = data[key]
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise SpecError(_('"{key}" must be a whole number from {low} to {high}.').format(key=key, low=f"{low:,}",
                                                                                         high=f"{high:,}"))
    return value


#: The largest magnitude a number in a definition may have (money, counts, days: far below it).
MAX_NUMBER = 1e15


def number(value: Any, what: str) -> float | int:
    """A JSON number (not a boolean, not NaN or infinite, at most :data:`MAX_NUMBER` in size), kept as given (int
    stays int)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise SpecError(_("{what} must be a number.").format(what=what))
    try:
        finite = math.isfinite(value) and abs(value) <= MAX_NUMBER
    except OverflowError:  # an integer too large for a float
        finite = False
    if not finite:
        raise SpecError(_("{what} must be a number of at most {most} in size.").format(what=what,
                                                                                      most=f"{MAX_NUMBER:.0e}"))
    return value


def day(value: Any, what: str) -> date:
    if not isinstance(value, str):
        raise SpecError(_("{what} must be a date YYYY-MM-DD.").format(what=what))
    try:
        parsed = date.fromisoformat(value)
    except ValueError:
        raise SpecError(_("{what}: {value} is not a date YYYY-MM-DD.").format(what=what, value=repr(value))) from None
    if not 1900 <= parsed.year <= 2999:
        raise SpecError(_("{what}: {value} is outside the years 1900 to 2999.").format(what=what, value=value))
    return parsed


def window(data: Mapping[str, Any], *, channels: bool = True) -> Filters:
    """The date range (and channel and tier filters) a definition was made under: ``start``, ``end``,
    ``channels``, ``tiers``."""
    for key in ("start", "end"):
        if key not in data:
            raise SpecError(_('The audience needs a window: "{key}" is missing (YYYY-MM-DD).').format(key=key))
    start, end = day(data["start"], '"start"'), day(data["end"], '"end"')
    if end < start:
        raise SpecError(_("The audience window ends ({end}) before it starts ({start}).").format(end=end,
                                                                                                start=start))
    chosen = texts(data, "channels", limit=100, empty=True) if channels and "channels" in data else ()
    tiers = texts(data, "tiers", limit=100, empty=True) if "tiers" in data else ()
    return Filters(start, end, chosen, tiers)


def window_body(filters: Filters, *, channels: bool = True) -> dict[str, Any]:
    """The inverse of :func:`window`."""
    body = filters.to_spec()
    if not channels:
        body.pop("channels")
    return body

