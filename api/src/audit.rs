//! The audit trail: one audit_log row per change, written in the change's own
//! transaction, and its listing. audit_log has no source-address column, so "from
//! where" goes in `request_id`. Every change recorded here is also a webhook event.

use crate::auth::roles::{Access, Class};
use crate::auth::Principal;
use crate::envelope::Envelope;
use crate::error::ApiResult;
use crate::extract::Query;
use crate::page::{bad_cursor, Page};
use crate::state::AppState;
use axum::extract::State;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sqlx::{FromRow, PgConnection};
use utoipa::ToSchema;

pub struct Change<'a> {
    pub action: &'a str,
    /// What access to the entity takes: who may see the change (webhooks).
    pub class: Class,
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
    .bind(&change.before)
    .bind(&change.after)
    .bind(format!("from {}", who.origin))
    .execute(&mut *conn)
    .await?;
    crate::webhooks::emit(conn, &change).await
}

#[derive(Serialize, FromRow, ToSchema)]
pub struct Entry {
    pub id: i64,
    pub at: DateTime<Utc>,
    pub actor: String,
    pub action: String,
    pub entity_type: String,
    pub entity_id: Option<String>,
    #[schema(value_type = Option<Object>)]
    pub before: Option<Value>,
    #[schema(value_type = Option<Object>)]
    pub after: Option<Value>,
    /// Where the change came from.
    pub request_id: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Filter {
    pub entity_type: Option<String>,
    pub entity_id: Option<String>,
    pub actor: Option<String>,
    pub limit: Option<usize>,
    pub cursor: Option<String>,
}

pub const FILTERS: &[&str] = &["entity_type", "entity_id", "actor"];

/// Newest first.
pub async fn list(
    State(st): State<AppState>,
    who: Principal,
    Query(q): Query<Filter>,
) -> ApiResult<Envelope<Vec<Entry>>> {
    who.require(Class::Audit, Access::Read)?;
    let page = Page::new(q.limit, q.cursor)?;
    let before: i64 = page
        .after
        .as_deref()
        .map_or(Ok(i64::MAX), str::parse)
        .map_err(|_| bad_cursor())?;
    let rows: Vec<Entry> = sqlx::query_as(
        "SELECT id, at, actor, action, entity_type, entity_id, before, after, request_id
         FROM audit_log
         WHERE id < $1 AND ($2::text IS NULL OR entity_type = $2)
           AND ($3::text IS NULL OR entity_id = $3) AND ($4::text IS NULL OR actor = $4)
         ORDER BY id DESC LIMIT $5",
    )
    .bind(before)
    .bind(q.entity_type)
    .bind(q.entity_id)
    .bind(q.actor)
    .bind(page.limit as i64 + 1)
    .fetch_all(&st.pool)
    .await?;
    let (rows, meta) = page.finish(rows, |e| e.id.to_string());
    Ok(Envelope::page(rows, meta))
}
