//! The permission matrix (every role against every endpoint class), tenant isolation,
//! and the key lifecycle.

mod common;

use axum::http::StatusCode;
use common::{TestApi, ROOT};
use serde_json::json;

/// Endpoint classes, in the order of the matrix columns below.
const CLASSES: [&str; 21] = [
    "platform read",
    "platform write",
    "account read",
    "account write",
    "technical read",
    "technical write",
    "technical delete",
    "cdr read",
    "routing read",
    "routing write",
    "snapshot pull",
    "key write",
    "user write",
    "audit read",
    "webhook read",
    "webhook write",
    "webhook delete",
    "e911 write",
    "e911 provision",
    "cnam read",
    "cnam write",
];

/// The product requirements' matrix, spelled out per class (Y = allowed), and the SIP
/// edges' machine role: the snapshot pull alone.
const MATRIX: [(&str, &str); 8] = [
    ("super_admin", "YYYYYYYYYYYYYYYYYYYYY"),
    ("support", "Y.Y.Y..YY....YY....Y."),
    ("sales", "..YY................."),
    ("customer_admin", "..Y.YYYY...YY.YYYYYYY"),
    ("developer", "..Y.YY.Y...Y..YY.YYYY"),
    ("billing", "..Y.................."),
    ("read_only", "..Y.Y..Y......Y....Y."),
    ("sip_edge", "..........Y.........."),
];

/// A number of C1's, for the E911 and CNAM classes.
const NUMBER: &str = "13035550199";

fn address() -> serde_json::Value {
    json!({"ban": "C1", "line1": "1 Main St", "city": "Denver", "state": "CO",
           "postal_code": "80202"})
}

async fn attempt(t: &TestApi, key: &str, class: &str, tag: &str) -> StatusCode {
    let r = match class {
        "platform read" => t.get("/api/v1/vendors", key).await,
        "platform write" => {
            t.post(
                "/api/v1/partitions",
                key,
                json!({"id": format!("P-{tag}"), "name": tag}),
            )
            .await
        }
        "account read" => t.get("/api/v1/customers/C1", key).await,
        "account write" => {
            t.post(
                "/api/v1/customers",
                key,
                json!({"ban": format!("B-{tag}"), "name": tag, "rate_plan": "retail"}),
            )
            .await
        }
        "technical read" => t.get("/api/v1/trunks/T-C1", key).await,
        "technical write" => {
            t.post(
                "/api/v1/trunks",
                key,
                json!({"id": format!("T-{tag}"), "ban": "C1"}),
            )
            .await
        }
        "technical delete" => {
            t.make(
                "/api/v1/trunks",
                json!({"id": format!("D-{tag}"), "ban": "C1"}),
            )
            .await;
            t.call("DELETE", &format!("/api/v1/trunks/D-{tag}"), key, None)
                .await
        }
        "cdr read" => t.get("/api/v1/customers/C1/cdrs", key).await,
        "routing read" => {
            t.post(
                "/api/v1/routing/simulate",
                key,
                json!({"customer_ban": "C1", "dnis": "+12125556789"}),
            )
            .await
        }
        "routing write" => t.post("/api/v1/routing/publish", key, json!({})).await,
        // The snapshot carries the trunks' ha1: support may simulate, not pull it.
        "snapshot pull" => t.get("/api/v1/routing/snapshot", key).await,
        "key write" => {
            t.post(
                "/api/v1/api-keys",
                key,
                json!({"role": "read_only", "ban": "C1"}),
            )
            .await
        }
        "user write" => {
            let email = format!("{tag}@c1.example");
            let body = json!({"email": email, "role": "read_only", "ban": "C1",
                              "password": "a long passphrase"});
            t.post("/api/v1/users", key, body).await
        }
        "audit read" => t.get("/api/v1/audit-log", key).await,
        "webhook read" => t.get("/api/v1/webhooks", key).await,
        "webhook write" => {
            // A documentation address (RFC 5737): registrable, never reached.
            let body = json!({"url": "http://receiver.invalid:9/", "event_types": ["trunks.*"],
                              "ban": "C1"});
            t.post("/api/v1/webhooks", key, body).await
        }
        "webhook delete" => {
            let hook = t
                .make(
                    "/api/v1/webhooks",
                    json!({"url": "http://receiver.invalid:9/", "event_types": ["*"], "ban": "C1"}),
                )
                .await;
            let path = format!("/api/v1/webhooks/{}", hook["id"]);
            t.call("DELETE", &path, key, None).await
        }
        "e911 write" => t.post("/api/v1/e911-addresses", key, address()).await,
        "e911 provision" => {
            let id = t.make("/api/v1/e911-addresses", address()).await["id"].clone();
            let body = Some(json!({"address_id": id}));
            t.call("PUT", &format!("/api/v1/numbers/{NUMBER}/e911"), key, body)
                .await
        }
        "cnam read" => t.get(&format!("/api/v1/numbers/{NUMBER}/cnam"), key).await,
        "cnam write" => {
            let body = Some(json!({"cnam": "ACME"}));
            t.call("PUT", &format!("/api/v1/numbers/{NUMBER}/cnam"), key, body)
                .await
        }
        other => panic!("unknown class {other}"),
    };
    assert!(!r.status.is_server_error(), "{class}: {}", r.body);
    if r.status == StatusCode::FORBIDDEN {
        assert_eq!(r.code(), "FORBIDDEN");
    }
    r.status
}

