use super::*;
use std::io::Write;

fn file(text: &str) -> tempfile::NamedTempFile {
    let mut f = tempfile::Builder::new().suffix(".toml").tempfile().unwrap();
    f.write_all(text.as_bytes()).unwrap();
    f
}

fn error(service: &Service, text: &str) -> String {
    let f = file(text);
    let e = Settings::read(service, f.path()).unwrap_err().to_string();
    assert!(e.contains(&f.path().display().to_string()), "{e}");
    e
}

const SHARED: &str = r#"
redis_url = "redis://top:6379"
listen = "0.0.0.0:8080"
rtpengine_ng = "10.0.0.1:2223"

[api]
listen = "127.0.0.1:9090"
rate_limit = 120
webhook_allow_private = true

[rtpengine]
rtpengine_ng = "10.0.0.2:2223"
"#;

#[test]
fn the_environment_wins_then_the_service_table_then_the_top_level() {
    let f = file(SHARED);
    let api = Settings::read(&API, f.path()).unwrap();
    let get = api.over(|k| (k == "WARP_REDIS_URL").then(|| "redis://env:6379".into()));
    assert_eq!(get("WARP_REDIS_URL").as_deref(), Some("redis://env:6379"));
    assert_eq!(get("WARP_LISTEN").as_deref(), Some("127.0.0.1:9090"));
    assert_eq!(get("WARP_DATABASE_URL"), None);
    assert_eq!(api.file(), Some(f.path()));

    // Another service's table is not this one's; the top level is everyone's.
    let rtpengine = Settings::read(&RTPENGINE, f.path()).unwrap();
    assert_eq!(
        rtpengine.from_file("WARP_RTPENGINE_NG"),
        Some("10.0.0.2:2223")
    );
    assert_eq!(
        rtpengine.from_file("WARP_REDIS_URL"),
        Some("redis://top:6379")
    );
    assert_eq!(rtpengine.from_file("WARP_LISTEN"), None);
}

#[test]
fn numbers_and_booleans_read_as_the_variable_would_hold_them() {
    let f = file(SHARED);
    let api = Settings::read(&API, f.path()).unwrap();
    assert_eq!(api.from_file("WARP_RATE_LIMIT"), Some("120"));
    assert_eq!(api.from_file("WARP_WEBHOOK_ALLOW_PRIVATE"), Some("1"));
    let off = file("[api]\nwebhook_allow_private = false\n");
    let api = Settings::read(&API, off.path()).unwrap();
    assert_eq!(api.from_file("WARP_WEBHOOK_ALLOW_PRIVATE"), Some("0"));
}

#[test]
fn an_empty_variable_leaves_the_file_value_standing() {
    let f = file(SHARED);
    let api = Settings::read(&API, f.path()).unwrap();
    let get = api.over(|_| Some(String::new()));
    assert_eq!(get("WARP_LISTEN").as_deref(), Some("127.0.0.1:9090"));
    assert_eq!(get("WARP_SNAPSHOT").as_deref(), Some(""));
}

#[test]
fn a_malformed_file_is_refused_naming_it() {
    let e = error(&API, "listen = \"127.0.0.1:8080\n");
    assert!(e.contains("is not valid TOML"), "{e}");
    let e = error(&API, "listen = 1\nlisten = 2\n");
    assert!(e.contains("is not valid TOML"), "{e}");
}

#[test]
fn an_unknown_key_is_refused_naming_it_and_its_line() {
    let e = error(&API, "listen = \"x:1\"\n\nlistn = \"y:1\"\n");
    assert!(e.contains("line 3: `listn` is not a setting"), "{e}");
    let e = error(&API, "[api]\nrate_limit = 1\nrate_limt = 2\n");
    assert!(e.contains("line 3: `api.rate_limt`"), "{e}");
    // A table of no service is a typo too, as is a key its service does not read,
    let e = error(&API, "[apii]\nlisten = \"x:1\"\n");
    assert!(e.contains("`apii` is not a setting"), "{e}");
    let e = error(&API, "[rtpengine]\ndatabase_url = \"postgres://x\"\n");
    assert!(e.contains("`rtpengine.database_url`"), "{e}");
    // whichever service reads the file: a typo anywhere is reported by every one.
    let e = error(&RTPENGINE, "[api]\nlistn = \"x:1\"\n");
    assert!(e.contains("`api.listn`"), "{e}");
    // The variable's own name is not a key.
    let e = error(&API, "WARP_LISTEN = \"x:1\"\n");
    assert!(e.contains("`WARP_LISTEN` is not a setting"), "{e}");
}

#[test]
fn a_value_of_the_wrong_type_is_refused_naming_its_key() {
    for (text, key, found) in [
        ("rate_limit = 1.5\n", "`rate_limit`", "is float"),
        ("[api]\nlisten = [\"a:1\"]\n", "`api.listen`", "is array"),
        (
            "[api]\nsip_realm = { x = 1 }\n",
            "`api.sip_realm`",
            "is inline table",
        ),
        ("snapshot = 1979-05-27\n", "`snapshot`", "is datetime"),
        ("api = \"x\"\n", "`api`", "is string; a table is wanted"),
    ] {
        let e = error(&API, text);
        assert!(e.contains(key) && e.contains(found), "{text}: {e}");
    }
}

#[test]
fn a_missing_file_warp_config_names_is_an_error_a_missing_default_is_not() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("warp.toml");
    let e = Settings::choose(
        &API,
        Some(missing.clone().into()),
        Path::new("/nonexistent"),
    )
    .unwrap_err()
    .to_string();
    assert!(e.contains(&missing.display().to_string()), "{e}");
    assert!(e.contains("No such file"), "{e}");

    let none = Settings::choose(&API, None, &missing).unwrap();
    assert_eq!(none.file(), None);

    // The default path, present, is read; WARP_CONFIG= reads no file at all.
    let f = file(SHARED);
    let read = Settings::choose(&API, None, f.path()).unwrap();
    assert_eq!(read.from_file("WARP_RATE_LIMIT"), Some("120"));
    let off = Settings::choose(&API, Some("".into()), f.path()).unwrap();
    assert_eq!(off.from_file("WARP_RATE_LIMIT"), None);
}

#[test]
fn a_default_file_that_cannot_be_read_is_an_error() {
    // A directory where the file should be: present, yet unreadable as a file.
    let dir = tempfile::tempdir().unwrap();
    let e = Settings::choose(&API, None, dir.path())
        .unwrap_err()
        .to_string();
    assert!(e.contains(&dir.path().display().to_string()), "{e}");
}
