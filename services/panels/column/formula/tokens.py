"""Splits formula text into tokens."""

from __future__ import annotations

import re
from typing import Literal, NamedTuple

from .errors import FormulaError

TokenKind = Literal["number", "string", "name", "column", "symbol", "end"]


class Token(NamedTuple):
    kind: TokenKind
    # The unescaped content of a string or braced column name, else the text as written.
    value: str
    position: int
    end: int


# One pattern for every token, whitespace before it included, so that the lexer is a single
# C-level scan per token. String bodies take a backslash before any character (checked
# afterwards, for a precise error) and, as in spreadsheets, a doubled quote.
_TOKEN = re.compile(
    r"(?P<space>\s*)(?:"
    r"(?P<number>(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?)"
    r"|(?P<name>[A-Za-z_][A-Za-z0-9_]*)"
    r'|(?P<string>"(?:[^"\\]|\\.|"")*"'
    r"|'(?:[^'\\]|\\.|'')*')"
    r"|(?P<column>\{(?:[^}\\]|\\.)*\})"
    r"|(?P<symbol><>|!=|<=|>=|[-+*/&=<>(),])"
    r"|(?P<end>\Z))",
    re.DOTALL,
)
# A number running straight into a letter, digit or dot ("12abc", "1.2.3", "1e") is a typo,
# not a number followed by a column name.
_NUMBER_TAIL = re.compile(r"[A-Za-z0-9_.]")
_STRING_ESCAPE = {
    '"': re.compile(r'\\(.)|""', re.DOTALL),
    "'": re.compile(r"\\(.)|''", re.DOTALL),
}
_COLUMN_ESCAPE = re.compile(r"\\(.)", re.DOTALL)
_STRING_ESCAPABLE = "\"'\\"
_COLUMN_ESCAPABLE = "}\\"


def tokenize(text: str) -> list[Token]:
    """The tokens of `text`, whitespace dropped, always ending with one "end" token."""
    tokens: list[Token] = []
    append = tokens.append
    match_token = _TOKEN.match
    position = 0
    while True:
        match = match_token(text, position)
        if match is None:
            raise _unmatched(text, position)
        kind = match.lastgroup
        start = match.end("space")
        position = match.end()
        if kind == "name":
            append(Token("name", match.group(kind), start, position))
        elif kind == "symbol":
            append(Token("symbol", match.group(kind), start, position))
        elif kind == "number":
            if _NUMBER_TAIL.match(text, position):
                raise FormulaError("invalid number", start)
            append(Token("number", match.group(kind), start, position))
        elif kind == "string":
            escape = _STRING_ESCAPE[text[start]]
            value = _unescape(text[start + 1 : position - 1], start + 1, escape, _STRING_ESCAPABLE)
            append(Token("string", value, start, position))
        elif kind == "column":
            name = _unescape(
                text[start + 1 : position - 1], start + 1, _COLUMN_ESCAPE, _COLUMN_ESCAPABLE
            )
            if not name:
                raise FormulaError("empty column name", start)
            append(Token("column", name, start, position))
        else:
            append(Token("end", "", position, position))
            return tokens


def _unmatched(text: str, position: int) -> FormulaError:
    while text[position].isspace():
        position += 1
    char = text[position]
    if char in "\"'":
        return FormulaError("unterminated string", position)
    if char == "{":
        return FormulaError("unterminated column name", position)
    shown = f'"{char}"' if char.isprintable() else f"U+{ord(char):04X}"
    return FormulaError(f"unexpected character {shown}", position)


def _unescape(body: str, offset: int, escape: re.Pattern[str], escapable: str) -> str:
    """`body` with its escapes resolved; `offset` is where `body` starts in the formula."""

    def resolve(match: re.Match[str]) -> str:
        escaped = match.group(1)
        if escaped is None:  # a doubled quote
            return match.group()[0]
        if escaped not in escapable:
            raise FormulaError(f'invalid escape "\\{escaped}"', offset + match.start())
        return escaped

    return escape.sub(resolve, body)