#[tokio::test]
async fn every_role_against_every_endpoint_class() {
    let t = TestApi::start().await;
    t.fixture().await;
    t.publish().await;
    t.make("/api/v1/numbers", json!({"e164": NUMBER, "ban": "C1"}))
        .await;
    for (role, row) in MATRIX {
        let staff = matches!(role, "super_admin" | "support" | "sales" | "sip_edge");
        let ban = (!staff).then_some("C1");
        let key = t.key(role, ban).await;
        for (class, allowed) in CLASSES.iter().zip(row.chars()) {
            let status = attempt(&t, &key, class, role).await;
            if allowed == 'Y' {
                assert!(
                    status.is_success(),
                    "{role} should be allowed {class}: {status}"
                );
            } else {
                assert_eq!(
                    status,
                    StatusCode::FORBIDDEN,
                    "{role} should be denied {class}"
                );
            }
        }
    }
}

#[tokio::test]
async fn a_customer_key_never_sees_or_changes_another_customers_data() {
    let t = TestApi::start().await;
    t.fixture().await;
    t.make(
        "/api/v1/numbers",
        json!({"e164": "+12125550100", "ban": "C2", "status": "assigned"}),
    )
    .await;
    let c1 = t.key("customer_admin", Some("C1")).await;
    let denied = [
        ("GET", "/api/v1/customers/C2", None),
        ("GET", "/api/v1/trunks/T-C2", None),
        ("PATCH", "/api/v1/trunks/T-C2", Some(json!({"max_cps": 1}))),
        ("DELETE", "/api/v1/trunks/T-C2", None),
        (
            "POST",
            "/api/v1/trunks",
            Some(json!({"id": "T-X", "ban": "C2"})),
        ),
        (
            "POST",
            "/api/v1/trunks/T-C2/ips",
            Some(json!({"addr": "192.0.2.1"})),
        ),
        (
            "POST",
            "/api/v1/trunks/T-C2/credentials",
            Some(json!({"username": "x", "password": "12345678"})),
        ),
        ("GET", "/api/v1/numbers/12125550100", None),
        (
            "PATCH",
            "/api/v1/numbers/12125550100",
            Some(json!({"cnam": "MINE"})),
        ),
        ("GET", "/api/v1/numbers/12125550100/cnam", None),
        (
            "PUT",
            "/api/v1/numbers/12125550100/cnam",
            Some(json!({"cnam": "MINE"})),
        ),
        ("GET", "/api/v1/numbers/12125550100/e911", None),
        ("DELETE", "/api/v1/numbers/12125550100/e911", None),
        ("GET", "/api/v1/customers/C2/cdrs", None),
        (
            "POST",
            "/api/v1/api-keys",
            Some(json!({"role": "read_only", "ban": "C2"})),
        ),
    ];
    for (method, path, body) in denied {
        let r = t.call(method, path, &c1, body.clone()).await;
        assert_eq!(
            r.status,
            StatusCode::NOT_FOUND,
            "{method} {path} {body:?}: {}",
            r.body
        );
    }
    // A 404 is not enough: C2's rows are as they were, and nothing was made for C2.
    let untouched: (Option<i32>, i64, i64, i64, Option<String>, i64) = sqlx::query_as(
        "SELECT (SELECT max_cps FROM trunks WHERE id = 'T-C2'),
                (SELECT count(*) FROM trunks WHERE id = 'T-X'),
                (SELECT count(*) FROM trunk_ips WHERE trunk_id = 'T-C2'),
                (SELECT count(*) FROM trunk_credentials WHERE trunk_id = 'T-C2'),
                (SELECT cnam FROM numbers WHERE e164 = '12125550100'),
                (SELECT count(*) FROM api.keys WHERE ban = 'C2')",
    )
    .fetch_one(&t.pool)
    .await
    .unwrap();
    assert_eq!(untouched, (Some(10), 0, 0, 0, None, 0));
    // Lists hold only the caller's own rows.
    let customers = t.get("/api/v1/customers", &c1).await;
    assert_eq!(customers.data().as_array().unwrap().len(), 1);
    assert_eq!(customers.data()[0]["ban"], "C1");
    let trunks = t.get("/api/v1/trunks", &c1).await;
    let ids: Vec<_> = trunks
        .data()
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x["id"].clone())
        .collect();
    assert_eq!(ids, [json!("T-C1")]);
    assert_eq!(t.get("/api/v1/numbers", &c1).await.data(), &json!([]));
    assert_eq!(
        t.get("/api/v1/trunks/T-C2/ips", &c1).await.data(),
        &json!([])
    );
    // A customer's new trunk is its own, without saying so.
    let r = t.post("/api/v1/trunks", &c1, json!({"id": "T-new"})).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    assert_eq!(r.data()["ban"], "C1");
    // Nor give its own away.
    let r = t
        .call(
            "PATCH",
            "/api/v1/trunks/T-C1",
            &c1,
            Some(json!({"ban": "C2"})),
        )
        .await;
    assert_eq!(
        (r.status, r.field()),
        (StatusCode::UNPROCESSABLE_ENTITY, "ban")
    );
    // Nor put its number on another customer's trunk, by a change as by a create; and
    // staff moving a number to another customer move its trunk with it.
    t.make(
        "/api/v1/numbers",
        json!({"e164": "+13035550100", "ban": "C1", "trunk_id": "T-C1", "status": "assigned"}),
    )
    .await;
    for (key, patch) in [
        (&c1, json!({"trunk_id": "T-C2"})),
        (&ROOT.to_string(), json!({"ban": "C2"})),
    ] {
        let r = t
            .call("PATCH", "/api/v1/numbers/13035550100", key, Some(patch))
            .await;
        assert_eq!(
            (r.status, r.field()),
            (StatusCode::UNPROCESSABLE_ENTITY, "trunk_id"),
            "{}",
            r.body
        );
    }
    let r = t
        .call(
            "PATCH",
            "/api/v1/numbers/13035550100",
            ROOT,
            Some(json!({"ban": "C2", "trunk_id": "T-C2"})),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    // Nor claim addresses of another customer's trunk: its network written with host
    // bits, one inside it or around it (each would take that customer's calls, or stop
    // every publish). A network is stored as the network it names.
    t.make(
        "/api/v1/trunks/T-C2/ips",
        json!({"addr": "198.51.100.0/24"}),
    )
    .await;
    for addr in ["198.51.100.7/24", "198.51.100.7", "198.51.0.0/16"] {
        let r = t
            .post("/api/v1/trunks/T-C1/ips", &c1, json!({ "addr": addr }))
            .await;
        assert_eq!(
            (r.status, r.field()),
            (StatusCode::CONFLICT, "addr"),
            "{addr}: {}",
            r.body
        );
    }
    let r = t
        .post(
            "/api/v1/trunks/T-C1/ips",
            &c1,
            json!({"addr": "203.0.113.9/24"}),
        )
        .await;
    assert_eq!(
        (r.status, r.data()["addr"].as_str()),
        (StatusCode::CREATED, Some("203.0.113.0/24")),
        "{}",
        r.body
    );
    // Nor may staff move a trunk whose network nests in one of its customer's to
    // another customer: the two customers would then share those addresses.
    t.make("/api/v1/trunks", json!({"id": "T-C1B", "ban": "C1"}))
        .await;
    t.make(
        "/api/v1/trunks/T-C1B/ips",
        json!({"addr": "203.0.113.128/25"}),
    )
    .await;
    let r = t
        .call(
            "PATCH",
            "/api/v1/trunks/T-C1B",
            ROOT,
            Some(json!({"ban": "C2"})),
        )
        .await;
    assert_eq!(
        (r.status, r.field()),
        (StatusCode::CONFLICT, "ban"),
        "{}",
        r.body
    );
    // No escalation: a customer admin cannot mint staff keys.
    let r = t
        .post("/api/v1/api-keys", &c1, json!({"role": "super_admin"}))
        .await;
    assert_eq!((r.status, r.field()), (StatusCode::FORBIDDEN, "role"));
    let dev = t.key("developer", Some("C1")).await;
    let r = t
        .post("/api/v1/api-keys", &dev, json!({"role": "customer_admin"}))
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    // Keys listed are the customer's own.
    t.key("read_only", Some("C2")).await;
    let keys = t.get("/api/v1/api-keys", &c1).await;
    assert!(
        keys.data()
            .as_array()
            .unwrap()
            .iter()
            .all(|k| k["ban"] == "C1"),
        "{}",
        keys.body
    );
}

