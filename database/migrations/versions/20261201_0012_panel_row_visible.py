"""Rows queries read `panel_row` through a view that filters the tenant, so indexes can filter.

Under row-level security PostgreSQL evaluates a query's own conditions only after the
policy's, unless every function in them is LEAKPROOF (which only a superuser can declare, and
the rows compiler's JSON conversions are not): no condition of a rows query could be an index
condition. A view's `total` scanned the whole panel (0.45 s for a filter on a base column at
1,000,000 rows, 2 s on a chain of 3 formulas) and a page by cursor after row 500,000 read
500,000 index entries (1.7 s) (benchmarks/README.md, "Rows of a 1,000,000-key panel").

So the rows compiler reads `panel_row_visible`: a plain view (neither `security_barrier` nor
`security_invoker`) owned by the tables' owner, whose rows are those of the tenant set on the
transaction, by the very expression of the `tenant_isolation` policy. The request role may
read the view (and only read it); the view reads `panel_row` with its owner's rights, and
`panel_row` no longer *forces* row-level security, so the owner, and the view, bypass the
policies there. Nothing else changes for the request role: its own statements on `panel_row`
(the records writer's INSERT, UPDATE and DELETE, any SELECT) still go through the policies.
The tenant is still enforced by the database on every path of the request role: through the
view by its condition (no tenant set: no rows), on the table by the policy.

Why a plain view is safe here, and what it rests on: the planner flattens a plain view into
the query and may evaluate the query's conditions on rows of other tenants before the view's
tenant condition (that is what lets an expression index be an index condition). A condition
could then reveal something of another tenant's row only by failing (an error, or a message
naming the value) or by some side effect. Nothing the rows compiler emits can: every value
of a record is converted inside CASE arms whose conditions have already proven the text
well-formed (`rows/compiler/conversion.py`), `panels_utc_timestamp` checks its pattern and
calendar day before it casts, a division by zero is NULL (`compiler/formulas.py`), every user
value is a bound parameter compared bare or through `ILIKE` with its wildcards escaped, and
the request role can run no other SQL. Calculated columns are computed in fenced lateral
subqueries, on the rows the scan has already passed (tenant included), so a formula that
could overflow (a data error, a 400) never sees another tenant's row. The rest of the
argument is in `rows/indexes.py`. A compiler change that emits a cast that can fail on a
record's value breaks this argument, not only a query.

What changes for the owner's "no accident" property (20261130_0007): a session as the owner
now sees and writes every tenant's `panel_row` without setting `app.maintenance` (as for any
table without FORCE); through `panel_row_visible` it sees only the tenant it sets, none by
default. The owner's other tables keep FORCE. `panel_row` holds no data that is not derived
from `source_record` (still forced), which the records writer rebuilds it from.

Where the server offers `pg_trgm` (a trusted extension: the database's owner may install it),
it is installed here, for the trigram indexes of `contains` filters (`rows/indexes.py`); the
embedded PostgreSQL has none, and everything works without it. The downgrade leaves it
(indexes built on it may remain until the index job drops them).

Revision ID: 20261201_0012
Revises: 20261201_0011
Create Date: 2026-12-01
"""

from collections.abc import Sequence

from alembic import op

revision: str = "20261201_0012"
down_revision: str | None = "20261201_0011"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.execute(
        """
        DO $$
        BEGIN
          IF EXISTS (SELECT 1 FROM pg_available_extensions WHERE name = 'pg_trgm') THEN
            CREATE EXTENSION IF NOT EXISTS pg_trgm;
          END IF;
        EXCEPTION WHEN insufficient_privilege THEN
          RAISE NOTICE 'pg_trgm not installed (%): contains filters use no index', SQLERRM;
        END
        $$
        """
    )
    # The tenant condition is the `tenant_isolation` policy's expression (20261201_0011).
    op.execute(
        """
        CREATE VIEW panel_row_visible AS
          SELECT tenant_id, panel_id, key, sources FROM panel_row
          WHERE tenant_id = current_setting('app.tenant_id', true)
        """
    )
    op.execute("GRANT SELECT ON panel_row_visible TO panels_app")
    op.execute("ALTER TABLE panel_row NO FORCE ROW LEVEL SECURITY")


def downgrade() -> None:
    op.execute("ALTER TABLE panel_row FORCE ROW LEVEL SECURITY")
    op.execute("DROP VIEW IF EXISTS panel_row_visible")
