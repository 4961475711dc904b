//! Raw CDR events (start, answer, end, failed attempt) to the Redis Stream the poller
//! reads (`cdr_stream`, field `cdr`, one JSON object per event).
//!
//! A SIP worker only serialises the event and offers it to a bounded queue; a sender
//! thread of its own process (started on the first event) writes the queue to Redis in
//! pipelined batches, so a slow or dead Redis never blocks call processing. While Redis
//! is unreachable the thread writes what it cannot send to the spool (`cdr_spool`, see
//! [`crate::cdr_spool`]) and sends it once Redis is back; without a spool it keeps its
//! batch and retries, the process holds up to `cdr_buffer` events (its batch
//! included), and only what does not fit is dropped — counted in `warp.stats` and logged. Delivery is at least once:
//! a batch cut off mid-way is sent again.

use crate::cdr_spool::{Replayed, Spool};
use crate::guard;
use crate::log::{lm_err, lm_info, lm_warn};
use crate::params;
use crate::record::{Call, Hop};
use crate::redis::{self, Connection, Target};
use crate::shm;
use chrono::{TimeZone, Utc};
use kamailio_sys as k;
use std::fmt::Write;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering::Relaxed};
use std::sync::mpsc::{sync_channel, Receiver, RecvTimeoutError, SyncSender};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Events written per round trip.
const BATCH: usize = 256;
/// How long the sender lets events gather once the first one wakes it: a busy
/// stretch's events then share one round trip to Redis, and the workers wake the sender
/// once for them all, where each event cost both a round trip and a wake-up; a CDR
/// arrives that much later, which no biller notices.
const LINGER: Duration = Duration::from_millis(2);
/// How often a sender with spooled events and nothing to send tries Redis.
const RETRY: Duration = Duration::from_secs(1);
/// For each Redis exchange of the sender thread (no SIP worker waits on it).
const REDIS_TIMEOUT: Duration = Duration::from_secs(2);
/// For each connection attempt: shorter, since a Redis that drops packets (no RST)
/// would otherwise hold the sender, and fill its queue, for `REDIS_TIMEOUT` on every
/// retry; a spooling sender spools between attempts.
const CONNECT_TIMEOUT: Duration = Duration::from_millis(500);
/// For each connection attempt and exchange of a sender with a spool: what arrives
/// while Redis keeps it waiting sits in this process's memory, which a stop of
/// Kamailio loses, so such a sender gives up on a Redis that hangs quickly and spools
/// (a Redis on the LAN answers a batch in a few milliseconds; one that was slow after
/// all gets the batch twice, as delivery is at least once).
const SPOOLING_TIMEOUT: Duration = Duration::from_millis(200);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Start,
    Answer,
    End,
    Failed,
}

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Kind::Start => "start",
            Kind::Answer => "answer",
            Kind::End => "end",
            Kind::Failed => "failed",
        }
    }
}

/// One event of a call leg: the call, the attempt (vendor) it is about, and what is
/// known at that moment.
pub struct Event<'a> {
    pub kind: Kind,
    pub call: &'a Call<'a>,
    pub hop: &'a Hop<'a>,
    /// Unix milliseconds.
    pub answer: Option<i64>,
    pub end: Option<i64>,
    pub sip_code: Option<u16>,
}

#[repr(C)]
struct Counters {
    queued: AtomicU64,
    /// Taken by Redis, from memory or from the spool.
    sent: AtomicU64,
    overflow: AtomicU64,
    /// Refused by Redis (an error reply), from memory or from the spool: kept and sent
    /// again, so also counted in `sent` once taken.
    rejected: AtomicU64,
    redis_errors: AtomicU64,
    /// Written to the spool.
    spooled: AtomicU64,
    /// Read back from the spool and sent, this run or a later one.
    unspooled: AtomicU64,
}

static COUNTERS: shm::Block<Counters> = shm::Block::new();

