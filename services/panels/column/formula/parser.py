"""Formula text to syntax tree: recursive descent, with operator precedence by shunting-yard."""

from __future__ import annotations

from decimal import Decimal

from .errors import FormulaError
from .nodes import (
    COMPARISON_LEVEL,
    KEYWORDS,
    PRECEDENCE,
    Binary,
    BinaryOperator,
    Boolean,
    Call,
    ColumnRef,
    Node,
    Number,
    String,
    Unary,
    children,
    is_number_literal,
)
from .tokens import Token, tokenize

MAX_LENGTH = 10_000
# Parentheses and calls are what the parser recurses on; this bound keeps its stack small.
MAX_NESTING = 64
# Operator chains ("a + b + c ...") nest without parser recursion, but every tree walker (and
# dataclass equality) recurses on them; this bound keeps those well inside the stack limit.
MAX_HEIGHT = 128

_BINARY_OPERATORS: dict[str, BinaryOperator] = {op: op for op in PRECEDENCE} | {"!=": "<>"}


def parse(text: str) -> Node:
    """The syntax tree of `text`; raises FormulaError, and only that, for any invalid text."""
    if len(text) > MAX_LENGTH:
        raise FormulaError(f"formula is longer than {MAX_LENGTH} characters", MAX_LENGTH)
    tokens = tokenize(text)
    if tokens[0].kind == "end":
        raise FormulaError("formula is empty", 0)
    parser = _Parser(tokens)
    tree = parser.expression()
    trailing = parser.peek()
    if trailing.kind != "end":
        raise _unexpected(trailing)
    # Every node takes a token of its own, so only a formula of many tokens can be too tall.
    if len(tokens) > MAX_HEIGHT:
        _check_height(tree)
    return tree


class _Parser:
    __slots__ = ("_index", "_nesting", "_tokens")

    def __init__(self, tokens: list[Token]) -> None:
        self._tokens = tokens
        self._index = 0
        self._nesting = 0

    def peek(self) -> Token:
        return self._tokens[self._index]

    def _next(self) -> Token:
        token = self._tokens[self._index]
        if token.kind != "end":
            self._index += 1
        return token

    def _at(self, symbol: str) -> bool:
        token = self._tokens[self._index]
        return token.kind == "symbol" and token.value == symbol

    def expression(self) -> Node:
        """A whole expression: operands joined by binary operators, left-associative.

        Operator precedence is resolved with explicit stacks (shunting-yard) rather than one
        recursive call per precedence level, so that each level of parentheses costs only a
        few stack frames.
        """
        operands = [self._signed()]
        operators: list[tuple[BinaryOperator, int]] = []
        compared = False
        while True:
            token = self.peek()
            op = _BINARY_OPERATORS.get(token.value) if token.kind == "symbol" else None
            if op is None:
                break
            level = PRECEDENCE[op]
            if level == COMPARISON_LEVEL:
                # "a < b < c" is almost always a mistake for "AND(a < b, b < c)".
                if compared:
                    raise FormulaError("comparisons cannot be chained", token.position)
                compared = True
            while operators and PRECEDENCE[operators[-1][0]] >= level:
                _reduce(operands, operators)
            operators.append((op, token.position))
            self._index += 1
            operands.append(self._signed())
        while operators:
            _reduce(operands, operators)
        return operands[0]

    def _signed(self) -> Node:
        # A loop rather than recursion, so that a long run of minus signs cannot exhaust the stack.
        minus_positions: list[int] = []
        while self._at("-"):
            minus_positions.append(self._next().position)
        operand = self._primary()
        for position in reversed(minus_positions):
            operand = Unary("-", operand, position=position)
        return operand

    def _primary(self) -> Node:
        token = self._next()
        if token.kind == "number":
            return _number(token)
        if token.kind == "string":
            return String(token.value, position=token.position)
        if token.kind == "column":
            return ColumnRef(token.value, position=token.position)
        if token.kind == "name":
            word = token.value.upper()
            if word in KEYWORDS:
                return Boolean(word == "TRUE", position=token.position)
            if self._at("("):
                return self._call(token)
            return ColumnRef(token.value, position=token.position)
        if token.kind == "symbol" and token.value == "(":
            self._enter(token)
            inner = self.expression()
            self._close(token)
            return inner
        raise _unexpected(token)

    def _call(self, name: Token) -> Call:
        opening = self._next()
        self._enter(opening)
        args: list[Node] = []
        if not self._at(")"):
            args.append(self.expression())
            while self._at(","):
                self._index += 1
                args.append(self.expression())
        self._close(opening)
        return Call(name.value.upper(), tuple(args), position=name.position)

    def _enter(self, opening: Token) -> None:
        self._nesting += 1
        if self._nesting > MAX_NESTING:
            raise FormulaError(
                f"formula is nested too deeply (more than {MAX_NESTING} levels of parentheses)",
                opening.position,
            )

    def _close(self, opening: Token) -> None:
        token = self._next()
        if token.kind == "end":
            raise FormulaError('unclosed "("', opening.position)
        if not (token.kind == "symbol" and token.value == ")"):
            raise _unexpected(token)
        self._nesting -= 1


def _reduce(operands: list[Node], operators: list[tuple[BinaryOperator, int]]) -> None:
    """Replace the last two operands by the last operator applied to them."""
    op, position = operators.pop()
    right = operands.pop()
    operands[-1] = Binary(op, operands[-1], right, position=position)


def _number(token: Token) -> Number:
    try:
        value = Decimal(token.value)
    except ArithmeticError:  # an exponent beyond what Decimal can hold
        value = Decimal("NaN")
    if not is_number_literal(value):
        raise FormulaError("number is out of range", token.position)
    return Number(value, position=token.position)


def _unexpected(token: Token) -> FormulaError:
    if token.kind == "end":
        return FormulaError("unexpected end of formula", token.position)
    if token.kind == "number":
        shown = token.value
    elif token.kind == "column":
        shown = "{" + token.value + "}"
    else:
        shown = f'"{token.value}"'
    if len(shown) > 40:
        shown = shown[:39] + "…"
    return FormulaError(f"unexpected {shown}", token.position)


def _check_height(tree: Node) -> None:
    pending = [(tree, 1)]
    while pending:
        node, height = pending.pop()
        if height > MAX_HEIGHT:
            raise FormulaError(
                f"formula is nested too deeply (more than {MAX_HEIGHT} levels of operations)",
                node.position,
            )
        pending.extend((child, height + 1) for child in children(node))
