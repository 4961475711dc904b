//! Configuration from the environment over the optional TOML file (warp-config),
//! printable with secrets masked.

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

#[derive(Clone)]
pub struct Config {
    pub database_url: String,
    pub redis_url: Option<String>,
    /// The CAs (PEM) a `rediss://` Redis's certificate must chain to; unset: the system's.
    pub redis_ca: Option<PathBuf>,
    /// The client of `redis_url`, made once here (the CA file read) for every user.
    pub redis: Option<redis::Client>,
    pub listen: String,
    pub snapshot: PathBuf,
    pub bootstrap_api_key: Option<String>,
    /// Signs session JWTs; random per process when unset (sessions end on restart).
    pub jwt_secret: Option<String>,
    /// Quiet time after a routing change before the automatic publish.
    pub publish_debounce: Duration,
    /// Requests per minute per API key.
    pub rate_limit: u32,
    /// How long an Idempotency-Key's answer is kept and replayed.
    pub idempotency_ttl: Duration,
    pub webhooks: WebhookPolicy,
    /// The digest realm of trunk credentials given none: the edge's AUTH_REALM.
    pub sip_realm: String,
}

/// Outbound webhook delivery: per-attempt timeout, retries with exponential backoff.
#[derive(Clone, Copy, Debug)]
pub struct WebhookPolicy {
    pub timeout: Duration,
    /// Attempts in all, the first included; then the delivery is `failed`.
    pub max_attempts: u32,
    /// Wait before the second attempt; doubles per attempt, at most an hour.
    pub backoff: Duration,
    /// How often the worker looks for due deliveries.
    pub poll: Duration,
    /// Whether a subscription may reach loopback, private, link-local and other
    /// non-public addresses: off unless the operator turns it on, so that a customer's
    /// URL cannot make the API post into its own network.
    pub allow_private: bool,
}

/// The longest idempotency TTL and webhook attempt timeout taken.
const YEAR_SECS: u64 = 365 * 86_400;
const HOUR_MS: u64 = 3_600_000;

impl Config {
    /// From the process environment over `settings` (the file's `[api]` and top level).
    pub fn from_settings(settings: &warp_config::Settings) -> anyhow::Result<Self> {
        Self::from_lookup(|k| settings.get(k))
    }