/// The sender of this process's queue, with the pid that created it (a forked child
/// must not use its parent's: the thread behind it did not survive the fork).
static QUEUE: Mutex<Option<(u32, SyncSender<String>)>> = Mutex::new(None);

/// Allocates the counters and checks `redis_url` and `cdr_spool`; `mod_init` only.
pub fn init() -> Result<(), String> {
    if enabled() {
        let config = params::config();
        redis::init(&config.redis_url, &config.redis_ca)?;
        if let Some(dir) = &params::config().cdr_spool {
            Spool::prepare(dir, run_as())?;
        }
    }
    COUNTERS
        .alloc(Counters {
            queued: AtomicU64::new(0),
            sent: AtomicU64::new(0),
            overflow: AtomicU64::new(0),
            rejected: AtomicU64::new(0),
            redis_errors: AtomicU64::new(0),
            spooled: AtomicU64::new(0),
            unspooled: AtomicU64::new(0),
        })
        .map(drop)
}

/// The user (and group) the core drops to after `mod_init` (`-u`, `-g`); `None` when it
/// keeps the one it started as.
fn run_as() -> Option<(u32, Option<u32>)> {
    // SAFETY: the core set both from its command line before loading any module, and
    // only the main process runs `mod_init`.
    let (uid, gid) = unsafe { (k::uid, k::gid) };
    let uid = u32::try_from(uid).ok().filter(|&u| u != 0)?;
    Some((uid, u32::try_from(gid).ok().filter(|&g| g != 0)))
}

/// Reports what never reached Redis and frees the counters; `destroy` only, when the
/// SIP processes have exited: what their queues still held died with them.
pub fn destroy() {
    if let Some(c) = COUNTERS.get() {
        let queued = c.queued.load(Relaxed);
        // What left the queue: to Redis (less what came from the spool) or to the spool.
        let done = c
            .sent
            .load(Relaxed)
            .saturating_sub(c.unspooled.load(Relaxed))
            + c.spooled.load(Relaxed);
        if queued > done {
            lm_err!(
                "{} CDR events were still queued when Kamailio stopped and are lost \
                 (Redis unreachable, refusing or behind; {done} of {queued} delivered or \
                 spooled, {} dropped on a full buffer before)",
                queued - done,
                c.overflow.load(Relaxed)
            );
        }
    }
    COUNTERS.free();
}

/// An empty `cdr_stream` turns CDR events off.
pub fn enabled() -> bool {
    !params::config().cdr_stream.is_empty()
}

/// The event as one JSON object, written field by field into one string (a
/// `serde_json::Value` tree would allocate for every key and value).
fn json(e: &Event<'_>) -> String {
    let (c, h) = (e.call, e.hop);
    let mut out = String::with_capacity(512);
    let mut field = |name: &str, value: Json<'_>| {
        out.push(if out.is_empty() { '{' } else { ',' });
        push_text(&mut out, name);
        out.push(':');
        match value {
            Json::Text(t) => push_text(&mut out, t),
            Json::Plain(p) => _ = write!(out, "{p}"),
            Json::Time(ms) => match Utc.timestamp_millis_opt(ms).single() {
                Some(t) => _ = write!(out, "\"{}\"", t.format("%Y-%m-%dT%H:%M:%S%.3fZ")),
                None => out.push_str("null"),
            },
            Json::Null => out.push_str("null"),
        }
    };
    field("event", Json::Text(e.kind.name()));
    field("call_id", Json::Text(c.call_id));
    field("ban", Json::Text(c.ban));
    field("trunk", Json::Text(c.trunk));
    let ani = Some(c.ani).filter(|a| !a.is_empty());
    field("ani", ani.map_or(Json::Null, Json::Text));
    field("dnis", Json::Text(c.dnis));
    field("lrn", Json::Text(c.lrn));
    field("zone", Json::Text(h.zone));
    field("partition", h.partition.map_or(Json::Null, Json::Text));
    field("vendor", Json::Text(h.vendor));
    field("vendor_rate", Json::Text(&h.vendor_rate.to_string()));
    field("customer_rate", Json::Text(&h.customer_rate.to_string()));
    field("attempt", Json::Plain(&h.attempt));
    field("start", Json::Time(c.start));
    field("answer", e.answer.map_or(Json::Null, Json::Time));
    field("end", e.end.map_or(Json::Null, Json::Time));
    field(
        "sip_code",
        e.sip_code.as_ref().map_or(Json::Null, |c| Json::Plain(c)),
    );
    out.push('}');
    out
}

