//! A number's E911 address (addresses validated and normalised locally, provisioned only
//! for the number's own customer) and its CNAM display name.

mod common;

use axum::http::StatusCode;
use common::{TestApi, ROOT};
use serde_json::{json, Value};

const N1: &str = "13035550100";

fn address(line1: &str) -> Value {
    json!({"line1": line1, "city": " Denver ", "state": "co", "postal_code": "80202"})
}

#[tokio::test]
async fn e911_addresses_are_validated_and_provisioned_for_the_numbers_customer() {
    let t = TestApi::start().await;
    t.fixture().await;
    t.make("/api/v1/numbers", json!({"e164": N1, "ban": "C1"}))
        .await;
    t.make("/api/v1/numbers", json!({"e164": "13035550101"}))
        .await;
    let c1 = t.key("customer_admin", Some("C1")).await;

    let checked = t
        .post("/api/v1/e911-addresses/validate", &c1, address("1 Main St"))
        .await;
    assert_eq!(checked.status, StatusCode::OK, "{}", checked.body);
    assert_eq!(
        (
            &checked.data()["state"],
            &checked.data()["city"],
            &checked.data()["country"]
        ),
        (&json!("CO"), &json!("Denver"), &json!("US"))
    );
    for (body, field) in [
        (address("Main St"), "line1"),
        (address("1 PO Box 9"), "line1"),
        (
            json!({"line1": "1 Main St", "city": "X", "state": "CO", "postal_code": "ABCDE"}),
            "postal_code",
        ),
        (
            json!({"line1": "1 Main St", "city": "X", "state": "XX", "postal_code": "80202"}),
            "state",
        ),
        (
            json!({"line1": "1 Main St", "city": "X", "state": "CO"}),
            "postal_code",
        ),
    ] {
        let r = t
            .post("/api/v1/e911-addresses/validate", &c1, body.clone())
            .await;
        assert_eq!(
            (r.status, r.field()),
            (StatusCode::UNPROCESSABLE_ENTITY, field),
            "{body}"
        );
        let r = t.post("/api/v1/e911-addresses", &c1, body.clone()).await;
        assert_eq!(
            (r.status, r.field()),
            (StatusCode::UNPROCESSABLE_ENTITY, field),
            "{body}"
        );
    }

    // A customer's address is its own, stored in normal form and stamped validated.
    let own = t
        .post("/api/v1/e911-addresses", &c1, address("1 Main St"))
        .await;
    assert_eq!(own.status, StatusCode::CREATED, "{}", own.body);
    assert_eq!(
        (&own.data()["ban"], &own.data()["state"]),
        (&json!("C1"), &json!("CO"))
    );
    assert!(own.data()["validated_at"].is_string());
    let own_id = own.data()["id"].as_i64().unwrap();
    let mut other = address("9 Elm St");
    other["ban"] = json!("C2");
    let other_id = t.make("/api/v1/e911-addresses", other).await["id"]
        .as_i64()
        .unwrap();

    let path = format!("/api/v1/numbers/{N1}/e911");
    let r = t
        .call("PUT", &path, &c1, Some(json!({"address_id": other_id})))
        .await;
    assert_eq!(
        (r.status, r.field()),
        (StatusCode::UNPROCESSABLE_ENTITY, "address_id")
    );
    let r = t
        .call(
            "PUT",
            "/api/v1/numbers/13035550101/e911",
            ROOT,
            Some(json!({"address_id": own_id})),
        )
        .await;
    assert_eq!(
        (r.status, r.field()),
        (StatusCode::UNPROCESSABLE_ENTITY, "address_id")
    );
    let r = t
        .call("PUT", &path, &c1, Some(json!({"address_id": own_id})))
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(r.data()["address"]["line1"], "1 Main St");
    let shown = t.get(&path, &c1).await;
    assert_eq!(shown.data()["address"]["id"], own_id);
    let number = t.get(&format!("/api/v1/numbers/{N1}"), &c1).await;
    assert_eq!(number.data()["e911_address_id"], own_id);
    let r = t.call("DELETE", &path, &c1, None).await;
    assert_eq!(
        (r.status, &r.data()["address"]),
        (StatusCode::OK, &Value::Null)
    );

    // C2 sees neither C1's address nor C1's number.
    let c2 = t.key("customer_admin", Some("C2")).await;
    let r = t
        .get(&format!("/api/v1/e911-addresses/{own_id}"), &c2)
        .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    let r = t
        .call("PUT", &path, &c2, Some(json!({"address_id": other_id})))
        .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);

    let audited: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM audit_log WHERE entity_type = 'numbers' AND action = 'update'
         AND entity_id = $1",
    )
    .bind(N1)
    .fetch_one(&t.pool)
    .await
    .unwrap();
    assert_eq!(audited, 2, "provision and removal");
}