/// A SIP edge's key reads every trunk's ha1 in the snapshot: only the super admin makes
/// one, of no customer; it makes no key itself, no person signs in with its role, and
/// it rotates itself as any key may.
#[tokio::test]
async fn only_the_super_admin_makes_a_sip_edge_key() {
    let t = TestApi::start().await;
    t.fixture().await;
    t.publish().await;
    let edge = json!({"name": "edge-1", "role": "sip_edge"});
    for role in ["customer_admin", "developer"] {
        let key = t.key(role, Some("C1")).await;
        let r = t.post("/api/v1/api-keys", &key, edge.clone()).await;
        assert_eq!(
            (r.status, r.field()),
            (StatusCode::FORBIDDEN, "role"),
            "{role}: {}",
            r.body
        );
    }
    let edges = || {
        sqlx::query_scalar::<_, i64>("SELECT count(*) FROM api.keys WHERE role = 'sip_edge'")
            .fetch_one(&t.pool)
    };
    assert_eq!(edges().await.unwrap(), 0);
    let r = t
        .post(
            "/api/v1/api-keys",
            ROOT,
            json!({"role": "sip_edge", "ban": "C1"}),
        )
        .await;
    assert_eq!(
        (r.status, r.field()),
        (StatusCode::UNPROCESSABLE_ENTITY, "ban")
    );
    let r = t.post("/api/v1/api-keys", ROOT, edge).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    let d = r.data();
    assert_eq!(
        (&d["role"], &d["ban"], &d["scopes"]),
        (&json!("sip_edge"), &json!(null), &json!(["edge:snapshot"]))
    );
    let (id, old) = (d["id"].as_i64().unwrap(), d["secret"].as_str().unwrap());
    assert_eq!(edges().await.unwrap(), 1);
    let r = t
        .post("/api/v1/api-keys", old, json!({"role": "sip_edge"}))
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN, "{}", r.body);
    let person = json!({"email": "edge@carrier.example", "role": "sip_edge",
                        "password": "a long passphrase"});
    let r = t.post("/api/v1/users", ROOT, person).await;
    assert_eq!(
        (r.status, r.field()),
        (StatusCode::UNPROCESSABLE_ENTITY, "role"),
        "{}",
        r.body
    );
    // Said as the rule it is, not as the database's refusal.
    let why = r.body["errors"][0]["message"].as_str().unwrap();
    assert!(why.contains("machines, not people"), "{why}");
    let r = t
        .post(&format!("/api/v1/api-keys/{id}/rotate"), old, json!({}))
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let new = r.data()["secret"].as_str().unwrap();
    let pull = |key| t.get("/api/v1/routing/snapshot", key);
    assert_eq!(pull(old).await.status, StatusCode::UNAUTHORIZED);
    assert_eq!(pull(new).await.status, StatusCode::OK);
}

