-- Provisioning: what routing needs, modelled on the legacy VLCAdmin tables (origin =
-- vendors, dial = gateways, routecost = rate rows, machine = partitions,
-- dialcost_routes/_toggle = partition routes, rate_exclusions = exclusions,
-- provider_policy = vendor jurisdiction policy, localdata2 = local calling), carrying
-- exactly what warp-core's Dataset holds so it round-trips, plus the API's extras.
-- Money and rates are NUMERIC(18,9): the snapshot keeps 9 decimal places.

CREATE EXTENSION IF NOT EXISTS btree_gist;

-- One schedule shape for customer partitions and overrides: an absolute validity range
-- [valid_from, valid_to) and an optional weekly window in an IANA zone. days is a
-- bitmask (bit 0 = Monday … bit 6 = Sunday); minutes are after local midnight and a
-- window with end <= start spans midnight.

CREATE TABLE rate_plans (
    id          text PRIMARY KEY CHECK (id <> ''),
    description text NOT NULL DEFAULT '',
    created_at  timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE customers (
    ban             text PRIMARY KEY CHECK (ban <> ''),
    name            text NOT NULL,
    contact_name    text,
    contact_email   text,
    contact_phone   text,
    address_line1   text,
    address_line2   text,
    city            text,
    state           text,
    postal_code     text,
    country         text NOT NULL DEFAULT 'US',
    billing_model   text NOT NULL DEFAULT 'postpaid'
                    CHECK (billing_model IN ('prepaid', 'postpaid', 'hybrid')),
    billing_cycle   text NOT NULL DEFAULT 'monthly'
                    CHECK (billing_cycle IN ('monthly', 'weekly', 'daily')),
    payment_terms   text NOT NULL DEFAULT 'NET_30'
                    CHECK (payment_terms IN ('NET_0', 'NET_30', 'NET_60')),
    credit_limit    numeric(14, 2) NOT NULL DEFAULT 0 CHECK (credit_limit >= 0),
    rate_plan       text NOT NULL REFERENCES rate_plans (id),
    min_margin      numeric(18, 9) NOT NULL DEFAULT 0 CHECK (min_margin >= 0),
    -- Explicit ceiling on vendor rates; NULL = sell rate minus min_margin.
    rate_limit      numeric(18, 9) CHECK (rate_limit >= 0),
    max_results     integer NOT NULL DEFAULT 5 CHECK (max_results BETWEEN 1 AND 100),
    enabled         boolean NOT NULL DEFAULT true,
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX customers_rate_plan ON customers (rate_plan);

CREATE TABLE trunks (
    id              text PRIMARY KEY CHECK (id <> ''),
    ban             text NOT NULL REFERENCES customers (ban) ON DELETE CASCADE,
    name            text NOT NULL DEFAULT '',
    auth_type       text NOT NULL DEFAULT 'IP_ACL'
                    CHECK (auth_type IN ('IP_ACL', 'CREDENTIALS', 'IP_AND_CREDENTIALS')),
    -- 0 = unlimited.
    max_concurrent  integer NOT NULL DEFAULT 0 CHECK (max_concurrent >= 0),
    max_cps         integer NOT NULL DEFAULT 0 CHECK (max_cps >= 0),
    enabled         boolean NOT NULL DEFAULT true,
    created_at      timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX trunks_ban ON trunks (ban);

-- inet, not cidr: an ACL entry may be written with host bits (10.0.0.5/24).
CREATE TABLE trunk_ips (
    id        bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    trunk_id  text NOT NULL REFERENCES trunks (id) ON DELETE CASCADE,
    addr      inet NOT NULL UNIQUE
);
CREATE INDEX trunk_ips_trunk ON trunk_ips (trunk_id);
-- Which trunk a source address belongs to (Kamailio permissions-style lookups).
CREATE INDEX trunk_ips_addr ON trunk_ips USING gist (addr inet_ops);

-- Digest credentials for Kamailio's auth_db: ha1 = md5(user:realm:password),
-- ha1b = md5(user@domain:realm:password). The password itself is never stored.
CREATE TABLE trunk_credentials (
    id        bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    trunk_id  text NOT NULL REFERENCES trunks (id) ON DELETE CASCADE,
    username  text NOT NULL UNIQUE CHECK (username <> ''),
    realm     text NOT NULL DEFAULT '',
    ha1       text CHECK (ha1 ~ '^[0-9a-f]{32}$'),
    ha1b      text CHECK (ha1b ~ '^[0-9a-f]{32}$')
);
CREATE INDEX trunk_credentials_trunk ON trunk_credentials (trunk_id);

CREATE TABLE e911_addresses (
    id            bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    ban           text NOT NULL REFERENCES customers (ban) ON DELETE CASCADE,
    line1         text NOT NULL,
    line2         text,
    city          text NOT NULL,
    state         text NOT NULL,
    postal_code   text NOT NULL,
    country       text NOT NULL DEFAULT 'US',
    validated_at  timestamptz
);

-- DID inventory: unassigned numbers have no customer.
CREATE TABLE numbers (
    e164             text PRIMARY KEY CHECK (e164 ~ '^[1-9][0-9]{1,14}$'),
    ban              text REFERENCES customers (ban) ON DELETE SET NULL,
    trunk_id         text REFERENCES trunks (id) ON DELETE SET NULL,
    status           text NOT NULL DEFAULT 'available'
                     CHECK (status IN ('available', 'reserved', 'assigned', 'aging', 'ported_out')),
    voice_enabled    boolean NOT NULL DEFAULT true,
    sms_enabled      boolean NOT NULL DEFAULT false,
    mms_enabled      boolean NOT NULL DEFAULT false,
    fax_enabled      boolean NOT NULL DEFAULT false,
    e911_address_id  bigint REFERENCES e911_addresses (id) ON DELETE SET NULL,
    -- CNAM display names are at most 15 characters.
    cnam             text CHECK (length(cnam) <= 15),
    assigned_at      timestamptz,
    CHECK (status <> 'assigned' OR ban IS NOT NULL)
);
CREATE INDEX numbers_ban ON numbers (ban);
CREATE INDEX numbers_trunk ON numbers (trunk_id);

CREATE TABLE vendors (
    id                  text PRIMARY KEY CHECK (id <> ''),
    name                text NOT NULL,
    kind                text NOT NULL CHECK (kind IN ('LRN', 'OCN_LATA', 'DNIS', 'INTERNATIONAL')),
    -- Lower is preferred when rates tie.
    priority            integer NOT NULL DEFAULT 0,
    -- Jurisdiction policy: the zone indeterminate traffic is priced in.
    indeterminate_zone  text NOT NULL DEFAULT 'INTRASTATE'
                        CHECK (indeterminate_zone IN ('INTERSTATE', 'INTRASTATE', 'LOCAL',
                                                      'ZONE1', 'TOLLFREE', 'INTERNATIONAL')),
    enabled             boolean NOT NULL DEFAULT true,
    created_at          timestamptz NOT NULL DEFAULT now()
);

-- Dialstring templates in failover order ({number}, {national}).
CREATE TABLE gateways (
    vendor_id   text NOT NULL REFERENCES vendors (id) ON DELETE CASCADE,
    priority    integer NOT NULL,
    dialstring  text NOT NULL CHECK (dialstring ~* '^sips?:'),
    PRIMARY KEY (vendor_id, priority)
);

-- A rate deck belongs to one vendor (buy side) or one rate plan (sell side).
CREATE TABLE rate_decks (
    id         bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    vendor_id  text UNIQUE REFERENCES vendors (id) ON DELETE CASCADE,
    rate_plan  text UNIQUE REFERENCES rate_plans (id) ON DELETE CASCADE,
    CHECK ((vendor_id IS NULL) <> (rate_plan IS NULL))
);

-- Per-minute rates by zone (NULL = not offered) keyed by a digit prefix or by
-- (OCN, LATA). Rows of one deck and key may not overlap in time.
CREATE TABLE rate_rows (
    id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    deck_id         bigint NOT NULL REFERENCES rate_decks (id) ON DELETE CASCADE,
    prefix          text CHECK (prefix ~ '^[0-9]{1,15}$'),
    ocn             text CHECK (ocn ~ '^[0-9A-Z]{1,4}$'),
    lata            integer CHECK (lata >= 0),
    rate_key        text GENERATED ALWAYS AS (coalesce(prefix, ocn || '/' || lata)) STORED,
    effective_from  timestamptz NOT NULL,
    effective_to    timestamptz,
    interstate      numeric(18, 9) CHECK (interstate >= 0),
    intrastate      numeric(18, 9) CHECK (intrastate >= 0),
    local           numeric(18, 9) CHECK (local >= 0),
    zone1           numeric(18, 9) CHECK (zone1 >= 0),
    tollfree        numeric(18, 9) CHECK (tollfree >= 0),
    international   numeric(18, 9) CHECK (international >= 0),
    initial_secs    integer NOT NULL DEFAULT 6 CHECK (initial_secs >= 1),
    subsequent_secs integer NOT NULL DEFAULT 6 CHECK (subsequent_secs >= 1),
    connect_fee     numeric(18, 9) NOT NULL DEFAULT 0 CHECK (connect_fee >= 0),
    minimum_charge  numeric(18, 9) NOT NULL DEFAULT 0 CHECK (minimum_charge >= 0),
    CHECK ((prefix IS NOT NULL AND ocn IS NULL AND lata IS NULL)
        OR (prefix IS NULL AND ocn IS NOT NULL AND lata IS NOT NULL)),
    CHECK (effective_to IS NULL OR effective_to > effective_from),
    CHECK (coalesce(interstate, intrastate, local, zone1, tollfree, international) IS NOT NULL),
    CONSTRAINT rate_rows_no_overlap EXCLUDE USING gist (
        deck_id WITH =,
        rate_key WITH =,
        tstzrange(effective_from, effective_to) WITH &&
    )
);
-- Longest-prefix lookups probe (deck, prefix) for each candidate prefix of a number.
CREATE INDEX rate_rows_prefix ON rate_rows (deck_id, prefix, effective_from DESC)
    WHERE prefix IS NOT NULL;
CREATE INDEX rate_rows_ocn_lata ON rate_rows (deck_id, ocn, lata, effective_from DESC)
    WHERE ocn IS NOT NULL;

CREATE TABLE partitions (
    id          text PRIMARY KEY CHECK (id <> ''),
    name        text NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now()
);

-- The vendors a partition offers, in listed order; a route can be toggled off.
CREATE TABLE partition_routes (
    partition_id  text NOT NULL REFERENCES partitions (id) ON DELETE CASCADE,
    vendor_id     text NOT NULL REFERENCES vendors (id) ON DELETE CASCADE,
    position      integer NOT NULL,
    enabled       boolean NOT NULL DEFAULT true,
    PRIMARY KEY (partition_id, vendor_id),
    UNIQUE (partition_id, position)
);
CREATE INDEX partition_routes_vendor ON partition_routes (vendor_id);

CREATE TABLE customer_partitions (
    id            bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    ban           text NOT NULL REFERENCES customers (ban) ON DELETE CASCADE,
    partition_id  text NOT NULL REFERENCES partitions (id) ON DELETE CASCADE,
    -- Lower is tried first.
    priority      integer NOT NULL DEFAULT 1,
    valid_from    timestamptz,
    valid_to      timestamptz,
    tz            text,
    days          smallint CHECK (days BETWEEN 1 AND 127),
    start_minute  smallint CHECK (start_minute BETWEEN 0 AND 1440),
    end_minute    smallint CHECK (end_minute BETWEEN 0 AND 1440),
    CHECK (valid_to IS NULL OR valid_from IS NULL OR valid_to > valid_from),
    CHECK ((tz IS NULL) = (days IS NULL) AND (tz IS NULL) = (start_minute IS NULL)
       AND (tz IS NULL) = (end_minute IS NULL))
);
CREATE INDEX customer_partitions_ban ON customer_partitions (ban, priority);

-- Forces a vendor first for matching calls; ban NULL = every customer.
CREATE TABLE overrides (
    id            bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    ban           text REFERENCES customers (ban) ON DELETE CASCADE,
    prefix        text NOT NULL CHECK (prefix ~ '^[0-9]{1,15}$'),
    vendor_id     text NOT NULL REFERENCES vendors (id) ON DELETE CASCADE,
    valid_from    timestamptz,
    valid_to      timestamptz,
    tz            text,
    days          smallint CHECK (days BETWEEN 1 AND 127),
    start_minute  smallint CHECK (start_minute BETWEEN 0 AND 1440),
    end_minute    smallint CHECK (end_minute BETWEEN 0 AND 1440),
    CHECK (valid_to IS NULL OR valid_from IS NULL OR valid_to > valid_from),
    CHECK ((tz IS NULL) = (days IS NULL) AND (tz IS NULL) = (start_minute IS NULL)
       AND (tz IS NULL) = (end_minute IS NULL))
);
CREATE INDEX overrides_ban ON overrides (ban, prefix);

-- Without a vendor the destination is blocked; with one, that vendor is not used.
CREATE TABLE exclusions (
    id         bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    ban        text REFERENCES customers (ban) ON DELETE CASCADE,
    vendor_id  text REFERENCES vendors (id) ON DELETE CASCADE,
    prefix     text NOT NULL CHECK (prefix ~ '^[0-9]{1,15}$')
);
CREATE INDEX exclusions_ban ON exclusions (ban, prefix);

-- LERG 6 rows: an NPA-NXX, or one of its thousands blocks when block is set.
CREATE TABLE lerg_blocks (
    npa_nxx      integer NOT NULL CHECK (npa_nxx BETWEEN 200200 AND 999999),
    block        smallint CHECK (block BETWEEN 0 AND 9),
    ocn          text NOT NULL,
    lata         integer NOT NULL CHECK (lata >= 0),
    state        text NOT NULL CHECK (state ~ '^[A-Z]{2}$'),
    rate_center  text NOT NULL,
    UNIQUE NULLS NOT DISTINCT (npa_nxx, block)
);

-- Two rate centres in one local calling area.
CREATE TABLE local_calling (
    state_a        text NOT NULL,
    rate_center_a  text NOT NULL,
    state_b        text NOT NULL,
    rate_center_b  text NOT NULL
);
CREATE INDEX local_calling_a ON local_calling (state_a, rate_center_a, state_b, rate_center_b);
CREATE INDEX local_calling_b ON local_calling (state_b, rate_center_b, state_a, rate_center_a);

-- Do-Not-Originate numbers (E.164 digits).
CREATE TABLE dno (
    number  text NOT NULL CHECK (number ~ '^[1-9][0-9]{1,14}$')
);
CREATE INDEX dno_number ON dno (number);

-- Ported numbers and their LRN (E.164 digits).
CREATE TABLE lnp (
    number  text NOT NULL CHECK (number ~ '^1[2-9][0-9]{2}[2-9][0-9]{6}$'),
    lrn     text NOT NULL CHECK (lrn ~ '^1[2-9][0-9]{2}[2-9][0-9]{6}$')
);
CREATE INDEX lnp_number ON lnp (number);