/// A number moved to another customer keeps no view of its old customer's address:
/// that customer's 911 address is not the new one's to read, so the move waits until
/// the address is taken off the number.
#[tokio::test]
async fn a_moved_number_shows_no_address_of_its_former_customer() {
    let t = TestApi::start().await;
    t.fixture().await;
    t.make(
        "/api/v1/numbers",
        json!({"e164": "+13035550100", "ban": "C1", "status": "assigned"}),
    )
    .await;
    let mut secret = address("1 Secret Ln");
    secret["ban"] = json!("C1");
    let a = t.make("/api/v1/e911-addresses", secret).await;
    let path = format!("/api/v1/numbers/{N1}/e911");
    let r = t
        .call("PUT", &path, ROOT, Some(json!({"address_id": a["id"]})))
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let number = format!("/api/v1/numbers/{N1}");
    let r = t
        .call("PATCH", &number, ROOT, Some(json!({"ban": "C2"})))
        .await;
    assert_eq!(
        (r.status, r.code(), r.field()),
        (StatusCode::CONFLICT, "CONFLICT", "ban"),
        "{}",
        r.body
    );
    let r = t.call("DELETE", &path, ROOT, None).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let r = t
        .call("PATCH", &number, ROOT, Some(json!({"ban": "C2"})))
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let c2 = t.key("read_only", Some("C2")).await;
    let r = t.get(&path, &c2).await;
    assert_eq!(
        (r.status, r.data()["address"].clone()),
        (StatusCode::OK, Value::Null),
        "{}",
        r.body
    );
}

/// Numbers referencing another customer's row, by trunk or by 911 address.
async fn cross_customer_references(t: &TestApi) -> i64 {
    sqlx::query_scalar(
        "SELECT count(*) FROM numbers n
         LEFT JOIN trunks t ON t.id = n.trunk_id
         LEFT JOIN e911_addresses a ON a.id = n.e911_address_id
         WHERE (t.id IS NOT NULL AND t.ban IS DISTINCT FROM n.ban)
            OR (a.id IS NOT NULL AND a.ban IS DISTINCT FROM n.ban)",
    )
    .fetch_one(&t.pool)
    .await
    .unwrap()
}

/// Staff may move a trunk or an E911 address to another customer, but not while the
/// old customer's numbers use it (409 naming `ban`); once they do not, it moves.
#[tokio::test]
async fn a_trunk_or_address_in_use_by_numbers_is_not_moved_to_another_customer() {
    let t = TestApi::start().await;
    t.fixture().await;
    t.make(
        "/api/v1/numbers",
        json!({"e164": N1, "ban": "C1", "trunk_id": "T-C1", "status": "assigned"}),
    )
    .await;
    let mut home = address("1 Main St");
    home["ban"] = json!("C1");
    let a = t.make("/api/v1/e911-addresses", home).await["id"]
        .as_i64()
        .unwrap();
    let e911 = format!("/api/v1/numbers/{N1}/e911");
    let r = t
        .call("PUT", &e911, ROOT, Some(json!({"address_id": a})))
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);

    let trunk = "/api/v1/trunks/T-C1";
    let addr = format!("/api/v1/e911-addresses/{a}");
    for path in [trunk, addr.as_str()] {
        let r = t
            .call("PATCH", path, ROOT, Some(json!({"ban": "C2"})))
            .await;
        assert_eq!(
            (r.status, r.code(), r.field()),
            (StatusCode::CONFLICT, "CONFLICT", "ban"),
            "{path}: {}",
            r.body
        );
        assert!(
            r.body["errors"][0]["message"]
                .as_str()
                .is_some_and(|m| m.contains(N1)),
            "{}",
            r.body
        );
        assert_eq!(t.get(path, ROOT).await.data()["ban"], "C1");
    }
    assert_eq!(cross_customer_references(&t).await, 0);

    // Off the number, both move.
    let r = t.call("DELETE", &e911, ROOT, None).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let r = t
        .call(
            "PATCH",
            &format!("/api/v1/numbers/{N1}"),
            ROOT,
            Some(json!({"trunk_id": null})),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    for path in [trunk, addr.as_str()] {
        let r = t
            .call("PATCH", path, ROOT, Some(json!({"ban": "C2"})))
            .await;
        assert_eq!(
            (r.status, &r.data()["ban"]),
            (StatusCode::OK, &json!("C2")),
            "{path}: {}",
            r.body
        );
    }
    assert_eq!(cross_customer_references(&t).await, 0);
}

