//! warp-api to the edge: routing and trunk credentials changed through the API reach the
//! shipped config's calls once published, with no database in the call path.

use super::{authenticated_invite, by_call, shipped_config, wait_for_stat, Credentials};
use crate::support::sipp::{Answer, Uac, Uas};
use crate::support::{self, Kamailio};
use std::path::Path;
use std::time::Duration;

/// The bearer key warp-api is started with in [`serve_api`].
const API_KEY: &str = "journey-root-key";

/// warp-api as its README starts it, in this process on a port of its own (kept
/// serving by `rt`), on PostgreSQL at `db`, publishing to `snapshot`; its base URL.
fn serve_api(rt: &tokio::runtime::Runtime, db: &str, snapshot: &Path) -> String {
    let config = warp_api::config::Config::from_lookup(|k| match k {
        "WARP_DATABASE_URL" => Some(db.to_owned()),
        "WARP_SNAPSHOT" => Some(snapshot.display().to_string()),
        "WARP_BOOTSTRAP_API_KEY" => Some(API_KEY.into()),
        // Published when the operator says so, not in between.
        "WARP_PUBLISH_DEBOUNCE_MS" => Some("600000".into()),
        _ => None,
    })
    .unwrap();
    rt.block_on(async {
        let state = warp_api::start(config).await.expect("start warp-api");
        let (app, _) = warp_api::routes::app(state);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let app = app.into_make_service_with_connect_info::<std::net::SocketAddr>();
        tokio::spawn(async move { axum::serve(listener, app).await });
        base
    })
}

/// One request to the API at `base` with `body` of `content_type`: status and envelope.
fn api_call(
    rt: &tokio::runtime::Runtime,
    base: &str,
    method: &str,
    path: &str,
    body: Option<(&str, String)>,
) -> (u16, serde_json::Value) {
    rt.block_on(async {
        let method = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
        let mut req = reqwest::Client::new()
            .request(method, format!("{base}/api/v1{path}"))
            .bearer_auth(API_KEY);
        if let Some((content_type, body)) = body {
            req = req.header("content-type", content_type).body(body);
        }
        let res = req.send().await.expect("reach warp-api");
        let status = res.status().as_u16();
        let text = res.text().await.unwrap();
        (status, serde_json::from_str(&text).unwrap_or_default())
    })
}