/// A keys table made before sip_edge checks its role against the seven, under the name
/// PostgreSQL gives a column's check: the API's start replaces that check, once.
#[tokio::test]
async fn a_keys_table_made_before_sip_edge_takes_sip_edge_keys_after_a_start() {
    let t = TestApi::start().await;
    sqlx::raw_sql(
        "ALTER TABLE api.keys DROP CONSTRAINT keys_role;
         ALTER TABLE api.keys ADD CHECK (role IN ('super_admin', 'support', 'sales',
             'customer_admin', 'developer', 'billing', 'read_only'))",
    )
    .execute(&t.pool)
    .await
    .unwrap();
    let role_checks = || {
        sqlx::query_scalar::<_, String>(
            "SELECT conname::text FROM pg_constraint
             WHERE conrelid = 'api.keys'::regclass AND pg_get_constraintdef(oid) LIKE '%sales%'",
        )
        .fetch_all(&t.pool)
    };
    assert_eq!(role_checks().await.unwrap(), ["keys_role_check"]);
    let r = t
        .post("/api/v1/api-keys", ROOT, json!({"role": "sip_edge"}))
        .await;
    assert_ne!(r.status, StatusCode::CREATED, "{}", r.body);
    for _ in 0..2 {
        warp_api::schema::ensure(&t.pool).await.unwrap();
        assert_eq!(role_checks().await.unwrap(), ["keys_role"]);
    }
    t.key("sip_edge", None).await;
}

