"""What a formula reads, and rewriting it when a column is renamed."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import replace
from itertools import pairwise

from .nodes import KEYWORDS, Binary, Call, ColumnRef, Node, Unary, walk
from .printer import reference_text
from .tokens import tokenize


def dependencies(node: Node) -> list[str]:
    """The column names `node` reads, as written, each once (case-insensitively), in text order."""
    seen: set[str] = set()
    names: list[str] = []
    for current in walk(node):
        if isinstance(current, ColumnRef) and current.name.lower() not in seen:
            seen.add(current.name.lower())
            names.append(current.name)
    return names


def canonical_dependencies(node: Node, columns: Iterable[str]) -> list[str]:
    """`dependencies(node)` spelt as in `columns` (a name missing there stays as written)."""
    spelling = {name.lower(): name for name in columns}
    return [spelling.get(name.lower(), name) for name in dependencies(node)]


def rename_column(node: Node, old: str, new: str) -> Node:
    """`node` with every reference to `old` (case-insensitively) naming `new` instead.

    Positions are kept: they still point into the text `node` was parsed from.
    """
    old_key = old.lower()

    def renamed(current: Node) -> Node:
        if isinstance(current, ColumnRef):
            return replace(current, name=new) if current.name.lower() == old_key else current
        if isinstance(current, Unary):
            return replace(current, operand=renamed(current.operand))
        if isinstance(current, Binary):
            return replace(current, left=renamed(current.left), right=renamed(current.right))
        if isinstance(current, Call):
            return replace(current, args=tuple(renamed(arg) for arg in current.args))
        return current

    return renamed(node)


def rename_in_text(formula: str, old: str, new: str) -> str:
    """`formula` with every reference to `old` naming `new`, everything else kept as written.

    The text-preserving counterpart of `to_text(rename_column(parse(formula), old, new))`, so
    that a rename does not reformat the formulas it touches. `formula` must be valid.
    """
    old_key = old.lower()
    tokens = tokenize(formula)
    pieces: list[str] = []
    copied_up_to = 0
    for token, following in pairwise(tokens):
        is_reference = token.kind == "column" or (
            token.kind == "name"
            and token.value.upper() not in KEYWORDS
            and not (following.kind == "symbol" and following.value == "(")
        )
        if is_reference and token.value.lower() == old_key:
            pieces.append(formula[copied_up_to : token.position])
            pieces.append(reference_text(new))
            copied_up_to = token.end
    pieces.append(formula[copied_up_to:])
    return "".join(pieces)
