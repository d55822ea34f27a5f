"""A reference evaluator of panel rows, in plain Python, written from API.md and the rules in
the compiler's docstrings (not from its SQL): the property test holds PostgreSQL to it."""

from __future__ import annotations

import functools
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal, localcontext
from fractions import Fraction
from typing import Any

from panels.column.formula import (
    Binary,
    Boolean,
    Call,
    ColumnRef,
    Node,
    Number,
    String,
    Unary,
    ValueType,
    value_type_of,
)
from panels.column.formula.value_types import common_type
from panels.rows.compiler import BaseColumn, CalculatedColumn, Column, Condition, RowQuery
from tests.unit.rows.reference_values import (
    Records,
    coerce,
    column_value,
    divide,
    half_away,
    json_to,
    lookup,
    truncate,
)

__all__ = ["divide", "evaluate"]


Typed = tuple[Any, ValueType]


@dataclass
class Evaluator:
    values: Mapping[str, Typed]  # lower-cased column name -> value and type
    now: datetime

    def eval(self, node: Node) -> Typed:
        if isinstance(node, Number):
            return node.value, "number"
        if isinstance(node, String):
            return node.value, "text"
        if isinstance(node, Boolean):
            return node.value, "boolean"
        if isinstance(node, ColumnRef):
            return self.values[node.name.lower()]
        if isinstance(node, Unary):
            number = self.as_(node.operand, "number")
            return (None if number is None else -number), "number"
        if isinstance(node, Binary):
            return self.binary(node)
        return self.call(node)

    def as_(self, node: Node, target: ValueType) -> Any:
        value, kind = self.eval(node)
        return coerce(value, kind, target)

    def binary(self, node: Binary) -> Typed:
        if node.op == "&":
            return self.concat([node.left, node.right]), "text"
        if node.op in ("=", "<>", "<", "<=", ">", ">="):
            left, left_type = self.eval(node.left)
            right, right_type = self.eval(node.right)
            common = common_type(left_type, right_type) or "text"
            if common == "any":
                common = "text"
            left, right = coerce(left, left_type, common), coerce(right, right_type, common)
            if left is None or right is None:
                return None, "boolean"
            result = {
                "=": left == right,
                "<>": left != right,
                "<": left < right,
                "<=": left <= right,
                ">": left > right,
                ">=": left >= right,
            }[node.op]
            return result, "boolean"
        left = self.as_(node.left, "number")
        right = self.as_(node.right, "number")
        if left is None or right is None:
            return None, "number"
        if node.op == "+":
            return left + right, "number"
        if node.op == "-":
            return left - right, "number"
        if node.op == "*":
            return left * right, "number"
        return (None if right == 0 else divide(left, right)), "number"

    def concat(self, nodes: Sequence[Node]) -> str:
        return "".join(self.as_(node, "text") or "" for node in nodes)

    def common(self, nodes: Sequence[Node]) -> tuple[list[Any], ValueType]:
        evaluated = [self.eval(node) for node in nodes]
        kind = evaluated[0][1]
        for _, other in evaluated[1:]:
            kind = common_type(kind, other) or kind
        return [coerce(value, source, kind) for value, source in evaluated], kind

    def call(self, call: Call) -> Typed:
        name, args = call.name, call.args
        if name == "IF":
            (then, otherwise), kind = self.common(args[1:])
            return (then if self.as_(args[0], "boolean") is True else otherwise), kind
        if name in ("AND", "OR"):
            flags = [self.as_(arg, "boolean") for arg in args]
            decisive = name == "OR"
            if decisive in flags:
                return decisive, "boolean"
            return (None if None in flags else not decisive), "boolean"
        if name == "NOT":
            flag = self.as_(args[0], "boolean")
            return (None if flag is None else not flag), "boolean"
        if name == "CONCAT":
            return self.concat(args), "text"
        if name in ("UPPER", "LOWER", "TRIM", "LEN"):
            text = self.as_(args[0], "text")
            if text is None:
                return None, "number" if name == "LEN" else "text"
            if name == "LEN":
                return Decimal(len(text)), "number"
            return {"UPPER": text.upper, "LOWER": text.lower, "TRIM": lambda: text.strip(" ")}[
                name
            ](), "text"
        if name == "ROUND":
            number = self.as_(args[0], "number")
            digits = self.as_(args[1], "number") if len(args) == 2 else Decimal(0)
            if number is None or digits is None:
                return None, "number"
            places = max(-100, min(100, half_away(Fraction(digits))))
            with localcontext() as context:
                context.prec = 2000
                return number.quantize(Decimal(1).scaleb(-places), ROUND_HALF_UP), "number"
        if name == "ABS":
            number = self.as_(args[0], "number")
            return (None if number is None else abs(number)), "number"
        if name in ("MIN", "MAX"):
            numbers = [self.as_(arg, "number") for arg in args]
            if None in numbers:
                return None, "number"
            return (min if name == "MIN" else max)(numbers), "number"
        if name == "COALESCE":
            values, kind = self.common(args)
            return next((value for value in values if value is not None), None), kind
        if name == "DATEDIFF":
            return self.datediff(args), "number"
        if name == "TODAY":
            return self.now.date(), "date"
        return self.now, "datetime"

    def datediff(self, args: Sequence[Node]) -> Decimal | None:
        start = self.as_(args[0], "datetime")
        end = self.as_(args[1], "datetime")
        unit = args[2].value.lower() if isinstance(args[2], String) else ""
        if start is None or end is None:
            return None
        if unit in ("days", "hours"):
            elapsed = end - start
            microseconds = (elapsed.days * 86400 + elapsed.seconds) * 10**6 + elapsed.microseconds
            period = (86400 if unit == "days" else 3600) * 10**6
            return Decimal(truncate(Fraction(microseconds, period)))

        def into_month(moment: datetime) -> timedelta:
            return moment - datetime(moment.year, moment.month, 1)

        months = (end.year * 12 + end.month) - (start.year * 12 + start.month)
        if end >= start and into_month(end) < into_month(start):
            months -= 1
        elif end < start and into_month(end) > into_month(start):
            months += 1
        if unit == "years":
            return Decimal(truncate(Fraction(months, 12)))
        return Decimal(months)


