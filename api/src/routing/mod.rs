//! Routing endpoints: simulation and LCR on the published snapshot (the same engine and
//! file the SIP path uses), forced publishing, and the snapshot pull for SIP nodes.

mod changes;
pub mod generations;
pub mod notices;
pub mod publisher;
mod pull;

pub use pull::snapshot;

use crate::auth::roles::{Access, Class};
use crate::auth::Principal;
use crate::envelope::Envelope;
use crate::error::{ApiError, ApiResult};
use crate::extract::{Json, Query};
use crate::state::AppState;
use axum::extract::State;
use axum::http::StatusCode;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::ToSchema;
use warp_core::model::MAX_RESULTS_MAX;
use warp_core::{Number, Reject, RouteRequest};

/// One call to route, as the SIP path would see it.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SimulateRequest {
    pub customer_ban: String,
    /// Calling number in any accepted form; absent or invalid = indeterminate.
    pub ani: Option<String>,
    /// Dialled number in any accepted form.
    pub dnis: String,
    /// An LRN from a dip, used when the snapshot has none.
    pub lrn: Option<String>,
    /// When the call happens (default now): picks rates, windows and overrides.
    pub at: Option<DateTime<Utc>>,
    /// Overrides the customer's `max_results`; the same range, 1–100.
    pub max_results: Option<u32>,
}

/// `GET /routing/lcr` parameters: the same call as query parameters.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LcrQuery {
    pub account_ban: String,
    pub dnis: String,
    pub ani: Option<String>,
    pub lrn: Option<String>,
    pub at: Option<DateTime<Utc>>,
    pub max_results: Option<u32>,
}

impl From<LcrQuery> for SimulateRequest {
    fn from(q: LcrQuery) -> Self {
        SimulateRequest {
            customer_ban: q.account_ban,
            ani: q.ani,
            dnis: q.dnis,
            lrn: q.lrn,
            at: q.at,
            max_results: q.max_results,
        }
    }
}

/// The engine's answer: a decision with ordered routes, or the reason there is none
/// and the SIP reply the call would get.
#[derive(Serialize, ToSchema)]
pub struct Simulation {
    pub generation: u64,
    #[schema(value_type = Option<Object>)]
    pub decision: Option<Value>,
    #[schema(value_type = Option<Object>)]
    pub reject: Option<Value>,
}

fn invalid_number(field: &str, e: impl std::fmt::Display) -> ApiError {
    ApiError::new(
        StatusCode::UNPROCESSABLE_ENTITY,
        "INVALID_PHONE_NUMBER",
        e.to_string(),
    )
    .field(field)
}

fn route(st: &AppState, req: SimulateRequest) -> ApiResult<Simulation> {
    // The engine reads 0 as 1: a caller asking for none would be shown one.
    if req
        .max_results
        .is_some_and(|n| !(1..=MAX_RESULTS_MAX).contains(&n))
    {
        let why = format!("max_results is 1 to {MAX_RESULTS_MAX}");
        return Err(ApiError::invalid("max_results", why));
    }
    let snapshot = st.publisher.current().ok_or_else(|| {
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "NO_SNAPSHOT",
            "no routing snapshot has been published yet",
        )
    })?;
    let lrn = req
        .lrn
        .as_deref()
        .map(Number::parse)
        .transpose()
        .map_err(|e| invalid_number("lrn", e))?;
    let call = RouteRequest {
        ban: &req.customer_ban,
        ani: req.ani.as_deref(),
        dnis: &req.dnis,
        lrn,
        at: req.at.unwrap_or_else(Utc::now),
        max_results: req.max_results,
    };
    st.metrics.simulated();
    let generation = snapshot.generation();
    match snapshot.route(&call) {
        Ok(d) => Ok(Simulation {
            generation,
            decision: Some(serde_json::to_value(&d).map_err(ApiError::internal)?),
            reject: None,
        }),
        Err(Reject::InvalidDnis(e)) => Err(invalid_number("dnis", e)),
        Err(r) => {
            let (code, reason) = r.sip();
            let mut v = serde_json::to_value(&r).map_err(ApiError::internal)?;
            v["message"] = r.to_string().into();
            v["sip_code"] = code.into();
            v["sip_reason"] = reason.into();
            Ok(Simulation {
                generation,
                decision: None,
                reject: Some(v),
            })
        }
    }
}

pub async fn simulate(
    State(st): State<AppState>,
    who: Principal,
    Json(req): Json<SimulateRequest>,
) -> ApiResult<Envelope<Simulation>> {
    who.require(Class::Routing, Access::Read)?;
    Ok(Envelope::ok(route(&st, req)?))
}

pub async fn lcr(
    State(st): State<AppState>,
    who: Principal,
    Query(q): Query<LcrQuery>,
) -> ApiResult<Envelope<Simulation>> {
    who.require(Class::Routing, Access::Read)?;
    Ok(Envelope::ok(route(&st, q.into())?))
}

#[derive(Serialize, ToSchema)]
pub struct Published {
    pub generation: u64,
    pub path: String,
}

pub async fn publish(State(st): State<AppState>, who: Principal) -> ApiResult<Envelope<Published>> {
    who.require(Class::Routing, Access::Write)?;
    // Stored data that makes no snapshot is a state to fix, not a server fault.
    let generation = st.publisher.publish(&who).await.map_err(|e| match e {
        publisher::PublishError::Compile(_)
        | publisher::PublishError::Load(warp_db::DbError::Invalid { .. }) => {
            ApiError::new(StatusCode::CONFLICT, "COMPILE_FAILED", e.to_string())
        }
        other => ApiError::internal(other),
    })?;
    Ok(Envelope::ok(Published {
        generation,
        path: st.publisher.path().display().to_string(),
    }))
}
