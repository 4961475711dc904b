//! Outbound webhooks against real local receivers: one that checks every signature and
//! fails each event's first attempts with 500, one that never answers, and a port that
//! refuses connections. Deliveries are retried, logged, tenant-scoped, and survive a
//! restart of the API.

mod common;

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use common::{Reply, TestApi, ROOT};
use serde_json::{json, Value};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;
use warp_api::webhooks::signing;

/// One request as a receiver saw it.
#[derive(Clone, Debug)]
struct Seen {
    event_type: String,
    body: Value,
    signature_ok: bool,
}

#[derive(Clone, Default)]
struct Receiver {
    /// Set once the subscription is created (its secret is shown then).
    secret: Arc<OnceLock<String>>,
    seen: Arc<Mutex<Vec<Seen>>>,
    /// Attempts so far per event id.
    tries: Arc<Mutex<HashMap<String, usize>>>,
    fail_first: usize,
}

impl Receiver {
    fn seen(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }
}

async fn receive(State(r): State<Receiver>, headers: HeaderMap, body: String) -> StatusCode {
    let header = |k: &str| headers.get(k).and_then(|v| v.to_str().ok()).unwrap_or("");
    let now = chrono::Utc::now().timestamp();
    let signature_ok = r
        .secret
        .get()
        .is_some_and(|s| signing::verify(s, header(signing::HEADER), body.as_bytes(), now).is_ok());
    let event_id = header("x-warp-event-id").to_string();
    r.seen.lock().unwrap().push(Seen {
        event_type: header("x-warp-event-type").to_string(),
        body: serde_json::from_str(&body).unwrap_or(Value::Null),
        signature_ok,
    });
    let mut tries = r.tries.lock().unwrap();
    let n = tries.entry(event_id).or_default();
    *n += 1;
    match (signature_ok, *n <= r.fail_first) {
        (false, _) => StatusCode::UNAUTHORIZED,
        (true, true) => StatusCode::INTERNAL_SERVER_ERROR,
        (true, false) => StatusCode::OK,
    }
}

/// A receiver on 127.0.0.1 that fails each event's first `fail_first` attempts.
async fn receiver(fail_first: usize) -> (Receiver, String) {
    let r = Receiver {
        fail_first,
        ..Receiver::default()
    };
    let app = axum::Router::new()
        .route("/hook", post(receive))
        .with_state(r.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    (r, format!("http://{addr}/hook"))
}

/// Accepts connections and never answers.
async fn silent() -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((socket, _)) = listener.accept().await {
            held.push(socket);
        }
    });
    format!("http://{addr}/hook")
}

/// A port nothing listens on.
fn refused() -> String {
    let addr: SocketAddr = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    format!("http://{addr}/hook")
}

async fn api(max_attempts: &str) -> TestApi {
    TestApi::with_vars(&[
        ("WARP_WEBHOOK_TIMEOUT_MS", "300"),
        ("WARP_WEBHOOK_BACKOFF_MS", "20"),
        ("WARP_WEBHOOK_POLL_MS", "20"),
        ("WARP_WEBHOOK_MAX_ATTEMPTS", max_attempts),
        // The receivers are on 127.0.0.1.
        ("WARP_WEBHOOK_ALLOW_PRIVATE", "1"),
    ])
    .await
}

