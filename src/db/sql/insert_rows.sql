-- Inserts `rows` (a JSON array of objects with the same keys, the target's column names) into
-- `target` with one statement. On plain Postgres: INSERT … SELECT from the rows as the target's
-- record type. On Citus: one multi-row INSERT … VALUES, which is routed to the shard of its rows,
-- where INSERT … SELECT from a function goes through the coordinator by COPY, and a COPY after
-- another write in the transaction makes it commit in two phases.
CREATE OR REPLACE FUNCTION holdfast_insert_rows(target regclass, rows jsonb)
RETURNS void LANGUAGE plpgsql AS $$
DECLARE
  columns text;
BEGIN
  SELECT string_agg(quote_ident(k), ', ') INTO columns FROM jsonb_object_keys(rows->0) AS k;
  IF to_regclass('pg_catalog.pg_dist_partition') IS NULL THEN
    EXECUTE format('INSERT INTO %s (%s) SELECT %s FROM jsonb_populate_recordset(NULL::%s, $1)',
                   target, columns, columns, target)
      USING rows;
    RETURN;
  END IF;
  EXECUTE format(
    'INSERT INTO %s (%s) VALUES %s', target, columns,
    (SELECT string_agg(
              '(' || (SELECT string_agg(quote_nullable(r->>k), ', ')
                        FROM jsonb_object_keys(rows->0) AS k) || ')',
              ', ' ORDER BY n)
       FROM jsonb_array_elements(rows) WITH ORDINALITY AS e(r, n)));
END;
$$;