/// A JSON value of an event field.
enum Json<'a> {
    Text(&'a str),
    /// A number, written as it displays.
    Plain(&'a dyn std::fmt::Display),
    /// Unix milliseconds, as RFC 3339 UTC text.
    Time(i64),
    Null,
}

/// `text` as a JSON string: quotes, backslashes and control characters escaped.
fn push_text(out: &mut String, text: &str) {
    out.push('"');
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if c < ' ' => _ = write!(out, "\\u{:04x}", c as u32),
            c => out.push(c),
        }
    }
    out.push('"');
}

/// Events this process holds in memory, queued or in its sender's batch:
/// `cdr_buffer` bounds them all, not only the queue (the batch a sender keeps while
/// Redis is down can take hundreds more out of it).
static HELD: AtomicUsize = AtomicUsize::new(0);

/// Queues the event for Redis; never blocks.
pub fn emit(event: &Event<'_>) {
    if !enabled() {
        return;
    }
    let Some(counters) = COUNTERS.get() else {
        return;
    };
    // No sender (its thread could not start) loses the event like a full buffer does.
    let queued = HELD.fetch_add(1, Relaxed) < params::config().cdr_buffer
        && sender().is_some_and(|tx| tx.try_send(json(event)).is_ok());
    if queued {
        counters.queued.fetch_add(1, Relaxed);
        return;
    }
    HELD.fetch_sub(1, Relaxed);
    let lost = counters.overflow.fetch_add(1, Relaxed) + 1;
    if lost == 1 || lost % 1000 == 0 {
        lm_err!(
            "CDR buffer full ({} events): {} event for call {} dropped ({lost} so far)",
            params::config().cdr_buffer,
            event.kind.name(),
            event.call.call_id
        );
    }
}

/// `n` events left this process's memory (sent, or spooled to disk).
fn released(n: usize) {
    HELD.fetch_sub(n, Relaxed);
}

/// Starts this process's sender if an earlier run left spooled events, so they reach
/// Redis even before this run has a call to report; the first SIP worker only.
pub fn send_leftovers() {
    let spooled = params::config()
        .cdr_spool
        .as_deref()
        .is_some_and(Spool::any_in);
    if enabled() && spooled {
        sender();
    }
}

/// This process's queue, its sender thread started on first use.
fn sender() -> Option<SyncSender<String>> {
    let mut queue = QUEUE.lock().unwrap_or_else(|e| e.into_inner());
    let pid = std::process::id();
    if let Some((owner, tx)) = queue.as_ref() {
        if *owner == pid {
            return Some(tx.clone());
        }
    }
    let config = params::config();
    let target = redis::target().ok()?;
    let (tx, rx) = sync_channel(config.cdr_buffer);
    let stream = config.cdr_stream.clone();
    let spawned = std::thread::Builder::new()
        .name("warp-cdr".into())
        .spawn(move || {
            let mut held = Held::open(rx);
            // A panic must not leave the queue filling up with nobody reading it: the
            // sender starts again with what it held.
            while guard::entry("CDR sender", true, || {
                send(&mut held, target, &stream);
                false
            }) {
                std::thread::sleep(RETRY);
            }
        });
    if let Err(e) = spawned {
        lm_err!("cannot start the CDR sender thread: {e}");
        return None;
    }
    *queue = Some((pid, tx.clone()));
    Some(tx)
}

/// What the sender holds, kept across a restart after a panic: its queue, its spool
/// and the events in hand.
struct Held {
    rx: Receiver<String>,
    spool: Option<Spool>,
    batch: Vec<String>,
}

