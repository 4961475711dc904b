//! Who is calling: the bearer key, its role and (for customer roles) its customer.

pub mod cache;
pub mod jwt;
pub mod keys;
pub mod roles;
pub mod sessions;

use crate::error::{ApiError, ApiResult};
use crate::middleware::Caller;
use crate::state::AppState;
use axum::extract::{ConnectInfo, FromRequestParts};
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;
use axum::http::HeaderMap;
use cache::Grant;
use roles::{Access, Class, Role};
use std::net::SocketAddr;

/// The authenticated caller of one request.
#[derive(Debug, Clone)]
pub struct Principal {
    /// `api-key:ID`, or `bootstrap` for WARP_BOOTSTRAP_API_KEY.
    pub actor: String,
    pub role: Role,
    /// Set exactly for customer roles: the one customer they may see.
    pub ban: Option<String>,
    /// The peer address, for the audit log.
    pub origin: String,
}

impl Principal {
    /// Refuses what the role's permissions do not cover.
    pub fn require(&self, class: Class, access: Access) -> ApiResult<()> {
        if self.role.allows(class, access) {
            Ok(())
        } else {
            Err(ApiError::forbidden(format!(
                "role {} may not {access:?} {class:?} resources",
                self.role.as_str()
            )))
        }
    }

    /// The customer a customer-role caller is confined to.
    pub fn tenant(&self) -> Option<&str> {
        self.ban.as_deref()
    }

    /// Another customer's data looks the same as data that does not exist.
    pub fn check_ban(&self, ban: &str, what: &str) -> ApiResult<()> {
        match self.tenant() {
            Some(own) if own != ban => Err(ApiError::not_found(what)),
            _ => Ok(()),
        }
    }
}

impl Principal {
    /// Checks that this caller may hand out `role` (for API keys and users) and
    /// returns the customer the new credential belongs to.
    pub fn grant(&self, role: Role, ban: Option<String>) -> ApiResult<Option<String>> {
        if !self.role.may_grant(role) {
            return Err(ApiError::forbidden(format!(
                "a {} may not grant {}",
                self.role.as_str(),
                role.as_str()
            ))
            .field("role"));
        }
        let ban = ban.or_else(|| self.ban.clone());
        match (&ban, role.is_customer()) {
            (None, true) => return Err(ApiError::invalid("ban", "customer roles need a ban")),
            (Some(_), false) => {
                return Err(ApiError::invalid(
                    "ban",
                    "staff and machine roles belong to no customer",
                ))
            }
            (Some(b), true) => self.check_ban(b, "customer")?,
            (None, false) => {}
        }
        Ok(ban)
    }
}

/// A request's authentication, kept in its extensions by the first to ask (the
/// idempotency layer, then the handler): the credential is checked once per request.
#[derive(Clone)]
struct Authenticated(Result<Principal, ApiError>);

impl FromRequestParts<AppState> for Principal {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> ApiResult<Self> {
        if let Some(Authenticated(known)) = parts.extensions.get::<Authenticated>() {
            return known.clone();
        }
        let outcome = authenticate(parts, state).await;
        parts.extensions.insert(Authenticated(outcome.clone()));
        outcome
    }
}

async fn authenticate(parts: &Parts, state: &AppState) -> ApiResult<Principal> {
    let token = bearer(&parts.headers)
        .ok_or_else(|| ApiError::unauthorized("send an API key as Authorization: Bearer KEY"))?;
    let origin = parts
        .extensions
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0.ip().to_string())
        .unwrap_or_else(|| "local".into());
    if jwt::looks_like_jwt(token) {
        return sessions::principal(state, token, origin).await;
    }
    // Hashed already by the rate limit's layer, unless a test calls without it.
    let hash = match parts.extensions.get::<Caller>() {
        Some(Caller(known)) => known.clone(),
        None => keys::hash(token),
    };
    if state.bootstrap_key_hash.as_deref() == Some(hash.as_str()) {
        return Ok(Principal {
            actor: "bootstrap".into(),
            role: Role::SuperAdmin,
            ban: None,
            origin,
        });
    }
    let grant = match state.credentials.get(&hash) {
        Some(grant) => grant,
        None => key_grant(state, hash).await?,
    };
    Ok(Principal::from_grant(grant, origin))
}

/// Reads the grant of the key whose secret hashes to `hash`, and caches it.
async fn key_grant(state: &AppState, hash: String) -> ApiResult<Grant> {
    let generation = state.credentials.generation();
    let row: Option<(i64, String, Option<String>)> =
        sqlx::query_as("SELECT id, role, ban FROM api.keys WHERE hash = $1 AND revoked_at IS NULL")
            .bind(&hash)
            .fetch_optional(&state.pool)
            .await?;
    let (id, role, ban) =
        row.ok_or_else(|| ApiError::unauthorized("unknown or revoked API key"))?;
    let grant = Grant {
        actor: format!("api-key:{id}"),
        role: Role::parse(&role).ok_or_else(|| ApiError::internal("stored role"))?,
        ban,
    };
    state.credentials.put(hash, grant.clone(), generation);
    Ok(grant)
}

impl Principal {
    pub(crate) fn from_grant(g: Grant, origin: String) -> Principal {
        Principal {
            actor: g.actor,
            role: g.role,
            ban: g.ban,
            origin,
        }
    }
}

/// The token of `Authorization: Bearer TOKEN`; the scheme's name in any case (RFC 9110
/// 11.1: `bearer` and `BEARER` are the same scheme).
pub fn bearer(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.trim_start().split_once(' ')?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then_some(token)
}
