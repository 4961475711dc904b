//! A property-style run against the served OpenAPI document: random bodies (typed
//! values, wrong types, missing and unknown fields) and random ids on every operation
//! never give a 5xx, and every JSON answer is the envelope, with 2xx data carrying the
//! properties its schema requires.

mod common;

use common::{TestApi, ROOT};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::{json, Map, Value};

const IDS: [&str; 9] = [
    "C1",
    "T-C1",
    "P1",
    "V1",
    "1",
    "2",
    "zz",
    "-7",
    "12125550100",
];

fn random_value(rng: &mut StdRng, ty: Option<&str>) -> Value {
    let typed = rng.gen_bool(0.7);
    match (typed, ty) {
        (true, Some("integer")) => json!(rng.gen_range(-5..2000)),
        (true, Some("number")) => json!(rng.gen_range(-1.0..10.0)),
        (true, Some("boolean")) => json!(rng.gen_bool(0.5)),
        (true, Some("string")) => {
            let pool = [
                "",
                "C1",
                "V1",
                "P1",
                "1212",
                "+12125556789",
                "2026-01-01T00:00:00Z",
                "0.0045",
                "DNIS",
                "LRN",
                "prepaid",
                "super_admin",
                "read_only",
                "sip:{number}@x",
                "America/New_York",
                "ü🙂",
                "198.51.100.0/24",
                "-1",
                "1e400",
            ];
            json!(pool[rng.gen_range(0..pool.len())])
        }
        _ => match rng.gen_range(0..6) {
            0 => Value::Null,
            1 => json!(rng.gen::<i64>()),
            2 => json!([1, "x"]),
            3 => json!({"nested": true}),
            4 => json!("x".repeat(rng.gen_range(0..300))),
            _ => json!(rng.gen_bool(0.5)),
        },
    }
}

/// Property name → JSON type of a component schema (nullable types count as theirs).
fn properties(spec: &Value, schema: &Value) -> Vec<(String, Option<String>)> {
    let schema = match schema["$ref"].as_str() {
        Some(r) => &spec["components"]["schemas"][r.rsplit('/').next().unwrap_or("")],
        None => schema,
    };
    let Some(props) = schema["properties"].as_object() else {
        return Vec::new();
    };
    props
        .iter()
        .map(|(k, v)| {
            let ty = match &v["type"] {
                Value::String(t) => Some(t.clone()),
                Value::Array(ts) => ts
                    .iter()
                    .filter_map(Value::as_str)
                    .find(|t| *t != "null")
                    .map(str::to_string),
                _ => None,
            };
            (k.clone(), ty)
        })
        .collect()
}

fn required(spec: &Value, schema: &Value) -> Vec<String> {
    let schema = match schema["$ref"].as_str() {
        Some(r) => &spec["components"]["schemas"][r.rsplit('/').next().unwrap_or("")],
        None => schema,
    };
    schema["required"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|v| v.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

#[tokio::test]
async fn random_requests_against_the_spec_never_5xx_and_answer_in_the_envelope() {
    let t = TestApi::start().await;
    t.fixture().await;
    // A number, an E911 address and a webhook (to a port nothing answers) to aim at.
    t.make(
        "/api/v1/numbers",
        json!({"e164": "+12125550100", "ban": "C1"}),
    )
    .await;
    t.make(
        "/api/v1/e911-addresses",
        json!({"ban": "C1", "line1": "1 Main St", "city": "Denver", "state": "CO",
               "postal_code": "80202"}),
    )
    .await;
    // A documentation address (RFC 5737): registrable, never reached.
    t.make(
        "/api/v1/webhooks",
        json!({"url": "http://receiver.invalid:9/", "event_types": ["*"]}),
    )
    .await;
    let spec = t.get("/api/v1/openapi.json", "").await.body;
    let mut rng = StdRng::seed_from_u64(0x5eed_4a91);
    let mut calls = 0;
    for (path, item) in spec["paths"].as_object().unwrap() {
        for method in ["get", "post", "put", "patch", "delete"] {
            let Some(op) = item.get(method) else { continue };
            let body_schema = &op["requestBody"]["content"]["application/json"]["schema"];
            let props = properties(&spec, body_schema);
            let data_schema = &op["responses"]["200"]["content"]["application/json"]["schema"]
                ["properties"]["data"];
            for _ in 0..4 {
                let concrete = path
                    .replace("{parent}", IDS[rng.gen_range(0..IDS.len())])
                    .replace("{id}", IDS[rng.gen_range(0..IDS.len())]);
                let body = (!props.is_empty() || method != "get").then(|| {
                    let mut m = Map::new();
                    for (k, ty) in &props {
                        if rng.gen_bool(0.8) {
                            m.insert(k.clone(), random_value(&mut rng, ty.as_deref()));
                        }
                    }
                    if rng.gen_bool(0.1) {
                        m.insert("unexpected".into(), json!(1));
                    }
                    Value::Object(m)
                });
                let r = t
                    .call(&method.to_uppercase(), &concrete, ROOT, body.clone())
                    .await;
                calls += 1;
                let ctx = format!("{method} {concrete} {body:?}: {} {}", r.status, r.body);
                assert!(!r.status.is_server_error(), "{ctx}");
                let json = r
                    .headers
                    .get("content-type")
                    .is_some_and(|c| c == "application/json");
                // The document itself is the one JSON answer outside the envelope.
                if !json || path.ends_with("openapi.json") {
                    continue;
                }
                let ok = r.body["success"].as_bool().expect(&ctx);
                let errors = r.body["errors"].as_array().expect(&ctx);
                assert_eq!(ok, r.status.is_success(), "{ctx}");
                assert_eq!(ok, errors.is_empty(), "{ctx}");
                for e in errors {
                    assert!(e["code"].is_string() && e["message"].is_string(), "{ctx}");
                }
                if ok {
                    let items = match (&data_schema["items"], r.data()) {
                        (s, Value::Array(a)) if s.is_object() => a.iter().map(|d| (s, d)).collect(),
                        (_, d) => vec![(data_schema, d)],
                    };
                    for (schema, data) in items {
                        for field in required(&spec, schema) {
                            assert!(data.get(&field).is_some(), "{ctx}: data lacks {field}");
                        }
                    }
                }
            }
        }
    }
    assert!(calls > 300, "{calls} calls");
}
