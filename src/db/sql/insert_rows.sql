-- Inserts `rows` (a JSON array of objects with the same keys, the target's column names) into
-- `target` with one multi-row INSERT … VALUES. On Citus a VALUES insert into one shard is
-- routed to it, where INSERT … SELECT from a function goes through the coordinator and COPY,
-- and a COPY after another write in the transaction is committed in two phases.
CREATE OR REPLACE FUNCTION holdfast_insert_rows(target regclass, rows jsonb)
RETURNS void LANGUAGE plpgsql AS $$
DECLARE
  columns text[];
BEGIN
  SELECT array_agg(k) INTO columns FROM jsonb_object_keys(rows->0) AS k;
  EXECUTE format(
    'INSERT INTO %s (%s) VALUES %s', target,
    (SELECT string_agg(quote_ident(c), ', ') FROM unnest(columns) AS c),
    (SELECT string_agg(
              '(' || (SELECT string_agg(quote_nullable(r->>c), ', ') FROM unnest(columns) AS c) || ')',
              ', ' ORDER BY n)
       FROM jsonb_array_elements(rows) WITH ORDINALITY AS e(r, n)));
END;
$$;
