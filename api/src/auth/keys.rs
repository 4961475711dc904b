//! API keys: a random 32-byte secret shown once, stored as its sha256; created with a
//! role no stronger than the creator's, listed, rotated (new secret, same key) and
//! revoked.

use super::roles::{Access, Class, Role};
use super::Principal;
use crate::audit::{self, Change};
use crate::envelope::Envelope;
use crate::error::{ApiError, ApiResult};
use crate::extract::{Json, Path, Query};
use crate::state::AppState;
use axum::extract::State;
use axum::http::StatusCode;
use chrono::{DateTime, Utc};
use rand::RngCore;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use sqlx::FromRow;
use std::collections::HashMap;
use utoipa::ToSchema;

/// sha256 of a presented secret, hex.
pub fn hash(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

fn new_secret() -> String {
    let mut bytes = [0u8; 32];
    rand::thread_rng().fill_bytes(&mut bytes);
    format!("warp_{}", hex::encode(bytes))
}

#[derive(Serialize, FromRow, ToSchema)]
pub struct ApiKey {
    pub id: i64,
    pub name: String,
    pub role: String,
    pub ban: Option<String>,
    pub created_by: String,
    pub created_at: DateTime<Utc>,
    pub rotated_at: Option<DateTime<Utc>>,
    pub revoked_at: Option<DateTime<Utc>>,
}

/// A key with its secret: the only time the secret is shown.
#[derive(Serialize, ToSchema)]
pub struct IssuedKey {
    #[serde(flatten)]
    pub key: ApiKey,
    pub scopes: Vec<&'static str>,
    /// Send as `Authorization: Bearer <secret>`. Not retrievable later.
    pub secret: String,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewKey {
    #[serde(default)]
    pub name: String,
    /// `sip_edge` (a SIP edge's snapshot pull, nothing else) only from a super admin.
    pub role: Role,
    /// Required for customer roles; a customer caller's own BAN is used when absent.
    pub ban: Option<String>,
}

const COLUMNS: &str = "id, name, role, ban, created_by, created_at, rotated_at, revoked_at";

fn issued(key: ApiKey, secret: String) -> IssuedKey {
    let scopes = Role::parse(&key.role).map(Role::scopes).unwrap_or_default();
    IssuedKey {
        key,
        scopes: scopes.to_vec(),
        secret,
    }
}

pub async fn create(
    State(st): State<AppState>,
    who: Principal,
    Json(req): Json<NewKey>,
) -> ApiResult<(StatusCode, Envelope<IssuedKey>)> {
    who.require(Class::Keys, Access::Write)?;
    let ban = who.grant(req.role, req.ban)?;
    let secret = new_secret();
    let mut tx = st.pool.begin().await?;
    let key: ApiKey = sqlx::query_as(&format!(
        "INSERT INTO api.keys (name, role, ban, hash, created_by) VALUES ($1, $2, $3, $4, $5)
         RETURNING {COLUMNS}"
    ))
    .bind(&req.name)
    .bind(req.role.as_str())
    .bind(&ban)
    .bind(hash(&secret))
    .bind(&who.actor)
    .fetch_one(&mut *tx)
    .await?;
    let id = key.id.to_string();
    let change = Change {
        action: "create",
        class: Class::Keys,
        entity_type: "api_keys",
        entity_id: &id,
        before: None,
        after: serde_json::to_value(&key).ok(),
    };
    audit::record(&mut tx, &who, change).await?;
    tx.commit().await?;
    Ok((StatusCode::CREATED, Envelope::ok(issued(key, secret))))
}

pub async fn list(
    State(st): State<AppState>,
    who: Principal,
    Query(mut q): Query<HashMap<String, String>>,
) -> ApiResult<Envelope<Vec<ApiKey>>> {
    who.require(Class::Keys, Access::Read)?;
    let (rows, meta) = crate::page::by_id(
        &st.pool,
        &mut q,
        "api.keys",
        COLUMNS,
        who.tenant(),
        |r: &ApiKey| r.id,
    )
    .await?;
    Ok(Envelope::page(rows, meta))
}

/// Whether the caller is the key `id` names.
fn is_caller(who: &Principal, id: &str) -> bool {
    let caller = who
        .actor
        .strip_prefix("api-key:")
        .and_then(|n| n.parse::<i64>().ok());
    caller.is_some() && caller == id.parse().ok()
}

/// Looks up a key the caller may manage (any key of a role it may grant, and itself),
/// locked for the change.
async fn owned(conn: &mut sqlx::PgConnection, who: &Principal, id: &str) -> ApiResult<ApiKey> {
    let itself = is_caller(who, id);
    let id: i64 = id.parse().map_err(|_| ApiError::not_found("api key"))?;
    let key: ApiKey = sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM api.keys WHERE id = $1 AND ($2::text IS NULL OR ban = $2) FOR UPDATE"
    ))
    .bind(id)
    .bind(who.tenant())
    .fetch_optional(conn)
    .await?
    .ok_or_else(|| ApiError::not_found("api key"))?;
    match Role::parse(&key.role) {
        _ if itself => Ok(key),
        Some(r) if who.role.may_grant(r) => Ok(key),
        _ => Err(ApiError::forbidden("this key is above your role")),
    }
}

