-- Whether the edge sends a trunk's side of its answered calls in-dialog keepalives
-- (OPTIONS every DLG_KEEPALIVE s, the call ended when the PBX stops answering them).
-- Off for a PBX that ignores in-dialog OPTIONS: keepalives would end every call of its
-- a few minutes in. The vendor's side is sent them whatever the trunk says. Every
-- trunk keeps them until told otherwise, as before the column.
ALTER TABLE trunks ADD COLUMN keepalive boolean NOT NULL DEFAULT true;
