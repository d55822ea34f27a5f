"""The rows query compiler: a panel's columns, cohort rule, filters, sorts and paging to one
parameterised SQLAlchemy statement (plus its count), evaluated entirely by PostgreSQL.

Pure: no sessions, no HTTP. Its input is a `RowSource` (any selectable with a `key` and one
JSONB column per source; `pivot.panel_rows` builds it from `source_record`, and its docstring
discusses keeping merged rows at ingest instead) and a `RowQuery` whose names the caller has
already resolved to column ids. The rules live with the code that applies them:
`conversion` (JSON to typed values), `formulas`, `predicates` (filters), `ordering` (sorts
and cursors), `statement` (layers and statements). User values reach SQL only as bound
parameters.
"""

from __future__ import annotations

from .cohort import cohort_conditions
from .export_statement import ExportRows, compile_export
from .ordering import encode_cursor
from .pivot import panel_rows
from .spec import (
    BaseColumn,
    CalculatedColumn,
    Column,
    Condition,
    FilterOperator,
    RowQuery,
    RowSource,
    Sort,
    source_column,
)
from .statement import (
    CLOCK_PARAMETERS,
    PAGE_PARAMETERS,
    CompiledRows,
    clock_values,
    compile_rows,
    page_values,
    sort_label,
    value_label,
)

__all__ = [
    "CLOCK_PARAMETERS",
    "PAGE_PARAMETERS",
    "BaseColumn",
    "CalculatedColumn",
    "Column",
    "CompiledRows",
    "Condition",
    "ExportRows",
    "FilterOperator",
    "RowQuery",
    "RowSource",
    "Sort",
    "clock_values",
    "cohort_conditions",
    "compile_export",
    "compile_rows",
    "encode_cursor",
    "page_values",
    "panel_rows",
    "sort_label",
    "source_column",
    "value_label",
]