async fn change_key(
    st: &AppState,
    who: &Principal,
    id: &str,
    action: &str,
    sql: &str,
    secret: Option<&str>,
) -> ApiResult<ApiKey> {
    let mut tx = st.pool.begin().await?;
    let before = owned(&mut tx, who, id).await?;
    let key: ApiKey = sqlx::query_as(sql)
        .bind(before.id)
        .bind(secret.map(hash))
        .fetch_optional(&mut *tx)
        .await?
        .ok_or_else(|| ApiError::conflict("the key is revoked"))?;
    let change = Change {
        action,
        class: Class::Keys,
        entity_type: "api_keys",
        entity_id: id,
        before: serde_json::to_value(&before).ok(),
        after: serde_json::to_value(&key).ok(),
    };
    // A revoke of a revoked key changes nothing: no audit row, no webhook event.
    if change.before != change.after {
        audit::record(&mut tx, who, change).await?;
    }
    tx.commit().await?;
    // This instance refuses the old secret from its next request; the others on notice.
    st.credentials.forget_all();
    Ok(key)
}

pub async fn rotate(
    State(st): State<AppState>,
    who: Principal,
    Path(id): Path<String>,
) -> ApiResult<Envelope<IssuedKey>> {
    // Rotating another key revokes its secret and hands over a new one: it takes the
    // right to revoke that key. A key may always rotate itself, whatever its role (a
    // read-only or billing key too): that only replaces its own secret.
    if !is_caller(&who, &id) {
        who.require(Class::Keys, Access::Write)?;
        who.require(Class::Keys, Access::Delete)?;
    }
    let secret = new_secret();
    let sql = format!(
        "UPDATE api.keys SET hash = coalesce($2, hash), rotated_at = now()
         WHERE id = $1 AND revoked_at IS NULL RETURNING {COLUMNS}"
    );
    let key = change_key(&st, &who, &id, "rotate", &sql, Some(&secret)).await?;
    Ok(Envelope::ok(issued(key, secret)))
}

pub async fn revoke(
    State(st): State<AppState>,
    who: Principal,
    Path(id): Path<String>,
) -> ApiResult<Envelope<ApiKey>> {
    who.require(Class::Keys, Access::Delete)?;
    let sql = format!(
        "UPDATE api.keys SET revoked_at = coalesce(revoked_at, now()), hash = coalesce($2, hash)
         WHERE id = $1 RETURNING {COLUMNS}"
    );
    Ok(Envelope::ok(
        change_key(&st, &who, &id, "revoke", &sql, None).await?,
    ))
}
