//! A warp-api on a private PostgreSQL per test, called in-process with `oneshot`.
#![allow(dead_code)]

use axum::body::Body;
use axum::http::{Request, StatusCode};
use axum::Router;
use http_body_util::BodyExt;
use serde_json::{json, Value};
use sqlx::PgPool;
use tower::ServiceExt;
use warp_api::config::Config;
use warp_api::state::AppState;
use warp_testkit::Postgres;

pub const ROOT: &str = "root-secret-for-tests";

pub struct TestApi {
    pub app: Router,
    pub state: AppState,
    /// What it was started with (another instance on the same database starts with it).
    pub config: Config,
    pub pool: PgPool,
    pub dir: tempfile::TempDir,
    /// Dropping it stops the server: keep it last.
    pub pg: Postgres,
}

pub struct Reply {
    pub status: StatusCode,
    pub headers: axum::http::HeaderMap,
    pub body: Value,
    pub bytes: Vec<u8>,
}

impl Reply {
    pub fn data(&self) -> &Value {
        &self.body["data"]
    }
    /// The first error's code.
    pub fn code(&self) -> &str {
        self.body["errors"][0]["code"].as_str().unwrap_or("")
    }
    pub fn field(&self) -> &str {
        self.body["errors"][0]["field"].as_str().unwrap_or("")
    }
}

impl TestApi {
    pub async fn start() -> Self {
        Self::with(|_| None).await
    }

    /// Starts with extra environment (`WARP_...`) answered by `env`.
    /// [`TestApi::with`] these settings, as (variable, value).
    pub async fn with_vars(vars: &[(&str, &str)]) -> Self {
        Self::with(|k| {
            vars.iter()
                .find(|(name, _)| *name == k)
                .map(|(_, value)| value.to_string())
        })
        .await
    }

    pub async fn with(env: impl Fn(&str) -> Option<String>) -> Self {
        let pg = Postgres::start().expect("start a private PostgreSQL");
        let dir = tempfile::tempdir().unwrap();
        let snap = dir.path().join("routing.snap").display().to_string();
        let url = pg.url.clone();
        let config = Config::from_lookup(|k| {
            env(k).or_else(|| match k {
                "WARP_DATABASE_URL" => Some(url.clone()),
                "WARP_SNAPSHOT" => Some(snap.clone()),
                "WARP_BOOTSTRAP_API_KEY" => Some(ROOT.into()),
                "WARP_PUBLISH_DEBOUNCE_MS" => Some("100".into()),
                _ => None,
            })
        })
        .unwrap();
        let state = warp_api::start(config.clone())
            .await
            .expect("start the API");
        let (app, _) = warp_api::routes::app(state.clone());
        TestApi {
            app,
            config,
            pool: state.pool.clone(),
            state,
            dir,
            pg,
        }
    }

    pub async fn raw(&self, req: Request<Body>) -> Reply {
        let res = self.app.clone().oneshot(req).await.unwrap();
        let status = res.status();
        let headers = res.headers().clone();
        let bytes = res.into_body().collect().await.unwrap().to_bytes().to_vec();
        let body = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        Reply {
            status,
            headers,
            body,
            bytes,
        }
    }

    /// A JSON call with `key` as the bearer token.
    pub async fn call(&self, method: &str, path: &str, key: &str, body: Option<Value>) -> Reply {
        let mut req = Request::builder()
            .method(method)
            .uri(path)
            .header("authorization", format!("Bearer {key}"));
        let body = match body {
            Some(b) => {
                req = req.header("content-type", "application/json");
                Body::from(b.to_string())
            }
            None => Body::empty(),
        };
        self.raw(req.body(body).unwrap()).await
    }

    pub async fn get(&self, path: &str, key: &str) -> Reply {
        self.call("GET", path, key, None).await
    }

    pub async fn post(&self, path: &str, key: &str, body: Value) -> Reply {
        self.call("POST", path, key, Some(body)).await
    }

    /// POSTs as the root key and insists on 201.
    pub async fn make(&self, path: &str, body: Value) -> Value {
        let r = self.post(path, ROOT, body).await;
        assert_eq!(r.status, StatusCode::CREATED, "{path}: {}", r.body);
        r.data().clone()
    }

    /// A new key of `role` (for customer roles, of customer `ban`); returns its secret.
    pub async fn key(&self, role: &str, ban: Option<&str>) -> String {
        let d = self
            .make(
                "/api/v1/api-keys",
                json!({"name": role, "role": role, "ban": ban}),
            )
            .await;
        d["secret"].as_str().unwrap().to_string()
    }

