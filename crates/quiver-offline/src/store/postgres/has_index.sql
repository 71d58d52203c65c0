-- Whether the table already has an index on exactly these columns, in this order, with these
-- orderings (so ensure_table neither duplicates it nor depends on the name PostgreSQL generated
-- for it). $1: the quoted, schema-qualified table name; $2: the column names; $3: each column's
-- pg_index.indoption flags (1 = DESC, 2 = NULLS FIRST).
SELECT 1
FROM pg_index AS i
WHERE i.indrelid = $1::text::regclass
  AND (
    SELECT array_agg(a.attname::text ORDER BY k.ord)
    FROM unnest(i.indkey::int2[]) WITH ORDINALITY AS k(attnum, ord)
    JOIN pg_attribute AS a ON a.attrelid = i.indrelid AND a.attnum = k.attnum
  ) = $2::text[]
  AND (
    SELECT array_agg(o.flags ORDER BY o.ord)
    FROM unnest(i.indoption::int2[]) WITH ORDINALITY AS o(flags, ord)
  ) = $3::int2[]