#[tokio::test]
async fn keys_are_shown_once_rotated_and_revoked() {
    let t = TestApi::start().await;
    t.fixture().await;
    let r = t
        .post(
            "/api/v1/api-keys",
            ROOT,
            json!({"name": "ops", "role": "support"}),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED);
    assert_eq!(
        r.data()["scopes"],
        json!(["support:read", "support:diagnostics"])
    );
    let id = r.data()["id"].as_i64().unwrap();
    let old = r.data()["secret"].as_str().unwrap().to_string();
    let stored: String = sqlx::query_scalar("SELECT hash FROM api.keys WHERE id = $1")
        .bind(id)
        .fetch_one(&t.pool)
        .await
        .unwrap();
    assert_ne!(stored, old, "only the hash is stored");
    assert!(t
        .get("/api/v1/api-keys", ROOT)
        .await
        .body
        .to_string()
        .find(&old)
        .is_none());
    assert_eq!(t.get("/api/v1/vendors", &old).await.status, StatusCode::OK);

    let r = t
        .post(&format!("/api/v1/api-keys/{id}/rotate"), ROOT, json!({}))
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let new = r.data()["secret"].as_str().unwrap().to_string();
    assert_eq!(
        t.get("/api/v1/vendors", &old).await.status,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(t.get("/api/v1/vendors", &new).await.status, StatusCode::OK);

    let path = format!("/api/v1/api-keys/{id}");
    let revoke = || t.call("DELETE", &path, ROOT, None);
    let r = revoke().await;
    assert_eq!(r.status, StatusCode::OK);
    assert!(r.data()["revoked_at"].is_string());
    // Revoking it again changes nothing: the same answer, and no second audit row.
    let again = revoke().await;
    assert_eq!(
        (again.status, &again.data()["revoked_at"]),
        (StatusCode::OK, &r.data()["revoked_at"])
    );
    let r = t.get("/api/v1/vendors", &new).await;
    assert_eq!(
        (r.status, r.code()),
        (StatusCode::UNAUTHORIZED, "UNAUTHORIZED")
    );
    let r = t
        .post(&format!("/api/v1/api-keys/{id}/rotate"), ROOT, json!({}))
        .await;
    assert_eq!(r.status, StatusCode::CONFLICT);

    // No key, a made-up key, a malformed header.
    for key in ["", "warp_made_up"] {
        assert_eq!(
            t.get("/api/v1/vendors", key).await.status,
            StatusCode::UNAUTHORIZED
        );
    }
    // Bad key requests.
    let r = t
        .post("/api/v1/api-keys", ROOT, json!({"role": "developer"}))
        .await;
    assert_eq!(
        (r.status, r.field()),
        (StatusCode::UNPROCESSABLE_ENTITY, "ban")
    );
    let r = t
        .post("/api/v1/api-keys", ROOT, json!({"role": "emperor"}))
        .await;
    assert_eq!(
        (r.status, r.field()),
        (StatusCode::UNPROCESSABLE_ENTITY, "role")
    );
    let audited: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM audit_log WHERE entity_type = 'api_keys' AND entity_id = $1",
    )
    .bind(id.to_string())
    .fetch_one(&t.pool)
    .await
    .unwrap();
    assert_eq!(audited, 3, "create, rotate, revoke");
}

