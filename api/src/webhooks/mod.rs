//! Outbound webhooks: tenant-scoped subscriptions (URL, event types, a secret shown
//! once), one event per audited change (`events`), HMAC-SHA256 signatures with a
//! timestamp (`signing`), delivery with retries from a background task and a delivery
//! log (`delivery`).

mod address;
pub mod delivery;
mod events;
pub mod signing;

pub use events::emit;

use crate::audit::{self, Change};
use crate::auth::roles::{Access, Class};
use crate::auth::Principal;
use crate::config::{Config, WebhookPolicy};
use crate::crud::{self, mount_changes, mount_reads, NoInput, Resource, Tenant};
use crate::envelope::Envelope;
use crate::error::{ApiError, ApiResult};
use crate::extract::{parse_json, RawBody};
use crate::openapi::{Api, Doc};
use crate::state::AppState;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::post;
use chrono::{DateTime, Utc};
use rand::RngCore;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use sqlx::FromRow;
use utoipa::openapi::HttpMethod;
use utoipa::ToSchema;

#[derive(Serialize, FromRow, ToSchema)]
pub struct Webhook {
    pub id: i64,
    /// The customer whose events it receives; none (staff only): every event.
    pub ban: Option<String>,
    pub url: String,
    /// `entity.action` (`trunks.update`), `entity.*` or `*`.
    pub event_types: Vec<String>,
    pub description: String,
    pub active: bool,
    /// The role whose read access bounds the events it receives: its creator's, then
    /// its last updater's (a developer's gets no `users.*`).
    pub role: String,
    pub created_at: DateTime<Utc>,
}

#[derive(Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct WebhookInput {
    /// http or https.
    pub url: String,
    pub event_types: Vec<String>,
    pub ban: Option<String>,
    pub description: Option<String>,
    pub active: Option<bool>,
}

/// A new subscription with its signing secret: the only time the secret is shown.
#[derive(Serialize, ToSchema)]
pub struct IssuedWebhook {
    #[serde(flatten)]
    pub webhook: Webhook,
    /// Key of the HMAC-SHA256 in `X-Warp-Signature`. Not retrievable later.
    pub secret: String,
}

impl Resource for Webhook {
    const NAME: &'static str = "webhook";
    const TABLE: &'static str = "api.webhooks";
    const ENTITY: &'static str = "webhooks";
    const KEY: &'static str = "id";
    const KEY_TYPE: &'static str = "bigint";
    const TENANT: Tenant = Tenant::Column("ban");
    const SELECT: &'static str =
        "r.id, r.ban, r.url, r.event_types, r.description, r.active, r.role, r.created_at";
    const FILTERS: &'static [&'static str] = &["ban", "active"];
    const FILTER_VALUES: &'static [(&'static str, &'static [&'static str])] =
        &[("active", &["true", "false"])];
    const CLASS: Class = Class::Technical;
    const ROUTING: bool = false;
    type Row = Webhook;
    type Input = WebhookInput;

    fn prepare_in(
        config: &Config,
        who: &Principal,
        input: &mut Map<String, Value>,
        given: &[String],
    ) -> ApiResult<()> {
        // Reached by PATCH only (`create` is its own handler). A subscription's delivery
        // log (its customer's events, every customer's for a staff one) and its secret
        // are whose it was made for: moved, another customer would read that log and be
        // sent what is still queued.
        if given.iter().any(|g| g == "ban") {
            return Err(ApiError::invalid(
                "ban",
                "a subscription's customer cannot be changed: delete it and subscribe anew",
            ));
        }
        let url = input.get("url").and_then(Value::as_str).unwrap_or("");
        let types: Vec<&str> = input
            .get("event_types")
            .and_then(Value::as_array)
            .map(|a| a.iter().filter_map(Value::as_str).collect())
            .unwrap_or_default();
        check(url, &types, &config.webhooks)?;
        // Whoever changes a subscription (its URL above all) receives through it only
        // what they may read themselves.
        input.insert("role".into(), who.role.as_str().into());
        Ok(())
    }
}

fn check(url: &str, event_types: &[&str], policy: &WebhookPolicy) -> ApiResult<()> {
    let parsed = reqwest::Url::parse(url).map_err(|e| ApiError::invalid("url", e.to_string()))?;
    if !matches!(parsed.scheme(), "http" | "https") || parsed.host().is_none() || url.len() > 2048 {
        return Err(ApiError::invalid(
            "url",
            "an http(s) URL with a host, at most 2048 characters",
        ));
    }
    // A host name is checked at each delivery, when it is resolved.
    if let Some((ip, why)) = address::private_literal(url).filter(|_| !policy.allow_private) {
        return Err(ApiError::invalid(
            "url",
            format!(
                "{ip} is not a public address ({why}): the API posts only to globally reachable ones \
                 (WARP_WEBHOOK_ALLOW_PRIVATE=1 allows it)"
            ),
        ));
    }
    if event_types.is_empty() {
        return Err(ApiError::invalid("event_types", "at least one event type"));
    }
    // Entity names are table names, digits included (`e911_addresses`).
    let word = |w: &str| {
        !w.is_empty()
            && w.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
    };
    for (i, t) in event_types.iter().enumerate() {
        let ok = *t == "*"
            || t.split_once('.')
                .is_some_and(|(e, a)| word(e) && (a == "*" || word(a)));
        if !ok {
            return Err(ApiError::invalid(
                &format!("event_types[{i}]"),
                format!("{t:?}: expected entity.action, entity.* or *"),
            ));
        }
    }
    Ok(())
}

