"""datasource/query.py: a `database` source's query is one statement that only reads."""

from __future__ import annotations

import pytest

from panels.datasource.query import select_problem

READING = [
    "SELECT id, name FROM patients",
    "select 1 as id;",
    "SELECT * FROM t WHERE note = 'DELETE FROM t; INSERT INTO t VALUES (1)'",
    "SELECT E'\\\\' AS delete",
    "WITH recent AS (SELECT * FROM visits WHERE at > now() - interval '1 day') TABLE recent",
    "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 9) SELECT i FROM n",
    "SELECT id FROM a UNION SELECT id FROM b EXCEPT SELECT id FROM c",
    "VALUES (1, 'a'), (2, 'b')",
    "TABLE patients",
    'SELECT "update", "into" FROM "delete" -- INSERT',
    "SELECT $q$; DROP TABLE t; $q$ AS id",
    "SELECT id FROM t /* ; DELETE FROM t */",
]
REFUSED = [
    # The word list let these through: the literal E'\'' hid the second statement from it.
    ("SELECT E'\\''; DELETE FROM patients; --'", "single statement"),
    ("SELECT 1; SELECT 2", "single statement"),
    ("DELETE FROM patients", "SELECT statement"),
    ("EXPLAIN ANALYZE DELETE FROM patients", "SELECT statement"),
    ("COPY patients TO STDOUT", "SELECT statement"),
    ("SET ROLE postgres", "SELECT statement"),
    ("", "SELECT statement"),
    ("-- only a comment", "SELECT statement"),
    ("SELECT * INTO copy FROM patients", "INTO"),
    ("SELECT id FROM a UNION SELECT id FROM (SELECT * INTO x FROM b) s", "INTO"),
    ("SELECT * FROM patients FOR UPDATE", "FOR UPDATE/SHARE"),
    ("SELECT * FROM patients FOR KEY SHARE SKIP LOCKED", "FOR UPDATE/SHARE"),
    ("SELECT * FROM (SELECT * FROM p FOR SHARE) s", "FOR UPDATE/SHARE"),
    ("WITH gone AS (DELETE FROM patients RETURNING *) SELECT * FROM gone", "found DELETE"),
    ("WITH n AS (INSERT INTO t VALUES (1) RETURNING id) SELECT id FROM n", "found INSERT"),
    ("WITH u AS (UPDATE t SET a = 1 RETURNING id) SELECT id FROM u", "found UPDATE"),
    (
        "WITH m AS (MERGE INTO t USING s ON t.id = s.id WHEN MATCHED THEN DELETE RETURNING t.id)"
        " SELECT * FROM m",
        "found MERGE",
    ),
    ("SELECT 1 FROM", "does not parse: syntax error at end of input"),
    ("SELEC 1", 'does not parse: syntax error at or near "SELEC" (at character 1)'),
    ("SELECT 'é' FRO x", 'syntax error at or near "x" (at character 16)'),
    ("SELECT a\x00", "NUL"),
]


@pytest.mark.parametrize("query", READING)
def test_reading_queries_pass(query: str) -> None:
    assert select_problem(query) is None


@pytest.mark.parametrize(("query", "problem"), REFUSED)
def test_other_queries_are_refused_with_a_reason(query: str, problem: str) -> None:
    found = select_problem(query)
    assert found is not None
    assert problem in found


@pytest.mark.parametrize(
    "query",
    [
        "SELECT 1 " + "+1" * 30_000,  # the parser's own stack limit
        "SELECT " + "(SELECT " * 2_000 + "1" + ")" * 2_000,
        "SELECT " + "(" * 30_000 + "1" + ")" * 30_000,
        "SELECT 1 " + "/* " * 20_000,
        "SELECT " + "'a' || " * 9_000 + "'a'",
    ],
)
def test_pathological_queries_are_refused_or_judged_without_internals(query: str) -> None:
    found = select_problem(query)
    if found is not None:
        assert len(found) < 200
        assert "pglast" not in found
        assert "Error" not in found