/// The operator's journey across the parts, as the READMEs tell it: the dataset
/// imported into PostgreSQL (`warp import`: CSV files, migrations, import), warp-api
/// started on it publishing the snapshot, the shipped kamailio.cfg routing on the file
/// the API wrote; then through the API a cheaper vendor (a CSV deck), a Do-Not-Originate
/// number in a written-out form, a new sell rate, a publish, which warp.so takes up by
/// itself (`reload_check`); calls routed by the new data, with their CDR events in Redis.
#[test]
fn routing_changed_through_the_api_reaches_calls_after_publish() {
    let dir = tempfile::tempdir().unwrap();
    let redis = support::redis::Redis::start(dir.path());
    let data = support::dataset::Data::with_gateways();
    let cheap = Uas::start(dir.path(), data.cheap.0, Answer::Accept);
    let new_port = support::free_udp_port();
    let new = Uas::start(dir.path(), new_port, Answer::Accept);

    // warp import --db … --from data/
    let pg = warp_testkit::Postgres::start().unwrap();
    let csv = dir.path().join("data");
    warp_core::dataset::write_dir(&data.dataset(), &csv).unwrap();
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let pool = warp_db::connect(&pg.url).await.unwrap();
        warp_db::migrate(&pool).await.unwrap();
        let d = warp_core::dataset::read_dir(&csv).unwrap();
        warp_db::import_dataset(&pool, &d).await.unwrap();
    });
    // The API publishes what PostgreSQL holds as generation 1, where warp.so maps it.
    let snap = dir.path().join("lib/routing.snap");
    let api = serve_api(&rt, &pg.url, &snap);
    let call = |method: &str, path: &str, body: serde_json::Value| {
        api_call(
            &rt,
            &api,
            method,
            path,
            Some(("application/json", body.to_string())),
        )
    };
    let k = Kamailio::start_file(
        &shipped_config(),
        &[
            format!("WARP_SNAPSHOT=\"{}\"", snap.display()),
            format!("WARP_REDIS_URL=\"{}\"", redis.url()),
            format!("WARP_CDR_SPOOL=\"{}\"", dir.path().join("spool").display()),
        ],
        &[],
    );
    assert_eq!(k.rpc("warp.stats")["snapshot.generation"], "1");
    let status = Uac::new(k.port, dir.path(), 2, 10).spawn().wait().unwrap();
    assert!(status.success(), "calls failed ({status}):\n{}", k.log());
    assert_eq!(cheap.invites(), 2);

    // Vendor NEW, cheaper than CHEAP, from a CSV deck, offered in the customers' partition.
    let created = |(status, body): (u16, serde_json::Value)| {
        assert_eq!(status, 201, "{body}");
        body["data"].clone()
    };
    created(call(
        "POST",
        "/vendors",
        serde_json::json!({"id": "NEW", "name": "New carrier", "kind": "DNIS"}),
    ));
    created(call(
        "POST",
        "/vendors/NEW/gateways",
        serde_json::json!({"priority": 1,
                           "dialstring": format!("sip:+{{number}}@127.0.0.1:{new_port}")}),
    ));
    let deck = created(call(
        "POST",
        "/rate-decks",
        serde_json::json!({"vendor_id": "NEW"}),
    ))["id"]
        .as_i64()
        .unwrap();
    let deck_csv =
        "prefix,effective_from,interstate,intrastate,local,zone1,tollfree,international\n\
                    1,2020-01-01,0.002,0.002,0.002,0.002,0.002,0.002\n";
    let (status, body) = api_call(
        &rt,
        &api,
        "POST",
        &format!("/rate-decks/{deck}/upload"),
        Some(("text/csv", deck_csv.into())),
    );
    assert_eq!(status, 200, "{body}");
    created(call(
        "POST",
        "/partitions/P1/routes",
        serde_json::json!({"vendor_id": "NEW", "position": 3}),
    ));
    // A DNO number as a person writes it; the calls carry it as a tel: URI.
    created(call(
        "POST",
        "/dno",
        serde_json::json!({"number": "+1 (720) 555-0188"}),
    ));
    // The customers' sell rate goes from 0.02 to 0.03.
    let (_, decks) = api_call(&rt, &api, "GET", "/rate-decks?rate_plan=RETAIL", None);
    let retail = decks["data"][0]["id"].as_i64().unwrap();
    let (_, rows) = api_call(
        &rt,
        &api,
        "GET",
        &format!("/rate-decks/{retail}/rows"),
        None,
    );
    let row = rows["data"][0]["id"].as_i64().unwrap();
    let rate = "0.03";
    let (status, body) = call(
        "PATCH",
        &format!("/rate-decks/{retail}/rows/{row}"),
        serde_json::json!({"interstate": rate, "intrastate": rate, "local": rate,
                           "zone1": rate, "tollfree": rate, "international": rate}),
    );
    assert_eq!(status, 200, "{body}");

    let (status, published) = call("POST", "/routing/publish", serde_json::json!({}));
    assert_eq!(status, 200, "{published}");
    assert_eq!(published["data"]["generation"], 2);
    assert_eq!(published["data"]["path"], snap.display().to_string());
    // The shipped config's reload_check takes up the API's newest file within its 2 s,
    // under the generation the API gave it: nobody runs kamcmd.
    wait_for_stat(&k, "snapshot.reloads", "1");
    assert_eq!(k.rpc("warp.stats")["snapshot.generation"], "2");
    assert!(k.log().contains("a new file at the path (reload_check)"));

    let status = Uac::new(k.port, dir.path(), 2, 10).spawn().wait().unwrap();
    assert!(status.success(), "calls failed ({status}):\n{}", k.log());
    assert_eq!((cheap.invites(), new.invites()), (2, 2));
    let dno = k.request("INVITE", "P-Asserted-Identity: <tel:+17205550188>\r\n");
    assert_eq!(
        (dno.code, dno.reason.as_str()),
        (403, "Forbidden (DNO)"),
        "{}",
        k.log()
    );

    // Each call's start, answer and end, priced as routed.
    let cdrs = redis.wait_for("warp:cdr:raw", 12, Duration::from_secs(10));
    let calls = by_call(&cdrs);
    assert_eq!((cdrs.len(), calls.len()), (12, 4), "{cdrs:#?}");
    let mut priced: Vec<(&str, &str, &str)> = calls
        .values()
        .map(|events| {
            let kinds: Vec<&str> = events
                .iter()
                .map(|e| e["event"].as_str().unwrap())
                .collect();
            assert_eq!(kinds, ["start", "answer", "end"]);
            let e = &events[0];
            (
                e["vendor"].as_str().unwrap(),
                e["vendor_rate"].as_str().unwrap(),
                e["customer_rate"].as_str().unwrap(),
            )
        })
        .collect();
    priced.sort_unstable();
    assert_eq!(
        priced,
        [
            ("CHEAP", "0.004", "0.02"),
            ("CHEAP", "0.004", "0.02"),
            ("NEW", "0.002", "0.03"),
            ("NEW", "0.002", "0.03")
        ]
    );
}

