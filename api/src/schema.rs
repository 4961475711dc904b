//! The API's own tables (API keys, users and sessions, idempotency records, webhooks
//! and their deliveries, snapshot generations), in schema `api` beside the shared
//! migrations, and its triggers on the routing tables. Created
//! idempotently at start, under an advisory lock so several instances starting at once
//! do not race.

use sqlx::PgPool;

pub(crate) const SCHEMA: &str = r#"
CREATE SCHEMA IF NOT EXISTS api;

CREATE TABLE IF NOT EXISTS api.keys (
    id            bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    name          text NOT NULL DEFAULT '',
    -- Checked as keys_role, below.
    role          text NOT NULL,
    -- Customer roles belong to one customer; staff and machine roles to none.
    ban           text REFERENCES customers (ban) ON DELETE CASCADE,
    -- sha256 of the secret, hex; the secret itself is shown once and never stored.
    hash          text NOT NULL UNIQUE,
    created_by    text NOT NULL,
    created_at    timestamptz NOT NULL DEFAULT now(),
    rotated_at    timestamptz,
    revoked_at    timestamptz,
    CHECK ((ban IS NOT NULL) = (role IN ('customer_admin', 'developer', 'billing', 'read_only')))
);
CREATE INDEX IF NOT EXISTS keys_ban ON api.keys (ban);
-- A key's role (auth::roles): the product's seven, or sip_edge, the SIP edges' snapshot
-- pull. A table made before sip_edge checks the seven alone, as keys_role_check.
DO $$ BEGIN
    IF NOT EXISTS (SELECT FROM pg_constraint
                   WHERE conrelid = 'api.keys'::regclass AND conname = 'keys_role') THEN
        ALTER TABLE api.keys DROP CONSTRAINT IF EXISTS keys_role_check;
        ALTER TABLE api.keys ADD CONSTRAINT keys_role CHECK (role IN ('super_admin',
            'support', 'sales', 'customer_admin', 'developer', 'billing', 'read_only',
            'sip_edge'));
    END IF;
END $$;

-- People who sign in (JWT sessions); the same customer rule as keys, and the seven
-- roles of keys without sip_edge, which is a machine's.
CREATE TABLE IF NOT EXISTS api.users (
    id             bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    email          text NOT NULL UNIQUE CHECK (email LIKE '_%@_%'),
    name           text NOT NULL DEFAULT '',
    role           text NOT NULL CHECK (role IN ('super_admin', 'support', 'sales',
                       'customer_admin', 'developer', 'billing', 'read_only')),
    ban            text REFERENCES customers (ban) ON DELETE CASCADE,
    -- pbkdf2-sha256$ITERATIONS$SALT$HASH (hex).
    password_hash  text NOT NULL,
    created_by     text NOT NULL,
    created_at     timestamptz NOT NULL DEFAULT now(),
    disabled_at    timestamptz,
    CHECK ((ban IS NOT NULL) = (role IN ('customer_admin', 'developer', 'billing', 'read_only')))
);
-- Sign-in matches the email whatever its case: so must uniqueness, or a second
-- account differing only in case would take (or lock out) the first one's logins.
CREATE UNIQUE INDEX IF NOT EXISTS users_email_lower ON api.users (lower(email));

-- Refresh tokens (sha256, hex): one row per sign-in, replaced on each refresh.
CREATE TABLE IF NOT EXISTS api.sessions (
    id            bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    user_id       bigint NOT NULL REFERENCES api.users (id) ON DELETE CASCADE,
    refresh_hash  text NOT NULL UNIQUE,
    expires_at    timestamptz NOT NULL,
    created_at    timestamptz NOT NULL DEFAULT now(),
    revoked_at    timestamptz
);
CREATE INDEX IF NOT EXISTS sessions_user ON api.sessions (user_id);

-- A POST with an Idempotency-Key answers once; a repeat replays the stored answer
-- (status 0 while the first request runs).
CREATE TABLE IF NOT EXISTS api.idempotency (
    actor         text NOT NULL,
    key           text NOT NULL,
    request_hash  text NOT NULL,
    status        smallint NOT NULL,
    body          bytea NOT NULL,
    created_at    timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (actor, key)
);
-- Expired records are purged by age.
CREATE INDEX IF NOT EXISTS idempotency_created ON api.idempotency (created_at);

-- Outbound webhook subscriptions: a customer's (ban) get the events of its own rows,
-- staff ones (no ban) every event. The secret keys the HMAC, so it is kept as is.
CREATE TABLE IF NOT EXISTS api.webhooks (
    id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    ban          text REFERENCES customers (ban) ON DELETE CASCADE,
    url          text NOT NULL CHECK (url ~ '^https?://'),
    event_types  text[] NOT NULL CHECK (cardinality(event_types) > 0),
    description  text NOT NULL DEFAULT '',
    active       boolean NOT NULL DEFAULT true,
    secret       text NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS webhooks_ban ON api.webhooks (ban);
-- The role whose read access bounds a subscription's events: its creator's, then its
-- last updater's. Subscriptions made before it was kept get the least that any role
-- able to write them may read: staff ones super_admin's (the one staff role that
-- writes webhooks), a customer's developer's (no users.*; an update by a customer
-- admin restores them).
ALTER TABLE api.webhooks ADD COLUMN IF NOT EXISTS role text
    CHECK (role IN ('super_admin', 'support', 'sales',
                    'customer_admin', 'developer', 'billing', 'read_only'));