impl Held {
    fn open(rx: Receiver<String>) -> Held {
        let spool = params::config().cdr_spool.as_deref().and_then(|dir| {
            match Spool::open(dir, params::config().cdr_spool_max) {
                Ok(s) => Some(s),
                Err(e) => {
                    lm_err!("{e}: CDR events wait in memory while Redis is down");
                    None
                }
            }
        });
        Held {
            rx,
            spool,
            batch: Vec::with_capacity(BATCH),
        }
    }
}

/// Fills `batch` up to [`BATCH`] with what the queue holds now, without waiting.
fn top_up(batch: &mut Vec<String>, rx: &Receiver<String>) {
    while batch.len() < BATCH {
        match rx.try_recv() {
            Ok(event) => batch.push(event),
            Err(_) => break,
        }
    }
}

/// The sender thread: batches from the queue to Redis. While Redis is unreachable it
/// spools what it cannot send ([`Spool`], with `cdr_spool`) or else holds its batch
/// and retries; once Redis answers it sends what was spooled. Returns once the queue
/// is closed.
fn send(held: &mut Held, target: &Target, stream: &str) {
    let Some(counters) = COUNTERS.get() else {
        return;
    };
    let Held { rx, spool, batch } = held;
    let mut conn: Option<Connection> = None;
    // When Redis was found down, when to try it again.
    let mut down: Option<Instant> = None;
    let mut backoff = Duration::from_millis(50);
    let timeouts = match spool {
        Some(_) => (SPOOLING_TIMEOUT, SPOOLING_TIMEOUT),
        None => (CONNECT_TIMEOUT, REDIS_TIMEOUT),
    };
    loop {
        if batch.is_empty() {
            // Spooled files wait: wake up to try Redis even if no event comes.
            let next = match spool.as_ref().filter(|s| s.pending()) {
                Some(_) => {
                    let wait =
                        down.map_or(RETRY, |at| at.saturating_duration_since(Instant::now()));
                    match rx.recv_timeout(wait) {
                        Ok(event) => Some(event),
                        Err(RecvTimeoutError::Timeout) => None,
                        Err(RecvTimeoutError::Disconnected) => return,
                    }
                }
                None => match rx.recv() {
                    Ok(event) => Some(event),
                    Err(_) => return,
                },
            };
            if next.is_some() {
                std::thread::sleep(LINGER);
            }
            batch.extend(next);
        }
        top_up(batch, rx);
        guard::fault_point("cdr_sender");
        // Redis is down and not due for a retry: to disk at once, nothing waits here.
        if let (Some(at), Some(s)) = (down, spool.as_mut()) {
            if Instant::now() < at {
                to_spool(s, batch, counters, backoff);
                continue;
            }
        }
        // One Redis closed while idle is no outage: connect again at once.
        conn.take_if(|c| c.closed());
        let result = match conn.as_mut() {
            Some(c) => c.xadd_all(stream, "cdr", batch),
            // An empty batch (a wake-up to send the spool) only connects.
            None => Connection::open(target, timeouts.0, timeouts.1).and_then(|mut c| {
                let r = c.xadd_all(stream, "cdr", batch);
                conn = Some(c);
                r
            }),
        };
        let result = result
            .and_then(|refused| keep_refused(counters, batch, &refused))
            .and_then(
                |()| match (spool.as_mut().filter(|s| s.pending()), conn.as_mut()) {
                    (Some(s), Some(c)) => {
                        let mut done = Replayed::default();
                        // What this process's calls report meanwhile goes out between
                        // the spool's batches, or the queue would fill up and drop it.
                        let mut live = |c: &mut Connection| {
                            top_up(batch, rx);
                            if batch.is_empty() {
                                return Ok(());
                            }
                            let refused = c.xadd_all(stream, "cdr", batch)?;
                            keep_refused(counters, batch, &refused)
                        };
                        let result = s.replay(c, stream, BATCH, &mut done, &mut live);
                        replayed(counters, &done);
                        result
                    }
                    _ => Ok(()),
                },
            );
        match result {
            Ok(()) => {
                if down.take().is_some() {
                    lm_info!("Redis is back: CDR events flow again");
                }
                backoff = Duration::from_millis(50);
            }
            Err(e) => {
                conn = None;
                counters.redis_errors.fetch_add(1, Relaxed);
                if down.is_none() {
                    let held = if spool.is_some() {
                        "spooling"
                    } else {
                        "buffering"
                    };
                    lm_warn!("Redis not taking CDR events ({e}): {held} them");
                }
                down = Some(Instant::now() + backoff);
                match spool.as_mut() {
                    Some(s) => to_spool(s, batch, counters, backoff),
                    None => std::thread::sleep(backoff),
                }
                backoff = (backoff * 2).min(Duration::from_secs(1));
            }
        }
    }
}

