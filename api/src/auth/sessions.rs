//! User sessions: users with a role (like keys) sign in with email and password and get
//! a 1-hour access JWT and a 30-day refresh token (opaque, stored hashed, replaced on
//! every refresh, revocable). Passwords are PBKDF2-SHA256 with a random salt.

use super::cache::Grant;
use super::jwt::{self, Claims};
use super::keys::hash;
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
use sha2::Sha256;
use sqlx::FromRow;
use std::collections::HashMap;
use utoipa::ToSchema;

pub const ACCESS_SECS: i64 = 3600;
pub const REFRESH_DAYS: i64 = 30;
const ITERATIONS: u32 = 100_000;

fn random_hex() -> String {
    let mut bytes = [0u8; 32];
    rand::thread_rng().fill_bytes(&mut bytes);
    hex::encode(bytes)
}

fn derive(password: &str, salt: &str, iterations: u32) -> String {
    let mut out = [0u8; 32];
    pbkdf2::pbkdf2_hmac::<Sha256>(password.as_bytes(), salt.as_bytes(), iterations, &mut out);
    hex::encode(out)
}

pub fn hash_password(password: &str) -> String {
    let salt = random_hex();
    let h = derive(password, &salt, ITERATIONS);
    format!("pbkdf2-sha256${ITERATIONS}${salt}${h}")
}

pub fn check_password(password: &str, stored: &str) -> bool {
    let mut parts = stored.split('$');
    let (Some("pbkdf2-sha256"), Some(n), Some(salt), Some(h)) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return false;
    };
    n.parse()
        .is_ok_and(|n| derive(password, salt, n).as_bytes() == h.as_bytes())
}

/// The caller behind a session JWT, as it is now (a disabled user is refused).
pub async fn principal(st: &AppState, token: &str, origin: String) -> ApiResult<Principal> {
    let claims = jwt::verify(&st.jwt_secret, token, Utc::now().timestamp())
        .ok_or_else(|| ApiError::unauthorized("invalid or expired session token"))?;
    let actor = format!("user:{}", claims.sub);
    if let Some(grant) = st.credentials.get(&actor) {
        return Ok(Principal::from_grant(grant, origin));
    }
    let generation = st.credentials.generation();
    let row: Option<(String, Option<String>)> =
        sqlx::query_as("SELECT role, ban FROM api.users WHERE id = $1 AND disabled_at IS NULL")
            .bind(claims.sub)
            .fetch_optional(&st.pool)
            .await?;
    let (role, ban) = row.ok_or_else(|| ApiError::unauthorized("user disabled"))?;
    let grant = Grant {
        actor: actor.clone(),
        role: Role::parse(&role).ok_or_else(|| ApiError::internal("stored role"))?,
        ban,
    };
    st.credentials.put(actor, grant.clone(), generation);
    Ok(Principal::from_grant(grant, origin))
}

#[derive(Serialize, ToSchema)]
pub struct Tokens {
    pub access_token: String,
    pub token_type: &'static str,
    /// Seconds the access token lives.
    pub expires_in: i64,
    pub refresh_token: String,
    pub refresh_expires_at: DateTime<Utc>,
}