UPDATE api.webhooks SET role = CASE WHEN ban IS NULL THEN 'super_admin' ELSE 'developer' END
    WHERE role IS NULL;
ALTER TABLE api.webhooks ALTER COLUMN role SET NOT NULL;

-- One event for one subscription; attempts holds {at, status_code, error, ms} each.
-- locked_until is the lease of the worker attempting it.
CREATE TABLE IF NOT EXISTS api.webhook_deliveries (
    id               bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    webhook_id       bigint NOT NULL REFERENCES api.webhooks (id) ON DELETE CASCADE,
    event_id         text NOT NULL,
    event_type       text NOT NULL,
    -- The exact bytes signed and sent.
    payload          text NOT NULL,
    status           text NOT NULL DEFAULT 'pending'
                     CHECK (status IN ('pending', 'delivered', 'failed')),
    attempts         jsonb NOT NULL DEFAULT '[]',
    next_attempt_at  timestamptz DEFAULT now(),
    locked_until     timestamptz,
    created_at       timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS webhook_deliveries_due
    ON api.webhook_deliveries (next_attempt_at) WHERE status = 'pending';
CREATE INDEX IF NOT EXISTS webhook_deliveries_webhook ON api.webhook_deliveries (webhook_id, id);
-- The deliveries under lease: a subscription with one in flight is not claimed again.
CREATE INDEX IF NOT EXISTS webhook_deliveries_leased ON api.webhook_deliveries (webhook_id)
    WHERE locked_until IS NOT NULL;
-- The roles that may read the event, as the matrix stood when it was queued: only
-- they see it in the log, and it is sent only while its subscription's role is one of
-- them. Deliveries queued before it was kept (their class unknown): super_admin alone.
ALTER TABLE api.webhook_deliveries ADD COLUMN IF NOT EXISTS readers text[] NOT NULL
    DEFAULT '{super_admin}';
ALTER TABLE api.webhook_deliveries ALTER COLUMN readers DROP DEFAULT;

-- Instances cache who a key or user is (auth::cache); any change to either table,
-- however made, tells them to forget (delivered at commit).
CREATE OR REPLACE FUNCTION api.credentials_changed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('warp_credentials', TG_TABLE_NAME);
    RETURN NULL;
END $$;
CREATE OR REPLACE TRIGGER keys_changed AFTER UPDATE OR DELETE OR TRUNCATE ON api.keys
    FOR EACH STATEMENT EXECUTE FUNCTION api.credentials_changed();
CREATE OR REPLACE TRIGGER users_changed AFTER UPDATE OR DELETE OR TRUNCATE ON api.users
    FOR EACH STATEMENT EXECUTE FUNCTION api.credentials_changed();

-- The last routing snapshot generation handed out, by whichever instance
-- (routing::generations): its payload (xxh3, hex, as `warp inspect` shows it) and when
-- it was stamped, so that every instance compiling that data writes the same file
-- under the same number. One row, written under LOCK TABLE.
CREATE TABLE IF NOT EXISTS api.snapshot_generation (
    only_row      boolean PRIMARY KEY DEFAULT true CHECK (only_row),
    -- A u64: numeric holds all of it.
    generation    numeric(20, 0) NOT NULL CHECK (generation >= 0),
    payload_hash  text NOT NULL,
    created_unix  bigint NOT NULL,
    decided_at    timestamptz NOT NULL DEFAULT now()
);

-- Instances republish on any routing change, however made (this API, another
-- instance, `warp import`, SQL by hand): statement triggers on every table the dataset
-- is loaded from (schema::ensure adds them) notify (delivered at commit).
CREATE OR REPLACE FUNCTION api.routing_changed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('warp_routing', TG_TABLE_NAME);
    RETURN NULL;
END $$;
"#;

/// The trigger on each of `warp_db::ROUTING_TABLES` that calls `api.routing_changed`.
/// On a table the snapshot reads only some columns of, an update of the others (a
/// number's CNAM or E911 address) is not one: it would make every instance compile the
/// same data again. Replaced as it stands, so an upgrade narrows an older trigger.
fn routing_triggers() -> String {
    warp_db::ROUTING_TABLES
        .iter()
        .map(|table| {
            let update = match warp_db::routing_columns(table) {
                Some(columns) => format!("UPDATE OF {}", columns.join(", ")),
                None => "UPDATE".to_string(),
            };
            format!(
                "CREATE OR REPLACE TRIGGER warp_api_routing_changed \
                 AFTER INSERT OR {update} OR DELETE OR TRUNCATE ON {table} \
                 FOR EACH STATEMENT EXECUTE FUNCTION api.routing_changed();\n"
            )
        })
        .collect()
}

/// Creates what is missing.
pub async fn ensure(pool: &PgPool) -> Result<(), sqlx::Error> {
    let mut tx = pool.begin().await?;
    sqlx::query("SELECT pg_advisory_xact_lock(7261)")
        .execute(&mut *tx)
        .await?;
    sqlx::raw_sql(SCHEMA).execute(&mut *tx).await?;
    sqlx::raw_sql(&routing_triggers()).execute(&mut *tx).await?;
    tx.commit().await
}
