//! The route table: system endpoints, then /api/v1 resource by resource.

use crate::audit;
use crate::auth::{keys, sessions};
use crate::cdrs;
use crate::crud::mount;
use crate::envelope::Envelope;
use crate::error::ApiError;
use crate::middleware;
use crate::openapi::{Api, Doc};
use crate::resources::accounts::*;
use crate::resources::deck_upload::{self, DeckUpload, UploadResult};
use crate::resources::rate_decks::*;
use crate::resources::routing_config::*;
use crate::resources::vendors::*;
use crate::resources::{cnam, e911};
use crate::routing;
use crate::state::AppState;
use crate::{idempotency, ratelimit, webhooks};
use axum::extract::{DefaultBodyLimit, State};
use axum::http::StatusCode;
use axum::response::Html;
use axum::routing::{delete, get, post, put};
use axum::Router;
use serde::Serialize;
use utoipa::openapi::{HttpMethod, OpenApi};
use utoipa::ToSchema;

const V1: &str = "/api/v1";
/// Whole rate decks arrive in one request, up to `UPLOAD_LIMIT`.
const UPLOAD: &str = "/api/v1/rate-decks/{id}/upload";
const UPLOAD_LIMIT: usize = 256 * 1024 * 1024;
/// Every other body (axum's default, stated).
const BODY_LIMIT: usize = 2 * 1024 * 1024;

/// The most a body may carry on `route` (a route pattern, as `MatchedPath` holds it):
/// what the idempotency layer, which reads bodies before the handlers, may read too.
pub fn body_limit(route: &str) -> usize {
    if route == UPLOAD {
        UPLOAD_LIMIT
    } else {
        BODY_LIMIT
    }
}

#[derive(Serialize, ToSchema)]
pub struct Health {
    pub status: &'static str,
    /// Generation of the snapshot simulation routes on, if any.
    pub generation: Option<u64>,
}

async fn health(State(st): State<AppState>) -> Envelope<Health> {
    Envelope::ok(Health {
        status: "ok",
        generation: st.publisher.current().map(|s| s.generation()),
    })
}

/// Ready when the database answers and a snapshot is loaded.
async fn ready(State(st): State<AppState>) -> Result<Envelope<Health>, ApiError> {
    let unavailable = |m: &str| ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "NOT_READY", m);
    sqlx::query("SELECT 1")
        .execute(&st.pool)
        .await
        .map_err(|_| unavailable("database unreachable"))?;
    let generation = st.publisher.current().map(|s| s.generation());
    generation.ok_or_else(|| unavailable("no routing snapshot"))?;
    Ok(Envelope::ok(Health {
        status: "ready",
        generation,
    }))
}

async fn metrics(State(st): State<AppState>) -> String {
    st.metrics.render()
}

/// Swagger UI over /api/v1/openapi.json (its scripts come from a CDN).
async fn docs() -> Html<&'static str> {
    Html(
        r##"<!doctype html><html><head><meta charset="utf-8"><title>WARP API</title>
<link rel="stylesheet" href="https://unpkg.com/swagger-ui-dist@5/swagger-ui.css"></head>
<body><div id="ui"></div>
<script src="https://unpkg.com/swagger-ui-dist@5/swagger-ui-bundle.js"></script>
<script>SwaggerUIBundle({url: "/api/v1/openapi.json", dom_id: "#ui"});</script>
</body></html>"##,
    )
}

fn system(api: Api) -> Api {
    api.route(
        HttpMethod::Get,
        "/health",
        get(health),
        Doc::new("System", "Liveness").returns::<Health>().public(),
    )
    .route(
        HttpMethod::Get,
        "/ready",
        get(ready),
        Doc::new("System", "Readiness: database and snapshot")
            .returns::<Health>()
            .public(),
    )
    .route(
        HttpMethod::Get,
        "/metrics",
        get(metrics),
        Doc::new("System", "Prometheus metrics")
            .raw("text/plain")
            .public(),
    )
    .route(
        HttpMethod::Get,
        &format!("{V1}/docs"),
        get(docs),
        Doc::new("System", "Swagger UI").raw("text/html").public(),
    )
    .route(
        HttpMethod::Get,
        &format!("{V1}/audit-log"),
        get(audit::list),
        Doc::new("Audit", "Who changed what, when, from where; newest first")
            .returns_list::<audit::Entry>()
            .query(audit::FILTERS),
    )
}

