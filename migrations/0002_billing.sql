-- Billing (the billing design's schema, on what runs here): raw and rated CDRs and
-- MDRs partitioned by month, vendor CDRs, wallets, the transactions ledger, invoices,
-- SKUs, usage summary, payment methods (processor tokens only) and the audit log.
-- Money is NUMERIC; per-record charges keep 6 decimal places, invoices 2.

CREATE SCHEMA billing;

-- Raw call leg events as Kamailio sends them (Redis Stream warp:cdr:raw). The key is
-- per call-id + leg + attempt so a replayed entry hits ON CONFLICT; a unique key on a
-- partitioned table must include the partition key, and a replay carries the same
-- start time, so it lands in the same month and collides there.
CREATE TABLE billing.raw_cdrs (
    call_id            text NOT NULL,
    leg                text NOT NULL DEFAULT 'A' CHECK (leg IN ('A', 'B')),
    attempt            integer NOT NULL DEFAULT 1 CHECK (attempt >= 1),
    start_stamp        timestamptz NOT NULL,
    answer_stamp       timestamptz,
    end_stamp          timestamptz,
    sip_uuid           text,
    sip_from           text,
    sip_rpid           text,
    sip_pai            text,
    sip_contact        text,
    sip_ruri           text,
    ban                text NOT NULL,
    trunk_id           text,
    raw_ani            text,
    dnis               text,
    lrn                text,
    zone               text,
    routing_partition  text,
    vendor_id          text,
    vendor_trunk       text,
    direction          text CHECK (direction IN ('inbound', 'outbound')),
    sip_code           integer,
    payload            jsonb NOT NULL DEFAULT '{}',
    enriched           boolean NOT NULL DEFAULT false,
    rated              boolean NOT NULL DEFAULT false,
    received_at        timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (call_id, leg, attempt, start_stamp)
) PARTITION BY RANGE (start_stamp);
CREATE INDEX raw_cdrs_unrated ON billing.raw_cdrs (start_stamp) WHERE NOT rated;

-- Enriched and rated calls: what invoices, usage and margin reports read.
CREATE TABLE billing.rated_cdrs (
    call_id              text NOT NULL,
    leg                  text NOT NULL DEFAULT 'A' CHECK (leg IN ('A', 'B')),
    attempt              integer NOT NULL DEFAULT 1 CHECK (attempt >= 1),
    start_stamp          timestamptz NOT NULL,
    answer_stamp         timestamptz,
    end_stamp            timestamptz,
    ban                  text NOT NULL,
    trunk_id             text,
    ani                  text,
    dnis                 text NOT NULL,
    lrn                  text,
    zone                 text NOT NULL CHECK (zone IN ('INTERSTATE', 'INTRASTATE', 'LOCAL',
                                                       'ZONE1', 'TOLLFREE', 'INTERNATIONAL')),
    ocn                  text,
    lata                 integer,
    state                text,
    routing_partition    text,
    vendor_id            text,
    sip_code             integer,
    disposition          text NOT NULL
                         CHECK (disposition IN ('ANSWERED', 'NO_ANSWER', 'BUSY', 'FAILED', 'CANCELLED')),
    duration_secs        integer NOT NULL DEFAULT 0 CHECK (duration_secs >= 0),
    billed_secs          integer NOT NULL DEFAULT 0 CHECK (billed_secs >= 0),
    customer_rate        numeric(18, 9) NOT NULL CHECK (customer_rate >= 0),
    customer_initial     integer NOT NULL CHECK (customer_initial >= 1),
    customer_subsequent  integer NOT NULL CHECK (customer_subsequent >= 1),
    customer_charge      numeric(18, 6) NOT NULL CHECK (customer_charge >= 0),
    vendor_rate          numeric(18, 9) CHECK (vendor_rate >= 0),
    vendor_cost          numeric(18, 6) CHECK (vendor_cost >= 0),
    -- Negative when a forced route costs more than it sells for.
    margin               numeric(18, 6),
    invoice_id           uuid,
    rated_at             timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (call_id, leg, attempt, start_stamp)
) PARTITION BY RANGE (start_stamp);
CREATE INDEX rated_cdrs_ban ON billing.rated_cdrs (ban, start_stamp);

-- Messages (Redis Stream warp:mdr:raw), rated per segment.
CREATE TABLE billing.mdrs (
    message_id     text NOT NULL,
    part           integer NOT NULL DEFAULT 1 CHECK (part >= 1),
    sent_at        timestamptz NOT NULL,
    ban            text NOT NULL,
    trunk_id       text,
    direction      text NOT NULL CHECK (direction IN ('inbound', 'outbound')),
    kind           text NOT NULL DEFAULT 'SMS' CHECK (kind IN ('SMS', 'MMS')),
    source         text NOT NULL,
    destination    text NOT NULL,
    segments       integer NOT NULL DEFAULT 1 CHECK (segments >= 1),
    vendor_id      text,
    status         text NOT NULL DEFAULT 'queued',
    customer_rate  numeric(18, 9) CHECK (customer_rate >= 0),
    charge         numeric(18, 6) CHECK (charge >= 0),
    vendor_cost    numeric(18, 6) CHECK (vendor_cost >= 0),
    rated          boolean NOT NULL DEFAULT false,
    payload        jsonb NOT NULL DEFAULT '{}',
    PRIMARY KEY (message_id, part, sent_at)
) PARTITION BY RANGE (sent_at);
CREATE INDEX mdrs_ban ON billing.mdrs (ban, sent_at);

-- Monthly partitions: billing.ensure_month_partitions(from, months) creates any that
-- are missing (the poller calls it ahead of time); the default partitions catch the
-- rest so an early or late record is never refused.
CREATE FUNCTION billing.ensure_month_partitions(p_from date, p_months integer)
RETURNS void LANGUAGE plpgsql AS $$
DECLARE
    t     text;
    m     date;
    part  text;
BEGIN
    FOREACH t IN ARRAY ARRAY['raw_cdrs', 'rated_cdrs', 'mdrs'] LOOP
        FOR i IN 0 .. p_months - 1 LOOP
            m := (date_trunc('month', p_from) + make_interval(months => i))::date;
            part := format('%s_%s', t, to_char(m, 'YYYYMM'));
            IF to_regclass(format('billing.%I', part)) IS NULL THEN
                EXECUTE format(
                    'CREATE TABLE billing.%I PARTITION OF billing.%I FOR VALUES FROM (%L) TO (%L)',
                    part, t, m::timestamp AT TIME ZONE 'UTC',
                    (m + interval '1 month')::timestamp AT TIME ZONE 'UTC');
            END IF;
        END LOOP;
    END LOOP;
END $$;

CREATE TABLE billing.raw_cdrs_default PARTITION OF billing.raw_cdrs DEFAULT;
CREATE TABLE billing.rated_cdrs_default PARTITION OF billing.rated_cdrs DEFAULT;
CREATE TABLE billing.mdrs_default PARTITION OF billing.mdrs DEFAULT;
SELECT billing.ensure_month_partitions(date '2024-01-01', 48);

-- Every vendor attempt, for performance tracking and reconciliation.
CREATE TABLE billing.vendor_cdrs (
    id                 bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    call_id            text NOT NULL,
    leg                text NOT NULL DEFAULT 'B' CHECK (leg IN ('A', 'B')),
    attempt            integer NOT NULL CHECK (attempt >= 1),
    vendor_id          text NOT NULL,
    vendor_trunk       text,
    start_stamp        timestamptz NOT NULL,
    answer_stamp       timestamptz,
    end_stamp          timestamptz,
    disposition        text,
    sip_response_code  integer,
    pdd_ms             integer CHECK (pdd_ms >= 0),
    mos_score          numeric(3, 2) CHECK (mos_score BETWEEN 1 AND 5),
    packet_loss        numeric(5, 2) CHECK (packet_loss BETWEEN 0 AND 100),
    jitter_ms          integer CHECK (jitter_ms >= 0),
    vendor_rate        numeric(18, 9) CHECK (vendor_rate >= 0),
    vendor_cost        numeric(18, 6) CHECK (vendor_cost >= 0),
    created_at         timestamptz NOT NULL DEFAULT now(),
    UNIQUE (call_id, leg, attempt)
);
CREATE INDEX vendor_cdrs_vendor ON billing.vendor_cdrs (vendor_id, start_stamp);

-- Prepaid balances. PostgreSQL is authoritative; Redis only caches.
CREATE TABLE billing.wallets (
    ban                      text PRIMARY KEY REFERENCES customers (ban),
    currency                 text NOT NULL DEFAULT 'USD',
    balance                  numeric(18, 6) NOT NULL DEFAULT 0,
    auto_recharge_enabled    boolean NOT NULL DEFAULT false,
    auto_recharge_threshold  numeric(14, 2) CHECK (auto_recharge_threshold >= 0),
    auto_recharge_amount     numeric(14, 2) CHECK (auto_recharge_amount > 0),
    last_recharge_at         timestamptz,
    low_balance_alert_sent   boolean NOT NULL DEFAULT false,
    updated_at               timestamptz NOT NULL DEFAULT now(),
    CHECK (NOT auto_recharge_enabled
           OR (auto_recharge_threshold IS NOT NULL AND auto_recharge_amount IS NOT NULL))
);

-- Append-only ledger; one entry per (type, reference) so replays cannot double-charge.
CREATE TABLE billing.transactions (
    id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    ban             text NOT NULL REFERENCES customers (ban),
    type            text NOT NULL CHECK (type IN ('charge', 'payment', 'refund', 'adjustment')),
    amount          numeric(18, 6) NOT NULL,
    balance_before  numeric(18, 6) NOT NULL,
    balance_after   numeric(18, 6) NOT NULL,
    description     text,
    reference_type  text CHECK (reference_type IN ('cdr', 'mdr', 'invoice', 'payment', 'manual')),
    reference_id    text,
    created_at      timestamptz NOT NULL DEFAULT now(),
    CHECK (balance_after = balance_before + amount),
    CHECK (type <> 'charge' OR amount <= 0),
    CHECK (type NOT IN ('payment', 'refund') OR amount >= 0)
);
CREATE UNIQUE INDEX transactions_reference ON billing.transactions (type, reference_type, reference_id)
    WHERE reference_id IS NOT NULL;
CREATE INDEX transactions_ban ON billing.transactions (ban, created_at);

-- The product catalogue: what invoice lines are priced by (per-minute voice rates live
-- in the customer's rate plan, public.rate_plans / rate_rows).
CREATE TABLE billing.skus (
    code            text PRIMARY KEY CHECK (code <> ''),
    name            text NOT NULL,
    kind            text NOT NULL
                    CHECK (kind IN ('voice', 'tollfree', 'sms', 'mms', 'did', 'e911', 'cnam', 'feature')),
    unit            text NOT NULL CHECK (unit IN ('minute', 'message', 'segment', 'number_month', 'month', 'each')),
    unit_price      numeric(18, 9) NOT NULL CHECK (unit_price >= 0),
    effective_from  date NOT NULL,
    effective_to    date,
    CHECK (effective_to IS NULL OR effective_to > effective_from)
);

-- A customer's price for a SKU, when it differs from the catalogue.
CREATE TABLE billing.rate_plans (
    id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    ban             text NOT NULL REFERENCES customers (ban) ON DELETE CASCADE,
    sku             text NOT NULL REFERENCES billing.skus (code),
    unit_price      numeric(18, 9) NOT NULL CHECK (unit_price >= 0),
    effective_from  date NOT NULL,
    effective_to    date,
    CHECK (effective_to IS NULL OR effective_to > effective_from),
    EXCLUDE USING gist (ban WITH =, sku WITH =, daterange(effective_from, effective_to) WITH &&)
);

CREATE TABLE billing.invoices (
    id              uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    invoice_number  text NOT NULL UNIQUE,
    ban             text NOT NULL REFERENCES customers (ban),
    period_start    date NOT NULL,
    period_end      date NOT NULL,
    currency        text NOT NULL DEFAULT 'USD',
    subtotal        numeric(14, 2) NOT NULL CHECK (subtotal >= 0),
    taxes           numeric(14, 2) NOT NULL DEFAULT 0 CHECK (taxes >= 0),
    total           numeric(14, 2) NOT NULL,
    status          text NOT NULL DEFAULT 'draft'
                    CHECK (status IN ('draft', 'sent', 'paid', 'overdue', 'void')),
    due_date        date,
    paid_at         timestamptz,
    netsuite_id     text,
    created_at      timestamptz NOT NULL DEFAULT now(),
    CHECK (period_end > period_start),
    CHECK (total = subtotal + taxes),
    -- One invoice per customer and cycle: re-running a cycle is idempotent.
    UNIQUE (ban, period_start, period_end)
);

CREATE TABLE billing.invoice_lines (
    invoice_id   uuid NOT NULL REFERENCES billing.invoices (id) ON DELETE CASCADE,
    line_no      integer NOT NULL CHECK (line_no >= 1),
    sku          text REFERENCES billing.skus (code),
    description  text NOT NULL,
    quantity     numeric(18, 4) NOT NULL CHECK (quantity >= 0),
    unit_price   numeric(18, 9) NOT NULL CHECK (unit_price >= 0),
    amount       numeric(14, 2) NOT NULL CHECK (amount >= 0),
    tax          numeric(14, 2) NOT NULL DEFAULT 0 CHECK (tax >= 0),
    PRIMARY KEY (invoice_id, line_no)
);

CREATE TABLE billing.usage_summary (
    ban                text NOT NULL,
    usage_date         date NOT NULL,
    voice_minutes      numeric(14, 2) NOT NULL DEFAULT 0 CHECK (voice_minutes >= 0),
    voice_charges      numeric(18, 6) NOT NULL DEFAULT 0 CHECK (voice_charges >= 0),
    toll_free_minutes  numeric(14, 2) NOT NULL DEFAULT 0 CHECK (toll_free_minutes >= 0),
    toll_free_charges  numeric(18, 6) NOT NULL DEFAULT 0 CHECK (toll_free_charges >= 0),
    sms_count          integer NOT NULL DEFAULT 0 CHECK (sms_count >= 0),
    sms_charges        numeric(18, 6) NOT NULL DEFAULT 0 CHECK (sms_charges >= 0),
    total_charges      numeric(18, 6) NOT NULL DEFAULT 0 CHECK (total_charges >= 0),
    PRIMARY KEY (ban, usage_date)
);

-- Processor tokens only: card numbers and bank details never reach this database.
CREATE TABLE billing.payment_methods (
    id               uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    ban              text NOT NULL REFERENCES customers (ban),
    type             text NOT NULL CHECK (type IN ('card', 'ach', 'wire')),
    is_default       boolean NOT NULL DEFAULT false,
    processor        text NOT NULL CHECK (processor IN ('authorize_net', 'mustache', 'manual')),
    processor_token  text NOT NULL,
    last_four        text CHECK (last_four ~ '^[0-9]{4}$'),
    expiry_date      date,
    status           text NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'expired', 'removed')),
    created_at       timestamptz NOT NULL DEFAULT now(),
    UNIQUE (processor, processor_token)
);
CREATE UNIQUE INDEX payment_methods_one_default ON billing.payment_methods (ban)
    WHERE is_default AND status = 'active';

-- Who changed what, through the API or the CLI.
CREATE TABLE audit_log (
    id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    at           timestamptz NOT NULL DEFAULT now(),
    actor        text NOT NULL,
    action       text NOT NULL,
    entity_type  text NOT NULL,
    entity_id    text,
    before       jsonb,
    after        jsonb,
    request_id   text
);
CREATE INDEX audit_log_entity ON audit_log (entity_type, entity_id, at);
