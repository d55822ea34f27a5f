"""The one exception every formula failure raises."""

from __future__ import annotations


class FormulaError(ValueError):
    """A formula that cannot be parsed, type-checked or accepted.

    `position` is the 0-based character offset into the formula text of what is wrong (0 when
    the formula as a whole is at fault, e.g. a dependency cycle).
    """

    def __init__(self, message: str, position: int) -> None:
        # Both in args, so that the exception survives pickling (e.g. across processes).
        super().__init__(message, position)
        self.message = message
        self.position = position

    def __str__(self) -> str:
        return f"{self.message} at {self.position}"