fn keys_routes(api: Api) -> Api {
    let base = format!("{V1}/api-keys");
    api.route(
        HttpMethod::Post,
        &base,
        post(keys::create),
        Doc::new("API keys", "Create a key (its secret is shown only here)")
            .body::<keys::NewKey>()
            .returns::<keys::IssuedKey>()
            .created(),
    )
    .route(
        HttpMethod::Get,
        &base,
        get(keys::list),
        Doc::new("API keys", "List keys").returns_list::<keys::ApiKey>(),
    )
    .route(
        HttpMethod::Delete,
        &format!("{base}/{{id}}"),
        delete(keys::revoke),
        Doc::new("API keys", "Revoke a key").returns::<keys::ApiKey>(),
    )
    .route(
        HttpMethod::Post,
        &format!("{base}/{{id}}/rotate"),
        post(keys::rotate),
        Doc::new(
            "API keys",
            "Rotate a key: new secret, old one stops working",
        )
        .returns::<keys::IssuedKey>(),
    )
}

fn session_routes(api: Api) -> Api {
    let auth = format!("{V1}/auth");
    let users = format!("{V1}/users");
    api.route(
        HttpMethod::Post,
        &format!("{auth}/login"),
        post(sessions::login),
        Doc::new(
            "Sessions",
            "Sign in: a 1-hour access JWT and a 30-day refresh token",
        )
        .body::<sessions::Login>()
        .returns::<sessions::Tokens>()
        .public(),
    )
    .route(
        HttpMethod::Post,
        &format!("{auth}/refresh"),
        post(sessions::refresh),
        Doc::new("Sessions", "Trade a refresh token for a new pair")
            .body::<sessions::Refresh>()
            .returns::<sessions::Tokens>()
            .public(),
    )
    .route(
        HttpMethod::Post,
        &format!("{auth}/logout"),
        post(sessions::logout),
        Doc::new("Sessions", "End the session of a refresh token")
            .body::<sessions::Refresh>()
            .public(),
    )
    .route(
        HttpMethod::Post,
        &users,
        post(sessions::create_user),
        Doc::new("Users", "Create a user who signs in")
            .body::<sessions::NewUser>()
            .returns::<sessions::User>()
            .created(),
    )
    .route(
        HttpMethod::Get,
        &users,
        get(sessions::list_users),
        Doc::new("Users", "List users").returns_list::<sessions::User>(),
    )
    .route(
        HttpMethod::Delete,
        &format!("{users}/{{id}}"),
        delete(sessions::disable_user),
        Doc::new("Users", "Disable a user and end their sessions").returns::<sessions::User>(),
    )
}

fn resources(api: Api) -> Api {
    let api = mount::<Customer>(api, &format!("{V1}/customers"));
    let api = mount::<CustomerPartition>(api, &format!("{V1}/customers/{{parent}}/partitions"));
    let api = mount::<Trunk>(api, &format!("{V1}/trunks"));
    let api = mount::<TrunkIp>(api, &format!("{V1}/trunks/{{parent}}/ips"));
    let api = mount::<TrunkCredential>(api, &format!("{V1}/trunks/{{parent}}/credentials"));
    let api = mount::<PhoneNumber>(api, &format!("{V1}/numbers"));
    let api = mount::<Vendor>(api, &format!("{V1}/vendors"));
    let api = mount::<Gateway>(api, &format!("{V1}/vendors/{{parent}}/gateways"));
    let api = mount::<RatePlan>(api, &format!("{V1}/rate-plans"));
    let api = mount::<RateDeck>(api, &format!("{V1}/rate-decks"));
    let api = mount::<RateDeckRow>(api, &format!("{V1}/rate-decks/{{parent}}/rows"));
    let api = mount::<Partition>(api, &format!("{V1}/partitions"));
    let api = mount::<PartitionRoute>(api, &format!("{V1}/partitions/{{parent}}/routes"));
    let api = mount::<Override>(api, &format!("{V1}/overrides"));
    let api = mount::<Exclusion>(api, &format!("{V1}/exclusions"));
    let api = mount::<DnoNumber>(api, &format!("{V1}/dno"));
    let api = webhooks::mount(api, &format!("{V1}/webhooks"));
    api.route(
        HttpMethod::Post,
        UPLOAD,
        post(deck_upload::upload).layer(DefaultBodyLimit::max(UPLOAD_LIMIT)),
        Doc::new(
            "rate_deck",
            "Upload a whole deck: JSON {rows: [...]} or text/csv; ?mode=append|replace. \
             Any bad row rejects the deck with every bad line listed.",
        )
        .body::<DeckUpload>()
        .text_body("text/csv")
        .query(&["mode"])
        .returns::<UploadResult>(),
    )
    .route(
        HttpMethod::Get,
        &format!("{V1}/customers/{{id}}/cdrs"),
        get(cdrs::list),
        Doc::new("CDRs", "A customer's rated calls, filtered, cursor-paged")
            .returns_list::<cdrs::Cdr>()
            .query(cdrs::FILTERS)
            .closed(cdrs::FILTER_VALUES),
    )
}