/// Counts what Redis took of `batch` and leaves in it only the events Redis refused
/// (`refused`: their places, with Redis's reasons), to be sent again: an error reply
/// to XADD says the server cannot write now (LOADING while it reads its data back,
/// READONLY after a failover, OOM, MISCONF) or the stream key is wrong (WRONGTYPE),
/// never that the event is bad.
fn keep_refused(
    counters: &Counters,
    batch: &mut Vec<String>,
    refused: &[(usize, String)],
) -> Result<(), String> {
    let taken = batch.len() - refused.len();
    counters.sent.fetch_add(taken as u64, Relaxed);
    released(taken);
    let Some((_, why)) = refused.first() else {
        batch.clear();
        return Ok(());
    };
    counters.rejected.fetch_add(refused.len() as u64, Relaxed);
    let mut places = refused.iter().map(|(i, _)| *i).peekable();
    let mut i = 0;
    batch.retain(|_| {
        let keep = places.next_if_eq(&i).is_some();
        i += 1;
        keep
    });
    Err(format!("Redis refused {} CDR events: {why}", refused.len()))
}

fn replayed(counters: &Counters, r: &Replayed) {
    counters.rejected.fetch_add(r.refused, Relaxed);
    if r.sent + r.corrupt == 0 {
        return;
    }
    counters.sent.fetch_add(r.sent, Relaxed);
    counters.unspooled.fetch_add(r.sent, Relaxed);
    lm_info!(
        "sent {} spooled CDR events ({} cut-off lines skipped)",
        r.sent,
        r.corrupt
    );
}

/// Writes `batch` to the spool and empties it; if the disk fails too or the spool is
/// full, the batch stays in memory (as without a spool) and the thread waits before
/// trying again.
fn to_spool(spool: &mut Spool, batch: &mut Vec<String>, counters: &Counters, wait: Duration) {
    if batch.is_empty() {
        return;
    }
    match spool.write(batch) {
        Ok(()) => {
            counters.spooled.fetch_add(batch.len() as u64, Relaxed);
            released(batch.len());
            batch.clear();
        }
        Err(e) => {
            if e.first {
                lm_err!(
                    "cannot spool CDR events ({}): holding them in memory, up to cdr_buffer",
                    e.why
                );
            }
            std::thread::sleep(wait);
        }
    }
}

/// (queued, sent, overflow, rejected, redis_errors, spooled, unspooled), summed over
/// all processes.
pub fn counts() -> [(&'static str, u64); 7] {
    let c = COUNTERS.get();
    let get = |f: fn(&Counters) -> &AtomicU64| c.map_or(0, |c| f(c).load(Relaxed));
    [
        ("queued", get(|c| &c.queued)),
        ("sent", get(|c| &c.sent)),
        ("overflow", get(|c| &c.overflow)),
        ("rejected", get(|c| &c.rejected)),
        ("redis_errors", get(|c| &c.redis_errors)),
        ("spooled", get(|c| &c.spooled)),
        ("unspooled", get(|c| &c.unspooled)),
    ]
}
