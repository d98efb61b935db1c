"""The table form of an audience's rules, as the Campaign targeting page edits them, and back.

A **table** is a list of rows ``{"group", "not", "field", "op", "text"}``: ``text`` as a user types it (see
:func:`analytics.targeting.condition_from_text`). Rows without a group number combine with the top-level
``match`` (all = AND, any = OR); rows sharing a group number form one sub-group that combines with the
*other* connective (under "all", a group is "any of its rows", and the reverse), so a table expresses
AND-of-ORs and OR-of-ANDs, each row optionally negated. Saved audiences are kept out of the table: members
must be in every **included** one and in no **excluded** one. Deeper nesting is written as JSON; a spec that
does not fit the table opens as JSON.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from analytics.targeting import FIELDS, TYPED_KINDS, SpecError, condition_from_text

SAVED = "saved_audience"


def _other(match: str) -> str:
    return "any" if match == "all" else "all"


def rules_from_table(match: str, rows: Sequence[Mapping[str, Any]]) -> tuple[dict[str, Any], list[str]]:
    """The rules a table stands for, and one message per row that cannot be read ("Row 3: ..."). Rows with
    no field or operator yet are skipped (a row being typed)."""
    if match not in ("all", "any"):
        raise SpecError(f'Members match "all" or "any", not {match!r}.')
    conditions: list[dict[str, Any]] = []
    groups: dict[int, dict[str, Any]] = {}
    problems: list[str] = []
    for number, row in enumerate(rows, start=1):
        if not row.get("field") or not row.get("op"):
            continue
        try:
            condition = condition_from_text(row["field"], row["op"], str(row.get("text") or ""),
                                            bool(row.get("not")))
        except SpecError as problem:
            problems.append(f"Row {number}: {problem}")
            continue
        group = _group_number(row.get("group"))
        if group is None:
            conditions.append(condition)
        elif group in groups:
            groups[group]["conditions"].append(condition)
        else:
            groups[group] = {"match": _other(match), "conditions": [condition]}
            conditions.append(groups[group])
    return {"match": match, "conditions": conditions}, problems


def _group_number(value: Any) -> int | None:
    if value is None or value == "":
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return None if number != number else int(number)  # NaN from an emptied cell


def compose_rules(table: Mapping[str, Any], include: Sequence[Mapping[str, Any]],
                  exclude: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """The table's rules, and members of every ``include`` and of no ``exclude`` saved audience (each a
    saved audience spec with its ``name`` and ``saved_version``)."""
    saved = [{"field": SAVED, "op": "in", "value": dict(s)} for s in include]
    saved += [{"not": True, "field": SAVED, "op": "in", "value": dict(s)} for s in exclude]
    if not saved:
        return dict(table)
    return {"match": "all", "conditions": [dict(table), *saved]}


def condition_text(condition: Mapping[str, Any]) -> tuple[str, str, str, bool]:
    """``(field, op, text, negate)`` of a typed condition: the inverse of ``condition_from_text``."""
    field, op, value = condition["field"], condition["op"], condition["value"]
    if FIELDS[field].kind == "choice":
        text = ", ".join(value)
    else:
        low, high = ("" if v is None else str(v) for v in value)
        text = f"{low} - {high}".strip()
    return field, op, text, condition.get("not") is True


def _is_typed(item: Any) -> bool:
    return (isinstance(item, Mapping) and "conditions" not in item and FIELDS.get(item.get("field")) is not None
            and FIELDS[item["field"]].kind in TYPED_KINDS and isinstance(item.get("value"), list | tuple))


def _is_saved(item: Any) -> bool:
    return isinstance(item, Mapping) and item.get("field") == SAVED and isinstance(item.get("value"), Mapping)


def table_from_rules(rules: Mapping[str, Any]) -> tuple[str, list[dict[str, Any]], list[dict], list[dict]] | None:
    """``(match, rows, include, exclude)`` for rules the page's table can show, else None (open as JSON)."""
    match, items = rules.get("match", "all"), rules.get("conditions", [])
    if match not in ("all", "any") or not isinstance(items, list):
        return None
    include: list[dict] = []
    exclude: list[dict] = []
    if match == "all" and any(_is_saved(i) for i in items):
        for item in (i for i in items if _is_saved(i)):
            (exclude if item.get("not") is True else include).append(dict(item["value"]))
        items = [i for i in items if not _is_saved(i)]
        if len(items) == 1 and isinstance(items[0], Mapping) and "conditions" in items[0] and not items[0].get("not"):
            match, items = items[0].get("match", "all"), items[0].get("conditions", [])  # the composed table
            if match not in ("all", "any") or not isinstance(items, list):
                return None
    rows: list[dict[str, Any]] = []
    group = 0
    for item in items:
        if _is_typed(item):
            rows.append(_row(item, None))
        elif (isinstance(item, Mapping) and "conditions" in item and not item.get("not")
              and item.get("match", "all") == _other(match) and isinstance(item["conditions"], list)
              and item["conditions"] and all(_is_typed(c) for c in item["conditions"])):
            group += 1
            rows.extend(_row(c, group) for c in item["conditions"])
        else:
            return None
    return match, rows, include, exclude


def _row(condition: Mapping[str, Any], group: int | None) -> dict[str, Any]:
    field, op, text, negate = condition_text(condition)
    return {"group": group, "not": negate, "field": field, "op": op, "text": text}