#[tokio::test]
async fn a_key_that_may_not_revoke_another_may_not_rotate_it_either() {
    let t = TestApi::start().await;
    t.fixture().await;
    let dev = t.key("developer", Some("C1")).await;
    let issued = t
        .make(
            "/api/v1/api-keys",
            json!({"name": "peer", "role": "developer", "ban": "C1"}),
        )
        .await;
    let (peer_id, peer) = (issued["id"].as_i64().unwrap(), issued["secret"].clone());
    let peer = peer.as_str().unwrap();
    // Revoking it is refused; rotating it would revoke it too, and hand its new
    // secret over, so that the developer could act as the other key.
    let path = format!("/api/v1/api-keys/{peer_id}");
    let r = t.call("DELETE", &path, &dev, None).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN, "{}", r.body);
    let r = t.post(&format!("{path}/rotate"), &dev, json!({})).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN, "{}", r.body);
    assert_eq!(t.get("/api/v1/trunks", peer).await.status, StatusCode::OK);
    // A key may rotate itself, and an admin of the customer any of its keys.
    let r = t.post(&format!("{path}/rotate"), peer, json!({})).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let admin = t.key("customer_admin", Some("C1")).await;
    let r = t.post(&format!("{path}/rotate"), &admin, json!({})).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
}

/// A key may rotate itself whatever its role, as the README says: a read-only or
/// billing key, which may neither write nor revoke keys, still replaces its own
/// secret (through its id written any way), and no other key's.
#[tokio::test]
async fn a_key_of_any_role_may_rotate_itself() {
    let t = TestApi::start().await;
    t.fixture().await;
    for role in ["read_only", "billing"] {
        let issued = t
            .make(
                "/api/v1/api-keys",
                json!({"name": role, "role": role, "ban": "C1"}),
            )
            .await;
        let (id, old) = (issued["id"].as_i64().unwrap(), issued["secret"].clone());
        let old = old.as_str().unwrap();
        let peer = t.key(role, Some("C1")).await;
        let r = t
            .post(&format!("/api/v1/api-keys/0{id}/rotate"), old, json!({}))
            .await;
        assert_eq!(r.status, StatusCode::OK, "{role}: {}", r.body);
        let new = r.data()["secret"].as_str().unwrap().to_string();
        assert_eq!(
            t.get("/api/v1/customers/C1", old).await.status,
            StatusCode::UNAUTHORIZED
        );
        assert_eq!(
            t.get("/api/v1/customers/C1", &new).await.status,
            StatusCode::OK
        );
        let r = t
            .post(&format!("/api/v1/api-keys/{id}/rotate"), &peer, json!({}))
            .await;
        assert_eq!(r.status, StatusCode::FORBIDDEN, "{role}: {}", r.body);
    }
}
