from __future__ import annotations

import inspect
import sys
from collections.abc import Callable
from decimal import Decimal

import pytest

from panels.column.formula import (
    MAX_HEIGHT,
    MAX_LENGTH,
    MAX_NESTING,
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
    parse,
    to_text,
    validate,
)


def num(text: str) -> Number:
    return Number(Decimal(text))


a, b, c = ColumnRef("a"), ColumnRef("b"), ColumnRef("c")


def error_of(text: str) -> tuple[str, int]:
    with pytest.raises(FormulaError) as caught:
        parse(text)
    return caught.value.message, caught.value.position


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("12", "12"),
        ("1.5", "1.5"),
        (".5", "0.5"),
        ("2.", "2"),
        ("1e3", "1000"),
        ("1E-3", "0.001"),
        ("1.5e+2", "150"),
        ("007", "7"),
        ("0", "0"),
    ],
)
def test_numbers(text: str, value: str) -> None:
    assert parse(text) == num(value)


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ('"hello"', "hello"),
        ("'hello'", "hello"),
        ('""', ""),
        ('"it\'s"', "it's"),
        ("'say \"hi\"'", 'say "hi"'),
        (r'"a\"b"', 'a"b'),
        (r"'it\'s'", "it's"),
        (r'"back\\slash"', "back\\slash"),
        (r'"\'"', "'"),
        ('"a""b"', 'a"b'),  # a doubled quote stands for one, as in spreadsheets
        ("'a''b'", "a'b"),
        ("'a\"\"b'", 'a""b'),  # ...but only the enclosing quote
        ('"two\nlines"', "two\nlines"),
    ],
)
def test_strings(text: str, value: str) -> None:
    assert parse(text) == String(value)


@pytest.mark.parametrize(("text", "value"), [("TRUE", True), ("false", False), ("True", True)])
def test_booleans_are_case_insensitive(text: str, value: bool) -> None:
    assert parse(text) == Boolean(value)


@pytest.mark.parametrize(
    ("text", "name"),
    [
        ("firstName", "firstName"),
        ("_x9", "_x9"),
        ("{First Name}", "First Name"),
        ("{ padded }", " padded "),
        (r"{a\}b}", "a}b"),
        (r"{a\\b}", "a\\b"),
        ("{a{b}", "a{b"),
        ("{TRUE}", "TRUE"),
        ("{IF}", "IF"),
        ("IF", "IF"),  # a column, as no "(" follows
        ("{Prénom}", "Prénom"),
        ("{a'b\"c}", "a'b\"c"),
    ],
)
def test_column_references(text: str, name: str) -> None:
    assert parse(text) == ColumnRef(name)


def test_function_names_are_case_insensitive_and_stored_upper_case() -> None:
    expected = Call("IF", (a, b, c))
    assert parse("if(a, b, c)") == expected
    assert parse("If (a,b,c)") == expected
    assert parse("TODAY()") == Call("TODAY", ())
    assert parse("concat(a)") == Call("CONCAT", (a,))


@pytest.mark.parametrize("op", ["+", "-", "*", "/", "&", "=", "<>", "<", "<=", ">", ">="])
def test_every_binary_operator(op: str) -> None:
    assert parse(f"a {op} b") == Binary(op, a, b)  # type: ignore[arg-type]
    assert parse(f"a{op}b") == Binary(op, a, b)  # type: ignore[arg-type]


def test_bang_equals_means_not_equal() -> None:
    assert parse("a != b") == Binary("<>", a, b)


def test_unary_minus() -> None:
    assert parse("-a") == Unary("-", a)
    assert parse("--a") == Unary("-", Unary("-", a))
    assert parse("-2") == Unary("-", num("2"))  # literals are never negative
    assert parse("a - -b") == Binary("-", a, Unary("-", b))
    assert parse("-(a + b)") == Unary("-", Binary("+", a, b))


@pytest.mark.parametrize(
    ("text", "tree"),
    [
        ("a + b * c", Binary("+", a, Binary("*", b, c))),
        ("a * b + c", Binary("+", Binary("*", a, b), c)),
        ("(a + b) * c", Binary("*", Binary("+", a, b), c)),
        ("a & b + c", Binary("&", a, Binary("+", b, c))),
        ("a + b & c", Binary("&", Binary("+", a, b), c)),
        ("a = b & c", Binary("=", a, Binary("&", b, c))),
        ("a & b = c", Binary("=", Binary("&", a, b), c)),
        ("a < b + c", Binary("<", a, Binary("+", b, c))),
        ("-a * b", Binary("*", Unary("-", a), b)),
        ("a * -b", Binary("*", a, Unary("-", b))),
        ("a - b / c", Binary("-", a, Binary("/", b, c))),
    ],
)
def test_precedence(text: str, tree: Node) -> None:
    assert parse(text) == tree


