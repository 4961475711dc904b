//! Delivery: a background task claims due deliveries (several instances may run it:
//! claims are row locks plus a lease), POSTs each signed payload, and records the
//! attempt. A non-2xx answer, a timeout or a refused connection is retried after an
//! exponential backoff until the policy's attempts are spent (then `failed`). Pending
//! rows live in PostgreSQL, so a restart picks up where the last process stopped. An
//! event is sent only while its subscription's role may read it.

use super::{address, signing};
use crate::config::WebhookPolicy;
use chrono::Utc;
use sqlx::{FromRow, PgPool};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::task::{AbortHandle, JoinSet};

/// Deliveries claimed at once.
const BATCH: usize = 16;
/// Attempts in flight at once, over all subscriptions.
const MAX_IN_FLIGHT: usize = 256;
const MAX_BACKOFF: Duration = Duration::from_secs(3600);

#[derive(FromRow)]
struct Due {
    id: i64,
    event_id: String,
    event_type: String,
    payload: String,
    /// Attempts made before this one.
    attempts: i32,
    url: String,
    secret: String,
    /// The subscription's role, and whether it may read this event: whoever last
    /// changed the subscription (its URL) may not be whom it was queued for.
    role: String,
    readable: bool,
}

/// How one attempt went.
struct Outcome {
    status_code: Option<i32>,
    error: Option<String>,
    ms: i64,
}

pub struct Dispatcher {
    pool: PgPool,
    client: reqwest::Client,
    policy: WebhookPolicy,
    task: Mutex<Option<AbortHandle>>,
}

impl Dispatcher {
    /// Starts the delivery task.
    pub fn start(pool: PgPool, policy: WebhookPolicy) -> anyhow::Result<Arc<Self>> {
        let mut client = reqwest::Client::builder();
        if !policy.allow_private {
            client = client.dns_resolver(Arc::new(PublicOnly));
        }
        let client = client
            // A proxy (HTTP_PROXY, HTTPS_PROXY from the environment) would resolve and
            // reach the receiver itself, past the address checks above.
            .no_proxy()
            .timeout(policy.timeout)
            // A redirect is an answer to fix at the receiver, not to follow blindly.
            .redirect(reqwest::redirect::Policy::none())
            .user_agent("warp-webhooks/1")
            .build()?;
        let me = Arc::new(Dispatcher {
            pool,
            client,
            policy,
            task: Mutex::new(None),
        });
        let handle = tokio::spawn(me.clone().run()).abort_handle();
        if let Ok(mut t) = me.task.lock() {
            *t = Some(handle);
        }
        Ok(me)
    }

    /// Stops delivering (in-flight attempts are dropped; their rows are retried by the
    /// next process once the lease runs out).
    pub fn stop(&self) {
        if let Some(t) = self.task.lock().ok().and_then(|mut t| t.take()) {
            t.abort();
        }
    }

    /// Claims due deliveries and attempts them, without waiting for one claim's
    /// attempts to end before the next: a receiver that takes its whole timeout holds
    /// up only its own subscription's deliveries.
    async fn run(self: Arc<Self>) {
        let mut running = JoinSet::new();
        loop {
            let free = MAX_IN_FLIGHT - running.len();
            match self.claim(free.min(BATCH)).await {
                Ok(due) => {
                    let full = due.len() == BATCH;
                    for d in due {
                        let (client, pool, policy) =
                            (self.client.clone(), self.pool.clone(), self.policy);
                        running.spawn(async move {
                            let outcome = attempt(&client, &d, policy.allow_private).await;
                            record(&pool, policy, &d, outcome).await
                        });
                    }
                    // A full claim: more may be due already.
                    if full && running.len() < MAX_IN_FLIGHT {
                        continue;
                    }
                }
                Err(e) => tracing::warn!(error = %e, "claiming webhook deliveries failed"),
            }
            // An attempt that ends frees its subscription for the next claim.
            tokio::select! {
                Some(done) = running.join_next() => {
                    log(done);
                    while let Some(done) = running.try_join_next() {
                        log(done);
                    }
                }
                () = tokio::time::sleep(self.policy.poll) => {}
            }
        }
    }

    /// Leases up to `limit` due deliveries of subscriptions with none in flight.
    async fn claim(&self, limit: usize) -> Result<Vec<Due>, sqlx::Error> {
        if limit == 0 {
            return Ok(Vec::new());
        }
        // The lease outlives any attempt, so a claim is never taken twice at once.
        let lease = 2.0 * self.policy.timeout.as_secs_f64() + 1.0;
        sqlx::query_as(
            "UPDATE api.webhook_deliveries d
             SET locked_until = now() + make_interval(secs => $1)
             FROM api.webhooks w
             WHERE w.id = d.webhook_id AND d.id IN (
                 SELECT d2.id FROM api.webhook_deliveries d2
                 JOIN api.webhooks w2 ON w2.id = d2.webhook_id AND w2.active
                 WHERE d2.status = 'pending' AND d2.next_attempt_at <= now()
                   AND (d2.locked_until IS NULL OR d2.locked_until < now())
                   AND NOT EXISTS (SELECT 1 FROM api.webhook_deliveries b
                                   WHERE b.webhook_id = d2.webhook_id
                                     AND b.locked_until > now())
                 ORDER BY d2.next_attempt_at LIMIT $2
                 FOR UPDATE OF d2 SKIP LOCKED)
             RETURNING d.id, d.event_id, d.event_type, d.payload,
                       jsonb_array_length(d.attempts) AS attempts, w.url, w.secret,
                       w.role, w.role = ANY (d.readers) AS readable",
        )
        .bind(lease)
        .bind(limit as i64)
        .fetch_all(&self.pool)
        .await
    }
}

