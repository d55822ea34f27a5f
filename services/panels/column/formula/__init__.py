r"""The formula language of calculated columns.

Syntax, loosest binding first:

    comparison   concat (("=" | "<>" | "!=" | "<" | "<=" | ">" | ">=") concat)?
    concat       sum ("&" sum)*
    sum          product (("+" | "-") product)*
    product      signed (("*" | "/") signed)*
    signed       "-"* primary
    primary      number | string | TRUE | FALSE | column | "(" comparison ")"
                 | NAME "(" [comparison ("," comparison)*] ")"

- Binary operators are left-associative (`a - b - c` is `(a - b) - c`). Comparisons do not
  chain: `a < b < c` is an error (write `AND(a < b, b < c)`); `(a < b) = c` is fine.
- Unary minus binds tighter than every binary operator (`-a * b` is `(-a) * b`). Number
  literals are never negative: `-2` is unary minus applied to 2. `!=` is read as `<>`.
- Numbers: `12`, `1.5`, `.5`, `2.`, `1e-3`, held exactly as Decimal, within float range. A
  number running into a letter, digit or dot (`12abc`, `1.2.3`) is an error.
- Strings: in double or single quotes. A backslash escapes either quote or a backslash (any
  other backslash sequence is an error); as in spreadsheets, a doubled enclosing quote also
  stands for one (`"a ""b"" c"` is `a "b" c`). Canonical text uses double quotes and
  backslashes.
- Columns: bare when the name is `[A-Za-z_][A-Za-z0-9_]*`, is not TRUE/FALSE and is not
  followed by `(`; otherwise in braces, `{First Name}`, where `\}` and `\\` are the only escapes.
  Names match the panel's columns case-insensitively, as the service compares them.
- Functions: case-insensitive names, stored upper-case. TRUE/FALSE are case-insensitive.
- Limits: 10,000 characters, 64 levels of parentheses/calls, 128 levels of operations.

Types: see `checker` for the rules. `any` (multi-select and custom columns) is compatible with
everything; a date and a datetime mix (the result is a datetime). DATEDIFF's unit is a string
literal, matched case-insensitively. Every error is a FormulaError whose position points at
the offending node (a binary operation's position is its operator).
"""

from __future__ import annotations

from .checker import DATEDIFF_UNITS, FUNCTIONS, check
from .errors import FormulaError
from .graph import find_cycle
from .nodes import (
    BINARY_OPERATORS,
    Binary,
    BinaryOperator,
    Boolean,
    Call,
    ColumnRef,
    Node,
    Number,
    String,
    Unary,
    UnaryOperator,
)
from .parser import MAX_HEIGHT, MAX_LENGTH, MAX_NESTING, parse
from .printer import reference_text, to_text
from .references import (
    canonical_dependencies,
    dependencies,
    dependencies_in_text,
    rename_column,
    rename_in_text,
)
from .validation import validate
from .value_types import COLUMN_TYPES, VALUE_TYPES, ValueType, check_result, value_type_of

__all__ = [
    "BINARY_OPERATORS",
    "COLUMN_TYPES",
    "DATEDIFF_UNITS",
    "FUNCTIONS",
    "MAX_HEIGHT",
    "MAX_LENGTH",
    "MAX_NESTING",
    "VALUE_TYPES",
    "Binary",
    "BinaryOperator",
    "Boolean",
    "Call",
    "ColumnRef",
    "FormulaError",
    "Node",
    "Number",
    "String",
    "Unary",
    "UnaryOperator",
    "ValueType",
    "canonical_dependencies",
    "check",
    "check_result",
    "dependencies",
    "dependencies_in_text",
    "find_cycle",
    "parse",
    "reference_text",
    "rename_column",
    "rename_in_text",
    "to_text",
    "validate",
    "value_type_of",
]