/// A trunk and its credentials made through warp-api authenticate its calls on the
/// shipped kamailio.cfg (`WITH_AUTH`): the password the API hashed in its default realm
/// answers the edge's default challenge, checked against the published snapshot, with
/// no database in the call path; the trunk's auth type, changed through the API, decides
/// where those credentials count.
#[test]
fn trunk_credentials_made_through_the_api_authenticate_on_the_shipped_config() {
    let dir = tempfile::tempdir().unwrap();
    let redis = support::redis::Redis::start(dir.path());
    let data = support::dataset::Data::with_gateways();
    let pg = warp_testkit::Postgres::start().unwrap();
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let pool = warp_db::connect(&pg.url).await.unwrap();
        warp_db::migrate(&pool).await.unwrap();
        warp_db::import_dataset(&pool, &data.dataset())
            .await
            .unwrap();
    });
    let snap = dir.path().join("lib/routing.snap");
    let api = serve_api(&rt, &pg.url, &snap);
    let call = |method: &str, path: &str, body: serde_json::Value| {
        let (status, body) = api_call(
            &rt,
            &api,
            method,
            path,
            Some(("application/json", body.to_string())),
        );
        assert!(status < 300, "{method} {path}: {status} {body}");
    };
    let k = Kamailio::start_file(
        &shipped_config(),
        &[
            format!("WARP_SNAPSHOT=\"{}\"", snap.display()),
            format!("WARP_REDIS_URL=\"{}\"", redis.url()),
            format!("WARP_CDR_SPOOL=\"{}\"", dir.path().join("spool").display()),
            "WITH_AUTH".into(),
        ],
        &[],
    );
    let mut generation = 1;
    let mut publish = || {
        call("POST", "/routing/publish", serde_json::json!({}));
        generation += 1;
        wait_for_stat(&k, "snapshot.generation", &generation.to_string());
    };
    let as_pbx9 = |password| Credentials {
        user: "pbx9",
        password,
        // Neither the API's WARP_SIP_REALM nor the config's AUTH_REALM is set.
        realm: "warp",
    };
    // Routed past identification to C1's plan, which has no rate to the UK: 404.
    let uk = "011442079460000";
    let reply_from =
        |source, password| authenticated_invite(&k, source, uk, &as_pbx9(password)).code;
    assert_eq!(
        reply_from("127.0.0.9", "pbx9-secret"),
        407,
        "no such user yet"
    );

    call(
        "POST",
        "/trunks",
        serde_json::json!({"id": "T9", "ban": "C1", "auth_type": "CREDENTIALS"}),
    );
    call(
        "POST",
        "/trunks/T9/credentials",
        serde_json::json!({"username": "pbx9", "password": "pbx9-secret"}),
    );
    publish();
    assert_eq!(reply_from("127.0.0.9", "pbx9-secret"), 404, "{}", k.log());
    assert!(k.log().contains("refused: 404 No Route"), "{}", k.log());
    assert_eq!(reply_from("127.0.0.9", "guess"), 407);

    // Credentials and an address: from elsewhere refused, from its network let in.
    call(
        "PATCH",
        "/trunks/T9",
        serde_json::json!({"auth_type": "IP_AND_CREDENTIALS"}),
    );
    publish();
    assert_eq!(reply_from("127.0.0.9", "pbx9-secret"), 403, "{}", k.log());
    call(
        "POST",
        "/trunks/T9/ips",
        serde_json::json!({"addr": "127.0.0.8/31"}),
    );
    publish();
    assert_eq!(reply_from("127.0.0.9", "pbx9-secret"), 404, "{}", k.log());
    // Its address alone is challenged.
    assert_eq!(k.request_from("127.0.0.9", "INVITE", "").code, 407);
}