/// E911 addresses, and a number's E911 address and CNAM.
fn number_services(api: Api) -> Api {
    let addresses = format!("{V1}/e911-addresses");
    let api = mount::<e911::E911Address>(api, &addresses);
    let e911 = format!("{V1}/numbers/{{id}}/e911");
    let cnam = format!("{V1}/numbers/{{id}}/cnam");
    api.route(
        HttpMethod::Post,
        &format!("{addresses}/validate"),
        post(e911::validate),
        Doc::new(
            "e911_address",
            "Check an address and get its normal form; nothing is stored",
        )
        .body::<e911::E911AddressInput>()
        .returns::<e911::E911AddressInput>(),
    )
    .route(
        HttpMethod::Get,
        &e911,
        get(e911::get),
        Doc::new("number", "A number's E911 address").returns::<e911::NumberE911>(),
    )
    .route(
        HttpMethod::Put,
        &e911,
        put(e911::provision),
        Doc::new(
            "number",
            "Provision a validated address of the number's customer for 911",
        )
        .body::<e911::Provision>()
        .returns::<e911::NumberE911>(),
    )
    .route(
        HttpMethod::Delete,
        &e911,
        delete(e911::unprovision),
        Doc::new("number", "Remove the number's E911 address").returns::<e911::NumberE911>(),
    )
    .route(
        HttpMethod::Get,
        &cnam,
        get(cnam::get),
        Doc::new("number", "A number's CNAM display name").returns::<cnam::NumberCnam>(),
    )
    .route(
        HttpMethod::Put,
        &cnam,
        put(cnam::set),
        Doc::new(
            "number",
            "Set (or with null remove) a number's CNAM display name",
        )
        .body::<cnam::SetCnam>()
        .returns::<cnam::NumberCnam>(),
    )
}

fn routing_routes(api: Api) -> Api {
    api.route(
        HttpMethod::Post,
        &format!("{V1}/routing/simulate"),
        post(routing::simulate),
        Doc::new(
            "Routing",
            "Route a call on the published snapshot (same engine as SIP)",
        )
        .body::<routing::SimulateRequest>()
        .returns::<routing::Simulation>(),
    )
    .route(
        HttpMethod::Get,
        &format!("{V1}/routing/lcr"),
        get(routing::lcr),
        Doc::new("Routing", "LCR for a call given as query parameters")
            .required_query(&["account_ban", "dnis"])
            .query(&["ani", "lrn", "at", "max_results"])
            .returns::<routing::Simulation>(),
    )
    .route(
        HttpMethod::Post,
        &format!("{V1}/routing/publish"),
        post(routing::publish),
        Doc::new(
            "Routing",
            "Compile and publish a new snapshot generation now",
        )
        .returns::<routing::Published>(),
    )
    .route(
        HttpMethod::Get,
        &format!("{V1}/routing/snapshot"),
        get(routing::snapshot),
        Doc::new(
            "Routing",
            "The current snapshot file, for super admin and sip_edge keys only (it holds \
             the trunks' ha1); ETag = \"generation.payload hash\", If-None-Match gives 304; \
             Warp-Snapshot-Format names the file's format version on every answer, and a \
             request naming the format the edge reads in the same header is refused a file \
             of another format (406) without its body",
        )
        .raw("application/octet-stream")
        .also(
            "304",
            "If-None-Match names the current snapshot (or a newer one)",
        )
        .also(
            "406",
            "The file is of another format than the request's Warp-Snapshot-Format \
             (SNAPSHOT_FORMAT, naming both; the answer's ETag and Warp-Snapshot-Format name \
             the file, none of which is sent)",
        ),
    )
}

/// The application and its OpenAPI document.
pub fn app(state: AppState) -> (Router, OpenApi) {
    let api = system(Api::default());
    let api = routing_routes(resources(session_routes(keys_routes(api))));
    let api = number_services(api);
    let (router, doc) = api.finish(&format!("{V1}/openapi.json"));
    let router = router
        .fallback(|| async {
            ApiError::new(StatusCode::NOT_FOUND, "ROUTE_NOT_FOUND", "no such endpoint")
        })
        .method_not_allowed_fallback(|| async {
            ApiError::new(
                StatusCode::METHOD_NOT_ALLOWED,
                "METHOD_NOT_ALLOWED",
                "method not allowed here",
            )
        })
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            idempotency::idempotency,
        ))
        .layer(DefaultBodyLimit::max(BODY_LIMIT))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            ratelimit::rate_limit,
        ))
        .layer(axum::middleware::from_fn(middleware::catch_panic))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            middleware::observe,
        ))
        .with_state(state);
    (router, doc)
}