def row_values(columns: Sequence[Column], records: Records, now: datetime) -> dict[int, Typed]:
    """Every column's value for one row, in the columns' order (formulas read earlier ones)."""
    values: dict[int, Typed] = {}
    by_name: dict[str, Typed] = {}
    for column in columns:
        kind = value_type_of(column.type)
        if isinstance(column, BaseColumn):
            found = field_value(records, column.source_field, column.data_source_id)
            value = column_value(found, column.type)
        else:
            assert isinstance(column, CalculatedColumn)
            result, result_type = Evaluator(by_name, now).eval(column.formula)
            value = coerce(result, result_type, kind)
        values[column.id] = by_name[column.name.lower()] = (value, kind)
    return values


def field_value(records: Records, path: str, source_id: int | None) -> Any:
    if source_id is not None:
        return lookup(records.get(source_id), path)
    for source in sorted(records):
        found = lookup(records[source], path)
        if found is not None:
            return found
    return None


def _parameter(item: Any, kind: ValueType) -> Any:
    """A filter value as a value of `kind`, None when it is not one (a stale filter)."""
    if kind == "number":
        if isinstance(item, bool) or not isinstance(item, int | float):
            return None
        return Decimal(json.dumps(item))  # the number as the client's JSON wrote it
    if kind == "boolean":
        return item if isinstance(item, bool) else None
    if kind in ("date", "datetime"):
        if not isinstance(item, str):
            return None
        try:
            if kind == "date":
                return date.fromisoformat(item)
            moment = datetime.fromisoformat(item)
        except ValueError:
            return None
        if moment.tzinfo is not None:
            moment = moment.astimezone(UTC).replace(tzinfo=None)
        return moment
    if isinstance(item, bool):
        return "true" if item else "false"
    return str(item) if isinstance(item, str | int | float) else None