    /// Reads through `get` so tests need not touch the process environment.
    pub fn from_lookup(get: impl Fn(&str) -> Option<String>) -> anyhow::Result<Self> {
        // A text setting left empty (`Environment=WARP_SNAPSHOT=`) is unset.
        let text = |k: &str| get(k).filter(|s| !s.is_empty());
        let database_url = get("WARP_DATABASE_URL")
            .ok_or_else(|| anyhow::anyhow!("WARP_DATABASE_URL is not set"))?;
        // Checked here, where the variable can be named, not at first use, where the
        // parser's error would not say which setting is wrong.
        // sqlx takes any scheme (`http://…`, `db:5432`) and fails only at connect time.
        let postgres = ["postgres://", "postgresql://"]
            .iter()
            .any(|p| database_url.starts_with(p));
        if !postgres
            || database_url
                .parse::<sqlx::postgres::PgConnectOptions>()
                .is_err()
        {
            anyhow::bail!(
                "WARP_DATABASE_URL: {:?} is not a postgres:// URL",
                warp_redact::mask_password(&database_url)
            );
        }
        let redis_url = text("WARP_REDIS_URL");
        let redis_ca = text("WARP_REDIS_CA").map(PathBuf::from);
        let redis = redis_url
            .as_deref()
            .map(|url| warp_redis::client(url, redis_ca.as_deref()))
            .transpose()?;
        let listen = get("WARP_LISTEN").unwrap_or_else(|| "127.0.0.1:8080".into());
        let port = listen.rsplit_once(':').map(|(_, p)| p.parse::<u16>());
        anyhow::ensure!(
            matches!(port, Some(Ok(_))),
            "WARP_LISTEN: {listen:?} is not host:port"
        );
        let number = |k: &str, default: u64| -> anyhow::Result<u64> {
            get(k).map_or(Ok(default), |v| {
                v.parse()
                    .map_err(|_| anyhow::anyhow!("{k}: {v:?} is not a whole number"))
            })
        };
        // Bounded where PostgreSQL turns the value into an interval (out of range there,
        // every request or delivery that uses it would fail) or where 0 means nothing.
        let within = |k: &str, default: u64, range: std::ops::RangeInclusive<u64>| {
            let v = number(k, default)?;
            anyhow::ensure!(
                range.contains(&v),
                "{k}: {v} is not within {}..={}",
                range.start(),
                range.end()
            );
            Ok::<u64, anyhow::Error>(v)
        };
        let count = |k: &str, default: u32| -> anyhow::Result<u32> {
            let v = number(k, default.into())?;
            u32::try_from(v).map_err(|_| anyhow::anyhow!("{k}: {v} is more than {}", u32::MAX))
        };
        let sip_realm = text("WARP_SIP_REALM").unwrap_or_else(|| "warp".into());
        if let Err(e) = warp_core::model::check_realm(&sip_realm) {
            anyhow::bail!("WARP_SIP_REALM: {e}");
        }
        Ok(Config {
            database_url,
            redis_url,
            redis_ca,
            redis,
            listen,
            snapshot: text("WARP_SNAPSHOT")
                .unwrap_or_else(|| "/var/lib/warp/routing.snap".into())
                .into(),
            bootstrap_api_key: text("WARP_BOOTSTRAP_API_KEY"),
            jwt_secret: text("WARP_JWT_SECRET"),
            publish_debounce: Duration::from_millis(number("WARP_PUBLISH_DEBOUNCE_MS", 500)?),
            rate_limit: match count("WARP_RATE_LIMIT", 6000)? {
                0 => anyhow::bail!("WARP_RATE_LIMIT: 0 would refuse every request"),
                n => n,
            },
            idempotency_ttl: Duration::from_secs(within(
                "WARP_IDEMPOTENCY_TTL_SECS",
                86_400,
                1..=YEAR_SECS,
            )?),
            webhooks: WebhookPolicy {
                timeout: Duration::from_millis(within(
                    "WARP_WEBHOOK_TIMEOUT_MS",
                    10_000,
                    1..=HOUR_MS,
                )?),
                max_attempts: count("WARP_WEBHOOK_MAX_ATTEMPTS", 8)?.max(1),
                backoff: Duration::from_millis(number("WARP_WEBHOOK_BACKOFF_MS", 10_000)?),
                poll: Duration::from_millis(number("WARP_WEBHOOK_POLL_MS", 1_000)?.max(1)),
                allow_private: number("WARP_WEBHOOK_ALLOW_PRIVATE", 0)? != 0,
            },
            sip_realm,
        })
    }
}

fn secret(s: &Option<String>) -> &'static str {
    if s.is_some() {
        "***"
    } else {
        ""
    }
}

impl fmt::Display for Config {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "WARP_DATABASE_URL={} WARP_REDIS_URL={} WARP_REDIS_CA={} WARP_LISTEN={} WARP_SNAPSHOT={} \
             WARP_BOOTSTRAP_API_KEY={} WARP_JWT_SECRET={} WARP_PUBLISH_DEBOUNCE_MS={} \
             WARP_RATE_LIMIT={} WARP_IDEMPOTENCY_TTL_SECS={} WARP_WEBHOOK_TIMEOUT_MS={} \
             WARP_WEBHOOK_MAX_ATTEMPTS={} WARP_WEBHOOK_BACKOFF_MS={} WARP_WEBHOOK_POLL_MS={} \
             WARP_WEBHOOK_ALLOW_PRIVATE={} WARP_SIP_REALM={}",
            warp_redact::mask_password(&self.database_url),
            self.redis_url
                .as_deref()
                .map(warp_redact::mask_password)
                .unwrap_or_default(),
            self.redis_ca
                .as_deref()
                .map(|p| p.display().to_string())
                .unwrap_or_default(),
            self.listen,
            self.snapshot.display(),
            secret(&self.bootstrap_api_key),
            secret(&self.jwt_secret),
            self.publish_debounce.as_millis(),
            self.rate_limit,
            self.idempotency_ttl.as_secs(),
            self.webhooks.timeout.as_millis(),
            self.webhooks.max_attempts,
            self.webhooks.backoff.as_millis(),
            self.webhooks.poll.as_millis(),
            u8::from(self.webhooks.allow_private),
            self.sip_realm,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The file accepts only the keys services read: a variable read here and missing
    /// from warp-config's list could be set in the environment but not in the file.
    #[test]
    fn every_variable_read_is_one_the_file_may_set() {
        let asked = std::cell::RefCell::new(Vec::new());
        Config::from_lookup(|k| {
            asked.borrow_mut().push(k.to_owned());
            (k == "WARP_DATABASE_URL").then(|| "postgres://warp@db/warp".into())
        })
        .unwrap();
        for var in asked.into_inner() {
            assert!(warp_config::API.vars.contains(&var.as_str()), "{var}");
        }
    }