#[tokio::test]
async fn cnam_is_checked_set_read_and_cleared() {
    let t = TestApi::start().await;
    t.fixture().await;
    t.make("/api/v1/numbers", json!({"e164": N1, "ban": "C1"}))
        .await;
    let dev = t.key("developer", Some("C1")).await;
    let path = format!("/api/v1/numbers/{N1}/cnam");
    let r = t
        .call("PUT", &path, &dev, Some(json!({"cnam": " Acme Corp. "})))
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(r.data(), &json!({"e164": N1, "cnam": "Acme Corp."}));
    assert_eq!(t.get(&path, &dev).await.data()["cnam"], "Acme Corp.");
    for bad in ["", "SIXTEEN CHARS XX", "<b>x</b>", "Zoë"] {
        let r = t.call("PUT", &path, &dev, Some(json!({"cnam": bad}))).await;
        assert_eq!(
            (r.status, r.field()),
            (StatusCode::UNPROCESSABLE_ENTITY, "cnam"),
            "{bad}"
        );
        // The number's own PATCH applies the same rule.
        let r = t
            .call(
                "PATCH",
                &format!("/api/v1/numbers/{N1}"),
                &dev,
                Some(json!({"cnam": bad})),
            )
            .await;
        assert_eq!(
            (r.status, r.field()),
            (StatusCode::UNPROCESSABLE_ENTITY, "cnam"),
            "{bad}"
        );
    }
    let r = t
        .call("PUT", &path, &dev, Some(json!({"cnam": null})))
        .await;
    assert_eq!(r.data()["cnam"], Value::Null);
    let ro = t.key("read_only", Some("C1")).await;
    let r = t.call("PUT", &path, &ro, Some(json!({"cnam": "X"}))).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
}

/// Provisioning a number's 911 address reads the number's and the address's customer
/// first: a move of either that commits meanwhile is seen, not overwritten.
#[tokio::test]
async fn provisioning_an_address_does_not_race_a_move_of_the_number_or_address() {
    let t = TestApi::start().await;
    t.fixture().await;
    t.make("/api/v1/numbers", json!({"e164": N1, "ban": "C1"}))
        .await;
    let mut home = address("1 Main St");
    home["ban"] = json!("C1");
    let a = t.make("/api/v1/e911-addresses", home.clone()).await["id"].clone();
    let e911 = format!("/api/v1/numbers/{N1}/e911");
    let provision = json!({"address_id": a});

    // The number moves to C2 while C1's address is provisioned on it.
    let number = format!("/api/v1/numbers/{N1}");
    let lock = format!("SELECT 1 FROM numbers WHERE e164 = '{N1}' FOR UPDATE");
    move_while_provisioning(&t, &lock, &number, &e911, &provision).await;

    // The address moves to C2 while it is provisioned on C1's number.
    let r = t
        .call("PATCH", &number, ROOT, Some(json!({"ban": "C1"})))
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let lock = format!("SELECT 1 FROM e911_addresses WHERE id = {a} FOR UPDATE");
    let address = format!("/api/v1/e911-addresses/{a}");
    move_while_provisioning(&t, &lock, &address, &e911, &provision).await;
}

/// Staff move `moved` to C2 while `provision` is PUT to `e911`, the two queued on the
/// row lock `lock` takes: the move wins, and the provisioning sees it.
async fn move_while_provisioning(
    t: &TestApi,
    lock: &str,
    moved: &str,
    e911: &str,
    provision: &serde_json::Value,
) {
    let (moved, provisioned) = t
        .queued(
            lock,
            t.call("PATCH", moved, ROOT, Some(json!({"ban": "C2"}))),
            t.call("PUT", e911, ROOT, Some(provision.clone())),
        )
        .await;
    assert_eq!(moved.status, StatusCode::OK, "{}", moved.body);
    assert_eq!(
        (provisioned.status, provisioned.field()),
        (StatusCode::UNPROCESSABLE_ENTITY, "address_id"),
        "{}",
        provisioned.body
    );
    assert_eq!(cross_customer_references(t).await, 0);
}

