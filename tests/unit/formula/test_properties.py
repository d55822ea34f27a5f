from __future__ import annotations

from decimal import Decimal
from itertools import pairwise

from hypothesis import given, settings
from hypothesis import strategies as st

from panels.column.formula import (
    BINARY_OPERATORS,
    FUNCTIONS,
    Binary,
    Boolean,
    Call,
    ColumnRef,
    FormulaError,
    Node,
    Number,
    String,
    Unary,
    check,
    dependencies,
    dependencies_in_text,
    find_cycle,
    parse,
    rename_column,
    rename_in_text,
    to_text,
)
from panels.column.formula.nodes import is_number_literal

COLUMNS = {"a": "number", "b": "text", "flag": "boolean", "when": "date", "tags": "multi_select"}

# Pieces of formulas, valid and broken, so that random text often comes close to a formula.
FRAGMENTS = [
    *("a", "b", "flag", "when", "tags", "x_1", "IF", "if", "Concat", "TRUE", "false", "e"),
    *("(", ")", ",", " ", "+", "-", "*", "/", "&", "=", "<>", "!=", "<", "<=", ">", ">="),
    *("1", "2.5", ".5", "1e3", "2E-2", "007", '"s"', "'t'", '"', "'", '""', "\\", '"\\""'),
    *("{", "}", "{a b}", "{x\\}y}", "CONCAT(", "MIN(", "TODAY()", "DATEDIFF(", "@", ".", "\n"),
]
formula_like_text = st.lists(st.sampled_from(FRAGMENTS), max_size=40).map("".join)
formula_characters = st.text(alphabet="ab1 .e()+-*/&=<>!,\"'{}\\TRUEIF_", max_size=60)
any_text = st.one_of(st.text(max_size=80), formula_characters, formula_like_text)

_LETTERS = "abcxyzABCXYZ_"
plain_names = st.builds(
    str.__add__, st.sampled_from(_LETTERS), st.text(alphabet=_LETTERS + "019", max_size=6)
)
column_names = st.one_of(
    plain_names,
    st.text(min_size=1, max_size=8),
    st.sampled_from(["true", "FALSE", "IF", "a}b", "\\", "{", " x ", "First Name", "é"]),
)
function_names = st.one_of(
    st.sampled_from(sorted(FUNCTIONS)),
    plain_names.map(str.upper).filter(lambda name: name not in ("TRUE", "FALSE")),
)
numbers = st.one_of(
    st.integers(min_value=0, max_value=10**30).map(Decimal),
    st.decimals(min_value=0, max_value=10**6, places=3),
    st.tuples(st.integers(0, 999), st.integers(-30, 30)).map(lambda t: Decimal(t[0]).scaleb(t[1])),
    st.floats(min_value=0, max_value=1e300).map(lambda f: Decimal(repr(f))),
).filter(is_number_literal)
leaves = st.one_of(
    numbers.map(Number),
    st.text(max_size=8).map(String),
    st.booleans().map(Boolean),
    column_names.map(ColumnRef),
)


def _compound(children: st.SearchStrategy[Node]) -> st.SearchStrategy[Node]:
    return st.one_of(
        children.map(lambda operand: Unary("-", operand)),
        st.builds(Binary, st.sampled_from(BINARY_OPERATORS), children, children),
        st.builds(Call, function_names, st.lists(children, max_size=3).map(tuple)),
    )


trees = st.recursive(leaves, _compound, max_leaves=20)


