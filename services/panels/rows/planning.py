"""How the rows statements are planned: for their parameters' values, every time.

A rows statement is planned for its parameters every time. The driver prepares statements,
and after five runs PostgreSQL may keep a generic plan, one made without the parameters'
values: such a plan can use no index of `rows.indexes`, whose expressions hold the column's
path and the conversions' constants, which the statement binds as parameters. It does so
when the runs before an index existed cost as much as the generic plan, and then keeps it
(measured: a view's total at 200,000 rows took 355 ms with the generic plan, 50 ms with a
custom one, benchmarks/README.md).
"""

from sqlalchemy import text

CUSTOM_PLANS = text("SET LOCAL plan_cache_mode = force_custom_plan")
# The export reads every row: plan for the whole result, not for a fast first row, and as
# every rows statement, for the parameters' values.
EXPORT_PLANS = text(
    "SELECT set_config('plan_cache_mode', 'force_custom_plan', true),"
    " set_config('cursor_tuple_fraction', '1', true)"
)
