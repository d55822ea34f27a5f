from __future__ import annotations

import pickle

import pytest

from panels.column.formula import (
    COLUMN_TYPES,
    FUNCTIONS,
    FormulaError,
    ValueType,
    check,
    check_result,
    parse,
    value_type_of,
)

COLUMNS = {
    "first": "text",
    "last": "text",
    "Status": "select",
    "owner": "user",
    "attachment": "file",
    "n": "number",
    "m": "number",
    "flag": "boolean",
    "born": "date",
    "seen": "datetime",
    "labels": "multi_select",
    "extra": "custom",
    "First Name": "text",
}


def type_of(text: str) -> ValueType:
    return check(parse(text), COLUMNS)


def error_of(text: str) -> tuple[str, int]:
    with pytest.raises(FormulaError) as caught:
        type_of(text)
    return caught.value.message, caught.value.position


@pytest.mark.parametrize(
    ("column_type", "value_type"),
    [
        ("text", "text"),
        ("select", "text"),
        ("user", "text"),
        ("file", "text"),
        ("number", "number"),
        ("boolean", "boolean"),
        ("date", "date"),
        ("datetime", "datetime"),
        ("multi_select", "any"),
        ("custom", "any"),
    ],
)
def test_value_type_of(column_type: str, value_type: ValueType) -> None:
    assert value_type_of(column_type) == value_type


def test_every_column_type_has_a_value_type_and_unknown_ones_are_refused() -> None:
    assert len(COLUMN_TYPES) == 10
    with pytest.raises(ValueError, match="unknown column type 'colour'"):
        value_type_of("colour")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("1", "number"),
        ('"x"', "text"),
        ("TRUE", "boolean"),
        ("first", "text"),
        ("FIRST", "text"),  # columns match case-insensitively
        ("{first name}", "text"),
        ("status", "text"),
        ("owner", "text"),
        ("attachment", "text"),
        ("n", "number"),
        ("flag", "boolean"),
        ("born", "date"),
        ("seen", "datetime"),
        ("labels", "any"),
        ("extra", "any"),
        ("-n", "number"),
        ("-extra", "number"),
        ("n + m", "number"),
        ("n - 1", "number"),
        ("n * m", "number"),
        ("n / 2", "number"),
        ("labels * 2", "number"),
        ("first & n", "text"),
        ("flag & born & seen & labels", "text"),
        ("n = m", "boolean"),
        ("first <> last", "boolean"),
        ("born < seen", "boolean"),  # a date and a datetime compare
        ("flag = FALSE", "boolean"),
        ("labels >= 3", "boolean"),
        ("first <= extra", "boolean"),
        ("n > 1", "boolean"),
    ],
)
def test_expression_types(text: str, expected: ValueType) -> None:
    assert type_of(text) == expected