/// Subscribes `url` as `key`; returns (id, secret).
async fn subscribe(t: &TestApi, key: &str, url: &str, types: Value) -> (i64, String) {
    let r = t
        .post(
            "/api/v1/webhooks",
            key,
            json!({"url": url, "event_types": types}),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    let secret = r.data()["secret"].as_str().unwrap().to_string();
    assert!(secret.starts_with("whsec_"));
    (r.data()["id"].as_i64().unwrap(), secret)
}

/// The delivery log of a subscription once nothing in it is pending any more; fails
/// if it has not settled with at least `expected` deliveries within [`SETTLE`].
async fn settled(t: &TestApi, key: &str, webhook: i64, expected: usize) -> Vec<Value> {
    let deadline = std::time::Instant::now() + SETTLE;
    loop {
        let r = t
            .get(&format!("/api/v1/webhooks/{webhook}/deliveries"), key)
            .await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.body);
        let log = r.data().as_array().unwrap().clone();
        if log.len() >= expected && log.iter().all(|d| d["status"] != "pending") {
            return log;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "webhook {webhook}: {expected} deliveries not settled in {SETTLE:?}: {log:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Far more than the slowest test's retries take (three attempts of 300 ms at most,
/// backoff of tens of milliseconds, polled every 20 ms).
const SETTLE: Duration = Duration::from_secs(30);

/// Changes a trunk's CPS limit: a `trunks.update` event.
async fn update_trunk(t: &TestApi, trunk: &str, max_cps: u32) {
    let r = t
        .call(
            "PATCH",
            &format!("/api/v1/trunks/{trunk}"),
            ROOT,
            Some(json!({"max_cps": max_cps})),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
}

fn statuses(d: &Value) -> Vec<Value> {
    d["attempts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["status_code"].clone())
        .collect()
}

#[tokio::test]
async fn changes_are_delivered_signed_retried_logged_and_scoped_to_their_customer() {
    let t = api("4").await;
    t.fixture().await;
    let (staff, staff_url) = receiver(2).await;
    let types = json!([
        "trunks.*",
        "numbers.create",
        "rate_decks.*",
        "customers.update",
        "routing_snapshot.publish"
    ]);
    let (platform, secret) = subscribe(&t, ROOT, &staff_url, types).await;
    staff.secret.set(secret).unwrap();
    let c1_key = t.key("customer_admin", Some("C1")).await;
    let (c1, c1_url) = receiver(0).await;
    let types = json!(["trunks.*", "numbers.*", "customers.*"]);
    let (own, secret) = subscribe(&t, &c1_key, &c1_url, types).await;
    c1.secret.set(secret).unwrap();
    // The secret is shown once; the subscription is the customer's.
    let shown = t.get(&format!("/api/v1/webhooks/{own}"), &c1_key).await;
    assert_eq!(shown.data()["ban"], "C1");
    assert!(shown.data().get("secret").is_none());

    for trunk in ["T-C1", "T-C2"] {
        update_trunk(&t, trunk, 5).await;
    }
    t.make(
        "/api/v1/numbers",
        json!({"e164": "+13035550100", "ban": "C1"}),
    )
    .await;
    t.make(
        "/api/v1/vendors",
        json!({"id": "V3", "name": "Vendor V3", "kind": "DNIS"}),
    )
    .await;
    t.make("/api/v1/rate-decks", json!({"vendor_id": "V3"}))
        .await;
    let r = t
        .call(
            "PATCH",
            "/api/v1/customers/C2",
            ROOT,
            Some(json!({"name": "Renamed"})),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK);
    t.publish().await;

    // Every event reached the staff receiver on its third attempt, signed. Publishes
    // come from the explicit one and from the automatic ones after each change.
    let log = settled(&t, ROOT, platform, 6).await;
    let mut types: Vec<&str> = log
        .iter()
        .map(|d| d["event_type"].as_str().unwrap())
        .filter(|t| *t != "routing_snapshot.publish")
        .collect();
    types.sort();
    assert_eq!(
        types,
        [
            "customers.update",
            "numbers.create",
            "rate_decks.create",
            "trunks.update",
            "trunks.update"
        ]
    );
    assert!(log
        .iter()
        .any(|d| d["event_type"] == "routing_snapshot.publish"));
    let seen = staff.seen();
    for d in &log {
        assert_eq!(d["status"], "delivered", "{d}");
        assert_eq!(d["attempt_count"], 3);
        assert_eq!(statuses(d), [json!(500), json!(500), json!(200)]);
        assert_eq!(d["attempts"][0]["error"], "HTTP 500 Internal Server Error");
        assert!(d["next_attempt_at"].is_null());
        let tries = seen.iter().filter(|s| s.body["event_id"] == d["event_id"]);
        assert_eq!(tries.count(), 3);
    }
    assert!(seen.iter().all(|s| s.signature_ok));
    let renamed = seen
        .iter()
        .find(|s| s.event_type == "customers.update")
        .unwrap();
    let b = &renamed.body;
    assert!(b["event_id"].as_str().unwrap().starts_with("evt_"));
    assert_eq!(b["event_type"], "customers.update");
    assert!(b["timestamp"].is_string());
    assert_eq!(
        (
            &b["data"]["entity_id"],
            &b["data"]["ban"],
            &b["data"]["before"]["name"],
            &b["data"]["after"]["name"]
        ),
        (
            &json!("C2"),
            &json!("C2"),
            &json!("Customer C2"),
            &json!("Renamed")
        )
    );

    // The customer's receiver got only its own rows' events.
    let log = settled(&t, &c1_key, own, 2).await;
    let mut got: Vec<(String, String)> = c1
        .seen()
        .into_iter()
        .map(|s| (s.event_type, s.body["data"]["entity_id"].to_string()))
        .collect();
    got.sort();
    assert_eq!(
        got,
        [
            ("numbers.create".to_string(), "\"13035550100\"".to_string()),
            ("trunks.update".to_string(), "\"T-C1\"".to_string())
        ]
    );
    assert!(log.iter().all(|d| statuses(d) == [json!(200)]));

    // Another tenant's subscription and log look like nothing at all.
    let listed = t.get("/api/v1/webhooks", &c1_key).await;
    let ids: Vec<&Value> = listed
        .data()
        .as_array()
        .unwrap()
        .iter()
        .map(|w| &w["id"])
        .collect();
    assert_eq!(ids, [&json!(own)]);
    let other = t
        .get(&format!("/api/v1/webhooks/{platform}"), &c1_key)
        .await;
    assert_eq!(other.status, StatusCode::NOT_FOUND);
    let other_log = t
        .get(&format!("/api/v1/webhooks/{platform}/deliveries"), &c1_key)
        .await;
    assert_eq!(other_log.data(), &json!([]));
    let c2_key = t.key("customer_admin", Some("C2")).await;
    let r = t
        .post(
            "/api/v1/webhooks",
            &c2_key,
            json!({"url": c1_url, "event_types": ["*"], "ban": "C1"}),
        )
        .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND, "{}", r.body);
    let r = t
        .call(
            "PATCH",
            &format!("/api/v1/webhooks/{own}"),
            &c2_key,
            Some(json!({"active": false})),
        )
        .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    for (body, field) in [
        (json!({"url": "ftp://x/", "event_types": ["*"]}), "url"),
        (json!({"url": "not a url", "event_types": ["*"]}), "url"),
        (json!({"url": c1_url, "event_types": []}), "event_types"),
        (
            json!({"url": c1_url, "event_types": ["Trunks"]}),
            "event_types[0]",
        ),
    ] {
        let r = t.post("/api/v1/webhooks", &c1_key, body.clone()).await;
        assert_eq!(
            (r.status, r.field()),
            (StatusCode::UNPROCESSABLE_ENTITY, field),
            "{body}"
        );
    }
}

/// A customer's subscription to everything still gets only what the customer may read:
/// not the carrier's routing configuration that names it (overrides, exclusions).
#[tokio::test]
async fn a_customer_subscription_gets_no_platform_configuration() {
    let t = api("1").await;
    t.fixture().await;
    let c1 = t.key("customer_admin", Some("C1")).await;
    let (_receiver, url) = receiver(0).await;
    let (hook, _) = subscribe(&t, &c1, &url, json!(["*"])).await;
    t.make(
        "/api/v1/overrides",
        json!({"ban": "C1", "prefix": "1303", "vendor_id": "V2"}),
    )
    .await;
    t.make(
        "/api/v1/exclusions",
        json!({"ban": "C1", "prefix": "1212", "vendor_id": "V1"}),
    )
    .await;
    update_trunk(&t, "T-C1", 7).await;
    let delivered = settled(&t, &c1, hook, 2).await;
    let types: Vec<&str> = delivered
        .iter()
        .map(|d| d["event_type"].as_str().unwrap())
        .collect();
    // Its own creation and its trunk's change: nothing of the routing configuration.
    assert_eq!(types, ["webhooks.create", "trunks.update"]);
}

/// The event types in a subscription's log.
async fn logged(t: &TestApi, key: &str, webhook: i64) -> Vec<String> {
    settled(t, key, webhook, 0)
        .await
        .iter()
        .map(|d| d["event_type"].as_str().unwrap().to_string())
        .collect()
}

/// A user of C1 is created and disabled by its customer admin, then its trunk changes:
/// every delivery of all three is queued once the trunk's PATCH answers.
async fn user_then_trunk(t: &TestApi, admin: &str, email: &str, max_cps: u32) {
    let r = t
        .post(
            "/api/v1/users",
            admin,
            json!({"email": email, "role": "read_only", "password": "a long passphrase"}),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    let user = format!("/api/v1/users/{}", r.data()["id"]);
    let r = t.call("DELETE", &user, admin, None).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    update_trunk(t, "T-C1", max_cps).await;
}

/// A subscription receives only what the role that made it (or last changed it) may
/// read: a developer key may subscribe, but may not read users, so it gets no
/// `users.*` event (their emails and roles) however it subscribes.
#[tokio::test]
async fn a_subscription_gets_only_the_events_its_role_may_read() {
    let t = api("1").await;
    t.fixture().await;
    let dev = t.key("developer", Some("C1")).await;
    let admin = t.key("customer_admin", Some("C1")).await;
    let (dev_seen, dev_url) = receiver(0).await;
    let (_, admin_url) = receiver(0).await;
    let (everything, _) = subscribe(&t, &dev, &dev_url, json!(["*"])).await;
    let (users_only, _) = subscribe(&t, &dev, &dev_url, json!(["users.*"])).await;
    let (admins, _) = subscribe(&t, &admin, &admin_url, json!(["users.*", "trunks.*"])).await;
    user_then_trunk(&t, &admin, "ann@c1.example", 6).await;

    let got = logged(&t, &dev, everything).await;
    assert!(got.iter().any(|e| e == "trunks.update"), "{got:?}");
    assert!(!got.iter().any(|e| e.starts_with("users.")), "{got:?}");
    assert_eq!(logged(&t, &dev, users_only).await, Vec::<String>::new());
    let leaked = dev_seen.seen().into_iter().map(|s| s.body.to_string());
    assert!(!leaked.into_iter().any(|b| b.contains("ann@c1.example")));
    assert_eq!(
        logged(&t, &admin, admins).await,
        ["users.create", "users.disable", "trunks.update"]
    );

    // Whoever changes a subscription receives through it only what they may read: a
    // developer pointing the admin's at itself gets no users' events through it; the
    // admin's next change gives them back.
    let hook = format!("/api/v1/webhooks/{admins}");
    let r = t
        .call("PATCH", &hook, &dev, Some(json!({"url": dev_url})))
        .await;
    assert_eq!(r.data()["role"], "developer", "{}", r.body);
    user_then_trunk(&t, &admin, "bob@c1.example", 7).await;
    let r = t
        .call("PATCH", &hook, &admin, Some(json!({"url": admin_url})))
        .await;
    assert_eq!(r.data()["role"], "customer_admin", "{}", r.body);
    user_then_trunk(&t, &admin, "cy@c1.example", 8).await;
    assert_eq!(
        logged(&t, &admin, admins).await,
        [
            "users.create",
            "users.disable",
            "trunks.update",
            "trunks.update",
            "users.create",
            "users.disable",
            "trunks.update"
        ]
    );
    let leaked = dev_seen.seen().into_iter().map(|s| s.body.to_string());
    assert!(!leaked.into_iter().any(|b| b.contains("@c1.example")));
}

/// A delivery's payload is the changed row: its log entry is shown only to roles that
/// may read that row, and it is sent only while its subscription's role may. A
/// developer who re-points a customer admin's subscription at itself does not get the
/// users' events queued before; support does not read users' events in staff logs.
#[tokio::test]
async fn a_delivery_is_shown_and_sent_only_to_roles_that_may_read_it() {
    // Nothing is delivered until a second instance starts: what is queued stays pending.
    let t = TestApi::with_vars(&[
        ("WARP_WEBHOOK_POLL_MS", "3600000"),
        ("WARP_WEBHOOK_MAX_ATTEMPTS", "1"),
        ("WARP_WEBHOOK_ALLOW_PRIVATE", "1"),
    ])
    .await;
    t.fixture().await;
    let dev = t.key("developer", Some("C1")).await;
    let admin = t.key("customer_admin", Some("C1")).await;
    let support = t.key("support", None).await;
    let (dev_seen, dev_url) = receiver(0).await;
    let (_, admin_url) = receiver(0).await;
    let (hook, _) = subscribe(&t, &admin, &admin_url, json!(["users.*"])).await;
    let (staff_seen, staff_url) = receiver(0).await;
    let (staff, secret) = subscribe(&t, ROOT, &staff_url, json!(["users.*"])).await;
    staff_seen.secret.set(secret).unwrap();
    let r = t
        .post(
            "/api/v1/users",
            &admin,
            json!({"email": "ann@c1.example", "role": "read_only", "password": "a long passphrase"}),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);

    let log = format!("/api/v1/webhooks/{hook}/deliveries");
    let queued = t.get(&log, &admin).await;
    let queued = queued.data()[0].clone();
    assert_eq!(queued["event_type"], "users.create", "{queued}");
    assert_eq!(t.get(&log, &dev).await.data(), &json!([]));
    let one = t.get(&format!("{log}/{}", queued["id"]), &dev).await;
    assert_eq!(one.status, StatusCode::NOT_FOUND, "{}", one.body);
    let staff_log = format!("/api/v1/webhooks/{staff}/deliveries");
    assert_eq!(t.get(&staff_log, &support).await.data(), &json!([]));

    let r = t
        .call(
            "PATCH",
            &format!("/api/v1/webhooks/{hook}"),
            &dev,
            Some(json!({"url": dev_url})),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    t.state.webhooks.stop();
    let mut config = t.config.clone();
    config.webhooks.poll = Duration::from_millis(20);
    let delivering = warp_api::start(config).await.unwrap();
    assert_eq!(settled(&t, ROOT, staff, 1).await[0]["status"], "delivered");
    let d = settled(&t, &admin, hook, 1).await[0].clone();
    assert_eq!(d["status"], "failed", "{d}");
    assert_eq!(
        d["attempts"][0]["error"],
        "refused: role developer may not read this event"
    );
    assert!(dev_seen.seen().is_empty(), "{:?}", dev_seen.seen());
    delivering.webhooks.stop();
}

/// A subscription stays with the customer it was made for (or with staff): moved, its
/// delivery log (every customer's events, for a staff one) would be read by the
/// customer it went to, and what is still queued would be sent to that customer.
#[tokio::test]
async fn a_subscription_cannot_be_moved_to_another_customer() {
    // Nothing is delivered: what is queued stays pending.
    let t = TestApi::with_vars(&[
        ("WARP_WEBHOOK_POLL_MS", "3600000"),
        ("WARP_WEBHOOK_ALLOW_PRIVATE", "1"),
    ])
    .await;
    t.fixture().await;
    let c1 = t.key("customer_admin", Some("C1")).await;
    let c2 = t.key("customer_admin", Some("C2")).await;
    let (staff, _) = subscribe(&t, ROOT, &refused(), json!(["users.*"])).await;
    let (own, _) = subscribe(&t, &c1, &refused(), json!(["users.*"])).await;
    let r = t
        .post(
            "/api/v1/users",
            &c1,
            json!({"email": "ann@c1.example", "role": "read_only", "password": "a long passphrase"}),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);

    for (hook, ban) in [(staff, json!("C2")), (own, json!("C2")), (own, json!(null))] {
        let r = t
            .call(
                "PATCH",
                &format!("/api/v1/webhooks/{hook}"),
                ROOT,
                Some(json!({"ban": ban, "url": refused()})),
            )
            .await;
        assert_eq!(
            (r.status, r.field()),
            (StatusCode::UNPROCESSABLE_ENTITY, "ban"),
            "{hook} to {ban}: {}",
            r.body
        );
    }
    let bans: Vec<Option<String>> = sqlx::query_scalar("SELECT ban FROM api.webhooks ORDER BY id")
        .fetch_all(&t.pool)
        .await
        .unwrap();
    assert_eq!(bans, [None, Some("C1".to_string())]);
    for hook in [staff, own] {
        let log = t
            .get(&format!("/api/v1/webhooks/{hook}/deliveries"), &c2)
            .await;
        assert_eq!(log.data(), &json!([]), "{}", log.body);
    }
    // Its other fields still change.
    let r = t
        .call(
            "PATCH",
            &format!("/api/v1/webhooks/{staff}"),
            ROOT,
            Some(json!({"description": "ops"})),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
}

/// Subscriptions stored before their role was: staff ones get super_admin's (the one
/// staff role that writes webhooks), a customer's developer's (the least of the
/// customer roles that write them).
#[tokio::test]
async fn subscriptions_older_than_their_role_get_the_least_a_writer_may_read() {
    let t = api("1").await;
    t.fixture().await;
    sqlx::raw_sql(
        "ALTER TABLE api.webhooks DROP COLUMN role;
         INSERT INTO api.webhooks (ban, url, event_types, secret)
         VALUES (NULL, 'https://staff.example/', '{*}', 's'),
                ('C1', 'https://c1.example/', '{*}', 's');",
    )
    .execute(&t.pool)
    .await
    .unwrap();
    warp_api::schema::ensure(&t.pool).await.unwrap();
    let roles: Vec<(Option<String>, String)> =
        sqlx::query_as("SELECT ban, role FROM api.webhooks ORDER BY id")
            .fetch_all(&t.pool)
            .await
            .unwrap();
    assert_eq!(
        roles,
        [
            (None, "super_admin".to_string()),
            (Some("C1".to_string()), "developer".to_string())
        ]
    );
}

/// Every event type can be subscribed to by name, E911 addresses' (a digit in the
/// entity) included.
#[tokio::test]
async fn an_entity_with_a_digit_in_its_name_can_be_subscribed_to() {
    let t = api("1").await;
    t.fixture().await;
    let c1 = t.key("customer_admin", Some("C1")).await;
    let (receiver, url) = receiver(0).await;
    let (hook, secret) = subscribe(&t, &c1, &url, json!(["e911_addresses.*"])).await;
    receiver.secret.set(secret).unwrap();
    let r = t
        .post(
            "/api/v1/e911-addresses",
            &c1,
            json!({"line1": "1 Main St", "city": "Denver", "state": "CO", "postal_code": "80202"}),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    let log = settled(&t, &c1, hook, 1).await;
    assert_eq!(log[0]["status"], "delivered", "{log:?}");
    let seen = receiver.seen();
    assert_eq!(seen.len(), 1, "{seen:?}");
    assert_eq!(seen[0].event_type, "e911_addresses.create");
    assert!(seen[0].signature_ok);
}

#[tokio::test]
async fn timeouts_and_refused_connections_are_retried_then_marked_failed() {
    let t = api("3").await;
    t.fixture().await;
    let types = json!(["customers.update"]);
    let (hanging, _) = subscribe(&t, ROOT, &silent().await, types.clone()).await;
    let (closed, _) = subscribe(&t, ROOT, &refused(), types).await;
    let r = t
        .call(
            "PATCH",
            "/api/v1/customers/C1",
            ROOT,
            Some(json!({"name": "X"})),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK);
    for (webhook, error) in [(hanging, "timed out"), (closed, "connect: ")] {
        let log = settled(&t, ROOT, webhook, 1).await;
        let d = &log[0];
        assert_eq!(
            (&d["status"], &d["attempt_count"]),
            (&json!("failed"), &json!(3)),
            "{d}"
        );
        assert!(d["next_attempt_at"].is_null());
        for a in d["attempts"].as_array().unwrap() {
            assert!(a["status_code"].is_null(), "{a}");
            assert!(a["error"].as_str().unwrap().starts_with(error), "{a}");
        }
    }
}

#[tokio::test]
async fn a_receiver_that_never_answers_does_not_hold_up_the_others() {
    let t = TestApi::with_vars(&[
        ("WARP_WEBHOOK_TIMEOUT_MS", "5000"),
        ("WARP_WEBHOOK_POLL_MS", "20"),
        ("WARP_WEBHOOK_MAX_ATTEMPTS", "1"),
        ("WARP_WEBHOOK_ALLOW_PRIVATE", "1"),
    ])
    .await;
    t.fixture().await;
    // More events for the silent receiver than one claim takes, each attempt waiting
    // out the whole timeout.
    subscribe(&t, ROOT, &silent().await, json!(["trunks.update"])).await;
    for cps in 1..=40 {
        update_trunk(&t, "T-C1", cps).await;
    }
    let (healthy, url) = receiver(0).await;
    let (_, secret) = subscribe(&t, ROOT, &url, json!(["customers.update"])).await;
    healthy.secret.set(secret).unwrap();
    let started = std::time::Instant::now();
    let r = t
        .call(
            "PATCH",
            "/api/v1/customers/C1",
            ROOT,
            Some(json!({"name": "X"})),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK);
    while healthy.seen().is_empty() {
        assert!(
            started.elapsed() < Duration::from_secs(2),
            "the healthy receiver waited on the silent one's attempts"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(healthy.seen()[0].signature_ok);
}

#[tokio::test]
async fn destinations_in_the_apis_own_network_are_refused_unless_allowed() {
    // The operator has not allowed private destinations (the default).
    let t = TestApi::with_vars(&[
        ("WARP_WEBHOOK_POLL_MS", "20"),
        ("WARP_WEBHOOK_MAX_ATTEMPTS", "1"),
    ])
    .await;
    t.fixture().await;
    let (r, by_address) = receiver(0).await;
    // An address in the URL is refused when it is registered...
    let refused = t
        .post(
            "/api/v1/webhooks",
            ROOT,
            json!({"url": by_address, "event_types": ["trunks.update"]}),
        )
        .await;
    assert_eq!(
        (refused.status, refused.field()),
        (StatusCode::UNPROCESSABLE_ENTITY, "url"),
        "{}",
        refused.body
    );
    assert!(
        refused
            .body
            .to_string()
            .contains("127.0.0.1 is not a public address"),
        "{}",
        refused.body
    );
    // ... and at delivery, if it was registered while the operator allowed it.
    let (literal,): (i64,) = sqlx::query_as(
        "INSERT INTO api.webhooks (url, event_types, secret, role)
         VALUES ($1, ARRAY['trunks.update'], 'whsec_allowed_then', 'super_admin') RETURNING id",
    )
    .bind(&by_address)
    .fetch_one(&t.pool)
    .await
    .unwrap();
    // A name is checked when it is resolved, at each delivery.
    let by_name = by_address.replace("127.0.0.1", "localhost");
    let (named, _) = subscribe(&t, ROOT, &by_name, json!(["trunks.update"])).await;
    update_trunk(&t, "T-C1", 4).await;
    for (webhook, error) in [
        (literal, "refused: 127.0.0.1 is not a public address"),
        (named, "refused: localhost has no public address"),
    ] {
        let log = settled(&t, ROOT, webhook, 1).await;
        assert_eq!(log[0]["status"], "failed", "{}", log[0]);
        let said = log[0]["attempts"][0]["error"].as_str().unwrap();
        assert!(said.contains(error), "{said}");
    }
    assert!(r.seen().is_empty(), "{:?}", r.seen());
}

/// A customer may subscribe any host name (it is checked when resolved); one that
/// resolves into the API's own network is refused without telling the customer the
/// addresses it resolved to, which would map that network's names.
#[tokio::test]
async fn a_refused_name_does_not_show_its_subscriber_where_it_resolved() {
    let t = TestApi::with_vars(&[
        ("WARP_WEBHOOK_POLL_MS", "20"),
        ("WARP_WEBHOOK_MAX_ATTEMPTS", "1"),
    ])
    .await;
    t.fixture().await;
    let c1 = t.key("customer_admin", Some("C1")).await;
    let (r, url) = receiver(0).await;
    let url = url.replace("127.0.0.1", "localhost");
    let (hook, _) = subscribe(&t, &c1, &url, json!(["trunks.update"])).await;
    update_trunk(&t, "T-C1", 4).await;
    let log = settled(&t, &c1, hook, 1).await;
    assert_eq!(log[0]["status"], "failed", "{}", log[0]);
    let said = log[0]["attempts"][0]["error"].as_str().unwrap();
    assert!(
        said.ends_with("refused: localhost has no public address"),
        "{said}"
    );
    assert!(
        !said.contains("127.0.0.1") && !said.contains("::1"),
        "{said}"
    );
    assert!(r.seen().is_empty(), "{:?}", r.seen());
}

/// An IPv6 address that carries a private IPv4 one (NAT64, 6to4, mapped) reaches that
/// IPv4 host through a translator or relay: refused like the IPv4 address itself.
#[tokio::test]
async fn ipv6_addresses_carrying_a_private_ipv4_one_are_refused() {
    let t = TestApi::start().await;
    for host in [
        "[64:ff9b::a00:1]",
        "[64:ff9b::a9fe:a9fe]",
        "[64:ff9b::7f00:1]",
        "[2002:a00:1::1]",
        "[2002:7f00:1::1]",
        "[::ffff:0:a00:1]",
    ] {
        refused_host(&t, host).await;
    }
    // The public IPv4 address 8.8.8.8 behind NAT64 stays reachable.
    subscribe(&t, ROOT, "http://[64:ff9b::808:808]/hook", json!(["*"])).await;
}

/// A subscription to `http://{host}/hook`, refused on its url: the answer.
async fn refused_host(t: &TestApi, host: &str) -> Reply {
    let url = format!("http://{host}/hook");
    let r = t
        .post(
            "/api/v1/webhooks",
            ROOT,
            json!({"url": url, "event_types": ["*"]}),
        )
        .await;
    assert_eq!(
        (r.status, r.field()),
        (StatusCode::UNPROCESSABLE_ENTITY, "url"),
        "{host}: {}",
        r.body
    );
    r
}

/// Every block IANA's special-purpose registries mark not globally reachable is refused,
/// named in the answer; the public addresses beside it are not.
#[tokio::test]
async fn special_purpose_addresses_are_refused_with_their_block_named() {
    let t = TestApi::start().await;
    for (host, block) in [
        ("0.0.0.1", "this network"),
        ("100.64.0.1", "shared address space"),
        ("192.0.0.9", "IETF protocol assignments"),
        ("192.0.2.1", "TEST-NET-1"),
        ("192.88.99.1", "6to4 relay anycast"),
        ("198.18.0.1", "benchmarking"),
        ("198.19.255.254", "benchmarking"),
        ("198.51.100.1", "TEST-NET-2"),
        ("203.0.113.9", "TEST-NET-3"),
        ("224.0.0.1", "multicast"),
        ("240.0.0.1", "reserved"),
        ("255.255.255.255", "limited broadcast"),
        ("[::8.8.8.8]", "IPv4-compatible"),
        ("[::ffff:198.18.0.1]", "benchmarking"),
        ("[64:ff9b::c000:9]", "IETF protocol assignments"),
        ("[64:ff9b:1::808:808]", "local-use IPv4/IPv6 translation"),
        ("[2002:c612:1::1]", "benchmarking"),
        ("[100::1]", "discard-only"),
        ("[2001:2::1]", "benchmarking"),
        ("[2001:db8::1]", "documentation"),
        ("[3fff::1]", "documentation"),
        ("[5f00::1]", "segment routing"),
        ("[fc00::1]", "unique-local"),
        ("[fe80::1]", "link-local"),
        ("[4000::1]", "not global unicast"),
    ] {
        let r = refused_host(&t, host).await;
        assert!(r.body.to_string().contains(block), "{host}: {}", r.body);
    }
    for host in ["198.20.0.1", "198.17.255.254", "192.0.1.1", "[2001:db9::1]"] {
        subscribe(&t, ROOT, &format!("http://{host}/hook"), json!(["*"])).await;
    }
}

/// The ids a listing answers with.
async fn listed_ids(t: &TestApi, path: &str) -> Vec<i64> {
    let r = t.get(path, ROOT).await;
    assert_eq!(r.status, StatusCode::OK, "{path}: {}", r.body);
    let rows = r.data().as_array().unwrap().clone();
    rows.iter().map(|w| w["id"].as_i64().unwrap()).collect()
}

/// A filter value no subscription or delivery can hold is a 400 naming the filter, as
/// the CDR filters answer, not an empty list that reads as "none"; a known one is
/// taken in any case.
#[tokio::test]
async fn unknown_filter_values_are_a_400_naming_the_filter() {
    let t = api("1").await;
    t.fixture().await;
    // Its one delivery fails: nothing listens there.
    let url = refused();
    let (on, _) = subscribe(&t, ROOT, &url, json!(["trunks.update"])).await;
    let (off, _) = subscribe(&t, ROOT, &url, json!(["trunks.update"])).await;
    let r = t
        .call(
            "PATCH",
            &format!("/api/v1/webhooks/{off}"),
            ROOT,
            Some(json!({"active": false})),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    update_trunk(&t, "T-C1", 4).await;
    settled(&t, ROOT, on, 1).await;
    assert_eq!(listed_ids(&t, "/api/v1/webhooks?active=false").await, [off]);
    assert_eq!(listed_ids(&t, "/api/v1/webhooks?active=TRUE").await, [on]);
    let deliveries = format!("/api/v1/webhooks/{on}/deliveries");
    assert_eq!(
        listed_ids(&t, &format!("{deliveries}?status=Failed"))
            .await
            .len(),
        1
    );
    assert!(listed_ids(&t, &format!("{deliveries}?status=delivered"))
        .await
        .is_empty());
    for (path, field) in [
        ("/api/v1/webhooks?active=maybe".to_string(), "active"),
        ("/api/v1/webhooks?active=1".to_string(), "active"),
        (format!("{deliveries}?status=bogus"), "status"),
        (format!("{deliveries}?status=deliverd"), "status"),
    ] {
        let r = t.get(&path, ROOT).await;
        assert_eq!(
            (r.status, r.code(), r.field()),
            (StatusCode::BAD_REQUEST, "INVALID_QUERY", field),
            "{path}: {}",
            r.body
        );
    }
}

#[tokio::test]
async fn pending_deliveries_survive_a_restart_of_the_api() {
    // The first instance polls once at start and then not for an hour: what it queues
    // stays pending in PostgreSQL.
    let t = TestApi::with_vars(&[
        ("WARP_WEBHOOK_POLL_MS", "3600000"),
        ("WARP_WEBHOOK_BACKOFF_MS", "20"),
        ("WARP_WEBHOOK_ALLOW_PRIVATE", "1"),
    ])
    .await;
    t.fixture().await;
    let (r, url) = receiver(1).await;
    let (id, secret) = subscribe(&t, ROOT, &url, json!(["trunks.update"])).await;
    r.secret.set(secret).unwrap();
    update_trunk(&t, "T-C1", 3).await;
    let log = t
        .get(&format!("/api/v1/webhooks/{id}/deliveries"), ROOT)
        .await;
    assert_eq!(log.data()[0]["status"], "pending");
    t.state.webhooks.stop();

    let mut config = t.config.clone();
    config.webhooks.poll = Duration::from_millis(20);
    let restarted = warp_api::start(config).await.unwrap();
    let log = settled(&t, ROOT, id, 1).await;
    assert_eq!(log[0]["status"], "delivered");
    assert_eq!(statuses(&log[0]), [json!(500), json!(200)]);
    let seen = r.seen();
    assert_eq!(seen.len(), 2);
    assert!(seen
        .iter()
        .all(|s| s.signature_ok && s.event_type == "trunks.update"));
    restarted.webhooks.stop();
}

#[tokio::test]
async fn a_number_moved_by_staff_shows_neither_customer_the_others_side() {
    let t = api("1").await;
    t.fixture().await;
    let (c1, c2) = (
        t.key("customer_admin", Some("C1")).await,
        t.key("customer_admin", Some("C2")).await,
    );
    let (_r1, url1) = receiver(0).await;
    let (_r2, url2) = receiver(0).await;
    let (hook1, _) = subscribe(&t, &c1, &url1, json!(["numbers.*"])).await;
    let (hook2, _) = subscribe(&t, &c2, &url2, json!(["numbers.*"])).await;
    t.make(
        "/api/v1/numbers",
        json!({"e164": "+13035550100", "ban": "C1", "trunk_id": "T-C1", "cnam": "ONE INC"}),
    )
    .await;
    let r = t
        .call(
            "PATCH",
            "/api/v1/numbers/13035550100",
            ROOT,
            Some(json!({"ban": "C2", "trunk_id": "T-C2", "cnam": "TWO LLC"})),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);

    let old = settled(&t, &c1, hook1, 2).await;
    let new = settled(&t, &c2, hook2, 1).await;
    let update = |log: &[Value]| {
        log.iter()
            .find(|d| d["event_type"] == "numbers.update")
            .map(|d| d["payload"]["data"].clone())
            .expect("a numbers.update event")
    };
    // The former customer sees its row go, not where it went.
    let (old, new) = (update(&old), update(&new));
    assert_eq!(old["ban"], "C1", "{old}");
    assert_eq!(old["before"]["trunk_id"], "T-C1", "{old}");
    assert_eq!(old["after"], Value::Null, "{old}");
    for leak in ["C2", "TWO LLC"] {
        assert!(!old.to_string().contains(leak), "{leak} in {old}");
    }
    // The new one sees it arrive, not where it came from.
    assert_eq!(new["ban"], "C2", "{new}");
    assert_eq!(new["after"]["trunk_id"], "T-C2", "{new}");
    assert_eq!(new["before"], Value::Null, "{new}");
    for leak in ["T-C1", "ONE INC"] {
        assert!(!new.to_string().contains(leak), "{leak} in {new}");
    }
    // Staff see both sides.
    let (_r3, url3) = receiver(0).await;
    let (staff, _) = subscribe(&t, ROOT, &url3, json!(["numbers.*"])).await;
    let r = t
        .call(
            "PATCH",
            "/api/v1/numbers/13035550100",
            ROOT,
            Some(json!({"ban": "C1", "trunk_id": "T-C1"})),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let all = update(&settled(&t, ROOT, staff, 1).await);
    assert_eq!(all["before"]["ban"], "C2", "{all}");
    assert_eq!(all["after"]["ban"], "C1", "{all}");
}
