-- numeric accepts NaN, and PostgreSQL orders NaN above every number: CHECK (x >= 0)
-- holds for it, NaN = NaN is true (so balance_after = balance_before + amount holds
-- too), and a NaN charge summed into an invoice makes the whole total NaN. No amount,
-- rate or quantity is NaN, so every numeric column of the schema refuses it:
-- `<table>_<column>_not_nan`. (Infinity needs no check: every one of them declares a
-- precision, and PostgreSQL refuses an infinite value in such a column.)
-- A partitioned table's constraint is its partitions' too, now and when created.
-- NOT VALID, as in 0006: an upgrade is not stopped by a NaN already stored; the API
-- shows such a row's amounts as PostgreSQL writes them.
DO $$
DECLARE
    c record;
BEGIN
    FOR c IN
        SELECT n.nspname, t.relname, a.attname
        FROM pg_attribute a
        JOIN pg_class t ON t.oid = a.attrelid
        JOIN pg_namespace n ON n.oid = t.relnamespace
        WHERE n.nspname IN ('public', 'billing')
          AND t.relkind IN ('r', 'p') AND NOT t.relispartition
          AND a.attnum > 0 AND NOT a.attisdropped
          AND a.atttypid = 'numeric'::regtype
        ORDER BY 1, 2, 3
    LOOP
        EXECUTE format('ALTER TABLE %I.%I ADD CONSTRAINT %I CHECK (%I <> ''NaN'') NOT VALID',
                       c.nspname, c.relname, c.relname || '_' || c.attname || '_not_nan',
                       c.attname);
    END LOOP;
END $$;
