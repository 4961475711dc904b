-- A customer's CDR pages (GET /customers/{ban}/cdrs) read 100 rows in start order.
-- With an index on (ban, start_stamp) only, every row was a heap fetch from a page of
-- its own (a customer's calls are spread over the month): ~180 buffers per page, and
-- PostgreSQL topped out at ~3,000 pages/s on two cores. This index holds the page's
-- order exactly (the cursor's columns follow ban) and every column a page returns, so
-- a page of a vacuumed month is an index-only range scan over a few leaf pages and
-- needs no sort. It supersedes rated_cdrs_ban, whose columns are its prefix.
CREATE INDEX rated_cdrs_ban_page ON billing.rated_cdrs
    (ban, start_stamp, call_id, leg, attempt)
    INCLUDE (answer_stamp, end_stamp, trunk_id, ani, dnis, lrn, zone, ocn, lata, state,
             routing_partition, vendor_id, sip_code, disposition, duration_secs,
             billed_secs, customer_rate, customer_charge);
DROP INDEX billing.rated_cdrs_ban;