#[tokio::test]
async fn an_address_in_use_for_911_is_not_deleted_even_by_a_concurrent_request() {
    let t = TestApi::start().await;
    t.fixture().await;
    t.make("/api/v1/numbers", json!({"e164": N1, "ban": "C1"}))
        .await;
    let c1 = t.key("customer_admin", Some("C1")).await;
    let e911 = format!("/api/v1/numbers/{N1}/e911");
    let new_address = || async {
        let r = t
            .post("/api/v1/e911-addresses", &c1, address("1 Main St"))
            .await;
        assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
        r.data()["id"].as_i64().unwrap()
    };
    let id = new_address().await;
    let r = t
        .call("PUT", &e911, &c1, Some(json!({"address_id": id})))
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let address_path = format!("/api/v1/e911-addresses/{id}");
    let r = t.call("DELETE", &address_path, &c1, None).await;
    assert_eq!(
        (r.status, r.code()),
        (StatusCode::CONFLICT, "CONFLICT"),
        "{}",
        r.body
    );
    let number = t.get(&format!("/api/v1/numbers/{N1}"), &c1).await;
    assert_eq!(number.data()["e911_address_id"], id);
    // Taken off first, it goes.
    t.call("DELETE", &e911, &c1, None).await;
    let r = t.call("DELETE", &address_path, &c1, None).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);

    // Provisioning and deleting at once: never a number left pointing at nothing it
    // was given, never a deleted address still in use.
    for _ in 0..20 {
        let id = new_address().await;
        let put = t.call("PUT", &e911, &c1, Some(json!({"address_id": id})));
        let path = format!("/api/v1/e911-addresses/{id}");
        let delete = t.call("DELETE", &path, &c1, None);
        let (put, delete) = tokio::join!(put, delete);
        let number = t.get(&format!("/api/v1/numbers/{N1}"), &c1).await;
        let now = &number.data()["e911_address_id"];
        match (put.status, delete.status) {
            (StatusCode::OK, StatusCode::CONFLICT) => assert_eq!(now, id),
            (StatusCode::UNPROCESSABLE_ENTITY, StatusCode::OK) => assert_eq!(now, &Value::Null),
            other => panic!("{other:?}: {} / {}", put.body, delete.body),
        }
        t.call("DELETE", &e911, &c1, None).await;
    }
}

