"""A panel's rows merged at ingest: one `panel_row` per (panel, key).

`sources` holds `{"<source id>": record}` for every source of the panel that has a record for
the key. Every write of `source_record` (the records writer, the purge) rewrites the touched
keys' rows in the same statement, so reads need no `GROUP BY key` over the records
(benchmarks/README.md: the merge at read time cost over a second at 1,000,000 keys).

Like `source_record` (20261130_0008), and for the same reason, the table has no foreign key
to its panel: a cascade would delete a million rows inside the request that deletes the panel.
Reads name the panel's live sources (`panel_rows` reads only their entries and keeps a row only
while one of them has a record), and the purge of a deleted source's records removes its
entries, and the rows left empty, in the same batches.

`key` sorts by code point (`COLLATE "C"`), the order rows are paged in, so the primary key
serves the key order and the key tiebreak of every sort.

The existing records are merged once here (records of deleted sources left out).

`panels_utc_timestamp(text)` is how the rows compiler reads a datetime from a record's text: a
timestamp in UTC for ISO-8601 text with a real calendar day, else NULL, never an error. It is
IMMUTABLE, so that an expression index can hold a date or datetime column's value (the casts
from text it uses are only STABLE because DateStyle and TimeZone could change how *other*
text reads: checked against the pattern first, an ISO date reads the same under every
DateStyle, and a time zone is used only when the text names its offset). In PL/pgSQL, the text
is computed once per call: the same rules written as one SQL expression evaluated the record's
text some fifteen times per value, six times slower (benchmarks/README.md).

Revision ID: 20261201_0011
Revises: 20261201_0010
Create Date: 2026-12-01
"""

from collections.abc import Sequence

from alembic import op

revision: str = "20261201_0011"
down_revision: str | None = "20261201_0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

MAINTENANCE = "current_setting('app.maintenance', true) = 'on'"
# The rows compiler's DATETIME_PATTERN (services/panels/rows/compiler/conversion.py).
DATETIME_PATTERN = (
    r"^[12][0-9]{3}-(0[1-9]|1[0-2])-(0[1-9]|[12][0-9]|3[01])"
    r"([T ]([01][0-9]|2[0-3]):[0-5][0-9](:[0-5][0-9](\.[0-9]{1,6})?)?"
    r"(Z|[-+](0[0-9]|1[0-4]):?[0-5][0-9])?)?$"
)


def upgrade() -> None:
    op.execute(
        f"""
        CREATE FUNCTION panels_utc_timestamp(value text) RETURNS timestamp
        LANGUAGE plpgsql IMMUTABLE STRICT PARALLEL SAFE AS $$
        BEGIN
          IF value !~ '{DATETIME_PATTERN}' THEN
            RETURN NULL;
          END IF;
          IF substr(value, 9, 2)::int > 28 AND substr(value, 9, 2)::int > extract(
            day FROM make_date(substr(value, 1, 4)::int, substr(value, 6, 2)::int, 1)
              + interval '1 month' - interval '1 day'
          ) THEN
            RETURN NULL;  -- no such day in that month
          END IF;
          IF length(value) > 10 AND value ~ '(Z|[-+][0-9]{{2}}:?[0-9]{{2}})$' THEN
            RETURN timezone('UTC', value::timestamptz);
          END IF;
          RETURN value::timestamp;
        END
        $$
        """
    )
    op.execute(
        """
        CREATE TABLE panel_row (
          tenant_id VARCHAR(128) NOT NULL,
          panel_id BIGINT NOT NULL,
          key TEXT COLLATE "C" NOT NULL,
          sources JSONB NOT NULL,
          CONSTRAINT pk_panel_row PRIMARY KEY (tenant_id, panel_id, key)
        )
        """
    )
    op.execute("ALTER TABLE panel_row ENABLE ROW LEVEL SECURITY")
    op.execute(
        """
        CREATE POLICY tenant_isolation ON panel_row
          USING (tenant_id = current_setting('app.tenant_id', true))
          WITH CHECK (tenant_id = current_setting('app.tenant_id', true))
        """
    )
    op.execute(
        "CREATE POLICY owner_maintenance ON panel_row TO CURRENT_USER"
        f" USING ({MAINTENANCE}) WITH CHECK ({MAINTENANCE})"
    )
    op.execute("ALTER TABLE panel_row FORCE ROW LEVEL SECURITY")
    op.execute("GRANT SELECT, INSERT, UPDATE, DELETE ON panel_row TO panels_app")
    op.execute(
        """
        INSERT INTO panel_row (tenant_id, panel_id, key, sources)
        SELECT r.tenant_id, r.panel_id, r.key, jsonb_object_agg(r.source_id::text, r.record)
        FROM source_record r
        JOIN datasource d
          ON d.tenant_id = r.tenant_id AND d.panel_id = r.panel_id AND d.id = r.source_id
        GROUP BY r.tenant_id, r.panel_id, r.key
        """
    )


def downgrade() -> None:
    op.execute("DROP TABLE IF EXISTS panel_row")
    op.execute("DROP FUNCTION IF EXISTS panels_utc_timestamp(text)")
