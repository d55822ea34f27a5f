from __future__ import annotations

import pytest

from panels.column.formula import (
    Binary,
    ColumnRef,
    FormulaError,
    canonical_dependencies,
    dependencies,
    dependencies_in_text,
    find_cycle,
    parse,
    rename_column,
    rename_in_text,
    to_text,
    validate,
)


def test_dependencies_in_order_of_first_appearance_each_once() -> None:
    tree = parse("IF(b > a, {First Name} & b, A & c) & 'a' & UPPER(d)")
    assert dependencies(tree) == ["b", "a", "First Name", "c", "d"]
    assert dependencies(parse("1 + TODAY()")) == []


@pytest.mark.parametrize(
    "formula",
    ["IF(b > a, {First Name} & b, A & c) & 'a' & UPPER(d)", "if (x, true, {true}) + t", "1"],
)
def test_dependencies_in_text_agree_with_the_tree(formula: str) -> None:
    assert dependencies_in_text(formula) == dependencies(parse(formula))


def test_canonical_dependencies_use_the_panel_spelling() -> None:
    tree = parse("AMOUNT * {first name} + amount + gone")
    columns = ["First Name", "Amount", "other"]
    assert canonical_dependencies(tree, columns) == ["Amount", "First Name", "gone"]


@pytest.mark.parametrize(
    ("formula", "old", "new", "renamed"),
    [
        ("price * qty", "price", "cost", "cost * qty"),
        ("PRICE * Price + qty", "price", "cost", "cost * cost + qty"),
        ("{Unit Price} * qty", "unit price", "Price", "Price * qty"),
        ("price * qty", "price", "Unit Price", "{Unit Price} * qty"),
        ("price * qty", "price", "true", "{true} * qty"),
        ("price * qty", "price", "a}b\\c", "{a\\}b\\\\c} * qty"),
        ("IF(IF, 'IF', {if})", "if", "when", 'IF(when, "IF", when)'),
        ("LEN(name) & name & 'name'", "name", "label", 'LEN(label) & label & "name"'),
        ("a + b", "c", "d", "a + b"),
    ],
)
def test_rename_column(formula: str, old: str, new: str, renamed: str) -> None:
    tree = rename_column(parse(formula), old, new)
    assert to_text(tree) == renamed
    assert parse(renamed) == tree


def test_rename_column_keeps_positions_of_the_original_text() -> None:
    tree = rename_column(parse("x + price"), "price", "cost")
    assert isinstance(tree, Binary)
    assert tree.right == ColumnRef("cost")
    assert tree.right.position == 4


@pytest.mark.parametrize(
    ("formula", "old", "new", "renamed"),
    [
        ("price*qty  +PRICE", "price", "cost", "cost*qty  +cost"),
        ("{Unit Price}*2", "Unit Price", "unit", "unit*2"),
        ("price * 2", "price", "Unit Price", "{Unit Price} * 2"),
        ("if(if,'if',{IF})", "IF", "x y", "if({x y},'if',{x y})"),
        ("TRUE & {true}", "true", "t", "TRUE & t"),
        ("a\n+ b", "b", "c}", "a\n+ {c\\}}"),
    ],
)
def test_rename_in_text_keeps_the_rest_of_the_formula_as_written(
    formula: str, old: str, new: str, renamed: str
) -> None:
    assert rename_in_text(formula, old, new) == renamed
    assert parse(renamed) == rename_column(parse(formula), old, new)


def test_find_cycle() -> None:
    assert find_cycle({}) is None
    assert find_cycle({"a": ["b", "c"], "b": ["c", "base"], "c": ["base"]}) is None
    assert find_cycle({"a": ["b"], "b": ["a"]}) == ["a", "b", "a"]
    assert find_cycle({"a": ["a"]}) == ["a", "a"]
    assert find_cycle({"a": ["x", "b"], "b": ["c"], "c": ["d", "b"], "d": []}) == [
        "b",
        "c",
        "b",
    ]


def test_find_cycle_matches_names_case_insensitively_and_reports_the_keys() -> None:
    assert find_cycle({"Total": ["SUB"], "sub": ["total"]}) == ["Total", "sub", "Total"]


def test_find_cycle_is_iterative() -> None:
    chain = {f"c{k}": [f"c{k + 1}"] for k in range(5000)}
    assert find_cycle(chain) is None
    chain["c5000"] = ["c0"]
    cycle = find_cycle(chain)
    assert cycle is not None
    assert (len(cycle), cycle[0], cycle[-1]) == (5002, "c0", "c0")


COLUMNS = {
    "first": "text",
    "last": "text",
    "price": "number",
    "qty": "number",
    "Total": "number",
    "Net": "number",
    "Label": "text",
}
FORMULAS = {"Total": "price * qty", "Net": "total * 0.8", "Label": "first & ' ' & last"}


def validation_error(formula: str, name: str, kind: str, formulas: dict[str, str]) -> FormulaError:
    with pytest.raises(FormulaError) as caught:
        validate(formula, name, kind, COLUMNS, formulas)
    return caught.value


def test_validate_returns_the_tree_and_canonical_dependencies() -> None:
    tree, reads = validate("NET + total * PRICE", "Gross", "number", COLUMNS, FORMULAS)
    assert tree == parse("NET + total * PRICE")
    assert reads == ["Net", "Total", "price"]


def test_validate_accepts_an_update_of_a_column_listed_among_the_columns() -> None:
    formulas = {name: text for name, text in FORMULAS.items() if name != "Net"}
    assert validate("total / 2", "Net", "number", COLUMNS, formulas)[1] == ["Total"]


@pytest.mark.parametrize(
    ("formula", "name", "kind", "message", "position"),
    [
        ("1 +", "x", "number", "unexpected end of formula", 3),
        ("price + x", "X", "number", 'formula reads its own column "x"', 8),
        ("price + lastNme", "x", "number", 'unknown column "lastNme"', 8),
        ("first * 2", "x", "number", "cannot multiply text by number", 6),
        (
            "first & last",
            "x",
            "number",
            "formula returns text, but a number column needs a number",
            0,
        ),
        ("price > 1", "x", "date", "formula returns boolean, but a date column needs a date", 0),
    ],
)
def test_validate_refuses(formula: str, name: str, kind: str, message: str, position: int) -> None:
    error = validation_error(formula, name, kind, FORMULAS)
    assert (error.message, error.position) == (message, position)


def test_validate_refuses_a_cycle_through_other_calculated_columns() -> None:
    # Updating Total to read Net, which reads Total.
    formulas = {"Net": "total * 0.8", "Label": "first"}
    error = validation_error("net + 1", "Total", "number", formulas)
    assert (error.message, error.position) == ("dependency cycle: Total -> Net -> Total", 0)
    assert str(error) == "dependency cycle: Total -> Net -> Total at 0"


def test_validate_finds_long_cycles_and_ignores_a_stale_formula_of_the_column_itself() -> None:
    columns = {f"c{k}": "number" for k in range(20)}
    formulas = {f"c{k}": f"c{k - 1} + 1" for k in range(1, 20)}
    formulas["c0"] = "c19 * 2"  # the stale formula of the column being validated
    assert validate("5", "c0", "number", columns, formulas)[1] == []
    with pytest.raises(FormulaError) as caught:
        validate("c19", "c0", "number", columns, formulas)
    assert caught.value.message == "dependency cycle: " + " -> ".join(
        ["c0", *(f"c{k}" for k in range(19, 0, -1)), "c0"]
    )
