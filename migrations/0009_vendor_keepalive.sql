-- Whether the edge sends a vendor's side of its answered calls in-dialog keepalives
-- (OPTIONS every DLG_KEEPALIVE s, the call ended when the switch stops answering them).
-- Off for a switch that ignores in-dialog OPTIONS: keepalives would end every call
-- placed with it a few minutes in. The caller's side is as its trunk says. Every vendor
-- keeps them until told otherwise, as before the column.
ALTER TABLE vendors ADD COLUMN keepalive boolean NOT NULL DEFAULT true;