@pytest.mark.parametrize(
    ("text", "message", "position"),
    [
        ("CONCAT(first, lastNme)", 'unknown column "lastNme"', 14),
        ("n + {Last Name}", 'unknown column "Last Name"', 4),
        ('"x" * 2', "cannot multiply text by number", 4),
        ("first + n", "cannot add text and number", 6),
        ("n - flag", "cannot subtract boolean from number", 2),
        ("born / 2", "cannot divide date by number", 5),
        ("2 * (n + first)", "cannot add number and text", 7),
        ("-first", "cannot negate text", 0),
        ("n + -flag", "cannot negate boolean", 4),
        ("n = first", "cannot compare number with text", 2),
        ("flag < 1", "cannot compare boolean with number", 5),
        ("born = 'x'", "cannot compare date with text", 5),
    ],
)
def test_type_errors(text: str, message: str, position: int) -> None:
    assert error_of(text) == (message, position)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("IF(flag, 1, 2)", "number"),
        ("if(n > 1, first, 'none')", "text"),
        ("IF(labels, born, born)", "date"),
        ("IF(flag, born, seen)", "datetime"),
        ("IF(flag, extra, 1)", "number"),
        ("IF(flag, 1, extra)", "number"),
        ("IF(flag, extra, labels)", "any"),
        ("AND(flag, n > 1, TRUE)", "boolean"),
        ("AND(flag)", "boolean"),
        ("OR(flag, FALSE)", "boolean"),
        ("NOT(flag)", "boolean"),
        ("not(labels)", "boolean"),
        ("CONCAT(first, ' ', n, flag, born)", "text"),
        ("CONCAT(n)", "text"),
        ("UPPER(first)", "text"),
        ("LOWER(status)", "text"),
        ("TRIM(owner)", "text"),
        ("LEN(first)", "number"),
        ("len(extra)", "number"),
        ("ROUND(n)", "number"),
        ("ROUND(n / 3, 2)", "number"),
        ("ABS(-n)", "number"),
        ("MIN(n)", "number"),
        ("MIN(n, m, 3)", "number"),
        ("MAX(n, labels)", "number"),
        ("COALESCE(first, last, 'none')", "text"),
        ("COALESCE(n)", "number"),
        ("COALESCE(labels, n)", "number"),
        ("COALESCE(born, seen)", "datetime"),
        ("DATEDIFF(born, TODAY(), 'days')", "number"),
        ('DATEDIFF(seen, NOW(), "hours")', "number"),
        ('DATEDIFF(born, seen, "months")', "number"),
        ('DATEDIFF(extra, born, "years")', "number"),
        ('DATEDIFF(born, born, "Days")', "number"),
        ("TODAY()", "date"),
        ("NOW()", "datetime"),
    ],
)
def test_function_types(text: str, expected: ValueType) -> None:
    assert type_of(text) == expected


def test_the_functions_the_contract_requires() -> None:
    required = "IF AND OR NOT CONCAT UPPER LOWER TRIM LEN ROUND ABS MIN MAX COALESCE DATEDIFF"
    assert set(FUNCTIONS) == {*required.split(), "TODAY", "NOW"}


@pytest.mark.parametrize(
    ("text", "message", "position"),
    [
        ("FOO(1)", 'unknown function "FOO"', 0),
        ("n + foo(1)", 'unknown function "FOO"', 4),
        ("IF(flag, 1)", "IF takes 3 arguments, got 2", 0),
        ("IF(flag, 1, 2, 3)", "IF takes 3 arguments, got 4", 0),
        ("AND()", "AND takes at least 1 argument, got 0", 0),
        ("OR()", "OR takes at least 1 argument, got 0", 0),
        ("NOT(flag, flag)", "NOT takes 1 argument, got 2", 0),
        ("CONCAT()", "CONCAT takes at least 1 argument, got 0", 0),
        ("UPPER()", "UPPER takes 1 argument, got 0", 0),
        ("LOWER(a, b)", "LOWER takes 1 argument, got 2", 0),
        ("TRIM()", "TRIM takes 1 argument, got 0", 0),
        ("LEN()", "LEN takes 1 argument, got 0", 0),
        ("ROUND()", "ROUND takes 1 or 2 arguments, got 0", 0),
        ("ROUND(1, 2, 3)", "ROUND takes 1 or 2 arguments, got 3", 0),
        ("ABS()", "ABS takes 1 argument, got 0", 0),
        ("MIN()", "MIN takes at least 1 argument, got 0", 0),
        ("MAX()", "MAX takes at least 1 argument, got 0", 0),
        ("COALESCE()", "COALESCE takes at least 1 argument, got 0", 0),
        ("DATEDIFF(born, born)", "DATEDIFF takes 3 arguments, got 2", 0),
        ("TODAY(1)", "TODAY takes no arguments, got 1", 0),
        ("n + NOW(1, 2)", "NOW takes no arguments, got 2", 4),
        ("IF(first, 1, 2)", "IF argument 1 must be a boolean, got text", 3),
        ("IF(flag, 1, 'x')", "IF branches must have the same type, got number and text", 12),
        ("IF(flag, born, 1)", "IF branches must have the same type, got date and number", 15),
        ("AND(flag, n)", "AND argument 2 must be a boolean, got number", 10),
        ("OR(1)", "OR argument 1 must be a boolean, got number", 3),
        ("NOT(first)", "NOT argument 1 must be a boolean, got text", 4),
        ("UPPER(n)", "UPPER argument 1 must be text, got number", 6),
        ("LOWER(flag)", "LOWER argument 1 must be text, got boolean", 6),
        ("TRIM(born)", "TRIM argument 1 must be text, got date", 5),
        ("LEN(1)", "LEN argument 1 must be text, got number", 4),
        ("ROUND(first)", "ROUND argument 1 must be a number, got text", 6),
        ("ROUND(n, '2')", "ROUND argument 2 must be a number, got text", 9),
        ("ABS(seen)", "ABS argument 1 must be a number, got datetime", 4),
        ("MIN(1, 2, first)", "MIN argument 3 must be a number, got text", 10),
        ("MAX(flag)", "MAX argument 1 must be a number, got boolean", 4),
        (
            "COALESCE(n, first)",
            "COALESCE arguments must have the same type, got number and text",
            12,
        ),
        (
            "DATEDIFF(n, born, 'days')",
            "DATEDIFF argument 1 must be a date or datetime, got number",
            9,
        ),
        (
            "DATEDIFF(born, 'x', 'days')",
            "DATEDIFF argument 2 must be a date or datetime, got text",
            15,
        ),
        (
            'DATEDIFF(born, born, "weeks")',
            'DATEDIFF unit must be "days", "hours", "months" or "years"',
            21,
        ),
        (
            "DATEDIFF(born, born, first)",
            'DATEDIFF unit must be "days", "hours", "months" or "years"',
            21,
        ),
        (
            "DATEDIFF(born, born, 1)",
            'DATEDIFF unit must be "days", "hours", "months" or "years"',
            21,
        ),
        # Errors inside arguments come first, in text order.
        ("IF(flag, nope, 1)", 'unknown column "nope"', 9),
        ("UPPER(LOWER(n))", "LOWER argument 1 must be text, got number", 12),
    ],
)
def test_function_errors(text: str, message: str, position: int) -> None:
    assert error_of(text) == (message, position)


