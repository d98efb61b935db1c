"""The table form of an audience's rules, as the Campaign targeting page edits them, and back.

A **table** is a list of rows ``{"group", "not", "field", "op", "text", "days"}``: ``text`` as a user types it (see
:func:`analytics.targeting.condition_from_text`), ``days`` a behaviour condition's own look-back (empty: the
audience's). Rows without a group number combine with the top-level
``match`` (all = AND, any = OR); rows sharing a group number form one sub-group that combines with the
*other* connective (under "all", a group is "any of its rows", and the reverse), so a table expresses
AND-of-ORs and OR-of-ANDs, each row optionally negated. Saved audiences and other pages' audiences are kept out
of the table: members must be in every **included** saved audience, in no **excluded** one, and in every other
audience added. Deeper nesting is written as JSON; rules that do not fit the table open as JSON.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from analytics.audiences import Audience
from analytics.errors import SpecError
from analytics.i18n import _
from analytics.targeting import FIELDS, CampaignAudience, Condition, Group, condition_from_text
from analytics.targeting_values import Lookup, checked_condition

SAVED = "saved_audience"
SEGMENT = "segment"


def _other(match: str) -> str:
    return "any" if match == "all" else "all"


@dataclass(frozen=True)
class TableRules:
    """What a table stands for: its ``rules``, one problem per row that cannot be read ("Row 3: ..."), and one
    note per value corrected to its known spelling ("Row 2: 'beauty' read as Beauty.")."""

    rules: Group
    problems: tuple[str, ...]
    notes: tuple[str, ...] = ()


def read_table(match: str, rows: Sequence[Mapping[str, Any]], models: Mapping[str, Any] | None = None,
               known: Lookup | None = None) -> TableRules:
    """The rules a table stands for (see :class:`TableRules`). Rows with no field or operator yet are skipped (a
    row being typed). ``models``: the current prediction models by kind, pinned into prediction conditions.
    ``known``: looks up the known values of choice fields; typed values are then checked against them
    (:func:`analytics.targeting_values.check_values`): case slips corrected, unknown values a problem."""
    if match not in ("all", "any"):
        raise SpecError(_('Members match "all" or "any", not {match}.').format(match=repr(match)))
    items: list[Condition | list[Condition]] = []
    groups: dict[int, list[Condition]] = {}
    problems: list[str] = []
    notes: list[str] = []
    for number, row in enumerate(rows, start=1):
        if not row.get("field") or not row.get("op"):
            continue
        try:
            condition = condition_from_text(row["field"], row["op"], str(row.get("text") or ""),
                                            bool(row.get("not")), models, _whole_number(row.get("days")))
        except SpecError as problem:
            problems.append(_("Row {number}: {problem}").format(number=number, problem=problem))
            continue
        if known is not None:
            condition, checked = checked_condition(condition, known)
            label = _(FIELDS[condition.field].label)
            problems += [_("Row {number}: {field}: {problem}").format(number=number, field=label, problem=problem)
                         for problem in checked.problems]
            notes += [_("Row {number}: {field}: {problem}").format(number=number, field=label, problem=note)
                      for note in checked.notes]
        group = _group_number(row.get("group"))
        if group is None:
            items.append(condition)
        elif group in groups:
            groups[group].append(condition)
        else:
            groups[group] = [condition]
            items.append(groups[group])
    built = tuple(Group(_other(match), tuple(i)) if isinstance(i, list) else i for i in items)
    return TableRules(Group(match, built), tuple(problems), tuple(notes))


def rules_from_table(match: str, rows: Sequence[Mapping[str, Any]],
                     models: Mapping[str, Any] | None = None) -> tuple[Group, list[str]]:
    """The rules a table stands for, and one message per row that cannot be read (:func:`read_table` without
    checking values against the known ones)."""
    read = read_table(match, rows, models)
    return read.rules, list(read.problems)


def _whole_number(value: Any) -> int | None:
    """A look-back cell: None when empty (NaN from an emptied cell), else the number (whole, or refused by the
    condition)."""
    if value is None or value == "":
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise SpecError(_("a look-back is a whole number of days, not {value}.").format(value=repr(value))) from None
    if number != number:
        return None
    if not number.is_integer():
        raise SpecError(_("a look-back is a whole number of days, not {value}.").format(value=f"{number:g}"))
    return int(number)


def _group_number(value: Any) -> int | None:
    if value is None or value == "":
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return None if number != number else int(number)  # NaN from an emptied cell


def compose_rules(table: Group, include: Sequence[CampaignAudience], exclude: Sequence[CampaignAudience],
                  others: Sequence[Audience] = ()) -> Group:
    """The table's rules, and members of every ``include`` and of no ``exclude`` saved audience (each with its
    name and version), and of every audience of ``others`` (another page's members)."""
    extra = [Condition(SAVED, "in", s) for s in include]
    extra += [Condition(SAVED, "in", s, negate=True) for s in exclude]
    extra += [Condition(SEGMENT, "in", a) for a in others]
    if not extra:
        return table
    return Group("all", (table, *extra))


def condition_text(condition: Condition) -> tuple[str, str, str, bool]:
    """``(field, op, text, negate)`` of a typed condition: the inverse of ``condition_from_text``."""
    return condition.field, condition.op, FIELDS[condition.field].text(condition.value), condition.negate


def _is_typed(item: Any) -> bool:
    return isinstance(item, Condition) and FIELDS[item.field].typed


def _is_extra(item: Any) -> bool:
    return isinstance(item, Condition) and item.field in (SAVED, SEGMENT)


def table_from_rules(rules: Group) -> tuple[str, list[dict[str, Any]], list, list, list] | None:
    """``(match, rows, include, exclude, others)`` for rules the page's table can show, else None (open as JSON)."""
    match, items = rules.match, list(rules.items)
    if rules.negate:
        return None
    include: list[CampaignAudience] = []
    exclude: list[CampaignAudience] = []
    others: list[Audience] = []
    if match == "all" and any(_is_extra(i) for i in items):
        for item in (i for i in items if _is_extra(i)):
            if item.field == SEGMENT:
                if item.negate:
                    return None
                others.append(item.value)
            else:
                (exclude if item.negate else include).append(item.value)
        items = [i for i in items if not _is_extra(i)]
        if len(items) == 1 and isinstance(items[0], Group) and not items[0].negate:
            match, items = items[0].match, list(items[0].items)  # the composed table
    rows: list[dict[str, Any]] = []
    group = 0
    for item in items:
        if _is_typed(item):
            rows.append(_row(item, None))
        elif (isinstance(item, Group) and not item.negate and item.match == _other(match) and item.items
              and all(_is_typed(c) for c in item.items)):
            group += 1
            rows.extend(_row(c, group) for c in item.items)
        else:
            return None
    return match, rows, include, exclude, others


def _row(condition: Condition, group: int | None) -> dict[str, Any]:
    field, op, text, negate = condition_text(condition)
    return {"group": group, "not": negate, "field": field, "op": op, "text": text, "days": condition.days}