@pytest.mark.parametrize("op", ["+", "-", "*", "/", "&"])
def test_binary_operators_are_left_associative(op: str) -> None:
    assert parse(f"a {op} b {op} c") == Binary(op, Binary(op, a, b), c)  # type: ignore[arg-type]


def test_mixed_levels_associate_left() -> None:
    assert parse("a - b + c") == Binary("+", Binary("-", a, b), c)
    assert parse("a / b * c") == Binary("*", Binary("/", a, b), c)


def test_comparisons_do_not_chain_unless_parenthesised() -> None:
    assert error_of("a < b < c") == ("comparisons cannot be chained", 6)
    assert error_of("a = b & c <> d") == ("comparisons cannot be chained", 10)
    assert parse("(a < b) = c") == Binary("=", Binary("<", a, b), c)
    assert parse("a = (b < c)") == Binary("=", a, Binary("<", b, c))
    assert parse("IF(a < b, b < c, TRUE)") == Call(
        "IF", (Binary("<", a, b), Binary("<", b, c), Boolean(True))
    )


def test_positions() -> None:
    tree = parse('IF( {x y} > 2, -b, "s")')
    assert isinstance(tree, Call)
    condition, negation, text = tree.args
    assert tree.position == 0
    assert isinstance(condition, Binary)
    assert (condition.position, condition.left.position, condition.right.position) == (10, 4, 12)
    assert isinstance(negation, Unary)
    assert (negation.position, negation.operand.position) == (15, 16)
    assert text.position == 19


def test_positions_do_not_take_part_in_equality() -> None:
    assert parse("a+b*c") == parse("  a  +  b  *  c  ")
    assert hash(parse("a+b*c")) == hash(parse("  a  +  b  *  c  "))
    assert parse("((a))") == parse("a")
    assert parse("1.0") == parse("1")


@pytest.mark.parametrize(
    ("text", "message", "position"),
    [
        ("1 +", "unexpected end of formula", 3),
        ("(1", 'unclosed "("', 0),
        ("((1)", 'unclosed "("', 0),
        ('"abc', "unterminated string", 0),
        ("x & 'abc", "unterminated string", 4),
        ('"abc\\"', "unterminated string", 0),
        ("a b", 'unexpected "b"', 2),
        ("@", 'unexpected character "@"', 0),
        ("a # b", 'unexpected character "#"', 2),
        ("\x00", "unexpected character U+0000", 0),
        ("", "formula is empty", 0),
        (" \t\n", "formula is empty", 0),
        ("1)", 'unexpected ")"', 1),
        (")", 'unexpected ")"', 0),
        ("()", 'unexpected ")"', 1),
        ("IF(a, b", 'unclosed "("', 2),
        ("IF(a,)", 'unexpected ")"', 5),
        ("IF(,a)", 'unexpected ","', 3),
        ("f(a b)", 'unexpected "b"', 4),
        ("{abc", "unterminated column name", 0),
        ("a + {}", "empty column name", 4),
        ('"a\\qb"', 'invalid escape "\\q"', 2),
        ("{a\\qb}", 'invalid escape "\\q"', 2),
        ("{a\\{b}", 'invalid escape "\\{"', 2),
        ("12abc", "invalid number", 0),
        ("1.2.3", "invalid number", 0),
        ("x * 1e", "invalid number", 4),
        ("1e400", "number is out of range", 0),
        ("1e99999999999999999999", "number is out of range", 0),
        ("TRUE()", 'unexpected "("', 4),
        ("a == b", 'unexpected "="', 3),
        ("+1", 'unexpected "+"', 0),
        ("1 2", "unexpected 2", 2),
        ('a "x"', 'unexpected "x"', 2),
        ("a {b c}", "unexpected {b c}", 2),
        ("a, b", 'unexpected ","', 1),
        ("a -", "unexpected end of formula", 3),
        ("!a", 'unexpected character "!"', 0),
    ],
)
def test_syntax_errors(text: str, message: str, position: int) -> None:
    assert error_of(text) == (message, position)


def test_formula_error_text_and_type() -> None:
    with pytest.raises(ValueError, match=r"^unexpected end of formula at 3$") as caught:
        parse("1 +")
    assert isinstance(caught.value, FormulaError)
    assert str(caught.value) == "unexpected end of formula at 3"


def test_length_limit() -> None:
    longest = "1" + " " * (MAX_LENGTH - 1)
    assert parse(longest) == num("1")
    assert error_of(longest + " ") == (
        f"formula is longer than {MAX_LENGTH} characters",
        MAX_LENGTH,
    )


