-- The GiST exclusion constraint made a million-row deck load take ~80 s of its ~95 s.
-- Overlapping effective dates are now refused by every writer of rate_rows (the API's
-- row and deck writes, `warp import`), which locks the deck row first and checks the
-- stored rows of the keys it writes (warp-db's `rates` module).
ALTER TABLE rate_rows DROP CONSTRAINT rate_rows_no_overlap;

-- Exact duplicates stay impossible whoever writes, and the writers' check reads one
-- deck's rows of a key through this index.
ALTER TABLE rate_rows
    ADD CONSTRAINT rate_rows_deck_key_from UNIQUE (deck_id, rate_key, effective_from);
