"""The known values of campaign targeting's choice fields, and what a user typed checked against them.

A value that exists nowhere (``"beauty"`` for the category ``Beauty``, an empty value, a misspelt region) matches
nobody without a word. Each choice field declares where its known values come from (:attr:`Field.known
<analytics.targeting_fields.Field.known>`: a warehouse column, and the values the contract allows); this module
reads them (bounded, one ``SELECT DISTINCT`` per field) and checks typed values against them:

* an exact match is kept;
* a match ignoring case (and surrounding spaces) that is unambiguous is corrected to the known spelling, with a
  note ("'beauty' read as Beauty");
* anything else is a problem naming the field and the closest known values ("'beautyy' is not a category; did
  you mean Beauty?"), or the known values themselves when nothing is close.

Typed rows on the page are corrected and checked (:func:`check_values`); definitions read as JSON (files, saved
audiences, the JSON editor) keep their meaning and only get notes (:func:`value_notes`).
"""

from __future__ import annotations

import difflib
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass

from sqlalchemy import func, select

from analytics.i18n import _
from analytics.storage.db import Bind, connection
from analytics.targeting import CampaignAudience, Condition, Group
from analytics.targeting_fields import FIELDS, Field

#: Most known values read for one field (a picker lists at most this many; past it, typed values are looked up).
MAX_KNOWN = 2_000
#: Most close matches suggested for a value.
MAX_SUGGESTIONS = 3

#: ``(field key, typed values) -> the known values to compare them with``.
Lookup = Callable[[str, Sequence[str]], Collection[str]]


@dataclass(frozen=True)
class KnownList:
    """A field's known values (the contract's allowed values first, in their order, then the column's, sorted)
    and whether that is all of them (False past :data:`MAX_KNOWN`)."""

    values: tuple[str, ...]
    complete: bool


def known_values(bind: Bind, key: str) -> KnownList:
    """The known values of a choice field (see :class:`KnownList`); empty for a field without known values."""
    known = FIELDS[key].known
    if known is None:
        return KnownList((), False)
    column = known.column
    statement = (select(column).where(column.is_not(None), column != "").distinct().order_by(column)
                 .limit(MAX_KNOWN + 1))
    with connection(bind) as conn:
        found = [str(v) for (v,) in conn.execute(statement)]
    complete = len(found) <= MAX_KNOWN
    extra = sorted(set(found[:MAX_KNOWN]) - set(known.allowed))
    return KnownList((*known.allowed, *extra), complete)


def existing_values(bind: Bind, key: str, values: Sequence[str]) -> tuple[str, ...]:
    """The known values of a field equal to one of ``values`` when case is ignored (for fields with too many
    values to list, such as product ids): what a typed list is checked against."""
    known = FIELDS[key].known
    wanted = sorted({v.strip().lower() for v in values if v.strip()})
    if known is None or not wanted:
        return ()
    column = known.column
    statement = select(column).where(func.lower(column).in_(wanted)).distinct().limit(MAX_KNOWN)
    with connection(bind) as conn:
        found = {str(v) for (v,) in conn.execute(statement) if v is not None}
    return tuple(sorted(found | {v for v in known.allowed if v.lower() in wanted}))


def lookup(bind: Bind) -> Lookup:
    """A :data:`Lookup` reading the warehouse: a listed field's whole list (read once per lookup), otherwise the
    typed values that exist."""
    lists: dict[str, KnownList] = {}

    def find(key: str, values: Sequence[str]) -> Collection[str]:
        known = FIELDS[key].known
        if known is not None and known.listed:
            if key not in lists:
                lists[key] = known_values(bind, key)
            if lists[key].complete:
                return lists[key].values
        return existing_values(bind, key, values)

    return find


@dataclass(frozen=True)
class ValueCheck:
    """Typed values checked against the known ones: ``values`` with unambiguous case slips corrected,
    ``corrected`` the (typed, known) pairs, a problem per value that is not known."""

    values: tuple[str, ...]
    corrected: tuple[tuple[str, str], ...] = ()
    problems: tuple[str, ...] = ()

    @property
    def notes(self) -> list[str]:
        """One line per correction: "'beauty' read as Beauty."."""
        return [_("'{typed}' read as {known}.").format(typed=typed, known=known) for typed, known in self.corrected]


