//! One audit_log row per change, written in the change's own transaction.
//! audit_log has no source-address column, so "from where" goes in `request_id`.

use crate::auth::Principal;
use serde_json::Value;
use sqlx::PgConnection;

pub struct Change<'a> {
    pub action: &'a str,
    pub entity_type: &'a str,
    pub entity_id: &'a str,
    pub before: Option<Value>,
    pub after: Option<Value>,
}

pub async fn record(
    conn: &mut PgConnection,
    who: &Principal,
    change: Change<'_>,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO audit_log (actor, action, entity_type, entity_id, before, after, request_id)
         VALUES ($1, $2, $3, $4, $5, $6, $7)",
    )
    .bind(&who.actor)
    .bind(change.action)
    .bind(change.entity_type)
    .bind(change.entity_id)
    .bind(change.before)
    .bind(change.after)
    .bind(format!("from {}", who.origin))
    .execute(conn)
    .await?;
    Ok(())
}
