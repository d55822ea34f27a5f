"""Everything a calculated column's formula must pass before it is saved."""

from __future__ import annotations

from collections.abc import Mapping

from .checker import check
from .errors import FormulaError
from .graph import find_cycle
from .nodes import ColumnRef, Node, walk
from .parser import parse
from .references import canonical_dependencies, dependencies, dependencies_in_text
from .value_types import check_result


def validate(
    formula: str,
    column_name: str,
    column_type: str,
    columns: Mapping[str, str],
    formulas: Mapping[str, str],
) -> tuple[Node, list[str]]:
    """The tree of `formula` and the names of the columns it reads, spelt as in `columns`.

    `column_name`/`column_type` describe the calculated column the formula is for; `columns`
    maps every column of the panel (base and calculated, possibly this one) to its type;
    `formulas` maps the panel's other calculated columns to their (valid) formulas. Raises
    FormulaError for a syntax error, a reference to the column itself, an unknown column or
    function, a type error, a result the column type cannot hold, or a dependency cycle.
    """
    tree = parse(formula)
    own_key = column_name.lower()
    for node in walk(tree):
        if isinstance(node, ColumnRef) and node.name.lower() == own_key:
            raise FormulaError(f'formula reads its own column "{node.name}"', node.position)
    check_result(check(tree, columns), column_type)
    cycle = find_cycle(_reachable_graph(column_name, dependencies(tree), formulas))
    if cycle is not None:
        raise FormulaError(f"dependency cycle: {' -> '.join(cycle)}", 0)
    return tree, canonical_dependencies(tree, columns)


def _reachable_graph(
    column_name: str, reads: list[str], formulas: Mapping[str, str]
) -> dict[str, list[str]]:
    """The dependency graph of the calculated columns reachable from the new one, itself first.

    The saved formulas have no cycle among themselves, so any cycle passes through the new
    column and only formulas reachable from it need reading; a panel's other calculated
    columns cost nothing. Being valid, they are read from their tokens, without parsing.
    """
    own_key = column_name.lower()
    saved = {
        name.lower(): (name, text) for name, text in formulas.items() if name.lower() != own_key
    }
    graph = {column_name: reads}
    visited = {own_key}
    pending = list(reads)
    while pending:
        key = pending.pop().lower()
        if key in visited or key not in saved:
            continue
        visited.add(key)
        name, text = saved[key]
        graph[name] = dependencies_in_text(text)
        pending.extend(graph[name])
    return graph