/// A number in a path may be written `+E.164` (the form the architecture accepts for
/// every number), percent-encoded or not; it names the row keyed by its digits.
#[tokio::test]
async fn a_number_in_a_path_may_carry_its_plus() {
    let t = TestApi::start().await;
    t.fixture().await;
    t.make(
        "/api/v1/numbers",
        json!({"e164": "+13035550100", "ban": "C1"}),
    )
    .await;
    t.make("/api/v1/dno", json!({"number": "+13035550199"}))
        .await;
    let c1 = t.key("customer_admin", Some("C1")).await;
    for path in [
        "/api/v1/numbers/+13035550100",
        "/api/v1/numbers/%2B13035550100",
    ] {
        let r = t.get(path, &c1).await;
        assert_eq!(r.status, StatusCode::OK, "{path}: {}", r.body);
        assert_eq!(r.data()["e164"], N1);
    }
    let r = t
        .call(
            "PATCH",
            "/api/v1/numbers/+13035550100",
            &c1,
            Some(json!({"sms_enabled": true})),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let r = t
        .call(
            "PUT",
            "/api/v1/numbers/+13035550100/cnam",
            &c1,
            Some(json!({"cnam": "ACME"})),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(
        t.get("/api/v1/numbers/+13035550100/e911", &c1).await.status,
        StatusCode::OK
    );
    // Audited under the row's key, as a change sent by its digits would be.
    let ids: Vec<String> = sqlx::query_scalar(
        "SELECT entity_id FROM audit_log WHERE entity_type = 'numbers' AND action = 'update'",
    )
    .fetch_all(&t.pool)
    .await
    .unwrap();
    assert_eq!(ids, [N1, N1]);
    let r = t.get("/api/v1/dno/+13035550199", ROOT).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let r = t
        .call("DELETE", "/api/v1/dno/+13035550199", ROOT, None)
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    // What is no number still names nothing.
    for path in ["/api/v1/numbers/+1", "/api/v1/numbers/+13035550100x"] {
        let r = t.get(path, &c1).await;
        assert_eq!(
            (r.status, r.code()),
            (StatusCode::NOT_FOUND, "NOT_FOUND"),
            "{path}"
        );
    }
}

/// A PATCH of an address that changes nothing (the values it holds, in any form its
/// normalising accepts) is no change: no audit row, no event, the same `validated_at`.
/// One that changes it is audited and validated anew.
#[tokio::test]
async fn an_address_patched_with_its_own_values_is_no_change() {
    let t = TestApi::start().await;
    t.fixture().await;
    let mut home = address("1 Main St");
    home["ban"] = json!("C1");
    let made = t.make("/api/v1/e911-addresses", home.clone()).await;
    let path = format!("/api/v1/e911-addresses/{}", made["id"]);
    let audited = || async {
        sqlx::query_scalar::<_, i64>(
            "SELECT count(*) FROM audit_log WHERE entity_type = 'e911_addresses'",
        )
        .fetch_one(&t.pool)
        .await
        .unwrap()
    };
    for same in [home.clone(), json!({"city": "Denver", "state": "CO"})] {
        let r = t.call("PATCH", &path, ROOT, Some(same.clone())).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.body);
        assert_eq!(r.data(), &made, "{same}");
        assert_eq!(audited().await, 1, "only the create: {same}");
    }
    let r = t
        .call("PATCH", &path, ROOT, Some(json!({"city": "Boulder"})))
        .await;
    assert_eq!(r.data()["city"], "Boulder", "{}", r.body);
    let at = |v: &Value| chrono::DateTime::parse_from_rfc3339(v.as_str().unwrap()).unwrap();
    assert!(at(&r.data()["validated_at"]) > at(&made["validated_at"]));
    assert_eq!(audited().await, 2);
}

/// A PATCH checks what the client sends, not stored values it leaves alone: a number
/// whose CNAM (or E.164 key) was written before today's rule, or by an import, still
/// takes a change of another field, while the rule still holds for a CNAM sent.
#[tokio::test]
async fn a_patch_does_not_refuse_stored_values_it_does_not_touch() {
    let t = TestApi::start().await;
    t.fixture().await;
    t.make("/api/v1/numbers", json!({"e164": N1, "ban": "C1"}))
        .await;
    sqlx::query("UPDATE numbers SET cnam = 'Zoë Café' WHERE e164 = $1")
        .bind(N1)
        .execute(&t.pool)
        .await
        .unwrap();
    sqlx::query("INSERT INTO numbers (e164, ban) VALUES ('12', 'C1')")
        .execute(&t.pool)
        .await
        .unwrap();
    for (number, cnam) in [(N1, json!("Zoë Café")), ("12", Value::Null)] {
        let path = format!("/api/v1/numbers/{number}");
        let r = t
            .call("PATCH", &path, ROOT, Some(json!({"sms_enabled": true})))
            .await;
        assert_eq!(r.status, StatusCode::OK, "{number}: {}", r.body);
        assert_eq!(
            (
                &r.data()["e164"],
                &r.data()["cnam"],
                &r.data()["sms_enabled"]
            ),
            (&json!(number), &cnam, &json!(true))
        );
    }
    let r = t
        .call(
            "PATCH",
            &format!("/api/v1/numbers/{N1}"),
            ROOT,
            Some(json!({"cnam": "Zoë"})),
        )
        .await;
    assert_eq!(
        (r.status, r.field()),
        (StatusCode::UNPROCESSABLE_ENTITY, "cnam")
    );
}

/// A status no number can have is a 400 naming the filter, not an empty list that
/// reads as "none"; a known one is taken in any case.
#[tokio::test]
async fn a_number_status_filter_takes_only_a_status_numbers_can_have() {
    let t = TestApi::start().await;
    t.fixture().await;
    t.make(
        "/api/v1/numbers",
        json!({"e164": N1, "ban": "C1", "status": "assigned"}),
    )
    .await;
    let r = t.get("/api/v1/numbers?status=ASSIGNED", ROOT).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let listed: Vec<&str> = r
        .data()
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["e164"].as_str().unwrap())
        .collect();
    assert_eq!(listed, [N1], "{}", r.body);
    let r = t.get("/api/v1/numbers?status=ported", ROOT).await;
    assert_eq!(
        (r.status, r.code(), r.field()),
        (StatusCode::BAD_REQUEST, "INVALID_QUERY", "status"),
        "{}",
        r.body
    );
}
