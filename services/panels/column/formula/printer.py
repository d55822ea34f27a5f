"""Syntax tree to canonical formula text."""

from __future__ import annotations

from .nodes import (
    COMPARISON_LEVEL,
    PRECEDENCE,
    Binary,
    Boolean,
    ColumnRef,
    Node,
    Number,
    String,
    Unary,
    is_plain_identifier,
)


def to_text(node: Node) -> str:
    """The canonical text of `node`: `parse(to_text(node)) == node` for every tree.

    Function names and TRUE/FALSE upper-case, strings in double quotes, one space around
    binary operators, `, ` between arguments, and only the parentheses the tree needs.
    """
    if isinstance(node, Number):
        return str(node.value)
    if isinstance(node, String):
        return string_text(node.value)
    if isinstance(node, Boolean):
        return "TRUE" if node.value else "FALSE"
    if isinstance(node, ColumnRef):
        return reference_text(node.name)
    if isinstance(node, Unary):
        operand = to_text(node.operand)
        return f"-({operand})" if isinstance(node.operand, Binary) else f"-{operand}"
    if isinstance(node, Binary):
        return _binary_text(node)
    return f"{node.name}({', '.join(to_text(arg) for arg in node.args)})"


def reference_text(name: str) -> str:
    """How a formula names the column `name`: bare when it can be, else in braces."""
    if is_plain_identifier(name):
        return name
    return "{" + name.replace("\\", "\\\\").replace("}", "\\}") + "}"


def string_text(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _binary_text(node: Binary) -> str:
    level = PRECEDENCE[node.op]
    left = to_text(node.left)
    right = to_text(node.right)
    # Operators are left-associative, so a right operand of the same level needs parentheses;
    # comparisons do not chain at all, so neither side may be a bare comparison.
    if isinstance(node.left, Binary):
        left_level = PRECEDENCE[node.left.op]
        if left_level < level or left_level == level == COMPARISON_LEVEL:
            left = f"({left})"
    if isinstance(node.right, Binary) and PRECEDENCE[node.right.op] <= level:
        right = f"({right})"
    return f"{left} {node.op} {right}"