async fn create(
    State(st): State<AppState>,
    who: Principal,
    RawBody(body): RawBody,
) -> ApiResult<(StatusCode, Envelope<IssuedWebhook>)> {
    who.require(Webhook::CLASS, Access::Write)?;
    let input: WebhookInput = parse_json(&body)?;
    let types: Vec<&str> = input.event_types.iter().map(String::as_str).collect();
    check(&input.url, &types, &st.config.webhooks)?;
    let ban = input.ban.or_else(|| who.tenant().map(str::to_string));
    let mut bytes = [0u8; 32];
    rand::thread_rng().fill_bytes(&mut bytes);
    let secret = format!("whsec_{}", hex::encode(bytes));
    let mut tx = st.pool.begin().await?;
    let (id,): (i64,) = sqlx::query_as(
        "INSERT INTO api.webhooks (ban, url, event_types, description, active, secret, role)
         VALUES ($1, $2, $3, coalesce($4, ''), coalesce($5, true), $6, $7) RETURNING id",
    )
    .bind(&ban)
    .bind(&input.url)
    .bind(&input.event_types)
    .bind(&input.description)
    .bind(input.active)
    .bind(&secret)
    .bind(who.role.as_str())
    .fetch_one(&mut *tx)
    .await?;
    let id = id.to_string();
    // Read back through the caller's view: another customer's BAN rolls back.
    let webhook = crud::fetch::<Webhook>(&mut tx, &who, None, &id)
        .await
        .map_err(|e| match e.status {
            StatusCode::NOT_FOUND => ApiError::not_found("customer").field("ban"),
            _ => e,
        })?;
    let change = Change {
        action: "create",
        class: Webhook::CLASS,
        entity_type: Webhook::ENTITY,
        entity_id: &id,
        before: None,
        after: serde_json::to_value(&webhook).ok(),
    };
    audit::record(&mut tx, &who, change).await?;
    tx.commit().await?;
    Ok((
        StatusCode::CREATED,
        Envelope::ok(IssuedWebhook { webhook, secret }),
    ))
}

/// One event for one subscription, with every attempt made.
#[derive(Serialize, FromRow, ToSchema)]
pub struct Delivery {
    pub id: i64,
    pub webhook_id: i64,
    pub event_id: String,
    pub event_type: String,
    /// pending, delivered or failed (attempts spent).
    pub status: String,
    pub attempt_count: i32,
    /// `{at, status_code, error, ms}` per attempt, oldest first.
    #[schema(value_type = Vec<Object>)]
    pub attempts: Value,
    /// When the next attempt is due (pending only).
    pub next_attempt_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    /// The body sent.
    #[schema(value_type = Object)]
    pub payload: Value,
}

impl Resource for Delivery {
    const NAME: &'static str = "webhook_delivery";
    const TABLE: &'static str = "api.webhook_deliveries";
    const KEY: &'static str = "id";
    const KEY_TYPE: &'static str = "bigint";
    const PARENT: Option<&'static str> = Some("webhook_id");
    const PARENT_TYPE: &'static str = "bigint";
    const TENANT: Tenant =
        Tenant::Expr("(SELECT w.ban FROM api.webhooks w WHERE w.id = r.webhook_id)");
    // A payload is the changed row: only who may read its class sees it.
    const READERS: Option<&'static str> = Some("readers");
    const SELECT: &'static str = "r.id, r.webhook_id, r.event_id, r.event_type, r.status,
        jsonb_array_length(r.attempts) AS attempt_count, r.attempts, r.next_attempt_at,
        r.created_at, r.payload::jsonb AS payload";
    const FILTERS: &'static [&'static str] = &["status", "event_type"];
    // The CHECK on api.webhook_deliveries.status.
    const FILTER_VALUES: &'static [(&'static str, &'static [&'static str])] =
        &[("status", &["pending", "delivered", "failed"])];
    const CLASS: Class = Class::Technical;
    type Row = Delivery;
    type Input = NoInput;
}

/// Subscriptions under `base`, their delivery logs under `base/{parent}/deliveries`.
pub fn mount(api: Api, base: &str) -> Api {
    let api = api.route(
        HttpMethod::Post,
        base,
        post(create),
        Doc::new(
            Webhook::NAME,
            "Subscribe a URL to events (its signing secret is shown only here)",
        )
        .body::<WebhookInput>()
        .returns::<IssuedWebhook>()
        .created(),
    );
    let api = mount_changes::<Webhook>(mount_reads::<Webhook>(api, base), base);
    mount_reads::<Delivery>(api, &format!("{base}/{{parent}}/deliveries"))
}
