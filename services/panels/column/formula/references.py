"""What a formula reads, and rewriting it when a column is renamed."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import replace
from itertools import pairwise

from .nodes import KEYWORDS, Binary, Call, ColumnRef, Node, Unary, walk
from .printer import reference_text
from .tokens import Token, tokenize


def dependencies(node: Node) -> list[str]:
    """The column names `node` reads, as written, each once (case-insensitively), in text order."""
    return _first_of_each(current.name for current in walk(node) if isinstance(current, ColumnRef))


def dependencies_in_text(formula: str) -> list[str]:
    """`dependencies(parse(formula))` for a valid formula, from its tokens alone.

    A few times quicker than parsing, for reading the saved formulas of a whole panel.
    """
    return _first_of_each(token.value for token in _reference_tokens(tokenize(formula)))


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
    pieces: list[str] = []
    copied_up_to = 0
    for token in _reference_tokens(tokenize(formula)):
        if token.value.lower() == old_key:
            pieces.append(formula[copied_up_to : token.position])
            pieces.append(reference_text(new))
            copied_up_to = token.end
    pieces.append(formula[copied_up_to:])
    return "".join(pieces)


def _reference_tokens(tokens: list[Token]) -> Iterator[Token]:
    """The tokens of a valid formula that name columns: every braced name, and every bare name
    that is neither TRUE/FALSE nor a function (followed by "(")."""
    for token, following in pairwise(tokens):
        if token.kind == "column" or (
            token.kind == "name"
            and token.value.upper() not in KEYWORDS
            and not (following.kind == "symbol" and following.value == "(")
        ):
            yield token


def _first_of_each(names: Iterable[str]) -> list[str]:
    """`names` without the repeats (compared case-insensitively), each as first written."""
    seen: set[str] = set()
    unique: list[str] = []
    for name in names:
        key = name.lower()
        if key not in seen:
            seen.add(key)
            unique.append(name)
    return unique