    /// Two customers on one plan, each with a trunk; vendors cheap (V1) and dear (V2)
    /// offered through one partition. Every zone is priced so any call finds a route.
    pub async fn fixture(&self) {
        self.make("/api/v1/rate-plans", json!({"id": "retail"}))
            .await;
        for ban in ["C1", "C2"] {
            self.make(
                "/api/v1/customers",
                json!({"ban": ban, "name": format!("Customer {ban}"), "rate_plan": "retail",
                       "credit_limit": "1000.50", "billing_model": "prepaid"}),
            )
            .await;
            self.make(
                "/api/v1/trunks",
                json!({"id": format!("T-{ban}"), "ban": ban, "max_cps": 10}),
            )
            .await;
        }
        self.make("/api/v1/partitions", json!({"id": "P1", "name": "main"}))
            .await;
        for (v, rate) in [("V1", "0.004"), ("V2", "0.006")] {
            self.make(
                "/api/v1/vendors",
                json!({"id": v, "name": format!("Vendor {v}"), "kind": "DNIS"}),
            )
            .await;
            self.make(
                &format!("/api/v1/vendors/{v}/gateways"),
                json!({"priority": 1, "dialstring": format!("sip:{{number}}@{v}.example.net")}),
            )
            .await;
            let deck = self
                .make("/api/v1/rate-decks", json!({"vendor_id": v}))
                .await;
            self.deck_row(deck["id"].as_i64().unwrap(), "1", rate).await;
            let pos = if v == "V1" { 1 } else { 2 };
            self.make(
                "/api/v1/partitions/P1/routes",
                json!({"vendor_id": v, "position": pos}),
            )
            .await;
        }
        let deck = self
            .make("/api/v1/rate-decks", json!({"rate_plan": "retail"}))
            .await;
        self.deck_row(deck["id"].as_i64().unwrap(), "1", "0.01")
            .await;
        for ban in ["C1", "C2"] {
            self.make(
                &format!("/api/v1/customers/{ban}/partitions"),
                json!({"partition_id": "P1", "priority": 1}),
            )
            .await;
        }
    }

    /// One row pricing every zone at `rate` from 2020 on.
    pub async fn deck_row(&self, deck: i64, prefix: &str, rate: &str) -> Value {
        self.make(
            &format!("/api/v1/rate-decks/{deck}/rows"),
            json!({"prefix": prefix, "effective_from": "2020-01-01T00:00:00Z",
                   "interstate": rate, "intrastate": rate, "local": rate, "zone1": rate,
                   "tollfree": rate, "international": rate}),
        )
        .await
    }

    pub async fn publish(&self) -> u64 {
        let r = self.post("/api/v1/routing/publish", ROOT, json!({})).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.body);
        r.data()["generation"].as_u64().unwrap()
    }

    /// `routing_snapshot.publish` events queued (nothing delivers them here).
    pub async fn publish_events(&self) -> i64 {
        sqlx::query_scalar(
            "SELECT count(*) FROM api.webhook_deliveries
             WHERE event_type = 'routing_snapshot.publish'",
        )
        .fetch_one(&self.pool)
        .await
        .unwrap()
    }

    /// Sessions of this database waiting for a lock.
    async fn lock_waiters(&self) -> i64 {
        sqlx::query_scalar(
            "SELECT count(*) FROM pg_stat_activity
             WHERE wait_event_type = 'Lock' AND datname = current_database()",
        )
        .fetch_one(&self.pool)
        .await
        .unwrap()
    }

    pub async fn until_waiters(&self, n: i64) {
        for _ in 0..500 {
            if self.lock_waiters().await >= n {
                return;
            }
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
        panic!("{n} sessions never waited for the lock");
    }

    /// Runs `first`, then `second` once `first` waits for the row `lock` locks in another
    /// transaction, and lets both go once `second` waits too: `first` goes first.
    pub async fn queued(
        &self,
        lock: &str,
        first: impl std::future::Future<Output = Reply>,
        second: impl std::future::Future<Output = Reply>,
    ) -> (Reply, Reply) {
        let mut holder = self.pool.begin().await.unwrap();
        sqlx::query(lock).execute(&mut *holder).await.unwrap();
        let second = async {
            self.until_waiters(1).await;
            second.await
        };
        let release = async {
            self.until_waiters(2).await;
            holder.commit().await.unwrap();
        };
        let (a, b, ()) = tokio::join!(first, second, release);
        (a, b)
    }

    pub async fn simulate(&self, ban: &str, dnis: &str) -> Reply {
        self.post(
            "/api/v1/routing/simulate",
            ROOT,
            json!({"customer_ban": ban, "ani": "+13035551234", "dnis": dnis}),
        )
        .await
    }
}

/// Vendor ids of a simulation's routes, in order.
pub fn vendors(r: &Reply) -> Vec<String> {
    r.data()["decision"]["routes"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|r| r["vendor_id"].as_str().unwrap_or("").to_string())
                .collect()
        })
        .unwrap_or_default()
}

/// Waits until the wall-clock minute, the window of the rate limits shared through
/// Redis, has at least 5 s left.
pub async fn well_inside_a_minute() {
    let second = || {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs()
            % 60
    };
    while second() > 55 {
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
}