fn log(done: Result<Result<(), sqlx::Error>, tokio::task::JoinError>) {
    if let Ok(Err(e)) = done {
        tracing::warn!(error = %e, "recording a webhook attempt failed");
    }
}

async fn attempt(client: &reqwest::Client, d: &Due, allow_private: bool) -> Outcome {
    let started = Instant::now();
    if !d.readable {
        return Outcome {
            status_code: None,
            error: Some(format!("refused: role {} may not read this event", d.role)),
            ms: 0,
        };
    }
    // Names are checked by the resolver (`PublicOnly`); addresses written in the URL
    // never reach it. (Registration refuses them too, but the operator may have
    // allowed them then.)
    if let Some((ip, why)) = address::private_literal(&d.url).filter(|_| !allow_private) {
        return Outcome {
            status_code: None,
            error: Some(format!("refused: {ip} is not a public address ({why})")),
            ms: 0,
        };
    }
    let signature = signing::sign(&d.secret, Utc::now().timestamp(), d.payload.as_bytes());
    let sent = client
        .post(&d.url)
        .header("content-type", "application/json")
        .header(signing::HEADER, signature)
        .header("x-warp-event-id", &d.event_id)
        .header("x-warp-event-type", &d.event_type)
        .header("x-warp-delivery-id", d.id.to_string())
        .body(d.payload.clone())
        .send()
        .await;
    let ms = started.elapsed().as_millis() as i64;
    match sent {
        Ok(res) => {
            let status = res.status();
            Outcome {
                status_code: Some(i32::from(status.as_u16())),
                error: (!status.is_success()).then(|| format!("HTTP {status}")),
                ms,
            }
        }
        Err(e) => Outcome {
            status_code: None,
            error: Some(describe(&e)),
            ms,
        },
    }
}

/// Resolves a subscription's host name to its public addresses only: a name that
/// points into the API's own network (loopback, private, link-local, …) or anywhere
/// else not globally reachable fails the attempt instead of reaching it, however the
/// DNS answer changes over time.
struct PublicOnly;

impl reqwest::dns::Resolve for PublicOnly {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let host = name.as_str().to_string();
        Box::pin(async move {
            let all: Vec<SocketAddr> = tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
            let public: Vec<SocketAddr> = all
                .iter()
                .copied()
                .filter(|a| address::not_public(a.ip()).is_none())
                .collect();
            if public.is_empty() {
                // The addresses go to the operator's log only: in the delivery log, its
                // subscriber would read how the API's own network resolves its names.
                let found: Vec<String> = all.iter().map(|a| a.ip().to_string()).collect();
                tracing::warn!(host, addresses = %found.join(", "), "webhook destination has no public address");
                return Err(format!("refused: {host} has no public address").into());
            }
            Ok(Box::new(public.into_iter()) as reqwest::dns::Addrs)
        })
    }
}

/// The cause a receiver's operator can act on: timeout, refused connection, …
fn describe(e: &reqwest::Error) -> String {
    if e.is_timeout() {
        return "timed out".into();
    }
    let mut cause: &dyn std::error::Error = e;
    while let Some(inner) = cause.source() {
        cause = inner;
    }
    let kind = if e.is_connect() { "connect" } else { "request" };
    format!("{kind}: {cause}")
}

/// The wait before attempt `made + 1`: backoff × 2^(made − 1), at most an hour.
fn backoff(policy: WebhookPolicy, made: u32) -> Duration {
    let factor = 2u32.saturating_pow(made.saturating_sub(1));
    policy.backoff.saturating_mul(factor).min(MAX_BACKOFF)
}

async fn record(
    pool: &PgPool,
    policy: WebhookPolicy,
    d: &Due,
    o: Outcome,
) -> Result<(), sqlx::Error> {
    let made = u32::try_from(d.attempts).unwrap_or(0) + 1;
    let status = match (&o.error, made >= policy.max_attempts) {
        (None, _) => "delivered",
        (Some(_), true) => "failed",
        (Some(_), false) => "pending",
    };
    sqlx::query(
        "UPDATE api.webhook_deliveries SET
             attempts = attempts || jsonb_build_array(jsonb_build_object(
                 'at', now(), 'status_code', $2::int, 'error', $3::text, 'ms', $4::bigint)),
             status = $5,
             next_attempt_at = CASE WHEN $5 = 'pending' THEN now() + make_interval(secs => $6) END,
             locked_until = NULL
         WHERE id = $1",
    )
    .bind(d.id)
    .bind(o.status_code)
    .bind(&o.error)
    .bind(o.ms)
    .bind(status)
    .bind(backoff(policy, made).as_secs_f64())
    .execute(pool)
    .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_from_the_base_and_stops_at_an_hour() {
        let p = WebhookPolicy {
            timeout: Duration::from_secs(10),
            max_attempts: 8,
            backoff: Duration::from_secs(10),
            poll: Duration::from_secs(1),
            allow_private: false,
        };
        let waits: Vec<u64> = (1..=4).map(|n| backoff(p, n).as_secs()).collect();
        assert_eq!(waits, [10, 20, 40, 80]);
        assert_eq!(backoff(p, 30), MAX_BACKOFF);
    }
}
