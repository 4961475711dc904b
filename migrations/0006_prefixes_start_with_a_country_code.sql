-- Prefixes are matched against E.164 digits, which never start with 0: a row keyed
-- '01144' could match nothing, and an exclusion written so would block nothing.
-- NOT VALID so an upgrade is not stopped by such a row already stored: the snapshot
-- compiler refuses it by table and prefix, and it must be corrected there.
ALTER TABLE rate_rows
    ADD CONSTRAINT rate_rows_prefix_no_leading_zero CHECK (prefix !~ '^0') NOT VALID;
ALTER TABLE overrides
    ADD CONSTRAINT overrides_prefix_no_leading_zero CHECK (prefix !~ '^0') NOT VALID;
ALTER TABLE exclusions
    ADD CONSTRAINT exclusions_prefix_no_leading_zero CHECK (prefix !~ '^0') NOT VALID;
