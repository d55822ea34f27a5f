"""The check on a `database` source's query, by PostgreSQL's own parser (libpg_query).

Allowed: exactly one statement that only reads, i.e. a `SELECT`, in any of the forms the
parser reads as one (`VALUES …`, `TABLE t`, `WITH … SELECT`, and `UNION`/`INTERSECT`/`EXCEPT`
of those), anywhere in which there is no `INTO` (it creates a table), no locking clause
(`FOR UPDATE`/`SHARE`, which takes row locks) and no `INSERT`/`UPDATE`/`DELETE`/`MERGE`
(only possible in a `WITH`). Functions called by the query are not judged here: the sync runs
it in a read-only transaction. Parsing runs in a worker thread; the query's length is capped
by its schema.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

import msgspec

from panels.platform.errors import BadRequest

if TYPE_CHECKING:
    from pglast.parser import ParseError

_WRITING_NODES = {
    "InsertStmt": "INSERT",
    "UpdateStmt": "UPDATE",
    "DeleteStmt": "DELETE",
    "MergeStmt": "MERGE",
}
_MAX_MESSAGE = 120


async def check_single_select(query: str, *, where: str) -> None:
    """One read-only SELECT, or a 400 naming `where`."""
    problem = await asyncio.to_thread(select_problem, query)
    if problem is not None:
        raise BadRequest(where, problem)


def select_problem(query: str) -> str | None:
    """What makes `query` other than one read-only SELECT, in words for a client; or None."""
    if "\x00" in query:  # the parser reads a C string: it would stop there
        return "must not contain NUL characters"
    # Imported on the first check, not with the app: the parser holds about 10 MB in every
    # server process, and most never check a query.
    from pglast.parser import ParseError, parse_sql_json

    try:
        tree = msgspec.json.decode(parse_sql_json(query))
    except UnicodeError:
        return "must be valid Unicode text"
    except ParseError as exc:
        return _parse_error(exc)
    except RecursionError:
        return "is nested too deeply"
    statements = tree.get("stmts", [])
    if len(statements) > 1:
        return "must be a single statement"
    if not statements or "SelectStmt" not in statements[0]["stmt"]:
        return "must be a SELECT statement"
    return _node_problem(statements[0]["stmt"])


def _node_problem(root: dict[str, Any]) -> str | None:
    pending: list[Any] = [root]  # walked without recursion: the tree may be deep
    while pending:
        node = pending.pop()
        if isinstance(node, list):
            pending.extend(node)
            continue
        if not isinstance(node, dict):
            continue
        for key, value in node.items():
            if key in _WRITING_NODES:
                return f"must only read; found {_WRITING_NODES[key]}"
            if key == "intoClause":
                return "must not select INTO a table"
            if key == "lockingClause":
                return "must not lock rows (FOR UPDATE/SHARE)"
            pending.append(value)
    return None


def _parse_error(exc: ParseError) -> str:
    """The parser's message and the 1-based character it stopped at; nothing of its internals."""
    message = str(exc.args[0]) if exc.args else "does not parse"
    if len(message) > _MAX_MESSAGE:  # "at or near" quotes the rest of the query
        message = message[:_MAX_MESSAGE] + "…"
    index = exc.args[1] if len(exc.args) > 1 else None
    where = f" (at character {index + 1})" if isinstance(index, int) else ""
    return f"does not parse: {message}{where}"