def test_nesting_limit() -> None:
    assert parse("(" * MAX_NESTING + "a" + ")" * MAX_NESTING) == a
    too_deep = "(" * (MAX_NESTING + 1) + "a" + ")" * (MAX_NESTING + 1)
    message, position = error_of(too_deep)
    assert message.startswith("formula is nested too deeply")
    assert position == MAX_NESTING
    assert (
        error_of("ABS(" * (MAX_NESTING + 1) + "a" + ")" * (MAX_NESTING + 1))[1]
        == 4 * MAX_NESTING + 3
    )


@pytest.mark.parametrize(
    "text",
    [
        "(" * MAX_LENGTH,
        "-" * (MAX_LENGTH - 1) + "1",
        "1+" * (MAX_LENGTH // 2 - 1) + "1",
        "ABS(" * 2000,
        "{" * MAX_LENGTH,
        '"' * MAX_LENGTH + "'",
    ],
)
def test_huge_inputs_fail_cleanly(text: str) -> None:
    with pytest.raises(FormulaError):
        parse(text)


def test_height_limit() -> None:
    assert check(parse(" + ".join(["a"] * MAX_HEIGHT)), {"a": "number"}) == "number"
    message, _ = error_of(" + ".join(["a"] * (MAX_HEIGHT + 1)))
    assert message.startswith("formula is nested too deeply")
    assert parse("-" * (MAX_HEIGHT - 1) + "a")
    assert error_of("-" * MAX_HEIGHT + "a")[0].startswith("formula is nested too deeply")


def _frames_in_use() -> int:
    return len(inspect.stack(0))


@pytest.mark.parametrize(
    "text",
    [
        " + ".join(["a"] * MAX_HEIGHT),
        "-" * (MAX_HEIGHT - 1) + "a",
        "(" * MAX_NESTING + "a" + ")" * MAX_NESTING,
        "ABS(" * MAX_NESTING + "a" + ")" * MAX_NESTING,
        "a - (" * (MAX_NESTING - 1) + "a" + ")" * (MAX_NESTING - 1),
        "(" * (MAX_NESTING + 1),  # refused, after the deepest recursion the parser allows
        "a = a & a + a * (" * (MAX_NESTING - 1) + "a" + ")" * (MAX_NESTING - 1),
    ],
)
def test_largest_formulas_leave_most_of_the_stack_free(text: str) -> None:
    """Everything done with a formula within the limits fits in 450 frames (of 1,000)."""
    columns = {"a": "number", "x": "number"}

    def everything() -> None:
        try:
            tree = parse(text)
        except FormulaError:
            return
        assert parse(to_text(tree)) == tree
        assert repr(tree)
        assert hash(tree) == hash(parse(text))
        check(tree, columns)
        validate(text, "x", "number", columns, {})

    default_limit = sys.getrecursionlimit()
    sys.setrecursionlimit(_frames_in_use() + 450)
    try:
        everything()
    finally:
        sys.setrecursionlimit(default_limit)


@pytest.mark.parametrize(
    ("text", "canonical"),
    [
        ("if(a>1,'x',\"y\")", 'IF(a > 1, "x", "y")'),
        ("a - (b - c)", "a - (b - c)"),
        ("(a - b) - c", "a - b - c"),
        ("a * (b + c)", "a * (b + c)"),
        ("(a * b) + c", "a * b + c"),
        ("a & (b & c)", "a & (b & c)"),
        ("(a < b) = (b < c)", "(a < b) = (b < c)"),
        ("(a + b) < c", "a + b < c"),
        ("-(-1)", "--1"),
        ("-(a + b)", "-(a + b)"),
        ("(-a) * b", "-a * b"),
        ("a != b", "a <> b"),
        ("{First Name} & {true} & {IF}", "{First Name} & {true} & IF"),
        (r"{a\}b\\c}", r"{a\}b\\c}"),
        ("{Prénom}", "{Prénom}"),
        (r"'a\'b'", '"a\'b"'),
        (r'"c\\d"', r'"c\\d"'),
        ('"say ""hi"""', r'"say \"hi\""'),
        ("1e3 + .5 + 1.50", "1E+3 + 0.5 + 1.50"),
        ("true = FALSE", "TRUE = FALSE"),
        ("today()", "TODAY()"),
        ("min(a,b , c)", "MIN(a, b, c)"),
    ],
)
def test_canonical_text(text: str, canonical: str) -> None:
    assert to_text(parse(text)) == canonical
    assert parse(canonical) == parse(text)


@pytest.mark.parametrize(
    "make",
    [
        lambda: Number(Decimal("-1")),
        lambda: Number(Decimal("NaN")),
        lambda: Number(Decimal("1e400")),
        lambda: ColumnRef(""),
        lambda: Call("if", ()),
        lambda: Call("TRUE", ()),
        lambda: Binary("^", a, b),  # type: ignore[arg-type]
        lambda: Unary("+", a),  # type: ignore[arg-type]
    ],
)
def test_trees_that_no_text_could_produce_are_refused(make: Callable[[], Node]) -> None:
    with pytest.raises(ValueError):
        make()