def _loose_text(node: Node, draw: st.DrawFn) -> str:
    """A text of `node` other than the canonical one: redundant parentheses, random spacing
    and letter case, single quotes, doubled-quote escapes, `!=`, braces around plain names."""

    def space() -> str:
        return draw(st.sampled_from(["", " ", "\t", "\n  "]))

    def case(word: str) -> str:
        return draw(st.sampled_from([word, word.lower(), word.capitalize()]))

    if isinstance(node, Number):
        return draw(st.sampled_from([str(node.value), str(node.value).lower()]))
    if isinstance(node, String):
        if draw(st.booleans()):
            return "'" + node.value.replace("\\", "\\\\").replace("'", "''") + "'"
        return '"' + node.value.replace("\\", "\\\\").replace('"', '""') + '"'
    if isinstance(node, Boolean):
        return case("TRUE" if node.value else "FALSE")
    if isinstance(node, ColumnRef):
        if draw(st.booleans()):  # braces suit every name
            return "{" + node.name.replace("\\", "\\\\").replace("}", "\\}") + "}"
        return to_text(node)
    if isinstance(node, Unary):
        return f"-{space()}({_loose_text(node.operand, draw)})"
    if isinstance(node, Binary):
        op = "!=" if node.op == "<>" and draw(st.booleans()) else node.op
        left, right = _loose_text(node.left, draw), _loose_text(node.right, draw)
        return f"({space()}{left}){space()}{op}{space()}({right}{space()})"
    args = f",{space()}".join(_loose_text(arg, draw) for arg in node.args)
    return f"{case(node.name)}{space()}({space()}{args})"


@st.composite
def loosely_written(draw: st.DrawFn) -> tuple[Node, str]:
    tree = draw(trees)
    return tree, _loose_text(tree, draw)


@settings(deadline=None, max_examples=300)
@given(any_text)
def test_parse_raises_nothing_but_formula_error(text: str) -> None:
    try:
        check(parse(text), COLUMNS)
    except FormulaError as error:
        position = error.position
        assert 0 <= position <= len(text)


@settings(deadline=None, max_examples=300)
@given(trees)
def test_printed_trees_parse_back_to_themselves(tree: Node) -> None:
    text = to_text(tree)
    assert parse(text) == tree
    assert to_text(parse(text)) == text


@settings(deadline=None, max_examples=300)
@given(loosely_written())
def test_loosely_written_trees_parse_to_themselves(written: tuple[Node, str]) -> None:
    tree, text = written
    assert parse(text) == tree
    assert dependencies_in_text(text) == dependencies(tree)


@settings(deadline=None, max_examples=300)
@given(st.one_of(any_text, loosely_written().map(lambda written: written[1])))
def test_parsed_text_round_trips_through_its_canonical_text(text: str) -> None:
    try:
        tree = parse(text)
    except FormulaError:
        return
    canonical = to_text(tree)
    assert parse(canonical) == tree
    assert to_text(parse(canonical)) == canonical


@settings(deadline=None, max_examples=200)
@given(trees, column_names, st.data())
def test_renaming_in_text_and_in_the_tree_agree(tree: Node, new: str, data: st.DataObject) -> None:
    names = dependencies(tree)
    old = data.draw(st.sampled_from(names)) if names else "absent"
    renamed = rename_column(tree, old, new)
    assert parse(rename_in_text(to_text(tree), old, new)) == renamed
    remaining = {name.lower() for name in dependencies(renamed)}
    assert old.lower() not in remaining or old.lower() == new.lower()


graphs = st.dictionaries(
    st.sampled_from("abcdefgh"), st.lists(st.sampled_from("abcdefghxyz"), max_size=3), max_size=8
)


def _has_cycle(graph: dict[str, list[str]]) -> bool:
    """Kahn's algorithm: a graph is acyclic exactly when repeatedly removing nodes that no
    remaining node depends on empties it."""
    remaining = {name: {dep for dep in deps if dep in graph} for name, deps in graph.items()}
    while True:
        leaves = [name for name, deps in remaining.items() if not deps]
        if not leaves:
            return bool(remaining)
        for leaf in leaves:
            del remaining[leaf]
        for deps in remaining.values():
            deps.difference_update(leaves)


@settings(deadline=None, max_examples=300)
@given(graphs)
def test_find_cycle_returns_a_real_cycle_exactly_when_there_is_one(
    graph: dict[str, list[str]],
) -> None:
    cycle = find_cycle(graph)
    assert (cycle is not None) == _has_cycle(graph)
    if cycle is not None:
        assert cycle[0] == cycle[-1]
        assert len(set(cycle)) == len(cycle) - 1
        assert all(after in graph[before] for before, after in pairwise(cycle))