@pytest.mark.parametrize(
    ("result", "column_type"),
    [
        *[(result, "text") for result in ("number", "text", "boolean", "date", "datetime", "any")],
        *[(result, "select") for result in ("number", "text", "boolean", "date")],
        *[(result, kind) for result in ("number", "date") for kind in ("multi_select", "custom")],
        *[(result, kind) for result in ("boolean", "datetime") for kind in ("user", "file")],
        ("number", "number"),
        ("boolean", "boolean"),
        ("date", "date"),
        ("date", "datetime"),
        ("datetime", "datetime"),
        *[("any", kind) for kind in COLUMN_TYPES],
    ],
)
def test_results_a_column_type_accepts(result: ValueType, column_type: str) -> None:
    check_result(result, column_type)


@pytest.mark.parametrize(
    ("result", "column_type", "message"),
    [
        ("text", "number", "formula returns text, but a number column needs a number"),
        ("boolean", "number", "formula returns boolean, but a number column needs a number"),
        ("number", "boolean", "formula returns number, but a boolean column needs a boolean"),
        ("datetime", "date", "formula returns datetime, but a date column needs a date"),
        ("text", "date", "formula returns text, but a date column needs a date"),
        (
            "number",
            "datetime",
            "formula returns number, but a datetime column needs a date or datetime",
        ),
    ],
)
def test_results_a_column_type_refuses(result: ValueType, column_type: str, message: str) -> None:
    with pytest.raises(FormulaError) as caught:
        check_result(result, column_type, 7)
    assert (caught.value.message, caught.value.position) == (message, 7)


def test_check_result_refuses_an_unknown_column_type() -> None:
    with pytest.raises(ValueError, match="unknown column type"):
        check_result("text", "colour")


def test_formula_error_survives_pickling() -> None:
    error = FormulaError('unknown column "x"', 4)
    copy = pickle.loads(pickle.dumps(error))
    assert (copy.message, copy.position, str(copy)) == (error.message, 4, 'unknown column "x" at 4')