    #[test]
    fn secrets_are_masked() {
        let c = Config::from_lookup(|k| match k {
            "WARP_DATABASE_URL" => Some("postgres://warp:hunter2@db:5432/warp".into()),
            "WARP_REDIS_URL" => Some("redis://:pw@cache:6379".into()),
            "WARP_BOOTSTRAP_API_KEY" => Some("topsecret".into()),
            "WARP_JWT_SECRET" => Some("jwtsecret".into()),
            _ => None,
        })
        .unwrap();
        let shown = c.to_string();
        assert!(
            shown.contains("postgres://warp:***@db:5432/warp"),
            "{shown}"
        );
        assert!(shown.contains("redis://:***@cache:6379"), "{shown}");
        assert!(
            !shown.contains("hunter2")
                && !shown.contains("topsecret")
                && !shown.contains("jwtsecret")
                && !shown.contains("pw@")
        );
    }

    #[test]
    fn empty_variables_are_unset() {
        let c = Config::from_lookup(|k| match k {
            "WARP_DATABASE_URL" => Some("postgres://warp@db/warp".into()),
            "WARP_SNAPSHOT" | "WARP_REDIS_URL" | "WARP_BOOTSTRAP_API_KEY" => Some(String::new()),
            _ => None,
        })
        .unwrap();
        assert_eq!(c.snapshot, PathBuf::from("/var/lib/warp/routing.snap"));
        assert_eq!(c.redis_url, None);
        assert_eq!(c.bootstrap_api_key, None);
    }

    #[test]
    fn bad_numbers_are_refused_naming_the_variable() {
        for (var, value, why) in [
            ("WARP_RATE_LIMIT", "lots", "is not a whole number"),
            ("WARP_RATE_LIMIT", "4294967296", "is more than 4294967295"),
            ("WARP_RATE_LIMIT", "0", "would refuse every request"),
            ("WARP_WEBHOOK_MAX_ATTEMPTS", "99999999999", "is more than"),
            ("WARP_WEBHOOK_TIMEOUT_MS", "0", "is not within 1..=3600000"),
            (
                "WARP_WEBHOOK_TIMEOUT_MS",
                "9999999999999999",
                "is not within",
            ),
            (
                "WARP_IDEMPOTENCY_TTL_SECS",
                "0",
                "is not within 1..=31536000",
            ),
            (
                "WARP_IDEMPOTENCY_TTL_SECS",
                "9999999999999999",
                "is not within",
            ),
        ] {
            let c = Config::from_lookup(|k| match k {
                "WARP_DATABASE_URL" => Some("postgres://x".into()),
                k if k == var => Some(value.into()),
                _ => None,
            });
            let e = c.err().unwrap().to_string();
            assert!(e.starts_with(var) && e.contains(why), "{e}");
        }
    }

    #[test]
    fn malformed_addresses_are_refused_naming_the_variable() {
        for (var, value) in [
            ("WARP_DATABASE_URL", "warp:hunter2@db/warp"),
            ("WARP_DATABASE_URL", "http://warp:hunter2@db/warp"),
            ("WARP_REDIS_URL", "cache:6379"),
            ("WARP_REDIS_URL", "http://:hunter2@cache:6379"),
            ("WARP_LISTEN", "8080"),
            ("WARP_LISTEN", "0.0.0.0:http"),
            ("WARP_LISTEN", "0.0.0.0:65536"),
            ("WARP_SIP_REALM", "wa\"rp"),
        ] {
            let c = Config::from_lookup(|k| match k {
                k if k == var => Some(value.into()),
                "WARP_DATABASE_URL" => Some("postgres://warp@db/warp".into()),
                _ => None,
            });
            let e = c.err().map(|e| e.to_string()).unwrap_or_default();
            assert!(e.starts_with(var), "{var}={value}: {e:?}");
            assert!(!e.contains("hunter2"), "{e}");
        }
        for listen in ["[::1]:8080", "localhost:8080", "0.0.0.0:0"] {
            let c = Config::from_lookup(|k| match k {
                "WARP_DATABASE_URL" => Some("postgres://warp@db/warp".into()),
                "WARP_LISTEN" => Some(listen.into()),
                _ => None,
            });
            assert!(c.is_ok(), "{listen}");
        }
    }
}