def holds(value: Any, kind: ValueType, condition: Condition) -> bool:
    operator = condition.operator
    if operator == "isNull":
        return value is None
    if operator == "isNotNull":
        return value is not None
    if kind == "any" or operator in ("contains", "notContains", "startsWith", "endsWith"):
        value, kind = coerce(value, kind, "text"), "text"
    argument = condition.value
    if operator in ("contains", "notContains", "startsWith", "endsWith"):
        needle = _parameter(argument, "text")
        if needle is None or value is None:
            return operator == "notContains"
        haystack, needle = value.lower(), needle.lower()
        found = {
            "contains": needle in haystack,
            "notContains": needle not in haystack,
            "startsWith": haystack.startswith(needle),
            "endsWith": haystack.endswith(needle),
        }
        return found[operator]
    if operator in ("in", "notIn"):
        items = argument if isinstance(argument, list) else []
        listed = value is not None and value in [_parameter(item, kind) for item in items]
        return listed if operator == "in" else not listed
    if operator == "between":
        pair = argument if isinstance(argument, list) else []
        bounds = [_parameter(item, kind) for item in pair]
        if len(bounds) != 2 or None in bounds or value is None:
            return False
        return bool(bounds[0] <= value <= bounds[1])
    parameter = _parameter(argument, kind)
    if parameter is None:
        return operator == "ne"
    if value is None:
        return operator == "ne"
    return {
        "eq": value == parameter,
        "ne": value != parameter,
        "gt": value > parameter,
        "gte": value >= parameter,
        "lt": value < parameter,
        "lte": value <= parameter,
    }[operator]


def combine(results: Sequence[bool], joins: Sequence[str]) -> bool:
    if not results:
        return True
    combined = results[0]
    for result, join in zip(results[1:], joins[1:], strict=True):
        combined = (combined or result) if join == "or" else (combined and result)
    return combined


def _path_kind(condition: Condition) -> ValueType:
    sample = condition.value
    if isinstance(sample, list):
        sample = sample[0] if sample else ""
    if isinstance(sample, bool):
        return "boolean"
    if isinstance(sample, int | float):
        return "number"
    return "text"


def evaluate(
    query: RowQuery, rows: Mapping[str, Records]
) -> tuple[list[tuple[Any, ...]], int, list[tuple[Any, ...]]]:
    """The page (key, then each shown value), the total, and every matching row in order."""
    with localcontext() as context:
        context.prec = 10_000  # exact arithmetic, as numeric's
        return _evaluate(query, rows)


def _evaluate(
    query: RowQuery, rows: Mapping[str, Records]
) -> tuple[list[tuple[Any, ...]], int, list[tuple[Any, ...]]]:
    matching: list[tuple[str, dict[int, Typed]]] = []
    for key, records in rows.items():
        values = row_values(query.columns, records, query.now)

        def check(
            condition: Condition,
            records: Records = records,
            values: dict[int, Typed] = values,
        ) -> bool:
            if condition.column_id is not None:
                value, kind = values[condition.column_id]
                return holds(value, kind, condition)
            raw = field_value(records, condition.path or "", None)
            if condition.operator in ("isNull", "isNotNull"):
                return holds(raw, "any", condition)
            kind = _path_kind(condition)
            return holds(json_to(raw, kind), kind, condition)

        cohort_joins = ["or" if query.cohort_logic == "OR" else "and"] * len(query.cohort)
        admitted = combine([check(c) for c in query.cohort], cohort_joins)
        filter_joins = [c.logical_operator for c in query.filters]
        shown = combine([check(c) for c in query.filters], filter_joins)
        if admitted and shown:
            matching.append((key, values))

    def sort_value(values: dict[int, Typed], column_id: int) -> Any:
        value, kind = values[column_id]
        return coerce(value, kind, "text") if kind == "any" else value

    def compare(first: tuple[str, dict[int, Typed]], second: tuple[str, dict[int, Typed]]) -> int:
        for sort in query.sorts:
            a, b = sort_value(first[1], sort.column_id), sort_value(second[1], sort.column_id)
            if a is None and b is None:
                continue
            if a is None or b is None:
                return 1 if a is None else -1
            if a != b:
                ascending = -1 if a < b else 1
                return -ascending if sort.descending else ascending
        return -1 if first[0] < second[0] else (1 if first[0] > second[0] else 0)

    matching.sort(key=functools.cmp_to_key(compare))
    ordered = [(key, *(values[id][0] for id in query.shown)) for key, values in matching]
    end = None if query.limit is None else query.offset + query.limit
    return ordered[query.offset : end], len(ordered), ordered
