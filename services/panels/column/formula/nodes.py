"""The immutable syntax tree of a formula.

Every node carries `position`, the offset of its first character in the text it was parsed
from (for `Binary`, the offset of its operator). Positions never take part in equality, so
trees parsed from differently spaced text compare equal; after `rename_column` they still
refer to the original text.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Literal, TypeAlias, get_args

UnaryOperator = Literal["-"]
BinaryOperator = Literal["=", "<>", "<", "<=", ">", ">=", "&", "+", "-", "*", "/"]
BINARY_OPERATORS: tuple[BinaryOperator, ...] = get_args(BinaryOperator)

# Binding strength of the binary operators, loosest first; unary minus binds tighter than all.
COMPARISON_LEVEL = 1
PRECEDENCE: dict[BinaryOperator, int] = {
    "=": COMPARISON_LEVEL,
    "<>": COMPARISON_LEVEL,
    "<": COMPARISON_LEVEL,
    "<=": COMPARISON_LEVEL,
    ">": COMPARISON_LEVEL,
    ">=": COMPARISON_LEVEL,
    "&": 2,
    "+": 3,
    "-": 3,
    "*": 4,
    "/": 4,
}

# Words that are literals, never column names: such a column must be written in braces.
KEYWORDS = frozenset({"TRUE", "FALSE"})
_PLAIN_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def is_plain_identifier(name: str) -> bool:
    """Whether `name` can be written bare: an ASCII identifier that is not TRUE or FALSE."""
    return _PLAIN_IDENTIFIER.fullmatch(name) is not None and name.upper() not in KEYWORDS


def is_number_literal(value: Decimal) -> bool:
    """Whether `value` can be written as a number literal.

    Literals are never negative (`-2` is unary minus applied to 2) and stay within the range
    of a float, so that any evaluator can represent them.
    """
    return value.is_finite() and not value.is_signed() and math.isfinite(float(value))


@dataclass(frozen=True, slots=True)
class Number:
    value: Decimal
    position: int = field(default=0, compare=False, kw_only=True)

    def __post_init__(self) -> None:
        if not is_number_literal(self.value):
            raise ValueError(f"not a number literal: {self.value}")


@dataclass(frozen=True, slots=True)
class String:
    value: str
    position: int = field(default=0, compare=False, kw_only=True)


@dataclass(frozen=True, slots=True)
class Boolean:
    value: bool
    position: int = field(default=0, compare=False, kw_only=True)


@dataclass(frozen=True, slots=True)
class ColumnRef:
    """A reference to another column of the panel, by name as written in the formula."""

    name: str
    position: int = field(default=0, compare=False, kw_only=True)

    def __post_init__(self) -> None:
        if not self.name:
            raise ValueError("a column name cannot be empty")


@dataclass(frozen=True, slots=True)
class Unary:
    op: UnaryOperator
    operand: Node
    position: int = field(default=0, compare=False, kw_only=True)

    def __post_init__(self) -> None:
        if self.op != "-":
            raise ValueError(f"not a unary operator: {self.op!r}")


@dataclass(frozen=True, slots=True)
class Binary:
    op: BinaryOperator
    left: Node
    right: Node
    position: int = field(default=0, compare=False, kw_only=True)

    def __post_init__(self) -> None:
        if self.op not in PRECEDENCE:
            raise ValueError(f"not a binary operator: {self.op!r}")


@dataclass(frozen=True, slots=True)
class Call:
    """A function call; the parser stores the name upper-case, as names are case-insensitive."""

    name: str
    args: tuple[Node, ...]
    position: int = field(default=0, compare=False, kw_only=True)

    def __post_init__(self) -> None:
        if not is_plain_identifier(self.name) or self.name != self.name.upper():
            raise ValueError(f"not an upper-case function name: {self.name!r}")


Node: TypeAlias = Number | String | Boolean | ColumnRef | Unary | Binary | Call


def children(node: Node) -> tuple[Node, ...]:
    """The direct subtrees of `node`, in the order they appear in the text."""
    if isinstance(node, Binary):
        return (node.left, node.right)
    if isinstance(node, Unary):
        return (node.operand,)
    if isinstance(node, Call):
        return node.args
    return ()


def walk(node: Node) -> Iterator[Node]:
    """Every node of the tree in text order (pre-order), without recursion."""
    pending = [node]
    while pending:
        current = pending.pop()
        yield current
        pending.extend(reversed(children(current)))