def _noun(kind: Field) -> str:
    return _(kind.known.noun) if kind.known is not None else _("a known value")


def _or(values: Sequence[str]) -> str:
    return values[0] if len(values) == 1 else _("{values} or {last}").format(values=", ".join(values[:-1]),
                                                                             last=values[-1])


def check_values(key: str, values: Sequence[str], known: Collection[str]) -> ValueCheck:
    """``values`` typed for the field ``key`` against its ``known`` values (see the module docstring)."""
    kind = FIELDS[key]
    exact = set(known)
    folded: dict[str, list[str]] = {}
    for value in known:
        folded.setdefault(value.strip().casefold(), []).append(value)
    kept: list[str] = []
    corrected: list[tuple[str, str]] = []
    problems: list[str] = []
    for value in values:
        if value in exact:
            kept.append(value)
            continue
        if not value.strip():
            problems.append(_("an empty value is not {noun}: remove it or type one.").format(noun=_noun(kind)))
            continue
        same = folded.get(value.strip().casefold(), [])
        if len(same) == 1:
            kept.append(same[0])
            corrected.append((value, same[0]))
            continue
        if same:  # "BEAUTY" when both "Beauty" and "beauty" exist: which one is meant is not clear
            problems.append(_("'{value}' is not {noun}; did you mean {values}?").format(
                value=value, noun=_noun(kind), values=_or(sorted(same))))
            continue
        close = difflib.get_close_matches(value.strip().casefold(), list(folded), n=MAX_SUGGESTIONS, cutoff=0.6)
        if close:
            names = [name for c in close for name in folded[c]][:MAX_SUGGESTIONS]
            problems.append(_("'{value}' is not {noun}; did you mean {values}?").format(
                value=value, noun=_noun(kind), values=_or(names)))
        elif exact and len(exact) <= 12 and kind.known is not None and kind.known.listed:
            problems.append(_("'{value}' is not {noun}; choose from {values}.").format(
                value=value, noun=_noun(kind), values=", ".join(known)))
        else:
            problems.append(_("'{value}' is not {noun} in the warehouse.").format(value=value, noun=_noun(kind)))
    return ValueCheck(tuple(dict.fromkeys(kept)), tuple(corrected), tuple(problems))


def checked_condition(condition: Condition, known: Lookup) -> tuple[Condition, ValueCheck]:
    """A typed choice condition with its values checked (and corrected, see :func:`check_values`); other
    conditions unchanged."""
    kind = FIELDS[condition.field]
    if kind.kind != "choice" or kind.known is None:
        return condition, ValueCheck(())
    values = tuple(condition.value)
    result = check_values(condition.field, values, known(condition.field, values))
    if result.problems or result.values == values or not result.values:
        return condition, result
    return Condition(condition.field, condition.op, result.values, condition.negate, condition.days), result


def value_notes(rules: Group, known: Lookup) -> list[str]:
    """For rules read as JSON, which keep their meaning: one note per value that matches nothing known
    ("Bought a category: 'beauty' is not a category; did you mean Beauty? It matches nobody.")."""
    notes: list[str] = []
    for condition in rules.flat():
        _checked, result = checked_condition(condition, known)
        label = _(FIELDS[condition.field].label)
        notes += [_("{field}: {problem} As written, it matches nobody.").format(field=label, problem=problem)
                  for problem in result.problems]
        notes += [_("{field}: '{typed}' is written {known} in the warehouse; as written, it matches nobody.").format(
                  field=label, typed=typed, known=known) for typed, known in result.corrected]
    return notes


def audience_value_notes(bind: Bind, audience: CampaignAudience) -> list[str]:
    """:func:`value_notes` of an audience's rules against the warehouse (the command line prints them)."""
    return value_notes(audience.rules, lookup(bind))