async fn issue(st: &AppState, conn: &mut sqlx::PgConnection, user: i64) -> ApiResult<Tokens> {
    let now = Utc::now();
    let refresh = random_hex();
    let refresh_expires_at = now + chrono::Duration::days(REFRESH_DAYS);
    sqlx::query("INSERT INTO api.sessions (user_id, refresh_hash, expires_at) VALUES ($1, $2, $3)")
        .bind(user)
        .bind(hash(&refresh))
        .bind(refresh_expires_at)
        .execute(conn)
        .await?;
    let claims = Claims {
        sub: user,
        iat: now.timestamp(),
        exp: now.timestamp() + ACCESS_SECS,
    };
    Ok(Tokens {
        access_token: jwt::sign(&st.jwt_secret, &claims),
        token_type: "Bearer",
        expires_in: ACCESS_SECS,
        refresh_token: refresh,
        refresh_expires_at,
    })
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Login {
    pub email: String,
    pub password: String,
}

/// Login attempts an account gets a minute, right or wrong: enough for a person,
/// too few to guess a password.
pub const LOGIN_ATTEMPTS: u32 = 10;

pub async fn login(
    State(st): State<AppState>,
    Json(req): Json<Login>,
) -> ApiResult<Envelope<Tokens>> {
    // Hashed: the email is the client's, of any length, and becomes a counter's key.
    let account = format!("login:{}", hash(&req.email.to_lowercase()));
    if !st.login_limiter.hit(&account).await.allowed {
        return Err(ApiError::new(
            StatusCode::TOO_MANY_REQUESTS,
            "RATE_LIMITED",
            format!("more than {LOGIN_ATTEMPTS} login attempts a minute for this account"),
        ));
    }
    let row: Option<(i64, String)> = sqlx::query_as(
        "SELECT id, password_hash FROM api.users WHERE lower(email) = lower($1) AND disabled_at IS NULL",
    )
    .bind(&req.email)
    .fetch_optional(&st.pool)
    .await?;
    // PBKDF2 is deliberately slow: off the async workers.
    let checked = match row {
        Some((id, stored)) => {
            let password = req.password;
            tokio::task::spawn_blocking(move || check_password(&password, &stored).then_some(id))
                .await
                .map_err(ApiError::internal)?
        }
        None => None,
    };
    let Some(user) = checked else {
        return Err(ApiError::unauthorized("wrong email or password"));
    };
    let mut conn = st.pool.acquire().await?;
    Ok(Envelope::ok(issue(&st, &mut conn, user).await?))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Refresh {
    pub refresh_token: String,
}

/// Trades a live refresh token for a new pair; the old one stops working.
pub async fn refresh(
    State(st): State<AppState>,
    Json(req): Json<Refresh>,
) -> ApiResult<Envelope<Tokens>> {
    let mut tx = st.pool.begin().await?;
    let user: Option<i64> = sqlx::query_scalar(
        "UPDATE api.sessions s SET revoked_at = now() FROM api.users u
         WHERE s.refresh_hash = $1 AND s.revoked_at IS NULL AND s.expires_at > now()
           AND u.id = s.user_id AND u.disabled_at IS NULL
         RETURNING s.user_id",
    )
    .bind(hash(&req.refresh_token))
    .fetch_optional(&mut *tx)
    .await?;
    let user = user.ok_or_else(|| ApiError::unauthorized("invalid or expired refresh token"))?;
    let tokens = issue(&st, &mut tx, user).await?;
    tx.commit().await?;
    Ok(Envelope::ok(tokens))
}

/// Ends the session of a refresh token.
pub async fn logout(
    State(st): State<AppState>,
    Json(req): Json<Refresh>,
) -> ApiResult<Envelope<bool>> {
    let done = sqlx::query(
        "UPDATE api.sessions SET revoked_at = now() WHERE refresh_hash = $1 AND revoked_at IS NULL",
    )
    .bind(hash(&req.refresh_token))
    .execute(&st.pool)
    .await?
    .rows_affected();
    Ok(Envelope::ok(done > 0))
}

#[derive(Serialize, FromRow, ToSchema)]
pub struct User {
    pub id: i64,
    pub email: String,
    pub name: String,
    pub role: String,
    pub ban: Option<String>,
    pub created_by: String,
    pub created_at: DateTime<Utc>,
    pub disabled_at: Option<DateTime<Utc>>,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewUser {
    pub email: String,
    #[serde(default)]
    pub name: String,
    /// Any but `sip_edge`, which is for SIP edges' API keys.
    pub role: Role,
    pub ban: Option<String>,
    /// At least 12 characters.
    pub password: String,
}

const COLUMNS: &str = "id, email, name, role, ban, created_by, created_at, disabled_at";

pub async fn create_user(
    State(st): State<AppState>,
    who: Principal,
    Json(req): Json<NewUser>,
) -> ApiResult<(StatusCode, Envelope<User>)> {
    who.require(Class::Users, Access::Write)?;
    let ban = who.grant(req.role, req.ban)?;
    if req.role.is_machine() {
        let why = format!(
            "{} is for API keys of machines, not people",
            req.role.as_str()
        );
        return Err(ApiError::invalid("role", why));
    }
    if req.password.chars().count() < 12 {
        return Err(ApiError::invalid("password", "at least 12 characters"));
    }
    // An address is at most 254 characters (RFC 5321), and a longer one would not fit
    // the unique index.
    if req.email.len() > 254 {
        return Err(ApiError::invalid("email", "at most 254 characters"));
    }
    let mut tx = st.pool.begin().await?;
    let user: User = sqlx::query_as(&format!(
        "INSERT INTO api.users (email, name, role, ban, password_hash, created_by)
         VALUES ($1, $2, $3, $4, $5, $6) RETURNING {COLUMNS}"
    ))
    .bind(&req.email)
    .bind(&req.name)
    .bind(req.role.as_str())
    .bind(&ban)
    .bind(hash_password(&req.password))
    .bind(&who.actor)
    .fetch_one(&mut *tx)
    .await?;
    let change = Change {
        action: "create",
        class: Class::Users,
        entity_type: "users",
        entity_id: &user.id.to_string(),
        before: None,
        after: serde_json::to_value(&user).ok(),
    };
    audit::record(&mut tx, &who, change).await?;
    tx.commit().await?;
    Ok((StatusCode::CREATED, Envelope::ok(user)))
}

pub async fn list_users(
    State(st): State<AppState>,
    who: Principal,
    Query(mut q): Query<HashMap<String, String>>,
) -> ApiResult<Envelope<Vec<User>>> {
    who.require(Class::Users, Access::Read)?;
    let (rows, meta) = crate::page::by_id(
        &st.pool,
        &mut q,
        "api.users",
        COLUMNS,
        who.tenant(),
        |r: &User| r.id,
    )
    .await?;
    Ok(Envelope::page(rows, meta))
}

/// Disables a user and ends all of their sessions.
pub async fn disable_user(
    State(st): State<AppState>,
    who: Principal,
    Path(id): Path<String>,
) -> ApiResult<Envelope<User>> {
    who.require(Class::Users, Access::Delete)?;
    let id: i64 = id.parse().map_err(|_| ApiError::not_found("user"))?;
    let mut tx = st.pool.begin().await?;
    let before: User = sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM api.users WHERE id = $1 AND ($2::text IS NULL OR ban = $2) FOR UPDATE"
    ))
    .bind(id)
    .bind(who.tenant())
    .fetch_optional(&mut *tx)
    .await?
    .ok_or_else(|| ApiError::not_found("user"))?;
    let role = Role::parse(&before.role).ok_or_else(|| ApiError::internal("stored role"))?;
    who.grant(role, before.ban.clone())?;
    let user: User = sqlx::query_as(&format!(
        "UPDATE api.users SET disabled_at = coalesce(disabled_at, now()) WHERE id = $1
         RETURNING {COLUMNS}"
    ))
    .bind(id)
    .fetch_one(&mut *tx)
    .await?;
    sqlx::query(
        "UPDATE api.sessions SET revoked_at = now() WHERE user_id = $1 AND revoked_at IS NULL",
    )
    .bind(id)
    .execute(&mut *tx)
    .await?;
    let change = Change {
        action: "disable",
        class: Class::Users,
        entity_type: "users",
        entity_id: &id.to_string(),
        before: serde_json::to_value(&before).ok(),
        after: serde_json::to_value(&user).ok(),
    };
    // Disabling a disabled user changes nothing: no audit row, no webhook event.
    if change.before != change.after {
        audit::record(&mut tx, &who, change).await?;
    }
    tx.commit().await?;
    // This instance refuses the user from its next request; the others on notice.
    st.credentials.forget_all();
    Ok(Envelope::ok(user))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_check_against_their_salted_hash_only() {
        let h = hash_password("correct horse battery");
        assert!(h.starts_with("pbkdf2-sha256$100000$"));
        assert!(check_password("correct horse battery", &h));
        assert!(!check_password("correct horse batterY", &h));
        assert!(!check_password("x", "garbage"));
        assert_ne!(h, hash_password("correct horse battery"), "salted");
    }
}
