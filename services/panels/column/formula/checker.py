"""Type checking: resolves column references and functions and infers the formula's type."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

from .errors import FormulaError
from .nodes import (
    COMPARISON_LEVEL,
    PRECEDENCE,
    Binary,
    Boolean,
    Call,
    ColumnRef,
    Node,
    Number,
    String,
    Unary,
)
from .value_types import ValueType, common_type, value_type_of

DATEDIFF_UNITS = ("days", "hours", "months", "years")

_NUMBER: frozenset[ValueType] = frozenset({"number"})
_TEXT: frozenset[ValueType] = frozenset({"text"})
_BOOLEAN: frozenset[ValueType] = frozenset({"boolean"})
_DATE_OR_DATETIME: frozenset[ValueType] = frozenset({"date", "datetime"})
_DESCRIPTION: dict[frozenset[ValueType], str] = {
    _NUMBER: "a number",
    _TEXT: "text",
    _BOOLEAN: "a boolean",
    _DATE_OR_DATETIME: "a date or datetime",
}

_ARITHMETIC_MESSAGE = {
    "+": "cannot add {left} and {right}",
    "-": "cannot subtract {right} from {left}",
    "*": "cannot multiply {left} by {right}",
    "/": "cannot divide {left} by {right}",
}


def check(node: Node, columns: Mapping[str, str]) -> ValueType:
    """The type of the value `node` computes; raises FormulaError at the offending node.

    `columns` maps each column name of the panel to its column type (service vocabulary);
    references match names case-insensitively. An unknown column type is a ValueError, as it
    is the caller's mistake, not the formula's.
    """
    column_types = {name.lower(): value_type_of(kind) for name, kind in columns.items()}
    return _type_of(node, column_types)


def _type_of(node: Node, column_types: dict[str, ValueType]) -> ValueType:
    if isinstance(node, Number):
        return "number"
    if isinstance(node, String):
        return "text"
    if isinstance(node, Boolean):
        return "boolean"
    if isinstance(node, ColumnRef):
        found = column_types.get(node.name.lower())
        if found is None:
            raise FormulaError(f'unknown column "{node.name}"', node.position)
        return found
    if isinstance(node, Unary):
        operand = _type_of(node.operand, column_types)
        if operand not in ("number", "any"):
            raise FormulaError(f"cannot negate {operand}", node.position)
        return "number"
    if isinstance(node, Binary):
        return _binary_type(node, column_types)
    return _call_type(node, column_types)


def _binary_type(node: Binary, column_types: dict[str, ValueType]) -> ValueType:
    left = _type_of(node.left, column_types)
    right = _type_of(node.right, column_types)
    if node.op == "&":
        return "text"
    if PRECEDENCE[node.op] == COMPARISON_LEVEL:
        if common_type(left, right) is None:
            raise FormulaError(f"cannot compare {left} with {right}", node.position)
        return "boolean"
    if left not in ("number", "any") or right not in ("number", "any"):
        message = _ARITHMETIC_MESSAGE[node.op].format(left=left, right=right)
        raise FormulaError(message, node.position)
    return "number"


def _call_type(call: Call, column_types: dict[str, ValueType]) -> ValueType:
    signature = FUNCTIONS.get(call.name)
    if signature is None:
        raise FormulaError(f'unknown function "{call.name}"', call.position)
    count = len(call.args)
    if count < signature.min_args or (
        signature.max_args is not None and count > signature.max_args
    ):
        raise FormulaError(f"{call.name} takes {signature.arity()}, got {count}", call.position)
    arg_types = [_type_of(arg, column_types) for arg in call.args]
    return signature.result(call, arg_types)


@dataclass(frozen=True, slots=True)
class Signature:
    min_args: int
    max_args: int | None  # None: any number of further arguments
    # Checks the argument types (raising FormulaError) and returns the result type.
    result: Callable[[Call, list[ValueType]], ValueType]

    def arity(self) -> str:
        if self.max_args is None:
            return f"at least {_arguments(self.min_args)}"
        if self.max_args == self.min_args:
            return _arguments(self.min_args)
        joiner = "or" if self.max_args == self.min_args + 1 else "to"
        return f"{self.min_args} {joiner} {_arguments(self.max_args)}"


def _arguments(count: int) -> str:
    if count == 0:
        return "no arguments"
    return "1 argument" if count == 1 else f"{count} arguments"


def _require(
    call: Call, arg_types: list[ValueType], index: int, accepted: frozenset[ValueType]
) -> None:
    found = arg_types[index]
    if found != "any" and found not in accepted:
        raise FormulaError(
            f"{call.name} argument {index + 1} must be {_DESCRIPTION[accepted]}, got {found}",
            call.args[index].position,
        )


def _all_of(
    accepted: frozenset[ValueType], result: ValueType
) -> Callable[[Call, list[ValueType]], ValueType]:
    """A function whose every argument must be of `accepted` and which returns `result`."""

    def check_arguments(call: Call, arg_types: list[ValueType]) -> ValueType:
        for index in range(len(arg_types)):
            _require(call, arg_types, index, accepted)
        return result

    return check_arguments


def _returns(result: ValueType) -> Callable[[Call, list[ValueType]], ValueType]:
    """A function that takes arguments of any type and returns `result`."""
    return lambda _call, _arg_types: result


def _common_of(call: Call, arg_types: list[ValueType], first: int, what: str) -> ValueType:
    """The common type of the arguments from `first` on, refusing the first one that differs.

    `what` names those arguments in the error message.
    """
    common = arg_types[first]
    for index in range(first + 1, len(arg_types)):
        widened = common_type(common, arg_types[index])
        if widened is None:
            raise FormulaError(
                f"{call.name} {what} must have the same type, got {common} and {arg_types[index]}",
                call.args[index].position,
            )
        common = widened
    return common


def _if(call: Call, arg_types: list[ValueType]) -> ValueType:
    _require(call, arg_types, 0, _BOOLEAN)
    return _common_of(call, arg_types, 1, "branches")


def _coalesce(call: Call, arg_types: list[ValueType]) -> ValueType:
    return _common_of(call, arg_types, 0, "arguments")


def _datediff(call: Call, arg_types: list[ValueType]) -> ValueType:
    _require(call, arg_types, 0, _DATE_OR_DATETIME)
    _require(call, arg_types, 1, _DATE_OR_DATETIME)
    # The unit must be a literal so that a formula is known to be valid when it is saved.
    unit = call.args[2]
    if not (isinstance(unit, String) and unit.value.lower() in DATEDIFF_UNITS):
        raise FormulaError(
            'DATEDIFF unit must be "days", "hours", "months" or "years"', unit.position
        )
    return "number"


FUNCTIONS: dict[str, Signature] = {
    "IF": Signature(3, 3, _if),
    "AND": Signature(1, None, _all_of(_BOOLEAN, "boolean")),
    "OR": Signature(1, None, _all_of(_BOOLEAN, "boolean")),
    "NOT": Signature(1, 1, _all_of(_BOOLEAN, "boolean")),
    "CONCAT": Signature(1, None, _returns("text")),
    "UPPER": Signature(1, 1, _all_of(_TEXT, "text")),
    "LOWER": Signature(1, 1, _all_of(_TEXT, "text")),
    "TRIM": Signature(1, 1, _all_of(_TEXT, "text")),
    "LEN": Signature(1, 1, _all_of(_TEXT, "number")),
    "ROUND": Signature(1, 2, _all_of(_NUMBER, "number")),
    "ABS": Signature(1, 1, _all_of(_NUMBER, "number")),
    "MIN": Signature(1, None, _all_of(_NUMBER, "number")),
    "MAX": Signature(1, None, _all_of(_NUMBER, "number")),
    "COALESCE": Signature(1, None, _coalesce),
    "DATEDIFF": Signature(3, 3, _datediff),
    "TODAY": Signature(0, 0, _returns("date")),
    "NOW": Signature(0, 0, _returns("datetime")),
}
